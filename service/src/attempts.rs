//! Limits on failed transfer attempts: a caller who has not proven who they are (a wrong PIN,
//! an unknown or inactive payer, a reused request id) may fail only so often per minute, per
//! payer and per source address. Refusals of that kind leave nothing permanent in the ledger
//! (issue 11), but each still costs a log entry on three replicas; these limits keep a flood
//! of them off the log. Honest traffic is not touched: only failures are charged, and an
//! attempt is turned away before it is submitted only while its payer's or its source's
//! budget is spent.
//!
//! Each budget is a token bucket of `per_minute` tokens, refilled continuously. Integer
//! arithmetic in thousandths of a token; the clock is the caller's (`now_ms`), so the core is
//! pure and tested without waiting.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tuma_actors::account::AccountRef;
use tuma_actors::outcome::ResultCode;

use crate::rate::RateBuckets;

/// How many failed attempts a payer and a source may make per minute (0: no limit), and how
/// many of each are tracked at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptLimits {
    pub per_payer_per_minute: u32,
    pub per_source_per_minute: u32,
    /// Buckets kept per kind; past it, spent buckets are dropped first, then any.
    pub tracked_max: usize,
}

impl Default for AttemptLimits {
    fn default() -> AttemptLimits {
        AttemptLimits {
            per_payer_per_minute: 10,
            // A USSD or SMS gateway sends every customer's attempts from one address.
            per_source_per_minute: 600,
            tracked_max: 100_000,
        }
    }
}

/// Whether a refusal counts as a failed attempt: the ledger refused the caller before (or for)
/// proving the payer's identity, or the id was not theirs to use.
pub fn is_failed_attempt(code: ResultCode) -> bool {
    matches!(
        code,
        ResultCode::WrongPin
            | ResultCode::PinLocked
            | ResultCode::NoPin
            | ResultCode::UnknownAccount
            | ResultCode::AccountInactive
            | ResultCode::NotPermitted
            | ResultCode::IdempotencyConflict
            | ResultCode::RequestIdExpired
    )
}

/// The failed-attempt budgets of payers and sources. Shared by every channel of a node.
#[derive(Debug)]
pub struct AttemptLimiter {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    payers: RateBuckets<AccountRef>,
    sources: RateBuckets<IpAddr>,
}

impl AttemptLimiter {
    pub fn new(limits: AttemptLimits) -> AttemptLimiter {
        AttemptLimiter {
            inner: Mutex::new(Inner {
                payers: RateBuckets::new(limits.per_payer_per_minute, limits.tracked_max),
                sources: RateBuckets::new(limits.per_source_per_minute, limits.tracked_max),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `payer` (from `source`) must wait before another attempt is let through;
    /// `None` when it may go now.
    pub fn wait(
        &self,
        payer: &AccountRef,
        source: Option<IpAddr>,
        now_ms: u64,
    ) -> Option<Duration> {
        let inner = self.lock();
        let by_payer = inner.payers.wait(payer, now_ms);
        let by_source = source.and_then(|s| inner.sources.wait(&s, now_ms));
        by_payer.max(by_source)
    }

    /// Counts a failed attempt against `payer` and `source`.
    pub fn charge(&self, payer: &AccountRef, source: Option<IpAddr>, now_ms: u64) {
        let mut inner = self.lock();
        inner.payers.charge(payer, now_ms);
        if let Some(source) = source {
            inner.sources.charge(&source, now_ms);
        }
        metrics::counter!("tuma_failed_attempts_total").increment(1);
    }

    /// Payers and sources with a budget being tracked.
    pub fn tracked(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.payers.len(), inner.sources.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payer(n: u32) -> AccountRef {
        AccountRef::parse(&format!("2547{n:08}")).expect("a valid MSISDN")
    }

    fn limiter(per_payer: u32, per_source: u32, tracked_max: usize) -> AttemptLimiter {
        AttemptLimiter::new(AttemptLimits {
            per_payer_per_minute: per_payer,
            per_source_per_minute: per_source,
            tracked_max,
        })
    }

    const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));

    #[test]
    fn a_payer_may_fail_its_budget_then_waits_until_a_token_refills() {
        let limiter = limiter(3, 1_000, 10);
        let alice = payer(1);
        for _ in 0..3 {
            assert_eq!(limiter.wait(&alice, HOME, 0), None);
            limiter.charge(&alice, HOME, 0);
        }
        // Spent: one token comes back every 20 s.
        assert_eq!(limiter.wait(&alice, HOME, 0), Some(Duration::from_secs(20)));
        assert_eq!(
            limiter.wait(&alice, HOME, 15_000),
            Some(Duration::from_secs(5))
        );
        assert_eq!(limiter.wait(&alice, HOME, 20_000), None);
        // Another payer from the same source is not held back by alice's failures.
        assert_eq!(limiter.wait(&payer(2), HOME, 0), None);
    }

    #[test]
    fn a_source_failing_for_many_payers_is_held_back_but_other_sources_are_not() {
        let limiter = limiter(10, 5, 100);
        for n in 0..5 {
            limiter.charge(&payer(n), HOME, 1_000);
        }
        assert_eq!(
            limiter.wait(&payer(99), HOME, 1_000),
            Some(Duration::from_secs(12))
        );
        let elsewhere = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(limiter.wait(&payer(99), elsewhere, 1_000), None);
        // Without a source (an internal caller) only the payer's budget applies.
        assert_eq!(limiter.wait(&payer(99), None, 1_000), None);
    }

    #[test]
    fn zero_means_no_limit_and_nothing_is_tracked() {
        let limiter = limiter(0, 0, 0);
        for _ in 0..1_000 {
            limiter.charge(&payer(1), HOME, 0);
        }
        assert_eq!(limiter.wait(&payer(1), HOME, 0), None);
        assert_eq!(limiter.tracked(), (0, 0));
    }

    #[test]
    fn tracked_budgets_stay_under_the_bound_and_refilled_ones_go_first() {
        let limiter = limiter(2, 10_000, 4);
        for n in 0..4 {
            limiter.charge(&payer(n), None, 0);
            limiter.charge(&payer(n), None, 0);
        }
        // Payer 0's budget has refilled by 60 s; the others were charged again at 59 s.
        for n in 1..4 {
            limiter.charge(&payer(n), None, 59_000);
        }
        limiter.charge(&payer(10), None, 60_000);
        assert_eq!(limiter.tracked().0, 4);
        for n in 1..4 {
            assert!(limiter.wait(&payer(n), None, 60_000).is_some(), "payer {n}");
        }
        for n in 11..100 {
            limiter.charge(&payer(n), None, 60_000);
            assert!(limiter.tracked().0 <= 4);
        }
    }

    #[test]
    fn only_refusals_of_an_unproven_caller_count() {
        assert!(is_failed_attempt(ResultCode::WrongPin));
        assert!(is_failed_attempt(ResultCode::UnknownAccount));
        assert!(is_failed_attempt(ResultCode::IdempotencyConflict));
        assert!(!is_failed_attempt(ResultCode::Success));
        assert!(!is_failed_attempt(ResultCode::InsufficientFunds));
        assert!(!is_failed_attempt(ResultCode::DailyLimitExceeded));
        assert!(!is_failed_attempt(ResultCode::Overloaded));
    }
}

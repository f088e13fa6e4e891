//! Invariants asserted on every apply, and the full audit a checker reads.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::account::{AccountRef, SystemAccount};
use crate::money::Money;
use crate::roles::AccountKind;

use super::records::Balances;
use super::ShardLedger;

/// An invariant that did not hold: the state machine is wrong and the replica must stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantViolation {
    pub message: String,
}

impl fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvariantViolation {}

fn violation(message: String) -> Result<(), InvariantViolation> {
    Err(InvariantViolation { message })
}

/// One shard's books, summed, for the audit endpoint and the checkers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardAudit {
    pub shard: u32,
    /// Σ of every account's counters.
    pub totals: Balances,
    /// Σ posted balances of all accounts, system ones included (always 0 on one shard).
    pub balance_sum: Money,
    /// This shard's issuer row (negative: e-money issued here).
    pub issuer: Money,
    /// This shard's clearing balance (posted).
    pub clearing: Money,
    pub fees: Money,
    pub commissions: Money,
    pub airtime: Money,
    pub accounts: usize,
    pub prepared: usize,
    pub accepted: usize,
    pub outbox: usize,
    pub entries_applied: u64,
    /// The shard's clock: the greatest timestamp applied (a clock that ran ahead shows here).
    #[serde(default)]
    pub clock_ms: u64,
}

impl ShardLedger {
    /// Checks what one entry could have broken: the shard totals balance and no account it
    /// touched is overdrawn. O(accounts touched).
    pub(super) fn check_invariants(&self) -> Result<(), InvariantViolation> {
        if let Some(error) = &self.protocol_error {
            return violation(format!("protocol violation: {error}"));
        }
        let totals = &self.state.totals;
        if totals.debits_pending != totals.credits_pending
            || totals.debits_posted != totals.credits_posted
        {
            return violation(format!("books do not balance: {totals:?}"));
        }
        for account in &self.touched {
            self.check_account(account)?;
        }
        Ok(())
    }

    fn check_account(&self, reference: &AccountRef) -> Result<(), InvariantViolation> {
        let Some(account) = self.state.accounts.get(reference) else {
            return violation(format!("touched account {reference} does not exist"));
        };
        let b = &account.balances;
        if b.debits_pending.is_negative() || b.credits_pending.is_negative() {
            return violation(format!("{reference} has a negative pending amount: {b:?}"));
        }
        if account.kind != AccountKind::System && b.available().is_negative() {
            return violation(format!(
                "{reference} is overdrawn: balance {} with {} held",
                b.balance(),
                b.debits_pending
            ));
        }
        if account.kind != AccountKind::System && account.spendable().is_negative() {
            return violation(format!(
                "{reference} spent money set aside: available {} with {} set aside",
                b.available(),
                account.earmarked()
            ));
        }
        Ok(())
    }

    /// Full scan: every account, the totals recomputed from scratch and compared with the
    /// running totals. O(accounts); the simulator runs it after every step.
    pub fn audit(&self) -> Result<ShardAudit, InvariantViolation> {
        let mut sum = Balances::default();
        let mut balance_sum = 0i64;
        for (reference, account) in &self.state.accounts {
            self.check_account(reference)?;
            let b = &account.balances;
            sum.debits_pending = add(sum.debits_pending, b.debits_pending);
            sum.debits_posted = add(sum.debits_posted, b.debits_posted);
            sum.credits_pending = add(sum.credits_pending, b.credits_pending);
            sum.credits_posted = add(sum.credits_posted, b.credits_posted);
            balance_sum += b.balance().cents();
        }
        if sum != self.state.totals {
            violation(format!(
                "running totals {:?} differ from a recount {sum:?}",
                self.state.totals
            ))?;
        }
        self.check_invariants()?;
        if balance_sum != 0 {
            violation(format!(
                "balances on shard sum to {balance_sum} cents, not 0"
            ))?;
        }
        let shard = self.config.shard;
        let posted = |system: SystemAccount| {
            self.state.accounts[&AccountRef::System(system)]
                .balances
                .balance()
        };
        Ok(ShardAudit {
            shard,
            totals: sum,
            balance_sum: Money::from_cents(balance_sum),
            issuer: posted(SystemAccount::Issuer(shard)),
            clearing: posted(SystemAccount::Clearing(shard)),
            fees: posted(SystemAccount::Fees(shard)),
            commissions: posted(SystemAccount::Commissions(shard)),
            airtime: posted(SystemAccount::Airtime(shard)),
            accounts: self.state.accounts.len(),
            prepared: self.state.prepared.len(),
            accepted: self.state.accepted.len(),
            outbox: self.state.outbox.len(),
            entries_applied: self.state.entries_applied,
            clock_ms: self.state.clock_ms,
        })
    }
}

fn add(a: Money, b: Money) -> Money {
    a.checked_add(b).expect("audit sum overflow")
}

//! Seed reports, the summary line, and running many seeds on threads — shared by both
//! simulators.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::model::Violation;

/// What one seed did.
#[derive(Clone, Debug, Default)]
pub struct SeedReport {
    pub seed: u64,
    pub transfers: u64,
    pub committed: u64,
    /// Refused, aborted, or never recorded.
    pub aborted: u64,
    /// Aborted or refused because the deadline passed.
    pub deadline_expired: u64,
    /// Clients that never heard a final answer.
    pub ambiguous: u64,
    pub reversals: u64,
    /// Business payout orders sent, accepted, paid, and timed out in the queue.
    pub payouts: PayoutTally,
    pub crashes: u64,
    pub partitions: u64,
    pub messages: u64,
    pub dropped: u64,
    pub entries: u64,
    pub lost_entries: u64,
    /// History rows written, and those whose in-memory record has retired.
    pub history_rows: u64,
    pub retired: u64,
    pub violations: Vec<Violation>,
    /// The event trace, when tracing was on.
    pub trace: Vec<String>,
}

impl SeedReport {
    /// Trace lines about one transfer (for a failure report).
    pub fn trace_of(&self, id: &str) -> Vec<&str> {
        let tag = format!("[{id}]");
        self.trace
            .iter()
            .filter(|l| l.contains(&tag))
            .map(String::as_str)
            .collect()
    }
}

/// Business payout orders of a run (the real-engine simulator's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayoutTally {
    pub orders: u64,
    pub accepted: u64,
    pub paid: u64,
    pub queue_timeouts: u64,
}

impl PayoutTally {
    fn add(&mut self, other: &PayoutTally) {
        self.orders += other.orders;
        self.accepted += other.accepted;
        self.paid += other.paid;
        self.queue_timeouts += other.queue_timeouts;
    }
}

/// Totals over many seeds.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub seeds: u64,
    pub transfers: u64,
    pub committed: u64,
    pub aborted: u64,
    pub deadline_expired: u64,
    pub ambiguous: u64,
    pub reversals: u64,
    pub payouts: PayoutTally,
    pub crashes: u64,
    pub partitions: u64,
    pub messages: u64,
    pub dropped: u64,
    pub history_rows: u64,
    pub retired: u64,
    pub violations: u64,
    /// Reports of the seeds that failed (at most a few kept).
    pub failed: Vec<SeedReport>,
    /// Every failing seed with its first violation.
    pub failed_seeds: Vec<(u64, String)>,
}

impl Summary {
    pub(crate) fn add(&mut self, report: SeedReport) {
        self.seeds += 1;
        self.transfers += report.transfers;
        self.committed += report.committed;
        self.aborted += report.aborted;
        self.deadline_expired += report.deadline_expired;
        self.ambiguous += report.ambiguous;
        self.reversals += report.reversals;
        self.payouts.add(&report.payouts);
        self.crashes += report.crashes;
        self.partitions += report.partitions;
        self.messages += report.messages;
        self.dropped += report.dropped;
        self.history_rows += report.history_rows;
        self.retired += report.retired;
        self.violations += report.violations.len() as u64;
        if let Some(first) = report.violations.first() {
            self.failed_seeds.push((report.seed, first.message.clone()));
        }
        if !report.violations.is_empty() && self.failed.len() < 5 {
            self.failed.push(report);
        }
    }

    /// The contract line operators' scripts read.
    pub fn line(&self) -> String {
        format!(
            "seeds={} transfers={} committed={} aborted={} violations={}",
            self.seeds, self.transfers, self.committed, self.aborted, self.violations
        )
    }

    /// The detail line printed before it.
    pub fn detail(&self) -> String {
        let mut line = format!(
            "deadline_expired={} ambiguous={} reversals={} crashes={} partitions={} messages={} dropped={} history_rows={} retired={}",
            self.deadline_expired, self.ambiguous, self.reversals, self.crashes, self.partitions, self.messages, self.dropped, self.history_rows, self.retired
        );
        let payouts = &self.payouts;
        if payouts.orders > 0 {
            line += &format!(
                " payouts={} accepted={} paid={} queue_timeouts={}",
                payouts.orders, payouts.accepted, payouts.paid, payouts.queue_timeouts
            );
        }
        line
    }
}

/// Runs `run` for every seed on `threads` threads; `progress` is called after each seed. The
/// summary does not depend on the thread count.
pub fn run_many(
    seeds: impl Iterator<Item = u64>,
    threads: usize,
    progress: &(dyn Fn(&SeedReport) + Sync),
    run: &(dyn Fn(u64) -> SeedReport + Sync),
) -> Summary {
    let seeds: Vec<u64> = seeds.collect();
    let next = AtomicUsize::new(0);
    let reports = Mutex::new(Vec::with_capacity(seeds.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { break };
                let report = run(seed);
                progress(&report);
                reports
                    .lock()
                    .expect("no panics hold this lock")
                    .push(report);
            });
        }
    });
    let mut reports = reports.into_inner().expect("threads joined");
    reports.sort_by_key(|r| r.seed);
    let mut summary = Summary::default();
    for report in reports {
        summary.add(report);
    }
    summary
}

//! The simulator's own guarantees: its checker catches planted protocol faults and names the
//! seed; the same seed replays byte for byte; a clean protocol passes with both commits and
//! deadline aborts in quantity.

use std::sync::Arc;

use tuma_actors::ledger::PlantedFault;
use tuma_actors::tariff::Tariffs;
use tuma_chaos::sim::model::{run_seed, run_seeds};
use tuma_chaos::sim::SimConfig;

fn tariffs() -> Arc<Tariffs> {
    Arc::new(Tariffs::kenya_default())
}

fn planted(fault: PlantedFault, seeds: std::ops::Range<u64>) -> (u64, Vec<String>) {
    let cfg = SimConfig {
        planted_fault: Some(fault),
        ..SimConfig::default()
    };
    let summary = run_seeds(&cfg, seeds, 2, &|_| {});
    let messages = summary
        .failed
        .iter()
        .flat_map(|r| r.violations.iter().map(|v| v.to_string()))
        .collect();
    (summary.violations, messages)
}

#[test]
fn checker_catches_a_payee_spending_a_pending_credit() {
    let (violations, messages) = planted(PlantedFault::PendingCreditSpendable, 1..40);
    assert!(violations > 0, "the planted fault went unnoticed");
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("seed ") && m.contains("overdrawn")),
        "{messages:?}"
    );
}

#[test]
fn checker_catches_a_payer_committing_after_its_deadline() {
    let (violations, messages) = planted(PlantedFault::CommitAfterDeadline, 1..40);
    assert!(violations > 0, "the planted fault went unnoticed");
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("seed ") && m.contains("after its deadline")),
        "{messages:?}"
    );
}

#[test]
fn same_seed_same_run_byte_for_byte() {
    let cfg = SimConfig {
        trace: true,
        ..SimConfig::default()
    };
    let a = run_seed(&cfg, 42, tariffs());
    let b = run_seed(&cfg, 42, tariffs());
    assert!(
        a.trace.len() > 1_000,
        "trace too short to mean anything: {}",
        a.trace.len()
    );
    assert_eq!(a.trace.join("\n"), b.trace.join("\n"));
    assert_eq!(
        (a.committed, a.aborted, a.messages),
        (b.committed, b.aborted, b.messages)
    );
    let c = run_seed(&cfg, 43, tariffs());
    assert_ne!(a.trace, c.trace, "different seeds should differ");
}

#[test]
fn thread_count_does_not_change_the_summary() {
    let cfg = SimConfig::default();
    let one = run_seeds(&cfg, 1..9, 1, &|_| {});
    let two = run_seeds(&cfg, 1..9, 2, &|_| {});
    assert_eq!(one.line(), two.line());
    assert_eq!(one.detail(), two.detail());
}

#[test]
fn clean_protocol_passes_with_commits_and_deadline_aborts_in_quantity() {
    let summary = run_seeds(&SimConfig::default(), 1..60, 2, &|_| {});
    for report in &summary.failed {
        for v in &report.violations {
            eprintln!("{v}");
        }
    }
    assert_eq!(summary.violations, 0);
    assert!(
        summary.committed > summary.transfers / 2,
        "{}",
        summary.line()
    );
    assert!(
        summary.deadline_expired > summary.transfers / 50,
        "{}",
        summary.detail()
    );
    assert!(
        summary.reversals > 0 && summary.crashes > 0 && summary.partitions > 0,
        "{}",
        summary.detail()
    );
}

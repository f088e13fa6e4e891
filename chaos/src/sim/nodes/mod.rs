//! The real-engine simulator (`tuma sim`): N nodes of the production [`Engine`] in one thread,
//! deterministic from a seed.
//!
//! Each node is the engine the `tuma node` binary runs, handed an in-memory disk
//! ([`MemDisk`]), a simulated clock and an in-memory network instead of sled, the wall clock and
//! TCP — the Ready loop, group commit, checkpoints and snapshots, leader balancing, protocol
//! drivers, account actors, routing and forwarding, the meta group, joins, drains and leaves
//! all run as in production. Callers behave as gateways do (retry under the same id, reuse an
//! id for other content, type wrong PINs, read balances and statuses); faults come on a seeded
//! schedule; the checker asserts after every step and after healing (`checks.rs`).
//!
//! | file | holds |
//! |---|---|
//! | `config.rs` | knobs and their bounds |
//! | `env.rs` | the simulated clock and network the engines see |
//! | `node.rs` | one node: start (on its disk), crash, step |
//! | `world.rs` | the event loop: time, network weather, callers, node stepping |
//! | `setup.rs` | a seed's cluster shape, the bank opened and funded, the workload |
//! | `payouts.rs` | business payout orders, their payments, and their checks |
//! | `audit_log.rs` | audited actions recorded under faults, and their checks |
//! | `intake_pauses.rs` | a backup's pause of new transfers on every shard, under faults |
//! | `faults.rs` | the fault schedule; applying and healing faults |
//! | `recorder.rs` | what every replica applied: log matching, balance history for reads |
//! | `checks.rs` | per-step and final checks |
//!
//! [`Engine`]: tuma_cluster::engine::Engine
//! [`MemDisk`]: tuma_cluster::storage::MemDisk

mod audit_log;
mod checks;
mod clients;
mod config;
mod env;
mod faults;
mod history_checks;
mod intake_pauses;
mod node;
mod payouts;
mod recorder;
pub mod scripted;
mod setup;
mod world;

use std::sync::Arc;

use tuma_actors::outcome::ResultCode;
use tuma_actors::tariff::Tariffs;

pub use config::{NodesConfig, NodesConfigError};

use super::model::Violation;
use super::report::{run_many, SeedReport, Summary};
use clients::Answer;

/// Runs one seed to the end and checks it.
pub fn run_seed(cfg: &NodesConfig, seed: u64, tariffs: Arc<Tariffs>) -> SeedReport {
    quiet_panics();
    SIMULATING.with(|s| s.set(true));
    let mut world = setup::build(cfg, seed, tariffs);
    world.run();
    SIMULATING.with(|s| s.set(false));
    let mut report = SeedReport {
        seed,
        ..SeedReport::default()
    };
    let digest = world.recorder().digest();
    let entries = world.recorder().applications;
    for client in world.transfers.iter().filter(|c| !c.setup) {
        report.transfers += 1;
        match &client.answer {
            Some(Answer::Receipt(receipt)) if receipt.result.is_success() => report.committed += 1,
            Some(Answer::Receipt(receipt)) => {
                report.aborted += 1;
                if receipt.result == ResultCode::DeadlinePassed {
                    report.deadline_expired += 1;
                }
            }
            Some(Answer::Refused(_)) => report.aborted += 1,
            None => report.ambiguous += 1,
        }
    }
    report.payouts = world.payout_tally();
    let stats = world.stats.clone();
    report.crashes = stats.crashes;
    report.partitions = stats.partitions;
    report.messages = stats.frames;
    report.dropped = stats.dropped;
    report.entries = entries;
    report.lost_entries = world.nodes.values().map(|n| n.disk.torn_writes_cut()).sum();
    (report.history_rows, report.retired) = world.history_counts();
    world.note(|| {
        format!(
            "end: steps={} frames={} dropped={} duplicated={} crashes={} restarts={} faults={} digest={digest:016x}",
            stats.steps, stats.frames, stats.dropped, stats.duplicated, stats.crashes, stats.restarts, stats.faults
        )
    });
    report.violations = std::mem::take(&mut world.violations)
        .into_iter()
        .map(|message| Violation {
            seed,
            transfer: None,
            message,
        })
        .collect();
    report.trace = std::mem::take(&mut world.trace);
    report
}

/// Runs `seeds` on `threads` threads; `progress` is called after each seed. The summary does
/// not depend on the thread count.
pub fn run_seeds(
    cfg: &NodesConfig,
    seeds: impl Iterator<Item = u64>,
    threads: usize,
    progress: &(dyn Fn(&SeedReport) + Sync),
) -> Summary {
    let tariffs = Arc::new(Tariffs::kenya_default());
    quiet_panics();
    run_many(seeds, threads, progress, &|seed| {
        run_seed(cfg, seed, tariffs.clone())
    })
}

/// A replica that panics is a finding the checker reports; the default hook would also print
/// it to stderr from the middle of a progress bar. Simulator threads stay quiet; others keep
/// the hook they had.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if SIMULATING.with(|s| s.get()) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                PANIC_AT.with(|p| *p.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

thread_local! {
    /// Set on a thread while it runs a seed.
    static SIMULATING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Where the last panic on this thread happened (for the violation's message).
    static PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Where the last panic on this simulator thread happened, if known.
pub(super) fn last_panic_location() -> Option<String> {
    PANIC_AT.with(|p| p.borrow_mut().take())
}

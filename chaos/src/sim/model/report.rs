//! Running the model simulator's seeds.

use std::sync::Arc;

use tuma_actors::ledger::OutgoingState;
use tuma_actors::outcome::ResultCode;
use tuma_actors::tariff::Tariffs;

use super::config::SimConfig;
use super::world::World;
use crate::sim::report::{run_many, SeedReport, Summary};

/// Runs one seed to the end and checks it.
pub fn run_seed(cfg: &SimConfig, seed: u64, tariffs: Arc<Tariffs>) -> SeedReport {
    let mut world = World::new(cfg, seed, tariffs);
    world.run();
    let mut report = SeedReport {
        seed,
        ..SeedReport::default()
    };
    for client in &world.clients {
        report.transfers += 1;
        if client.request.reverses.is_some() {
            report.reversals += 1;
        }
        if client.answer.is_none() {
            report.ambiguous += 1;
        }
        let state = world.payer_state(client);
        match state {
            Some(OutgoingState::Committed) => report.committed += 1,
            Some(OutgoingState::Aborted(code) | OutgoingState::Refused(code)) => {
                report.aborted += 1;
                if code == ResultCode::DeadlinePassed {
                    report.deadline_expired += 1;
                }
            }
            _ => report.aborted += 1,
        }
    }
    let stats = &world.stats;
    report.crashes = stats.crashes;
    report.partitions = stats.partitions;
    report.messages = stats.messages;
    report.dropped = stats.dropped;
    report.entries = stats.entries;
    report.lost_entries = stats.lost_entries;
    report.violations = std::mem::take(&mut world.checker.violations);
    report.trace = std::mem::take(&mut world.trace);
    report
}

/// Runs `seeds` on `threads` threads; `progress` is called after each seed. The summary does
/// not depend on the thread count.
pub fn run_seeds(
    cfg: &SimConfig,
    seeds: impl Iterator<Item = u64>,
    threads: usize,
    progress: &(dyn Fn(&SeedReport) + Sync),
) -> Summary {
    let tariffs = Arc::new(Tariffs::kenya_default());
    run_many(seeds, threads, progress, &|seed| {
        run_seed(cfg, seed, tariffs.clone())
    })
}

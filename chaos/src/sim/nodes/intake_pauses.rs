//! A backup's pause of new transfers (`PauseIntake` on every shard, lifting by itself at its
//! time) in about one seed in three, under the same faults: transfers then are refused
//! `Overloaded` and unrecorded, those under way finish, and every final check still holds.
//! After healing no shard is left paused.

use tuma_actors::ledger::Command;

use super::env::EPOCH_MS;
use super::world::{CommandClient, Event, World};

impl World {
    pub(super) fn schedule_intake_pauses(&mut self, start: u64) {
        if !self.rng.chance(333) {
            return;
        }
        let at = start + self.rng.range(0, self.cfg.workload_ms * 2 / 3);
        let until_ms = EPOCH_MS + at + self.rng.range(200, 3_000);
        for shard in 0..self.map.shard_count() {
            let pause = CommandClient::new(shard, Command::PauseIntake { until_ms });
            self.commands.push(pause);
            self.schedule(at, Event::Command(self.commands.len() - 1));
        }
    }

    pub(super) fn check_intake_resumed(&self, problems: &mut Vec<String>) {
        for (shard, ledger) in self.leader_ledgers() {
            if ledger.intake_paused(ledger.clock_ms()) {
                problems.push(format!(
                    "shard {shard} still refuses new transfers after healing"
                ));
            }
        }
    }
}

//! Audited actions under faults: the edge records admin and business actions on their actor's
//! shard (`RecordAction`, retried like every command). After healing, each shard's audit log
//! on its leader's disk holds exactly the records its ledger numbered, gapless, in time order;
//! every caught-up replica holds the same records (whether it applied them or received them in
//! a snapshot); every action answered as recorded is there; nothing is there that no one sent.

use std::collections::BTreeSet;

use tuma_actors::ledger::{AuditLogEntry, Command};

use super::world::{CommandClient, Event, World};

impl World {
    /// Schedules about one audited action per twenty transfers.
    pub(super) fn schedule_audited_actions(&mut self, start: u64) {
        let count = (self.cfg.transfers / 20).max(1);
        for n in 0..count {
            let at = start + self.rng.range(0, self.cfg.workload_ms * 9 / 10);
            let actor = format!("key:k{}", self.rng.below(5));
            let entry = AuditLogEntry {
                id: format!("sim-{n}"),
                actor: actor.clone(),
                role: "care".into(),
                action: "POST /admin/v1/pins/unlock".into(),
                target: format!("msisdn=2547000{n:05}"),
                source: "127.0.0.1 via node 1".into(),
                outcome: "200".into(),
            };
            let shard = self.map.shard_of_actor(&actor);
            self.commands
                .push(CommandClient::new(shard, Command::RecordAction(entry)));
            self.schedule(at, Event::Command(self.commands.len() - 1));
        }
    }

    pub(super) fn check_audit_logs(&self, problems: &mut Vec<String>) {
        let mut held = BTreeSet::new();
        for shard in 0..self.map.shard_count() {
            let replicas = self.replicas_of(shard);
            let Some((leader, lead)) = replicas.iter().find(|(_, p)| p.serving) else {
                continue;
            };
            let records = match self.nodes[leader].disk.audit_log_records(shard) {
                Ok(records) => records,
                Err(error) => {
                    problems.push(format!("shard {shard}: audit log unreadable: {error}"));
                    continue;
                }
            };
            let numbered = lead.ledger.audit_log_next_seq();
            let gapless = records.iter().enumerate().all(|(i, r)| r.seq == i as u64);
            let in_time_order = records.windows(2).all(|w| w[0].at_ms <= w[1].at_ms);
            if records.len() as u64 != numbered || !gapless || !in_time_order {
                problems.push(format!(
                    "shard {shard}: leader {leader} holds {} audit records (gapless {gapless}, in time order {in_time_order}), its ledger numbered {numbered}",
                    records.len()
                ));
            }
            for (node, replica) in &replicas {
                if node == leader || !replica.initialized || replica.applied != lead.applied {
                    continue;
                }
                match self.nodes[node].disk.audit_log_records(shard) {
                    Ok(theirs) if theirs == records => {}
                    Ok(theirs) => problems.push(format!(
                        "shard {shard}: node {node} holds {} audit records unlike leader {leader}'s {}",
                        theirs.len(),
                        records.len()
                    )),
                    Err(error) => problems.push(format!(
                        "shard {shard}: audit log unreadable on node {node}: {error}"
                    )),
                }
            }
            held.extend(records.into_iter().map(|r| (shard, r.entry)));
        }
        let mut sent = BTreeSet::new();
        for command in &self.commands {
            let Command::RecordAction(entry) = &command.command else {
                continue;
            };
            sent.insert(&entry.id);
            let recorded = command.result.is_some_and(|r| r.is_success());
            if recorded && !held.contains(&(command.shard, entry.clone())) {
                problems.push(format!(
                    "action {} was answered as recorded, and shard {}'s audit log lacks it",
                    entry.id, command.shard
                ));
            }
        }
        for (shard, entry) in &held {
            if !sent.contains(&entry.id) {
                problems.push(format!(
                    "shard {shard}'s audit log holds action {}, which no one sent",
                    entry.id
                ));
            }
        }
    }
}

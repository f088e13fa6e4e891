//! What the real-engine simulator asserts.
//!
//! After every step of a node (`check_node`): it did not panic (see `World::step_node`); no
//! replica it destroyed was still in its group's latest configuration; no shard clock it holds
//! ran ahead of true time by more than the clock bound allows (clock poisoning). The recorder
//! checks log matching as entries apply.
//!
//! Once the healed cluster settles (`settle_check`): every shard has a serving leader with
//! exactly `replicas` voters on active members, matching the cluster state, nothing in flight
//! and no move under way — or, at the hard stop, a liveness violation naming what is stuck.
//! Then the final checks: books balance (Σ balances 0, Σ clearing 0, every shard's audit), the
//! replicas of each shard hold identical state, every caller's answer matches the final
//! record (the same request, the same receipt; a refused reuse of an id really was a reuse),
//! (or, once retired from memory, its history row), every account's balance equals its
//! committed history rows and every confirmed transfer appears once on each side of the
//! history on every caught-up replica (`history_checks.rs`), balance reads were
//! linearizable, and status reads of confirmed transfers never answered "unknown".

use std::collections::{BTreeMap, BTreeSet};

use tuma_actors::ledger::{HistorySide, OutgoingState, ShardLedger};
use tuma_actors::outcome::ResultCode;
use tuma_cluster::engine::{ClientReply, ReplicaProbe};
use tuma_cluster::membership::MemberState;
use tuma_cluster::transport::NodeId;

use super::clients::Answer;
use super::env::EPOCH_MS;
use super::history_checks::Histories;
use super::recorder::read_is_linearizable;
use super::world::World;

/// A shard clock may run ahead of true time by the skew, the clock bound and this slack.
const CLOCK_SLACK_MS: u64 = 1_000;

impl World {
    /// Checks after a node stepped.
    pub(super) fn check_node(&mut self, id: NodeId) {
        let now = self.now();
        let bound = EPOCH_MS
            + now
            + self.cfg.skew_ms_max
            + self.template.max_clock_offset_ms
            + CLOCK_SLACK_MS;
        let mut problems = Vec::new();
        let mut held = BTreeMap::new();
        if let Some(running) = self.nodes.get(&id).and_then(|n| n.running.as_ref()) {
            for probe in running.engine.probe_replicas() {
                let counts_me =
                    probe.conf.voters.contains(&id) || probe.conf.voters_outgoing.contains(&id);
                held.insert(probe.shard, (probe.conf_index, counts_me));
                if probe.ledger.clock_ms() > bound && !self.poisoned.contains(&probe.shard) {
                    self.poisoned.insert(probe.shard);
                    problems.push(format!(
                        "shard {} clock on node {id} is {} ms ahead of true time: a clock poisoned it",
                        probe.shard,
                        probe.ledger.clock_ms() - (EPOCH_MS + now)
                    ));
                }
            }
        }
        let before = self
            .nodes
            .get(&id)
            .map(|n| n.replicas_seen.clone())
            .unwrap_or_default();
        for (shard, (_, counted_me)) in before {
            if held.contains_key(&shard) || !counted_me {
                continue; // still here, or its own configuration no longer counted it
            }
            let newest = self.recorder().configurations.get(&shard).cloned();
            if let Some((conf_index, voters)) = newest.filter(|(_, voters)| voters.contains(&id)) {
                problems.push(format!(
                    "node {id} destroyed its replica of shard {shard} while its group's newest configuration (index {conf_index}, voters {voters:?}) still counts it"
                ));
            }
        }
        if let Some(node) = self.nodes.get_mut(&id) {
            node.replicas_seen = held;
        }
        for problem in problems {
            self.violation(problem);
        }
    }

    /// After healing, a few times a second: has the cluster settled? Then the final checks.
    pub(super) fn settle_check(&mut self) {
        match self.unsettled() {
            None => {
                self.settled_at = Some(self.now());
                self.note(|| "settled".to_string());
                self.final_checks();
                self.finished = true;
            }
            Some(_) => self.schedule_settle_check(),
        }
    }

    /// At the hard stop: the cluster never settled.
    pub(super) fn finish_unsettled(&mut self) {
        let why = self
            .unsettled()
            .unwrap_or_else(|| "the run ended early".into());
        for (id, node) in &self.nodes {
            let Some(running) = node.running.as_ref() else {
                continue;
            };
            let meta = running.engine.probe_meta();
            let line = format!(
                "node {id}: clock {:?}; meta applied {} leader {:?} moves {:?} members {:?}; {}",
                running.engine.clock_verdict(),
                meta.applied,
                meta.leader,
                meta.meta
                    .map(|m| m.moves.keys().copied().collect::<Vec<_>>()),
                meta.meta.map(|m| m
                    .members
                    .iter()
                    .map(|(id, m)| (*id, m.state))
                    .collect::<Vec<_>>()),
                (0..self.map.shard_count())
                    .map(|s| format!("[{}]", self.describe_shard(s)))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            if self.cfg.trace {
                self.trace.push(line);
            }
        }
        if self.violations.is_empty() {
            self.violation(format!(
                "liveness: not settled {} ms after healing: {why}",
                self.cfg.settle_ms
            ));
        }
    }

    /// Live members by the cluster state of the meta leader (or any node).
    fn cluster_view(&self) -> Option<tuma_cluster::membership::ClusterMeta> {
        let mut best: Option<(u64, tuma_cluster::membership::ClusterMeta)> = None;
        for node in self.nodes.values() {
            let Some(running) = node.running.as_ref() else {
                continue;
            };
            let probe = running.engine.probe_meta();
            if let Some(meta) = probe.meta {
                if best
                    .as_ref()
                    .is_none_or(|(applied, _)| probe.applied > *applied)
                {
                    best = Some((probe.applied, meta.clone()));
                }
            }
        }
        best.map(|(_, meta)| meta)
    }

    /// What keeps the cluster from being settled, if anything.
    fn unsettled(&self) -> Option<String> {
        if let Some(i) = self.transfers.iter().position(|c| c.answer.is_none()) {
            return Some(format!(
                "transfer {} has no answer",
                self.transfers[i].request.id
            ));
        }
        if self.metas.iter().any(|m| m.outcome.is_none()) || self.commands.iter().any(|c| !c.done) {
            return Some("a cluster change or registration has no answer".into());
        }
        if self.balance_reads.iter().any(|r| r.result.is_none())
            || self.status_reads.iter().any(|r| r.result.is_none())
        {
            return Some("a read has no answer".into());
        }
        let meta = self.cluster_view()?;
        if let Some((shard, mv)) = meta.moves.iter().next() {
            return Some(format!(
                "shard {shard} still moving from {:?} to {:?} (members {:?}); {}",
                meta.placement[*shard as usize],
                mv.target,
                meta.members
                    .iter()
                    .map(|(id, m)| (*id, m.state))
                    .collect::<Vec<_>>(),
                self.describe_shard(*shard)
            ));
        }
        if let Some(id) = meta.members_in(MemberState::Draining).first() {
            return Some(format!("node {id} is still draining"));
        }
        for shard in 0..meta.shards {
            if let Some(problem) = self.shard_unsettled(shard, &meta) {
                return Some(problem);
            }
        }
        None
    }

    fn shard_unsettled(
        &self,
        shard: u32,
        meta: &tuma_cluster::membership::ClusterMeta,
    ) -> Option<String> {
        let placed: BTreeSet<NodeId> = meta.placement[shard as usize].iter().copied().collect();
        let replicas = self.replicas_of(shard);
        let leaders: Vec<&(NodeId, ReplicaProbe<'_>)> =
            replicas.iter().filter(|(_, p)| p.serving).collect();
        let [(leader, lead)] = leaders.as_slice() else {
            return Some(format!(
                "shard {shard} has {} serving leaders",
                leaders.len()
            ));
        };
        let voters: BTreeSet<NodeId> = lead.conf.voters.iter().copied().collect();
        if voters.len() != self.replicas
            || voters != placed
            || !lead.conf.voters_outgoing.is_empty()
            || !lead.conf.learners.is_empty()
        {
            return Some(format!(
                "shard {shard}: voters {voters:?} learners {:?} (placement {placed:?}, {} replicas wanted)",
                lead.conf.learners, self.replicas
            ));
        }
        for voter in &voters {
            if meta.state_of(*voter) != Some(MemberState::Active) {
                return Some(format!(
                    "shard {shard} has voter {voter}, not an active member"
                ));
            }
            let caught_up = replicas
                .iter()
                .any(|(n, p)| n == voter && p.initialized && p.applied == lead.applied);
            if !caught_up {
                return Some(format!(
                    "shard {shard}: voter {voter} is not live and caught up with leader {leader}"
                ));
            }
        }
        for (node, replica) in &replicas {
            let counted = lead.conf.voters.contains(node) || lead.conf.learners.contains(node);
            if replica.initialized && !counted {
                return Some(format!(
                    "node {node} still holds a replica of shard {shard} its group removed"
                ));
            }
        }
        let ledger = lead.ledger;
        let prepared: Vec<String> = ledger
            .prepared()
            .map(|r| r.request.id.to_string())
            .collect();
        let accepted: Vec<String> = ledger
            .accepted()
            .map(|(id, r)| format!("{id} from shard {}", r.payer_shard))
            .collect();
        let outbox: Vec<String> = ledger
            .outbox()
            .map(|(id, to, d)| format!("{id} {d:?} to shard {to}"))
            .collect();
        if !prepared.is_empty() || !accepted.is_empty() || !outbox.is_empty() {
            return Some(format!(
                "shard {shard} (leader node {leader}) still has transfers in flight: prepared {prepared:?}, accepted {accepted:?}, undelivered decisions {outbox:?}"
            ));
        }
        // Every payout order closes: paid, refused, or timed out in the queue.
        if ledger.payouts_held() > 0 {
            return Some(format!(
                "shard {shard} (leader node {leader}) still holds {} payout orders",
                ledger.payouts_held()
            ));
        }
        // Every finished record leaves memory once its window and grace have passed, so the
        // final checks see the whole run through the history.
        if ledger.retiring() > 0 {
            return Some(format!(
                "shard {shard} (leader node {leader}) still holds {} finished records, the oldest due to retire at {:?}",
                ledger.retiring(),
                ledger.oldest_retirable_ms()
            ));
        }
        None
    }

    /// Each live replica of `shard`: node, role, term, applied index, configuration.
    fn describe_shard(&self, shard: u32) -> String {
        self.replicas_of(shard)
            .iter()
            .map(|(node, p)| {
                format!(
                    "node {node}: {}{} term {} applied {} voters {:?} learners {:?} outgoing {:?}",
                    if p.leader { "leader" } else { "follower" },
                    if p.serving { " (serving)" } else { "" },
                    p.term,
                    p.applied,
                    p.conf.voters,
                    p.conf.learners,
                    p.conf.voters_outgoing
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Every live replica of `shard`, with its node.
    pub(super) fn replicas_of(&self, shard: u32) -> Vec<(NodeId, ReplicaProbe<'_>)> {
        let mut out = Vec::new();
        for (id, node) in &self.nodes {
            if let Some(running) = node.running.as_ref() {
                out.extend(
                    running
                        .engine
                        .probe_replicas()
                        .into_iter()
                        .filter(|p| p.shard == shard)
                        .map(|p| (*id, p)),
                );
            }
        }
        out
    }

    /// The serving leader's ledger of every shard (the cluster has settled).
    pub(super) fn leader_ledgers(&self) -> BTreeMap<u32, &ShardLedger> {
        let mut ledgers = BTreeMap::new();
        for node in self.nodes.values() {
            if let Some(running) = node.running.as_ref() {
                for probe in running.engine.probe_replicas() {
                    if probe.serving {
                        ledgers.insert(probe.shard, probe.ledger);
                    }
                }
            }
        }
        ledgers
    }

    fn final_checks(&mut self) {
        let mut problems = Vec::new();
        self.check_books(&mut problems);
        self.check_replicas_agree(&mut problems);
        let histories = self.histories(&mut problems);
        self.check_answers(&histories, &mut problems);
        self.check_balances(&histories, &mut problems);
        self.check_confirmed_in_history(&histories, &mut problems);
        self.check_payouts(&histories, &mut problems);
        self.check_audit_logs(&mut problems);
        self.check_intake_resumed(&mut problems);
        self.check_reads(&mut problems);
        let recorded = std::mem::take(&mut self.recorder().violations);
        problems.extend(recorded);
        for problem in problems {
            self.violation(problem);
        }
    }

    fn check_books(&self, problems: &mut Vec<String>) {
        let ledgers = self.leader_ledgers();
        let (mut balance_sum, mut clearing) = (0i64, 0i64);
        for (shard, ledger) in &ledgers {
            match ledger.audit() {
                Ok(audit) => {
                    balance_sum += audit.balance_sum.cents();
                    clearing += audit.clearing.cents();
                }
                Err(violation) => problems.push(format!("shard {shard} audit: {violation}")),
            }
        }
        if balance_sum != 0 || clearing != 0 {
            problems.push(format!(
                "money not conserved: Σ balances {balance_sum} cents, Σ clearing {clearing} cents"
            ));
        }
    }

    fn check_replicas_agree(&self, problems: &mut Vec<String>) {
        for shard in 0..self.map.shard_count() {
            let replicas = self.replicas_of(shard);
            let Some((leader, lead)) = replicas.iter().find(|(_, p)| p.serving) else {
                continue;
            };
            for (node, replica) in &replicas {
                if replica.initialized
                    && replica.applied == lead.applied
                    && replica.ledger.state() != lead.ledger.state()
                {
                    problems.push(format!(
                        "shard {shard}: node {node} and leader {leader} applied to the same index {} but hold different state",
                        lead.applied
                    ));
                }
            }
        }
    }

    fn check_answers(&self, histories: &Histories, problems: &mut Vec<String>) {
        let ledgers = self.leader_ledgers();
        for client in &self.transfers {
            let request = &client.request;
            let shard = self.map.shard_of(&request.from);
            let record = ledgers.get(&shard).and_then(|l| l.outgoing(&request.id));
            let id = &request.id;
            match (&client.answer, record) {
                (Some(Answer::Receipt(receipt)), Some(record)) => {
                    if !record.request.same_request(request) && unrecorded_refusal(receipt) {
                        // Refused before its PIN checked out, so it left no record; the id
                        // was then taken by another request (ids are reused on purpose here).
                    } else if !record.request.same_request(request) {
                        problems.push(format!("transfer {id}: the caller got the receipt of another request under its id"));
                    } else if receipt.result.is_success()
                        != (record.state == OutgoingState::Committed)
                    {
                        problems.push(format!(
                            "transfer {id}: told {:?}, but the record is {:?}",
                            receipt.result, record.state
                        ));
                    } else if receipt.result.is_success() && receipt.txn_id != record.txn_id {
                        problems.push(format!(
                            "transfer {id}: told receipt {:?}, recorded {:?}",
                            receipt.txn_id, record.txn_id
                        ));
                    } else if !receipt.result.is_success()
                        && record.result() != Some(receipt.result)
                    {
                        problems.push(format!(
                            "transfer {id}: told {:?}, recorded {:?}",
                            receipt.result,
                            record.result()
                        ));
                    }
                    if record.state == OutgoingState::Committed
                        && record.decided_ms.is_some_and(|d| d > request.deadline_ms)
                    {
                        problems.push(format!("transfer {id} committed after its deadline"));
                    }
                }
                (Some(Answer::Receipt(receipt)), None) => {
                    // Retired from memory, or refused without a record: the payer's history row
                    // (of this request: the id may have been reused) answers for it.
                    let row = histories.get(&shard).and_then(|rows| {
                        rows.iter().find(|r| {
                            r.transfer == *id
                                && r.side == HistorySide::Payer
                                && r.kind == request.kind
                                && r.counterparty == request.to
                                && (!r.committed()
                                    || -r.amount_cents - r.fee.cents() == request.amount.cents())
                        })
                    });
                    match row {
                        Some(row) if row.result == receipt.result && row.receipt == receipt.txn_id => {}
                        // Refused without a record; the row is another request's under the id.
                        Some(_) if unrecorded_refusal(receipt) => {}
                        Some(row) => problems.push(format!(
                            "transfer {id}: told {:?} {:?}, its history row says {:?} {:?}",
                            receipt.result, receipt.txn_id, row.result, row.receipt
                        )),
                        None if unrecorded_refusal(receipt) => {}
                        // A system payer (float) keeps no history; its payee's row is checked.
                        None if request.from.is_system() => {}
                        None => problems.push(format!(
                            "transfer {id}: told {:?}, but its payer shard has neither a record nor a history row",
                            receipt.result
                        )),
                    }
                }
                (Some(Answer::Refused(ResultCode::IdempotencyConflict)), record) => {
                    // Once retired, the other request shows as a history row under the id.
                    let retired = record.is_none()
                        && histories.get(&shard).is_some_and(|rows| {
                            rows.iter()
                                .any(|r| r.transfer == *id && r.side == HistorySide::Payer)
                        });
                    // Or the other request held the id while in flight, then was refused
                    // without a record.
                    let held_unrecorded = record.is_none()
                        && self.transfers.iter().any(|other| {
                            other.request.id == *id
                                && !other.request.same_request(request)
                                && matches!(&other.answer, Some(Answer::Receipt(r)) if unrecorded_refusal(r))
                        });
                    if !retired
                        && !held_unrecorded
                        && record.is_none_or(|r| r.request.same_request(request))
                    {
                        problems.push(format!("transfer {id}: refused as a reuse of its id, but no other request holds it"));
                    }
                }
                (Some(Answer::Refused(_)), _) => {}
                (None, _) => {
                    problems.push(format!("transfer {id}: the caller never heard an answer"))
                }
            }
        }
    }

    fn check_reads(&self, problems: &mut Vec<String>) {
        let recorder = self.recorder();
        for read in &self.balance_reads {
            let Some((balance, answered)) = read.result else {
                continue;
            };
            let timeline = recorder
                .timelines
                .get(&read.account)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if !read_is_linearizable(timeline, balance, read.started_at, answered) {
                problems.push(format!(
                    "a balance read of {} over [{}, {answered}] ms answered {balance} cents: not a state current during the read",
                    read.account, read.started_at
                ));
            }
        }
        for read in &self.status_reads {
            let id = &self.transfers[read.client].request.id;
            match &read.result {
                Some(ClientReply::Receipt(receipt)) if receipt.result.is_success() => {}
                Some(other) => problems.push(format!(
                    "status of confirmed transfer {id} answered {}",
                    other.describe()
                )),
                None => {}
            }
        }
    }
}

/// A refusal that may have left no record: the ledger answers a refusal before the payer's PIN
/// checked out (malformed, unknown payer, wrong PIN…) without recording it. Nothing moved, so
/// the books checks stand for it.
fn unrecorded_refusal(receipt: &tuma_actors::ledger::Receipt) -> bool {
    !receipt.result.is_success() && receipt.txn_id.is_none()
}

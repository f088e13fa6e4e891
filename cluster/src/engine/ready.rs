//! The Ready loop with group commit, and the routing of protocol messages between shard leaders.

use std::collections::VecDeque;

use protobuf::Message as _;
use raft::prelude::{Entry, Message, Snapshot};
use tuma_actors::protocol::Envelope;

use super::group::RaftGroup;
use super::meta_group::MetaGroup;
use super::replica::{ApplyOutput, Replica};
use super::{ClientReply, Engine, EngineError, Waiter};
use crate::membership::META_GROUP;
use crate::storage::{StorageError, WriteBatch, WriteOp};
use crate::transport::NodeId;
use crate::wire::PeerFrame;

/// Most protocol messages delivered locally in one pass (bounds a pass's work).
const LOCAL_DELIVERIES_MAX: usize = 100_000;

/// The meta group checkpoints at least this often (its state is small).
const META_CHECKPOINT_EVERY: u64 = 1_000;

/// A Raft group with a state machine, as the Ready loop sees it.
pub(super) trait Machine {
    fn group(&mut self) -> &mut RaftGroup;
    /// Replaces the state machine with a leader's snapshot.
    fn install(&mut self, snapshot: &Snapshot) -> Result<WriteOp, EngineError>;
    fn apply(&mut self, entries: Vec<Entry>, now_ms: u64) -> ApplyOutput;
}

impl Machine for Replica {
    fn group(&mut self) -> &mut RaftGroup {
        &mut self.group
    }
    fn install(&mut self, snapshot: &Snapshot) -> Result<WriteOp, EngineError> {
        self.install_snapshot(snapshot)
    }
    fn apply(&mut self, entries: Vec<Entry>, now_ms: u64) -> ApplyOutput {
        self.apply_entries(entries, now_ms)
    }
}

impl Machine for MetaGroup {
    fn group(&mut self) -> &mut RaftGroup {
        &mut self.group
    }
    fn install(&mut self, snapshot: &Snapshot) -> Result<WriteOp, EngineError> {
        self.install_snapshot(snapshot)
    }
    fn apply(&mut self, entries: Vec<Entry>, _now_ms: u64) -> ApplyOutput {
        self.apply_entries(entries)
    }
}

/// The first half of a group's Ready: the snapshot and committed entries apply, new entries and
/// the hard state join the batch. The staged Ready carries the messages a leader may send
/// before its own write is durable (the caller sends them at once).
fn stage<M: Machine>(
    machine: &mut M,
    batch: &mut WriteBatch,
    output: &mut ApplyOutput,
    now_ms: u64,
) -> Result<Option<StagedReady>, StorageError> {
    if !machine.group().raw.has_ready() {
        return Ok(None);
    }
    let mut ready = machine.group().raw.ready();
    let early = ready.take_messages();
    if !ready.snapshot().is_empty() {
        let snapshot = ready.snapshot().clone();
        let op = machine
            .install(&snapshot)
            .map_err(|error| StorageError::Mismatch(error.to_string()))?;
        batch.ops.push(op);
        output.meta_changed |= machine.group().id == META_GROUP;
    }
    output.extend(machine.apply(ready.take_committed_entries(), now_ms));
    let group = machine.group();
    if !ready.entries().is_empty() {
        let old_last = group.log.append(ready.entries());
        batch.ops.push(WriteOp::Append {
            shard: group.id,
            entries: ready.entries().clone(),
            old_last,
        });
    }
    if let Some(hard_state) = ready.hs() {
        group.log.set_hard_state(hard_state.clone());
        batch.ops.push(WriteOp::HardState {
            shard: group.id,
            state: hard_state.clone(),
        });
    }
    Ok(Some(StagedReady { ready, early }))
}

/// A Ready staged for the batch, with the messages raft-rs lets a leader send before it is
/// durable.
pub(super) struct StagedReady {
    ready: raft::Ready,
    pub early: Vec<Message>,
}

/// The second half, after the batch is durable: advance, apply what became committed, and
/// return every message to send.
fn complete<M: Machine>(
    machine: &mut M,
    staged: StagedReady,
    output: &mut ApplyOutput,
    now_ms: u64,
) -> Vec<Message> {
    let StagedReady { mut ready, .. } = staged;
    let mut sends = ready.take_persisted_messages();
    let group = machine.group();
    let mut light = group.raw.advance(ready);
    if let Some(commit) = light.commit_index() {
        group.log.set_commit(commit);
    }
    sends.extend(light.take_messages());
    let committed = light.take_committed_entries();
    output.extend(machine.apply(committed, now_ms));
    machine.group().raw.advance_apply();
    sends
}

impl Engine {
    fn send_raft(&self, shard: u32, messages: Vec<Message>) {
        for message in messages {
            let to = message.to;
            let bytes = message
                .write_to_bytes()
                .expect("encoding a raft message into memory cannot fail");
            self.send_frame(
                to,
                PeerFrame::Raft {
                    shard,
                    message: bytes,
                },
            );
        }
    }

    /// One pass over every group with a Ready (the meta group and each shard replica): one
    /// write batch, one fsync, then the sends and applies raft-rs allows only after persistence.
    pub(super) fn process_readies(&mut self) -> Result<(), StorageError> {
        let now_ms = self.now_ms();
        let mut batch = WriteBatch::default();
        let mut output = ApplyOutput::default();
        let mut meta_ready = stage(&mut self.meta, &mut batch, &mut output, now_ms)?;
        if let Some(staged) = meta_ready.as_mut() {
            self.send_raft(META_GROUP, std::mem::take(&mut staged.early));
        }
        let mut pending = Vec::new();
        let shards: Vec<u32> = self.replicas.keys().copied().collect();
        for shard in &shards {
            let replica = self.replicas.get_mut(shard).expect("listed");
            if let Some(mut staged) = stage(replica, &mut batch, &mut output, now_ms)? {
                let early = std::mem::take(&mut staged.early);
                self.send_raft(*shard, early);
                pending.push((*shard, staged));
            }
        }
        if !batch.is_empty() {
            self.store.write(batch)?;
            metrics::counter!("tuma_storage_fsyncs_total").increment(1);
        }
        if let Some(ready) = meta_ready {
            let sends = complete(&mut self.meta, ready, &mut output, now_ms);
            self.send_raft(META_GROUP, sends);
        }
        for (shard, ready) in pending {
            let replica = self.replicas.get_mut(&shard).expect("listed");
            let sends = complete(replica, ready, &mut output, now_ms);
            self.send_raft(shard, sends);
        }
        output.replies.extend(self.meta.on_role_change());
        self.notice_role_changes(&mut output);
        self.checkpoint()?;
        if output.meta_changed {
            self.on_meta_changed();
        }
        self.finish(output);
        Ok(())
    }

    fn notice_role_changes(&mut self, output: &mut ApplyOutput) {
        let mut lost = Vec::new();
        for (shard, replica) in self.replicas.iter_mut() {
            if let Some(replies) = replica.on_role_change() {
                if !replica.is_leader() {
                    lost.push(*shard);
                }
                output.replies.extend(replies);
            }
        }
        for shard in lost {
            let map = self.map;
            self.actors
                .stop_shard(|account| map.shard_of(account) == shard);
        }
    }

    fn checkpoint(&mut self) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let (every, keep) = (
            self.config.checkpoint_every_entries,
            self.config.log_keep_entries,
        );
        if let Some(op) = self
            .meta
            .maybe_checkpoint(every.min(META_CHECKPOINT_EVERY), keep)
        {
            batch.ops.push(op);
        }
        for replica in self.replicas.values_mut() {
            if let Some(op) = replica.maybe_checkpoint(
                self.config.checkpoint_every_entries,
                self.config.log_keep_entries,
            ) {
                batch.ops.push(op);
            }
        }
        if !batch.is_empty() {
            self.store.write(batch)?;
        }
        Ok(())
    }

    /// Answers waiters and routes protocol messages produced by a pass.
    pub(super) fn finish(&mut self, output: ApplyOutput) {
        for (waiter, reply) in output.replies {
            self.reply(waiter, reply);
        }
        self.route(output.envelopes);
    }

    pub(super) fn reply(&self, waiter: Waiter, reply: ClientReply) {
        match waiter {
            Waiter::Local(tx) => {
                let _ = tx.send(reply);
            }
            Waiter::Remote { node, id } => {
                self.send_frame(node, PeerFrame::ForwardReply { id, reply })
            }
        }
    }

    /// Delivers protocol messages: to a local leader directly, else to the shard's leader (or
    /// every replica of it when the leader is unknown). Lost messages are resent by drivers.
    pub(super) fn route(&mut self, envelopes: Vec<Envelope>) {
        let mut queue: VecDeque<Envelope> = envelopes.into();
        let mut delivered = 0;
        while let Some(envelope) = queue.pop_front() {
            let to = envelope.to;
            let local_leader = self.replicas.get(&to).is_some_and(|r| r.is_leader());
            if local_leader && delivered < LOCAL_DELIVERIES_MAX {
                delivered += 1;
                queue.extend(self.deliver_local(envelope));
                continue;
            }
            let leader = self
                .replicas
                .get(&to)
                .and_then(|r| r.leader())
                .filter(|l| *l != self.config.node_id);
            let hint = self
                .leader_hints
                .get(&to)
                .copied()
                .filter(|n| self.transport.is_connected(*n));
            let targets: Vec<NodeId> = match leader.or(hint) {
                Some(leader) => vec![leader],
                None => self
                    .shard_holders(to)
                    .into_iter()
                    .filter(|n| *n != self.config.node_id)
                    .collect(),
            };
            for node in targets {
                self.send_frame(node, PeerFrame::Protocol(envelope.clone()));
            }
        }
    }

    /// Hands a protocol message to a local leader's driver; returns messages it sends on.
    fn deliver_local(&mut self, envelope: Envelope) -> Vec<Envelope> {
        let now_ms = self.now_ms();
        let Some(replica) = self.replicas.get_mut(&envelope.to) else {
            return Vec::new();
        };
        let Some(driver) = replica.driver.as_mut() else {
            return Vec::new();
        };
        let effects = driver.on_message(&replica.ledger, &envelope, now_ms);
        for command in effects.propose {
            let _ = replica.propose(command, None, now_ms);
        }
        effects.send
    }

    /// Ticks every leading replica's driver: resends, sweeps, inquiries.
    pub(super) fn drive_protocol(&mut self) {
        let now_ms = self.now_ms();
        let mut envelopes = Vec::new();
        for replica in self.replicas.values_mut() {
            let Some(driver) = replica.driver.as_mut() else {
                continue;
            };
            let effects = driver.on_tick(&replica.ledger, now_ms);
            envelopes.extend(effects.send);
            for command in effects.propose {
                let _ = replica.propose(command, None, now_ms);
            }
        }
        self.route(envelopes);
    }

    pub(super) fn on_peer(&mut self, from: NodeId, frame: PeerFrame) {
        match frame {
            PeerFrame::Raft { shard, message } => self.step_raft(from, shard, &message),
            PeerFrame::Protocol(envelope) => {
                if self
                    .replicas
                    .get(&envelope.to)
                    .is_some_and(|r| r.is_leader())
                {
                    let more = self.deliver_local(envelope);
                    self.route(more);
                }
            }
            PeerFrame::Forward { id, request } => {
                self.serve(request, Waiter::Remote { node: from, id })
            }
            PeerFrame::ForwardReply { id, reply } => {
                if let ClientReply::NotLeader {
                    shard,
                    leader: Some(leader),
                } = &reply
                {
                    self.leader_hints.insert(*shard, *leader);
                }
                if let Some((waiter, _)) = self.forwarded.remove(&id) {
                    self.reply(waiter, reply);
                }
            }
            PeerFrame::MetaProposal(command) => {
                if self.meta.group.is_leader() {
                    self.propose_meta(command);
                }
            }
        }
    }
}

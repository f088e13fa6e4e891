//! The Ready loop with group commit, and the routing of protocol messages between shard leaders.

use std::collections::VecDeque;

use super::group::Every;

use protobuf::Message as _;
use raft::prelude::{Entry, Message, Snapshot};
use raft::ReadState;
use tuma_actors::protocol::Envelope;

use super::group::RaftGroup;
use super::meta_group::MetaGroup;
use super::reads::Answer;
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

/// The engine's apply observer, if any.
pub(super) type Observer<'a> = Option<&'a mut (dyn super::ApplyObserver + 'static)>;

/// A Raft group with a state machine, as the Ready loop sees it.
pub(super) trait Machine {
    fn group(&mut self) -> &mut RaftGroup;
    /// Replaces the state machine with a leader's snapshot.
    fn install(&mut self, snapshot: &Snapshot) -> Result<Vec<WriteOp>, EngineError>;
    fn apply(&mut self, entries: Vec<Entry>, now_ms: u64, observer: Observer<'_>) -> ApplyOutput;
    /// Read indexes raft-rs confirmed (only shard replicas serve reads).
    fn confirm_reads(&mut self, _states: &[ReadState]) {}
}

impl Machine for Replica {
    fn group(&mut self) -> &mut RaftGroup {
        &mut self.group
    }
    fn confirm_reads(&mut self, states: &[ReadState]) {
        Replica::confirm_reads(self, states)
    }
    fn install(&mut self, snapshot: &Snapshot) -> Result<Vec<WriteOp>, EngineError> {
        self.install_snapshot(snapshot)
    }
    fn apply(&mut self, entries: Vec<Entry>, now_ms: u64, observer: Observer<'_>) -> ApplyOutput {
        self.apply_entries(entries, now_ms, observer)
    }
}

impl Machine for MetaGroup {
    fn group(&mut self) -> &mut RaftGroup {
        &mut self.group
    }
    fn install(&mut self, snapshot: &Snapshot) -> Result<Vec<WriteOp>, EngineError> {
        self.install_snapshot(snapshot).map(|op| vec![op])
    }
    fn apply(&mut self, entries: Vec<Entry>, _now_ms: u64, _observer: Observer<'_>) -> ApplyOutput {
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
    observer: Observer<'_>,
) -> Result<Option<StagedReady>, StorageError> {
    if !machine.group().raw.has_ready() {
        return Ok(None);
    }
    let mut ready = machine.group().raw.ready();
    let early = ready.take_messages();
    if !ready.read_states().is_empty() {
        machine.confirm_reads(ready.read_states());
    }
    if !ready.snapshot().is_empty() {
        let snapshot = ready.snapshot().clone();
        let ops = machine
            .install(&snapshot)
            .map_err(|error| StorageError::Mismatch(error.to_string()))?;
        batch.ops.extend(ops);
        output.meta_changed |= machine.group().id == META_GROUP;
    }
    output.extend(machine.apply(ready.take_committed_entries(), now_ms, observer));
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
    }
    if ready.hs().is_some() || group.take_commit_advanced() {
        // The commit index is persisted with the hard state whenever it advances (a single
        // voter advances it only in light Readies), so a restart never finds a checkpoint
        // ahead of the persisted commit.
        batch.ops.push(WriteOp::HardState {
            shard: group.id,
            state: group.log.hard_state(),
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
    observer: Observer<'_>,
) -> Vec<Message> {
    let StagedReady { mut ready, .. } = staged;
    let mut sends = ready.take_persisted_messages();
    let group = machine.group();
    let mut light = group.raw.advance(ready);
    if let Some(commit) = light.commit_index() {
        group.log.set_commit(commit);
        group.commit_advanced();
    }
    sends.extend(light.take_messages());
    let committed = light.take_committed_entries();
    output.extend(machine.apply(committed, now_ms, observer));
    machine.group().raw.advance_apply();
    sends
}

fn hard_state_op(group: &RaftGroup) -> WriteOp {
    WriteOp::HardState {
        shard: group.id,
        state: group.log.hard_state(),
    }
}

impl Engine {
    fn send_raft(&mut self, shard: u32, messages: Vec<Message>) {
        for message in messages {
            let to = message.to;
            if message.get_msg_type() == raft::prelude::MessageType::MsgSnapshot {
                // Never whole: its data streams from the stored checkpoint (and history).
                let now = self.clock.monotonic_ms();
                let (store, replica) = (self.store.as_ref(), self.replicas.get(&shard));
                let history = || match replica {
                    Some(replica) => replica.history_for_snapshot(store),
                    None => Ok(super::snapshots::History::None),
                };
                if let Err(error) = self.snapshots.start(shard, message, history, now) {
                    tracing::error!(shard, to, %error, "cannot read the history a snapshot needs");
                    self.report_snapshot(shard, to, raft::SnapshotStatus::Failure);
                }
                continue;
            }
            if message.get_msg_type() == raft::prelude::MessageType::MsgAppend
                && !self.network.is_connected(to)
            {
                self.report_unreachable(shard, to);
            }
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

    /// Tells a group's raft-rs that an append to `peer` went to a link that is down, so it
    /// stops pipelining entries to it (Replicate → Probe: one append per heartbeat answer).
    /// Without it a leader queues every new entry for a dead follower on the transport, which
    /// delivers them all when the follower returns — a bulk import's worth of stale appends
    /// held in memory, and a follower that should have got a snapshot of the compacted log
    /// replays the queue instead.
    fn report_unreachable(&mut self, group: u32, peer: NodeId) {
        if let Some(raft_group) = self.led_group_mut(group) {
            raft_group.raw.report_unreachable(peer);
            metrics::counter!("tuma_raft_unreachable_reports_total").increment(1);
        }
    }

    /// One pass over every group with a Ready (the meta group and each shard replica): one
    /// write batch, one fsync, then the sends and applies raft-rs allows only after persistence.
    pub(super) fn process_readies(&mut self) -> Result<(), StorageError> {
        let now_ms = self.now_ms();
        // Every leader's proposals of this loop into its log, one batch entry each.
        for replica in self.replicas.values_mut() {
            replica.flush_proposals(now_ms);
        }
        let mut batch = WriteBatch::default();
        let mut output = ApplyOutput::default();
        let mut meta_ready = stage(&mut self.meta, &mut batch, &mut output, now_ms, None)?;
        if let Some(staged) = meta_ready.as_mut() {
            self.send_raft(META_GROUP, std::mem::take(&mut staged.early));
        }
        let mut pending = Vec::new();
        let shards: Vec<u32> = self.replicas.keys().copied().collect();
        for shard in &shards {
            let replica = self.replicas.get_mut(shard).expect("listed");
            let observer = self.observer.as_deref_mut();
            if let Some(mut staged) = stage(replica, &mut batch, &mut output, now_ms, observer)? {
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
            let sends = complete(&mut self.meta, ready, &mut output, now_ms, None);
            self.send_raft(META_GROUP, sends);
        }
        for (shard, ready) in pending {
            let replica = self.replicas.get_mut(&shard).expect("listed");
            let observer = self.observer.as_deref_mut();
            let sends = complete(replica, ready, &mut output, now_ms, observer);
            self.send_raft(shard, sends);
        }
        self.write_history(&mut output)?;
        self.meta.group.step_down_if_removed();
        for replica in self.replicas.values_mut() {
            replica.group.step_down_if_removed();
        }
        output.replies.extend(self.meta.on_role_change());
        self.follow_roles(&mut output);
        self.checkpoint()?;
        if output.meta_changed {
            self.on_meta_changed();
        }
        self.collect_removed_replicas()?;
        self.finish(output);
        self.pump_snapshots()
    }

    /// Writes the history rows this pass's applies emitted, before any read answers and before
    /// any checkpoint that covers their entries is written (whose fsync makes them durable;
    /// rows of entries after the last checkpoint are written again when a restart replays them).
    fn write_history(&mut self, output: &mut ApplyOutput) -> Result<(), StorageError> {
        if output.history.is_empty() {
            return Ok(());
        }
        let ops = std::mem::take(&mut output.history)
            .into_iter()
            .map(|shard_rows| WriteOp::History {
                shard: shard_rows.shard,
                rows: shard_rows.rows,
                audit_log: shard_rows.audit_log,
            })
            .collect();
        self.store.write_unsynced(WriteBatch { ops })
    }

    /// Sends the snapshot chunks the streams' windows allow; tells raft-rs of streams that
    /// failed.
    fn pump_snapshots(&mut self) -> Result<(), StorageError> {
        let now = self.clock.monotonic_ms();
        let (meta, replicas) = (&self.meta, &self.replicas);
        let leads = |group: u32| {
            if group == META_GROUP {
                meta.group.is_leader()
            } else {
                replicas.get(&group).is_some_and(|r| r.is_leader())
            }
        };
        let pumped = self.snapshots.pump(self.store.as_ref(), now, leads)?;
        for (to, frame) in pumped.frames {
            self.send_frame(to, frame);
        }
        for (group, peer, status) in pumped.reports {
            self.report_snapshot(group, peer, status);
        }
        Ok(())
    }

    /// Tells a group's raft-rs how a snapshot to `peer` went.
    pub(super) fn report_snapshot(
        &mut self,
        group: u32,
        peer: NodeId,
        status: raft::SnapshotStatus,
    ) {
        if let Some(raft_group) = self.led_group_mut(group) {
            raft_group.raw.report_snapshot(peer, status);
        }
    }

    /// The Raft group `group` (the meta group or a shard replica), if this node leads it.
    fn led_group_mut(&mut self, group: u32) -> Option<&mut RaftGroup> {
        let raft_group = if group == META_GROUP {
            Some(&mut self.meta.group)
        } else {
            self.replicas.get_mut(&group).map(|r| &mut r.group)
        };
        raft_group.filter(|g| g.is_leader())
    }

    /// Starts and stops drivers as replicas become (ready) leaders or lose leadership, answers
    /// the reads that are now applied, and stops the account actors of shards no longer led.
    fn follow_roles(&mut self, output: &mut ApplyOutput) {
        let mut lost = Vec::new();
        let may_lead = self.may_lead();
        let now_ms = self.now_ms();
        let store = self.store.as_ref();
        for (shard, replica) in self.replicas.iter_mut() {
            if let Some(replies) = replica.follow_role(may_lead) {
                output.replies.extend(replies);
                lost.push(*shard);
            }
            let (reads, effects) = replica.answer_reads(now_ms);
            output.envelopes.extend(effects.send);
            for command in effects.propose {
                let _ = replica.propose(command, None, now_ms);
            }
            for (waiter, answer) in reads {
                match answer {
                    Answer::Now(reply) => output.replies.push((waiter, reply)),
                    Answer::FromHistory(query) => {
                        if let Some(answered) = self.history_reads.submit(query, waiter, store) {
                            output.replies.push(answered);
                        }
                    }
                }
            }
        }
        if !lost.is_empty() {
            let map = self.map;
            self.actors
                .stop_shard(|account| lost.contains(&map.shard_of(account)));
        }
    }

    /// Writes the checkpoints that are due, each with its group's hard state, so the persisted
    /// commit index is never behind a checkpoint (a restart would refuse such a log).
    fn checkpoint(&mut self) -> Result<(), StorageError> {
        let started = std::time::Instant::now();
        let mut batch = WriteBatch::default();
        let every = Every {
            entries: self.config.checkpoint_every_entries,
            bytes: self.config.checkpoint_every_bytes,
            keep_bytes: self.config.log_keep_bytes,
        };
        let keep = self.config.log_keep_entries;
        let meta_every = Every {
            entries: every.entries.min(META_CHECKPOINT_EVERY),
            ..every
        };
        if let Some(op) = self.meta.maybe_checkpoint(meta_every, keep) {
            batch.ops.push(op);
            batch.ops.push(hard_state_op(&self.meta.group));
        }
        for replica in self.replicas.values_mut() {
            if let Some(op) = replica.maybe_checkpoint(every, keep) {
                batch.ops.push(op);
                batch.ops.push(hard_state_op(&replica.group));
            }
        }
        if !batch.is_empty() {
            self.store.write(batch)?;
            metrics::histogram!("tuma_checkpoint_seconds").record(started.elapsed().as_secs_f64());
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

    /// Delivers protocol messages: to a local serving leader directly, else to the shard's
    /// leader (or every replica of it when the leader is unknown). Lost messages are resent by
    /// drivers.
    pub(super) fn route(&mut self, envelopes: Vec<Envelope>) {
        let mut queue: VecDeque<Envelope> = envelopes.into();
        let mut delivered = 0;
        while let Some(envelope) = queue.pop_front() {
            if let Some(observer) = self.observer.as_mut() {
                observer.protocol_sent(&envelope);
            }
            let to = envelope.to;
            let local = self.replicas.get(&to).is_some_and(|r| r.takes_protocol());
            if local && delivered < LOCAL_DELIVERIES_MAX {
                delivered += 1;
                queue.extend(self.deliver_local(envelope));
                continue;
            }
            let me = self.config.node_id;
            // A replica here knows the leader only while it is a member of its group (a
            // removed one may remember a leader long gone).
            let leader = self
                .replicas
                .get(&to)
                .filter(|r| r.group.in_configuration(me))
                .and_then(|r| r.leader())
                .filter(|l| *l != me);
            // A hint names a node that led the shard once; it must still hold a replica (a
            // holder that no longer leads passes the message on to the leader it knows).
            let holders = self.shard_holders(to);
            let hint = self
                .router
                .hint(to)
                .filter(|n| holders.contains(n) && self.network.is_connected(*n));
            let targets: Vec<NodeId> = match leader.or(hint) {
                Some(leader) => vec![leader],
                None => holders.into_iter().filter(|n| *n != me).collect(),
            };
            for node in targets {
                self.send_frame(node, PeerFrame::Protocol(envelope.clone()));
            }
        }
    }

    /// Hands a protocol message to a local leader's driver; returns messages it sends on.
    fn deliver_local(&mut self, envelope: Envelope) -> Vec<Envelope> {
        if !self.may_lead() {
            return Vec::new();
        }
        let now_ms = self.now_ms();
        let Some(replica) = self.replicas.get_mut(&envelope.to) else {
            return Vec::new();
        };
        let effects = replica.on_protocol(&envelope, now_ms);
        for command in effects.propose {
            let _ = replica.propose(command, None, now_ms);
        }
        effects.send
    }

    /// Ticks every serving replica's driver: resends, sweeps, inquiries.
    pub(super) fn drive_protocol(&mut self) {
        if !self.may_lead() {
            return;
        }
        let now_ms = self.now_ms();
        let retire_after_ms = self.config.idempotency_window_ms + self.config.retire_grace_ms;
        let mut envelopes = Vec::new();
        for replica in self.replicas.values_mut() {
            let effects = replica.drive(now_ms, retire_after_ms);
            envelopes.extend(effects.send);
            for command in effects.propose {
                let _ = replica.propose(command, None, now_ms);
            }
        }
        self.route(envelopes);
    }

    /// A frame from peer `from` (the node its connection authenticated as). Frames that claim
    /// to speak for another node, or for a shard the sender holds no replica of, are dropped.
    pub(super) fn on_peer(&mut self, from: NodeId, frame: PeerFrame) {
        match frame {
            PeerFrame::Raft { shard, message } => self.step_raft(from, shard, &message),
            PeerFrame::Protocol(envelope) => self.on_protocol(from, envelope, true),
            PeerFrame::ProtocolRelayed(envelope) => self.on_protocol(from, envelope, false),
            PeerFrame::Forward { id, request } => {
                self.serve(request, Waiter::Remote { node: from, id })
            }
            PeerFrame::ForwardReply { id, reply } => {
                if let ClientReply::NotLeader {
                    shard,
                    leader: Some(leader),
                } = &reply
                {
                    self.router.learn(*shard, *leader);
                }
                match self.router.answered(id, from, &reply) {
                    Some(waiter) => self.reply(waiter, reply),
                    None => tracing::debug!(
                        from,
                        id,
                        "an answer to no forward of ours (late, or from another node)"
                    ),
                }
            }
            PeerFrame::MetaProposal(command) => {
                if self.meta.group.is_ready_leader() {
                    self.propose_meta(command);
                }
            }
            PeerFrame::Tombstone {
                shard,
                conf_index,
                conf_term,
            } => self.on_tombstone(from, shard, conf_index, conf_term),
            PeerFrame::ReplicaQuery { shard } => {
                // Any replica answers from its applied (so committed) configuration, not only
                // the leader: the asker may not know the node that leads the group now.
                let unwanted = self
                    .replicas
                    .get(&shard)
                    .filter(|r| r.group.is_initialized() && !r.group.in_configuration(from))
                    .map(|r| r.group.conf_index());
                if let Some((conf_index, conf_term)) = unwanted {
                    self.send_frame(
                        from,
                        PeerFrame::Tombstone {
                            shard,
                            conf_index,
                            conf_term,
                        },
                    );
                }
            }
            PeerFrame::ClockPing { mono_ms } => {
                self.send_frame(
                    from,
                    PeerFrame::ClockPong {
                        echo_mono_ms: mono_ms,
                        wall_ms: self.clock.wall_ms(),
                    },
                );
                // Every node pings the members it knows: a removed one learns it here.
                if let Some((conf_index, conf_term)) = self.removed_member_asking(from) {
                    self.send_frame(
                        from,
                        PeerFrame::Tombstone {
                            shard: crate::membership::META_GROUP,
                            conf_index,
                            conf_term,
                        },
                    );
                }
            }
            PeerFrame::SnapshotChunk {
                shard,
                stream,
                header,
                index,
                offset,
                total,
                data,
            } => {
                let now = self.clock.monotonic_ms();
                let received = self
                    .snapshots
                    .on_chunk(from, shard, stream, header, index, offset, total, data, now);
                if let Some(message) = received.message {
                    self.step_raft_message(from, shard, message);
                }
                if let Some(ack) = received.ack {
                    self.send_frame(from, ack);
                }
            }
            PeerFrame::SnapshotAck {
                shard,
                stream,
                index,
                received,
                done,
            } => {
                let now = self.clock.monotonic_ms();
                if let Some((group, peer, status)) = self
                    .snapshots
                    .on_ack(from, shard, stream, index, received, done, now)
                {
                    self.report_snapshot(group, peer, status);
                }
            }
            PeerFrame::ClockPong {
                echo_mono_ms,
                wall_ms,
            } => {
                let now = self.clock.monotonic_ms();
                self.peer_clocks.record(from, echo_mono_ms, wall_ms, now);
            }
        }
    }

    /// A protocol message from node `from`: handled if this node serves its shard; otherwise
    /// (if `relay`) passed on once to the leader a member replica here knows — the sender's
    /// idea of the leader was stale.
    fn on_protocol(&mut self, from: NodeId, envelope: Envelope, relay: bool) {
        if !self.holds_or_held(envelope.from, from) && relay {
            tracing::warn!(
                from,
                shard = envelope.from,
                "protocol message from a node that holds no replica of its shard; dropped"
            );
            metrics::counter!("tuma_engine_frames_refused_total").increment(1);
            return;
        }
        let me = self.config.node_id;
        match self.replicas.get(&envelope.to) {
            Some(replica) if replica.takes_protocol() => {
                let more = self.deliver_local(envelope);
                self.route(more);
            }
            Some(replica) if relay && replica.group.in_configuration(me) => {
                if let Some(leader) = replica.leader().filter(|l| *l != me && *l != from) {
                    self.send_frame(leader, PeerFrame::ProtocolRelayed(envelope));
                }
            }
            _ => {}
        }
    }

    /// Whether `node` holds (or is receiving, or recently held) a replica of `shard` by the
    /// cluster state. Before the cluster state is known every member is believed.
    fn holds_or_held(&self, shard: u32, node: NodeId) -> bool {
        if node == self.config.node_id {
            return true;
        }
        match self.meta.meta.as_ref() {
            Some(meta) => shard < meta.shards && meta.may_hold(shard, node),
            None => true,
        }
    }
}

//! The Ready loop with group commit, and the routing of protocol messages between shard leaders.

use std::collections::VecDeque;

use protobuf::Message as _;
use raft::prelude::Message;
use tuma_actors::protocol::Envelope;

use super::replica::ApplyOutput;
use super::{ClientReply, Engine, Waiter};
use crate::storage::{StorageError, WriteBatch, WriteOp};
use crate::transport::NodeId;
use crate::wire::PeerFrame;

/// Most protocol messages delivered locally in one pass (bounds a pass's work).
const LOCAL_DELIVERIES_MAX: usize = 100_000;

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

    /// One pass over every replica with a Ready: one write batch, one fsync, then the sends
    /// and applies raft-rs allows only after persistence.
    pub(super) fn process_readies(&mut self) -> Result<(), StorageError> {
        let now_ms = self.now_ms();
        let mut batch = WriteBatch::default();
        let mut pending = Vec::new();
        let mut output = ApplyOutput::default();
        let shards: Vec<u32> = self.replicas.keys().copied().collect();
        for shard in &shards {
            let replica = self.replicas.get_mut(shard).expect("listed");
            if !replica.raw.has_ready() {
                continue;
            }
            let mut ready = replica.raw.ready();
            let messages = ready.take_messages();
            if !ready.snapshot().is_empty() {
                let snapshot = ready.snapshot().clone();
                match replica.install_snapshot(&snapshot) {
                    Ok(op) => batch.ops.push(op),
                    Err(error) => return Err(StorageError::Mismatch(error.to_string())),
                }
            }
            output.extend(replica.apply_entries(ready.take_committed_entries(), now_ms));
            if !ready.entries().is_empty() {
                let old_last = replica.log.append(ready.entries());
                batch.ops.push(WriteOp::Append {
                    shard: *shard,
                    entries: ready.entries().clone(),
                    old_last,
                });
            }
            if let Some(hard_state) = ready.hs() {
                replica.log.set_hard_state(hard_state.clone());
                batch.ops.push(WriteOp::HardState {
                    shard: *shard,
                    state: hard_state.clone(),
                });
            }
            self.send_raft(*shard, messages);
            pending.push((*shard, ready));
        }
        for shard in &shards {
            let replica = self.replicas.get_mut(shard).expect("listed");
            if replica.fresh {
                replica.fresh = false;
                batch.ops.push(WriteOp::ConfState {
                    shard: *shard,
                    state: replica.log.conf_state(),
                });
            }
        }
        if !batch.is_empty() {
            self.store.write(batch)?;
            metrics::counter!("tuma_storage_fsyncs_total").increment(1);
        }
        for (shard, mut ready) in pending {
            let persisted = ready.take_persisted_messages();
            self.send_raft(shard, persisted);
            let replica = self.replicas.get_mut(&shard).expect("listed");
            let mut light = replica.raw.advance(ready);
            if let Some(commit) = light.commit_index() {
                replica.log.set_commit(commit);
            }
            let messages = light.take_messages();
            output.extend(replica.apply_entries(light.take_committed_entries(), now_ms));
            replica.raw.advance_apply();
            self.send_raft(shard, messages);
        }
        self.notice_role_changes(&mut output);
        self.checkpoint()?;
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
            let targets: Vec<NodeId> = match leader {
                Some(leader) => vec![leader],
                None => self
                    .placement
                    .replicas_of(to)
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
            PeerFrame::Raft { shard, message } => {
                let Some(replica) = self.replicas.get_mut(&shard) else {
                    return;
                };
                match Message::parse_from_bytes(&message) {
                    Ok(message) => {
                        if let Err(error) = replica.raw.step(message) {
                            tracing::debug!(shard, %error, "raft step refused a message");
                        }
                    }
                    Err(error) => tracing::warn!(from, shard, %error, "undecodable raft message"),
                }
            }
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
                if let Some((waiter, _)) = self.forwarded.remove(&id) {
                    self.reply(waiter, reply);
                }
            }
        }
    }
}

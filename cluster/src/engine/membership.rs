//! The engine's side of elastic membership: stepping Raft messages into the right group
//! (creating a replica the cluster state says this node is receiving), following the cluster
//! state (peer links, dropping replicas moved away), the rebalancer on the meta leader, each
//! group leader's configuration changes, and handing leaderships away before a stop.

use std::time::Instant;

use protobuf::Message as _;
use raft::prelude::{ConfChangeType, Message, MessageType};

use super::group::GroupStart;
use super::replica::Replica;
use super::request::{ClientReply, Waiter};
use super::Engine;
use crate::membership::{
    next_step, plan, ConfStep, MemberState, MetaCommand, MetaOutcome, META_GROUP,
};
use crate::storage::{WriteBatch, WriteOp};
use crate::transport::NodeId;
use crate::wire::PeerFrame;

/// A stop in progress: leaderships are being handed away.
pub(super) struct Leaving {
    pub deadline: Instant,
    pub reply: Option<tokio::sync::oneshot::Sender<usize>>,
}

impl Engine {
    /// Steps a Raft message into its group. A message for a shard this node holds no replica
    /// of creates an empty one if the cluster state says this node is receiving it (the
    /// leader's snapshot follows); anything else is dropped.
    pub(super) fn step_raft(&mut self, from: NodeId, group: u32, bytes: &[u8]) {
        let message = match Message::parse_from_bytes(bytes) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(from, group, %error, "undecodable raft message");
                return;
            }
        };
        if self.leaving.is_some() && message.get_msg_type() == MessageType::MsgTimeoutNow {
            return; // a stopping node takes no leadership
        }
        let raw = if group == META_GROUP {
            &mut self.meta.group.raw
        } else {
            if !self.replicas.contains_key(&group) && !self.create_replica(group) {
                return;
            }
            &mut self.replicas.get_mut(&group).expect("present").group.raw
        };
        if let Err(error) = raw.step(message) {
            tracing::debug!(group, %error, "raft step refused a message");
        }
    }

    /// Creates an empty replica of `shard` if this node is meant to receive one.
    fn create_replica(&mut self, shard: u32) -> bool {
        let me = self.config.node_id;
        let wanted = self
            .meta
            .meta
            .as_ref()
            .is_some_and(|m| shard < m.shards && m.may_hold(shard, me));
        if !wanted {
            return false;
        }
        match Replica::open(&self.config, self.map, shard, GroupStart::Uninitialized) {
            Ok((replica, _)) => {
                tracing::info!(shard, "receiving a new replica");
                self.replicas.insert(shard, replica);
                true
            }
            Err(error) => {
                tracing::error!(shard, %error, "cannot create a replica");
                false
            }
        }
    }

    /// Follows the cluster state: links to every member, and destroys replicas that were moved
    /// away from this node.
    pub(super) fn on_meta_changed(&mut self) {
        let Some(meta) = self.meta.meta.as_ref() else {
            return;
        };
        let me = self.config.node_id;
        // Links stay up to removed members too: one that still runs may forward requests as a
        // plain gateway and needs their answers (it holds no replica, so nothing else goes there).
        for (&id, member) in &meta.members {
            self.transport.add_peer(id, member.peer_addr);
        }
        if meta.state_of(me) == Some(MemberState::Removed) && !self.removed {
            self.removed = true;
            tracing::warn!(
                "this node was removed from the cluster; it holds no replicas and can be stopped"
            );
        }
        // After a restart the cluster state starts from its last checkpoint, older than the
        // moves that brought some replicas here: destroy nothing until it has replayed the
        // meta entries this node knew committed.
        if self.meta.group.applied < self.meta_replayed_to {
            return;
        }
        let gone: Vec<u32> = self
            .replicas
            .iter()
            .filter(|(shard, r)| !meta.may_hold(**shard, me) && !r.is_leader())
            .map(|(shard, _)| *shard)
            .collect();
        if gone.is_empty() {
            return;
        }
        let mut batch = WriteBatch::default();
        for shard in gone {
            let mut replica = self.replicas.remove(&shard).expect("listed");
            let not_leader = ClientReply::NotLeader {
                shard,
                leader: replica.leader(),
            };
            let waiters: Vec<Waiter> = replica
                .transfer_waiters
                .drain()
                .flat_map(|(_, w)| w)
                .chain(replica.tagged.drain().map(|(_, w)| w))
                .collect();
            for waiter in waiters {
                self.reply(waiter, not_leader.clone());
            }
            let map = self.map;
            self.actors
                .stop_shard(|account| map.shard_of(account) == shard);
            batch.ops.push(WriteOp::Destroy { shard });
            tracing::info!(shard, "replica moved away; removed from this node");
            metrics::counter!("tuma_replicas_removed_total").increment(1);
        }
        if let Err(error) = self.store.write(batch) {
            tracing::error!(%error, "storage write failed; stopping the node");
            std::process::exit(70);
        }
    }

    /// The nodes that hold (or are receiving) `shard`, preferred leader first.
    pub(super) fn shard_holders(&self, shard: u32) -> Vec<NodeId> {
        let Some(meta) = self.meta.meta.as_ref() else {
            return Vec::new();
        };
        let mut holders = meta.desired(shard).to_vec();
        for n in meta.placement.get(shard as usize).into_iter().flatten() {
            if !holders.contains(n) {
                holders.push(*n);
            }
        }
        holders
    }

    /// Where to send a request for `shard` this node does not lead: the leader its replica
    /// knows, else a leader another node named (if reachable), else the next reachable holder
    /// of the shard in turn (a holder that does not lead names the leader in its answer).
    pub(super) fn leader_guess(&mut self, shard: u32) -> Option<NodeId> {
        let me = self.config.node_id;
        let known = if shard == META_GROUP {
            self.meta.group.leader()
        } else {
            self.replicas.get(&shard).and_then(|r| r.leader())
        };
        if let Some(leader) = known.filter(|n| *n != me) {
            return Some(leader);
        }
        if let Some(&hint) = self.leader_hints.get(&shard) {
            if hint != me && self.transport.is_connected(hint) {
                return Some(hint);
            }
            self.leader_hints.remove(&shard);
        }
        let candidates: Vec<NodeId> = if shard == META_GROUP {
            let meta = self.meta.meta.as_ref()?;
            meta.live_members()
        } else {
            self.shard_holders(shard)
        };
        let candidates: Vec<NodeId> = candidates.into_iter().filter(|n| *n != me).collect();
        let reachable: Vec<NodeId> = candidates
            .iter()
            .copied()
            .filter(|n| self.transport.is_connected(*n))
            .collect();
        let pool = if reachable.is_empty() {
            candidates
        } else {
            reachable
        };
        self.guess_turn = self.guess_turn.wrapping_add(1);
        pool.get(self.guess_turn % pool.len().max(1)).copied()
    }

    /// Serves a cluster change: the meta leader proposes it; others forward it there.
    pub(super) fn serve_meta(&mut self, command: MetaCommand, waiter: Waiter) {
        if !self.meta.group.is_leader() {
            let leader = self.leader_guess(META_GROUP);
            return match (leader, &waiter) {
                (Some(leader), Waiter::Local(_)) => {
                    self.forward(leader, super::ClientRequest::Meta { command }, waiter)
                }
                _ => self.reply(
                    waiter,
                    ClientReply::NotLeader {
                        shard: META_GROUP,
                        leader,
                    },
                ),
            };
        }
        let tag = self.next_proposal_tag;
        self.next_proposal_tag += 1;
        let now_ms = self.now_ms();
        match self.meta.propose(command, Some(tag), now_ms) {
            Ok(()) => {
                self.meta.tagged.insert(tag, waiter);
            }
            Err(error) => self.reply(
                waiter,
                ClientReply::Meta(MetaOutcome::Refused(format!("not proposed: {error}"))),
            ),
        }
    }

    /// Proposes a cluster change without waiting for it (from a shard leader or the
    /// rebalancer); lost proposals are made again on a later pass.
    pub(super) fn propose_meta(&mut self, command: MetaCommand) {
        if self.meta.group.is_leader() {
            let now_ms = self.now_ms();
            let _ = self.meta.propose(command, None, now_ms);
        } else if let Some(leader) = self.meta.group.leader() {
            self.send_frame(leader, PeerFrame::MetaProposal(command));
        }
    }

    /// A few times a second: the meta leader keeps the meta group's configuration equal to
    /// the live members and runs the rebalancer; every group leader steps its configuration
    /// towards the cluster state; a stopping node hands its leaderships away.
    pub(super) fn membership_pass(&mut self) {
        if self.leaving.is_some() {
            return self.hand_over_leaderships();
        }
        let Some(meta) = self.meta.meta.clone() else {
            return;
        };
        if self.meta.group.is_leader() {
            let desired = meta.live_members();
            self.reconcile_meta(&desired);
            let applied = self.meta.group.applied;
            if applied >= self.rebalance_after_index {
                let commands = plan(&meta, self.config.plan_limits, self.now_ms());
                if !commands.is_empty() {
                    for command in commands {
                        tracing::info!(?command, "rebalancer");
                        self.propose_meta(command);
                    }
                    self.rebalance_after_index = self.meta.group.raw.raft.raft_log.last_index();
                }
            }
        }
        let led: Vec<u32> = self
            .replicas
            .iter()
            .filter(|(_, r)| r.is_leader())
            .map(|(s, _)| *s)
            .collect();
        for shard in led {
            let desired = meta.desired(shard).to_vec();
            let replica = self.replicas.get_mut(&shard).expect("listed");
            let step = next_step(&desired, &replica.group.view());
            match step {
                ConfStep::Reached => {
                    let moving = meta.moves.get(&shard);
                    if moving.is_some_and(|m| m.target == desired) {
                        self.propose_meta(MetaCommand::FinishMove {
                            shard,
                            replicas: desired,
                        });
                    }
                }
                step => apply_step(&mut replica.group, shard, step),
            }
        }
    }

    fn reconcile_meta(&mut self, desired: &[NodeId]) {
        let step = next_step(desired, &self.meta.group.view());
        if step != ConfStep::Reached {
            apply_step(&mut self.meta.group, META_GROUP, step);
        }
    }

    /// Transfers every leadership to a caught-up voter; answers the waiting stop once none is
    /// left or time is up.
    fn hand_over_leaderships(&mut self) {
        let me = self.config.node_id;
        let mut leading = 0;
        let mut groups: Vec<(u32, &mut super::group::RaftGroup)> = self
            .replicas
            .iter_mut()
            .map(|(s, r)| (*s, &mut r.group))
            .collect();
        groups.push((META_GROUP, &mut self.meta.group));
        for (_, group) in groups {
            let voters = group.log.conf_state().voters;
            // A group with no other voter has nobody to hand over to (a one-node cluster).
            if !group.is_leader() || voters.iter().all(|n| *n == me) {
                continue;
            }
            leading += 1;
            if let Some(heir) = voters
                .iter()
                .find(|n| **n != me && group.caught_up(**n))
                .or_else(|| voters.iter().find(|n| **n != me))
            {
                group.raw.transfer_leader(*heir);
            }
        }
        let leaving = self.leaving.as_mut().expect("leaving");
        if leading == 0 || Instant::now() >= leaving.deadline {
            if let Some(reply) = leaving.reply.take() {
                tracing::info!(still_leading = leading, "leaderships handed over");
                let _ = reply.send(leading);
            }
        }
    }
}

/// Proposes one configuration step in a group this node leads.
fn apply_step(group: &mut super::group::RaftGroup, id: u32, step: ConfStep) {
    let result = match &step {
        ConfStep::Wait | ConfStep::Reached => return,
        ConfStep::TransferLeader(heir) => {
            group.raw.transfer_leader(*heir);
            Ok(())
        }
        ConfStep::AddLearner(node) => {
            group.propose_conf_change(vec![(*node, ConfChangeType::AddLearnerNode)])
        }
        ConfStep::RemoveLearner(node) => {
            group.propose_conf_change(vec![(*node, ConfChangeType::RemoveNode)])
        }
        ConfStep::Replace { promote, remove } => {
            let changes = promote
                .iter()
                .map(|n| (*n, ConfChangeType::AddNode))
                .chain(remove.iter().map(|n| (*n, ConfChangeType::RemoveNode)))
                .collect();
            group.propose_conf_change(changes)
        }
    };
    match result {
        Ok(()) => tracing::info!(group = id, ?step, "configuration step"),
        Err(error) => tracing::debug!(group = id, ?step, %error, "configuration step refused"),
    }
}

//! The engine's side of elastic membership: stepping Raft messages into the right group
//! (creating a replica the cluster state says this node is receiving), following the cluster
//! state (peer links), destroying a replica only once its own group removed this node, the
//! rebalancer on the meta leader, each group leader's configuration changes, and handing
//! leaderships away before a stop or while this node's clock is out of bounds.

use protobuf::Message as _;
use raft::prelude::{ConfChangeType, Message, MessageType};

use super::clock_check::ClockVerdict;
use super::group::GroupStart;
use super::replica::Replica;
use super::request::{ClientReply, Waiter};
use super::{Engine, EngineFault};
use crate::membership::{next_step, plan, ConfStep, MemberState, MetaCommand, META_GROUP};
use crate::storage::{StorageError, WriteBatch, WriteOp};
use crate::transport::NodeId;
use crate::wire::PeerFrame;

/// A stop in progress: leaderships are being handed away.
pub(super) struct Leaving {
    pub deadline_ms: u64,
    pub reply: Option<tokio::sync::oneshot::Sender<usize>>,
}

impl Engine {
    /// Steps a Raft message into its group. A message for a shard this node holds no replica
    /// of creates an empty one if the cluster state says this node is receiving it (the
    /// leader's snapshot follows); anything else is dropped. A message whose sender field is
    /// not the authenticated peer is dropped and logged; a message from a node this shard's
    /// leader no longer has in its configuration is answered with a tombstone.
    pub(super) fn step_raft(&mut self, from: NodeId, group: u32, bytes: &[u8]) {
        let message = match Message::parse_from_bytes(bytes) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(from, group, %error, "undecodable raft message");
                return;
            }
        };
        if message.get_msg_type() == MessageType::MsgSnapshot
            && message.get_snapshot().data.is_empty()
        {
            // Snapshots travel as streams (`snapshots/`); a bare one would install nothing.
            tracing::warn!(from, group, "a snapshot message without data; dropped");
            return;
        }
        self.step_raft_message(from, group, message);
    }

    /// Steps a decoded Raft message (one from the transport, or a snapshot whose stream
    /// completed) into its group; see [`Engine::step_raft`].
    pub(super) fn step_raft_message(&mut self, from: NodeId, group: u32, mut message: Message) {
        if message.from != from || message.to != self.config.node_id {
            tracing::warn!(
                from,
                claimed = message.from,
                to = message.to,
                group,
                "raft message not from its connection's peer (or not for this node); dropped"
            );
            metrics::counter!("tuma_engine_frames_refused_total").increment(1);
            return;
        }
        if !self.may_lead() && message.get_msg_type() == MessageType::MsgTimeoutNow {
            return; // a stopping node, or one whose clock is out of bounds, takes no leadership
        }
        let leading_without_sender = if group == META_GROUP {
            self.removed_member_asking(from)
        } else {
            self.replicas
                .get(&group)
                .filter(|r| r.is_leader() && !r.group.in_configuration(from))
                .map(|r| r.group.conf_index())
        };
        if let Some((conf_index, conf_term)) = leading_without_sender {
            self.send_frame(
                from,
                PeerFrame::Tombstone {
                    shard: group,
                    conf_index,
                    conf_term,
                },
            );
            return;
        }
        if group != META_GROUP && !self.replicas.contains_key(&group) && !self.create_replica(group)
        {
            return;
        }
        if group != META_GROUP && !self.empty_replica_takes(group, &mut message) {
            return;
        }
        if group != META_GROUP
            && matches!(
                message.get_msg_type(),
                MessageType::MsgAppend | MessageType::MsgHeartbeat | MessageType::MsgSnapshot
            )
        {
            let now = self.clock.monotonic_ms();
            if let Some(replica) = self.replicas.get_mut(&group) {
                replica.removal_mut().heard_leader(now);
            }
        }
        let rng = &mut self.rng;
        let raft_group = if group == META_GROUP {
            &mut self.meta.group
        } else {
            &mut self.replicas.get_mut(&group).expect("present").group
        };
        if let Err(error) = raft_group.raw.step(message) {
            tracing::debug!(group, %error, "raft step refused a message");
        }
        raft_group.randomize_election_timeout(rng);
    }

    /// What an empty replica (new, or made again after its group removed this node) may take:
    /// appends, which it can only refuse (that leads a leader adding it to send a snapshot);
    /// heartbeats stripped of their read context and commit (its answers keep a leader's
    /// probe going, but never confirm a read or commit anything); and a snapshot past its
    /// tombstone. Never a vote: it holds nothing, and a candidate whose configuration still
    /// counts it (from before its removal) must not win with its help — a stale leader elected
    /// with a destroyed replica's vote would overwrite committed entries.
    fn empty_replica_takes(&self, shard: u32, message: &mut Message) -> bool {
        let Some(replica) = self.replicas.get(&shard) else {
            return false;
        };
        if replica.group.is_initialized() {
            return true;
        }
        match message.get_msg_type() {
            MessageType::MsgAppend => true,
            MessageType::MsgHeartbeat => {
                message.commit = 0;
                message.context = Default::default();
                true
            }
            MessageType::MsgSnapshot => {
                let index = message.get_snapshot().get_metadata().index;
                let removed_at = self.tombstones.get(&shard).copied().unwrap_or(0);
                if index <= removed_at {
                    tracing::info!(
                        shard,
                        index,
                        removed_at,
                        "refused a snapshot from before this node's removal"
                    );
                }
                index > removed_at
            }
            _ => false,
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
        let incarnation = self.rng.next_u64();
        match Replica::open(
            &self.config,
            self.map,
            shard,
            GroupStart::Uninitialized,
            incarnation,
        ) {
            Ok((mut replica, _)) => {
                tracing::info!(shard, "receiving a new replica");
                replica.group.randomize_election_timeout(&mut self.rng);
                self.replicas.insert(shard, replica);
                true
            }
            Err(error) => {
                tracing::error!(shard, %error, "cannot create a replica");
                false
            }
        }
    }

    /// Follows the cluster state: links to every member, and notices this node's removal.
    pub(super) fn on_meta_changed(&mut self) {
        let Some(meta) = self.meta.meta.as_ref() else {
            return;
        };
        let me = self.config.node_id;
        // Links stay up to removed members too: one that still runs may forward requests as a
        // plain gateway and needs their answers (it holds no replica, so nothing else goes there).
        for (&id, member) in &meta.members {
            self.network.add_peer(id, member.peer_addr);
        }
        if meta.state_of(me) == Some(MemberState::Removed) && !self.removed {
            self.removed = true;
            tracing::warn!(
                "this node was removed from the cluster; it holds no replicas and can be stopped"
            );
        }
    }

    /// If this node leads the meta group and `from` is a member the cluster state removed: the
    /// meta configuration's (index, term) to put in a tombstone for it. A node removed from
    /// the meta group may never hear so (a learner never campaigns), and would otherwise go on
    /// leading shards by a frozen cluster state.
    pub(super) fn removed_member_asking(&self, from: NodeId) -> Option<(u64, u64)> {
        let meta = &self.meta.group;
        let removed = self
            .meta
            .meta
            .as_ref()
            .is_some_and(|m| m.state_of(from) == Some(MemberState::Removed));
        (meta.is_ready_leader() && removed && !meta.in_configuration(from))
            .then(|| meta.conf_index())
    }

    /// A shard's leader says its configuration, set by entry (`conf_index`, `conf_term`), no
    /// longer holds this node. If this replica's log holds that very entry, the logs agree up
    /// to it (Raft's log matching) and it is committed: commit it here too, so the replica
    /// applies its own removal. If the log ends before it, or diverged from it, nothing this
    /// replica holds was acknowledged after its removal: it may go. A tombstone for a point
    /// this replica has moved past (it was added back since) is stale and ignored.
    pub(super) fn on_tombstone(
        &mut self,
        from: NodeId,
        shard: u32,
        conf_index: u64,
        conf_term: u64,
    ) {
        if shard == META_GROUP {
            // Out of the meta group: this node's cluster state is frozen wherever it stopped
            // following, so it must not lead anything it might steer by it.
            if !self.meta.group.is_leader() && !self.outside_cluster {
                tracing::warn!(leader = from, conf_index, "this node is no longer in the meta group; it hands over every leadership and leads nothing");
                self.outside_cluster = true;
            }
            return;
        }
        let Some(replica) = self.replicas.get_mut(&shard) else {
            return;
        };
        if replica.is_leader() {
            return;
        }
        if !replica.group.is_initialized() {
            if !replica.group.has_promised() {
                replica.removal_mut().tombstone(conf_index);
            }
            return;
        }
        let group = &mut replica.group;
        let (first, last) = group.log.bounds();
        let held = group.log.term_of(conf_index);
        if conf_index > last {
            tracing::info!(
                shard,
                by = from,
                conf_index,
                "removed from the group (by a member's tombstone)"
            );
            replica.removal_mut().tombstone(conf_index);
        } else if conf_term != 0 && held == Some(conf_term) {
            if conf_index > group.raw.raft.raft_log.committed {
                group.raw.raft.raft_log.commit_to(conf_index);
                group.commit_advanced();
            }
        } else if conf_term != 0 && conf_index >= first && held.is_some() {
            tracing::info!(
                shard,
                by = from,
                conf_index,
                "removed from the group; this replica's tail diverged"
            );
            replica.removal_mut().tombstone(conf_index);
        }
    }

    /// Destroys the replicas their own group removed: an applied configuration without this
    /// node, or a tombstone from the group's leader. Never because the cluster state's
    /// placement changed or a move was cancelled: while the group counts this replica as a
    /// voter, destroying it would take a vote away from its quorum. (An empty replica that
    /// never received data or promised a vote is dropped once the cluster state no longer
    /// sends it here: it holds nothing.)
    pub(super) fn collect_removed_replicas(&mut self) -> Result<(), StorageError> {
        let me = self.config.node_id;
        let meta = self.meta.meta.as_ref();
        let placed_here = |shard: u32| match meta {
            Some(m) => m.may_hold(shard, me),
            None => true,
        };
        let planted = self.config.planted_fault == Some(EngineFault::DestroyOnPlacementChange);
        for (shard, r) in self.replicas.iter_mut() {
            let outside = r.group.is_initialized() && !r.group.in_configuration(me);
            if outside && r.removal_mut().first_note_outside() {
                tracing::info!(
                    shard,
                    leader = r.is_leader(),
                    applied = r.group.applied,
                    later_changes = r.group.log.conf_change_after(r.group.applied),
                    "this replica's configuration no longer has this node"
                );
            }
        }
        let gone: Vec<(u32, Option<u64>)> = self
            .replicas
            .iter()
            .filter_map(|(shard, r)| {
                if r.is_leader() {
                    return None;
                }
                let initialized = r.group.is_initialized();
                // Removed by a configuration it applied (so committed): entries after it in
                // its log were stored on a majority of the new voters too when they committed,
                // and no later quorum counts it — unless a later configuration change (it being
                // added back) follows in its log; then it waits to learn more.
                let removed_by_group = initialized
                    && !r.group.in_configuration(me)
                    && !r.group.log.conf_change_after(r.group.applied);
                let empty_and_unwanted =
                    !initialized && !r.group.has_promised() && !placed_here(*shard);
                let planted_fault = planted && !placed_here(*shard);
                let tombstoned = r.removal().tombstoned();
                let removed_at = r.group.applied.max(tombstoned.unwrap_or(0));
                if removed_by_group || planted_fault {
                    Some((*shard, Some(removed_at)))
                } else if tombstoned.is_some() {
                    Some((*shard, initialized.then_some(removed_at)))
                } else if empty_and_unwanted {
                    Some((*shard, None))
                } else {
                    None
                }
            })
            .collect();
        // A replica made again from a snapshot past its tombstone no longer needs it.
        let revived: Vec<u32> = self
            .tombstones
            .iter()
            .filter(|(shard, removed_at)| {
                self.replicas
                    .get(shard)
                    .is_some_and(|r| r.group.is_initialized() && r.group.applied > **removed_at)
            })
            .map(|(shard, _)| *shard)
            .collect();
        if gone.is_empty() && revived.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for shard in revived {
            self.tombstones.remove(&shard);
            batch.ops.push(WriteOp::ForgetTombstone { shard });
        }
        for (shard, removed_at) in gone {
            let mut replica = self.replicas.remove(&shard).expect("listed");
            let not_leader = ClientReply::NotLeader {
                shard,
                leader: replica.leader(),
            };
            for (waiter, reply) in replica.drain(not_leader) {
                self.reply(waiter, reply);
            }
            let map = self.map;
            self.actors
                .stop_shard(|account| map.shard_of(account) == shard);
            if let Some(index) = removed_at {
                let kept = self.tombstones.entry(shard).or_default();
                *kept = (*kept).max(index);
            }
            batch.ops.push(WriteOp::Destroy { shard, removed_at });
            tracing::info!(
                shard,
                ?removed_at,
                "replica removed from its group; destroyed on this node"
            );
            metrics::counter!("tuma_replicas_removed_total").increment(1);
        }
        self.store.write(batch)
    }

    /// A replica that has not heard from its group's leader for three election timeouts — a
    /// learner never campaigns, a node outside the cluster may hold stale ones — asks every
    /// member (every 2 s at most); any replica whose applied configuration no longer has it
    /// answers with a tombstone (the leader may be on a node the asker never heard of).
    fn query_silent_replicas(&mut self, now: u64) {
        let silent_ms = 3 * self.config.election_ticks as u64 * self.config.tick_ms;
        let me = self.config.node_id;
        let members: Vec<NodeId> = self
            .live_members()
            .into_iter()
            .filter(|n| *n != me)
            .collect();
        let mut queries = Vec::new();
        for (shard, replica) in self.replicas.iter_mut() {
            if replica.is_leader() {
                replica.removal_mut().heard_leader(now);
            }
            if replica.removal_mut().query_due(now, silent_ms) {
                queries.push(*shard);
            }
        }
        for shard in queries {
            for member in &members {
                self.send_frame(*member, PeerFrame::ReplicaQuery { shard });
            }
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

    /// Where to send a request for `shard` this node does not lead (see [`Router::guess`]).
    ///
    /// [`Router::guess`]: super::router::Router::guess
    pub(super) fn leader_guess(&mut self, shard: u32) -> Option<NodeId> {
        let known = if shard == META_GROUP {
            self.meta.group.leader()
        } else {
            self.replicas.get(&shard).and_then(|r| r.leader())
        };
        let candidates = if shard == META_GROUP {
            self.meta
                .meta
                .as_ref()
                .map(|m| m.live_members())
                .unwrap_or_default()
        } else {
            self.shard_holders(shard)
        };
        let network = &self.network;
        self.router
            .guess(shard, self.config.node_id, known, candidates, |n| {
                network.is_connected(n)
            })
    }

    /// Sends every live member a clock ping.
    pub(super) fn ping_clocks(&mut self, now_mono_ms: u64) {
        let me = self.config.node_id;
        for member in self.live_members().into_iter().filter(|n| *n != me) {
            self.send_frame(
                member,
                PeerFrame::ClockPing {
                    mono_ms: now_mono_ms,
                },
            );
        }
    }

    /// The verdict on this node's clock now, logged when it changes.
    pub(super) fn check_clock(&mut self) -> ClockVerdict {
        let members = self.live_members();
        let verdict = self.peer_clocks.verdict(
            &members,
            self.config.node_id,
            self.clock.monotonic_ms(),
            self.clock.wall_ms(),
        );
        if verdict != self.clock_verdict {
            match verdict {
                ClockVerdict::OutOfBounds { offset_ms } => tracing::error!(
                    offset_ms,
                    max_offset_ms = self.config.max_clock_offset_ms,
                    "this node's clock differs from its peers' by more than the bound: it refuses to lead until it is fixed"
                ),
                ClockVerdict::InBounds => tracing::info!("clock within bounds of the peers'; this node may lead"),
                ClockVerdict::Unknown => tracing::debug!("clock offset unknown (too few peers measured)"),
            }
            self.clock_verdict = verdict;
        }
        verdict
    }

    /// May this node lead now? Not while stopping, nor while its clock is not known to agree
    /// with a majority of the members. Judged afresh on every call: a wall clock can jump
    /// between two passes, and a proposal stamped in between would carry the jump.
    pub(super) fn may_lead(&self) -> bool {
        !self.outside_cluster && self.may_campaign()
    }

    /// May this node's followers start elections? Not while stopping or with its clock not
    /// known to agree with a majority. (A node outside the cluster still does: its pre-votes
    /// are how its stale replicas hear from their groups' leaders that they were removed.)
    pub(super) fn may_campaign(&self) -> bool {
        if self.leaving.is_some() {
            return false;
        }
        let members = self.live_members();
        let verdict = self.peer_clocks.verdict(
            &members,
            self.config.node_id,
            self.clock.monotonic_ms(),
            self.clock.wall_ms(),
        );
        verdict == ClockVerdict::InBounds
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
        if !self.meta.group.is_ready_leader() || !self.may_lead() {
            return self.reply(
                waiter,
                ClientReply::Unavailable("the meta leader is not ready to serve yet".into()),
            );
        }
        let tag = self.next_tag();
        let now_ms = self.now_ms();
        match self.meta.propose(command, Some(tag), now_ms) {
            Ok(()) => {
                self.meta.tagged.insert(tag, waiter);
            }
            // raft-rs drops proposals while leadership is being handed over: nothing was
            // done, and the caller retries (the change itself was not refused).
            Err(error) => self.reply(
                waiter,
                ClientReply::Unavailable(format!(
                    "the meta leader did not take the change: {error}"
                )),
            ),
        }
    }

    /// A fresh proposal tag.
    pub(super) fn next_tag(&mut self) -> u64 {
        self.next_proposal_tag += 1;
        self.next_proposal_tag
    }

    /// Proposes a cluster change without waiting for it (from a shard leader or the
    /// rebalancer); lost proposals are made again on a later pass.
    pub(super) fn propose_meta(&mut self, command: MetaCommand) {
        if self.meta.group.is_ready_leader() {
            let now_ms = self.now_ms();
            let _ = self.meta.propose(command, None, now_ms);
        } else if let Some(leader) = self
            .meta
            .group
            .leader()
            .filter(|l| *l != self.config.node_id)
        {
            self.send_frame(leader, PeerFrame::MetaProposal(command));
        }
    }

    /// A few times a second: the meta leader keeps the meta group's configuration equal to
    /// the live members and runs the rebalancer; every group leader steps its configuration
    /// towards the cluster state; a node that must not lead (stopping, or its clock out of
    /// bounds) hands its leaderships away.
    pub(super) fn membership_pass(&mut self) {
        self.check_clock();
        let now = self.clock.monotonic_ms();
        let retry = self.config.snapshot_retry_ms;
        let streams = &self.snapshots;
        for (shard, replica) in self.replicas.iter_mut() {
            let streaming = |peer| streams.sending(*shard, peer);
            replica.group.retry_stalled_snapshots(now, retry, streaming);
        }
        let streaming = |peer| streams.sending(META_GROUP, peer);
        self.meta
            .group
            .retry_stalled_snapshots(now, retry, streaming);
        self.query_silent_replicas(now);
        if !self.may_lead() {
            return self.hand_over_leaderships();
        }
        let Some(meta) = self.meta.meta.clone() else {
            return;
        };
        if self.meta.group.is_ready_leader() {
            let desired = meta.live_members();
            self.reconcile_meta(&desired);
            // Plan again once the previous plan's proposals applied — or were lost with the
            // term they were proposed in (a log truncated by another leader never gets there).
            let applied = self.meta.group.applied;
            let term = self.meta.group.raw.raft.term;
            let (gate_term, gate_index) = self.rebalance_after;
            if applied >= gate_index || term != gate_term {
                let commands = plan(&meta, self.config.plan_limits, self.now_ms());
                if !commands.is_empty() {
                    for command in commands {
                        tracing::info!(?command, "rebalancer");
                        self.propose_meta(command);
                    }
                    self.rebalance_after = (term, self.meta.group.raw.raft.raft_log.last_index());
                }
            }
        }
        let led: Vec<u32> = self
            .replicas
            .iter()
            .filter(|(_, r)| r.is_serving())
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

    /// Transfers every leadership to a caught-up voter; answers a waiting stop once none is
    /// left or its time is up.
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
        let now = self.clock.monotonic_ms();
        let Some(leaving) = self.leaving.as_mut() else {
            return;
        };
        if leading == 0 || now >= leaving.deadline_ms {
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
        ConfStep::LeaveJoint => group.propose_conf_change(Vec::new()),
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

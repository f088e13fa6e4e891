//! One Raft group on this node — a shard replica or the meta group — without its state
//! machine: the raft-rs `RawNode`, its in-memory log, applied/checkpoint indexes, configuration
//! changes, and the checkpoints that let a new replica start from a snapshot.
//!
//! Every group starts from a base checkpoint at [`BASE_INDEX`] (never from an empty log), so a
//! replica added later can only catch up by snapshot — which carries the configuration it needs
//! (raft-rs refuses a snapshot whose configuration does not name the receiver).

use protobuf::Message as _;
use raft::prelude::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
    Entry, EntryType, HardState, Snapshot,
};
use raft::{RawNode, StateRole};

use super::{EngineConfig, EngineError};
use crate::membership::GroupView;
use crate::slog_bridge::shard_logger;
use crate::storage::{DurableShard, ShardLog, WriteOp};
use crate::transport::NodeId;

/// When a checkpoint is due: after this many entries, or this many bytes of entries, since the
/// last one, whichever comes first.
#[derive(Copy, Clone, Debug)]
pub struct Every {
    pub entries: u64,
    pub bytes: u64,
    /// Entry data kept behind a checkpoint for followers slightly behind, at most.
    pub keep_bytes: u64,
}

/// Index and term of every group's base checkpoint.
pub const BASE_INDEX: u64 = 5;

/// How a group comes to life on this node.
pub enum GroupStart {
    /// A member of a new cluster: a base checkpoint holding `data` and these voters.
    Bootstrap { voters: Vec<NodeId>, data: Vec<u8> },
    /// Whatever this node persisted before.
    Durable(DurableShard),
    /// A replica being added: empty until the leader's snapshot arrives.
    Uninitialized,
}

pub struct RaftGroup {
    pub id: u32,
    pub raw: RawNode<ShardLog>,
    pub log: ShardLog,
    pub applied: u64,
    /// Term of the last applied entry: a leader serves only once it equals its own term
    /// (it has applied an entry of its term, so it knows everything committed before it).
    applied_term: u64,
    pub checkpoint_index: u64,
    /// Size of the newest checkpoint's data (what a snapshot of this group streams).
    pub checkpoint_bytes: u64,
    /// Bytes of entries applied since the newest checkpoint (the log a restart replays and
    /// memory holds).
    bytes_since_checkpoint: u64,
    /// A configuration change applied since the last checkpoint: checkpoint now, so the
    /// snapshot a new replica receives names it.
    pub force_checkpoint: bool,
    /// How far past the next checkpoint point this replica waits, in thirds of the interval
    /// (see [`stagger_thirds`]): set when every replica of the group stands at the same point —
    /// at start, after a forced checkpoint or an installed snapshot — and spent by the next
    /// checkpoint, so the replicas checkpoint a third of an interval apart from then on.
    stagger_thirds: u64,
    was_leader: bool,
    /// This run's random prefix on proposal tags, so an entry proposed before a restart never
    /// answers a waiter of this run.
    incarnation: u64,
    /// (term, role) when the election timeout was last drawn (see `randomize_election_timeout`).
    election_drawn_at: Option<(u64, StateRole)>,
    election_ticks: usize,
    /// The commit index advanced outside a Ready's hard state; persist it with the next batch.
    commit_dirty: bool,
    /// Index and term of the entry (or snapshot) that set the applied configuration.
    conf_index: u64,
    conf_term: u64,
    /// Followers this leader has been sending a snapshot to, since when (monotonic ms).
    snapshot_since: std::collections::BTreeMap<NodeId, u64>,
}

impl RaftGroup {
    /// Opens the group; returns it, the snapshot its state machine restores from (if any), and
    /// the writes that make a bootstrap durable.
    pub fn open(
        config: &EngineConfig,
        id: u32,
        start: GroupStart,
        incarnation: u64,
    ) -> Result<(RaftGroup, Option<Snapshot>, Vec<WriteOp>), EngineError> {
        let mut writes = Vec::new();
        let (log, snapshot) = match start {
            GroupStart::Bootstrap { voters, data } => {
                let mut snapshot = Snapshot::default();
                snapshot.mut_metadata().index = BASE_INDEX;
                snapshot.mut_metadata().term = BASE_INDEX;
                snapshot.mut_metadata().set_conf_state(ConfState {
                    voters,
                    ..Default::default()
                });
                snapshot.data = data.into();
                let hard_state = HardState {
                    term: BASE_INDEX,
                    commit: BASE_INDEX,
                    ..Default::default()
                };
                let conf = snapshot.get_metadata().get_conf_state().clone();
                writes.push(WriteOp::Checkpoint {
                    shard: id,
                    snapshot: snapshot.clone(),
                    compact_from: 1,
                    compact_to: 0,
                });
                writes.push(WriteOp::HardState {
                    shard: id,
                    state: hard_state.clone(),
                });
                let log = ShardLog::restore(hard_state, conf, Some(snapshot.clone()), Vec::new());
                (log, Some(snapshot))
            }
            GroupStart::Durable(durable) => {
                let snapshot = durable.snapshot.clone();
                let log = ShardLog::restore(
                    durable.hard_state,
                    durable.conf_state,
                    durable.snapshot,
                    durable.entries,
                );
                (log, snapshot)
            }
            GroupStart::Uninitialized => (ShardLog::default(), None),
        };
        let applied = snapshot.as_ref().map_or(0, |s| s.get_metadata().index);
        let applied_term = snapshot.as_ref().map_or(0, |s| s.get_metadata().term);
        let raft_config = raft::Config {
            id: config.node_id,
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            applied,
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Default::default()
        };
        raft_config.validate()?;
        let raw = RawNode::new(&raft_config, log.clone(), &shard_logger(config.node_id, id))?;
        let mut group = RaftGroup {
            id,
            raw,
            log,
            applied,
            applied_term,
            checkpoint_index: applied,
            checkpoint_bytes: snapshot.as_ref().map_or(0, |s| s.data.len() as u64),
            bytes_since_checkpoint: 0,
            force_checkpoint: false,
            stagger_thirds: 0,
            was_leader: false,
            incarnation,
            election_drawn_at: None,
            election_ticks: config.election_ticks,
            commit_dirty: false,
            conf_index: applied,
            conf_term: applied_term,
            snapshot_since: std::collections::BTreeMap::new(),
        };
        group.stagger_thirds = group.own_stagger();
        Ok((group, snapshot, writes))
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// A leader raft-rs takes proposals from: not handing its leadership over.
    pub fn accepts_proposals(&self) -> bool {
        self.is_leader() && self.raw.raft.lead_transferee.is_none()
    }

    /// A leader that has applied an entry of its own term: everything committed before its
    /// election is applied, so it may answer requests, reads and protocol messages. A leader
    /// elected before applying the previous term's entries could otherwise answer from a
    /// state that misses committed entries (and, say, presume abort for a committed transfer).
    pub fn is_ready_leader(&self) -> bool {
        self.is_leader() && self.applied_term == self.raw.raft.term
    }

    /// A leader that just applied its own removal steps down at once, into the next term.
    /// raft-rs keeps it leading (its own TODO), drops its proposals and panics the next time
    /// it advances the commit index; it never campaigns again, so the remaining voters elect
    /// a leader among themselves. Returns true if it stepped down.
    pub fn step_down_if_removed(&mut self) -> bool {
        let me = self.raw.raft.id;
        if !self.is_leader() || self.log.conf_state().voters.contains(&me) {
            return false;
        }
        let term = self.raw.raft.term + 1;
        tracing::info!(
            group = self.id,
            term,
            "this leader left its group's configuration; stepping down"
        );
        self.raw.raft.become_follower(term, raft::INVALID_ID);
        true
    }

    /// A snapshot this leader sent that got no answer within `stall_ms` after its stream ended
    /// (delivered but refused, or its receiver restarted) is reported failed, so raft-rs sends
    /// another: until then raft-rs sends that follower nothing at all. Followers whose
    /// snapshot is still `streaming` are left to the stream's own resend and give-up.
    pub fn retry_stalled_snapshots(
        &mut self,
        now_ms: u64,
        stall_ms: u64,
        streaming: impl Fn(NodeId) -> bool,
    ) {
        if !self.is_leader() {
            self.snapshot_since.clear();
            return;
        }
        let sending: Vec<NodeId> = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(_, p)| p.state == raft::ProgressState::Snapshot)
            .map(|(id, _)| *id)
            .collect();
        self.snapshot_since.retain(|id, _| sending.contains(id));
        for peer in sending {
            if streaming(peer) {
                self.snapshot_since.insert(peer, now_ms);
                continue;
            }
            let since = *self.snapshot_since.entry(peer).or_insert(now_ms);
            if now_ms >= since.saturating_add(stall_ms) {
                tracing::info!(
                    group = self.id,
                    peer,
                    "a snapshot got no answer in time; sending another"
                );
                metrics::counter!("tuma_raft_snapshots_retried_total").increment(1);
                self.raw
                    .report_snapshot(peer, raft::SnapshotStatus::Failure);
                self.snapshot_since.remove(&peer);
            }
        }
    }

    /// The commit index advanced in a light Ready.
    pub fn commit_advanced(&mut self) {
        self.commit_dirty = true;
    }

    /// True once after the commit index advanced outside a Ready's hard state.
    pub fn take_commit_advanced(&mut self) -> bool {
        std::mem::take(&mut self.commit_dirty)
    }

    /// Index and term of the entry or snapshot that set the applied configuration (after a
    /// restart, until a change applies again: the checkpoint's).
    pub fn conf_index(&self) -> (u64, u64) {
        (self.conf_index, self.conf_term)
    }

    /// Records that `entry` applied.
    pub fn note_applied(&mut self, entry: &Entry) {
        self.applied = entry.index;
        self.applied_term = entry.term;
        self.bytes_since_checkpoint += entry.data.len() as u64;
    }

    /// Draws a new election timeout from the engine's seeded randomness whenever raft-rs has
    /// reset it (every change of term or role resets it, with the thread's RNG). Called around
    /// every tick, so the timeout in force at each tick is always the seeded one and a seed
    /// replays the same elections.
    pub fn randomize_election_timeout(&mut self, rng: &mut tuma_actors::rng::SplitMix64) {
        let now = (self.raw.raft.term, self.raw.raft.state);
        if self.election_drawn_at == Some(now) {
            return;
        }
        self.election_drawn_at = Some(now);
        let min = self.election_ticks as u64;
        let timeout = min + rng.below(min);
        self.raw
            .raft
            .set_randomized_election_timeout(timeout as usize);
    }

    /// True if `node` is a voter or learner in this replica's applied configuration.
    pub fn in_configuration(&self, node: NodeId) -> bool {
        let conf = self.log.conf_state();
        conf.voters.contains(&node)
            || conf.learners.contains(&node)
            || conf.voters_outgoing.contains(&node)
            || conf.learners_next.contains(&node)
    }

    /// A replica that has state (a snapshot or a bootstrap), as opposed to one created empty
    /// and still waiting for its first snapshot.
    pub fn is_initialized(&self) -> bool {
        !self.log.conf_state().voters.is_empty()
    }

    /// Has this replica persisted anything (a term or a vote)? An uninitialized replica that
    /// has not may be dropped without breaking any promise it made.
    pub fn has_promised(&self) -> bool {
        let hs = self.log.hard_state();
        hs.term != 0 || hs.vote != 0
    }

    /// The leader this replica knows of, if any.
    pub fn leader(&self) -> Option<NodeId> {
        let id = self.raw.raft.leader_id;
        (id != 0).then_some(id)
    }

    pub fn is_voter(&self, node: NodeId) -> bool {
        self.log.conf_state().voters.contains(&node)
    }

    /// Has `node` replicated everything this leader holds?
    pub fn caught_up(&self, node: NodeId) -> bool {
        let last = self.raw.raft.raft_log.last_index();
        self.raw
            .raft
            .prs()
            .get(node)
            .is_some_and(|p| p.matched == last)
    }

    /// Notices a change of role; `Some(leading)` when it changed.
    pub fn role_changed(&mut self) -> Option<bool> {
        let leading = self.is_leader();
        (leading != self.was_leader).then(|| {
            self.was_leader = leading;
            leading
        })
    }

    /// This leader's view of its configuration, for the reconciler.
    pub fn view(&self) -> GroupView {
        let conf = self.log.conf_state();
        let raft = &self.raw.raft;
        GroupView {
            me: raft.id,
            voters: conf.voters.clone(),
            learners: conf.learners.clone(),
            joint: !conf.voters_outgoing.is_empty(),
            change_pending: raft.has_pending_conf(),
            last_index: raft.raft_log.last_index(),
            matched: raft.prs().iter().map(|(id, p)| (*id, p.matched)).collect(),
        }
    }

    /// Proposes a configuration change: simple for one change, joint (left automatically)
    /// for more.
    pub fn propose_conf_change(
        &mut self,
        changes: Vec<(NodeId, ConfChangeType)>,
    ) -> Result<(), raft::Error> {
        let mut cc = ConfChangeV2::default();
        cc.set_transition(ConfChangeTransition::Auto);
        let singles: Vec<ConfChangeSingle> = changes
            .into_iter()
            .map(|(node, ty)| {
                let mut single = ConfChangeSingle {
                    node_id: node,
                    ..Default::default()
                };
                single.set_change_type(ty);
                single
            })
            .collect();
        cc.set_changes(singles.into());
        self.raw.propose_conf_change(Vec::new(), cc)
    }

    /// Proposes encoded state-machine data. `tag` (unique per proposal in this run) travels in
    /// the entry's context with this node's id and this run's incarnation, so the proposer can
    /// find its entry when it applies — and an entry proposed before a restart matches nothing.
    pub fn propose_tagged(&mut self, data: Vec<u8>, tag: Option<u64>) -> Result<(), raft::Error> {
        let me = self.raw.raft.id;
        let context = tag
            .map(|t| {
                [
                    me.to_be_bytes(),
                    self.incarnation.to_be_bytes(),
                    t.to_be_bytes(),
                ]
                .concat()
            })
            .unwrap_or_default();
        self.raw.propose(context, data)
    }

    /// The tag this run of this node put on `entry` when it proposed it, if it did.
    pub fn tag_of(&self, entry: &Entry) -> Option<u64> {
        let ctx: &[u8] = entry.context.as_ref();
        if ctx.len() != 24
            || ctx[..8] != self.raw.raft.id.to_be_bytes()
            || ctx[8..16] != self.incarnation.to_be_bytes()
        {
            return None;
        }
        Some(u64::from_be_bytes(ctx[16..].try_into().ok()?))
    }

    /// Applies a committed configuration-change entry; `false` for other entries.
    pub fn apply_conf_entry(&mut self, entry: &Entry) -> bool {
        let change = match entry.get_entry_type() {
            EntryType::EntryNormal => return false,
            EntryType::EntryConfChange => ConfChange::parse_from_bytes(&entry.data).map(|v1| {
                let mut single = ConfChangeSingle {
                    node_id: v1.node_id,
                    ..Default::default()
                };
                single.set_change_type(v1.get_change_type());
                let mut v2 = ConfChangeV2::default();
                v2.mut_changes().push(single);
                v2
            }),
            EntryType::EntryConfChangeV2 => ConfChangeV2::parse_from_bytes(&entry.data),
        };
        let Ok(change) = change else {
            panic!(
                "group {} entry {} holds an undecodable configuration change",
                self.id, entry.index
            );
        };
        match self.raw.apply_conf_change(&change) {
            Ok(conf) => {
                tracing::info!(group = self.id, index = entry.index, voters = ?conf.voters, learners = ?conf.learners, outgoing = ?conf.voters_outgoing, "configuration changed");
                self.log.set_conf_state(conf);
                self.conf_index = entry.index;
                self.conf_term = entry.term;
                self.force_checkpoint = true;
                metrics::counter!("tuma_raft_conf_changes_total").increment(1);
            }
            // Every replica applies the same entries, so a refused change is refused everywhere.
            Err(error) => tracing::warn!(group = self.id, %error, "configuration change refused"),
        }
        true
    }

    /// Installs a leader's snapshot into the log; returns the write that records it.
    pub fn install_snapshot(&mut self, snapshot: Snapshot) -> WriteOp {
        let (first, last) = self.log.bounds();
        self.log.apply_snapshot(&snapshot);
        self.applied = snapshot.get_metadata().index;
        self.applied_term = snapshot.get_metadata().term;
        self.conf_index = self.applied;
        self.conf_term = self.applied_term;
        self.checkpoint_index = self.applied;
        self.checkpoint_bytes = snapshot.data.len() as u64;
        self.bytes_since_checkpoint = 0;
        self.stagger_thirds = self.own_stagger();
        // The hard state (commit at least the snapshot's index) goes into the same batch.
        self.commit_dirty = true;
        tracing::info!(
            group = self.id,
            index = self.applied,
            bytes = self.checkpoint_bytes,
            "installed a snapshot from the leader"
        );
        metrics::counter!("tuma_raft_snapshots_installed_total").increment(1);
        WriteOp::Checkpoint {
            shard: self.id,
            snapshot,
            compact_from: first,
            compact_to: last.max(first),
        }
    }

    /// This replica's checkpoint stagger under the group's current voters.
    fn own_stagger(&self) -> u64 {
        stagger_thirds(self.raw.raft.id, &self.log.conf_state().voters)
    }

    /// A checkpoint of the state machine (`data`) at the applied index, compacting the log
    /// behind it, once `every` entries applied since the last one or a configuration changed.
    pub fn maybe_checkpoint(
        &mut self,
        every: Every,
        keep: u64,
        data: impl FnOnce() -> Vec<u8>,
    ) -> Option<WriteOp> {
        let due = checkpoint_due(
            Progress {
                applied: self.applied,
                checkpoint_index: self.checkpoint_index,
                bytes_since_checkpoint: self.bytes_since_checkpoint,
                checkpoint_bytes: self.checkpoint_bytes,
                forced: self.force_checkpoint,
            },
            every,
            self.stagger_thirds,
        );
        if !due {
            return None;
        }
        let term = self.log.term_of(self.applied)?;
        // Every replica applied the configuration change at the same index and checkpoints
        // there: stagger the next one again.
        self.stagger_thirds = if self.force_checkpoint {
            self.own_stagger()
        } else {
            0
        };
        self.force_checkpoint = false;
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = self.applied;
        snapshot.mut_metadata().term = term;
        snapshot
            .mut_metadata()
            .set_conf_state(self.log.conf_state());
        snapshot.data = data().into();
        let (first, _) = self.log.bounds();
        let compact_to = self.log.compact_point(self.applied, keep, every.keep_bytes);
        self.log.checkpoint(&snapshot, compact_to);
        self.checkpoint_index = self.applied;
        self.checkpoint_bytes = snapshot.data.len() as u64;
        self.bytes_since_checkpoint = 0;
        metrics::counter!("tuma_raft_checkpoints_total").increment(1);
        tracing::debug!(
            group = self.id,
            index = self.applied,
            bytes = snapshot.data.len(),
            "checkpoint"
        );
        Some(WriteOp::Checkpoint {
            shard: self.id,
            snapshot,
            compact_from: first,
            compact_to: compact_to.max(first.saturating_sub(1)),
        })
    }
}

/// A replica's share of a checkpoint interval to wait, in thirds: its rank among the group's
/// voters (sorted) modulo three — 0, 1, 2 for the three replicas of a shard, so at most one of
/// them encodes and writes a large checkpoint at a time. (All three at the same index stall the
/// whole quorum at once, and a leader that finishes first steps down for lack of an active
/// quorum.) A learner or a replica outside the configuration takes the next rank. The price:
/// with a replica down (a group at exactly its quorum), each live replica's checkpoint stalls
/// the other in turn where both used to stall together; encoding checkpoints off the engine
/// thread would remove both stalls.
pub fn stagger_thirds(me: NodeId, voters: &[NodeId]) -> u64 {
    let mut sorted = voters.to_vec();
    sorted.sort_unstable();
    let rank = sorted.iter().position(|v| *v == me).unwrap_or(sorted.len());
    (rank % 3) as u64
}

/// Where a replica stands since its last checkpoint.
#[derive(Copy, Clone, Debug)]
pub struct Progress {
    pub applied: u64,
    pub checkpoint_index: u64,
    pub bytes_since_checkpoint: u64,
    pub checkpoint_bytes: u64,
    /// A configuration change applied since the last checkpoint.
    pub forced: bool,
}

/// Whether a checkpoint is due: `every.entries` applied since the last one, or a log as large as
/// that checkpoint (at least `every.bytes`, so a large state is not re-encoded for a little
/// log), either stretched by `stagger_thirds` thirds; or a configuration change applied.
pub fn checkpoint_due(at: Progress, every: Every, stagger_thirds: u64) -> bool {
    let stretch = |interval: u64| interval.saturating_add(interval / 3 * stagger_thirds);
    let moved = at.applied > at.checkpoint_index;
    at.applied >= at.checkpoint_index.saturating_add(stretch(every.entries))
        || (at.bytes_since_checkpoint >= stretch(every.bytes.max(at.checkpoint_bytes)) && moved)
        || (at.forced && moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_three_replicas_of_a_shard_checkpoint_a_third_of_an_interval_apart() {
        let voters = [7, 2, 9];
        let thirds: Vec<u64> = voters.iter().map(|v| stagger_thirds(*v, &voters)).collect();
        assert_eq!(thirds, [1, 0, 2]);
        assert_eq!(
            stagger_thirds(4, &voters),
            0,
            "a learner takes the next rank"
        );
        let every = Every {
            entries: 300,
            bytes: u64::MAX,
            keep_bytes: 0,
        };
        let first_due = |stagger: u64| {
            (1..10_000)
                .find(|applied| {
                    let at = Progress {
                        applied: *applied,
                        checkpoint_index: 0,
                        bytes_since_checkpoint: 0,
                        checkpoint_bytes: 0,
                        forced: false,
                    };
                    checkpoint_due(at, every, stagger)
                })
                .expect("due eventually")
        };
        assert_eq!([first_due(0), first_due(1), first_due(2)], [300, 400, 500]);
    }

    #[test]
    fn by_bytes_the_stagger_stretches_the_threshold_and_a_forced_checkpoint_ignores_it() {
        let every = Every {
            entries: u64::MAX,
            bytes: 900,
            keep_bytes: 0,
        };
        let at = |bytes_since_checkpoint, forced| Progress {
            applied: 10,
            checkpoint_index: 5,
            bytes_since_checkpoint,
            checkpoint_bytes: 600,
            forced,
        };
        assert!(checkpoint_due(at(900, false), every, 0));
        assert!(!checkpoint_due(at(900, false), every, 2));
        assert!(checkpoint_due(at(1_500, false), every, 2));
        assert!(
            checkpoint_due(at(0, true), every, 2),
            "a configuration change"
        );
        let nothing_new = Progress {
            applied: 5,
            ..at(0, true)
        };
        assert!(
            !checkpoint_due(nothing_new, every, 0),
            "nothing applied since"
        );
    }

    fn single_voter_group(incarnation: u64) -> RaftGroup {
        let config = EngineConfig::new(1, BTreeMap::new(), 1, 1);
        let start = GroupStart::Bootstrap {
            voters: vec![1],
            data: Vec::new(),
        };
        let (mut group, _, _) =
            RaftGroup::open(&config, 0, start, incarnation).expect("open group");
        group.raw.campaign().expect("campaign");
        assert!(group.is_leader(), "a single voter elects itself");
        group
    }

    fn last_unstable_entry(group: &RaftGroup) -> Entry {
        group
            .raw
            .raft
            .raft_log
            .unstable_entries()
            .last()
            .cloned()
            .expect("an entry was proposed")
    }

    #[test]
    fn a_tag_matches_only_the_run_that_proposed_it() {
        let mut before_restart = single_voter_group(0x1111);
        before_restart
            .propose_tagged(b"transfer".to_vec(), Some(42))
            .expect("propose");
        let entry = last_unstable_entry(&before_restart);
        assert_eq!(before_restart.tag_of(&entry), Some(42));

        // The same node after a restart: same id, same tag counter, new incarnation.
        let after_restart = single_voter_group(0x2222);
        assert_eq!(
            after_restart.tag_of(&entry),
            None,
            "an entry proposed before the restart must not answer a waiter of this run"
        );

        let mut untagged = single_voter_group(0x1111);
        untagged
            .propose_tagged(b"x".to_vec(), None)
            .expect("propose");
        assert_eq!(untagged.tag_of(&last_unstable_entry(&untagged)), None);
    }
}

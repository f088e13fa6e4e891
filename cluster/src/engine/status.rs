//! The node's view of its replicas, for `/admin/v1/cluster` and `tuma ctl status`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Engine;
use crate::membership::{ClusterMeta, MemberState};
use crate::transport::NodeId;

/// One replica as this node sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardStatus {
    pub shard: u32,
    pub role: String,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_index: u64,
    pub voters: Vec<NodeId>,
    /// Replicas receiving the shard's data before they vote.
    #[serde(default)]
    pub learners: Vec<NodeId>,
    /// For a leader: entries each follower is behind.
    pub follower_lag: BTreeMap<NodeId, u64>,
    /// The newest checkpoint: its index and data size (what a snapshot of it streams).
    #[serde(default)]
    pub checkpoint_index: u64,
    #[serde(default)]
    pub checkpoint_bytes: u64,
    /// The oldest entry the log still holds (older ones are in the checkpoint).
    #[serde(default)]
    pub first_index: u64,
    /// History rows this replica's ledger has numbered (the rows its history holds), and
    /// finished records still in memory waiting to retire.
    #[serde(default)]
    pub history_rows: u64,
    #[serde(default)]
    pub retiring: u64,
}

/// One node's status.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: NodeId,
    /// Live members (not removed), from the cluster state.
    pub members: Vec<NodeId>,
    /// The cluster state as this node last applied it (`None` on a node still joining).
    #[serde(default)]
    pub cluster: Option<ClusterMeta>,
    /// The meta group's leader as this node knows it.
    #[serde(default)]
    pub meta_leader: Option<NodeId>,
    /// This node is handing its leaderships away before a stop.
    #[serde(default)]
    pub leaving: bool,
    pub shards: Vec<ShardStatus>,
    pub leading: usize,
    pub actors_live: usize,
    pub actor_restarts: u64,
    pub storage_bytes: u64,
    /// This node's clock against its peers': `in_bounds`, `unknown` or `out_of_bounds`.
    #[serde(default)]
    pub clock: String,
    /// How far the members' consensus clock is from this node's, when out of bounds.
    #[serde(default)]
    pub clock_offset_ms: Option<i64>,
    /// May this node lead now (not stopping, clock in bounds, still a member)?
    #[serde(default)]
    pub may_lead: bool,
}

impl Engine {
    pub(super) fn status(&self) -> NodeStatus {
        let shards: Vec<ShardStatus> = self
            .replicas
            .values()
            .map(|r| {
                let raft = &r.group.raw.raft;
                let last = raft.raft_log.last_index();
                let follower_lag = if r.is_leader() {
                    raft.prs()
                        .iter()
                        .filter(|(id, _)| **id != self.config.node_id)
                        .map(|(id, p)| (*id, last.saturating_sub(p.matched)))
                        .collect()
                } else {
                    BTreeMap::new()
                };
                ShardStatus {
                    shard: r.shard(),
                    role: format!("{:?}", raft.state).to_lowercase(),
                    leader: r.leader(),
                    term: raft.term,
                    commit_index: raft.raft_log.committed,
                    applied_index: r.group.applied,
                    last_index: last,
                    voters: r.group.log.conf_state().voters.clone(),
                    learners: r.group.log.conf_state().learners.clone(),
                    follower_lag,
                    checkpoint_index: r.group.checkpoint_index,
                    checkpoint_bytes: r.group.checkpoint_bytes,
                    first_index: r.group.log.bounds().0,
                    history_rows: r.ledger().history_next_seq(),
                    retiring: r.ledger().retiring() as u64,
                }
            })
            .collect();
        NodeStatus {
            node_id: self.config.node_id,
            members: self
                .meta
                .meta
                .as_ref()
                .map(|m| m.live_members())
                .unwrap_or_default(),
            cluster: self.meta.meta.clone(),
            meta_leader: self.meta.group.leader(),
            leaving: self.leaving.is_some(),
            leading: shards.iter().filter(|s| s.role == "leader").count(),
            shards,
            actors_live: self.actors.live(),
            actor_restarts: self.actors.restarts(),
            storage_bytes: self.store.size_on_disk(),
            clock: match self.clock_verdict {
                super::ClockVerdict::InBounds => "in_bounds",
                super::ClockVerdict::Unknown => "unknown",
                super::ClockVerdict::OutOfBounds { .. } => "out_of_bounds",
            }
            .to_string(),
            clock_offset_ms: match self.clock_verdict {
                super::ClockVerdict::OutOfBounds { offset_ms } => Some(offset_ms),
                _ => None,
            },
            may_lead: self.may_lead(),
        }
    }
}

impl Engine {
    /// Gauges of the cluster state and this node's share of it.
    pub(super) fn membership_metrics(&self) {
        let me = self.config.node_id;
        let leading = self.replicas.values().filter(|r| r.is_leader()).count();
        metrics::gauge!("tuma_replicas_local").set(self.replicas.len() as f64);
        metrics::gauge!("tuma_leaders_local").set(leading as f64);
        metrics::gauge!("tuma_meta_leader").set(f64::from(u8::from(self.meta.group.is_leader())));
        let Some(meta) = self.meta.meta.as_ref() else {
            return;
        };
        for (state, label) in [
            (MemberState::Active, "active"),
            (MemberState::Draining, "draining"),
            (MemberState::Removed, "removed"),
        ] {
            metrics::gauge!("tuma_cluster_members", "state" => label)
                .set(meta.members_in(state).len() as f64);
        }
        metrics::gauge!("tuma_rebalance_moves_in_flight").set(meta.moves.len() as f64);
        metrics::gauge!("tuma_rebalance_moves_done").set(meta.moves_done as f64);
        let placed = meta.placement.iter().filter(|p| p.contains(&me)).count();
        metrics::gauge!("tuma_replicas_placed").set(placed as f64);
    }
}

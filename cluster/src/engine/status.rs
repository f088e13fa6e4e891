//! The node's view of its replicas, for `/admin/v1/cluster` and `tuma ctl status`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Engine;
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
    /// For a leader: entries each follower is behind.
    pub follower_lag: BTreeMap<NodeId, u64>,
}

/// One node's status.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: NodeId,
    pub members: Vec<NodeId>,
    pub shards: Vec<ShardStatus>,
    pub leading: usize,
    pub actors_live: usize,
    pub actor_restarts: u64,
    pub storage_bytes: u64,
}

impl Engine {
    pub(super) fn status(&self) -> NodeStatus {
        let shards: Vec<ShardStatus> = self
            .replicas
            .values()
            .map(|r| {
                let raft = &r.raw.raft;
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
                    shard: r.shard,
                    role: format!("{:?}", raft.state).to_lowercase(),
                    leader: r.leader(),
                    term: raft.term,
                    commit_index: raft.raft_log.committed,
                    applied_index: r.applied,
                    last_index: last,
                    voters: r.log.conf_state().voters.clone(),
                    follower_lag,
                }
            })
            .collect();
        NodeStatus {
            node_id: self.config.node_id,
            members: self.placement.members().to_vec(),
            leading: shards.iter().filter(|s| s.role == "leader").count(),
            shards,
            actors_live: self.actors.live(),
            actor_restarts: self.actors.restarts(),
            storage_bytes: self.store.size_on_disk(),
        }
    }
}

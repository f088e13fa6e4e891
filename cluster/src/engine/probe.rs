//! Read-only views of a node's replicas and cluster state, for the simulator's checker and for
//! tests that look inside a running engine.

use raft::prelude::ConfState;
use tuma_actors::ledger::ShardLedger;

use super::{ClockVerdict, Engine};
use crate::membership::ClusterMeta;
use crate::transport::NodeId;

/// One replica as its engine holds it.
pub struct ReplicaProbe<'a> {
    pub shard: u32,
    pub leader: bool,
    /// Leads, has applied an entry of its term, and its node may lead: answers requests.
    pub serving: bool,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    /// Its applied configuration, and the index that set it.
    pub conf: ConfState,
    pub conf_index: u64,
    /// Holds state (not an empty replica waiting for its first snapshot).
    pub initialized: bool,
    pub ledger: &'a ShardLedger,
}

/// This node's replica of the meta group.
pub struct MetaProbe<'a> {
    pub leader: Option<NodeId>,
    pub serving: bool,
    pub applied: u64,
    pub meta: Option<&'a ClusterMeta>,
}

impl Engine {
    /// Every replica on this node.
    pub fn probe_replicas(&self) -> Vec<ReplicaProbe<'_>> {
        let may_lead = self.may_lead();
        self.replicas
            .values()
            .map(|r| ReplicaProbe {
                shard: r.shard(),
                leader: r.is_leader(),
                serving: r.is_serving() && may_lead,
                term: r.group.raw.raft.term,
                commit: r.group.log.hard_state().commit,
                applied: r.group.applied,
                conf: r.group.log.conf_state(),
                conf_index: r.group.conf_index().0,
                initialized: r.group.is_initialized(),
                ledger: r.ledger(),
            })
            .collect()
    }

    /// The meta group on this node.
    pub fn probe_meta(&self) -> MetaProbe<'_> {
        MetaProbe {
            leader: self.meta.group.leader(),
            serving: self.meta.group.is_ready_leader() && self.may_lead(),
            applied: self.meta.group.applied,
            meta: self.meta.meta.as_ref(),
        }
    }

    /// The last verdict on this node's clock.
    pub fn clock_verdict(&self) -> ClockVerdict {
        self.clock_verdict
    }
}

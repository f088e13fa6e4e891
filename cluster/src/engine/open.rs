//! Opening a node's groups: the meta group and the shard replicas, from the store or, on an
//! initial member's first start, bootstrapped; and the identity check that refuses a data
//! directory of another node or cluster shape.

use std::collections::BTreeMap;

use tuma_actors::ShardMap;

use super::group::GroupStart;
use super::meta_group::{self, MetaGroup};
use super::replica::{self, Replica};
use super::{EngineConfig, EngineError};
use crate::membership::{ClusterMeta, META_GROUP};
use crate::placement::Placement;
use crate::storage::{ClusterIdentity, LogStore};
use crate::transport::NodeId;

/// The meta group: from the store, or bootstrapped with the initial members' cluster state (an
/// initial member's first start), or empty until the leader's snapshot (a joining node).
pub(super) fn open_meta(
    config: &EngineConfig,
    store: &dyn LogStore,
    groups: &[u32],
    bootstrap: bool,
    incarnation: u64,
    writes: &mut Vec<crate::storage::WriteOp>,
) -> Result<MetaGroup, EngineError> {
    let start = if groups.contains(&META_GROUP) {
        match store.load_shard(META_GROUP)? {
            Some(durable) => GroupStart::Durable(durable),
            None => GroupStart::Uninitialized,
        }
    } else if bootstrap {
        let mut initial = ClusterMeta::initial(&config.members, config.shards, config.replicas)
            .expect("validated");
        if let Some(image) = &config.restore {
            for (name, body) in &image.documents {
                let document = crate::membership::Document {
                    version: 1,
                    body: body.clone(),
                    stored_ms: 0,
                };
                initial.documents.insert(name.clone(), document);
            }
        }
        GroupStart::Bootstrap {
            voters: config.members.keys().copied().collect(),
            data: meta_group::meta_data(&initial),
        }
    } else {
        GroupStart::Uninitialized
    };
    let (meta, meta_writes) = MetaGroup::open(config, start, incarnation)?;
    writes.extend(meta_writes);
    Ok(meta)
}

/// The shard replicas: every one the store holds, or on an initial member's first start those
/// the initial placement gives it.
pub(super) fn open_replicas(
    config: &EngineConfig,
    map: ShardMap,
    store: &dyn LogStore,
    groups: &[u32],
    bootstrap: bool,
    incarnation: u64,
    writes: &mut Vec<crate::storage::WriteOp>,
) -> Result<BTreeMap<u32, Replica>, EngineError> {
    let mut replicas = BTreeMap::new();
    if bootstrap {
        let members: Vec<NodeId> = config.members.keys().copied().collect();
        let placement = Placement::new(members, config.replicas, config.shards).expect("validated");
        for shard in placement.shards_of(config.node_id) {
            let restored = config
                .restore
                .as_ref()
                .map(|image| image.shards.get(&shard));
            let data = match restored {
                None => replica::empty_ledger_data(config, map, shard),
                Some(Some(copy)) => copy.state.clone(),
                Some(None) => {
                    return Err(EngineError::Config(format!(
                        "the backup restored holds no shard {shard}"
                    )))
                }
            };
            let start = GroupStart::Bootstrap {
                voters: placement.replicas_of(shard),
                data,
            };
            let (replica, shard_writes) = Replica::open(config, map, shard, start, incarnation)?;
            writes.extend(shard_writes);
            if let Some(Some(copy)) = restored {
                writes.push(crate::storage::WriteOp::SnapshotHistory {
                    shard,
                    rows: copy.rows.clone(),
                    audit_log: copy.audit_log.clone(),
                });
            }
            replicas.insert(shard, replica);
        }
    }
    for &shard in groups.iter().filter(|g| **g != META_GROUP) {
        if shard >= config.shards {
            return Err(EngineError::Config(format!(
                "the data directory holds shard {shard} of a cluster with more shards"
            )));
        }
        let start = match store.load_shard(shard)? {
            Some(durable) => GroupStart::Durable(durable),
            None => GroupStart::Uninitialized,
        };
        let (replica, _) = Replica::open(config, map, shard, start, incarnation)?;
        replicas.insert(shard, replica);
    }
    Ok(replicas)
}

/// Refuses a data directory that belongs to another node or another cluster shape.
pub(super) fn check_identity(
    config: &EngineConfig,
    store: &dyn LogStore,
) -> Result<(), EngineError> {
    let identity = ClusterIdentity {
        node_id: config.node_id,
        shards: config.shards,
        replicas: config.replicas as u32,
        members: if config.bootstrap {
            config.members.keys().copied().collect()
        } else {
            Vec::new()
        },
    };
    let Some(found) = store.identity()? else {
        return Ok(store.set_identity(&identity)?);
    };
    let same_node = found.node_id == identity.node_id
        && found.shards == identity.shards
        && found.replicas == identity.replicas;
    // A joined node's members come from the cluster state, not from its flags.
    if same_node && (!config.bootstrap || found == identity) {
        return Ok(());
    }
    Err(EngineError::Config(format!(
        "the data directory belongs to node {} of a cluster with {} shards, {} replicas, members {:?}; \
         refusing to start it as node {} with {} shards, {} replicas, members {:?}",
        found.node_id, found.shards, found.replicas, found.members,
        identity.node_id, identity.shards, identity.replicas, identity.members
    )))
}

//! A new cluster started from a backup: what each initial member bootstraps its shards and its
//! meta group with instead of empty ledgers (the backup's format and checks are the service's,
//! `tuma_service::backup`; this is only what the engine needs of it).

use std::collections::BTreeMap;

use tuma_actors::ledger::{AuditLogRecord, HistoryRow};

/// Every shard's starting state and history, and the cluster's documents.
#[derive(Clone, Debug, Default)]
pub struct RestoreImage {
    pub shards: BTreeMap<u32, RestoredShard>,
    /// The cluster's documents (key ring, menus, float requests), by name.
    pub documents: BTreeMap<String, String>,
}

/// One shard of a backup.
#[derive(Clone, Debug, Default)]
pub struct RestoredShard {
    /// The ledger state, encoded as a checkpoint holds it.
    pub state: Vec<u8>,
    pub rows: Vec<HistoryRow>,
    pub audit_log: Vec<AuditLogRecord>,
}

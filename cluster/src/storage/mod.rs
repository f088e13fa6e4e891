//! Durable storage behind a trait, so the disk format can be swapped.
//!
//! | file | holds |
//! |---|---|
//! | `log.rs` | [`ShardLog`]: the in-memory log raft-rs reads (`raft::Storage`) |
//! | `disk_store.rs` | [`DiskStore`]: the default [`LogStore`]: the log, metadata and history in an LSM tree (fjall), checkpoint data in sled 0.34, and the data-directory lock |
//! | `history.rs` | the per-account history of finished transfers: keys, pages, lookups, export |
//! | `history_store.rs` | [`HistoryStore`]: the LSM tree's keyspace of history rows and audit records |
//! | `audit_log.rs` | each shard's audit log, in the history key space: keys, pages by time, export |
//! | `mem_store.rs` | [`MemStore`]: an in-memory [`LogStore`] with crash and torn-write faults (simulator, tests) |
//!
//! One write batch per engine loop carries every shard's appended entries, hard states,
//! checkpoints and compactions, and is made durable with one fsync: the group commit. History
//! rows, which a restart rebuilds from the log, are made durable before the checkpoint that
//! covers their entries.

pub mod audit_log;
mod disk_store;
pub mod history;
mod history_store;
mod log;
mod mem_store;

use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use tuma_actors::ledger::{AuditLogRecord, HistoryRow};
use tuma_actors::transfer::TransferId;
use tuma_actors::txn_id::TransactionId;
use tuma_actors::AccountRef;

pub use disk_store::DiskStore;
pub use history_store::HistoryStore;
pub use log::ShardLog;
pub use mem_store::{MemDisk, MemStore, WriteFault};

/// Storage failures. Every one is fatal to the node: a replica that cannot persist must stop.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("history store: {0}")]
    History(String),
    #[error("corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("data directory {0} is in use by another process")]
    Locked(String),
    #[error("{0}")]
    Mismatch(String),
}

/// What a shard replica left on disk.
#[derive(Debug, Default)]
pub struct DurableShard {
    pub hard_state: HardState,
    pub conf_state: ConfState,
    /// The newest checkpoint (ledger state + Raft metadata).
    pub snapshot: Option<Snapshot>,
    /// Log entries after the checkpoint, in index order.
    pub entries: Vec<Entry>,
}

/// One operation of a write batch.
#[derive(Debug)]
pub enum WriteOp {
    /// Entries appended at their indexes; keys from `entries.last + 1 ..= old_last` are removed.
    Append {
        shard: u32,
        entries: Vec<Entry>,
        old_last: u64,
    },
    HardState {
        shard: u32,
        state: HardState,
    },
    ConfState {
        shard: u32,
        state: ConfState,
    },
    /// A checkpoint; log keys `from ..= to` are deleted with it (compaction).
    Checkpoint {
        shard: u32,
        snapshot: Snapshot,
        compact_from: u64,
        compact_to: u64,
    },
    /// Everything of a group (a replica its group removed). With `removed_at`, a tombstone
    /// remembers the index of the removal: a replica made again here later must start from a
    /// snapshot past it (see the engine's `membership.rs`).
    Destroy {
        shard: u32,
        removed_at: Option<u64>,
    },
    /// A replica was made again from a snapshot past its tombstone.
    ForgetTombstone {
        shard: u32,
    },
    /// History rows of finished transfers and audit records, written as their entries applied.
    History {
        shard: u32,
        rows: Vec<HistoryRow>,
        audit_log: Vec<AuditLogRecord>,
    },
    /// A snapshot's history: every row of the shard up to its checkpoint. Rows are a
    /// deterministic function of the shard's log, so any row already here is the same row;
    /// stores may write them ahead of the rest of the batch, in bounded pieces.
    SnapshotHistory {
        shard: u32,
        rows: Vec<HistoryRow>,
        audit_log: Vec<AuditLogRecord>,
    },
}

/// Everything one engine loop persists, written atomically and fsynced once.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub ops: Vec<WriteOp>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A piece of a stored checkpoint's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointSlice {
    /// Length of the whole data.
    pub total: u64,
    pub bytes: Vec<u8>,
}

impl CheckpointSlice {
    /// Up to `len` bytes of `data` from `offset` (none past its end).
    pub fn of(data: &[u8], offset: u64, len: usize) -> CheckpointSlice {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let end = start.saturating_add(len).min(data.len());
        CheckpointSlice {
            total: data.len() as u64,
            bytes: data[start..end].to_vec(),
        }
    }
}

/// Cluster-wide facts fixed at creation, kept with the data to refuse a mismatched restart.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterIdentity {
    pub node_id: u64,
    pub shards: u32,
    pub replicas: u32,
    /// The initial members of the cluster this node was created with; empty for a node that
    /// joined later.
    pub members: Vec<u64>,
}

/// The durable log and state store of one node.
pub trait LogStore: Send {
    /// What a shard replica left, or `None` for a replica never started here.
    fn load_shard(&self, shard: u32) -> Result<Option<DurableShard>, StorageError>;
    /// Every group (shard replica or the meta group) with durable state here.
    fn groups(&self) -> Result<Vec<u32>, StorageError>;
    /// Applies a batch atomically and makes it durable (one fsync).
    fn write(&self, batch: WriteBatch) -> Result<(), StorageError>;
    /// Applies a batch atomically without waiting for the disk: it becomes durable with the
    /// next [`LogStore::write`] (whose flush covers every earlier write). For what a restart
    /// can rebuild, such as history rows of entries the log still holds.
    fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.write(batch)
    }
    /// Up to `len` bytes of the data of `group`'s stored checkpoint, from `offset`, with the
    /// data's total length; `None` once the stored checkpoint is no longer the one at `index`
    /// (a newer one replaced it). Snapshots stream from here, never from a copy in memory.
    fn read_checkpoint(
        &self,
        group: u32,
        index: u64,
        offset: u64,
        len: usize,
    ) -> Result<Option<CheckpointSlice>, StorageError>;
    /// The tombstones of replicas destroyed here: group → index of their removal.
    fn tombstones(&self) -> Result<std::collections::BTreeMap<u32, u64>, StorageError>;
    /// The identity recorded at creation, if any.
    fn identity(&self) -> Result<Option<ClusterIdentity>, StorageError>;
    fn set_identity(&self, identity: &ClusterIdentity) -> Result<(), StorageError>;
    /// Bytes used on disk.
    fn size_on_disk(&self) -> u64;
    /// What the history queries read through.
    fn history_kv(&self) -> &dyn history::HistoryKv;

    /// A statement page of `account` on `shard` (see [`history::page`]).
    fn history_page(
        &self,
        shard: u32,
        account: &AccountRef,
        before: Option<u64>,
        limit: usize,
        committed_only: bool,
    ) -> Result<Vec<HistoryRow>, StorageError> {
        history::page(
            self.history_kv(),
            shard,
            account,
            before,
            limit,
            committed_only,
        )
    }
    /// The payer's row of a finished transfer by its request id.
    fn history_by_transfer(
        &self,
        shard: u32,
        id: &TransferId,
    ) -> Result<Option<HistoryRow>, StorageError> {
        history::by_transfer(self.history_kv(), shard, id)
    }
    /// The rows of a finished transfer by its receipt, the payer's first.
    fn history_by_receipt(
        &self,
        shard: u32,
        receipt: &TransactionId,
    ) -> Result<Vec<HistoryRow>, StorageError> {
        history::by_receipt(self.history_kv(), shard, receipt)
    }
    /// Every row of `shard` numbered below `below`, in order.
    fn history_export(&self, shard: u32, below: u64) -> Result<Vec<HistoryRow>, StorageError> {
        history::export(self.history_kv(), shard, below)
    }
    /// A handle that reads the history from another thread, for exports too long to run on the
    /// engine thread; `None` when the store reads fast enough inline (in memory).
    fn history_reader(&self) -> Option<Box<dyn history::HistoryKv + Send>> {
        None
    }
}

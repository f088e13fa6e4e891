//! [`MemStore`]: a [`LogStore`] in memory, for the simulator and engine tests.
//!
//! What it holds is a [`MemDisk`]: the durable image a node leaves behind, shared with whoever
//! created the store, so a "crashed" node (its engine dropped, everything volatile lost) can be
//! reopened on the same disk. A write is durable once it returns, like a flushed sled batch;
//! the faults a simulator arms on the disk are the ones a real disk gives:
//! - **crash in the middle of a write**: the batch being written never reaches the disk (nor
//!   does anything after it) and the write fails, which stops the engine as a real fsync
//!   failure or power cut would;
//! - **torn last write**: the same, with part of the batch's bytes on disk. Batches are
//!   checksummed records (as sled's are), so recovery detects the torn record and cuts it: the
//!   image is the one before that write. [`MemDisk::torn_writes_cut`] counts them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};

use super::history::{self, HistoryKv};
use super::{
    CheckpointSlice, ClusterIdentity, DurableShard, LogStore, StorageError, WriteBatch, WriteOp,
};

/// How the next armed write fails.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WriteFault {
    /// The node dies before the batch reaches the disk.
    CrashBeforeDurable,
    /// The node dies with part of the batch's record on disk (cut at recovery).
    Torn,
}

#[derive(Clone, Default, Debug)]
struct DurableGroup {
    hard_state: Option<HardState>,
    conf_state: Option<ConfState>,
    snapshot: Option<Snapshot>,
    entries: BTreeMap<u64, Entry>,
}

#[derive(Default, Debug)]
struct Image {
    groups: BTreeMap<u32, DurableGroup>,
    tombstones: BTreeMap<u32, u64>,
    identity: Option<ClusterIdentity>,
    /// History keys and values (see `history.rs`).
    history: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Writes until the armed fault fires (1 = the next write).
    fault_in_writes: Option<(u64, WriteFault)>,
    /// Set once a fault fired: every later write fails too (the node is dead).
    dead: bool,
    writes: u64,
    bytes: u64,
    torn_cut: u64,
}

/// The durable image of one node's store; clones share it.
#[derive(Clone, Default, Debug)]
pub struct MemDisk(Arc<Mutex<Image>>);

impl MemDisk {
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    fn image(&self) -> MutexGuard<'_, Image> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A store on this disk (the previous one must be dropped: one node at a time).
    pub fn open(&self) -> MemStore {
        let mut image = self.image();
        image.dead = false;
        image.fault_in_writes = None;
        MemStore { disk: self.clone() }
    }

    /// Arms a fault for the `writes`-th write from now (1 = the next one).
    pub fn arm(&self, writes: u64, fault: WriteFault) {
        self.image().fault_in_writes = Some((writes.max(1), fault));
    }

    /// True once an armed fault fired (the node holding the store must be considered dead).
    pub fn fault_fired(&self) -> bool {
        self.image().dead
    }

    /// Writes made durable so far.
    pub fn writes(&self) -> u64 {
        self.image().writes
    }

    /// Every audit record of `shard` on this disk, in sequence order (the simulator's checks).
    pub fn audit_log_records(
        &self,
        shard: u32,
    ) -> Result<Vec<tuma_actors::ledger::AuditLogRecord>, StorageError> {
        super::audit_log::export(&self.image().history, shard, u64::MAX)
    }

    /// Every history row of `shard` on this disk, in sequence order (the simulator's checks
    /// read it without opening a store).
    pub fn history_rows(
        &self,
        shard: u32,
    ) -> Result<Vec<tuma_actors::ledger::HistoryRow>, StorageError> {
        history::export(&self.image().history, shard, u64::MAX)
    }

    /// Torn records recovery cut.
    pub fn torn_writes_cut(&self) -> u64 {
        self.image().torn_cut
    }
}

/// A [`LogStore`] on a [`MemDisk`].
pub struct MemStore {
    disk: MemDisk,
}

fn apply(image: &mut Image, batch: WriteBatch) -> u64 {
    let mut bytes = 0u64;
    for op in batch.ops {
        match op {
            WriteOp::Append {
                shard,
                entries,
                old_last,
            } => {
                let group = image.groups.entry(shard).or_default();
                let new_last = entries.last().map_or(0, |e| e.index);
                for entry in entries {
                    bytes += u64::from(entry.compute_size());
                    group.entries.insert(entry.index, entry);
                }
                for stale in new_last + 1..=old_last {
                    group.entries.remove(&stale);
                }
            }
            WriteOp::HardState { shard, state } => {
                image.groups.entry(shard).or_default().hard_state = Some(state);
            }
            WriteOp::ConfState { shard, state } => {
                image.groups.entry(shard).or_default().conf_state = Some(state);
            }
            WriteOp::Checkpoint {
                shard,
                snapshot,
                compact_from,
                compact_to,
            } => {
                bytes += snapshot.get_data().len() as u64;
                let group = image.groups.entry(shard).or_default();
                group.conf_state = Some(snapshot.get_metadata().get_conf_state().clone());
                group.snapshot = Some(snapshot);
                let doomed: Vec<u64> = group
                    .entries
                    .range(compact_from..=compact_to.max(compact_from))
                    .map(|(i, _)| *i)
                    .filter(|i| *i <= compact_to)
                    .collect();
                for index in doomed {
                    group.entries.remove(&index);
                }
            }
            WriteOp::Destroy { shard, removed_at } => {
                image.groups.remove(&shard);
                remove_history(image, shard);
                if let Some(index) = removed_at {
                    let kept = image.tombstones.entry(shard).or_default();
                    *kept = (*kept).max(index);
                }
            }
            WriteOp::ForgetTombstone { shard } => {
                image.tombstones.remove(&shard);
            }
            WriteOp::History {
                shard,
                rows,
                audit_log,
            }
            | WriteOp::SnapshotHistory {
                shard,
                rows,
                audit_log,
            } => image
                .history
                .extend(super::history::entries(shard, &rows, &audit_log)),
        }
    }
    bytes
}

fn remove_history(image: &mut Image, shard: u32) {
    let prefix = super::history::shard_prefix(shard);
    let doomed: Vec<Vec<u8>> = image
        .history
        .range(prefix.clone()..)
        .take_while(|(key, _)| key.starts_with(&prefix))
        .map(|(key, _)| key.clone())
        .collect();
    for key in doomed {
        image.history.remove(&key);
    }
}

impl LogStore for MemStore {
    fn load_shard(&self, shard: u32) -> Result<Option<DurableShard>, StorageError> {
        let image = self.disk.image();
        let Some(group) = image.groups.get(&shard) else {
            return Ok(None);
        };
        // Round-trip through the wire encoding, as a disk read would.
        let copy = |m: &dyn protobuf::Message| m.write_to_bytes().expect("encoding into memory");
        let mut durable = DurableShard::default();
        if let Some(hs) = &group.hard_state {
            durable.hard_state = HardState::parse_from_bytes(&copy(hs)).map_err(corrupt)?;
        }
        if let Some(cs) = &group.conf_state {
            durable.conf_state = ConfState::parse_from_bytes(&copy(cs)).map_err(corrupt)?;
        }
        durable.snapshot = group.snapshot.clone();
        durable.entries = group.entries.values().cloned().collect();
        Ok(Some(durable))
    }

    fn groups(&self) -> Result<Vec<u32>, StorageError> {
        Ok(self.disk.image().groups.keys().copied().collect())
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut image = self.disk.image();
        if image.dead {
            return Err(simulated("the node is down"));
        }
        if let Some((writes, fault)) = image.fault_in_writes {
            if writes <= 1 {
                image.fault_in_writes = None;
                image.dead = true;
                if fault == WriteFault::Torn {
                    // Part of the checksummed record reached the disk; recovery cuts it.
                    image.torn_cut += 1;
                }
                return Err(simulated(match fault {
                    WriteFault::CrashBeforeDurable => "crash before the write was durable",
                    WriteFault::Torn => "crash with a torn write",
                }));
            }
            image.fault_in_writes = Some((writes - 1, fault));
        }
        let bytes = apply(&mut image, batch);
        image.writes += 1;
        image.bytes += bytes;
        Ok(())
    }

    fn read_checkpoint(
        &self,
        group: u32,
        index: u64,
        offset: u64,
        len: usize,
    ) -> Result<Option<CheckpointSlice>, StorageError> {
        let image = self.disk.image();
        let Some(snapshot) = image
            .groups
            .get(&group)
            .and_then(|g| g.snapshot.as_ref())
            .filter(|s| s.get_metadata().index == index)
        else {
            return Ok(None);
        };
        Ok(Some(CheckpointSlice::of(snapshot.get_data(), offset, len)))
    }

    fn tombstones(&self) -> Result<BTreeMap<u32, u64>, StorageError> {
        Ok(self.disk.image().tombstones.clone())
    }

    fn identity(&self) -> Result<Option<ClusterIdentity>, StorageError> {
        Ok(self.disk.image().identity.clone())
    }

    fn set_identity(&self, identity: &ClusterIdentity) -> Result<(), StorageError> {
        self.disk.image().identity = Some(identity.clone());
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        self.disk.image().bytes
    }

    fn history_kv(&self) -> &dyn HistoryKv {
        self
    }
}

impl HistoryKv for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        HistoryKv::get(&self.disk.image().history, key)
    }

    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<history::Pairs, StorageError> {
        HistoryKv::range(&self.disk.image().history, start, end, limit)
    }
}

fn corrupt(error: protobuf::ProtobufError) -> StorageError {
    StorageError::Corrupt {
        key: "in-memory record".into(),
        reason: error.to_string(),
    }
}

fn simulated(what: &str) -> StorageError {
    StorageError::Io(std::io::Error::other(format!("simulated: {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn a_crash_mid_write_loses_that_batch_and_nothing_before_it() {
        let disk = MemDisk::new();
        let store = disk.open();
        let append = |entries: Vec<Entry>, old_last| WriteBatch {
            ops: vec![WriteOp::Append {
                shard: 1,
                entries,
                old_last,
            }],
        };
        store
            .write(append(vec![entry(1, 1), entry(2, 1)], 0))
            .unwrap();
        disk.arm(1, WriteFault::Torn);
        assert!(store.write(append(vec![entry(3, 1)], 2)).is_err());
        assert!(disk.fault_fired());
        assert!(
            store.write(append(vec![entry(3, 1)], 2)).is_err(),
            "a dead node writes nothing"
        );
        drop(store);
        let store = disk.open();
        let loaded = store.load_shard(1).unwrap().unwrap();
        assert_eq!(loaded.entries.len(), 2);
        assert_eq!(disk.torn_writes_cut(), 1);
        store.write(append(vec![entry(3, 2)], 2)).unwrap();
        assert_eq!(store.load_shard(1).unwrap().unwrap().entries[2].term, 2);
    }

    #[test]
    fn checkpoints_compact_and_destroy_forgets_the_group() {
        let disk = MemDisk::new();
        let store = disk.open();
        let mut batch = WriteBatch::default();
        batch.ops.push(WriteOp::Append {
            shard: 7,
            entries: (1..=5).map(|i| entry(i, 1)).collect(),
            old_last: 0,
        });
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = 3;
        batch.ops.push(WriteOp::Checkpoint {
            shard: 7,
            snapshot,
            compact_from: 1,
            compact_to: 3,
        });
        store.write(batch).unwrap();
        let loaded = store.load_shard(7).unwrap().unwrap();
        assert_eq!(
            loaded.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![4, 5]
        );
        store
            .write(WriteBatch {
                ops: vec![WriteOp::Destroy {
                    shard: 7,
                    removed_at: Some(9),
                }],
            })
            .unwrap();
        assert!(store.load_shard(7).unwrap().is_none());
        assert!(store.groups().unwrap().is_empty());
        assert_eq!(store.tombstones().unwrap().get(&7), Some(&9));
    }
}

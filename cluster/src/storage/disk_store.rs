//! The default [`LogStore`]: the Raft log, the groups' metadata and the history in an LSM tree
//! (fjall) under `log/`; checkpoint data in sled under `sled/`.
//!
//! Why an LSM tree for the log. Every engine loop appends each busy group's entries and hard
//! state, and every finished transfer writes five history keys on every replica; a checkpoint
//! then deletes the entries it covers. sled 0.34 spent about 20 µs of CPU per key written
//! (its page cache, node splits, background log threads), and with batched entries its leaves
//! grew past its blob threshold, so a leaf's rewrite went to a new file. fjall appends a loop's
//! writes to one journal (one write, one fsync per loop: [`DiskStore::write`]), keeps them in
//! a memtable, and writes sorted tables in the background: 2.7–4.3 µs of CPU per key here
//! (`examples/history_write_cost.rs`; BENCHMARKS.md, "The log and history out of sled"). Torn
//! journal tails are detected by its checksums and cut at recovery. sled keeps what it is good
//! at: large values written rarely, the checkpoints.
//!
//! Keys of the `log` keyspace: `l`, group (u32 BE), index (u64 BE) → a log entry; `h`, `c` or
//! `s` and the group → hard state, conf state, checkpoint metadata (a snapshot without its data);
//! `d` and the group → the stored checkpoint's index and data length (u64 BE each); `t` and the
//! group → the index at which a destroyed replica was removed (u64 BE); `identity` → the cluster
//! identity. Values are protobuf for Raft types and bincode for ours. (A checkpoint written
//! before chunking kept its data inside `s`; it is still read.) The `history` keyspace:
//! `history_store.rs`. In sled: `k`, group, index, chunk number (u32 BE) → the checkpoint's data
//! in chunks of [`CHECKPOINT_CHUNK_BYTES`], so a snapshot streams from disk a chunk at a time.
//!
//! A checkpoint's chunks are written and flushed before the `d` record naming them commits, and
//! the chunks it replaced are deleted after; chunks no `d` record names (a crash in between)
//! are deleted at open. A data directory from before kept everything in sled: it is moved to
//! the LSM tree at open, a bounded piece at a time. The directory carries a `LOCK` file held
//! with an exclusive lock for the life of the process, so two nodes cannot open it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::path::Path;

use raft::prelude::{ConfState, Entry, HardState, Snapshot};

use super::history::{self, HistoryKv};
use super::history_store::HistoryStore;
use super::{
    CheckpointSlice, ClusterIdentity, DurableShard, LogStore, StorageError, WriteBatch, WriteOp,
};

/// Tries to open a store while a just-dropped one's threads release its locks (20 ms apart: 2 s).
const OPEN_ATTEMPTS_MAX: u32 = 100;

/// sled's page cache by default (sled's own default is 1 GiB). sled holds only checkpoint
/// data, read when a snapshot streams or a node starts.
pub const CACHE_BYTES_DEFAULT: u64 = 64 << 20;

/// The LSM tree's block cache (history pages and lookups; the log is read only at start).
const LSM_CACHE_BYTES: u64 = 32 << 20;
/// The journal is kept at most this large (fjall's minimum) before memtables are flushed.
const JOURNAL_BYTES_MAX: u64 = 64 << 20;
/// A memtable of the log keyspace is written out to a table file at this size.
const LOG_MEMTABLE_BYTES: u64 = 16 << 20;
/// Background threads writing memtables out and compacting.
const LSM_WORKER_THREADS: usize = 1;

/// Checkpoint data is stored in chunks of this size.
pub const CHECKPOINT_CHUNK_BYTES: usize = 1 << 20;

/// Keys moved per step when an older data directory leaves sled.
const MOVE_KEYS: usize = 10_000;

/// The LSM tree (log, metadata, history), sled (checkpoint data), and the directory lock.
pub struct DiskStore {
    lsm: fjall::Database,
    log: fjall::Keyspace,
    /// History rows and audit records (also handed to other threads for reads).
    history: HistoryStore,
    chunks: sled::Db,
    /// Held (locked) until the store is dropped.
    _lock: File,
}

fn shard_key(tag: u8, shard: u32) -> [u8; 5] {
    let mut key = [0u8; 5];
    key[0] = tag;
    key[1..].copy_from_slice(&shard.to_be_bytes());
    key
}

fn entry_key(shard: u32, index: u64) -> [u8; 13] {
    let mut key = [0u8; 13];
    key[0] = b'l';
    key[1..5].copy_from_slice(&shard.to_be_bytes());
    key[5..].copy_from_slice(&index.to_be_bytes());
    key
}

fn chunk_prefix(shard: u32, index: u64) -> [u8; 13] {
    let mut key = [0u8; 13];
    key[0] = b'k';
    key[1..5].copy_from_slice(&shard.to_be_bytes());
    key[5..].copy_from_slice(&index.to_be_bytes());
    key
}

fn chunk_key(shard: u32, index: u64, chunk: u32) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[..13].copy_from_slice(&chunk_prefix(shard, index));
    key[13..].copy_from_slice(&chunk.to_be_bytes());
    key
}

/// The group and checkpoint index a chunk key names.
fn chunk_owner(key: &[u8]) -> Option<(u32, u64)> {
    let group = <[u8; 4]>::try_from(key.get(1..5)?).ok()?;
    let index = <[u8; 8]>::try_from(key.get(5..13)?).ok()?;
    Some((u32::from_be_bytes(group), u64::from_be_bytes(index)))
}

/// The stored checkpoint's index and data length (`d` + shard).
fn checkpoint_header(bytes: &[u8]) -> Result<(u64, u64), StorageError> {
    let corrupt = || StorageError::Corrupt {
        key: "checkpoint header".into(),
        reason: format!("{} bytes", bytes.len()),
    };
    let index = <[u8; 8]>::try_from(bytes.get(..8).ok_or_else(corrupt)?).map_err(|_| corrupt())?;
    let total =
        <[u8; 8]>::try_from(bytes.get(8..16).ok_or_else(corrupt)?).map_err(|_| corrupt())?;
    Ok((u64::from_be_bytes(index), u64::from_be_bytes(total)))
}

fn decode<M: protobuf::Message>(key: &str, bytes: &[u8]) -> Result<M, StorageError> {
    M::parse_from_bytes(bytes).map_err(|e| StorageError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

fn encode<M: protobuf::Message>(message: &M) -> Vec<u8> {
    message
        .write_to_bytes()
        .expect("encoding a raft message into memory cannot fail")
}

/// Retries `open` while it fails, briefly: a store this process just dropped may still hold
/// its locks for a moment from background threads.
fn open_retrying<T, E>(mut open: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let mut attempts = 0;
    loop {
        match open() {
            Err(_) if attempts < OPEN_ATTEMPTS_MAX => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl DiskStore {
    /// Opens (creating) the store in `dir`, taking the directory lock, with the default cache.
    pub fn open(dir: &Path) -> Result<DiskStore, StorageError> {
        DiskStore::open_with_cache(dir, CACHE_BYTES_DEFAULT)
    }

    /// Opens the store with a sled page cache of `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<DiskStore, StorageError> {
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        lock.try_lock()
            .map_err(|_| StorageError::Locked(dir.display().to_string()))?;
        // Holding LOCK, nobody else can be using the directory; the stores' own locks can still
        // be held for a moment by the threads of a store this process just dropped.
        let chunks = open_retrying(|| {
            sled::Config::new()
                .path(dir.join("sled"))
                .cache_capacity(cache_bytes)
                .mode(sled::Mode::HighThroughput)
                .open()
        })?;
        let lsm = open_retrying(|| {
            fjall::Database::builder(dir.join("log"))
                .cache_size(LSM_CACHE_BYTES)
                .max_journaling_size(JOURNAL_BYTES_MAX)
                .worker_threads(LSM_WORKER_THREADS)
                .manual_journal_persist(true)
                .open()
        })?;
        let log = lsm.keyspace("log", || {
            fjall::KeyspaceCreateOptions::default().max_memtable_size(LOG_MEMTABLE_BYTES)
        })?;
        let history = HistoryStore::in_database(&lsm)?;
        let store = DiskStore {
            lsm,
            log,
            history,
            chunks,
            _lock: lock,
        };
        store.move_out_of_sled()?;
        store.remove_unnamed_chunks()?;
        Ok(store)
    }

    /// Moves what an older data directory kept in sled — everything but checkpoint chunks —
    /// to the LSM tree, a bounded piece at a time, each piece durable there before it leaves
    /// sled (a crash in between copies it again: the same values).
    fn move_out_of_sled(&self) -> Result<(), StorageError> {
        loop {
            let mut pairs = Vec::with_capacity(MOVE_KEYS);
            let not_chunks = self
                .chunks
                .range(..&b"k"[..])
                .chain(self.chunks.range(&b"l"[..]..));
            for item in not_chunks.take(MOVE_KEYS) {
                let (key, value) = item?;
                pairs.push((key.to_vec(), value.to_vec()));
            }
            if pairs.is_empty() {
                return Ok(());
            }
            let mut removal = sled::Batch::default();
            let mut batch = self.lsm.batch();
            for (key, value) in pairs {
                removal.remove(key.as_slice());
                if key.starts_with(&history::prefix_of_all()) {
                    batch.insert(self.history.keyspace(), key, value);
                } else {
                    batch.insert(&self.log, key, value);
                }
            }
            batch.commit()?;
            self.persist()?;
            self.chunks.apply_batch(removal)?;
            self.chunks.flush()?;
        }
    }

    /// Deletes checkpoint chunks no `d` record names (a crash between writing a checkpoint's
    /// chunks and its record, or between the record and deleting the chunks it replaced).
    fn remove_unnamed_chunks(&self) -> Result<(), StorageError> {
        let mut named = BTreeMap::new();
        let mut unnamed = sled::Batch::default();
        let mut any = false;
        for item in self.chunks.scan_prefix([b'k']) {
            let (key, _) = item?;
            let Some((group, index)) = chunk_owner(&key) else {
                continue;
            };
            let named_index = match named.entry(group) {
                std::collections::btree_map::Entry::Occupied(known) => *known.get(),
                std::collections::btree_map::Entry::Vacant(new) => {
                    *new.insert(self.checkpoint_index(group)?)
                }
            };
            if named_index != Some(index) {
                unnamed.remove(key);
                any = true;
            }
        }
        if any {
            self.chunks.apply_batch(unnamed)?;
            self.chunks.flush()?;
        }
        Ok(())
    }

    /// The index of the checkpoint `group`'s `d` record names, if any.
    fn checkpoint_index(&self, group: u32) -> Result<Option<u64>, StorageError> {
        match self.log.get(shard_key(b'd', group))? {
            Some(header) => Ok(Some(checkpoint_header(&header)?.0)),
            None => Ok(None),
        }
    }

    /// Deletes `group`'s checkpoint chunks other than those of the checkpoint its `d` record
    /// names now.
    fn remove_replaced_chunks(&self, group: u32) -> Result<(), StorageError> {
        let keep = self.checkpoint_index(group)?;
        let mut removal = sled::Batch::default();
        for item in self.chunks.scan_prefix(shard_key(b'k', group)) {
            let (key, _) = item?;
            if chunk_owner(&key).map(|(_, index)| index) != keep {
                removal.remove(key);
            }
        }
        self.chunks.apply_batch(removal)?;
        Ok(())
    }

    /// Makes everything committed to the LSM tree so far durable (one fsync of its journal).
    fn persist(&self) -> Result<(), StorageError> {
        self.lsm.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }

    /// A checkpoint written before data was chunked: its data is inside the `s` record.
    fn read_inline_checkpoint(
        &self,
        group: u32,
        index: u64,
        offset: u64,
        len: usize,
    ) -> Result<Option<CheckpointSlice>, StorageError> {
        let Some(bytes) = self.log.get(shard_key(b's', group))? else {
            return Ok(None);
        };
        let snapshot = decode::<Snapshot>("checkpoint", &bytes)?;
        if snapshot.get_metadata().index != index {
            return Ok(None);
        }
        Ok(Some(CheckpointSlice::of(snapshot.get_data(), offset, len)))
    }

    /// Applies `batch` atomically; with `synced` (or when it holds a checkpoint or a removal),
    /// durably. Checkpoint chunks go to sled first (flushed), the rest is one commit of the LSM
    /// tree and one fsync of its journal; chunks and history rows the batch made stale go after.
    fn apply(&self, batch: WriteBatch, synced: bool) -> Result<(), StorageError> {
        // The log keyspace's writes, the last for a key winning (as the ops are ordered).
        let mut log = PendingWrites::default();
        let mut history_pairs = Vec::new();
        let mut new_chunks = sled::Batch::default();
        let mut chunks_written = false;
        // Groups whose older checkpoint chunks go once this batch is durable.
        let mut replaced_chunks = BTreeSet::new();
        // Replicas this batch removes, whose rows are deleted after it (unless a later op of
        // the batch writes the group's history again: then before that).
        let mut destroyed = BTreeSet::new();
        for op in batch.ops {
            match op {
                WriteOp::Append {
                    shard,
                    entries,
                    old_last,
                } => {
                    let new_last = entries.last().map_or(0, |e| e.index);
                    for entry in &entries {
                        log.put(&entry_key(shard, entry.index), encode(entry));
                    }
                    for stale in new_last + 1..=old_last {
                        log.delete(&entry_key(shard, stale));
                    }
                }
                WriteOp::HardState { shard, state } => {
                    log.put(&shard_key(b'h', shard), encode(&state))
                }
                WriteOp::ConfState { shard, state } => {
                    log.put(&shard_key(b'c', shard), encode(&state))
                }
                WriteOp::Checkpoint {
                    shard,
                    mut snapshot,
                    compact_from,
                    compact_to,
                } => {
                    let index = snapshot.get_metadata().index;
                    let data = std::mem::take(&mut snapshot.data);
                    for (number, chunk) in data.chunks(CHECKPOINT_CHUNK_BYTES).enumerate() {
                        new_chunks.insert(&chunk_key(shard, index, number as u32), chunk);
                        chunks_written = true;
                    }
                    replaced_chunks.insert(shard);
                    let mut header = [0u8; 16];
                    header[..8].copy_from_slice(&index.to_be_bytes());
                    header[8..].copy_from_slice(&(data.len() as u64).to_be_bytes());
                    log.put(&shard_key(b'd', shard), header.to_vec());
                    log.put(
                        &shard_key(b'c', shard),
                        encode(snapshot.get_metadata().get_conf_state()),
                    );
                    log.put(&shard_key(b's', shard), encode(&snapshot));
                    for index in compact_from..=compact_to {
                        log.delete(&entry_key(shard, index));
                    }
                }
                WriteOp::Destroy { shard, removed_at } => {
                    destroyed.insert(shard);
                    replaced_chunks.insert(shard);
                    for tag in [b'h', b'c', b's', b'd'] {
                        log.delete(&shard_key(tag, shard));
                    }
                    if let Some(index) = removed_at {
                        let tombstone = shard_key(b't', shard);
                        let kept = log
                            .read(&self.log, &tombstone)?
                            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
                            .map_or(0, u64::from_be_bytes);
                        log.put(&tombstone, index.max(kept).to_be_bytes().to_vec());
                    }
                    let entries = shard_key(b'l', shard);
                    for item in self.log.prefix(entries) {
                        log.delete(&item.key()?);
                    }
                    log.delete_prefix(&entries);
                }
                WriteOp::ForgetTombstone { shard } => log.delete(&shard_key(b't', shard)),
                WriteOp::History {
                    shard,
                    rows,
                    audit_log,
                } => {
                    if destroyed.remove(&shard) {
                        self.history.remove_shard(shard)?;
                    }
                    history_pairs.extend(history::entries(shard, &rows, &audit_log));
                }
                WriteOp::SnapshotHistory {
                    shard,
                    rows,
                    audit_log,
                } => {
                    // Written ahead of this batch in pieces of a bounded size (memory must not
                    // grow with a shard's history: see `examples/history_install_memory.rs`).
                    // Not atomic, and it need not be: rows are a deterministic function of the
                    // shard's log, so a row already here is the same row, and an install cut
                    // short is repeated by the next snapshot.
                    if destroyed.remove(&shard) {
                        self.history.remove_shard(shard)?;
                    }
                    self.history
                        .insert_in_pieces(history::entries(shard, &rows, &audit_log))?;
                }
            }
        }
        if chunks_written {
            // The chunks are durable before the record that names them.
            self.chunks.apply_batch(new_chunks)?;
            self.chunks.flush()?;
        }
        let mut commit = self.lsm.batch();
        for (key, value) in log.writes {
            match value {
                Some(value) => commit.insert(&self.log, key, value),
                None => commit.remove(&self.log, key),
            }
        }
        for (key, value) in history_pairs {
            commit.insert(self.history.keyspace(), key, value);
        }
        if !commit.is_empty() {
            commit.commit()?;
        }
        if synced || !replaced_chunks.is_empty() || !destroyed.is_empty() {
            self.persist()?;
        }
        for group in replaced_chunks {
            self.remove_replaced_chunks(group)?;
        }
        // A removed replica's rows go once its removal is durable (see `history_store.rs`).
        for shard in destroyed {
            self.history.remove_shard(shard)?;
        }
        Ok(())
    }
}

/// One batch's writes to the log keyspace, by key: a later op's write to a key replaces an
/// earlier one's (one commit must not carry two versions of a key).
#[derive(Default)]
struct PendingWrites {
    /// `None`: delete.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl PendingWrites {
    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.writes.insert(key.to_vec(), Some(value));
    }

    fn delete(&mut self, key: &[u8]) {
        self.writes.insert(key.to_vec(), None);
    }

    /// Deletes every key of this batch starting with `prefix`.
    fn delete_prefix(&mut self, prefix: &[u8]) {
        for (key, value) in self.writes.range_mut(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            *value = None;
        }
    }

    /// `key`'s value as this batch leaves it: its own write, else what `keyspace` holds.
    fn read(
        &self,
        keyspace: &fjall::Keyspace,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StorageError> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => Ok(keyspace.get(key)?.map(|v| v.to_vec())),
        }
    }
}

impl LogStore for DiskStore {
    fn load_shard(&self, shard: u32) -> Result<Option<DurableShard>, StorageError> {
        let hard = self.log.get(shard_key(b'h', shard))?;
        let conf = self.log.get(shard_key(b'c', shard))?;
        let snap = self.log.get(shard_key(b's', shard))?;
        if hard.is_none() && conf.is_none() && snap.is_none() {
            return Ok(None);
        }
        let mut durable = DurableShard::default();
        if let Some(bytes) = hard {
            durable.hard_state = decode::<HardState>("hard state", &bytes)?;
        }
        if let Some(bytes) = conf {
            durable.conf_state = decode::<ConfState>("conf state", &bytes)?;
        }
        if let Some(bytes) = snap {
            let mut snapshot = decode::<Snapshot>("checkpoint", &bytes)?;
            if let Some(header) = self.log.get(shard_key(b'd', shard))? {
                let (index, total) = checkpoint_header(&header)?;
                let mut data = Vec::with_capacity(total.min(1 << 30) as usize);
                for item in self.chunks.scan_prefix(chunk_prefix(shard, index)) {
                    data.extend_from_slice(&item?.1);
                }
                if data.len() as u64 != total || snapshot.get_metadata().index != index {
                    return Err(StorageError::Corrupt {
                        key: format!("checkpoint of group {shard}"),
                        reason: format!("{} of {total} bytes at index {index}", data.len()),
                    });
                }
                snapshot.data = data.into();
            }
            durable.snapshot = Some(snapshot);
        }
        for item in self.log.prefix(shard_key(b'l', shard)) {
            let (_, value) = item.into_inner()?;
            durable.entries.push(decode::<Entry>("log entry", &value)?);
        }
        Ok(Some(durable))
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.apply(batch, true)
    }

    fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.apply(batch, false)
    }

    fn groups(&self) -> Result<Vec<u32>, StorageError> {
        let mut groups = BTreeSet::new();
        for tag in [b'h', b'c', b's'] {
            for item in self.log.prefix([tag]) {
                let key = item.key()?;
                if let Ok(id) = <[u8; 4]>::try_from(&key[1..]) {
                    groups.insert(u32::from_be_bytes(id));
                }
            }
        }
        Ok(groups.into_iter().collect())
    }

    fn read_checkpoint(
        &self,
        group: u32,
        index: u64,
        offset: u64,
        len: usize,
    ) -> Result<Option<CheckpointSlice>, StorageError> {
        let Some(header) = self.log.get(shard_key(b'd', group))? else {
            return self.read_inline_checkpoint(group, index, offset, len);
        };
        let (stored, total) = checkpoint_header(&header)?;
        if stored != index {
            return Ok(None);
        }
        let end = offset.saturating_add(len as u64).min(total);
        let mut bytes = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let number = at / CHECKPOINT_CHUNK_BYTES as u64;
            let Some(chunk) = self.chunks.get(chunk_key(group, index, number as u32))? else {
                return Err(StorageError::Corrupt {
                    key: format!("checkpoint chunk {number} of group {group}"),
                    reason: "missing".into(),
                });
            };
            let from = (at - number * CHECKPOINT_CHUNK_BYTES as u64) as usize;
            let to = chunk.len().min(from + (end - at) as usize);
            if from >= to {
                return Err(StorageError::Corrupt {
                    key: format!("checkpoint chunk {number} of group {group}"),
                    reason: format!("{} bytes", chunk.len()),
                });
            }
            bytes.extend_from_slice(&chunk[from..to]);
            at += (to - from) as u64;
        }
        Ok(Some(CheckpointSlice { total, bytes }))
    }

    fn tombstones(&self) -> Result<BTreeMap<u32, u64>, StorageError> {
        let mut tombstones = BTreeMap::new();
        for item in self.log.prefix([b't']) {
            let (key, value) = item.into_inner()?;
            let (Ok(group), Ok(index)) = (
                <[u8; 4]>::try_from(&key[1..]),
                <[u8; 8]>::try_from(value.as_ref()),
            ) else {
                return Err(StorageError::Corrupt {
                    key: "tombstone".into(),
                    reason: format!("{} key bytes, {} value bytes", key.len(), value.len()),
                });
            };
            tombstones.insert(u32::from_be_bytes(group), u64::from_be_bytes(index));
        }
        Ok(tombstones)
    }

    fn identity(&self) -> Result<Option<ClusterIdentity>, StorageError> {
        let Some(bytes) = self.log.get(b"identity")? else {
            return Ok(None);
        };
        let (identity, _) = bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
            .map_err(|e| StorageError::Corrupt {
                key: "identity".into(),
                reason: e.to_string(),
            })?;
        Ok(Some(identity))
    }

    fn set_identity(&self, identity: &ClusterIdentity) -> Result<(), StorageError> {
        let bytes = bincode::serde::encode_to_vec(identity, bincode::config::standard())
            .expect("encoding a plain struct cannot fail");
        self.log.insert(&b"identity"[..], bytes)?;
        self.persist()
    }

    fn history_kv(&self) -> &dyn HistoryKv {
        &self.history
    }

    fn history_reader(&self) -> Option<Box<dyn HistoryKv + Send>> {
        Some(Box::new(self.history.clone()))
    }

    fn size_on_disk(&self) -> u64 {
        self.chunks.size_on_disk().unwrap_or(0) + self.lsm.disk_space().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 3].into(),
            ..Default::default()
        }
    }

    #[test]
    fn appends_truncates_checkpoints_and_reloads() {
        let dir = std::env::temp_dir().join(format!("tuma-disk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = DiskStore::open(&dir).unwrap();
            assert!(
                matches!(DiskStore::open(&dir), Err(StorageError::Locked(_))),
                "second open must fail"
            );
            assert!(store.load_shard(3).unwrap().is_none());
            let hs = HardState {
                term: 2,
                commit: 4,
                ..Default::default()
            };
            let mut batch = WriteBatch::default();
            batch.ops.push(WriteOp::Append {
                shard: 3,
                entries: (1..=6).map(|i| entry(i, 1)).collect(),
                old_last: 0,
            });
            batch.ops.push(WriteOp::HardState {
                shard: 3,
                state: hs.clone(),
            });
            store.write(batch).unwrap();
            // A new leader overwrites the tail from index 5 with a shorter one.
            let batch = WriteBatch {
                ops: vec![WriteOp::Append {
                    shard: 3,
                    entries: vec![entry(5, 2)],
                    old_last: 6,
                }],
            };
            store.write(batch).unwrap();
            let mut snapshot = Snapshot::default();
            snapshot.mut_metadata().index = 3;
            snapshot.mut_metadata().term = 1;
            snapshot.data = b"ledger".to_vec().into();
            let batch = WriteBatch {
                ops: vec![WriteOp::Checkpoint {
                    shard: 3,
                    snapshot,
                    compact_from: 1,
                    compact_to: 3,
                }],
            };
            store.write(batch).unwrap();
        }
        let store = DiskStore::open(&dir).unwrap();
        let shard = store.load_shard(3).unwrap().unwrap();
        assert_eq!(shard.hard_state.term, 2);
        assert_eq!(
            shard
                .entries
                .iter()
                .map(|e| (e.index, e.term))
                .collect::<Vec<_>>(),
            vec![(4, 1), (5, 2)]
        );
        assert_eq!(&shard.snapshot.unwrap().data[..], b"ledger");
        let identity = ClusterIdentity {
            node_id: 1,
            shards: 8,
            replicas: 3,
            members: vec![1, 2, 3],
        };
        store.set_identity(&identity).unwrap();
        assert_eq!(store.identity().unwrap(), Some(identity));
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn checkpoint(index: u64, data: Vec<u8>) -> WriteBatch {
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = 1;
        snapshot.data = data.into();
        WriteBatch {
            ops: vec![WriteOp::Checkpoint {
                shard: 2,
                snapshot,
                compact_from: 1,
                compact_to: 0,
            }],
        }
    }

    #[test]
    fn checkpoints_are_stored_in_chunks_and_read_in_slices() {
        let dir = std::env::temp_dir().join(format!("tuma-disk-chunks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let big: Vec<u8> = (0..CHECKPOINT_CHUNK_BYTES * 5 / 2)
            .map(|i| (i % 253) as u8)
            .collect();
        {
            let store = DiskStore::open(&dir).unwrap();
            store.write(checkpoint(10, big.clone())).unwrap();
            // A slice across a chunk boundary, and the tail.
            let from = CHECKPOINT_CHUNK_BYTES as u64 - 5;
            let slice = store.read_checkpoint(2, 10, from, 10).unwrap().unwrap();
            assert_eq!(slice.total, big.len() as u64);
            assert_eq!(slice.bytes, big[from as usize..from as usize + 10]);
            let tail = store
                .read_checkpoint(2, 10, big.len() as u64 - 3, 100)
                .unwrap()
                .unwrap();
            assert_eq!(tail.bytes, big[big.len() - 3..]);
            assert!(
                store.read_checkpoint(2, 9, 0, 10).unwrap().is_none(),
                "only the stored checkpoint's index is served"
            );
        }
        let store = DiskStore::open(&dir).unwrap();
        let loaded = store.load_shard(2).unwrap().unwrap().snapshot.unwrap();
        assert_eq!(
            &loaded.data[..],
            &big[..],
            "a restart reassembles the chunks"
        );
        // A smaller checkpoint replaces it; none of the old chunks stay behind.
        store.write(checkpoint(20, vec![7; 100])).unwrap();
        assert!(store.read_checkpoint(2, 10, 0, 10).unwrap().is_none());
        let chunks = store.chunks.scan_prefix(shard_key(b'k', 2)).count();
        assert_eq!(chunks, 1);
        assert_eq!(
            &store.load_shard(2).unwrap().unwrap().snapshot.unwrap().data[..],
            &[7; 100][..]
        );
        store
            .write(WriteBatch {
                ops: vec![WriteOp::Destroy {
                    shard: 2,
                    removed_at: None,
                }],
            })
            .unwrap();
        assert_eq!(store.chunks.scan_prefix(shard_key(b'k', 2)).count(), 0);
        assert!(store.load_shard(2).unwrap().is_none());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_checkpoint_written_before_chunking_is_still_read() {
        let dir = std::env::temp_dir().join(format!("tuma-disk-inline-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = DiskStore::open(&dir).unwrap();
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = 7;
        snapshot.data = b"an older node's ledger".to_vec().into();
        store
            .log
            .insert(shard_key(b's', 4).to_vec(), encode(&snapshot))
            .unwrap();
        let slice = store.read_checkpoint(4, 7, 3, 5).unwrap().unwrap();
        assert_eq!(slice.bytes, b"older".to_vec());
        assert_eq!(
            &store.load_shard(4).unwrap().unwrap().snapshot.unwrap().data[..],
            b"an older node's ledger"
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn history_rows(account: &str, count: u64) -> Vec<tuma_actors::ledger::HistoryRow> {
        use tuma_actors::ledger::{HistoryRow, HistorySide};
        use tuma_actors::outcome::ResultCode;
        use tuma_actors::transfer::{TransferId, TransferKind};
        use tuma_actors::{AccountRef, Money};

        (0..count)
            .map(|seq| HistoryRow {
                seq,
                account: AccountRef::parse(account).unwrap(),
                side: HistorySide::Payer,
                transfer: TransferId::parse(&format!("snap-{seq}")).unwrap(),
                receipt: None,
                kind: TransferKind::SendMoney,
                counterparty: AccountRef::parse("254711000002").unwrap(),
                amount_cents: -100,
                fee: Money::ZERO,
                result: ResultCode::Success,
                completed_ms: seq,
                balance_after: Money::ZERO,
            })
            .collect()
    }

    fn seqs_of(store: &DiskStore, shard: u32, account: &str) -> Vec<u64> {
        let account = tuma_actors::AccountRef::parse(account).unwrap();
        let page = store
            .history_page(shard, &account, None, 100, true)
            .unwrap();
        page.iter().map(|r| r.seq).collect()
    }

    fn history_op(shard: u32, rows: Vec<tuma_actors::ledger::HistoryRow>) -> WriteOp {
        WriteOp::History {
            shard,
            rows,
            audit_log: Vec::new(),
        }
    }

    /// A snapshot's rows, written in pieces outside the batch, read back like rows the
    /// engine wrote; written again (an install repeated), nothing changes.
    #[test]
    fn a_snapshots_history_reads_back_and_a_repeated_install_changes_nothing() {
        use tuma_actors::transfer::TransferId;

        let dir = std::env::temp_dir().join(format!("tuma-disk-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = DiskStore::open(&dir).unwrap();
        let rows = history_rows("254711000001", 7);
        for _ in 0..2 {
            let ops = vec![WriteOp::SnapshotHistory {
                shard: 5,
                rows: rows.clone(),
                audit_log: Vec::new(),
            }];
            store.write(WriteBatch { ops }).unwrap();
            assert_eq!(seqs_of(&store, 5, "254711000001"), [6, 5, 4, 3, 2, 1, 0]);
            let found = store
                .history_by_transfer(5, &TransferId::parse("snap-3").unwrap())
                .unwrap();
            assert_eq!(found.as_ref(), Some(&rows[3]));
            assert_eq!(store.history_export(5, u64::MAX).unwrap(), rows);
        }
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Rows written unsynced and then a checkpoint: after a reopen the rows are there.
    /// A removed replica's rows go; a replica removed and made again in one batch keeps
    /// the rows its snapshot brought.
    #[test]
    fn history_outlives_a_reopen_and_goes_with_its_replica() {
        let dir =
            std::env::temp_dir().join(format!("tuma-disk-history-dur-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = DiskStore::open(&dir).unwrap();
        let ops = vec![
            history_op(5, history_rows("254711000001", 3)),
            history_op(6, history_rows("254711000009", 2)),
        ];
        store.write_unsynced(WriteBatch { ops }).unwrap();
        store.write(checkpoint(4, b"state".to_vec())).unwrap();
        drop(store);
        let store = DiskStore::open(&dir).unwrap();
        assert_eq!(seqs_of(&store, 5, "254711000001"), [2, 1, 0]);
        assert_eq!(seqs_of(&store, 6, "254711000009"), [1, 0]);

        let ops = vec![WriteOp::Destroy {
            shard: 5,
            removed_at: Some(9),
        }];
        store.write(WriteBatch { ops }).unwrap();
        assert!(seqs_of(&store, 5, "254711000001").is_empty());
        assert_eq!(seqs_of(&store, 6, "254711000009"), [1, 0]);

        let ops = vec![
            WriteOp::Destroy {
                shard: 6,
                removed_at: None,
            },
            WriteOp::SnapshotHistory {
                shard: 6,
                rows: history_rows("254711000009", 4),
                audit_log: Vec::new(),
            },
        ];
        store.write(WriteBatch { ops }).unwrap();
        assert_eq!(seqs_of(&store, 6, "254711000009"), [3, 2, 1, 0]);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A data directory from before kept everything in sled: at open it moves to the LSM
    /// tree (log, metadata, history), and only checkpoint chunks stay in sled.
    #[test]
    fn what_an_older_node_kept_in_sled_moves_to_the_lsm_tree() {
        let dir = std::env::temp_dir().join(format!("tuma-disk-move-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let rows = history_rows("254711000001", MOVE_KEYS as u64 + 3);
        let hard_state = HardState {
            term: 3,
            commit: 12,
            ..Default::default()
        };
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = 10;
        snapshot.mut_metadata().term = 2;
        let identity = ClusterIdentity {
            node_id: 2,
            shards: 6,
            replicas: 3,
            members: vec![1, 2, 3],
        };
        {
            let db = sled::Config::new().path(dir.join("sled")).open().unwrap();
            for (key, value) in history::entries(5, &rows, &[]) {
                db.insert(key, value).unwrap();
            }
            db.insert(shard_key(b'h', 5), encode(&hard_state)).unwrap();
            db.insert(shard_key(b's', 5), encode(&snapshot)).unwrap();
            let mut header = [0u8; 16];
            header[..8].copy_from_slice(&10u64.to_be_bytes());
            header[8..].copy_from_slice(&5u64.to_be_bytes());
            db.insert(shard_key(b'd', 5), &header).unwrap();
            db.insert(chunk_key(5, 10, 0), b"state").unwrap();
            db.insert(chunk_key(5, 7, 0), b"older").unwrap();
            for index in 11..=12 {
                db.insert(entry_key(5, index), encode(&entry(index, 3)))
                    .unwrap();
            }
            db.insert(shard_key(b't', 9), &4u64.to_be_bytes()).unwrap();
            let bytes =
                bincode::serde::encode_to_vec(&identity, bincode::config::standard()).unwrap();
            db.insert(b"identity", bytes).unwrap();
            db.flush().unwrap();
        }
        let store = DiskStore::open(&dir).unwrap();
        assert_eq!(store.history_export(5, u64::MAX).unwrap(), rows);
        let shard = store.load_shard(5).unwrap().unwrap();
        assert_eq!(shard.hard_state, hard_state);
        assert_eq!(&shard.snapshot.unwrap().data[..], b"state");
        let indexes: Vec<u64> = shard.entries.iter().map(|e| e.index).collect();
        assert_eq!(indexes, [11, 12]);
        assert_eq!(store.tombstones().unwrap().get(&9), Some(&4));
        assert_eq!(store.identity().unwrap(), Some(identity));
        assert_eq!(store.groups().unwrap(), [5]);
        let left: Vec<Vec<u8>> = store
            .chunks
            .iter()
            .keys()
            .map(|k| k.unwrap().to_vec())
            .collect();
        assert_eq!(
            left,
            [chunk_key(5, 10, 0).to_vec()],
            "only the named chunk stays in sled"
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// One batch that appends a group's entries and then removes the group leaves nothing of
    /// it; one that writes a tombstone twice keeps the later.
    #[test]
    fn a_later_op_of_a_batch_wins_over_an_earlier_one() {
        let dir = std::env::temp_dir().join(format!("tuma-disk-order-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = DiskStore::open(&dir).unwrap();
        let ops = vec![
            WriteOp::Append {
                shard: 4,
                entries: (1..=3).map(|i| entry(i, 1)).collect(),
                old_last: 0,
            },
            WriteOp::HardState {
                shard: 4,
                state: HardState::default(),
            },
            WriteOp::Destroy {
                shard: 4,
                removed_at: Some(5),
            },
            WriteOp::Destroy {
                shard: 4,
                removed_at: Some(3),
            },
        ];
        store.write(WriteBatch { ops }).unwrap();
        assert!(store.load_shard(4).unwrap().is_none());
        assert_eq!(store.log.prefix(shard_key(b'l', 4)).count(), 0);
        assert_eq!(
            store.tombstones().unwrap().get(&4),
            Some(&5),
            "the larger index stays"
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every journal file of the LSM tree under `dir`, largest last.
    fn journals(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(at) = dirs.pop() {
            for item in std::fs::read_dir(&at).unwrap() {
                let path = item.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "jnl") {
                    found.push(path);
                }
            }
        }
        found.sort_by_key(|p| p.metadata().unwrap().len());
        found
    }

    /// The journal cut at many offsets (a torn write at the tail), sometimes followed by
    /// garbage: the store opens, and holds whole batches, in order, each entry with the hard
    /// state written beside it — never half a batch.
    #[test]
    fn a_journal_cut_anywhere_recovers_whole_batches_in_order() {
        const BATCHES: u64 = 20;
        const PER_BATCH: u64 = 5;
        let mut lost_some = 0;
        for cut in 0..12u64 {
            let dir =
                std::env::temp_dir().join(format!("tuma-disk-torn-{cut}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            {
                let store = DiskStore::open(&dir).unwrap();
                for b in 0..BATCHES {
                    let first = b * PER_BATCH + 1;
                    let last = first + PER_BATCH - 1;
                    let ops = vec![
                        WriteOp::Append {
                            shard: 1,
                            entries: (first..=last).map(|i| entry(i, 1)).collect(),
                            old_last: 0,
                        },
                        WriteOp::HardState {
                            shard: 1,
                            state: HardState {
                                term: 1,
                                commit: last,
                                ..Default::default()
                            },
                        },
                    ];
                    store.write(WriteBatch { ops }).unwrap();
                }
            }
            let journal = journals(&dir.join("log")).pop().expect("a journal");
            // fjall preallocates its journal with zeros: cut within what was written.
            let bytes = std::fs::read(&journal).unwrap();
            let written = bytes.iter().rposition(|b| *b != 0).map_or(0, |at| at + 1) as u64;
            let file = OpenOptions::new().write(true).open(&journal).unwrap();
            file.set_len(written * (cut * 2 + 1) / 25).unwrap();
            if cut % 2 == 1 {
                use std::io::{Seek, Write};
                let mut file = file;
                file.seek(std::io::SeekFrom::End(0)).unwrap();
                file.write_all(&[0xA5; 37]).unwrap();
            }
            let store = DiskStore::open(&dir).unwrap();
            let (indexes, commit) = match store.load_shard(1).unwrap() {
                Some(shard) => (
                    shard.entries.iter().map(|e| e.index).collect::<Vec<_>>(),
                    shard.hard_state.commit,
                ),
                None => (Vec::new(), 0),
            };
            let kept = indexes.len() as u64;
            assert_eq!(
                kept % PER_BATCH,
                0,
                "cut {cut}: whole batches only: {indexes:?}"
            );
            assert_eq!(
                indexes,
                (1..=kept).collect::<Vec<_>>(),
                "cut {cut}: in order"
            );
            assert_eq!(
                commit, kept,
                "cut {cut}: the hard state of the last batch kept"
            );
            if kept < BATCHES * PER_BATCH {
                lost_some += 1;
            }
            drop(store);
            std::fs::remove_dir_all(&dir).unwrap();
        }
        assert!(lost_some > 0, "the cuts reached written batches");
    }
}

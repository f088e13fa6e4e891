//! The default [`LogStore`] on sled 0.34.
//!
//! Keys: `l` + shard (u32 BE) + index (u64 BE) → a log entry; `h`/`c`/`s` + shard → hard state,
//! conf state, checkpoint metadata (a snapshot without its data); `d` + shard → the stored
//! checkpoint's index and data length (u64 BE each); `k` + shard + index + chunk (u32 BE) → the
//! checkpoint's data in chunks of [`CHECKPOINT_CHUNK_BYTES`], so a snapshot streams from disk a
//! chunk at a time; `t` + shard → the index at which a destroyed replica was removed (u64 BE);
//! `identity` → the cluster identity. Values are protobuf for Raft types and bincode for ours.
//! (A checkpoint written before chunking kept its data inside `s`; it is still read.) The data directory carries a `LOCK` file held with an exclusive lock for
//! the life of the process, so two nodes cannot open the same directory.

use std::fs::{File, OpenOptions};
use std::path::Path;

use raft::prelude::{ConfState, Entry, HardState, Snapshot};

use super::history::{self, HistoryKv};
use super::{
    CheckpointSlice, ClusterIdentity, DurableShard, LogStore, StorageError, WriteBatch, WriteOp,
};

/// Tries to open sled while a just-dropped store releases its lock (20 ms apart: 2 s).
const SLED_OPEN_ATTEMPTS_MAX: u32 = 100;

/// sled's page cache by default (sled's own default is 1 GiB). The engine keeps every shard's
/// log tail and ledger in memory and never reads the log back while running, so a small cache
/// costs no throughput.
pub const CACHE_BYTES_DEFAULT: u64 = 64 << 20;

/// Checkpoint data is stored in chunks of this size.
pub const CHECKPOINT_CHUNK_BYTES: usize = 1 << 20;

/// sled plus the directory lock.
pub struct SledStore {
    db: sled::Db,
    /// The same database, for the history queries (also handed to other threads).
    history: SledHistory,
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

impl SledStore {
    /// Opens (creating) the store in `dir`, taking the directory lock, with the default cache.
    pub fn open(dir: &Path) -> Result<SledStore, StorageError> {
        SledStore::open_with_cache(dir, CACHE_BYTES_DEFAULT)
    }

    /// Opens the store with a page cache of `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<SledStore, StorageError> {
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        lock.try_lock()
            .map_err(|_| StorageError::Locked(dir.display().to_string()))?;
        // Holding LOCK, nobody else can be using the directory; sled's own file lock can still be
        // held for a moment by the background threads of a store this process just dropped, so
        // an I/O error from opening is retried briefly before it is reported.
        let mut attempts = 0;
        let db = loop {
            let opened = sled::Config::new()
                .path(dir.join("sled"))
                .cache_capacity(cache_bytes)
                .mode(sled::Mode::HighThroughput)
                .open();
            match opened {
                Err(sled::Error::Io(_)) if attempts < SLED_OPEN_ATTEMPTS_MAX => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        Ok(SledStore {
            history: SledHistory(db.clone()),
            db,
            _lock: lock,
        })
    }
}

impl SledStore {
    /// Removes every history key of `shard` (a destroyed replica).
    fn remove_history(&self, shard: u32, batch: &mut sled::Batch) -> Result<(), StorageError> {
        for item in self.db.scan_prefix(history::shard_prefix(shard)) {
            let (key, _) = item?;
            batch.remove(key);
        }
        Ok(())
    }

    /// Removes every stored chunk of `shard`'s checkpoint data, and those this batch wrote.
    fn remove_chunks(
        &self,
        shard: u32,
        batch: &mut sled::Batch,
        written: &mut std::collections::BTreeMap<u32, Vec<[u8; 17]>>,
    ) -> Result<(), StorageError> {
        for key in written.remove(&shard).unwrap_or_default() {
            batch.remove(&key);
        }
        for item in self.db.scan_prefix(shard_key(b'k', shard)) {
            let (key, _) = item?;
            batch.remove(key);
        }
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
        let Some(bytes) = self.db.get(shard_key(b's', group))? else {
            return Ok(None);
        };
        let snapshot = decode::<Snapshot>("checkpoint", &bytes)?;
        if snapshot.get_metadata().index != index {
            return Ok(None);
        }
        Ok(Some(CheckpointSlice::of(snapshot.get_data(), offset, len)))
    }
}

impl LogStore for SledStore {
    fn load_shard(&self, shard: u32) -> Result<Option<DurableShard>, StorageError> {
        let hard = self.db.get(shard_key(b'h', shard))?;
        let conf = self.db.get(shard_key(b'c', shard))?;
        let snap = self.db.get(shard_key(b's', shard))?;
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
            if let Some(header) = self.db.get(shard_key(b'd', shard))? {
                let (index, total) = checkpoint_header(&header)?;
                let mut data = Vec::with_capacity(total.min(1 << 30) as usize);
                for item in self.db.scan_prefix(chunk_prefix(shard, index)) {
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
        for item in self.db.scan_prefix(shard_key(b'l', shard)) {
            let (_, value) = item?;
            durable.entries.push(decode::<Entry>("log entry", &value)?);
        }
        Ok(Some(durable))
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        self.write_unsynced(batch)?;
        self.db.flush()?;
        Ok(())
    }

    fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut sled_batch = sled::Batch::default();
        // Checkpoint chunks this batch writes, per group (a later op of the same batch may
        // replace or destroy them before the database sees them).
        let mut written_chunks: std::collections::BTreeMap<u32, Vec<[u8; 17]>> =
            std::collections::BTreeMap::new();
        for op in batch.ops {
            match op {
                WriteOp::Append {
                    shard,
                    entries,
                    old_last,
                } => {
                    let new_last = entries.last().map_or(0, |e| e.index);
                    for entry in &entries {
                        sled_batch.insert(&entry_key(shard, entry.index), encode(entry));
                    }
                    for stale in new_last + 1..=old_last {
                        sled_batch.remove(&entry_key(shard, stale));
                    }
                }
                WriteOp::HardState { shard, state } => {
                    sled_batch.insert(&shard_key(b'h', shard), encode(&state))
                }
                WriteOp::ConfState { shard, state } => {
                    sled_batch.insert(&shard_key(b'c', shard), encode(&state))
                }
                WriteOp::Checkpoint {
                    shard,
                    mut snapshot,
                    compact_from,
                    compact_to,
                } => {
                    self.remove_chunks(shard, &mut sled_batch, &mut written_chunks)?;
                    let index = snapshot.get_metadata().index;
                    let data = std::mem::take(&mut snapshot.data);
                    let chunks = written_chunks.entry(shard).or_default();
                    for (number, chunk) in data.chunks(CHECKPOINT_CHUNK_BYTES).enumerate() {
                        let key = chunk_key(shard, index, number as u32);
                        sled_batch.insert(&key, chunk);
                        chunks.push(key);
                    }
                    let mut header = [0u8; 16];
                    header[..8].copy_from_slice(&index.to_be_bytes());
                    header[8..].copy_from_slice(&(data.len() as u64).to_be_bytes());
                    sled_batch.insert(&shard_key(b'd', shard), &header);
                    sled_batch.insert(
                        &shard_key(b'c', shard),
                        encode(snapshot.get_metadata().get_conf_state()),
                    );
                    sled_batch.insert(&shard_key(b's', shard), encode(&snapshot));
                    for index in compact_from..=compact_to {
                        sled_batch.remove(&entry_key(shard, index));
                    }
                }
                WriteOp::Destroy { shard, removed_at } => {
                    for tag in [b'h', b'c', b's', b'd'] {
                        sled_batch.remove(&shard_key(tag, shard));
                    }
                    self.remove_chunks(shard, &mut sled_batch, &mut written_chunks)?;
                    if let Some(index) = removed_at {
                        let kept = self
                            .db
                            .get(shard_key(b't', shard))?
                            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                            .map_or(0, u64::from_be_bytes);
                        sled_batch.insert(&shard_key(b't', shard), &index.max(kept).to_be_bytes());
                    }
                    for item in self.db.scan_prefix(shard_key(b'l', shard)) {
                        let (key, _) = item?;
                        sled_batch.remove(key);
                    }
                    self.remove_history(shard, &mut sled_batch)?;
                }
                WriteOp::ForgetTombstone { shard } => sled_batch.remove(&shard_key(b't', shard)),
                WriteOp::History {
                    shard,
                    rows,
                    audit_log,
                } => {
                    for (key, value) in history::entries(shard, &rows, &audit_log) {
                        sled_batch.insert(key, value);
                    }
                }
                WriteOp::SnapshotHistory {
                    shard,
                    rows,
                    audit_log,
                } => {
                    // Written key by key ahead of this batch: sled's memory grows with a batch's
                    // size, not with its cache (1.2M rows took 6 GiB in 10,000-row batches,
                    // 50 MiB in 500-row batches, 40 MiB key by key; on a node installing 0.7M
                    // rows, 500-row batches peaked at 2.2 GiB, key by key at 1.4 GiB: see
                    // `examples/history_install_memory.rs`). Not atomic, and it need not be:
                    // rows are a deterministic function of the shard's log, so a row already
                    // here is the same row, and an install cut short is repeated by the next
                    // snapshot.
                    for (key, value) in history::entries(shard, &rows, &audit_log) {
                        self.db.insert(key, value)?;
                    }
                }
            }
        }
        self.db.apply_batch(sled_batch)?;
        Ok(())
    }

    fn groups(&self) -> Result<Vec<u32>, StorageError> {
        let mut groups = std::collections::BTreeSet::new();
        for tag in [b'h', b'c', b's'] {
            for item in self.db.scan_prefix([tag]) {
                let (key, _) = item?;
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
        let Some(header) = self.db.get(shard_key(b'd', group))? else {
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
            let Some(chunk) = self.db.get(chunk_key(group, index, number as u32))? else {
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

    fn tombstones(&self) -> Result<std::collections::BTreeMap<u32, u64>, StorageError> {
        let mut tombstones = std::collections::BTreeMap::new();
        for item in self.db.scan_prefix([b't']) {
            let (key, value) = item?;
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
        let Some(bytes) = self.db.get(b"identity")? else {
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
        self.db.insert(b"identity", bytes)?;
        self.db.flush()?;
        Ok(())
    }

    fn history_kv(&self) -> &dyn HistoryKv {
        &self.history
    }

    fn history_reader(&self) -> Option<Box<dyn HistoryKv + Send>> {
        Some(Box::new(SledHistory(self.db.clone())))
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// The history of a sled database, readable from any thread (sled handles are shared).
struct SledHistory(sled::Db);

impl HistoryKv for SledHistory {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.0.get(key)?.map(|v| v.to_vec()))
    }

    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<history::Pairs, StorageError> {
        let mut found = Vec::new();
        for item in self.0.range(start..end).take(limit) {
            let (key, value) = item?;
            found.push((key.to_vec(), value.to_vec()));
        }
        Ok(found)
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
        let dir = std::env::temp_dir().join(format!("tuma-sled-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = SledStore::open(&dir).unwrap();
            assert!(
                matches!(SledStore::open(&dir), Err(StorageError::Locked(_))),
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
        let store = SledStore::open(&dir).unwrap();
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
        let dir = std::env::temp_dir().join(format!("tuma-sled-chunks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let big: Vec<u8> = (0..CHECKPOINT_CHUNK_BYTES * 5 / 2)
            .map(|i| (i % 253) as u8)
            .collect();
        {
            let store = SledStore::open(&dir).unwrap();
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
        let store = SledStore::open(&dir).unwrap();
        let loaded = store.load_shard(2).unwrap().unwrap().snapshot.unwrap();
        assert_eq!(
            &loaded.data[..],
            &big[..],
            "a restart reassembles the chunks"
        );
        // A smaller checkpoint replaces it; none of the old chunks stay behind.
        store.write(checkpoint(20, vec![7; 100])).unwrap();
        assert!(store.read_checkpoint(2, 10, 0, 10).unwrap().is_none());
        let chunks = store.db.scan_prefix(shard_key(b'k', 2)).count();
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
        assert_eq!(store.db.scan_prefix(shard_key(b'k', 2)).count(), 0);
        assert!(store.load_shard(2).unwrap().is_none());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_checkpoint_written_before_chunking_is_still_read() {
        let dir = std::env::temp_dir().join(format!("tuma-sled-inline-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SledStore::open(&dir).unwrap();
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = 7;
        snapshot.data = b"an older node's ledger".to_vec().into();
        store
            .db
            .insert(shard_key(b's', 4), encode(&snapshot))
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

    /// A snapshot's rows, written key by key outside the batch, read back like rows the
    /// engine wrote; written again (an install repeated), nothing changes.
    #[test]
    fn a_snapshots_history_reads_back_and_a_repeated_install_changes_nothing() {
        use tuma_actors::ledger::{HistoryRow, HistorySide};
        use tuma_actors::outcome::ResultCode;
        use tuma_actors::transfer::{TransferId, TransferKind};
        use tuma_actors::{AccountRef, Money};

        let dir = std::env::temp_dir().join(format!("tuma-sled-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SledStore::open(&dir).unwrap();
        let alice = AccountRef::parse("254711000001").unwrap();
        let rows: Vec<HistoryRow> = (0..7)
            .map(|seq| HistoryRow {
                seq,
                account: alice.clone(),
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
            .collect();
        for _ in 0..2 {
            let ops = vec![WriteOp::SnapshotHistory {
                shard: 5,
                rows: rows.clone(),
                audit_log: Vec::new(),
            }];
            store.write(WriteBatch { ops }).unwrap();
            let page = store.history_page(5, &alice, None, 100, true).unwrap();
            let seqs: Vec<u64> = page.iter().map(|r| r.seq).collect();
            assert_eq!(seqs, [6, 5, 4, 3, 2, 1, 0]);
            let found = store
                .history_by_transfer(5, &TransferId::parse("snap-3").unwrap())
                .unwrap();
            assert_eq!(found.as_ref(), Some(&rows[3]));
            assert_eq!(store.history_export(5, u64::MAX).unwrap(), rows);
        }
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

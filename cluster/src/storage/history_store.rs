//! Where a node keeps its shards' history rows and audit records: a keyspace of the node's
//! LSM tree (fjall), beside the log's (see `disk_store.rs`). The keys and values are
//! `history.rs`'s.
//!
//! Durability. Rows are a deterministic function of the shard's log, and a restart replays the
//! log from the newest checkpoint, writing the rows of every entry after it again. They share
//! the log's journal, so the group commit that makes a checkpoint durable makes every row
//! written before it durable too. A replica's removal deletes its rows after the removal itself
//! is durable: a crash in between leaves rows of a group not here, which a replica made here
//! again later overwrites with the same rows (its snapshot is past them).

use super::history::{self, HistoryKv, Pairs};
use super::StorageError;

/// A memtable of the history keyspace is written out to a table file at this size.
const MEMTABLE_BYTES: u64 = 8 << 20;
/// Keys written or removed per batch when a snapshot's rows are installed or a replica's
/// rows removed: bounded, so memory does not grow with a shard's history.
const PIECE_KEYS: usize = 2_000;
impl From<fjall::Error> for StorageError {
    fn from(error: fjall::Error) -> StorageError {
        StorageError::History(error.to_string())
    }
}

/// The history keyspace. Cheap to clone; every clone reads and writes the same keyspace.
#[derive(Clone)]
pub struct HistoryStore {
    db: fjall::Database,
    rows: fjall::Keyspace,
}

impl HistoryStore {
    /// The history keyspace of `db` (created if new).
    pub fn in_database(db: &fjall::Database) -> Result<HistoryStore, StorageError> {
        let rows = db.keyspace("history", || {
            fjall::KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
        })?;
        Ok(HistoryStore {
            db: db.clone(),
            rows,
        })
    }

    /// The keyspace, for a write batch of the whole tree.
    pub fn keyspace(&self) -> &fjall::Keyspace {
        &self.rows
    }

    /// Writes `pairs` as one batch, unsynced.
    pub fn insert_all(
        &self,
        pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StorageError> {
        let mut batch = self.db.batch();
        for (key, value) in pairs {
            batch.insert(&self.rows, key, value);
        }
        if !batch.is_empty() {
            batch.commit()?;
        }
        Ok(())
    }

    /// Writes `pairs` in batches of a bounded size (a snapshot's rows), unsynced.
    pub fn insert_in_pieces(
        &self,
        pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StorageError> {
        let mut piece = Vec::with_capacity(PIECE_KEYS);
        for pair in pairs {
            piece.push(pair);
            if piece.len() == PIECE_KEYS {
                self.insert_all(std::mem::take(&mut piece))?;
            }
        }
        self.insert_all(piece)
    }

    /// Removes every key starting with `prefix`, a bounded batch at a time.
    pub fn remove_prefix(&self, prefix: &[u8]) -> Result<(), StorageError> {
        loop {
            let mut keys = Vec::with_capacity(PIECE_KEYS);
            for item in self.rows.prefix(prefix).take(PIECE_KEYS) {
                keys.push(item.key()?);
            }
            if keys.is_empty() {
                return Ok(());
            }
            let mut batch = self.db.batch();
            for key in keys {
                batch.remove(&self.rows, key);
            }
            batch.commit()?;
        }
    }

    /// Removes every history key of `shard` (a destroyed replica).
    pub fn remove_shard(&self, shard: u32) -> Result<(), StorageError> {
        self.remove_prefix(&history::shard_prefix(shard))
    }

    /// Whether the keyspace holds no key.
    #[cfg(test)]
    fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.rows.first_key_value().is_none())
    }
}

impl HistoryKv for HistoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.rows.get(key)?.map(|value| value.to_vec()))
    }

    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Pairs, StorageError> {
        let mut found = Vec::new();
        for item in self.rows.range(start..end).take(limit) {
            let (key, value) = item.into_inner()?;
            found.push((key.to_vec(), value.to_vec()));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tuma-history-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn pair(shard: u32, n: u32) -> (Vec<u8>, Vec<u8>) {
        let mut key = history::shard_prefix(shard);
        key.push(b'a');
        key.extend_from_slice(&n.to_be_bytes());
        (key, n.to_le_bytes().to_vec())
    }

    fn open(dir: &std::path::Path) -> (fjall::Database, HistoryStore) {
        let db = fjall::Database::builder(dir).open().unwrap();
        let store = HistoryStore::in_database(&db).unwrap();
        (db, store)
    }

    #[test]
    fn rows_read_back_by_range_and_key_and_survive_a_reopen_once_persisted() {
        let dir = temp_dir("reopen");
        {
            let (db, store) = open(&dir);
            store.insert_all((0..10).map(|n| pair(3, n))).unwrap();
            store
                .insert_in_pieces((0..PIECE_KEYS as u32 + 5).map(|n| pair(4, n)))
                .unwrap();
            db.persist(fjall::PersistMode::SyncAll).unwrap();
        }
        let (_db, store) = open(&dir);
        let (key, value) = pair(3, 7);
        assert_eq!(store.get(&key).unwrap(), Some(value));
        let start = history::shard_prefix(3);
        let end = history::shard_prefix(4);
        let found = store.range(&start, &end, 4).unwrap();
        assert_eq!(found, (0..4).map(|n| pair(3, n)).collect::<Vec<_>>());
        assert_eq!(
            store
                .range(&end, &history::shard_prefix(5), usize::MAX)
                .unwrap()
                .len(),
            PIECE_KEYS + 5
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn removing_a_shard_removes_its_keys_only() {
        let dir = temp_dir("remove");
        let (_db, store) = open(&dir);
        store
            .insert_in_pieces((0..PIECE_KEYS as u32 * 2 + 1).map(|n| pair(1, n)))
            .unwrap();
        store.insert_all((0..3).map(|n| pair(2, n))).unwrap();
        store.remove_shard(1).unwrap();
        let everything = store.range(&[], &[0xff; 8], usize::MAX).unwrap();
        assert_eq!(everything, (0..3).map(|n| pair(2, n)).collect::<Vec<_>>());
        store.remove_shard(2).unwrap();
        assert!(store.is_empty().unwrap());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

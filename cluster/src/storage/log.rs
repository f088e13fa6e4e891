//! `ShardLog`: the in-memory Raft log of one shard replica, the `raft::Storage` raft-rs reads.
//!
//! Written here rather than using raft-rs's `MemStorage` because compaction must remember the
//! term of the last compacted entry (raft matches on it) and `snapshot()` must serve the
//! ledger checkpoint, not an empty one. Durability is the engine's job: every change made
//! here is also written to the [`LogStore`](super::LogStore) before its Ready is advanced.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

#[derive(Default)]
struct LogCore {
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the last entry discarded by compaction or covered by a snapshot.
    truncated_index: u64,
    truncated_term: u64,
    entries: Vec<Entry>,
    /// The newest checkpoint's metadata, without its data: raft-rs puts it in the snapshot
    /// message for a follower that fell behind the compacted log, and the engine streams the
    /// data from the stored checkpoint (see the engine's `snapshots.rs`).
    checkpoint: Option<Snapshot>,
}

impl LogCore {
    fn first_index(&self) -> u64 {
        self.truncated_index + 1
    }
    fn last_index(&self) -> u64 {
        self.truncated_index + self.entries.len() as u64
    }
}

/// Shared handle: raft-rs owns one clone inside `RawNode`, the engine mutates through another.
#[derive(Clone, Default)]
pub struct ShardLog {
    core: Arc<RwLock<LogCore>>,
}

impl ShardLog {
    fn read(&self) -> RwLockReadGuard<'_, LogCore> {
        self.core
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, LogCore> {
        self.core
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A log restored from durable state.
    pub fn restore(
        hard_state: HardState,
        conf_state: ConfState,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
    ) -> ShardLog {
        let log = ShardLog::default();
        {
            let mut core = log.write();
            if let Some(snapshot) = snapshot {
                core.truncated_index = snapshot.get_metadata().index;
                core.truncated_term = snapshot.get_metadata().term;
                core.checkpoint = Some(metadata_only(&snapshot));
            }
            core.hard_state = hard_state;
            core.conf_state = conf_state;
            let first = core.first_index();
            core.entries = entries.into_iter().filter(|e| e.index >= first).collect();
            assert!(
                core.entries
                    .windows(2)
                    .all(|w| w[1].index == w[0].index + 1),
                "restored raft log has a gap"
            );
            if let Some(e) = core.entries.first() {
                assert_eq!(
                    e.index, first,
                    "restored raft log does not start after its snapshot"
                );
            }
        }
        log
    }

    /// Appends entries from a Ready, replacing any conflicting tail. Returns the previous last
    /// index, so the durable store can delete keys the new tail no longer covers.
    pub fn append(&self, entries: &[Entry]) -> u64 {
        let mut core = self.write();
        let old_last = core.last_index();
        let Some(first) = entries.first() else {
            return old_last;
        };
        assert!(
            first.index >= core.first_index(),
            "append below the compacted log"
        );
        assert!(first.index <= old_last + 1, "append leaves a gap");
        let keep = (first.index - core.first_index()) as usize;
        core.entries.truncate(keep);
        core.entries.extend_from_slice(entries);
        old_last
    }

    pub fn set_hard_state(&self, hard_state: HardState) {
        self.write().hard_state = hard_state;
    }

    pub fn set_commit(&self, commit: u64) {
        self.write().hard_state.commit = commit;
    }

    pub fn set_conf_state(&self, conf_state: ConfState) {
        self.write().conf_state = conf_state;
    }

    pub fn conf_state(&self) -> ConfState {
        self.read().conf_state.clone()
    }

    pub fn hard_state(&self) -> HardState {
        self.read().hard_state.clone()
    }

    /// Installs a snapshot received from the leader: the log restarts after it.
    pub fn apply_snapshot(&self, snapshot: &Snapshot) {
        let mut core = self.write();
        let meta = snapshot.get_metadata();
        core.truncated_index = meta.index;
        core.truncated_term = meta.term;
        core.entries.clear();
        core.conf_state = meta.get_conf_state().clone();
        core.hard_state.commit = core.hard_state.commit.max(meta.index);
        core.hard_state.term = core.hard_state.term.max(meta.term);
        core.checkpoint = Some(metadata_only(snapshot));
    }

    /// Records a new checkpoint and drops log entries up to `compact_to` (≤ its index).
    pub fn checkpoint(&self, snapshot: &Snapshot, compact_to: u64) {
        let mut core = self.write();
        let compact_to = compact_to.min(core.last_index());
        if compact_to > core.truncated_index {
            let term = term_in(&core, compact_to).expect("compacting an entry the log holds");
            let drop = (compact_to - core.truncated_index) as usize;
            core.entries.drain(..drop);
            // The log's peak between checkpoints (a bulk import) must not stay reserved.
            let len = core.entries.len();
            if core.entries.capacity() > 2 * len + 1_024 {
                core.entries.shrink_to(2 * len);
            }
            core.truncated_index = compact_to;
            core.truncated_term = term;
        }
        core.checkpoint = Some(metadata_only(snapshot));
    }

    /// Where a checkpoint at `applied` may compact the log to: the entries after the returned
    /// index are kept for followers slightly behind — at most `keep_entries` of them, and no
    /// more than `keep_bytes` of entry data (a few large entries, such as bulk imports, are
    /// not kept in memory by count alone).
    pub fn compact_point(&self, applied: u64, keep_entries: u64, keep_bytes: u64) -> u64 {
        let core = self.read();
        let mut kept_bytes = 0u64;
        let mut point = applied;
        while point > core.truncated_index && applied - point < keep_entries {
            let offset = (point - core.truncated_index - 1) as usize;
            let Some(entry) = core.entries.get(offset) else {
                break;
            };
            kept_bytes += entry.data.len() as u64;
            if kept_bytes > keep_bytes {
                break;
            }
            point -= 1;
        }
        point
    }

    /// The term of an entry still in the log (or the last truncated one).
    pub fn term_of(&self, index: u64) -> Option<u64> {
        term_in(&self.read(), index)
    }

    /// Whether any entry after `index` is a configuration change.
    pub fn conf_change_after(&self, index: u64) -> bool {
        let core = self.read();
        core.entries
            .iter()
            .filter(|e| e.index > index)
            .any(|e| e.get_entry_type() != raft::prelude::EntryType::EntryNormal)
    }

    /// First and last index held.
    pub fn bounds(&self) -> (u64, u64) {
        let core = self.read();
        (core.first_index(), core.last_index())
    }
}

/// A snapshot's metadata without its data.
fn metadata_only(snapshot: &Snapshot) -> Snapshot {
    let mut stub = Snapshot::default();
    stub.set_metadata(snapshot.get_metadata().clone());
    stub
}

fn term_in(core: &LogCore, index: u64) -> Option<u64> {
    if index == core.truncated_index {
        return Some(core.truncated_term);
    }
    if index < core.first_index() || index > core.last_index() {
        return None;
    }
    Some(core.entries[(index - core.first_index()) as usize].term)
}

impl Storage for ShardLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let core = self.read();
        Ok(RaftState::new(
            core.hard_state.clone(),
            core.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let core = self.read();
        if low < core.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > core.last_index() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let offset = core.first_index();
        let slice = &core.entries[(low - offset) as usize..(high - offset) as usize];
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let mut size = 0u64;
        let mut out = Vec::with_capacity(slice.len());
        for entry in slice {
            size += u64::from(entry.compute_size());
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let core = self.read();
        if idx < core.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        term_in(&core, idx).ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.read().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.read().last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        match &self.read().checkpoint {
            Some(s) if s.get_metadata().index >= request_index => Ok(s.clone()),
            _ => Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, bytes: usize) -> Entry {
        Entry {
            index,
            term: 1,
            data: vec![7u8; bytes].into(),
            ..Default::default()
        }
    }

    #[test]
    fn compaction_keeps_entries_by_count_and_by_bytes() {
        let entries: Vec<Entry> = (1..=10).map(|i| entry(i, 100)).collect();
        let log = ShardLog::restore(HardState::default(), ConfState::default(), None, entries);
        assert_eq!(log.compact_point(10, 4, 1 << 20), 6, "four entries kept");
        assert_eq!(
            log.compact_point(10, 100, 250),
            8,
            "two entries fit in 250 bytes"
        );
        assert_eq!(log.compact_point(10, 100, 1 << 20), 0, "everything fits");
        assert_eq!(log.compact_point(10, 0, 1 << 20), 10, "none kept");
    }
}

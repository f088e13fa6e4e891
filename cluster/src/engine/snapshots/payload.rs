//! What a shard's snapshot stream carries: its checkpoint (the ledger state), then the shard's
//! history rows numbered below that state's history sequence — read from the history store
//! when the stream starts (on a thread of its own with the disk store: see `Replica::history_for_snapshot`),
//! since history is not part of the checkpoint. The meta group's
//! snapshots carry the checkpoint alone.
//!
//! Layout with history: `MAGIC` (8 bytes), the checkpoint's length (8, big-endian), the
//! checkpoint, the encoded rows. A snapshot without `MAGIC` is a checkpoint alone.

use crate::storage::{CheckpointSlice, LogStore, StorageError};

const MAGIC: &[u8; 8] = b"TUMAHST1";
const HEADER_BYTES: u64 = 16;

/// The two parts of a received snapshot's data.
pub struct Parts<'a> {
    pub checkpoint: &'a [u8],
    /// Encoded history rows, when the sender sent them.
    pub history: Option<&'a [u8]>,
}

/// Splits a received snapshot's data.
pub fn split(data: &[u8]) -> Result<Parts<'_>, StorageError> {
    if data.len() < HEADER_BYTES as usize || &data[..8] != MAGIC {
        return Ok(Parts {
            checkpoint: data,
            history: None,
        });
    }
    let length = u64::from_be_bytes(data[8..16].try_into().expect("8 bytes"));
    let end = HEADER_BYTES
        .checked_add(length)
        .filter(|end| *end <= data.len() as u64)
        .ok_or_else(|| StorageError::Corrupt {
            key: "snapshot".into(),
            reason: format!("checkpoint of {length} bytes in {} bytes", data.len()),
        })? as usize;
    Ok(Parts {
        checkpoint: &data[HEADER_BYTES as usize..end],
        history: Some(&data[end..]),
    })
}

/// Up to `len` bytes from `offset` of the stream's data: the stored checkpoint of `group` at
/// `index` (`checkpoint_len` bytes), framed with `history` when there is one. `None` once the
/// stored checkpoint was replaced.
pub fn read(
    store: &dyn LogStore,
    group: u32,
    index: u64,
    history: Option<&[u8]>,
    offset: u64,
    len: usize,
) -> Result<Option<CheckpointSlice>, StorageError> {
    let Some(history) = history else {
        return store.read_checkpoint(group, index, offset, len);
    };
    let Some(first) = store.read_checkpoint(group, index, 0, 0)? else {
        return Ok(None);
    };
    let checkpoint_len = first.total;
    let mut header = Vec::with_capacity(HEADER_BYTES as usize);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&checkpoint_len.to_be_bytes());
    let history_from = HEADER_BYTES + checkpoint_len;
    let total = history_from + history.len() as u64;
    let end = offset.saturating_add(len as u64).min(total);
    let mut bytes = Vec::with_capacity(end.saturating_sub(offset) as usize);
    let mut at = offset;
    while at < end {
        if at < HEADER_BYTES {
            let stop = end.min(HEADER_BYTES);
            bytes.extend_from_slice(&header[at as usize..stop as usize]);
        } else if at < history_from {
            let stop = end.min(history_from);
            let want = (stop - at) as usize;
            let Some(slice) = store.read_checkpoint(group, index, at - HEADER_BYTES, want)? else {
                return Ok(None);
            };
            if slice.bytes.is_empty() {
                return Err(StorageError::Corrupt {
                    key: format!("checkpoint of group {group}"),
                    reason: "shorter than its length".into(),
                });
            }
            bytes.extend_from_slice(&slice.bytes);
        } else {
            let from = (at - history_from) as usize;
            let to = (end - history_from) as usize;
            bytes.extend_from_slice(&history[from..to]);
        }
        at = offset + bytes.len() as u64;
    }
    Ok(Some(CheckpointSlice { total, bytes }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemDisk, WriteBatch, WriteOp};
    use raft::prelude::Snapshot;

    #[test]
    fn a_framed_stream_reads_back_whole_in_any_slicing_and_splits_into_its_parts() {
        let store = MemDisk::new().open();
        let checkpoint: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = 7;
        snapshot.data = checkpoint.clone().into();
        store
            .write(WriteBatch {
                ops: vec![WriteOp::Checkpoint {
                    shard: 2,
                    snapshot,
                    compact_from: 1,
                    compact_to: 0,
                }],
            })
            .unwrap();
        let history: Vec<u8> = (0..333u32).map(|i| (i % 13) as u8).collect();
        for step in [1usize, 7, 16, 100, 5000] {
            let mut data = Vec::new();
            loop {
                let slice = read(&store, 2, 7, Some(&history), data.len() as u64, step)
                    .unwrap()
                    .unwrap();
                data.extend_from_slice(&slice.bytes);
                if data.len() as u64 == slice.total {
                    break;
                }
            }
            let parts = split(&data).unwrap();
            assert_eq!(parts.checkpoint, &checkpoint[..], "step {step}");
            assert_eq!(parts.history, Some(&history[..]));
        }
        assert!(
            read(&store, 2, 8, Some(&history), 0, 10).unwrap().is_none(),
            "replaced"
        );
        let plain = split(&checkpoint).unwrap();
        assert_eq!((plain.checkpoint, plain.history), (&checkpoint[..], None));
    }
}

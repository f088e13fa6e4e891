//! The audit log of each shard, kept in the history key space (so a destroyed replica's
//! records go with its history, and a snapshot's history carries them) and read by time.
//!
//! Keys: `H` + shard (4 bytes, big-endian) + `u` + `!at_ms` (8) + `!seq` (8) → the record.
//! A shard's records are in time order (its clock never runs backwards), and inverting both
//! numbers puts the newest first, so a page below a point in time is one forward range read.

use tuma_actors::ledger::AuditLogRecord;

use super::history::{HistoryKv, Pairs};
use super::StorageError;

const HISTORY: u8 = b'H';
const AUDIT_LOG: u8 = b'u';
/// Most records one page returns.
pub const PAGE_RECORDS_MAX: usize = 1_000;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn shard_prefix(shard: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(22);
    key.push(HISTORY);
    key.extend_from_slice(&shard.to_be_bytes());
    key.push(AUDIT_LOG);
    key
}

fn key(shard: u32, at_ms: u64, seq: u64) -> Vec<u8> {
    let mut key = shard_prefix(shard);
    key.extend_from_slice(&(!at_ms).to_be_bytes());
    key.extend_from_slice(&(!seq).to_be_bytes());
    key
}

/// The key-value pair that stores `record` of `shard`.
pub fn record_entry(shard: u32, record: &AuditLogRecord) -> (Vec<u8>, Vec<u8>) {
    let value = bincode::serde::encode_to_vec(record, config())
        .expect("encoding an audit record into memory cannot fail");
    (key(shard, record.at_ms, record.seq), value)
}

pub(super) fn decode(key: &[u8], bytes: &[u8]) -> Result<AuditLogRecord, StorageError> {
    bincode::serde::decode_from_slice(bytes, config())
        .map(|(record, _)| record)
        .map_err(|error| StorageError::Corrupt {
            key: format!("audit log {key:?}"),
            reason: error.to_string(),
        })
}

fn decode_all(pairs: Pairs) -> Result<Vec<AuditLogRecord>, StorageError> {
    pairs.iter().map(|(k, v)| decode(k, v)).collect()
}

/// A page of `shard`'s records strictly before `(at_ms, seq)` in (time, sequence) order
/// (from the newest, if `None`), newest first, at most `limit` (capped at
/// [`PAGE_RECORDS_MAX`]).
pub fn page(
    kv: &dyn HistoryKv,
    shard: u32,
    before: Option<(u64, u64)>,
    limit: usize,
) -> Result<Vec<AuditLogRecord>, StorageError> {
    let prefix = shard_prefix(shard);
    let start = match before {
        Some((at_ms, seq)) => {
            let mut start = key(shard, at_ms, seq);
            start.push(0); // the next key after it: the next older record
            start
        }
        None => prefix.clone(),
    };
    let mut end = prefix;
    *end.last_mut().expect("ends in the kind byte") += 1;
    decode_all(kv.range(&start, &end, limit.min(PAGE_RECORDS_MAX))?)
}

/// Every record of `shard` numbered below `below`, in sequence order (what a snapshot carries).
pub fn export(
    kv: &dyn HistoryKv,
    shard: u32,
    below: u64,
) -> Result<Vec<AuditLogRecord>, StorageError> {
    let start = shard_prefix(shard);
    let mut end = start.clone();
    *end.last_mut().expect("ends in the kind byte") += 1;
    let mut records = decode_all(kv.range(&start, &end, usize::MAX)?)?;
    records.retain(|r| r.seq < below);
    records.sort_unstable_by_key(|r| r.seq);
    Ok(records)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tuma_actors::ledger::AuditLogEntry;

    use super::*;

    fn record(seq: u64, at_ms: u64) -> AuditLogRecord {
        AuditLogRecord {
            seq,
            at_ms,
            entry: AuditLogEntry {
                id: format!("a{seq}"),
                ..AuditLogEntry::default()
            },
        }
    }

    #[test]
    fn pages_go_newest_first_before_a_point_and_exports_go_by_sequence() {
        // Three records share a millisecond: a page boundary inside it loses none.
        let records: Vec<AuditLogRecord> = [10, 20, 20, 20, 30]
            .iter()
            .enumerate()
            .map(|(seq, &at)| record(seq as u64, at))
            .collect();
        let mut kv: BTreeMap<Vec<u8>, Vec<u8>> =
            records.iter().map(|r| record_entry(7, r)).collect();
        kv.insert(record_entry(8, &record(0, 99)).0, Vec::new()); // another shard's
        let seqs = |page: Vec<AuditLogRecord>| page.iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(page(&kv, 7, None, 2).unwrap()), vec![4, 3]);
        assert_eq!(seqs(page(&kv, 7, Some((20, 3)), 2).unwrap()), vec![2, 1]);
        assert_eq!(seqs(page(&kv, 7, Some((20, 1)), 10).unwrap()), vec![0]);
        assert_eq!(
            seqs(page(&kv, 7, Some((10, 0)), 10).unwrap()),
            Vec::<u64>::new()
        );
        assert_eq!(
            seqs(page(&kv, 7, Some((25, u64::MAX)), 10).unwrap()),
            vec![3, 2, 1, 0]
        );
        assert_eq!(export(&kv, 7, 3).unwrap(), records[..3].to_vec());
    }
}

//! The durable per-account history of finished transfers, kept beside the log in the same
//! store (one write batch, one fsync) and read by range.
//!
//! Keys, under `H` + shard (4 bytes, big-endian) + a kind byte:
//!
//! | kind | key rest | value |
//! |---|---|---|
//! | `a` | account, `0x00`, sequence inverted (8: `!seq`, newest first) | the row |
//! | `q` | request id, `0x00`, side | the payer row's `a` key |
//! | `t` | receipt, `0x00`, side | the row's `a` key |
//!
//! A statement page is a forward range read of an account's `a` keys from a sequence number
//! down (the sequence is stored inverted, so the newest row comes first and a page is one
//! sequential scan), so its cost does not depend on how much history the shard holds. A
//! snapshot's export scans the shard's `a` keys (every row is needed anyway) and keeps the rows
//! below the checkpoint's sequence, in sequence order. Five keys per transfer: the payer's row,
//! request id and receipt; the payee's row and receipt.

use std::collections::BTreeMap;

use tuma_actors::ledger::{AuditLogRecord, HistoryRow, HistorySide};
use tuma_actors::transfer::TransferId;
use tuma_actors::txn_id::TransactionId;
use tuma_actors::AccountRef;

use super::StorageError;

const HISTORY: u8 = b'H';
/// Most rows one statement page returns.
pub const PAGE_ROWS_MAX: usize = 100;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn prefix(shard: u32, kind: u8) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    key.push(HISTORY);
    key.extend_from_slice(&shard.to_be_bytes());
    key.push(kind);
    key
}

/// Every history key (of every shard, audit records included) starts with this.
pub fn prefix_of_all() -> [u8; 1] {
    [HISTORY]
}

/// Every history key of `shard` starts with this.
pub fn shard_prefix(shard: u32) -> Vec<u8> {
    let mut key = vec![HISTORY];
    key.extend_from_slice(&shard.to_be_bytes());
    key
}

fn account_prefix(shard: u32, account: &AccountRef) -> Vec<u8> {
    let mut key = prefix(shard, b'a');
    key.extend_from_slice(account.to_string().as_bytes());
    key.push(0);
    key
}

fn side_byte(side: HistorySide) -> u8 {
    match side {
        HistorySide::Payer => b'p',
        HistorySide::Payee => b'r',
    }
}

fn transfer_key(shard: u32, id: &TransferId, side: HistorySide) -> Vec<u8> {
    let mut key = prefix(shard, b'q');
    key.extend_from_slice(id.as_str().as_bytes());
    key.push(0);
    key.push(side_byte(side));
    key
}

fn receipt_key(shard: u32, receipt: &TransactionId, side: HistorySide) -> Vec<u8> {
    let mut key = prefix(shard, b't');
    key.extend_from_slice(receipt.as_str().as_bytes());
    key.push(0);
    key.push(side_byte(side));
    key
}

/// The key-value pairs that store `row` of `shard`.
pub fn row_entries(shard: u32, row: &HistoryRow) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut row_key = account_prefix(shard, &row.account);
    row_key.extend_from_slice(&(!row.seq).to_be_bytes());
    let value = bincode::serde::encode_to_vec(row, config())
        .expect("encoding a history row into memory cannot fail");
    let mut entries = Vec::with_capacity(3);
    if row.side == HistorySide::Payer {
        entries.push((
            transfer_key(shard, &row.transfer, row.side),
            row_key.clone(),
        ));
    }
    if let Some(receipt) = &row.receipt {
        entries.push((receipt_key(shard, receipt, row.side), row_key.clone()));
    }
    entries.push((row_key, value));
    entries
}

/// The key-value pairs that store a shard's history rows and audit records.
pub fn entries<'a>(
    shard: u32,
    rows: &'a [HistoryRow],
    audit_log: &'a [AuditLogRecord],
) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + 'a {
    rows.iter()
        .flat_map(move |row| row_entries(shard, row))
        .chain(
            audit_log
                .iter()
                .map(move |record| super::audit_log::record_entry(shard, record)),
        )
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<HistoryRow, StorageError> {
    bincode::serde::decode_from_slice(bytes, config())
        .map(|(row, _)| row)
        .map_err(|error| StorageError::Corrupt {
            key: format!("history {key:?}"),
            reason: error.to_string(),
        })
}

/// Key-value pairs read from a range.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What the history queries need from a store: point reads and ordered range reads.
pub trait HistoryKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Pairs with keys in `[start, end)`, in key order, at most `limit`.
    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Pairs, StorageError>;
}

/// A statement page: `account`'s rows below sequence `before` (all, if `None`), newest first,
/// at most `limit` (capped at [`PAGE_ROWS_MAX`]); committed transfers only when
/// `committed_only`.
pub fn page(
    kv: &dyn HistoryKv,
    shard: u32,
    account: &AccountRef,
    before: Option<u64>,
    limit: usize,
    committed_only: bool,
) -> Result<Vec<HistoryRow>, StorageError> {
    let prefix = account_prefix(shard, account);
    let mut start = prefix.clone();
    match before {
        Some(0) => return Ok(Vec::new()),
        Some(seq) => start.extend_from_slice(&(!(seq - 1)).to_be_bytes()),
        None => {}
    }
    let mut end = prefix;
    *end.last_mut().expect("ends in the separator") = 1;
    let limit = limit.min(PAGE_ROWS_MAX);
    let mut rows = Vec::with_capacity(limit);
    // Aborted and refused rows are skipped; read on until the page is full or the rows end.
    loop {
        let batch = kv.range(&start, &end, limit.max(1))?;
        let exhausted = batch.len() < limit.max(1);
        for (key, value) in &batch {
            let row = decode(key, value)?;
            if !committed_only || row.committed() {
                rows.push(row);
                if rows.len() == limit {
                    return Ok(rows);
                }
            }
        }
        match batch.last() {
            Some((key, _)) if !exhausted => {
                start = key.clone();
                start.push(0); // the next key after it
            }
            _ => return Ok(rows),
        }
    }
}

fn follow(
    kv: &dyn HistoryKv,
    pointer: Option<Vec<u8>>,
) -> Result<Option<HistoryRow>, StorageError> {
    let Some(row_key) = pointer else {
        return Ok(None);
    };
    match kv.get(&row_key)? {
        Some(value) => decode(&row_key, &value).map(Some),
        None => Err(StorageError::Corrupt {
            key: format!("history {row_key:?}"),
            reason: "an index names a missing row".into(),
        }),
    }
}

/// The payer's row of the transfer with this request id, if it finished on `shard`.
pub fn by_transfer(
    kv: &dyn HistoryKv,
    shard: u32,
    id: &TransferId,
) -> Result<Option<HistoryRow>, StorageError> {
    follow(kv, kv.get(&transfer_key(shard, id, HistorySide::Payer))?)
}

/// The rows of the transfer with this receipt on `shard`: the payer's first.
pub fn by_receipt(
    kv: &dyn HistoryKv,
    shard: u32,
    receipt: &TransactionId,
) -> Result<Vec<HistoryRow>, StorageError> {
    let mut rows = Vec::new();
    for side in [HistorySide::Payer, HistorySide::Payee] {
        if let Some(row) = follow(kv, kv.get(&receipt_key(shard, receipt, side))?)? {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Every row of `shard` numbered below `below`, in sequence order (what a snapshot carries).
pub fn export(kv: &dyn HistoryKv, shard: u32, below: u64) -> Result<Vec<HistoryRow>, StorageError> {
    let start = prefix(shard, b'a');
    let end = prefix(shard, b'a' + 1);
    let mut rows = Vec::new();
    for (key, value) in kv.range(&start, &end, usize::MAX)? {
        let row = decode(&key, &value)?;
        if row.seq < below {
            rows.push(row);
        }
    }
    rows.sort_unstable_by_key(|r| r.seq);
    Ok(rows)
}

/// A page of everything `shard`'s history holds — rows and audit records, without the index
/// keys — in key order after `after` (from the start, if `None`), at most `limit` keys read;
/// and the last key read when more may follow (a backup's copy, page by page).
pub fn export_page(
    kv: &dyn HistoryKv,
    shard: u32,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<(SnapshotRows, Option<Vec<u8>>), StorageError> {
    let prefix = shard_prefix(shard);
    let start = match after {
        Some(key) if key.starts_with(&prefix) => {
            let mut start = key.to_vec();
            start.push(0);
            start
        }
        _ => prefix.clone(),
    };
    let mut end = prefix;
    end.push(u8::MAX);
    let limit = limit.max(1);
    let pairs = kv.range(&start, &end, limit)?;
    let (mut rows, mut audit_log) = (Vec::new(), Vec::new());
    for (key, value) in &pairs {
        match key.get(5) {
            Some(b'a') => rows.push(decode(key, value)?),
            Some(b'u') => audit_log.push(super::audit_log::decode(key, value)?),
            _ => {}
        }
    }
    let next = (pairs.len() == limit)
        .then(|| pairs.last().map(|(key, _)| key.clone()))
        .flatten();
    Ok(((rows, audit_log), next))
}

/// Encodes rows and audit records for a snapshot stream.
pub fn encode_rows(rows: &[HistoryRow], audit_log: &[AuditLogRecord]) -> Vec<u8> {
    bincode::serde::encode_to_vec((rows, audit_log), config())
        .expect("encoding history into memory cannot fail")
}

/// Rows and audit records a snapshot stream carried.
pub type SnapshotRows = (Vec<HistoryRow>, Vec<AuditLogRecord>);

/// Decodes rows and audit records a snapshot stream carried.
pub fn decode_rows(bytes: &[u8]) -> Result<SnapshotRows, StorageError> {
    bincode::serde::decode_from_slice(bytes, config())
        .map(|(rows, _)| rows)
        .map_err(|error| StorageError::Corrupt {
            key: "snapshot history".into(),
            reason: error.to_string(),
        })
}

/// An in-memory [`HistoryKv`] (the in-memory store's, and tests').
impl HistoryKv for BTreeMap<Vec<u8>, Vec<u8>> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(BTreeMap::get(self, key).cloned())
    }

    fn range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Pairs, StorageError> {
        Ok(BTreeMap::range(self, start.to_vec()..end.to_vec())
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tuma_actors::calendar::CivilTime;
    use tuma_actors::transfer::TransferKind;
    use tuma_actors::{Money, ResultCode};

    fn row(seq: u64, account: &AccountRef, result: ResultCode) -> HistoryRow {
        HistoryRow {
            seq,
            account: account.clone(),
            side: HistorySide::Payer,
            transfer: TransferId::parse(&format!("t-{seq}")).unwrap(),
            receipt: None,
            kind: TransferKind::SendMoney,
            counterparty: AccountRef::parse("254700000009").unwrap(),
            amount_cents: -100,
            fee: Money::ZERO,
            result,
            completed_ms: seq,
            balance_after: Money::ZERO,
        }
    }

    fn store(rows: &[HistoryRow]) -> BTreeMap<Vec<u8>, Vec<u8>> {
        rows.iter().flat_map(|r| row_entries(3, r)).collect()
    }

    #[test]
    fn pages_go_newest_first_below_a_sequence_and_skip_what_did_not_move_money() {
        let alice = AccountRef::parse("254700000001").unwrap();
        let bob = AccountRef::parse("254700000002").unwrap();
        let mut rows = Vec::new();
        for seq in 0..30 {
            let result = if seq % 3 == 0 {
                ResultCode::InsufficientFunds
            } else {
                ResultCode::Success
            };
            let account = if seq % 2 == 0 { &alice } else { &bob };
            rows.push(row(seq, account, result));
        }
        let kv = store(&rows);
        let page1 = page(&kv, 3, &alice, None, 4, true).unwrap();
        let seqs: Vec<u64> = page1.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![28, 26, 22, 20]);
        let page2 = page(&kv, 3, &alice, Some(20), 4, true).unwrap();
        let seqs: Vec<u64> = page2.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![16, 14, 10, 8]);
        let last = page(&kv, 3, &alice, Some(8), 100, true).unwrap();
        let seqs: Vec<u64> = last.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![4, 2]);
        let everything = page(&kv, 3, &alice, None, 100, false).unwrap();
        assert_eq!(everything.len(), 15);
        assert!(
            page(&kv, 4, &alice, None, 10, false).unwrap().is_empty(),
            "another shard"
        );
    }

    #[test]
    fn rows_are_found_by_request_id_and_receipt_and_exported_in_order() {
        let alice = AccountRef::parse("254700000001").unwrap();
        let mut rows: Vec<HistoryRow> = (0..5)
            .map(|s| row(s, &alice, ResultCode::Success))
            .collect();
        let receipt = TransactionId::generate(CivilTime::from_unix_ms(1_800_000_000_000), 3, 7);
        assert!(receipt.is_some());
        rows[2].receipt = receipt;
        let kv = store(&rows);
        let found = by_transfer(&kv, 3, &TransferId::parse("t-2").unwrap()).unwrap();
        assert_eq!(found.as_ref(), Some(&rows[2]));
        if let Some(receipt) = receipt {
            assert_eq!(by_receipt(&kv, 3, &receipt).unwrap(), vec![rows[2].clone()]);
        }
        assert_eq!(
            by_transfer(&kv, 3, &TransferId::parse("t-9").unwrap()).unwrap(),
            None
        );
        assert_eq!(export(&kv, 3, 3).unwrap(), rows[..3].to_vec());
        assert_eq!(
            decode_rows(&encode_rows(&rows, &[])).unwrap(),
            (rows, Vec::new())
        );
    }

    #[test]
    fn export_pages_carry_every_row_and_audit_record_once_and_no_index_key() {
        use tuma_actors::ledger::{AuditLogEntry, AuditLogRecord};
        let alice = AccountRef::parse("254700000001").unwrap();
        let rows: Vec<HistoryRow> = (0..7)
            .map(|s| row(s, &alice, ResultCode::Success))
            .collect();
        let records: Vec<AuditLogRecord> = (0..4)
            .map(|seq| AuditLogRecord {
                seq,
                at_ms: 100 + seq,
                entry: AuditLogEntry::default(),
            })
            .collect();
        let mut kv: BTreeMap<Vec<u8>, Vec<u8>> = entries(3, &rows, &records).collect();
        kv.extend(entries(4, &rows, &records)); // another shard's
        let (mut got_rows, mut got_records, mut after, mut pages) = (vec![], vec![], None, 0);
        loop {
            let ((page_rows, page_records), next) =
                export_page(&kv, 3, after.as_deref(), 3).unwrap();
            got_rows.extend(page_rows);
            got_records.extend(page_records);
            pages += 1;
            match next {
                Some(key) => after = Some(key),
                None => break,
            }
        }
        got_rows.sort_by_key(|r| r.seq);
        got_records.sort_by_key(|r| r.seq);
        assert_eq!(got_rows, rows);
        assert_eq!(got_records, records);
        // 7 rows, 7 request-id keys and 4 records: 18 keys, six full pages and an empty one.
        assert_eq!(pages, 7);
    }
}

//! Backups: a consistent copy of every shard, taken from the running cluster, checked offline,
//! and the image a new cluster starts from.
//!
//! **The point.** A backup first pauses new transfers on every shard (`PauseIntake`, in each
//! shard's log, lifting by itself at its time so a backup that dies leaves no paused cluster),
//! waits until no shard has a transfer in flight (nothing prepared, nothing accepted), and
//! then reads each shard's state (a confirmed read on its leader). With nothing in flight
//! anywhere and nothing new able to start, every cross-shard transfer is either done on both
//! sides or on neither: the shards' states, read one after another, form one consistent cut,
//! and the books of the copy balance (Σ balances = 0, Σ clearing = 0). A state read with
//! anything in flight is refused and read again. Then intake resumes; the shards' history
//! rows and audit records below each state's sequence numbers are read page by page (they are
//! append-only, so reading them later changes nothing).
//!
//! **The directory.** `manifest.json` (format, shards, time, totals, each file's size and
//! SHA-256), `shard-NNNN.state` (the ledger state exactly as a checkpoint holds it),
//! `shard-NNNN.rows` (frames: a 4-byte big-endian length, then a page of rows and records as a
//! snapshot's history part encodes them), `documents.json` (the cluster's documents: key ring,
//! menus, float requests).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tuma_actors::ledger::{
    AuditLogRecord, Command, HistoryRow, LedgerConfig, LedgerState, ShardAudit, ShardLedger,
};
use tuma_actors::tariff::Tariffs;
use tuma_actors::ShardMap;
use tuma_cluster::engine::{ClientReply, ClientRequest, ShardBackupState};

use crate::cluster::AuditTotals;
use crate::{Service, ServiceError};

pub const FORMAT: &str = "tuma-backup-1";
/// Rows and records one page of a shard's history read carries at most.
pub const ROWS_PAGE_MAX: usize = 5_000;
/// Largest frame of a rows file read back (a page is far smaller).
const FRAME_BYTES_MAX: usize = 256 << 20;
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// What a backup directory holds, and how to check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub shards: u32,
    pub taken_unix_ms: u64,
    /// Per shard: how many history rows and audit records the copy holds (its sequences).
    pub points: Vec<ShardPoint>,
    pub files: Vec<FileDigest>,
    /// The books of the copy, as the backup computed them.
    pub e_money_issued: String,
    pub accounts: usize,
    /// Names the cluster secret and PIN key the data needs (a restore with others is refused).
    #[serde(default)]
    pub secrets_fingerprint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPoint {
    pub shard: u32,
    pub history_rows: u64,
    pub audit_records: u64,
    pub entries_applied: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// One shard of a backup, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardCopy {
    /// The ledger state as a checkpoint holds it.
    pub state: Vec<u8>,
    pub rows: Vec<HistoryRow>,
    pub audit_log: Vec<AuditLogRecord>,
}

/// A whole backup, read back and checked: what a new cluster starts from.
#[derive(Clone, Debug)]
pub struct BackupImage {
    pub manifest: Manifest,
    pub shards: BTreeMap<u32, ShardCopy>,
    pub documents: BTreeMap<String, String>,
}

/// What checking a backup found.
#[derive(Clone, Debug)]
pub struct Verified {
    pub image: BackupImage,
    pub totals: AuditTotals,
}

pub fn state_file(shard: u32) -> String {
    format!("shard-{shard:04}.state")
}

pub fn rows_file(shard: u32) -> String {
    format!("shard-{shard:04}.rows")
}

pub const MANIFEST_FILE: &str = "manifest.json";
pub const DOCUMENTS_FILE: &str = "documents.json";

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends one frame (a page of rows and records) to a rows file.
pub fn write_frame(
    out: &mut impl Write,
    rows: &[HistoryRow],
    audit_log: &[AuditLogRecord],
) -> std::io::Result<()> {
    let bytes = bincode::serde::encode_to_vec((rows, audit_log), bincode_config())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("frame too large"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(&bytes)
}

/// Every row and record of a rows file, in file order.
pub fn read_frames(mut input: impl Read) -> Result<(Vec<HistoryRow>, Vec<AuditLogRecord>), String> {
    let (mut rows, mut audit_log) = (Vec::new(), Vec::new());
    loop {
        let mut len = [0u8; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.to_string()),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > FRAME_BYTES_MAX {
            return Err(format!("a frame of {len} bytes: the file is damaged"));
        }
        let mut bytes = vec![0u8; len];
        input
            .read_exact(&mut bytes)
            .map_err(|e| format!("a frame cut short: {e}"))?;
        type Page = (Vec<HistoryRow>, Vec<AuditLogRecord>);
        let ((page_rows, page_audit), _): (Page, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode_config())
                .map_err(|e| format!("a frame does not decode: {e}"))?;
        rows.extend(page_rows);
        audit_log.extend(page_audit);
    }
    Ok((rows, audit_log))
}

/// A shard's ledger from a copy's state bytes.
pub fn restore_ledger(
    shard: u32,
    map: ShardMap,
    tariffs: std::sync::Arc<Tariffs>,
    state: &[u8],
) -> Result<ShardLedger, String> {
    let (state, _): (LedgerState, usize) =
        bincode::serde::decode_from_slice(state, bincode_config())
            .map_err(|e| format!("shard {shard}: the state does not decode: {e}"))?;
    Ok(ShardLedger::restore(
        LedgerConfig::new(shard, map, tariffs),
        state,
    ))
}

/// Reads a backup directory and checks it offline: every file's digest, every shard's state
/// (decodes, invariants hold, nothing in flight), its history and audit log (exactly the rows
/// and records its state numbered, gapless), and the books of the whole copy (Σ balances and
/// Σ clearing zero).
pub fn verify(dir: &Path, tariffs: std::sync::Arc<Tariffs>) -> Result<Verified, String> {
    let read = |name: &str| -> Result<Vec<u8>, String> {
        std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"))
    };
    let manifest: Manifest = serde_json::from_slice(&read(MANIFEST_FILE)?)
        .map_err(|e| format!("{MANIFEST_FILE}: {e}"))?;
    if manifest.format != FORMAT {
        return Err(format!(
            "{MANIFEST_FILE}: format {:?}, this binary reads {FORMAT:?}",
            manifest.format
        ));
    }
    let mut files = BTreeMap::new();
    for file in &manifest.files {
        let bytes = read(&file.name)?;
        if bytes.len() as u64 != file.bytes || sha256_hex(&bytes) != file.sha256 {
            return Err(format!(
                "{}: its size or SHA-256 differs from the manifest's",
                file.name
            ));
        }
        files.insert(file.name.clone(), bytes);
    }
    let take = |files: &mut BTreeMap<String, Vec<u8>>, name: &str| {
        files
            .remove(name)
            .ok_or_else(|| format!("the manifest does not list {name}"))
    };
    let map = ShardMap::new(manifest.shards)
        .ok_or_else(|| format!("{} shards: not a cluster shape", manifest.shards))?;
    let mut shards = BTreeMap::new();
    let mut audits: Vec<ShardAudit> = Vec::new();
    for shard in 0..manifest.shards {
        let state = take(&mut files, &state_file(shard))?;
        let ledger = restore_ledger(shard, map, tariffs.clone(), &state)?;
        let audit = ledger
            .audit()
            .map_err(|v| format!("shard {shard}: its books do not hold: {v}"))?;
        if audit.prepared + audit.accepted > 0 {
            return Err(format!(
                "shard {shard}: {} transfers in flight in the copy",
                audit.prepared + audit.accepted
            ));
        }
        let (rows, audit_log) = read_frames(&take(&mut files, &rows_file(shard))?[..])
            .map_err(|e| format!("{}: {e}", rows_file(shard)))?;
        let numbered = [
            (
                "history rows",
                rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
                ledger.history_next_seq(),
            ),
            (
                "audit records",
                audit_log.iter().map(|r| r.seq).collect(),
                ledger.audit_log_next_seq(),
            ),
        ];
        for (what, seqs, count) in numbered {
            if !exactly_numbered(seqs, count) {
                return Err(format!(
                    "shard {shard}: its {what} are not exactly the {count} its state numbered"
                ));
            }
        }
        audits.push(audit);
        shards.insert(
            shard,
            ShardCopy {
                state,
                rows,
                audit_log,
            },
        );
    }
    let documents: BTreeMap<String, String> =
        serde_json::from_slice(&take(&mut files, DOCUMENTS_FILE)?)
            .map_err(|e| format!("{DOCUMENTS_FILE}: {e}"))?;
    let totals = AuditTotals::of(&audits);
    if totals.balance_sum.cents() != 0 || totals.clearing_sum.cents() != 0 {
        return Err(format!(
            "the copy's books do not balance: Σ balances {}, Σ clearing {}",
            totals.balance_sum, totals.clearing_sum
        ));
    }
    Ok(Verified {
        image: BackupImage {
            manifest,
            shards,
            documents,
        },
        totals,
    })
}

/// Whether `seqs` are 0, 1, …, `count` − 1, each once (in any order).
fn exactly_numbered(mut seqs: Vec<u64>, count: u64) -> bool {
    seqs.sort_unstable();
    seqs.len() as u64 == count && seqs.iter().enumerate().all(|(i, s)| *s == i as u64)
}

/// Writes `bytes` to `dir/name` and returns its digest for the manifest.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<FileDigest> {
    std::fs::write(dir.join(name), bytes)?;
    Ok(FileDigest {
        name: name.to_string(),
        bytes: bytes.len() as u64,
        sha256: sha256_hex(bytes),
    })
}

impl Service {
    /// Pauses new transfers on every shard until `until_unix_ms` (0: resume now).
    pub async fn pause_intake(&self, until_unix_ms: u64) -> Result<(), ServiceError> {
        let results = futures::future::join_all((0..self.shard_count()).map(|shard| {
            self.command(
                shard,
                Command::PauseIntake {
                    until_ms: until_unix_ms,
                },
            )
        }))
        .await;
        results.into_iter().collect()
    }

    /// A shard's state for a backup, read on its leader (with what is in flight there).
    pub async fn backup_state(&self, shard: u32) -> Result<ShardBackupState, ServiceError> {
        let deadline = Instant::now() + CALL_DEADLINE;
        match self
            .calls
            .call(ClientRequest::BackupState { shard }, deadline)
            .await
            .0
        {
            ClientReply::BackupState(state) => Ok(*state),
            other => Err(ServiceError::no_answer(
                &format!("shard {shard} did not answer"),
                &other,
            )),
        }
    }

    /// A page of a shard's history rows and audit records after store key `after`: rows
    /// numbered below `history_below` and records below `audit_below` only; the key to
    /// continue after (`None`: the last page).
    pub async fn backup_rows(
        &self,
        shard: u32,
        after: Option<Vec<u8>>,
        history_below: u64,
        audit_below: u64,
    ) -> Result<BackupRowsPage, ServiceError> {
        let deadline = Instant::now() + CALL_DEADLINE;
        let request = ClientRequest::BackupRows {
            shard,
            after,
            limit: ROWS_PAGE_MAX,
        };
        match self.calls.call(request, deadline).await.0 {
            ClientReply::BackupRows {
                mut rows,
                mut audit_log,
                next,
            } => {
                rows.retain(|r| r.seq < history_below);
                audit_log.retain(|r| r.seq < audit_below);
                Ok(BackupRowsPage {
                    rows,
                    audit_log,
                    next,
                })
            }
            other => Err(ServiceError::no_answer(
                &format!("shard {shard} did not answer"),
                &other,
            )),
        }
    }
}

/// One page of [`Service::backup_rows`].
pub struct BackupRowsPage {
    pub rows: Vec<HistoryRow>,
    pub audit_log: Vec<AuditLogRecord>,
    pub next: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_exactly_numbered_only_when_none_is_missing_repeated_or_extra() {
        assert!(exactly_numbered(vec![2, 0, 1], 3));
        assert!(exactly_numbered(Vec::new(), 0));
        assert!(!exactly_numbered(vec![0, 1], 3), "one missing");
        assert!(!exactly_numbered(vec![0, 1, 1], 3), "one twice");
        assert!(
            !exactly_numbered(vec![0, 1, 2, 3], 3),
            "one the state never numbered"
        );
    }

    #[test]
    fn frames_read_back_and_a_cut_or_oversized_one_is_refused() {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, &[], &[]).unwrap();
        write_frame(&mut bytes, &[], &[]).unwrap();
        assert_eq!(read_frames(&bytes[..]).unwrap(), (Vec::new(), Vec::new()));
        assert!(read_frames(&bytes[..bytes.len() - 1]).is_err(), "cut short");
        assert!(read_frames(&u32::MAX.to_be_bytes()[..])
            .unwrap_err()
            .contains("damaged"));
    }
}

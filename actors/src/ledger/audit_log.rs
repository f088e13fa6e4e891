//! The audit log: who did what to the system, when, from where, and how it went — every admin,
//! care and business-credential action, as an append-only record of the acting party's shard.
//!
//! Like history rows, records leave the replicated in-memory state at once: apply numbers each
//! with the shard's audit sequence and stamps it with the shard's clock (the leader's entry
//! timestamp, never a clock read), and the engine writes it to its store as the entry applies —
//! the same record under the same number on every replica — and a snapshot carries the records
//! numbered below its state's sequence. Nothing in the log removes one: no command, retirement
//! or compaction touches them.
//!
//! Records of a shard are in time order (the shard's clock never runs backwards), which is
//! what lets a reader merge the shards' logs by time.

use serde::{Deserialize, Serialize};

use crate::outcome::ResultCode;

use super::command::Applied;
use super::ShardLedger;

/// Longest text of any one field of an entry, in bytes.
pub const AUDIT_FIELD_LEN_MAX: usize = 512;

/// What the edge that served an action records of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AuditLogEntry {
    /// The edge's id for this action: a retried proposal records the same id again.
    pub id: String,
    /// Who: the key's id (`key:…`), the bootstrap token (`bootstrap`), a business (`business:…`).
    pub actor: String,
    /// The role the caller acted in (`operator`, `care`, `auditor`, `business`).
    pub role: String,
    /// What: the endpoint, as `METHOD /path`.
    pub action: String,
    /// On what: the accounts, receipts, keys or members the action named, when it named any.
    pub target: String,
    /// From where: the caller's address, and the node that served it.
    pub source: String,
    /// How it went: the answer's status and, for a refusal, why.
    pub outcome: String,
}

/// One action as a shard's log recorded it. Immutable once written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLogRecord {
    /// The shard's audit sequence number.
    pub seq: u64,
    /// The shard's clock when it was recorded (leader timestamp, Unix ms).
    pub at_ms: u64,
    pub entry: AuditLogEntry,
}

impl AuditLogEntry {
    /// True when every field fits [`AUDIT_FIELD_LEN_MAX`].
    pub fn fits(&self) -> bool {
        [
            &self.id,
            &self.actor,
            &self.role,
            &self.action,
            &self.target,
            &self.source,
            &self.outcome,
        ]
        .iter()
        .all(|field| field.len() <= AUDIT_FIELD_LEN_MAX)
    }
}

impl ShardLedger {
    /// Records an action (`Command::RecordAction`): numbered, stamped and handed to the host.
    pub(super) fn record_action(&mut self, entry: &AuditLogEntry, now: u64) -> Applied {
        if !entry.fits() || entry.id.is_empty() {
            return Applied::Admin(ResultCode::NotPermitted);
        }
        let seq = self.state.audit_log_next_seq;
        self.state.audit_log_next_seq += 1;
        self.audit_log.push(AuditLogRecord {
            seq,
            at_ms: now,
            entry: entry.clone(),
        });
        Applied::Admin(ResultCode::Success)
    }

    /// Audit records of the entries applied since the last call, in sequence order.
    pub fn take_audit_log(&mut self) -> Vec<AuditLogRecord> {
        std::mem::take(&mut self.audit_log)
    }

    /// The sequence number the next audit record gets: a snapshot of this state carries the
    /// records below it.
    pub fn audit_log_next_seq(&self) -> u64 {
        self.state.audit_log_next_seq
    }
}

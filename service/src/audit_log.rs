//! The audit log across the cluster: an action is recorded on the shard its actor hashes to
//! (`ShardMap::shard_of_actor`), and read back newest first by merging every shard's log by
//! time. Each shard's records are in time order, so a page is the newest `limit` records of
//! the shards' own newest-first pages, and a cursor `(time, shard, sequence)` resumes after
//! the last record given without losing or repeating one.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use tuma_actors::ledger::{AuditLogEntry, AuditLogRecord, Command, AUDIT_FIELD_LEN_MAX};
use tuma_cluster::engine::{ClientReply, ClientRequest};

use crate::{Service, ServiceError};

/// How long recording an action may take (its answer waits for it).
const RECORD_DEADLINE: Duration = Duration::from_secs(5);
const READ_DEADLINE: Duration = Duration::from_secs(15);
/// Most records one page returns.
pub const AUDIT_PAGE_MAX: usize = 1_000;

/// Where a page ends: the last record given, as `(time, shard, sequence)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditCursor {
    pub at_ms: u64,
    pub shard: u32,
    pub seq: u64,
}

impl fmt::Display for AuditCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.at_ms, self.shard, self.seq)
    }
}

impl AuditCursor {
    /// Parses `at_ms.shard.seq` (what [`fmt::Display`] writes).
    pub fn parse(text: &str) -> Option<AuditCursor> {
        let mut parts = text.split('.');
        let cursor = AuditCursor {
            at_ms: parts.next()?.parse().ok()?,
            shard: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(cursor)
    }

    /// The point in `shard`'s own log the records after this cursor lie strictly before,
    /// as `(time, sequence)`. The merged order is (time, shard, sequence), newest first.
    fn bound_in(&self, shard: u32) -> (u64, u64) {
        match shard.cmp(&self.shard) {
            // Lower shards come after the cursor within its millisecond.
            std::cmp::Ordering::Less => (self.at_ms, u64::MAX),
            std::cmp::Ordering::Equal => (self.at_ms, self.seq),
            // Higher shards come before it within its millisecond: only older ones remain.
            std::cmp::Ordering::Greater => (self.at_ms, 0),
        }
    }
}

/// One record as read back, with the shard that holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditLine {
    pub shard: u32,
    pub seq: u64,
    pub at_ms: u64,
    /// `at_ms` in RFC 3339, UTC.
    pub at: String,
    #[serde(flatten)]
    pub entry: AuditLogEntry,
}

impl AuditLine {
    fn of(shard: u32, record: AuditLogRecord) -> AuditLine {
        AuditLine {
            shard,
            seq: record.seq,
            at_ms: record.at_ms,
            at: rfc3339_utc(record.at_ms),
            entry: record.entry,
        }
    }

    fn cursor(&self) -> AuditCursor {
        AuditCursor {
            at_ms: self.at_ms,
            shard: self.shard,
            seq: self.seq,
        }
    }
}

/// A page of the audit log, newest first, and where the next one starts (`None`: no more).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPage {
    pub records: Vec<AuditLine>,
    pub next: Option<AuditCursor>,
}

/// Cuts a field to [`AUDIT_FIELD_LEN_MAX`] bytes on a character boundary (with `…`).
pub fn clip(text: &str) -> String {
    if text.len() <= AUDIT_FIELD_LEN_MAX {
        return text.to_string();
    }
    let mut end = AUDIT_FIELD_LEN_MAX - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl Service {
    /// Appends an action to the audit log (on its actor's shard), waiting until it is
    /// committed. A retry after an unknown outcome may record it twice under the same id;
    /// it is never recorded with another's content.
    pub async fn record_action(&self, entry: AuditLogEntry) -> Result<(), ServiceError> {
        let mut entry = entry;
        for field in [
            &mut entry.id,
            &mut entry.actor,
            &mut entry.role,
            &mut entry.action,
            &mut entry.target,
            &mut entry.source,
            &mut entry.outcome,
        ] {
            *field = clip(field);
        }
        let shard = self.handle().shard_map().shard_of_actor(&entry.actor);
        let request = ClientRequest::Command {
            shard,
            command: Command::RecordAction(entry),
        };
        match self
            .calls
            .call(request, Instant::now() + RECORD_DEADLINE)
            .await
            .0
        {
            ClientReply::Done(code) if code.is_success() => Ok(()),
            ClientReply::Done(code) => Err(ServiceError::Refused(code)),
            other => Err(ServiceError::no_answer(
                "the audit log did not answer",
                &other,
            )),
        }
    }

    /// The newest `limit` records (at most [`AUDIT_PAGE_MAX`]) after `after` (from the newest,
    /// if `None`), asked of every shard's leader at once.
    pub async fn audit_log(
        &self,
        after: Option<AuditCursor>,
        limit: usize,
    ) -> Result<AuditPage, ServiceError> {
        let limit = limit.clamp(1, AUDIT_PAGE_MAX);
        let deadline = Instant::now() + READ_DEADLINE;
        let replies = futures::future::join_all((0..self.shard_count()).map(|shard| {
            let request = ClientRequest::AuditLog {
                shard,
                before: after.map(|cursor| cursor.bound_in(shard)),
                limit,
            };
            self.calls.call(request, deadline)
        }))
        .await;
        let mut lines = Vec::new();
        for (shard, (reply, _)) in (0u32..).zip(replies) {
            match reply {
                ClientReply::AuditLog(records) => lines.extend(
                    records
                        .into_iter()
                        .map(|record| AuditLine::of(shard, record)),
                ),
                other => {
                    return Err(ServiceError::no_answer(
                        &format!("shard {shard} did not answer"),
                        &other,
                    ))
                }
            }
        }
        Ok(merge_page(lines, limit))
    }
}

/// The newest `limit` of the shards' pages, and the cursor after them when `limit` were given.
fn merge_page(mut lines: Vec<AuditLine>, limit: usize) -> AuditPage {
    lines.sort_unstable_by_key(|line| std::cmp::Reverse(line.cursor()));
    lines.truncate(limit);
    let next = (lines.len() == limit)
        .then(|| lines.last().map(AuditLine::cursor))
        .flatten();
    AuditPage {
        records: lines,
        next,
    }
}

/// `unix_ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_utc(unix_ms: u64) -> String {
    let days = (unix_ms / 86_400_000) as i64;
    let in_day = unix_ms % 86_400_000;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(at_ms: u64, shard: u32, seq: u64) -> AuditLine {
        AuditLine::of(
            shard,
            AuditLogRecord {
                seq,
                at_ms,
                entry: AuditLogEntry::default(),
            },
        )
    }

    /// Each shard's records, newest first, strictly before `bound`, as a shard answers.
    fn shard_page(
        all: &[AuditLine],
        shard: u32,
        bound: Option<(u64, u64)>,
        limit: usize,
    ) -> Vec<AuditLine> {
        let mut mine: Vec<AuditLine> = all
            .iter()
            .filter(|l| l.shard == shard)
            .filter(|l| bound.is_none_or(|b| (l.at_ms, l.seq) < b))
            .cloned()
            .collect();
        mine.sort_by_key(|l| std::cmp::Reverse((l.at_ms, l.seq)));
        mine.truncate(limit);
        mine
    }

    #[test]
    fn paging_through_merged_shards_gives_every_record_once_newest_first() {
        // Three shards with records crowding into the same milliseconds.
        let mut all = Vec::new();
        let mut seqs = [0u64; 3];
        for i in 0..60u64 {
            let shard = (i * 7 % 3) as u32;
            let at_ms = 1_000 + i / 4;
            all.push(line(at_ms, shard, seqs[shard as usize]));
            seqs[shard as usize] += 1;
        }
        for limit in [1, 2, 5, 7, 60, 100] {
            let mut after: Option<AuditCursor> = None;
            let mut read = Vec::new();
            loop {
                let lines = (0..3)
                    .flat_map(|s| shard_page(&all, s, after.map(|c| c.bound_in(s)), limit))
                    .collect();
                let page = merge_page(lines, limit);
                read.extend(page.records.iter().map(AuditLine::cursor));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            let mut expected: Vec<AuditCursor> = all.iter().map(AuditLine::cursor).collect();
            expected.sort_by_key(|c| std::cmp::Reverse(*c));
            assert_eq!(read, expected, "limit {limit}");
        }
    }

    #[test]
    fn cursors_and_times_read_back() {
        let cursor = AuditCursor {
            at_ms: 1_800_000_000_123,
            shard: 4,
            seq: 77,
        };
        assert_eq!(AuditCursor::parse(&cursor.to_string()), Some(cursor));
        assert_eq!(AuditCursor::parse("1.2"), None);
        assert_eq!(AuditCursor::parse("1.2.3.4"), None);
        assert_eq!(AuditCursor::parse("x.2.3"), None);
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_utc(1_800_000_000_123), "2027-01-15T08:00:00.123Z");
    }

    #[test]
    fn long_fields_are_clipped_on_a_character_boundary() {
        let long = "é".repeat(AUDIT_FIELD_LEN_MAX);
        let clipped = clip(&long);
        assert!(clipped.len() <= AUDIT_FIELD_LEN_MAX);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}

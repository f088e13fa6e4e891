//! The audit log: records numbered and stamped by the shard, untouched by retirement.

use crate::ledger::{Applied, AuditLogEntry, Command, AUDIT_FIELD_LEN_MAX};
use crate::outcome::ResultCode;
use crate::testkit::Cluster;

fn entry(id: &str) -> AuditLogEntry {
    AuditLogEntry {
        id: id.into(),
        actor: "key:k1".into(),
        role: "care".into(),
        action: "POST /admin/v1/pins/unlock".into(),
        target: "254700000001".into(),
        source: "127.0.0.1 via node 1".into(),
        outcome: "200".into(),
    }
}

#[test]
fn actions_are_numbered_in_order_and_stamped_with_the_shards_clock() {
    let mut c = Cluster::new(1);
    let first = c.apply(0, Command::RecordAction(entry("a1")));
    assert_eq!(first, Applied::Admin(ResultCode::Success));
    let stamped_at = c.now;
    c.now += 5_000;
    let batch = Command::Batch(vec![
        Command::RecordAction(entry("a2")),
        Command::RecordAction(entry("a3")),
    ]);
    c.apply(0, batch);
    let records = c.ledgers[0].take_audit_log();
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![0, 1, 2]);
    assert_eq!(records[0].at_ms, stamped_at);
    assert_eq!(records[1].at_ms, stamped_at + 5_000);
    assert_eq!(records[2].entry, entry("a3"));
    assert_eq!(c.ledgers[0].audit_log_next_seq(), 3);
    assert!(c.ledgers[0].take_audit_log().is_empty(), "taken once");
}

#[test]
fn an_oversized_or_anonymous_entry_is_refused_and_numbers_nothing() {
    let mut c = Cluster::new(1);
    let mut long = entry("a1");
    long.target = "x".repeat(AUDIT_FIELD_LEN_MAX + 1);
    assert_eq!(
        c.apply(0, Command::RecordAction(long)),
        Applied::Admin(ResultCode::NotPermitted)
    );
    assert_eq!(
        c.apply(0, Command::RecordAction(entry(""))),
        Applied::Admin(ResultCode::NotPermitted)
    );
    assert!(c.ledgers[0].take_audit_log().is_empty());
    assert_eq!(c.ledgers[0].audit_log_next_seq(), 0);
}

#[test]
fn retirement_leaves_the_audit_sequence_alone() {
    let mut c = Cluster::new(1);
    c.apply(0, Command::RecordAction(entry("a1")));
    c.now += 86_400_000;
    let up_to_ms = c.now;
    c.apply(0, Command::Retire { up_to_ms });
    c.apply(0, Command::RecordAction(entry("a2")));
    let records = c.ledgers[0].take_audit_log();
    assert_eq!(records.last().map(|r| r.seq), Some(1));
}

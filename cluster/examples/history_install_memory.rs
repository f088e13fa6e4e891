//! The resident memory of the node's store while it takes a large shard's history, the way a
//! replica installing a snapshot does (one `SnapshotHistory` write of every row) or the way a
//! serving replica does (a `History` write of a few rows per engine pass). It found that sled's
//! memory grows with the size of a batch, not with its cache: 1.2M rows in batches of 10,000
//! rows took 6 GiB, in batches of 500 rows 50 MiB, key by key 40 MiB (figures in
//! BENCHMARKS.md). History has since moved to an LSM tree (`DiskStore`), written in bounded
//! batches of 2,000 keys. `install` writes a 200 MiB checkpoint and
//! the rows in one write, as the engine does.
//!
//! `cargo run --release -p tuma-cluster --example history_install_memory -- ROWS snapshot|incremental|install`

use tuma_actors::ledger::{HistoryRow, HistorySide};
use tuma_actors::outcome::ResultCode;
use tuma_actors::transfer::{TransferId, TransferKind};
use tuma_actors::{AccountRef, Money};
use tuma_cluster::storage::{DiskStore, LogStore, WriteBatch, WriteOp};

const SHARD: u32 = 1;
const ACCOUNTS: u64 = 2_000;
/// Rows per `History` write in the incremental mode (about one engine pass under load).
const ROWS_PER_PASS: u64 = 100;

/// This process's resident memory in MiB.
fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

fn customer(n: u64) -> AccountRef {
    AccountRef::parse(&format!("2547{n:08}")).expect("a valid MSISDN")
}

fn row(seq: u64) -> HistoryRow {
    let payer = seq.is_multiple_of(2);
    HistoryRow {
        seq,
        account: customer(seq % ACCOUNTS),
        side: if payer {
            HistorySide::Payer
        } else {
            HistorySide::Payee
        },
        transfer: TransferId::parse(&format!("memory-{seq}")).expect("id"),
        receipt: None,
        kind: TransferKind::SendMoney,
        counterparty: customer(99_999_999),
        amount_cents: if payer { -10_000 } else { 10_000 },
        fee: Money::ZERO,
        result: ResultCode::Success,
        completed_ms: 1_800_000_000_000 + seq,
        balance_after: Money::from_cents(1_000_000),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(rows), Some(mode)) = (args.next().and_then(|n| n.parse::<u64>().ok()), args.next())
    else {
        eprintln!("usage: history_install_memory ROWS snapshot|incremental|install");
        std::process::exit(2);
    };
    let dir = std::env::temp_dir().join(format!("tuma-history-memory-{}", std::process::id()));
    let store = DiskStore::open(&dir).expect("open sled");
    println!("opened: rss_mib={}", rss_mib());
    let started = std::time::Instant::now();
    match mode.as_str() {
        "snapshot" => {
            let all: Vec<HistoryRow> = (0..rows).map(row).collect();
            println!("{rows} rows in memory: rss_mib={}", rss_mib());
            let ops = vec![WriteOp::SnapshotHistory {
                shard: SHARD,
                rows: all,
                audit_log: Vec::new(),
            }];
            store.write(WriteBatch { ops }).expect("write");
        }
        "install" => {
            // As the engine installs a snapshot: its checkpoint and its rows in one write.
            let all: Vec<HistoryRow> = (0..rows).map(row).collect();
            let mut snapshot = raft::prelude::Snapshot::default();
            snapshot.mut_metadata().index = 1;
            snapshot.data = vec![7u8; 200 << 20].into();
            println!(
                "{rows} rows and a 200 MiB checkpoint in memory: rss_mib={}",
                rss_mib()
            );
            let ops = vec![
                WriteOp::Checkpoint {
                    shard: SHARD,
                    snapshot,
                    compact_from: 1,
                    compact_to: 0,
                },
                WriteOp::SnapshotHistory {
                    shard: SHARD,
                    rows: all,
                    audit_log: Vec::new(),
                },
            ];
            store.write(WriteBatch { ops }).expect("write");
        }
        "incremental" => {
            for from in (0..rows).step_by(ROWS_PER_PASS as usize) {
                let pass = (from..(from + ROWS_PER_PASS).min(rows)).map(row).collect();
                let ops = vec![WriteOp::History {
                    shard: SHARD,
                    rows: pass,
                    audit_log: Vec::new(),
                }];
                store.write(WriteBatch { ops }).expect("write");
            }
        }
        other => {
            eprintln!("unknown mode {other:?}: snapshot, incremental or install");
            std::process::exit(2);
        }
    }
    println!(
        "{rows} rows written in {:.1}s: rss_mib={}",
        started.elapsed().as_secs_f64(),
        rss_mib()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

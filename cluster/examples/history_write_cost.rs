//! What writing history costs per key: the same rows (a transfer's payer rows with their
//! request-id and receipt keys, as `storage/history.rs` lays them out) written through the
//! node's store — history in fjall (`HistoryStore`) — and into a bare sled database set up as
//! the store sets up sled (where history lived before). Prints the process's CPU (every thread:
//! sled's and fjall's background work included) per key for each.
//!
//! `cargo run --release -p tuma-cluster --example history_write_cost -- [TRANSFERS]`

use tuma_actors::ledger::{HistoryRow, HistorySide};
use tuma_actors::outcome::ResultCode;
use tuma_actors::transfer::{TransferId, TransferKind};
use tuma_actors::txn_id::TransactionId;
use tuma_actors::{AccountRef, Money};
use tuma_cluster::storage::{history, DiskStore, LogStore, WriteBatch, WriteOp};

/// Rows per write: about one engine pass of a busy shard.
const ROWS_PER_PASS: usize = 10;
/// Writes per flush (the engine flushes once per loop).
const PASSES_PER_FLUSH: usize = 3;
const SHARDS: u64 = 6;

/// CPU seconds this process used so far (user + system, all threads).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn row(seq: u64) -> HistoryRow {
    HistoryRow {
        seq,
        account: AccountRef::parse(&format!("2547{:08}", seq * 7_919 % 200)).expect("MSISDN"),
        side: HistorySide::Payer,
        transfer: TransferId::parse(&format!("bench-{seq:012}")).expect("id"),
        receipt: Some(
            TransactionId::parse(&format!("TMA{:07}", seq % 10_000_000)).expect("receipt"),
        ),
        kind: TransferKind::SendMoney,
        counterparty: AccountRef::parse("254711000002").expect("MSISDN"),
        amount_cents: -10_000,
        fee: Money::ZERO,
        result: ResultCode::Success,
        completed_ms: seq,
        balance_after: Money::ZERO,
    }
}

fn passes(transfers: u64) -> Vec<(u32, Vec<HistoryRow>)> {
    let rows: Vec<HistoryRow> = (0..transfers).map(row).collect();
    rows.chunks(ROWS_PER_PASS)
        .enumerate()
        .map(|(n, chunk)| ((n as u64 % SHARDS) as u32, chunk.to_vec()))
        .collect()
}

fn report(what: &str, keys: usize, cpu: f64, wall: f64) {
    println!(
        "{what}: {keys} keys, {wall:.2} s, {cpu:.2} CPU s, {:.2} µs of CPU per key",
        cpu * 1e6 / keys as f64
    );
}

fn main() {
    let transfers: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let work = passes(transfers);
    let keys: usize = work
        .iter()
        .map(|(shard, rows)| history::entries(*shard, rows, &[]).count())
        .sum();
    let base = std::env::temp_dir().join(format!("tuma-history-cost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);

    let (cpu, started) = (cpu_seconds(), std::time::Instant::now());
    {
        let db = sled::Config::new()
            .path(base.join("bare-sled"))
            .cache_capacity(64 << 20)
            .mode(sled::Mode::HighThroughput)
            .open()
            .expect("sled opens");
        for (n, (shard, rows)) in work.iter().enumerate() {
            let mut batch = sled::Batch::default();
            for (key, value) in history::entries(*shard, rows, &[]) {
                batch.insert(key, value);
            }
            db.apply_batch(batch).expect("sled writes");
            if n % PASSES_PER_FLUSH == 0 {
                db.flush().expect("sled flushes");
            }
        }
        db.flush().expect("sled flushes");
    }
    report(
        "sled (before)",
        keys,
        cpu_seconds() - cpu,
        started.elapsed().as_secs_f64(),
    );

    let (cpu, started) = (cpu_seconds(), std::time::Instant::now());
    {
        let store = DiskStore::open(&base.join("store")).expect("the store opens");
        for (n, (shard, rows)) in work.into_iter().enumerate() {
            let ops = vec![WriteOp::History {
                shard,
                rows,
                audit_log: Vec::new(),
            }];
            let batch = WriteBatch { ops };
            if n % PASSES_PER_FLUSH == 0 {
                store.write(batch).expect("the store writes");
            } else {
                store.write_unsynced(batch).expect("the store writes");
            }
        }
    }
    report(
        "history tree (now)",
        keys,
        cpu_seconds() - cpu,
        started.elapsed().as_secs_f64(),
    );
    let _ = std::fs::remove_dir_all(&base);
}

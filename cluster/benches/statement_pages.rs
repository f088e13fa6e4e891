//! Statement latency does not grow with the shard's history: a page (the mini statement's
//! newest 5 lines, and the next 5 further back) read from a sled history of 10 rows and of
//! 1,000,000 rows.
//!
//! `cargo bench -p tuma-cluster --bench statement_pages`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use tuma_actors::ledger::{HistoryRow, HistorySide};
use tuma_actors::outcome::ResultCode;
use tuma_actors::transfer::{TransferId, TransferKind};
use tuma_actors::{AccountRef, Money};
use tuma_cluster::storage::{DiskStore, LogStore, WriteBatch, WriteOp};

const SHARD: u32 = 7;
/// sled's page cache: large enough to hold the whole history, so both sizes are measured warm
/// (the figure a cold page adds is the disk's, not the history's).
const CACHE_BYTES: u64 = 2 << 30;
/// Rows written per batch while filling the store: about what one engine pass writes under load
/// (sled pages written in much larger batches stay slow to seek; see BENCHMARKS.md).
const BATCH_ROWS: usize = 500;

fn customer(n: u64) -> AccountRef {
    AccountRef::parse(&format!("2547{:08}", n)).expect("a valid MSISDN")
}

fn row(seq: u64, account: AccountRef) -> HistoryRow {
    HistoryRow {
        seq,
        account,
        side: if seq.is_multiple_of(2) {
            HistorySide::Payer
        } else {
            HistorySide::Payee
        },
        transfer: TransferId::parse(&format!("bench-{seq}")).expect("id"),
        receipt: None,
        kind: TransferKind::SendMoney,
        counterparty: customer(99_999_999),
        amount_cents: if seq.is_multiple_of(2) {
            -10_000
        } else {
            10_000
        },
        fee: Money::ZERO,
        result: ResultCode::Success,
        completed_ms: 1_800_000_000_000 + seq,
        balance_after: Money::from_cents(1_000_000),
    }
}

/// A store whose shard holds `rows` history rows over `accounts` accounts (round robin).
fn store_with(rows: u64, accounts: u64) -> (tempdir::Dir, DiskStore) {
    let dir = tempdir::Dir::new(&format!("statement-{rows}"));
    let store = DiskStore::open_with_cache(dir.path(), CACHE_BYTES).expect("open sled");
    let mut seq = 0;
    while seq < rows {
        let batch: Vec<HistoryRow> = (seq..(seq + BATCH_ROWS as u64).min(rows))
            .map(|s| row(s, customer(s % accounts)))
            .collect();
        seq += batch.len() as u64;
        store
            .write(WriteBatch {
                ops: vec![WriteOp::History {
                    shard: SHARD,
                    rows: batch,
                    audit_log: Vec::new(),
                }],
            })
            .expect("write history");
    }
    (dir, store)
}

fn statement_pages(c: &mut Criterion) {
    let mut group = c.benchmark_group("statement_page");
    // 10 rows: one account's whole history. 1,000,000 rows: 10,000 accounts × 100 rows.
    for (label, rows, accounts) in [("10_rows", 10, 1), ("1000000_rows", 1_000_000, 10_000)] {
        let (_dir, store) = store_with(rows, accounts);
        let account = customer(accounts / 2);
        group.bench_function(format!("mini_statement/{label}"), |b| {
            b.iter(|| {
                let page = store
                    .history_page(SHARD, black_box(&account), None, 5, true)
                    .expect("page");
                assert_eq!(page.len(), 5);
                page
            })
        });
        // The next page: five lines from three lines back.
        let before = rows.saturating_sub(accounts * 3) + accounts / 2;
        group.bench_function(format!("next_page/{label}"), |b| {
            b.iter(|| {
                let page = store
                    .history_page(SHARD, black_box(&account), Some(before), 5, true)
                    .expect("page");
                assert_eq!(page.len(), 5);
                page
            })
        });
    }
    group.finish();
}

/// A directory removed when dropped.
mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(name: &str) -> Dir {
            let path =
                std::env::temp_dir().join(format!("tuma-bench-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("a temporary directory");
            Dir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

criterion_group!(benches, statement_pages);
criterion_main!(benches);

//! History reads off the engine thread. A read of the history store (a statement page, a
//! receipt, a transfer whose record retired from memory) is confirmed like any read — the
//! leader's ReadIndex, then applied that far, and the rows of every applied entry written —
//! and then handed to a reader thread, so the engine never waits on the disk for a customer's
//! statement. Readers answer through the engine's input queue (`Input::Reply`).
//!
//! Started on the first history read when the store offers a reader of its own (the disk store); a store
//! without one (the in-memory store of tests and the simulator) is read inline, so simulated
//! runs stay deterministic. A full queue answers "unavailable" (the caller retries).

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tuma_actors::account::AccountRef;
use tuma_actors::ledger::{HistoryRow, Receipt};
use tuma_actors::transfer::TransferId;
use tuma_actors::txn_id::TransactionId;

use crate::storage::audit_log;
use crate::storage::history::{self, HistoryKv};
use crate::storage::{LogStore, StorageError};

use super::job_queue::{next_job, SharedQueue};
use super::request::{ClientReply, Input, StatementLine, Waiter};

/// Reader threads.
const WORKERS: usize = 2;
/// Reads queued for the readers at most.
const QUEUE_MAX: usize = 4_096;

/// A confirmed read of one shard's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    pub shard: u32,
    pub what: HistoryRead,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryRead {
    /// A statement page: committed lines below `before`, newest first.
    Statement {
        account: AccountRef,
        before: Option<u64>,
        limit: usize,
    },
    /// Every row of the transfer with this receipt.
    Receipt { txn_id: TransactionId },
    /// A transfer whose record retired from memory: its payer row answers (only if `payer`
    /// paid it, when named).
    TransferStatus {
        id: TransferId,
        payer: Option<AccountRef>,
    },
    /// A page of everything the shard's history holds (see [`history::export_page`]).
    Export {
        after: Option<Vec<u8>>,
        limit: usize,
    },
    /// A page of the shard's audit log (see [`audit_log::page`]).
    AuditLog {
        before: Option<(u64, u64)>,
        limit: usize,
    },
}

impl HistoryQuery {
    /// The answer, from `kv`.
    pub fn run(&self, kv: &dyn HistoryKv) -> ClientReply {
        let unreadable =
            |error: StorageError| ClientReply::Unavailable(format!("history: {error}"));
        let shard = self.shard;
        match &self.what {
            HistoryRead::Statement {
                account,
                before,
                limit,
            } => match history::page(kv, shard, account, *before, *limit, true) {
                Ok(rows) => ClientReply::Statement(rows.iter().map(StatementLine::of).collect()),
                Err(error) => unreadable(error),
            },
            HistoryRead::Receipt { txn_id } => match history::by_receipt(kv, shard, txn_id) {
                Ok(rows) => ClientReply::History(rows),
                Err(error) => unreadable(error),
            },
            HistoryRead::Export { after, limit } => {
                match history::export_page(kv, shard, after.as_deref(), *limit) {
                    Ok(((rows, audit_log), next)) => ClientReply::BackupRows {
                        rows,
                        audit_log,
                        next,
                    },
                    Err(error) => unreadable(error),
                }
            }
            HistoryRead::AuditLog { before, limit } => {
                match audit_log::page(kv, shard, *before, *limit) {
                    Ok(records) => ClientReply::AuditLog(records),
                    Err(error) => unreadable(error),
                }
            }
            HistoryRead::TransferStatus { id, payer } => {
                match history::by_transfer(kv, shard, id) {
                    Ok(Some(row)) if payer.as_ref().is_some_and(|p| *p != row.account) => {
                        ClientReply::UnknownTransfer
                    }
                    Ok(Some(row)) => ClientReply::Receipt(receipt_of_row(&row)),
                    Ok(None) => ClientReply::UnknownTransfer,
                    Err(error) => unreadable(error),
                }
            }
        }
    }
}

/// What a client is told of a finished transfer whose record retired from memory.
fn receipt_of_row(row: &HistoryRow) -> Receipt {
    Receipt {
        id: row.transfer.clone(),
        result: row.result,
        txn_id: row.receipt,
        fee: row.fee,
        balance: row.balance_after,
        payee_name: None,
    }
}

struct Job {
    query: HistoryQuery,
    waiter: Waiter,
}

/// The reader threads, started on the first read a store offers a reader for.
pub struct HistoryReads {
    engine: SyncSender<Input>,
    workers: usize,
    queue_max: usize,
    jobs: Option<SyncSender<Job>>,
}

impl HistoryReads {
    pub fn new(engine: SyncSender<Input>) -> HistoryReads {
        HistoryReads::with_limits(engine, WORKERS, QUEUE_MAX)
    }

    /// `workers` reader threads sharing a queue of at most `queue_max` reads, once started.
    pub fn with_limits(
        engine: SyncSender<Input>,
        workers: usize,
        queue_max: usize,
    ) -> HistoryReads {
        HistoryReads {
            engine,
            workers: workers.max(1),
            queue_max: queue_max.max(1),
            jobs: None,
        }
    }

    /// Hands `query` to a reader, or answers it here: inline when `store` has no reader of
    /// its own, "unavailable" when the readers' queue is full.
    pub fn submit(
        &mut self,
        query: HistoryQuery,
        waiter: Waiter,
        store: &dyn LogStore,
    ) -> Option<(Waiter, ClientReply)> {
        if self.jobs.is_none() {
            self.jobs = self.start(store);
        }
        let Some(jobs) = &self.jobs else {
            let reply = query.run(store.history_kv());
            return Some((waiter, reply));
        };
        match jobs.try_send(Job { query, waiter }) {
            Ok(()) => None,
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                metrics::counter!("tuma_history_reads_refused_total").increment(1);
                Some((
                    job.waiter,
                    ClientReply::Unavailable("too many history reads waiting".into()),
                ))
            }
        }
    }

    fn start(&self, store: &dyn LogStore) -> Option<SyncSender<Job>> {
        store.history_reader()?;
        let (jobs, queue) = sync_channel::<Job>(self.queue_max);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..self.workers {
            let reader = store.history_reader()?;
            let (queue, engine) = (queue.clone(), self.engine.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("tuma-history-{n}"))
                .spawn(move || work(&queue, &engine, reader.as_ref()));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a history reader; reading inline");
                return None;
            }
        }
        Some(jobs)
    }
}

fn work(queue: &SharedQueue<Job>, engine: &SyncSender<Input>, kv: &dyn HistoryKv) {
    while let Some(job) = next_job(queue) {
        let reply = job.query.run(kv);
        metrics::counter!("tuma_history_reads_total").increment(1);
        let input = Input::Reply {
            waiter: job.waiter,
            reply,
        };
        if engine.send(input).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{DiskStore, MemDisk, WriteBatch, WriteOp};
    use tuma_actors::ledger::HistorySide;
    use tuma_actors::money::Money;
    use tuma_actors::outcome::ResultCode;
    use tuma_actors::transfer::TransferKind;

    const SHARD: u32 = 3;

    fn alice() -> AccountRef {
        AccountRef::parse("254711000001").unwrap()
    }

    fn rows(n: u64) -> Vec<HistoryRow> {
        (0..n)
            .map(|seq| HistoryRow {
                seq,
                account: alice(),
                side: HistorySide::Payer,
                transfer: TransferId::parse(&format!("read-{seq}")).unwrap(),
                receipt: None,
                kind: TransferKind::SendMoney,
                counterparty: AccountRef::parse("254711000002").unwrap(),
                amount_cents: -100,
                fee: Money::ZERO,
                result: ResultCode::Success,
                completed_ms: seq,
                balance_after: Money::ZERO,
            })
            .collect()
    }

    fn statement() -> HistoryQuery {
        HistoryQuery {
            shard: SHARD,
            what: HistoryRead::Statement {
                account: alice(),
                before: None,
                limit: 3,
            },
        }
    }

    fn lines(reply: &ClientReply) -> Vec<String> {
        match reply {
            ClientReply::Statement(lines) => lines
                .iter()
                .map(|l| l.transfer.as_str().to_string())
                .collect(),
            other => panic!("not a statement: {other:?}"),
        }
    }

    fn write(store: &dyn LogStore) {
        let ops = vec![WriteOp::History {
            shard: SHARD,
            rows: rows(5),
            audit_log: Vec::new(),
        }];
        store.write(WriteBatch { ops }).unwrap();
    }

    #[test]
    fn a_store_with_a_reader_is_read_on_a_reader_thread_and_answered_through_the_engine() {
        let dir = std::env::temp_dir().join(format!("tuma-history-reads-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = DiskStore::open(&dir).unwrap();
        write(&store);
        let (engine, inputs) = sync_channel(16);
        let mut reads = HistoryReads::new(engine);
        let (waiter, _answer) = tokio::sync::oneshot::channel();
        let answered = reads.submit(statement(), Waiter::Local(waiter), &store);
        assert!(answered.is_none(), "handed to a reader, not answered here");
        let input = inputs
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the reader answers");
        let Input::Reply { reply, .. } = input else {
            panic!("not a reply: {input:?}");
        };
        assert_eq!(lines(&reply), ["read-4", "read-3", "read-2"]);
        drop(reads);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_past_the_queue_are_answered_unavailable_and_the_queued_ones_still_answer() {
        let dir = std::env::temp_dir().join(format!("tuma-history-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = DiskStore::open(&dir).unwrap();
        write(&store);
        // The engine takes no answers yet: the one reader blocks handing over its second
        // answer, so at most 1 (handed over) + 1 (blocked) + 1 (queued) reads are accepted.
        let (engine, inputs) = sync_channel(1);
        let mut reads = HistoryReads::with_limits(engine, 1, 1);
        let mut refused = 0;
        for _ in 0..10 {
            let (waiter, _answer) = tokio::sync::oneshot::channel();
            match reads.submit(statement(), Waiter::Local(waiter), &store) {
                None => {}
                Some((_, ClientReply::Unavailable(why))) => {
                    assert_eq!(why, "too many history reads waiting");
                    refused += 1;
                }
                Some((_, other)) => panic!("answered inline: {other:?}"),
            }
        }
        assert!((7..=9).contains(&refused), "{refused} of 10 refused");
        let accepted = 10 - refused;
        for _ in 0..accepted {
            let input = inputs
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("every accepted read is answered");
            let Input::Reply { reply, .. } = input else {
                panic!("not a reply: {input:?}");
            };
            assert_eq!(lines(&reply), ["read-4", "read-3", "read-2"]);
        }
        drop(reads);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_store_without_a_reader_is_read_inline() {
        let store = MemDisk::new().open();
        write(&store);
        let (engine, inputs) = sync_channel(16);
        let mut reads = HistoryReads::new(engine);
        let (waiter, _answer) = tokio::sync::oneshot::channel();
        let (_, reply) = reads
            .submit(statement(), Waiter::Local(waiter), &store)
            .expect("answered inline");
        assert_eq!(lines(&reply), ["read-4", "read-3", "read-2"]);
        assert!(
            inputs.try_recv().is_err(),
            "nothing went through the engine"
        );
        let missing = HistoryQuery {
            shard: SHARD,
            what: HistoryRead::TransferStatus {
                id: TransferId::parse("never").unwrap(),
                payer: None,
            },
        };
        assert!(matches!(
            missing.run(store.history_kv()),
            ClientReply::UnknownTransfer
        ));
        let known = HistoryQuery {
            shard: SHARD,
            what: HistoryRead::TransferStatus {
                id: TransferId::parse("read-1").unwrap(),
                payer: None,
            },
        };
        assert!(matches!(
            known.run(store.history_kv()),
            ClientReply::Receipt(Receipt {
                result: ResultCode::Success,
                ..
            })
        ));
        // Named with another payer, the same transfer is not found: the caller proved nothing.
        let someone_else = HistoryQuery {
            shard: SHARD,
            what: HistoryRead::TransferStatus {
                id: TransferId::parse("read-1").unwrap(),
                payer: Some(AccountRef::parse("254799999999").unwrap()),
            },
        };
        assert!(matches!(
            someone_else.run(store.history_kv()),
            ClientReply::UnknownTransfer
        ));
    }
}

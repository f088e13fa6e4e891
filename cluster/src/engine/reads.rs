//! Linearizable reads: a leader answers a read only after confirming it still leads (raft-rs's
//! ReadIndex: a heartbeat round acknowledged by a quorum) and applying up to the commit index
//! it read — so a deposed leader that does not know it yet can never answer from stale state,
//! and a transfer that committed is never reported unknown.

use std::collections::BTreeMap;

use raft::ReadState;
use tuma_actors::ledger::{HistoryRow, Receipt, ShardLedger};

use crate::storage::{LogStore, StorageError};

use super::request::{ClientReply, ClientRequest, StatementLine, Waiter};

/// Most reads waiting on one replica; more are answered "unavailable".
pub const PENDING_READS_MAX: usize = 10_000;

struct PendingRead {
    request: ClientRequest,
    waiter: Waiter,
}

/// Reads waiting for their ReadIndex, then for the replica to apply up to it.
#[derive(Default)]
pub(super) struct PendingReads {
    next_id: u64,
    /// Asked raft-rs for a read index; keyed by the request context.
    confirming: BTreeMap<u64, PendingRead>,
    /// Leadership confirmed at this commit index; answered once applied that far.
    confirmed: Vec<(u64, PendingRead)>,
}

impl PendingReads {
    /// Registers a read; returns the context to pass to `read_index`, or hands the waiter back
    /// when too many reads wait.
    pub fn register(&mut self, request: ClientRequest, waiter: Waiter) -> Result<Vec<u8>, Waiter> {
        if self.confirming.len() + self.confirmed.len() >= PENDING_READS_MAX {
            return Err(waiter);
        }
        self.next_id += 1;
        self.confirming
            .insert(self.next_id, PendingRead { request, waiter });
        Ok(self.next_id.to_be_bytes().to_vec())
    }

    /// Read indexes raft-rs confirmed in a Ready.
    pub fn confirm(&mut self, states: &[ReadState]) {
        for state in states {
            let Ok(id) = <[u8; 8]>::try_from(state.request_ctx.as_slice()) else {
                continue;
            };
            if let Some(read) = self.confirming.remove(&u64::from_be_bytes(id)) {
                self.confirmed.push((state.index, read));
            }
        }
    }

    /// Answers every confirmed read whose index is applied.
    pub fn answer(
        &mut self,
        ledger: &ShardLedger,
        store: &dyn LogStore,
        applied: u64,
    ) -> Vec<(Waiter, ClientReply)> {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.confirmed = later;
        due.into_iter()
            .map(|(_, read)| (read.waiter, answer(ledger, store, &read.request)))
            .collect()
    }

    /// Every waiting read's waiter (leadership lost: they retry elsewhere; nothing was done).
    pub fn drain(&mut self) -> Vec<Waiter> {
        let confirming = std::mem::take(&mut self.confirming).into_values();
        let confirmed = std::mem::take(&mut self.confirmed)
            .into_iter()
            .map(|(_, r)| r);
        confirming.chain(confirmed).map(|r| r.waiter).collect()
    }
}

/// A read answered from the applied state and the shard's history (a range read of a few
/// rows: its cost does not grow with the history).
pub(super) fn answer(
    ledger: &ShardLedger,
    store: &dyn LogStore,
    request: &ClientRequest,
) -> ClientReply {
    let shard = ledger.shard();
    let unreadable = |error: StorageError| ClientReply::Unavailable(format!("history: {error}"));
    match request {
        ClientRequest::Account { account } => {
            ClientReply::Account(ledger.account(account).cloned().map(Box::new))
        }
        ClientRequest::TransferStatus { id, .. } => match ledger.outgoing(id) {
            Some(_) => match ledger.receipt(id) {
                Some(receipt) => ClientReply::Receipt(receipt),
                None => ClientReply::InProgress,
            },
            // Retired from memory: its payer row answers for the whole history.
            None => match store.history_by_transfer(shard, id) {
                Ok(Some(row)) => ClientReply::Receipt(receipt_of_row(&row)),
                Ok(None) => ClientReply::UnknownTransfer,
                Err(error) => unreadable(error),
            },
        },
        ClientRequest::TransferByReceipt { txn_id, .. } => {
            ClientReply::Transfer(ledger.outgoing_by_receipt(txn_id).cloned().map(Box::new))
        }
        ClientRequest::Receipt { txn_id, .. } => match store.history_by_receipt(shard, txn_id) {
            Ok(rows) => ClientReply::History(rows),
            Err(error) => unreadable(error),
        },
        ClientRequest::Audit { .. } => match ledger.audit() {
            Ok(audit) => ClientReply::Audit(Box::new(audit)),
            Err(violation) => ClientReply::Unavailable(format!("audit failed: {violation}")),
        },
        ClientRequest::Statement {
            account,
            limit,
            before,
        } => match store.history_page(shard, account, *before, *limit, true) {
            Ok(rows) => ClientReply::Statement(rows.iter().map(StatementLine::of).collect()),
            Err(error) => unreadable(error),
        },
        other => ClientReply::Unavailable(format!(
            "not a read: {}",
            match other {
                ClientRequest::Command { .. } => "command",
                ClientRequest::Transfer { .. } => "transfer",
                ClientRequest::PlantPanic { .. } | ClientRequest::PlantEnginePanic => "test hook",
                _ => "cluster change",
            }
        )),
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

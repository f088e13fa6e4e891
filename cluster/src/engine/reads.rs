//! Linearizable reads: a leader answers a read only after confirming it still leads (raft-rs's
//! ReadIndex: a heartbeat round acknowledged by a quorum) and applying up to the commit index
//! it read — so a deposed leader that does not know it yet can never answer from stale state,
//! and a transfer that committed is never reported unknown.

use std::collections::BTreeMap;

use raft::ReadState;
use tuma_actors::ledger::{IncomingState, OutgoingState, ShardLedger};
use tuma_actors::AccountRef;

use super::request::{ClientReply, ClientRequest, StatementLine, Waiter};

/// Most statement lines returned.
const STATEMENT_LINES_MAX: usize = 100;
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
    pub fn answer(&mut self, ledger: &ShardLedger, applied: u64) -> Vec<(Waiter, ClientReply)> {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.confirmed = later;
        due.into_iter()
            .map(|(_, read)| (read.waiter, answer(ledger, &read.request)))
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

/// A read answered from the applied state.
pub(super) fn answer(ledger: &ShardLedger, request: &ClientRequest) -> ClientReply {
    match request {
        ClientRequest::Account { account } => {
            ClientReply::Account(ledger.account(account).cloned().map(Box::new))
        }
        ClientRequest::TransferStatus { id, .. } => match ledger.outgoing(id) {
            None => ClientReply::UnknownTransfer,
            Some(_) => match ledger.receipt(id) {
                Some(receipt) => ClientReply::Receipt(receipt),
                None => ClientReply::InProgress,
            },
        },
        ClientRequest::TransferByReceipt { txn_id, .. } => {
            ClientReply::Transfer(ledger.outgoing_by_receipt(txn_id).cloned().map(Box::new))
        }
        ClientRequest::Audit { .. } => match ledger.audit() {
            Ok(audit) => ClientReply::Audit(Box::new(audit)),
            Err(violation) => ClientReply::Unavailable(format!("audit failed: {violation}")),
        },
        ClientRequest::Statement { account, limit } => {
            ClientReply::Statement(statement(ledger, account, *limit))
        }
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

/// Committed transfers touching `account` on its shard, newest first.
fn statement(ledger: &ShardLedger, account: &AccountRef, limit: usize) -> Vec<StatementLine> {
    let mut lines = Vec::new();
    for (id, record) in ledger.outgoing_records() {
        if record.state != OutgoingState::Committed {
            continue;
        }
        let request = &record.request;
        let (amount, counterparty) = if &request.from == account {
            (
                -(request.amount.cents() + record.fee.cents()),
                request.to.to_string(),
            )
        } else if &record.ledger_payee == account {
            (request.amount.cents(), request.from.to_string())
        } else {
            continue;
        };
        lines.push(StatementLine {
            transfer: id.clone(),
            receipt: record.txn_id.map(|t| t.to_string()),
            kind: request.kind.name().to_string(),
            counterparty,
            amount_cents: amount,
            completed_ms: record.decided_ms.unwrap_or(record.created_ms),
        });
    }
    for (id, record) in ledger.incoming_records() {
        let (IncomingState::Committed, Some(offer)) = (&record.state, &record.offer) else {
            continue;
        };
        if &offer.to != account {
            continue;
        }
        lines.push(StatementLine {
            transfer: id.clone(),
            receipt: Some(offer.txn_id.to_string()),
            kind: offer.kind.name().to_string(),
            counterparty: offer.from.to_string(),
            amount_cents: offer.amount.cents(),
            completed_ms: record.settled_ms.unwrap_or(record.accepted_ms),
        });
    }
    lines.sort_by(|a, b| {
        b.completed_ms
            .cmp(&a.completed_ms)
            .then_with(|| a.transfer.cmp(&b.transfer))
    });
    lines.truncate(limit.min(STATEMENT_LINES_MAX));
    lines
}

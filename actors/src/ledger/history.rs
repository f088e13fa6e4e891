//! Bounded state: finished transfers leave the replicated in-memory state for a durable
//! per-account history.
//!
//! When a transfer becomes final on a shard, apply emits a [`HistoryRow`] for each party of
//! that shard (never for system accounts), numbered by the shard's history sequence. The engine
//! writes the rows to its store as entries apply — the same rows with the same numbers on every
//! replica, since apply is deterministic — and a snapshot carries the rows numbered below its
//! state's sequence.
//!
//! The finished record itself stays in memory for the idempotency window (a retry gets the
//! same answer from it), then a `Retire { up_to_ms }` entry, proposed by the leader, drops
//! every finished record whose retirement time is at or before `up_to_ms`. Retirement is driven
//! by the log, so replicas never need to agree on a window.

use serde::{Deserialize, Serialize};

use crate::account::AccountRef;
use crate::money::Money;
use crate::outcome::ResultCode;
use crate::transfer::{TransferId, TransferKind};
use crate::txn_id::TransactionId;

use super::command::{Applied, CreditOffer};
use super::records::{IncomingState, OutgoingTransfer};
use super::ShardLedger;

/// Which side of a transfer a history row tells.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistorySide {
    Payer,
    Payee,
}

/// One finished transfer as one account of this shard saw it. Immutable once written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// The shard's history sequence number: a statement page reads rows below a number.
    pub seq: u64,
    pub account: AccountRef,
    pub side: HistorySide,
    pub transfer: TransferId,
    /// The receipt, for committed transfers.
    pub receipt: Option<TransactionId>,
    pub kind: TransferKind,
    pub counterparty: AccountRef,
    /// Signed minor units: negative when money left the account (fee included).
    pub amount_cents: i64,
    pub fee: Money,
    pub result: ResultCode,
    /// Leader timestamp of the entry that made the transfer final here.
    pub completed_ms: u64,
    /// The account's posted balance right after.
    pub balance_after: Money,
}

impl HistoryRow {
    /// True for transfers that moved money (the lines of a statement).
    pub fn committed(&self) -> bool {
        self.result == ResultCode::Success
    }
}

/// Which in-memory record a retirement drops.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) enum RecordSide {
    Outgoing,
    Incoming,
}

impl ShardLedger {
    fn next_history_seq(&mut self) -> u64 {
        let seq = self.state.history_next_seq;
        self.state.history_next_seq += 1;
        seq
    }

    /// Rows emitted by the entries applied since the last call, in sequence order.
    pub fn take_history(&mut self) -> Vec<HistoryRow> {
        std::mem::take(&mut self.history)
    }

    /// The sequence number the next history row gets: a snapshot of this state carries the
    /// rows below it.
    pub fn history_next_seq(&self) -> u64 {
        self.state.history_next_seq
    }

    /// Finished records waiting for retirement.
    pub fn retiring(&self) -> usize {
        self.state.retiring.len()
    }

    /// The earliest retirement time of a finished record still in memory.
    pub fn oldest_retirable_ms(&self) -> Option<u64> {
        let records = self.state.retiring.first().map(|(at, _, _)| *at);
        records
            .into_iter()
            .chain(self.oldest_closed_prompt_ms())
            .chain(self.oldest_closed_payout_ms())
            .min()
    }

    /// A payer-side record became final: its history row, and its place in the retirement
    /// queue.
    pub(super) fn finished_outgoing(&mut self, record: &OutgoingTransfer, now: u64) {
        let request = &record.request;
        let result = record.result().unwrap_or(ResultCode::Success);
        let committed = result == ResultCode::Success;
        let moved = if committed {
            request.amount.cents() + record.fee.cents()
        } else {
            0
        };
        if !request.from.is_system() {
            let seq = self.next_history_seq();
            self.history.push(HistoryRow {
                seq,
                account: request.from.clone(),
                side: HistorySide::Payer,
                transfer: request.id.clone(),
                receipt: record.txn_id.filter(|_| committed),
                kind: request.kind,
                counterparty: request.to.clone(),
                amount_cents: -moved,
                fee: if committed { record.fee } else { Money::ZERO },
                result,
                completed_ms: now,
                balance_after: record.balance_after,
            });
        }
        self.state
            .retiring
            .insert((now, RecordSide::Outgoing, request.id.clone()));
        self.prompt_payment_finished(&request.id, result, record.txn_id, now);
        if committed {
            self.count_charges(&request.from, record.fee);
        }
        self.payout_payment_finished(record, now);
    }

    /// A same-shard payee was credited.
    pub(super) fn credited_locally(&mut self, record: &OutgoingTransfer, now: u64) {
        let payee = &record.ledger_payee;
        if payee.is_system() {
            return;
        }
        let seq = self.next_history_seq();
        let balance_after = self.balance_of_account(payee);
        let request = &record.request;
        self.history.push(HistoryRow {
            seq,
            account: payee.clone(),
            side: HistorySide::Payee,
            transfer: request.id.clone(),
            receipt: record.txn_id,
            kind: request.kind,
            counterparty: request.from.clone(),
            amount_cents: request.amount.cents(),
            fee: Money::ZERO,
            result: ResultCode::Success,
            completed_ms: now,
            balance_after,
        });
    }

    /// A cross-shard credit was posted to its payee here.
    pub(super) fn credited_remotely(&mut self, offer: &CreditOffer, now: u64) {
        if offer.to.is_system() {
            return;
        }
        let seq = self.next_history_seq();
        let balance_after = self.balance_of_account(&offer.to);
        self.history.push(HistoryRow {
            seq,
            account: offer.to.clone(),
            side: HistorySide::Payee,
            transfer: offer.id.clone(),
            receipt: Some(offer.txn_id),
            kind: offer.kind,
            counterparty: offer.from.clone(),
            amount_cents: offer.amount.cents(),
            fee: Money::ZERO,
            result: ResultCode::Success,
            completed_ms: now,
            balance_after,
        });
    }

    /// A payee-side record became final (settled, rejected, or a tombstone): it may retire once
    /// its deadline has passed too, so a late offer is refused by the deadline rather than
    /// taken as new.
    pub(super) fn finished_incoming(&mut self, id: &TransferId, deadline_ms: u64, now: u64) {
        self.state
            .retiring
            .insert((now.max(deadline_ms), RecordSide::Incoming, id.clone()));
    }

    fn balance_of_account(&self, account: &AccountRef) -> Money {
        self.state
            .accounts
            .get(account)
            .map(|a| a.balances.balance())
            .unwrap_or_default()
    }

    /// Drops every finished record whose retirement time is at or before `up_to_ms`. A
    /// payer-side record whose decision is still being delivered stays until a later
    /// retirement (a payee that asks about it must hear the decision, not a presumed abort).
    pub(super) fn retire(&mut self, up_to_ms: u64) -> Applied {
        let mut kept = Vec::new();
        while let Some(first) = self.state.retiring.first() {
            if first.0 > up_to_ms {
                break;
            }
            let (_, side, id) = self.state.retiring.pop_first().expect("checked");
            match side {
                RecordSide::Outgoing if self.state.outbox.contains_key(&id) => {
                    kept.push((up_to_ms.saturating_add(1), side, id));
                }
                RecordSide::Outgoing => {
                    if let Some(record) = self.state.outgoing.remove(&id) {
                        self.forget_receipt(record.txn_id, &id);
                    }
                }
                RecordSide::Incoming => {
                    if let Some(record) = self.state.incoming.remove(&id) {
                        self.forget_receipt(record.offer.map(|o| o.txn_id), &id);
                    }
                }
            }
        }
        self.state.retiring.extend(kept);
        self.retire_prompts(up_to_ms);
        self.retire_payouts(up_to_ms);
        self.state.retired_up_to_ms = self.state.retired_up_to_ms.max(up_to_ms);
        Applied::Unchanged
    }

    fn forget_receipt(&mut self, txn_id: Option<TransactionId>, id: &TransferId) {
        if let Some(txn_id) = txn_id {
            if self.state.by_txn_id.get(&txn_id) == Some(id) {
                self.state.by_txn_id.remove(&txn_id);
            }
        }
    }

    /// True once any record was retired: a commit for an unknown transfer may then be a late
    /// duplicate of a retired one rather than a protocol error.
    pub(super) fn has_retired(&self) -> bool {
        self.state.retired_up_to_ms > 0
    }

    /// Whether a payee-side state is final (may retire).
    pub(super) fn incoming_final(state: &IncomingState) -> bool {
        !matches!(state, IncomingState::Accepted)
    }
}

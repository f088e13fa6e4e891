//! Business payout orders (Daraja's B2C and B2B), driven as the business API drives them: the
//! order is recorded on its business's shard (`OpenPayout`, retried under faults like every
//! command), and only once that is answered does the payment start — an ordinary business
//! transfer whose id names the order. Some orders are never paid (the accepting node died) and
//! must time out to `QueueTimeOutURL`; some payments differ from their order, some name no
//! order at all, some keys are used twice: none of those may move money.
//!
//! After healing, every order is held to its result callback in the business shard's outbox
//! and to the payer's history: exactly one callback for an accepted order, saying paid with
//! the receipt of the one committed payment, or not paid when no payment committed; no money
//! moves for an order that was not accepted or a payment that names none.

use std::collections::BTreeSet;

use tuma_actors::account::AccountRef;
use tuma_actors::ledger::{
    payout_payment_id, CallbackEvent, Command, HistoryRow, HistorySide, PayoutRequest,
};
use tuma_actors::money::Money;
use tuma_actors::outcome::ResultCode;
use tuma_actors::transfer::{TransferId, TransferRequest};
use tuma_actors::txn_id::TransactionId;

use super::clients::{Answer, TransferClient};
use super::env::EPOCH_MS;
use super::history_checks::Histories;
use super::world::{CommandClient, Event, World};
use crate::sim::report::PayoutTally;

/// What the business's edge does once its order is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PaymentPlan {
    /// Pays it as ordered, this long after the order was accepted.
    Pay { after_ms: u64 },
    /// Sends a payment that differs from the order (another amount): refused, and the order
    /// later times out.
    PayOtherwise { after_ms: u64 },
    /// Never pays it (the node that accepted it died): it must time out, nothing paid.
    Abandon,
}

/// One payout order and its callers.
pub(super) struct PayoutOrder {
    pub request: PayoutRequest,
    pub plan: PaymentPlan,
    /// Its `OpenPayout` command (an index into `World::commands`).
    pub command: usize,
    /// Its payment (an index into `World::transfers`), once sent.
    pub payment: Option<usize>,
}

/// A payout order's result callback, as queued in its shard's outbox.
struct ResultCallback {
    result: ResultCode,
    txn_id: Option<TransactionId>,
    timed_out: bool,
}

impl World {
    /// Schedules the workload's payout orders (about one per ten transfers) and a few
    /// payments that name no order.
    pub(super) fn schedule_payouts(&mut self, start: u64) {
        let count = (self.cfg.transfers / 10).max(1);
        for n in 0..count {
            let at = start + self.rng.range(0, self.cfg.workload_ms * 9 / 10);
            let wall = EPOCH_MS + at;
            let expires_ms = wall + self.rng.range(300, 5_000);
            let reused = (!self.payouts.is_empty() && self.rng.chance(100))
                .then(|| self.rng.pick(&self.payouts).request.clone());
            let originator_id = match &reused {
                Some(earlier) => earlier.originator_id.clone(),
                None => format!("o{n}"),
            };
            let mut request = self
                .bank
                .random_payout(&mut self.rng, n, originator_id, expires_ms);
            if let Some(earlier) = reused {
                // The same business's key again, for another order.
                request.business = earlier.business;
            }
            let after_ms = if self.rng.chance(100) {
                self.rng.range(1_000, 6_000)
            } else {
                self.rng.range(0, 400)
            };
            let plan = match self.rng.below(100) {
                0..=14 => PaymentPlan::Abandon,
                15..=19 => PaymentPlan::PayOtherwise { after_ms },
                _ => PaymentPlan::Pay { after_ms },
            };
            let shard = self
                .map
                .shard_of(&AccountRef::Business(request.business.clone()));
            let mut command = CommandClient::new(shard, Command::OpenPayout(request.clone()));
            command.opens_payout = Some(self.payouts.len());
            self.commands.push(command);
            self.payouts.push(PayoutOrder {
                request,
                plan,
                command: self.commands.len() - 1,
                payment: None,
            });
            self.schedule(at, Event::Command(self.commands.len() - 1));
        }
        if self.rng.chance(300) {
            let at = start + self.rng.range(0, self.cfg.workload_ms * 9 / 10);
            let order = self
                .bank
                .random_payout(&mut self.rng, usize::MAX, "stray".into(), 0);
            let mut request = order.payment(EPOCH_MS + at + 3_000);
            request.id = payout_payment_id("AG_stray");
            self.send_payment(request, at);
        }
    }

    /// An order's `OpenPayout` was answered: an accepted order is paid as planned.
    pub(super) fn payout_opened(&mut self, order: usize, code: ResultCode) {
        let conversation_id = self.payouts[order].request.conversation_id.clone();
        self.note(|| format!("payout {conversation_id}: order answered {code:?}"));
        if code != ResultCode::Success {
            return;
        }
        let (after_ms, otherwise) = match self.payouts[order].plan {
            PaymentPlan::Abandon => return,
            PaymentPlan::Pay { after_ms } => (after_ms, false),
            PaymentPlan::PayOtherwise { after_ms } => (after_ms, true),
        };
        let at = self.now() + after_ms;
        let deadline_ms = EPOCH_MS + at + self.rng.range(1_000, 6_000);
        let mut request = self.payouts[order].request.payment(deadline_ms);
        if otherwise {
            let more = request.amount.checked_add(Money::from_shillings(1));
            request.amount = more.unwrap_or(request.amount);
        }
        self.payouts[order].payment = Some(self.send_payment(request, at));
    }

    /// Sends `request` as a transfer at `at`; returns its caller's index.
    fn send_payment(&mut self, request: TransferRequest, at: u64) -> usize {
        let wait_ms = request.deadline_ms.saturating_sub(EPOCH_MS + at);
        let shard = self.map.shard_of(&request.from);
        self.recorder().watch_transfer(shard, request.id.clone());
        self.transfers
            .push(TransferClient::new(request, String::new(), wait_ms));
        let i = self.transfers.len() - 1;
        self.schedule(at, Event::Transfer(i));
        i
    }

    /// How the run's orders ended, by their result callbacks.
    pub(super) fn payout_tally(&self) -> PayoutTally {
        let accepted = self
            .payouts
            .iter()
            .filter(|o| self.commands[o.command].result == Some(ResultCode::Success))
            .count();
        let mut tally = PayoutTally {
            orders: self.payouts.len() as u64,
            accepted: accepted as u64,
            ..PayoutTally::default()
        };
        for ledger in self.leader_ledgers().values() {
            for callback in ledger.callbacks(0, usize::MAX) {
                if let CallbackEvent::PayoutClosed {
                    result, timed_out, ..
                } = &callback.event
                {
                    tally.paid += u64::from(result.is_success());
                    tally.queue_timeouts += u64::from(*timed_out);
                }
            }
        }
        tally
    }

    /// Every order against its result callback and its payer's history; no payment without an
    /// accepted order.
    pub(super) fn check_payouts(&self, histories: &Histories, problems: &mut Vec<String>) {
        let ledgers = self.leader_ledgers();
        let mut accepted_payments = BTreeSet::new();
        for order in &self.payouts {
            let request = &order.request;
            let shard = self
                .map
                .shard_of(&AccountRef::Business(request.business.clone()));
            let Some(ledger) = ledgers.get(&shard) else {
                continue;
            };
            let id = &request.conversation_id;
            let callbacks: Vec<ResultCallback> = ledger
                .callbacks(0, usize::MAX)
                .filter_map(|callback| match &callback.event {
                    CallbackEvent::PayoutClosed {
                        conversation_id,
                        result,
                        txn_id,
                        timed_out,
                        ..
                    } if conversation_id == id => Some(ResultCallback {
                        result: *result,
                        txn_id: *txn_id,
                        timed_out: *timed_out,
                    }),
                    _ => None,
                })
                .collect();
            let payment = payout_payment_id(id);
            let paid = committed_payments(histories.get(&shard), &payment);
            let accepted = self.commands[order.command].result == Some(ResultCode::Success);
            if accepted {
                accepted_payments.insert(payment.clone());
            }
            if paid.len() > 1 {
                problems.push(format!("payout {id} was paid {} times", paid.len()));
            }
            match (callbacks.as_slice(), paid.first()) {
                ([], None) if !accepted => {}
                ([], _) => problems.push(format!(
                    "payout {id} was accepted but its result was never queued"
                )),
                ([_, _, ..], _) => problems.push(format!(
                    "payout {id} has {} result callbacks",
                    callbacks.len()
                )),
                ([callback], Some(row)) => {
                    if callback.result != ResultCode::Success || callback.txn_id != row.receipt {
                        problems.push(format!(
                            "payout {id} was paid with receipt {}, its result says {:?} {}",
                            receipt(row.receipt),
                            callback.result,
                            receipt(callback.txn_id)
                        ));
                    }
                }
                ([callback], None) => {
                    if callback.result.is_success() || callback.txn_id.is_some() {
                        problems.push(format!(
                            "payout {id}: its result says paid ({}), but no payment committed",
                            receipt(callback.txn_id)
                        ));
                    }
                    if callback.timed_out && callback.result != ResultCode::DeadlinePassed {
                        problems.push(format!(
                            "payout {id}: result {:?} sent to QueueTimeOutURL",
                            callback.result
                        ));
                    }
                }
            }
            self.check_payment_answer(order, &callbacks, problems);
        }
        for (shard, rows) in histories {
            for row in rows
                .iter()
                .filter(|r| r.side == HistorySide::Payer && r.committed())
            {
                let pays_order = row.transfer.as_str().starts_with("pay:");
                if pays_order && !accepted_payments.contains(&row.transfer) {
                    problems.push(format!(
                        "shard {shard}: payment {} committed, but no accepted order names it",
                        row.transfer
                    ));
                }
            }
        }
    }

    /// What the payment's caller was told agrees with the order's result.
    fn check_payment_answer(
        &self,
        order: &PayoutOrder,
        callbacks: &[ResultCallback],
        problems: &mut Vec<String>,
    ) {
        let (Some(i), [callback]) = (order.payment, callbacks) else {
            return;
        };
        let Some(Answer::Receipt(answer)) = &self.transfers[i].answer else {
            return;
        };
        let success = answer.result.is_success();
        let recorded = success || answer.txn_id.is_some();
        let agrees = callback.result == answer.result
            && (!success || callback.txn_id == answer.txn_id)
            && !callback.timed_out;
        if recorded && !agrees {
            problems.push(format!(
                "payout {}: its payment was answered {:?} {}, its result says {:?} {}{}",
                order.request.conversation_id,
                answer.result,
                receipt(answer.txn_id),
                callback.result,
                receipt(callback.txn_id),
                if callback.timed_out {
                    " (as timed out in the queue)"
                } else {
                    ""
                }
            ));
        }
    }
}

fn receipt(txn_id: Option<TransactionId>) -> String {
    txn_id.map_or_else(|| "(none)".to_string(), |t| t.to_string())
}

/// The payer's committed history rows of `payment`.
fn committed_payments<'a>(
    rows: Option<&'a Vec<HistoryRow>>,
    payment: &TransferId,
) -> Vec<&'a HistoryRow> {
    rows.map(|rows| {
        rows.iter()
            .filter(|r| r.transfer == *payment && r.side == HistorySide::Payer && r.committed())
            .collect()
    })
    .unwrap_or_default()
}

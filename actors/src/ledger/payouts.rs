//! Business payouts (Daraja's B2C and B2B, and its reversals of payments it received): a
//! business orders a payment from its own account,
//! the API acknowledges at once, and the outcome is posted to the business's `ResultURL` later.
//!
//! The order is recorded first, on the business's shard (`OpenPayout`), under the business's
//! own idempotency key (Daraja's `OriginatorConversationID`): a second order under a key the
//! business already used is refused `IdempotencyConflict` (Daraja's duplicate error), never
//! paid twice. The payment itself is an ordinary `BusinessToCustomer` or `BusinessToBusiness`
//! transfer whose id names the order ([`payout_payment_id`]); it may start only while the order
//! is queued, and its final state closes the order in the same entry, queueing the result
//! callback. An order whose payment did not start before its expiry (the node that took it
//! failed before submitting it) is closed by the leader's `ExpireRequests` and announced to the
//! business's `QueueTimeOutURL` instead: nothing was paid, and the business may order again
//! under a new key.

use serde::{Deserialize, Serialize};

use crate::account::{AccountRef, Shortcode};
use crate::money::Money;
use crate::outcome::ResultCode;
use crate::roles::Role;
use crate::transfer::{PinVerdict, TransferId, TransferKind, TransferRequest};
use crate::txn_id::TransactionId;

use super::callbacks::CallbackEvent;
use super::records::OutgoingTransfer;
use super::ShardLedger;

/// Most payouts queued or being paid on one shard; more are refused `Overloaded`.
pub const PAYOUTS_OPEN_MAX: usize = 100_000;
/// Longest `OriginatorConversationID` and `ConversationID`.
pub const CONVERSATION_ID_LEN_MAX: usize = 60;
/// Longest texts an order carries (remarks, occasion, command name).
pub const PAYOUT_TEXT_LEN_MAX: usize = 100;
/// The id of the transfer that pays an order is this prefix and its conversation id.
const PAYMENT_ID_PREFIX: &str = "pay:";

/// A business's payout order, as the edge checked and named it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutRequest {
    /// Ours (Daraja's `ConversationID`, `AG_…`): names the order and its payment.
    pub conversation_id: String,
    /// The business's idempotency key (Daraja's `OriginatorConversationID`).
    pub originator_id: String,
    /// The payer.
    pub business: Shortcode,
    /// `BusinessToCustomer`, `BusinessToBusiness`, or `Reversal` (with `reverses`).
    pub kind: TransferKind,
    pub to: AccountRef,
    pub amount: Money,
    /// B2B to a paybill: the account number there.
    pub account_reference: Option<String>,
    /// A reversal: the receipt of the payment to the business being sent back.
    pub reverses: Option<TransactionId>,
    /// Daraja's `CommandID`, echoed in status answers.
    pub command: String,
    pub remarks: String,
    pub occasion: String,
    pub result_url: String,
    pub queue_timeout_url: String,
    /// Not started by this time, the order closes and goes to `QueueTimeOutURL`.
    pub expires_ms: u64,
}

impl PayoutRequest {
    /// The transfer that pays this order exactly as ordered (the only one the ledger lets
    /// start for it), to be decided by `deadline_ms`.
    pub fn payment(&self, deadline_ms: u64) -> TransferRequest {
        TransferRequest {
            id: payout_payment_id(&self.conversation_id),
            kind: self.kind,
            from: AccountRef::Business(self.business.clone()),
            to: self.to.clone(),
            amount: self.amount,
            account_reference: self.account_reference.clone(),
            pin: PinVerdict::NotRequired,
            deadline_ms,
            initiator: Role::Business,
            reverses: self.reverses,
        }
    }
}

/// Where an order stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayoutState {
    /// Recorded; its payment has not started.
    Queued,
    /// Its payment is under way between shards.
    Paying,
    /// Final: paid (`Success`), refused (funds, limits, payee), or timed out in the queue
    /// (`DeadlinePassed`, nothing paid).
    Closed {
        result: ResultCode,
        txn_id: Option<TransactionId>,
        closed_ms: u64,
    },
}

/// How an order ends.
enum PayoutEnd {
    /// Its payment became final (committed, or failed: then with no receipt).
    Payment {
        result: ResultCode,
        txn_id: Option<TransactionId>,
        receiver_name: Option<String>,
    },
    /// Its payment never started before the order's expiry: it goes to `QueueTimeOutURL`.
    QueueTimeout,
}

/// An order and where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    pub request: PayoutRequest,
    pub opened_ms: u64,
    pub state: PayoutState,
}

impl Payout {
    /// The transfer that pays this order.
    pub fn payment(&self) -> TransferId {
        payout_payment_id(&self.request.conversation_id)
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, PayoutState::Closed { .. })
    }
}

/// Whether `text` can be a conversation id (ours or a business's).
pub fn valid_conversation_id(text: &str) -> bool {
    (1..=CONVERSATION_ID_LEN_MAX).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The id of the transfer that pays order `conversation_id` (a valid conversation id).
pub fn payout_payment_id(conversation_id: &str) -> TransferId {
    TransferId::parse(&format!("{PAYMENT_ID_PREFIX}{conversation_id}"))
        .expect("a conversation id makes a valid transfer id")
}

/// The order a transfer pays, if it pays one.
fn paid_payout(id: &TransferId) -> Option<&str> {
    id.as_str().strip_prefix(PAYMENT_ID_PREFIX)
}

fn printable(text: &str, max: usize) -> bool {
    text.chars().count() <= max && !text.chars().any(char::is_control)
}

impl ShardLedger {
    /// Records an order on its business's shard. The same order again (the edge retrying)
    /// changes nothing; another order under a key the business used is a duplicate.
    pub(super) fn open_payout(&mut self, request: &PayoutRequest, now: u64) -> ResultCode {
        if let Some(existing) = self.state.payouts.get(&request.conversation_id) {
            return if existing.request == *request {
                ResultCode::Success
            } else {
                ResultCode::IdempotencyConflict
            };
        }
        let origin = (request.business.clone(), request.originator_id.clone());
        if self.state.payouts_by_origin.contains_key(&origin) {
            return ResultCode::IdempotencyConflict;
        }
        if let Err(code) = self.check_payout(request, now) {
            return code;
        }
        let conversation_id = request.conversation_id.clone();
        self.state
            .payouts_by_origin
            .insert(origin, conversation_id.clone());
        self.state
            .payouts_expiring
            .insert((request.expires_ms, conversation_id.clone()));
        self.state.payouts_open += 1;
        self.state.payouts.insert(
            conversation_id,
            Payout {
                request: request.clone(),
                opened_ms: now,
                state: PayoutState::Queued,
            },
        );
        ResultCode::Success
    }

    fn check_payout(&self, request: &PayoutRequest, now: u64) -> Result<(), ResultCode> {
        let well_formed = valid_conversation_id(&request.conversation_id)
            && valid_conversation_id(&request.originator_id)
            && matches!(
                (request.kind, request.reverses.is_some()),
                (TransferKind::BusinessToCustomer, false)
                    | (TransferKind::BusinessToBusiness, false)
                    | (TransferKind::Reversal, true)
            )
            && printable(&request.command, PAYOUT_TEXT_LEN_MAX)
            && printable(&request.remarks, PAYOUT_TEXT_LEN_MAX)
            && printable(&request.occasion, PAYOUT_TEXT_LEN_MAX)
            && printable(&request.result_url, super::prompts::CALLBACK_URL_LEN_MAX)
            && printable(
                &request.queue_timeout_url,
                super::prompts::CALLBACK_URL_LEN_MAX,
            );
        if !well_formed {
            return Err(ResultCode::NotPermitted);
        }
        if !request.amount.is_positive() {
            return Err(ResultCode::InvalidAmount);
        }
        let payer = AccountRef::Business(request.business.clone());
        if self.config.shard_map.shard_of(&payer) != self.config.shard
            || !self.state.accounts.contains_key(&payer)
        {
            return Err(ResultCode::UnknownAccount);
        }
        if request.expires_ms <= now {
            return Err(ResultCode::DeadlinePassed);
        }
        // Two callbacks at most per order: room for its result now, so it is never dropped.
        if self.state.payouts_open >= PAYOUTS_OPEN_MAX || !self.callback_room(&request.business) {
            return Err(ResultCode::Overloaded);
        }
        Ok(())
    }

    /// A transfer that pays an order may start only while the order is queued, and only as
    /// ordered (payer, payee, amount, kind, reference).
    pub(super) fn check_payout_payment(&self, request: &TransferRequest) -> Result<(), ResultCode> {
        let Some(conversation_id) = paid_payout(&request.id) else {
            return Ok(());
        };
        let Some(payout) = self.state.payouts.get(conversation_id) else {
            return Err(ResultCode::NotPermitted);
        };
        let ordered = &payout.request;
        let as_ordered = payout.state == PayoutState::Queued
            && request.from == AccountRef::Business(ordered.business.clone())
            && request.to == ordered.to
            && request.kind == ordered.kind
            && request.amount == ordered.amount
            && request.account_reference == ordered.account_reference
            && request.reverses == ordered.reverses;
        if as_ordered {
            Ok(())
        } else {
            Err(ResultCode::NotPermitted)
        }
    }

    /// An order's payment was prepared (it crosses shards): the order no longer times out.
    pub(super) fn payout_payment_started(&mut self, id: &TransferId) {
        let Some(conversation_id) = paid_payout(id) else {
            return;
        };
        if let Some(payout) = self.state.payouts.get_mut(conversation_id) {
            if payout.state == PayoutState::Queued {
                payout.state = PayoutState::Paying;
                let key = (payout.request.expires_ms, conversation_id.to_string());
                self.state.payouts_expiring.remove(&key);
            }
        }
    }

    /// An order's payment is final: it closes the order and queues its result.
    pub(super) fn payout_payment_finished(&mut self, record: &OutgoingTransfer, now: u64) {
        let Some(conversation_id) = paid_payout(&record.request.id) else {
            return;
        };
        let open = self
            .state
            .payouts
            .get(conversation_id)
            .is_some_and(|p| !p.is_closed());
        if open {
            let result = record.result().unwrap_or(ResultCode::Success);
            let txn_id = record.txn_id.filter(|_| result.is_success());
            let receiver_name = record.payee_name.clone().filter(|_| result.is_success());
            let conversation_id = conversation_id.to_string();
            let end = PayoutEnd::Payment {
                result,
                txn_id,
                receiver_name,
            };
            self.close_payout(&conversation_id, end, now);
        }
    }

    /// Closes every queued order whose expiry is at or before `up_to_ms` (the leader's clock):
    /// its payment never started, so nothing was paid.
    pub(super) fn expire_payouts(&mut self, up_to_ms: u64, now: u64) {
        while let Some((expires_ms, _)) = self.state.payouts_expiring.first() {
            if *expires_ms > up_to_ms {
                break;
            }
            let (_, conversation_id) = self.state.payouts_expiring.pop_first().expect("checked");
            let queued = self
                .state
                .payouts
                .get(&conversation_id)
                .is_some_and(|p| p.state == PayoutState::Queued);
            if queued {
                self.close_payout(&conversation_id, PayoutEnd::QueueTimeout, now);
            }
        }
    }

    fn close_payout(&mut self, conversation_id: &str, end: PayoutEnd, now: u64) {
        let (result, txn_id, receiver_name, timed_out) = match end {
            PayoutEnd::Payment {
                result,
                txn_id,
                receiver_name,
            } => (result, txn_id, receiver_name, false),
            PayoutEnd::QueueTimeout => (ResultCode::DeadlinePassed, None, None, true),
        };
        let payout = self
            .state
            .payouts
            .get_mut(conversation_id)
            .expect("closing an order this shard holds");
        debug_assert!(!payout.is_closed(), "an order closes once");
        payout.state = PayoutState::Closed {
            result,
            txn_id,
            closed_ms: now,
        };
        let request = payout.request.clone();
        self.state.payouts_open -= 1;
        self.state
            .payouts_expiring
            .remove(&(request.expires_ms, conversation_id.to_string()));
        self.state
            .payouts_closed
            .insert((now, conversation_id.to_string()));
        let payer = AccountRef::Business(request.business.clone());
        let wallets = self.wallets(&payer);
        let url = if timed_out {
            request.queue_timeout_url.clone()
        } else {
            request.result_url.clone()
        };
        let event = CallbackEvent::PayoutClosed {
            conversation_id: request.conversation_id,
            originator_id: request.originator_id,
            kind: request.kind,
            to: request.to,
            amount: request.amount,
            reverses: request.reverses,
            result,
            txn_id,
            receiver_name,
            wallets,
            closed_ms: now,
            timed_out,
        };
        self.push_callback(request.business, url, event, now);
    }

    /// Forgets closed orders closed at or before `up_to_ms` (with the finished transfers);
    /// their keys may then be used again.
    pub(super) fn retire_payouts(&mut self, up_to_ms: u64) {
        while let Some((closed_ms, _)) = self.state.payouts_closed.first() {
            if *closed_ms > up_to_ms {
                break;
            }
            let (_, conversation_id) = self.state.payouts_closed.pop_first().expect("checked");
            if let Some(payout) = self.state.payouts.remove(&conversation_id) {
                let origin = (payout.request.business, payout.request.originator_id);
                self.state.payouts_by_origin.remove(&origin);
            }
        }
    }

    /// The earliest closing time of a closed order still held.
    pub(super) fn oldest_closed_payout_ms(&self) -> Option<u64> {
        self.state.payouts_closed.first().map(|(at, _)| *at)
    }

    /// An order of this shard by our conversation id.
    pub fn payout(&self, conversation_id: &str) -> Option<&Payout> {
        self.state.payouts.get(conversation_id)
    }

    /// An order of this shard by its business's key.
    pub fn payout_by_origin(&self, business: &Shortcode, originator_id: &str) -> Option<&Payout> {
        let key = (business.clone(), originator_id.to_string());
        let conversation_id = self.state.payouts_by_origin.get(&key)?;
        self.state.payouts.get(conversation_id)
    }

    /// Orders this shard still holds (open, or closed and not yet retired).
    pub fn payouts_held(&self) -> usize {
        self.state.payouts.len()
    }

    /// When the next queued order times out (the leader proposes `ExpireRequests` then).
    pub fn next_payout_expiry_ms(&self) -> Option<u64> {
        self.state.payouts_expiring.first().map(|(at, _)| *at)
    }
}

//! The callback outbox: what a shard owes businesses' callback URLs (a prompt's outcome, …),
//! written in the entry that decided it and kept, replicated, until the node that leads the
//! shard delivered it and proposed `CallbacksDelivered`. Delivery is at least once; each record
//! carries a stable sequence number the receiver can deduplicate by.
//!
//! Bounded per shard and per business: a business whose receiver is down fills its own share,
//! and then its new prompts are refused (`Overloaded`) — back-pressure, never a lost callback,
//! and never another business's share.

use serde::{Deserialize, Serialize};

use crate::account::Shortcode;
use crate::money::Money;
use crate::msisdn::Msisdn;
use crate::outcome::ResultCode;
use crate::txn_id::TransactionId;

use super::command::Applied;
use super::ShardLedger;

/// Most undelivered callbacks on one shard.
pub const CALLBACKS_MAX: usize = 200_000;
/// Most undelivered callbacks of one business on one shard.
pub const CALLBACKS_PER_BUSINESS_MAX: u32 = 20_000;

/// What a callback tells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallbackEvent {
    /// A payment prompt closed: paid (`Success`, with the receipt), declined, unanswered, or
    /// refused.
    PromptClosed {
        checkout_id: String,
        merchant_request_id: String,
        result: ResultCode,
        txn_id: Option<TransactionId>,
        amount: Money,
        phone: Msisdn,
        closed_ms: u64,
    },
    /// A customer's bill payment or purchase was credited to the business (C2B confirmation).
    C2bConfirmation {
        receipt: TransactionId,
        /// `PayBill` or `BuyGoods`.
        kind: crate::transfer::TransferKind,
        amount: Money,
        business: Shortcode,
        bill_ref: String,
        msisdn: Msisdn,
        first_name: String,
        /// The business's balance after the credit.
        org_balance: Money,
        completed_ms: u64,
        masked_msisdn: bool,
    },
    /// A business's payout order closed: paid, refused, or timed out in the queue (then it
    /// goes to the order's `QueueTimeOutURL`).
    PayoutClosed {
        conversation_id: String,
        originator_id: String,
        kind: crate::transfer::TransferKind,
        to: crate::account::AccountRef,
        amount: Money,
        /// A reversal: the receipt sent back.
        reverses: Option<TransactionId>,
        result: ResultCode,
        txn_id: Option<TransactionId>,
        receiver_name: Option<String>,
        /// The business's accounts after the payment.
        wallets: super::business::Wallets,
        closed_ms: u64,
        timed_out: bool,
    },
    /// A body the edge rendered (a status or balance query's result), posted as it is.
    Rendered { body: String },
}

/// Longest body the edge may queue as a rendered callback.
pub const RENDERED_CALLBACK_LEN_MAX: usize = 16 * 1024;

/// One undelivered callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// Its number on this shard: stable across retries and leaders.
    pub seq: u64,
    pub business: Shortcode,
    pub url: String,
    pub queued_ms: u64,
    pub event: CallbackEvent,
}

impl ShardLedger {
    /// Whether `business` may have one more callback queued here.
    pub(super) fn callback_room(&self, business: &Shortcode) -> bool {
        let queued = self
            .state
            .callbacks_by_business
            .get(business)
            .copied()
            .unwrap_or(0);
        self.state.callbacks.len() < CALLBACKS_MAX && queued < CALLBACKS_PER_BUSINESS_MAX
    }

    /// Queues a callback. Callers made room first ([`ShardLedger::callback_room`]) when the
    /// event was requested; an event that must be told (a prompt closing) is queued even past
    /// the bound, which the room check before each new prompt keeps small.
    pub(super) fn push_callback(
        &mut self,
        business: Shortcode,
        url: String,
        event: CallbackEvent,
        now: u64,
    ) {
        let seq = self.state.callbacks_next_seq;
        self.state.callbacks_next_seq += 1;
        *self
            .state
            .callbacks_by_business
            .entry(business.clone())
            .or_default() += 1;
        self.state.callbacks.insert(
            seq,
            Callback {
                seq,
                business,
                url,
                queued_ms: now,
                event,
            },
        );
    }

    /// Queues a result the edge computed for `business`, if the business has room.
    pub(super) fn queue_callback(
        &mut self,
        business: &Shortcode,
        url: &str,
        event: &CallbackEvent,
        now: u64,
    ) -> ResultCode {
        let fits = match event {
            CallbackEvent::Rendered { body } => body.len() <= RENDERED_CALLBACK_LEN_MAX,
            _ => false,
        };
        if !fits || url.len() > super::prompts::CALLBACK_URL_LEN_MAX {
            return ResultCode::NotPermitted;
        }
        if !self.callback_room(business) {
            return ResultCode::Overloaded;
        }
        self.push_callback(business.clone(), url.to_string(), event.clone(), now);
        ResultCode::Success
    }

    /// The node leading the shard delivered these callbacks (unknown numbers: already done).
    pub(super) fn callbacks_delivered(&mut self, seqs: &[u64]) -> Applied {
        for seq in seqs {
            let Some(callback) = self.state.callbacks.remove(seq) else {
                continue;
            };
            let by_business = &mut self.state.callbacks_by_business;
            if let Some(count) = by_business.get_mut(&callback.business) {
                *count -= 1;
                if *count == 0 {
                    by_business.remove(&callback.business);
                }
            }
        }
        Applied::Admin(ResultCode::Success)
    }

    /// Up to `limit` undelivered callbacks numbered `from_seq` or later, oldest first.
    pub fn callbacks(&self, from_seq: u64, limit: usize) -> impl Iterator<Item = &Callback> {
        self.state
            .callbacks
            .range(from_seq..)
            .map(|(_, c)| c)
            .take(limit)
    }

    /// Undelivered callbacks on this shard.
    pub fn callbacks_queued(&self) -> usize {
        self.state.callbacks.len()
    }
}

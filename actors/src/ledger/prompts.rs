//! Payment prompts (M-Pesa Express, "STK push"): a business asks a customer to pay it, and the
//! prompt waits on the customer's shard until the customer accepts with their PIN, declines, or
//! lets it expire. Accepting is an ordinary PayBill or BuyGoods transfer whose id names the
//! prompt ([`payment_id`]); the transfer's final state closes the prompt in the same entry.
//! Expiry is proposed by the leader with its clock (`ExpireRequests`); apply never reads one.
//! However a prompt ends, its outcome goes into the shard's callback outbox for the business
//! (`callbacks.rs`) in the entry that closed it, so no closed prompt goes unannounced.
//!
//! One prompt at a time waits per customer (a second is refused `CustomerBusy`, as M-Pesa
//! answers "a transaction is already in process for the current subscriber"); closed prompts
//! stay readable (for the business's status queries) until they retire with the finished
//! transfers of the same time.

use serde::{Deserialize, Serialize};

use crate::account::{AccountRef, Shortcode};
use crate::money::Money;
use crate::msisdn::Msisdn;
use crate::outcome::ResultCode;
use crate::roles::AccountKind;
use crate::transfer::{TransferId, TransferKind, TransferRequest};
use crate::txn_id::TransactionId;

use super::callbacks::CallbackEvent;
use super::records::AccountStatus;
use super::ShardLedger;

/// Most prompts waiting for an answer on one shard; more are refused `Overloaded`.
pub const PROMPTS_WAITING_MAX: usize = 100_000;
/// Longest checkout id (letters, digits and `_`).
pub const CHECKOUT_ID_LEN_MAX: usize = 40;
/// Longest texts a prompt carries.
pub const PROMPT_TEXT_LEN_MAX: usize = 100;
pub const CALLBACK_URL_LEN_MAX: usize = 512;
/// The id of the transfer that pays a prompt is this prefix and its checkout id.
const PAYMENT_ID_PREFIX: &str = "stk:";

/// A business's request for a customer's payment, as the edge checked and named it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptRequest {
    /// The prompt's id (Daraja's `CheckoutRequestID`).
    pub checkout_id: String,
    pub merchant_request_id: String,
    pub customer: Msisdn,
    pub business: Shortcode,
    /// Shown in the prompt.
    pub business_name: String,
    /// `PayBill` or `BuyGoods`.
    pub kind: TransferKind,
    pub amount: Money,
    pub account_reference: String,
    /// Where the outcome is posted.
    pub callback_url: String,
    /// Unanswered at this time, the prompt closes as `NoAnswer`.
    pub expires_ms: u64,
}

/// Where a prompt stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromptState {
    /// Waiting for the customer's answer.
    Waiting,
    /// Accepted: its payment is under way between shards.
    Paying,
    /// Final: paid (`Success` with the receipt), declined, unanswered, or refused (wrong PIN,
    /// funds, limits).
    Closed {
        result: ResultCode,
        txn_id: Option<TransactionId>,
        closed_ms: u64,
    },
}

/// A prompt and where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub request: PromptRequest,
    pub opened_ms: u64,
    pub state: PromptState,
}

impl Prompt {
    /// The transfer a customer's acceptance orders.
    pub fn payment(&self) -> TransferId {
        payment_id(&self.request.checkout_id)
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, PromptState::Closed { .. })
    }
}

/// Whether `text` can be a checkout id.
pub fn valid_checkout_id(text: &str) -> bool {
    (1..=CHECKOUT_ID_LEN_MAX).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The id of the transfer that pays prompt `checkout_id` (a valid checkout id).
pub fn payment_id(checkout_id: &str) -> TransferId {
    TransferId::parse(&format!("{PAYMENT_ID_PREFIX}{checkout_id}"))
        .expect("a checkout id makes a valid transfer id")
}

/// Whether a transfer pays a prompt.
pub fn pays_prompt(id: &TransferId) -> bool {
    paid_prompt(id).is_some()
}

/// The prompt a transfer pays, if it pays one.
fn paid_prompt(id: &TransferId) -> Option<&str> {
    id.as_str().strip_prefix(PAYMENT_ID_PREFIX)
}

fn printable(text: &str, max: usize) -> bool {
    text.chars().count() <= max && !text.chars().any(char::is_control)
}

impl ShardLedger {
    /// Opens a prompt on its customer's shard. Opening the same prompt again changes nothing.
    pub(super) fn open_prompt(&mut self, request: &PromptRequest, now: u64) -> ResultCode {
        if let Some(existing) = self.state.prompts.get(&request.checkout_id) {
            return if existing.request == *request {
                ResultCode::Success
            } else {
                ResultCode::IdempotencyConflict
            };
        }
        if let Err(code) = self.check_prompt(request, now) {
            return code;
        }
        let checkout_id = request.checkout_id.clone();
        self.state
            .prompts_waiting
            .insert(request.customer, checkout_id.clone());
        self.state
            .prompts_expiring
            .insert((request.expires_ms, checkout_id.clone()));
        self.state.prompts.insert(
            checkout_id,
            Prompt {
                request: request.clone(),
                opened_ms: now,
                state: PromptState::Waiting,
            },
        );
        ResultCode::Success
    }

    fn check_prompt(&self, request: &PromptRequest, now: u64) -> Result<(), ResultCode> {
        let well_formed = valid_checkout_id(&request.checkout_id)
            && matches!(request.kind, TransferKind::PayBill | TransferKind::BuyGoods)
            && printable(&request.merchant_request_id, PROMPT_TEXT_LEN_MAX)
            && printable(&request.business_name, PROMPT_TEXT_LEN_MAX)
            && printable(&request.callback_url, CALLBACK_URL_LEN_MAX);
        if !well_formed {
            return Err(ResultCode::NotPermitted);
        }
        if !request.amount.is_positive() {
            return Err(ResultCode::InvalidAmount);
        }
        if request.account_reference.chars().count() > crate::transfer::ACCOUNT_REFERENCE_LEN_MAX
            || request.account_reference.chars().any(char::is_control)
        {
            return Err(ResultCode::InvalidAccountReference);
        }
        let customer = AccountRef::Customer(request.customer);
        if self.config.shard_map.shard_of(&customer) != self.config.shard {
            return Err(ResultCode::UnknownAccount);
        }
        let account = self
            .state
            .accounts
            .get(&customer)
            .filter(|a| a.kind == AccountKind::Customer)
            .ok_or(ResultCode::UnknownAccount)?;
        if account.status != AccountStatus::Active {
            return Err(ResultCode::AccountInactive);
        }
        if request.expires_ms <= now {
            return Err(ResultCode::DeadlinePassed);
        }
        if self.state.prompts_waiting.contains_key(&request.customer) {
            return Err(ResultCode::CustomerBusy);
        }
        if self.state.prompts_waiting.len() >= PROMPTS_WAITING_MAX
            || !self.callback_room(&request.business)
        {
            return Err(ResultCode::Overloaded);
        }
        Ok(())
    }

    /// The customer declines a waiting prompt. Declining it again changes nothing.
    pub(super) fn decline_prompt(
        &mut self,
        checkout_id: &str,
        by: &Msisdn,
        now: u64,
    ) -> ResultCode {
        let Some(prompt) = self.state.prompts.get(checkout_id) else {
            return ResultCode::UnknownAccount;
        };
        if prompt.request.customer != *by {
            return ResultCode::NotPermitted;
        }
        match &prompt.state {
            PromptState::Waiting => {
                self.close_prompt(checkout_id, ResultCode::Declined, None, now);
                ResultCode::Success
            }
            PromptState::Closed {
                result: ResultCode::Declined,
                ..
            } => ResultCode::Success,
            _ => ResultCode::NotPermitted,
        }
    }

    /// Closes every prompt still waiting whose expiry is at or before `up_to_ms` (the
    /// leader's clock) as `NoAnswer`. A prompt being paid is left to its transfer.
    pub(super) fn expire_prompts(&mut self, up_to_ms: u64, now: u64) {
        while let Some((expires_ms, _)) = self.state.prompts_expiring.first() {
            if *expires_ms > up_to_ms {
                break;
            }
            let (_, checkout_id) = self.state.prompts_expiring.pop_first().expect("checked");
            let waiting = self
                .state
                .prompts
                .get(&checkout_id)
                .is_some_and(|p| p.state == PromptState::Waiting);
            if waiting {
                self.close_prompt(&checkout_id, ResultCode::NoAnswer, None, now);
            }
        }
    }

    /// A transfer that pays a prompt may start only while the prompt waits, and only as the
    /// prompt asked (payer, payee, amount, kind, reference). A retry of a recorded payment is
    /// answered by its record, not here.
    pub(super) fn check_prompt_payment(&self, request: &TransferRequest) -> Result<(), ResultCode> {
        let Some(checkout_id) = paid_prompt(&request.id) else {
            return Ok(());
        };
        let Some(prompt) = self.state.prompts.get(checkout_id) else {
            return Err(ResultCode::NotPermitted);
        };
        let asked = &prompt.request;
        let as_asked = prompt.state == PromptState::Waiting
            && request.from == AccountRef::Customer(asked.customer)
            && request.to == AccountRef::Business(asked.business.clone())
            && request.kind == asked.kind
            && request.amount == asked.amount
            && request.account_reference.as_deref() == Some(asked.account_reference.as_str());
        if as_asked {
            Ok(())
        } else {
            Err(ResultCode::NotPermitted)
        }
    }

    /// A prompt's payment was prepared (it crosses shards): the prompt no longer expires.
    pub(super) fn prompt_payment_started(&mut self, id: &TransferId) {
        let Some(checkout_id) = paid_prompt(id) else {
            return;
        };
        if let Some(prompt) = self.state.prompts.get_mut(checkout_id) {
            if prompt.state == PromptState::Waiting {
                prompt.state = PromptState::Paying;
                let key = (prompt.request.expires_ms, checkout_id.to_string());
                self.state.prompts_expiring.remove(&key);
            }
        }
    }

    /// A prompt's payment is final (recorded or refused unrecorded): it closes the prompt.
    pub(super) fn prompt_payment_finished(
        &mut self,
        id: &TransferId,
        result: ResultCode,
        txn_id: Option<TransactionId>,
        now: u64,
    ) {
        let Some(checkout_id) = paid_prompt(id) else {
            return;
        };
        let open = self
            .state
            .prompts
            .get(checkout_id)
            .is_some_and(|p| !p.is_closed());
        if open {
            let txn_id = txn_id.filter(|_| result.is_success());
            self.close_prompt(checkout_id, result, txn_id, now);
        }
    }

    fn close_prompt(
        &mut self,
        checkout_id: &str,
        result: ResultCode,
        txn_id: Option<TransactionId>,
        now: u64,
    ) {
        let prompt = self
            .state
            .prompts
            .get_mut(checkout_id)
            .expect("closing a prompt this shard holds");
        debug_assert!(!prompt.is_closed(), "a prompt closes once");
        prompt.state = PromptState::Closed {
            result,
            txn_id,
            closed_ms: now,
        };
        let request = prompt.request.clone();
        self.state
            .prompts_expiring
            .remove(&(request.expires_ms, checkout_id.to_string()));
        if self
            .state
            .prompts_waiting
            .get(&request.customer)
            .map(String::as_str)
            == Some(checkout_id)
        {
            self.state.prompts_waiting.remove(&request.customer);
        }
        self.state
            .prompts_closed
            .insert((now, checkout_id.to_string()));
        let event = CallbackEvent::PromptClosed {
            checkout_id: request.checkout_id.clone(),
            merchant_request_id: request.merchant_request_id.clone(),
            result,
            txn_id,
            amount: request.amount,
            phone: request.customer,
            closed_ms: now,
        };
        self.push_callback(request.business, request.callback_url, event, now);
    }

    /// Forgets closed prompts closed at or before `up_to_ms` (with the finished transfers).
    pub(super) fn retire_prompts(&mut self, up_to_ms: u64) {
        while let Some((closed_ms, _)) = self.state.prompts_closed.first() {
            if *closed_ms > up_to_ms {
                break;
            }
            let (_, checkout_id) = self.state.prompts_closed.pop_first().expect("checked");
            self.state.prompts.remove(&checkout_id);
        }
    }

    /// The earliest closing time of a closed prompt still held.
    pub(super) fn oldest_closed_prompt_ms(&self) -> Option<u64> {
        self.state.prompts_closed.first().map(|(at, _)| *at)
    }

    /// A prompt of this shard by its checkout id.
    pub fn prompt(&self, checkout_id: &str) -> Option<&Prompt> {
        self.state.prompts.get(checkout_id)
    }

    /// The prompt waiting for this customer's answer (or being paid), if any.
    pub fn prompt_waiting_for(&self, customer: &Msisdn) -> Option<&Prompt> {
        let checkout_id = self.state.prompts_waiting.get(customer)?;
        self.state.prompts.get(checkout_id)
    }

    /// When the next waiting prompt expires (the leader proposes `ExpireRequests` then).
    pub fn next_prompt_expiry_ms(&self) -> Option<u64> {
        self.state.prompts_expiring.first().map(|(at, _)| *at)
    }
}

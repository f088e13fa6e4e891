//! The per-shard double-entry ledger: a deterministic state machine (DESIGN §3, §4).
//!
//! | file | holds |
//! |---|---|
//! | `command.rs` | log entries, offers, answers, decisions, receipts, and [`Applied`] |
//! | `records.rs` | accounts, payer- and payee-side transfer records, the SMS outbox record |
//! | `books.rs` | the four posting primitives (hold, post pending, void, post) and the shard totals |
//! | `accounts.rs` | opening accounts, PIN and status changes |
//! | `checks.rs` | the refusal rules: roles, limits, tariffs, PIN, funds — pure functions |
//! | `outgoing.rs` | payer side: same-shard transfer, Prepare, Decide, decision delivered |
//! | `incoming.rs` | payee side: Accept/Reject, Settle |
//! | `notify.rs` | confirmation SMS records written on commit |
//! | `history.rs` | history rows emitted as transfers finish, and retirement of finished records |
//! | `reversal_requests.rs` | payers' requests to reverse a transfer, open until care decides |
//! | `prompts.rs` | payment prompts (M-Pesa Express): a business's request a customer accepts, declines or lets expire |
//! | `api_keys.rs` | which business a business API consumer key belongs to |
//! | `payouts.rs` | business payouts (B2C, B2B): an order recorded under the business's key, paid, its result queued |
//! | `business.rs` | a business's accounts as Daraja reports them, and the initiators allowed to order payouts |
//! | `c2b.rs` | a business's C2B URLs and the confirmation queued for each payment credited to it |
//! | `callbacks.rs` | the callback outbox: outcomes owed to businesses' URLs until delivered |
//! | `audit.rs` | the invariants asserted on every apply and the full audit |
//! | `audit_log.rs` | the audit log: append-only records of admin, care and business actions |
//!
//! `apply` is handed each entry with the leader's timestamp and never reads a clock; the shard's
//! clock is the maximum timestamp applied so far, so time never runs backwards across leaders.
//! Every command is idempotent by its transfer id.

mod accounts;
mod api_keys;
mod audit;
mod audit_log;
mod books;
mod business;
mod c2b;
mod callbacks;
mod checks;
mod command;
mod history;
mod incoming;
mod notify;
mod outgoing;
mod payouts;
mod prompts;
mod records;
mod reversal_requests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::account::{AccountRef, ShardId, ShardMap, SystemAccount};
use crate::tariff::Tariffs;
use crate::transfer::TransferId;
use crate::txn_id::TransactionId;

pub use api_keys::{API_KEYS_MAX, API_KEY_LEN_MAX};
pub use audit::{InvariantViolation, ShardAudit};
pub use audit_log::{AuditLogEntry, AuditLogRecord, AUDIT_FIELD_LEN_MAX};
pub use business::{valid_initiator_name, Initiator, Wallet, Wallets, INITIATORS_MAX};
pub use c2b::C2bUrls;
pub use callbacks::{
    Callback, CallbackEvent, CALLBACKS_MAX, CALLBACKS_PER_BUSINESS_MAX, RENDERED_CALLBACK_LEN_MAX,
};
pub use command::{
    ApiCredentials, Applied, Command, CreditAnswer, CreditOffer, Decision, Entry, OpenAccount,
    Receipt,
};
pub use history::{HistoryRow, HistorySide};
pub use payouts::{
    payout_payment_id, valid_conversation_id, Payout, PayoutRequest, PayoutState,
    CONVERSATION_ID_LEN_MAX, PAYOUTS_OPEN_MAX,
};
pub use prompts::{
    payment_id, pays_prompt, valid_checkout_id, Prompt, PromptRequest, PromptState,
    CHECKOUT_ID_LEN_MAX, PROMPTS_WAITING_MAX,
};
pub use records::{
    Account, AccountExtras, AccountStatus, Balances, DailyUsage, IncomingState, IncomingTransfer,
    OutgoingState, OutgoingTransfer, ReversalMark, SmsRecord,
};
pub use reversal_requests::{ReversalRequest, REVERSAL_REQUESTS_MAX};

/// Faults a test can plant in the protocol to prove the checkers catch them. Compiled in only
/// with the `planted-faults` feature; the node never sets one.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PlantedFault {
    /// The payee may spend a pending (unsettled) credit.
    PendingCreditSpendable,
    /// The payer commits an accepted transfer even after its deadline.
    CommitAfterDeadline,
}

/// Static configuration of one shard's ledger; identical on every replica.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    pub shard: ShardId,
    pub shard_map: ShardMap,
    pub tariffs: Arc<Tariffs>,
    /// Most transfers in flight (prepared here or accepted here) before new ones are refused.
    pub in_flight_max: usize,
    /// Most undelivered SMS records before new transfers are refused (back-pressure, never loss).
    pub sms_outbox_max: usize,
    /// See [`PlantedFault`]; always `None` outside tests.
    pub planted_fault: Option<PlantedFault>,
}

impl LedgerConfig {
    /// Defaults for `shard` of `shard_map` with the shipped Kenyan tariffs.
    pub fn new(shard: ShardId, shard_map: ShardMap, tariffs: Arc<Tariffs>) -> LedgerConfig {
        LedgerConfig {
            shard,
            shard_map,
            tariffs,
            in_flight_max: 100_000,
            sms_outbox_max: 1_000_000,
            planted_fault: None,
        }
    }

    fn planted(&self, fault: PlantedFault) -> bool {
        cfg!(feature = "planted-faults") && self.planted_fault == Some(fault)
    }
}

/// The replicated data of one shard: what a snapshot holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerState {
    accounts: BTreeMap<AccountRef, Account>,
    outgoing: BTreeMap<TransferId, OutgoingTransfer>,
    incoming: BTreeMap<TransferId, IncomingTransfer>,
    /// Receipt → transfer, for reversals and status queries.
    by_txn_id: BTreeMap<TransactionId, TransferId>,
    /// Payer side in flight.
    prepared: BTreeSet<TransferId>,
    /// Payee side in flight.
    accepted: BTreeSet<TransferId>,
    /// Decisions to deliver to payee shards until acknowledged.
    outbox: BTreeMap<TransferId, (ShardId, Decision)>,
    sms: VecDeque<SmsRecord>,
    sms_next_seq: u64,
    /// Greatest entry timestamp applied: the shard's monotonic clock.
    clock_ms: u64,
    txn_day: u32,
    txn_seq: u64,
    entries_applied: u64,
    /// Σ of every account's counters: debits must equal credits, pending and posted.
    totals: Balances,
    /// The number the next history row gets (see `history.rs`).
    history_next_seq: u64,
    /// Finished records by retirement time: a `Retire` entry drops those at or before its time.
    retiring: BTreeSet<(u64, history::RecordSide, TransferId)>,
    /// The latest `Retire` time applied (0: nothing retired yet).
    retired_up_to_ms: u64,
    /// Payers' open requests to reverse a committed transfer, by its receipt.
    reversal_requests: BTreeMap<TransactionId, reversal_requests::ReversalRequest>,
    /// Payment prompts by checkout id: waiting, being paid, or closed and not yet retired.
    prompts: BTreeMap<String, prompts::Prompt>,
    /// The prompt waiting for (or being paid by) each customer: one at a time.
    prompts_waiting: BTreeMap<crate::msisdn::Msisdn, String>,
    /// Waiting prompts by expiry time.
    prompts_expiring: BTreeSet<(u64, String)>,
    /// Closed prompts by closing time, retired with the finished transfers.
    prompts_closed: BTreeSet<(u64, String)>,
    /// Business payout orders by conversation id: queued, being paid, or closed and not yet
    /// retired.
    payouts: BTreeMap<String, payouts::Payout>,
    /// Each business's keys (`OriginatorConversationID`) → the order made under it.
    payouts_by_origin: BTreeMap<(crate::account::Shortcode, String), String>,
    /// Queued orders by expiry time.
    payouts_expiring: BTreeSet<(u64, String)>,
    /// Closed orders by closing time, retired with the finished transfers.
    payouts_closed: BTreeSet<(u64, String)>,
    /// Orders not yet closed.
    payouts_open: usize,
    /// Callbacks owed to businesses, by sequence number, until delivered.
    callbacks: BTreeMap<u64, callbacks::Callback>,
    callbacks_next_seq: u64,
    /// Undelivered callbacks per business (its share of the bound).
    callbacks_by_business: BTreeMap<crate::account::Shortcode, u32>,
    /// Business API consumer keys hashed to this shard → their business.
    api_keys: BTreeMap<String, crate::account::Shortcode>,
    /// The number the next audit record gets (see `audit_log.rs`).
    audit_log_next_seq: u64,
    /// New transfers are refused while the clock is before this (a backup's pause).
    intake_paused_until_ms: u64,
}

/// One shard's ledger: configuration plus replicated state.
#[derive(Clone, Debug)]
pub struct ShardLedger {
    config: LedgerConfig,
    state: LedgerState,
    /// Accounts touched by the entry being applied (scratch for the invariant check).
    touched: Vec<AccountRef>,
    /// A protocol message that cannot be right (a commit for a transfer never accepted here),
    /// found while applying the current entry.
    protocol_error: Option<String>,
    /// History rows emitted since the host last took them.
    history: Vec<HistoryRow>,
    /// Audit records emitted since the host last took them.
    audit_log: Vec<AuditLogRecord>,
}

impl ShardLedger {
    /// An empty shard with its system accounts.
    pub fn new(config: LedgerConfig) -> ShardLedger {
        let mut state = LedgerState::default();
        for system in SystemAccount::all(config.shard) {
            let reference = AccountRef::System(system);
            state
                .accounts
                .insert(reference.clone(), Account::system(reference.to_string()));
        }
        ShardLedger {
            config,
            state,
            touched: Vec::new(),
            protocol_error: None,
            history: Vec::new(),
            audit_log: Vec::new(),
        }
    }

    /// Rebuilds a shard from a snapshot of its state.
    pub fn restore(config: LedgerConfig, state: LedgerState) -> ShardLedger {
        ShardLedger {
            config,
            state,
            touched: Vec::new(),
            protocol_error: None,
            history: Vec::new(),
            audit_log: Vec::new(),
        }
    }

    /// Applies one entry. Panics if an invariant breaks: a replica whose books are wrong must
    /// stop rather than serve (assertions stay on in release builds).
    pub fn apply(&mut self, entry: &Entry) -> Applied {
        match self.try_apply(entry) {
            Ok(applied) => applied,
            Err(violation) => panic!(
                "shard {} invariant violated: {violation}",
                self.config.shard
            ),
        }
    }

    /// Applies one entry and checks the invariants it could have broken (after every command
    /// of a batch).
    pub fn try_apply(&mut self, entry: &Entry) -> Result<Applied, InvariantViolation> {
        self.state.clock_ms = self.state.clock_ms.max(entry.timestamp_ms);
        self.state.entries_applied += 1;
        let now = self.state.clock_ms;
        match &entry.command {
            Command::Batch(commands) => {
                let mut applied = Vec::with_capacity(commands.len());
                for command in commands {
                    applied.push(self.apply_command(command, now)?);
                }
                Ok(Applied::Batch(applied))
            }
            command => self.apply_command(command, now),
        }
    }

    /// Applies one command at the shard's time `now`, and checks the invariants it could have
    /// broken.
    fn apply_command(
        &mut self,
        command: &Command,
        now: u64,
    ) -> Result<Applied, InvariantViolation> {
        self.touched.clear();
        self.protocol_error = None;
        let first_row = self.history.len();
        let applied = match command {
            // Batches are not nested: the leader builds them of single commands.
            Command::Batch(_) => Applied::Admin(crate::outcome::ResultCode::NotPermitted),
            Command::OpenAccount(open) => Applied::Admin(self.open_account(open)),
            Command::OpenAccounts(opens) => {
                Applied::AdminMany(opens.iter().map(|open| self.open_account(open)).collect())
            }
            Command::Transfer(request) => self.transfer(request, now),
            Command::ReceiveCredit(offer) => self.receive_credit(offer, now),
            Command::Decide { id, answer } => self.decide(id, answer.as_ref(), now),
            Command::Settle {
                id,
                payer_shard,
                decision,
            } => self.settle(id, *payer_shard, *decision, now),
            Command::DecisionDelivered { id } => self.decision_delivered(id),
            Command::ChangePin {
                account,
                verdict,
                new_hash,
            } => self.change_pin(account, *verdict, new_hash),
            Command::PinAttempt { account, verdict } => self.pin_attempt(account, *verdict),
            Command::UnlockPin { account } => self.unlock_pin(account),
            Command::ResetPin { account, new_hash } => self.reset_pin(account, new_hash),
            Command::SetStatus { account, status } => self.set_status(account, *status),
            Command::SetLanguage { account, language } => self.set_language(account, *language),
            Command::RequestReversal { txn_id, by } => self.request_reversal(*txn_id, by, now),
            Command::CloseReversalRequest { txn_id } => self.close_reversal_request(txn_id),
            Command::SmsDelivered { up_to_seq } => self.sms_delivered(*up_to_seq),
            Command::OpenPrompt(request) => Applied::Admin(self.open_prompt(request, now)),
            Command::DeclinePrompt { checkout_id, by } => {
                Applied::Admin(self.decline_prompt(checkout_id, by, now))
            }
            Command::ExpireRequests { up_to_ms } => {
                self.expire_prompts(*up_to_ms, now);
                self.expire_payouts(*up_to_ms, now);
                Applied::Unchanged
            }
            Command::OpenPayout(request) => Applied::Admin(self.open_payout(request, now)),
            Command::MoveBetweenWallets {
                business,
                from,
                to,
                amount,
            } => Applied::Admin(self.move_between_wallets(business, *from, *to, *amount)),
            Command::SetInitiator {
                business,
                initiator,
            } => Applied::Admin(self.set_initiator(business, initiator)),
            Command::QueueCallback {
                business,
                url,
                event,
            } => Applied::Admin(self.queue_callback(business, url, event, now)),
            Command::CallbacksDelivered { seqs } => self.callbacks_delivered(seqs),
            Command::IndexApiKey {
                consumer_key,
                business,
            } => Applied::Admin(self.index_api_key(consumer_key, business)),
            Command::RegisterC2bUrls { business, urls } => {
                Applied::Admin(self.register_c2b_urls(business, urls))
            }
            Command::Retire { up_to_ms } => self.retire(*up_to_ms),
            Command::RecordAction(entry) => self.record_action(entry, now),
            Command::PauseIntake { until_ms } => {
                self.state.intake_paused_until_ms = *until_ms;
                Applied::Admin(crate::outcome::ResultCode::Success)
            }
        };
        self.queue_c2b_confirmations(first_row, now);
        self.check_invariants()?;
        Ok(applied)
    }

    /// Whether new transfers are refused at `now` (a backup's pause).
    pub fn intake_paused(&self, now: u64) -> bool {
        now < self.state.intake_paused_until_ms
    }

    /// Lifts a backup's pause (a cluster restored from the backup starts with intake open).
    pub fn resume_intake(&mut self) {
        self.state.intake_paused_until_ms = 0;
    }

    /// This shard's id.
    pub fn shard(&self) -> ShardId {
        self.config.shard
    }

    /// The static configuration.
    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    /// The replicated state (for snapshots).
    pub fn state(&self) -> &LedgerState {
        &self.state
    }

    /// An account of this shard.
    pub fn account(&self, account: &AccountRef) -> Option<&Account> {
        self.state.accounts.get(account)
    }

    /// Every account of this shard, in key order.
    pub fn accounts(&self) -> impl Iterator<Item = (&AccountRef, &Account)> {
        self.state.accounts.iter()
    }

    /// The payer-side record of a transfer.
    pub fn outgoing(&self, id: &TransferId) -> Option<&OutgoingTransfer> {
        self.state.outgoing.get(id)
    }

    /// The payee-side record of a transfer.
    pub fn incoming(&self, id: &TransferId) -> Option<&IncomingTransfer> {
        self.state.incoming.get(id)
    }

    /// The payer-side record of the transfer with this receipt, if it started here.
    pub fn outgoing_by_receipt(&self, txn_id: &TransactionId) -> Option<&OutgoingTransfer> {
        self.state
            .by_txn_id
            .get(txn_id)
            .and_then(|id| self.state.outgoing.get(id))
    }

    /// The final answer for a transfer started on this shard, if it has one.
    pub fn receipt(&self, id: &TransferId) -> Option<Receipt> {
        let record = self.state.outgoing.get(id)?;
        record.is_final().then(|| self.receipt_of(record))
    }

    /// Every payer-side record, in id order.
    pub fn outgoing_records(&self) -> impl Iterator<Item = (&TransferId, &OutgoingTransfer)> {
        self.state.outgoing.iter()
    }

    /// Every payee-side record, in id order.
    pub fn incoming_records(&self) -> impl Iterator<Item = (&TransferId, &IncomingTransfer)> {
        self.state.incoming.iter()
    }

    /// Transfers prepared here and not yet decided.
    pub fn prepared(&self) -> impl Iterator<Item = &OutgoingTransfer> {
        self.state
            .prepared
            .iter()
            .filter_map(|id| self.state.outgoing.get(id))
    }

    /// Transfers accepted here and not yet settled.
    pub fn accepted(&self) -> impl Iterator<Item = (&TransferId, &IncomingTransfer)> {
        self.state
            .accepted
            .iter()
            .filter_map(|id| self.state.incoming.get(id).map(|r| (id, r)))
    }

    /// Decisions not yet acknowledged by their payee shard.
    pub fn outbox(&self) -> impl Iterator<Item = (&TransferId, ShardId, Decision)> {
        self.state
            .outbox
            .iter()
            .map(|(id, (shard, decision))| (id, *shard, *decision))
    }

    /// The undelivered decision for a transfer, if any.
    pub fn pending_decision(&self, id: &TransferId) -> Option<(ShardId, Decision)> {
        self.state.outbox.get(id).copied()
    }

    /// Confirmation texts not yet delivered, oldest first.
    pub fn sms_outbox(&self) -> impl Iterator<Item = &SmsRecord> {
        self.state.sms.iter()
    }

    /// Confirmation texts from sequence number `seq` on, oldest first (a binary search, not a
    /// scan of the texts before it).
    pub fn sms_outbox_from(&self, seq: u64) -> impl Iterator<Item = &SmsRecord> {
        let start = self.state.sms.partition_point(|r| r.seq < seq);
        self.state.sms.range(start..)
    }

    /// The shard's clock: the greatest timestamp applied.
    pub fn clock_ms(&self) -> u64 {
        self.state.clock_ms
    }

    /// Number of entries applied since the shard was created.
    pub fn entries_applied(&self) -> u64 {
        self.state.entries_applied
    }

    fn sms_delivered(&mut self, up_to_seq: u64) -> Applied {
        while self.state.sms.front().is_some_and(|r| r.seq <= up_to_seq) {
            self.state.sms.pop_front();
        }
        Applied::Admin(crate::outcome::ResultCode::Success)
    }
}

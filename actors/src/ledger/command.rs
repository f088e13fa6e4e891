//! The entries a shard's log carries, and what applying one reports.

use serde::{Deserialize, Serialize};

use crate::account::{AccountRef, ShardId};
use crate::money::Money;
use crate::msisdn::Msisdn;
use crate::outcome::ResultCode;
use crate::pin::PinHash;
use crate::roles::AccountKind;
use crate::transfer::{PinVerdict, TransferId, TransferKind, TransferRequest};
use crate::txn_id::TransactionId;

use super::records::AccountStatus;

/// One log entry: a command and the proposing leader's clock. Apply never reads a clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub timestamp_ms: u64,
    pub command: Command,
}

/// Registration of a customer, agent or business.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAccount {
    pub account: AccountRef,
    pub kind: AccountKind,
    pub name: String,
    pub id_number: Option<String>,
    pub phone: Option<Msisdn>,
    pub store_number: Option<String>,
    /// Hashed at the edge: hashing is salted, so it cannot run in apply.
    pub pin_hash: Option<PinHash>,
    /// Businesses: the API credentials their Daraja-style clients authenticate with.
    pub api_credentials: Option<ApiCredentials>,
}

/// A business's API credentials. The consumer secret and the M-Pesa Express passkey are kept
/// only as keyed digests (hex HMAC-SHA256 under a key derived from the cluster secret; see the
/// business API's `credentials.rs`): random machine credentials, so a fast keyed digest
/// suffices, and a copy of the data reveals neither.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiCredentials {
    pub consumer_key: String,
    pub consumer_secret_digest: String,
    pub passkey_digest: String,
}

/// A payer shard's offer of a pending credit to the payee shard (DESIGN §4 step 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditOffer {
    pub id: TransferId,
    pub txn_id: TransactionId,
    pub kind: TransferKind,
    pub from: AccountRef,
    pub payer_name: String,
    pub payer_shard: ShardId,
    /// The account to credit.
    pub to: AccountRef,
    pub amount: Money,
    pub deadline_ms: u64,
    pub account_reference: Option<String>,
    pub reverses: Option<TransactionId>,
}

/// The payee shard's answer to an offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreditAnswer {
    /// Pending credit held; the name goes into the payer's confirmation.
    Accepted {
        payee_name: String,
    },
    Rejected(ResultCode),
}

/// The payer shard's durable decision.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    Commit,
    Abort,
}

/// Everything a shard's log can carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    OpenAccount(OpenAccount),
    /// Bulk registration: many accounts of this shard in one entry (imports).
    OpenAccounts(Vec<OpenAccount>),
    /// A same-shard transfer, or the Prepare of a cross-shard one.
    Transfer(TransferRequest),
    /// Payee side: Accept or Reject an offer.
    ReceiveCredit(CreditOffer),
    /// Payer side: commit or abort. `answer` is the payee's answer if one arrived; the sweeper
    /// proposes `None`, which aborts only once the entry's timestamp is past the deadline.
    Decide {
        id: TransferId,
        answer: Option<CreditAnswer>,
    },
    /// Payee side: post or void the pending credit.
    Settle {
        id: TransferId,
        payer_shard: ShardId,
        decision: Decision,
    },
    /// Payer side: the payee acknowledged the decision; stop delivering it.
    DecisionDelivered {
        id: TransferId,
    },
    /// The customer changes their own PIN (old PIN checked at the edge).
    ChangePin {
        account: AccountRef,
        verdict: PinVerdict,
        new_hash: PinHash,
    },
    /// A PIN entered for a read (balance, statement): counts toward lockout like a transfer's.
    PinAttempt {
        account: AccountRef,
        verdict: PinVerdict,
    },
    /// Care unlocks a PIN locked after too many wrong tries.
    UnlockPin {
        account: AccountRef,
    },
    /// Care sets a start PIN.
    ResetPin {
        account: AccountRef,
        new_hash: PinHash,
    },
    SetStatus {
        account: AccountRef,
        status: AccountStatus,
    },
    /// A payer asks for a committed transfer of theirs to be reversed (care decides).
    RequestReversal {
        txn_id: crate::txn_id::TransactionId,
        by: crate::msisdn::Msisdn,
    },
    /// Care decided a reversal request (approved and ran the reversal, or declined it).
    CloseReversalRequest {
        txn_id: crate::txn_id::TransactionId,
    },
    /// The holder picks the language their menus are shown in.
    SetLanguage {
        account: AccountRef,
        language: crate::language::Language,
    },
    /// The SMS channel delivered every outbox record up to and including `up_to_seq`.
    SmsDelivered {
        up_to_seq: u64,
    },
    /// The leader's retirement of finished records whose time is at or before `up_to_ms` (the
    /// idempotency window and its grace behind the leader's clock; see `history.rs`).
    Retire {
        up_to_ms: u64,
    },
    /// A business asks a customer to pay it (M-Pesa Express): opened on the customer's shard.
    OpenPrompt(super::prompts::PromptRequest),
    /// The customer declines the prompt waiting for them.
    DeclinePrompt {
        checkout_id: String,
        by: crate::msisdn::Msisdn,
    },
    /// The leader closes waiting prompts and queued payout orders whose expiry is at or before
    /// `up_to_ms` (its clock).
    ExpireRequests {
        up_to_ms: u64,
    },
    /// The node leading the shard delivered these callbacks to their businesses.
    CallbacksDelivered {
        seqs: Vec<u64>,
    },
    /// A business API consumer key belongs to this business (on the key's shard).
    IndexApiKey {
        consumer_key: String,
        business: crate::account::Shortcode,
    },
    /// A business registers where its customers' payments are validated and confirmed.
    RegisterC2bUrls {
        business: crate::account::Shortcode,
        urls: super::c2b::C2bUrls,
    },
    /// A business orders a payout (B2C, B2B), recorded on its shard before it is paid.
    OpenPayout(super::payouts::PayoutRequest),
    /// Care or the business moves money between the business's accounts (Utility, Working,
    /// Organization Settlement); its balance is unchanged.
    MoveBetweenWallets {
        business: crate::account::Shortcode,
        from: super::business::Wallet,
        to: super::business::Wallet,
        amount: Money,
    },
    /// A business adds or replaces an initiator allowed to order its payouts.
    SetInitiator {
        business: crate::account::Shortcode,
        initiator: super::business::Initiator,
    },
    /// Many commands in one log entry, applied in order with the entry's timestamp (the
    /// leader batches what it proposes in one engine loop). Not nested.
    Batch(Vec<Command>),
    /// A result the edge computed for a business (a status or balance query) is owed to its
    /// URL: queued in the outbox like any other callback.
    QueueCallback {
        business: crate::account::Shortcode,
        url: String,
        event: super::callbacks::CallbackEvent,
    },
    /// An admin, care or business action, appended to the shard's audit log.
    RecordAction(super::audit_log::AuditLogEntry),
    /// New transfers are refused (`Overloaded`, not recorded) while the shard's clock is
    /// before `until_ms` (0: accepted again); those under way finish. A backup pauses every
    /// shard so that nothing is in flight when it reads their states.
    PauseIntake {
        until_ms: u64,
    },
}

/// What a client is told about a transfer once it is final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub id: TransferId,
    pub result: ResultCode,
    pub txn_id: Option<TransactionId>,
    pub fee: Money,
    /// The payer's posted balance after the decision.
    pub balance: Money,
    pub payee_name: Option<String>,
}

/// What applying one entry did; the driver and the host react to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Account opened, PIN changed, status set…: the code says how it went.
    Admin(ResultCode),
    /// One code per account of a bulk registration, in order.
    AdminMany(Vec<ResultCode>),
    /// A transfer is final on its payer shard; answer the client.
    TransferFinished(Receipt),
    /// Funds held for a cross-shard transfer: send the offer.
    TransferPrepared(CreditOffer),
    /// A retry of a transfer still in flight: keep waiting.
    TransferInProgress {
        id: TransferId,
    },
    /// A request refused without being recorded (a conflicting reuse of an id, or overload).
    TransferRefused {
        id: TransferId,
        result: ResultCode,
    },
    /// Payee side answered an offer: send the answer to the payer shard.
    CreditAnswered {
        id: TransferId,
        payer_shard: ShardId,
        answer: CreditAnswer,
    },
    /// Payee side settled: acknowledge to the payer shard.
    Settled {
        id: TransferId,
        payer_shard: ShardId,
    },
    /// Nothing changed (a duplicate or premature entry).
    /// The payee acknowledged a decision: the payer stops delivering it.
    DecisionDelivered {
        id: TransferId,
    },
    Unchanged,
    /// A batch's commands' outcomes, in order.
    Batch(Vec<Applied>),
}

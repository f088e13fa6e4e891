//! What clients (the HTTP layer, other nodes) ask an engine, and what it answers. Both travel
//! between nodes when a request is forwarded to a shard's leader, so both are serde types.

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tuma_actors::account::AccountRef;
use tuma_actors::ledger::{Account, Command, HistoryRow, Receipt, ShardAudit};
use tuma_actors::outcome::ResultCode;
use tuma_actors::transfer::{TransferId, TransferRequest};

use crate::membership::{MetaCommand, MetaOutcome, META_GROUP};
use crate::transport::NodeId;

/// A request for the leader of one shard.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ClientRequest {
    /// Apply an admin command (open account, PIN reset…) and answer its result code.
    Command { shard: u32, command: Command },
    /// A transfer from a channel. The leader verifies `pin` (if the kind needs one) off its
    /// thread, then proposes the transfer with the verdict.
    Transfer {
        request: TransferRequest,
        pin: Option<String>,
    },
    /// Read an account on its leader.
    Account { account: AccountRef },
    /// Read a transfer's receipt on its payer shard; with `payer`, only a transfer that account
    /// paid is found (another payer's transfer under the same id is "unknown").
    TransferStatus {
        shard: u32,
        id: TransferId,
        payer: Option<AccountRef>,
    },
    /// One shard's audit.
    Audit { shard: u32 },
    /// The payer-side record of a transfer by its receipt (care looks up what to reverse).
    TransferByReceipt {
        shard: u32,
        txn_id: tuma_actors::txn_id::TransactionId,
    },
    /// A page of an account's statement from its shard's history, newest first: committed
    /// transfers numbered below `before` (from the newest, if `None`), at most `limit`.
    Statement {
        account: AccountRef,
        limit: usize,
        before: Option<u64>,
    },
    /// Every history row of the transfer with this receipt on the shard that issued it (care:
    /// receipts stay resolvable for the whole history).
    Receipt {
        shard: u32,
        txn_id: tuma_actors::txn_id::TransactionId,
    },
    /// The shard's open reversal requests.
    ReversalRequests { shard: u32 },
    /// The shard's ledger state for a backup (with what is in flight on it).
    BackupState { shard: u32 },
    /// A page of the shard's history rows and audit records for a backup, in store key order
    /// after `after`, at most `limit` keys.
    BackupRows {
        shard: u32,
        after: Option<Vec<u8>>,
        limit: usize,
    },
    /// A page of the shard's audit log, newest first: records strictly before
    /// `before` = (time, sequence) (from the newest, if `None`), at most `limit`.
    AuditLog {
        shard: u32,
        before: Option<(u64, u64)>,
        limit: usize,
    },
    /// Up to `limit` undelivered confirmation texts of the shard from sequence number
    /// `from_seq` on, oldest first (the SMS channel takes them, then acknowledges with
    /// `Command::SmsDelivered`).
    SmsOutbox {
        shard: u32,
        from_seq: u64,
        limit: usize,
    },
    /// A payment prompt of the shard: the one with this checkout id, or the one waiting for
    /// this customer's answer.
    Prompt { shard: u32, lookup: PromptLookup },
    /// A business's payout order, on the business's shard.
    Payout {
        business: tuma_actors::account::Shortcode,
        lookup: PayoutLookup,
    },
    /// The business a consumer key belongs to, on the key's shard.
    ApiKey { shard: u32, consumer_key: String },
    /// Up to `limit` undelivered business callbacks of the shard from sequence number
    /// `from_seq` on, oldest first (the business API delivers them, then acknowledges with
    /// `Command::CallbacksDelivered`).
    Callbacks {
        shard: u32,
        from_seq: u64,
        limit: usize,
    },
    /// Test-only fault hook (served only by a node started with test hooks on): the next
    /// transfer from this account panics in its actor.
    PlantPanic { account: AccountRef },
    /// A change to the cluster (join, drain), for the meta group's leader.
    Meta { command: MetaCommand },
    /// Test-only fault hook (served only with test hooks on): the engine thread panics, as a
    /// defect in it would; the node must exit rather than serve on without an engine.
    PlantEnginePanic,
}

impl ClientRequest {
    /// True for requests that only read a shard's state: served by a leader that confirmed
    /// its leadership (ReadIndex) and applied up to it, so they are linearizable.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            ClientRequest::Account { .. }
                | ClientRequest::TransferStatus { .. }
                | ClientRequest::TransferByReceipt { .. }
                | ClientRequest::Audit { .. }
                | ClientRequest::Statement { .. }
                | ClientRequest::Receipt { .. }
                | ClientRequest::SmsOutbox { .. }
                | ClientRequest::ReversalRequests { .. }
                | ClientRequest::AuditLog { .. }
                | ClientRequest::BackupState { .. }
                | ClientRequest::BackupRows { .. }
                | ClientRequest::Prompt { .. }
                | ClientRequest::Payout { .. }
                | ClientRequest::Callbacks { .. }
                | ClientRequest::ApiKey { .. }
        )
    }

    /// The shard whose leader must answer.
    pub fn shard(&self, map: &tuma_actors::ShardMap) -> u32 {
        match self {
            ClientRequest::Command { shard, .. }
            | ClientRequest::TransferStatus { shard, .. }
            | ClientRequest::Audit { shard }
            | ClientRequest::TransferByReceipt { shard, .. }
            | ClientRequest::Receipt { shard, .. }
            | ClientRequest::SmsOutbox { shard, .. }
            | ClientRequest::Callbacks { shard, .. }
            | ClientRequest::Prompt { shard, .. }
            | ClientRequest::ApiKey { shard, .. }
            | ClientRequest::AuditLog { shard, .. }
            | ClientRequest::BackupState { shard }
            | ClientRequest::BackupRows { shard, .. }
            | ClientRequest::ReversalRequests { shard } => *shard,
            ClientRequest::Transfer { request, .. } => map.shard_of(&request.from),
            ClientRequest::Payout { business, .. } => {
                map.shard_of(&AccountRef::Business(business.clone()))
            }
            ClientRequest::Account { account }
            | ClientRequest::Statement { account, .. }
            | ClientRequest::PlantPanic { account } => map.shard_of(account),
            ClientRequest::Meta { .. } | ClientRequest::PlantEnginePanic => META_GROUP,
        }
    }
}

/// A shard's state as a backup reads it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardBackupState {
    /// The ledger state, encoded as a checkpoint holds it.
    pub state: Vec<u8>,
    /// Rows and records the state numbered: the copy holds those below these.
    pub history_rows: u64,
    pub audit_records: u64,
    /// Transfers prepared or accepted on the shard (a backup's point needs none).
    pub in_flight: u64,
    pub entries_applied: u64,
}

/// How a prompt is looked up on its shard.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PromptLookup {
    ByCheckoutId(String),
    /// The prompt waiting for this customer's answer (or being paid).
    WaitingFor(tuma_actors::msisdn::Msisdn),
}

/// How a payout order is looked up on its business's shard.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PayoutLookup {
    /// Ours (`ConversationID`).
    ByConversationId(String),
    /// The business's key (`OriginatorConversationID`).
    ByOriginatorId(String),
}

/// One line of a statement.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatementLine {
    pub transfer: TransferId,
    pub receipt: Option<String>,
    pub kind: String,
    pub counterparty: String,
    /// Signed: negative when money left the account (fee included).
    pub amount_cents: i64,
    pub completed_ms: u64,
    /// The account's posted balance right after.
    pub balance_after_cents: i64,
    /// The line's number in the shard's history: pass it as `before` for the next page.
    pub seq: u64,
}

impl StatementLine {
    /// A statement line from a history row.
    pub fn of(row: &HistoryRow) -> StatementLine {
        StatementLine {
            transfer: row.transfer.clone(),
            receipt: row.receipt.map(|t| t.to_string()),
            kind: row.kind.name().to_string(),
            counterparty: row.counterparty.to_string(),
            amount_cents: row.amount_cents,
            completed_ms: row.completed_ms,
            balance_after_cents: row.balance_after.cents(),
            seq: row.seq,
        }
    }
}

/// The answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ClientReply {
    /// An admin command's result.
    Done(ResultCode),
    /// A bulk command's results, one per item.
    DoneMany(Vec<ResultCode>),
    /// A transfer's final answer.
    Receipt(Receipt),
    /// Refused before it was recorded (overload, or a conflicting reuse of the id).
    Refused(ResultCode),
    /// The transfer exists and is not decided yet.
    InProgress,
    /// No transfer with that id on its payer shard.
    UnknownTransfer,
    Account(Option<Box<Account>>),
    Transfer(Option<Box<tuma_actors::ledger::OutgoingTransfer>>),
    Audit(Box<ShardAudit>),
    Statement(Vec<StatementLine>),
    /// History rows (a receipt's, payer first).
    History(Vec<HistoryRow>),
    /// A page of a shard's audit log, newest first.
    AuditLog(Vec<tuma_actors::ledger::AuditLogRecord>),
    BackupState(Box<ShardBackupState>),
    /// A page of a shard's rows and records, and the key to continue after.
    BackupRows {
        rows: Vec<HistoryRow>,
        audit_log: Vec<tuma_actors::ledger::AuditLogRecord>,
        next: Option<Vec<u8>>,
    },
    /// Open reversal requests by receipt.
    ReversalRequests(
        Vec<(
            tuma_actors::txn_id::TransactionId,
            tuma_actors::ledger::ReversalRequest,
        )>,
    ),
    /// Undelivered confirmation texts, oldest first.
    SmsOutbox(Vec<tuma_actors::ledger::SmsRecord>),
    /// A payment prompt, if the shard holds it.
    Prompt(Option<Box<tuma_actors::ledger::Prompt>>),
    /// A payout order, if the shard holds it.
    Payout(Option<Box<tuma_actors::ledger::Payout>>),
    /// Undelivered business callbacks, oldest first.
    Callbacks(Vec<tuma_actors::ledger::Callback>),
    /// The business a consumer key belongs to, if indexed.
    Business(Option<tuma_actors::account::Shortcode>),
    /// A cluster change's outcome.
    Meta(MetaOutcome),
    /// This node does not lead the shard (or leads it but is not ready to serve yet); nothing
    /// was done: retry there (or anywhere, if unknown).
    NotLeader {
        shard: u32,
        leader: Option<NodeId>,
    },
    /// The node cannot take the request now (overloaded, shutting down); nothing was done:
    /// retry.
    Unavailable(String),
    /// The request was taken but its outcome is unknown (leadership changed after it was
    /// proposed, the answer timed out): it may or may not have been applied. Idempotent
    /// requests (transfers by id) retry; others must not be repeated blindly.
    Ambiguous(String),
}

impl ClientReply {
    /// A short description for error messages (never Debug output).
    pub fn describe(&self) -> String {
        match self {
            ClientReply::NotLeader {
                shard,
                leader: Some(leader),
            } => format!("shard {shard} is led by node {leader}"),
            ClientReply::NotLeader {
                shard,
                leader: None,
            } => {
                format!("shard {shard} has no leader right now")
            }
            ClientReply::Unavailable(why) => format!("unavailable: {why}"),
            ClientReply::Ambiguous(why) => format!("outcome unknown: {why}"),
            ClientReply::Done(code) | ClientReply::Refused(code) => code.name().to_string(),
            ClientReply::DoneMany(_) => "bulk result".into(),
            ClientReply::Receipt(receipt) => receipt.result.name().to_string(),
            ClientReply::InProgress => "in progress".into(),
            ClientReply::UnknownTransfer => "unknown transfer".into(),
            ClientReply::Account(_) => "account".into(),
            ClientReply::Transfer(_) => "transfer".into(),
            ClientReply::Audit(_) => "audit".into(),
            ClientReply::Statement(_) => "statement".into(),
            ClientReply::History(_) => "history".into(),
            ClientReply::AuditLog(_) => "audit log".into(),
            ClientReply::BackupState(_) => "backup state".into(),
            ClientReply::BackupRows { .. } => "backup rows".into(),
            ClientReply::SmsOutbox(_) => "sms outbox".into(),
            ClientReply::Prompt(_) => "prompt".into(),
            ClientReply::Payout(_) => "payout".into(),
            ClientReply::Callbacks(_) => "callbacks".into(),
            ClientReply::Business(_) => "business".into(),
            ClientReply::ReversalRequests(_) => "reversal requests".into(),
            ClientReply::Meta(_) => "cluster change".into(),
        }
    }
}

/// Who is waiting for an answer.
#[derive(Debug)]
pub enum Waiter {
    Local(oneshot::Sender<ClientReply>),
    /// A request forwarded by another node, answered over the transport.
    Remote {
        node: NodeId,
        id: u64,
    },
}

/// Everything the engine thread consumes.
#[derive(Debug)]
pub enum Input {
    Client {
        request: ClientRequest,
        waiter: Waiter,
    },
    Peer {
        from: NodeId,
        frame: crate::wire::PeerFrame,
    },
    /// A PIN verification finished on the blocking pool.
    PinChecked {
        request: TransferRequest,
        verdict: tuma_actors::transfer::PinVerdict,
        waiter: Waiter,
    },
    Status {
        reply: oneshot::Sender<crate::engine::NodeStatus>,
    },
    /// An answer computed off the engine thread, to hand to its waiter.
    Reply {
        waiter: Waiter,
        reply: ClientReply,
    },
    /// Hand every leadership to other nodes before stopping; answers how many this node
    /// still leads when done or out of time.
    Leave {
        within_ms: u64,
        reply: oneshot::Sender<usize>,
    },
    Shutdown,
}

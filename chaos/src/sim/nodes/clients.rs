//! Simulated callers of the node API, behaving as a careful gateway does: a transfer is sent to
//! any node and sent again under the same id — to the leader a node named, or anywhere — until a
//! final answer comes back (after its deadline the answer is definitive: the payer shard
//! records either the transfer's outcome or a refusal). Reads are balance lookups and status
//! lookups of transfers already confirmed, checked later against the committed history.

use tokio::sync::oneshot;
use tuma_actors::account::AccountRef;
use tuma_actors::ledger::Receipt;
use tuma_actors::outcome::ResultCode;
use tuma_actors::transfer::TransferRequest;
use tuma_cluster::engine::ClientReply;
use tuma_cluster::membership::{MetaCommand, MetaOutcome};
use tuma_cluster::transport::NodeId;

/// What a transfer's client finally heard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A final answer: confirmed, or failed with a recorded result.
    Receipt(Receipt),
    /// Refused without a record (a reuse of the id for another request, overload).
    Refused(ResultCode),
}

/// One transfer and its caller.
pub struct TransferClient {
    pub request: TransferRequest,
    /// The PIN typed ("1234" is right).
    pub pin: String,
    /// How long the caller waits for each attempt's decision (the API's `deadline_ms`).
    pub wait_ms: u64,
    /// Another client whose id this one reuses with different content.
    pub reuses_id_of: Option<usize>,
    pub answer: Option<Answer>,
    /// Simulated time of the final answer.
    pub answered_at: Option<u64>,
    pub attempts: u32,
    pub pending: Option<Pending>,
    /// The node to try next (a leader another node named).
    pub prefer: Option<NodeId>,
    /// A setup transfer (float issue) rather than workload.
    pub setup: bool,
}

impl TransferClient {
    pub fn new(request: TransferRequest, pin: String, wait_ms: u64) -> TransferClient {
        TransferClient {
            request,
            pin,
            wait_ms,
            reuses_id_of: None,
            answer: None,
            answered_at: None,
            attempts: 0,
            pending: None,
            prefer: None,
            setup: false,
        }
    }
}

/// A request in flight to one node.
pub struct Pending {
    pub node: NodeId,
    pub reply: oneshot::Receiver<ClientReply>,
}

/// What to do with a reply to an attempt.
pub enum Next {
    /// Done with this answer.
    Final(Answer),
    /// Try again, at this node if it is up.
    Retry(Option<NodeId>),
}

impl TransferClient {
    /// Judges the reply to one attempt.
    pub fn judge(reply: ClientReply) -> Next {
        match reply {
            ClientReply::Receipt(receipt) => Next::Final(Answer::Receipt(receipt)),
            ClientReply::Refused(code) => Next::Final(Answer::Refused(code)),
            ClientReply::NotLeader { leader, .. } => Next::Retry(leader),
            _ => Next::Retry(None),
        }
    }
}

/// A balance read: what it returned and when it ran, for the linearizability check.
pub struct BalanceRead {
    pub account: AccountRef,
    pub started_at: u64,
    pub pending: Option<Pending>,
    /// (balance in cents, answered at).
    pub result: Option<(i64, u64)>,
    pub attempts: u32,
}

/// A status read of a transfer whose client was told it committed: must never answer
/// "unknown" or "in progress".
pub struct StatusRead {
    pub client: usize,
    pub started_at: u64,
    pub pending: Option<Pending>,
    pub result: Option<ClientReply>,
    pub attempts: u32,
}

/// A change to the cluster asked of any node (join, drain), retried until recorded.
pub struct MetaClient {
    pub command: MetaCommand,
    pub pending: Option<Pending>,
    pub outcome: Option<MetaOutcome>,
    pub attempts: u32,
}

/// Most attempts any simulated caller makes before the run gives up on it (the final checks
/// then report it unanswered).
pub const ATTEMPTS_MAX: u32 = 2_000;

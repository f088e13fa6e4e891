//! The typed node API: what a caller can ask a node for — transfers, accounts and their PINs,
//! statements, receipts and reversals, audits, cluster changes — in the types of the money
//! core. Every channel (the HTTP API, USSD, SMS, the business API) is built on it and never
//! sees a shard, a log command or the engine's request enum: which shard leads an account,
//! forwarding to its leader and retrying across leader changes happen here.
//!
//! | file | holds |
//! |---|---|
//! | `rate.rs` | token buckets by key, bounded (failed attempts, the business API's call budgets) |
//! | `attempts.rs` | budgets of failed transfer attempts per payer and per source |
//! | `calls.rs` | asking the engine, retried on leader change until a deadline |
//! | `error.rs` | [`ServiceError`]: why a call gave nothing |
//! | `pins.rs` | hashing and verifying PINs off the async threads |
//! | `transfers.rs` | transfers, their status, float issue, reversals by receipt |
//! | `businesses.rs` | registering a business with API credentials, finding it by consumer key |
//! | `accounts.rs` | registration (one or in bulk), account reads, PIN checks and resets, balance, statement |
//! | `cluster.rs` | the audit over every shard, node status, joins and drains, documents |
//! | `backup.rs` | backups: intake paused until nothing is in flight, each shard's state and history read, the directory format, offline verification |
//! | `audit_log.rs` | the audit log: actions recorded on their actor's shard, read back merged by time |
//! | `digest.rs` | keyed digests of secrets (HMAC-SHA-256 under a cluster-derived key), stored instead of secrets |
//! | `float_approvals.rs` | maker-checker: float issues above a set amount wait for another caller's approval |
//! | `keys.rs` | scoped admin API keys (operator, care, auditor): the key ring in a cluster document, create, revoke, rotate |
//! | `reversal_requests.rs` | payers' requests to reverse a transfer, care's approval or decline |
//! | `payee_checks.rs` | the hook a bill payment or purchase passes before it is submitted (C2B validation) |
//! | `prompts.rs` | payment prompts (M-Pesa Express): open, find, accept, decline; the business callback outbox |
//! | `payouts.rs` | business payouts (B2C, B2B): order, pay, find; initiators; rendered results queued for businesses |
//! | `sms.rs` | the shards' confirmation texts for the SMS channel: read, acknowledge |
//! | `test_hooks.rs` | faults tests plant (only on nodes started with test hooks) |

mod accounts;
mod attempts;
pub mod audit_log;
pub mod backup;
mod businesses;
mod calls;
mod cluster;
pub mod digest;
mod error;
pub mod float_approvals;
pub mod keys;
mod payee_checks;
mod payouts;
mod pins;
mod prompts;
mod rate;
mod reversal_requests;
mod sms;
mod test_hooks;
mod transfers;

use std::time::{SystemTime, UNIX_EPOCH};

use tuma_actors::pin::PinHasher;
use tuma_cluster::engine::NodeHandle;

pub use accounts::RowOutcome;
pub use attempts::{is_failed_attempt, AttemptLimiter, AttemptLimits};
pub use calls::{Calls, Repeat};
pub use cluster::{Audit, AuditTotals};
pub use error::ServiceError;
pub use payee_checks::{CheckFuture, PayeeCheck};
pub use pins::Pins;
pub use rate::RateBuckets;
pub use transfers::{TransferOrder, TransferOutcome, TransferStatus};
pub use tuma_cluster::engine::{PayoutLookup, StatementLine};

/// A node's typed API. Cheap to clone; every clone talks to the same engine.
#[derive(Clone)]
pub struct Service {
    calls: Calls,
    pins: Pins,
    attempts: std::sync::Arc<AttemptLimiter>,
    /// Asked before bill payments and purchases (installed by the business API).
    payee_check: std::sync::Arc<std::sync::OnceLock<std::sync::Arc<dyn PayeeCheck>>>,
}

impl Service {
    pub fn new(handle: NodeHandle, hasher: PinHasher) -> Service {
        Service {
            calls: Calls::new(handle),
            pins: Pins::new(hasher),
            attempts: std::sync::Arc::new(AttemptLimiter::new(AttemptLimits::default())),
            payee_check: std::sync::Arc::default(),
        }
    }

    /// The same service with other budgets for failed transfer attempts.
    pub fn with_attempt_limits(mut self, limits: AttemptLimits) -> Service {
        self.attempts = std::sync::Arc::new(AttemptLimiter::new(limits));
        self
    }

    pub fn pins(&self) -> &Pins {
        &self.pins
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.calls.handle.node_id()
    }

    /// How many shards the accounts are spread over.
    pub fn shard_count(&self) -> u32 {
        self.calls.handle.shard_map().shard_count()
    }

    fn handle(&self) -> &NodeHandle {
        &self.calls.handle
    }
}

/// Wall-clock milliseconds since the epoch (deadlines travel as absolute times).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

//! The cross-shard transfer protocol of DESIGN §4, leader side, as a pure state machine.
//!
//! The ledger ([`crate::ledger`]) holds everything durable: holds, answers, decisions, the
//! decision outbox. The [`ShardDriver`] is the volatile part that runs on a shard's leader: given
//! the applied state, an incoming peer message, an applied entry or a tick, it returns the
//! entries to propose and the messages to send. It keeps only retry pacing, so a new leader
//! rebuilds it empty and its first tick resends whatever the state says is unfinished:
//!
//! | duty (from state) | payer shard A | payee shard B |
//! |---|---|---|
//! | prepared, before deadline | resend `Credit` | |
//! | prepared, past deadline (the sweeper) | propose `Decide(None)` → abort | |
//! | decision in outbox | resend `Decision` until acknowledged | |
//! | accepted, past deadline + grace | | send `Inquiry` to A |
//!
//! Messages are idempotent at both ends; entries are idempotent by transfer id.

mod driver;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::account::ShardId;
use crate::ledger::{Command, CreditAnswer, CreditOffer, Decision};
use crate::transfer::TransferId;

pub use driver::ShardDriver;

/// Shard-to-shard protocol messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// A → B: hold a pending credit.
    Credit(CreditOffer),
    /// B → A: the recorded answer.
    CreditAnswer {
        id: TransferId,
        answer: CreditAnswer,
    },
    /// A → B: the durable decision.
    Decision { id: TransferId, decision: Decision },
    /// B → A: the decision is settled on B.
    DecisionAck { id: TransferId },
    /// B → A: still no decision past deadline plus grace; what happened?
    Inquiry { id: TransferId },
}

impl PeerMessage {
    /// The transfer the message is about.
    pub fn transfer_id(&self) -> &TransferId {
        match self {
            PeerMessage::Credit(offer) => &offer.id,
            PeerMessage::CreditAnswer { id, .. }
            | PeerMessage::Decision { id, .. }
            | PeerMessage::DecisionAck { id }
            | PeerMessage::Inquiry { id } => id,
        }
    }
}

/// A message with its route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: ShardId,
    pub to: ShardId,
    pub message: PeerMessage,
}

/// What the driver wants done: entries to propose to this shard's log, messages to send, and
/// inquiries to answer once the leader has confirmed what it knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    pub propose: Vec<Command>,
    pub send: Vec<Envelope>,
    /// Inquiries (transfer, asking shard) about transfers this shard holds no record of. "Never
    /// prepared here, so abort" is a read of everything the shard ever committed: a leader
    /// that has not applied its whole log, or was deposed without knowing it, would presume
    /// abort for a transfer another leader prepared and may commit. The caller answers with
    /// [`super::ShardDriver::answer_confirmed_inquiry`] only after a quorum confirmed it still
    /// leads and it applied everything committed at that moment (Raft's ReadIndex).
    pub confirm_absent: Vec<(TransferId, ShardId)>,
}

impl Effects {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.propose.is_empty() && self.send.is_empty() && self.confirm_absent.is_empty()
    }

    /// Appends another batch.
    pub fn extend(&mut self, other: Effects) {
        self.propose.extend(other.propose);
        self.send.extend(other.send);
        self.confirm_absent.extend(other.confirm_absent);
    }
}

/// Pacing of the driver's retries. Every field is a limit, validated at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// Resend an unanswered offer or an unacknowledged decision this often.
    pub resend_interval_ms: u64,
    /// Re-propose an entry that has not applied within this time (the proposal was lost).
    pub propose_retry_ms: u64,
    /// The payee asks the payer once a transfer it accepted is this far past its deadline.
    pub inquiry_grace_ms: u64,
    /// Most duties acted on per tick, so one tick's work is bounded.
    pub duties_per_tick_max: usize,
}

impl Default for DriverConfig {
    fn default() -> DriverConfig {
        DriverConfig {
            resend_interval_ms: 200,
            propose_retry_ms: 500,
            inquiry_grace_ms: 2_000,
            duties_per_tick_max: 10_000,
        }
    }
}

/// Why a driver configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid protocol timing: {0}")]
pub struct DriverConfigError(&'static str);

impl DriverConfig {
    /// Refuses settings that cannot work together.
    pub fn validate(&self) -> Result<(), DriverConfigError> {
        if self.resend_interval_ms == 0 || self.propose_retry_ms == 0 {
            return Err(DriverConfigError("retry intervals must be positive"));
        }
        if self.inquiry_grace_ms < self.resend_interval_ms {
            return Err(DriverConfigError(
                "inquiry grace must be at least one resend interval",
            ));
        }
        if self.duties_per_tick_max == 0 {
            return Err(DriverConfigError("duties per tick must be positive"));
        }
        Ok(())
    }
}

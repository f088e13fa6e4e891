//! Transfers: ordering one, asking after one, issuing float, reversing one by its receipt.

use std::time::{Duration, Instant};

use tuma_actors::account::{AccountRef, SystemAccount};
use tuma_actors::ledger::{OutgoingState, Receipt};
use tuma_actors::money::Money;
use tuma_actors::outcome::ResultCode;
use tuma_actors::pin::Pin;
use tuma_actors::roles::Role;
use tuma_actors::transfer::{PinVerdict, TransferId, TransferKind, TransferRequest};
use tuma_actors::txn_id::TransactionId;
use tuma_cluster::engine::{ClientReply, ClientRequest};

use crate::{is_failed_attempt, unix_ms, Service, ServiceError};

/// How long past its deadline a caller waits for the payer shard's decision (its sweeper's).
const DECISION_GRACE: Duration = Duration::from_secs(3);
/// Reads give up after this long.
pub(crate) const READ_DEADLINE: Duration = Duration::from_secs(10);
/// Operator transfers (float issue, reversals) wait this long for a decision.
const OPERATOR_WAIT: Duration = Duration::from_secs(15);

/// A transfer as a channel orders it.
#[derive(Clone, Debug)]
pub struct TransferOrder {
    /// The caller's idempotency key: the same id with the same content answers the first
    /// outcome; with other content it is refused (`IdempotencyConflict`).
    pub id: TransferId,
    pub kind: TransferKind,
    pub from: AccountRef,
    pub to: AccountRef,
    pub amount: Money,
    pub account_reference: Option<String>,
    /// The payer's PIN, verified by the payer shard's leader, for kinds that need one.
    pub pin: Option<Pin>,
    /// How long the caller waits: the transfer's deadline is this far from now.
    pub wait: Duration,
    pub initiator: Role,
}

/// What became of an ordered transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    /// Decided: the receipt says confirmed or failed, and why.
    Decided { receipt: Receipt, retries: u32 },
    /// No decision reached the caller in time. It may still commit or abort: ask again with
    /// the same id (or [`Service::transfer_status`]) to learn which.
    Undecided { retries: u32 },
}

/// A transfer looked up by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferStatus {
    Decided(Receipt),
    /// Recorded and not decided yet.
    Pending,
    /// No shard that was asked knows it.
    Unknown,
}

impl Service {
    /// Orders a transfer and waits for its decision (up to `order.wait` plus the time the
    /// payer shard needs to decide at the deadline). Retries across leader changes with the
    /// same id, so it happens at most once.
    pub async fn transfer(&self, order: TransferOrder) -> Result<TransferOutcome, ServiceError> {
        self.transfer_from(order, None).await
    }

    /// [`Service::transfer`] for a caller at `source` (a channel's remote address): failed
    /// attempts are charged to the payer's budget and the source's, and an attempt is turned
    /// away unsubmitted while either is spent ([`ServiceError::TooManyAttempts`]).
    pub async fn transfer_from(
        &self,
        order: TransferOrder,
        source: Option<std::net::IpAddr>,
    ) -> Result<TransferOutcome, ServiceError> {
        let payer = order.from.clone();
        if let Some(retry_after) = self.attempts.wait(&payer, source, unix_ms()) {
            metrics::counter!("tuma_attempts_turned_away_total").increment(1);
            return Err(ServiceError::TooManyAttempts { retry_after });
        }
        let outcome = match self.check_payee(&order).await {
            Ok(()) => self.submit_order(order).await,
            Err(refused) => Err(refused),
        };
        let failed = match &outcome {
            Ok(TransferOutcome::Decided { receipt, .. }) => is_failed_attempt(receipt.result),
            Err(ServiceError::Refused(code)) => is_failed_attempt(*code),
            _ => false,
        };
        if failed {
            self.attempts.charge(&payer, source, unix_ms());
        }
        outcome
    }

    async fn submit_order(&self, order: TransferOrder) -> Result<TransferOutcome, ServiceError> {
        let deadline = Instant::now() + order.wait + DECISION_GRACE;
        let pin = order.pin.as_ref().map(|p| p.reveal().to_string());
        let request = TransferRequest {
            id: order.id,
            kind: order.kind,
            from: order.from,
            to: order.to,
            amount: order.amount,
            account_reference: order.account_reference,
            pin: PinVerdict::Wrong, // the payer shard's leader puts its own verdict here
            deadline_ms: unix_ms() + order.wait.as_millis() as u64,
            initiator: order.initiator,
            reverses: None,
        };
        self.submit_transfer(request, pin, deadline).await
    }

    pub(crate) async fn submit_transfer(
        &self,
        request: TransferRequest,
        pin: Option<String>,
        deadline: Instant,
    ) -> Result<TransferOutcome, ServiceError> {
        let (reply, retries) = self
            .calls
            .call(ClientRequest::Transfer { request, pin }, deadline)
            .await;
        match reply {
            ClientReply::Receipt(receipt) => Ok(TransferOutcome::Decided { receipt, retries }),
            ClientReply::Refused(code) => Err(ServiceError::Refused(code)),
            _ => Ok(TransferOutcome::Undecided { retries }),
        }
    }

    /// The transfer with this id: asks the payer's shard when `payer` is given, else every
    /// shard.
    pub async fn transfer_status(
        &self,
        id: &TransferId,
        payer: Option<&AccountRef>,
    ) -> Result<TransferStatus, ServiceError> {
        let map = self.handle().shard_map();
        let shards: Vec<u32> = match payer {
            Some(payer) => vec![map.shard_of(payer)],
            None => (0..map.shard_count()).collect(),
        };
        let deadline = Instant::now() + READ_DEADLINE;
        let replies = futures::future::join_all(shards.into_iter().map(|shard| {
            self.calls.call(
                ClientRequest::TransferStatus {
                    shard,
                    id: id.clone(),
                    payer: payer.cloned(),
                },
                deadline,
            )
        }))
        .await;
        let mut status = TransferStatus::Unknown;
        for (reply, _) in replies {
            match reply {
                ClientReply::Receipt(receipt) => return Ok(TransferStatus::Decided(receipt)),
                ClientReply::InProgress => status = TransferStatus::Pending,
                ClientReply::UnknownTransfer => {}
                other => return Err(ServiceError::no_answer("a shard did not answer", &other)),
            }
        }
        Ok(status)
    }

    /// Issues new e-money (float) to an agent or business from its shard's issuer account.
    pub async fn issue_float(
        &self,
        id: TransferId,
        to: AccountRef,
        amount: Money,
    ) -> Result<Receipt, ServiceError> {
        let shard = self.handle().shard_map().shard_of(&to);
        let request = TransferRequest {
            id,
            kind: TransferKind::FloatIssue,
            from: AccountRef::System(SystemAccount::Issuer(shard)),
            to,
            amount,
            account_reference: None,
            pin: PinVerdict::NotRequired,
            deadline_ms: unix_ms() + OPERATOR_WAIT.as_millis() as u64,
            initiator: Role::Operator,
            reverses: None,
        };
        let deadline = Instant::now() + OPERATOR_WAIT;
        match self.submit_transfer(request, None, deadline).await? {
            TransferOutcome::Decided { receipt, .. } if receipt.result.is_success() => Ok(receipt),
            TransferOutcome::Decided { receipt, .. } => Err(ServiceError::Refused(receipt.result)),
            TransferOutcome::Undecided { .. } => Err(ServiceError::Unavailable(
                "no decision in time; retry with the same request_id".into(),
            )),
        }
    }

    /// The history rows of a finished transfer by its receipt (payer's first), for the
    /// whole history; empty when the shard that issued it has no such receipt.
    pub async fn receipt(
        &self,
        txn_id: TransactionId,
    ) -> Result<Vec<tuma_actors::ledger::HistoryRow>, ServiceError> {
        let shard = self.receipt_shard(&txn_id)?;
        match self
            .calls
            .call(
                ClientRequest::Receipt { shard, txn_id },
                Instant::now() + READ_DEADLINE,
            )
            .await
            .0
        {
            ClientReply::History(rows) => Ok(rows),
            other => Err(ServiceError::no_answer("no answer", &other)),
        }
    }

    /// The shard a receipt names (the original payer's).
    pub(crate) fn receipt_shard(&self, txn_id: &TransactionId) -> Result<u32, ServiceError> {
        txn_id
            .decode()
            .map(|(shard, _)| shard)
            .filter(|shard| *shard < self.shard_count())
            .ok_or_else(|| {
                ServiceError::invalid("transaction_id", "not a receipt this cluster issued")
            })
    }

    /// Care reverses a confirmed transfer by its receipt: a new transfer (`id`) from the
    /// original payee back to the original payer for the same amount (the fee is not
    /// refunded), refused if the payee no longer holds the money, at most once per receipt.
    pub async fn reverse(
        &self,
        id: TransferId,
        txn_id: TransactionId,
    ) -> Result<TransferOutcome, ServiceError> {
        // The receipt names the shard that issued it: the original payer's.
        let shard = self.receipt_shard(&txn_id)?;
        let deadline = Instant::now() + OPERATOR_WAIT;
        let original = match self
            .calls
            .call(ClientRequest::TransferByReceipt { shard, txn_id }, deadline)
            .await
            .0
        {
            ClientReply::Transfer(Some(record)) if record.state == OutgoingState::Committed => {
                record
            }
            ClientReply::Transfer(_) => {
                return Err(ServiceError::Refused(ResultCode::NotReversible))
            }
            other => return Err(ServiceError::no_answer("no answer", &other)),
        };
        let request = TransferRequest {
            id,
            kind: TransferKind::Reversal,
            from: original.ledger_payee.clone(),
            to: original.request.from.clone(),
            amount: original.request.amount,
            account_reference: None,
            pin: PinVerdict::NotRequired,
            deadline_ms: unix_ms() + OPERATOR_WAIT.as_millis() as u64,
            initiator: Role::Care,
            reverses: Some(txn_id),
        };
        self.submit_transfer(request, None, deadline).await
    }
}

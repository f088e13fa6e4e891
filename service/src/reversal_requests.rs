//! Payers' reversal requests (filed from a forwarded confirmation SMS) and care's decision.

use std::time::Instant;

use tuma_actors::ledger::{Command, ReversalRequest};
use tuma_actors::msisdn::Msisdn;
use tuma_actors::transfer::TransferId;
use tuma_actors::txn_id::TransactionId;
use tuma_cluster::engine::{ClientReply, ClientRequest};

use crate::transfers::READ_DEADLINE;
use crate::{Service, ServiceError, TransferOutcome};

impl Service {
    /// Files `by`'s request to reverse their transfer `txn_id` on its shard (filing it again
    /// changes nothing). Refused unless `by` paid it, it is committed, not reversed, and still
    /// within the idempotency window.
    pub async fn request_reversal(
        &self,
        txn_id: TransactionId,
        by: Msisdn,
    ) -> Result<(), ServiceError> {
        let shard = self.receipt_shard(&txn_id)?;
        self.command(shard, Command::RequestReversal { txn_id, by })
            .await
    }

    /// Every shard's open reversal requests.
    pub async fn reversal_requests(
        &self,
    ) -> Result<Vec<(TransactionId, ReversalRequest)>, ServiceError> {
        let mut all = Vec::new();
        for shard in 0..self.shard_count() {
            let request = ClientRequest::ReversalRequests { shard };
            match self
                .calls
                .call(request, Instant::now() + READ_DEADLINE)
                .await
                .0
            {
                ClientReply::ReversalRequests(open) => all.extend(open),
                other => return Err(ServiceError::no_answer("no answer", &other)),
            }
        }
        Ok(all)
    }

    /// The open request for `txn_id`, if there is one.
    pub async fn reversal_request(
        &self,
        txn_id: TransactionId,
    ) -> Result<Option<ReversalRequest>, ServiceError> {
        let shard = self.receipt_shard(&txn_id)?;
        let request = ClientRequest::ReversalRequests { shard };
        match self
            .calls
            .call(request, Instant::now() + READ_DEADLINE)
            .await
            .0
        {
            ClientReply::ReversalRequests(open) => {
                Ok(open.into_iter().find(|(t, _)| *t == txn_id).map(|(_, r)| r))
            }
            other => Err(ServiceError::no_answer("no answer", &other)),
        }
    }

    /// Care approves: the reversal runs (today's reversal path, under an id derived from the
    /// receipt, so approving twice reverses once), then the request is closed whatever the
    /// reversal's outcome.
    pub async fn approve_reversal(
        &self,
        txn_id: TransactionId,
    ) -> Result<TransferOutcome, ServiceError> {
        let id = TransferId::parse(&format!("reversal-request-{txn_id}"))
            .expect("a receipt makes a valid transfer id");
        let outcome = self.reverse(id, txn_id).await;
        if matches!(
            outcome,
            Ok(TransferOutcome::Decided { .. }) | Err(ServiceError::Refused(_))
        ) {
            self.close_reversal_request(txn_id).await?;
        }
        outcome
    }

    /// Care declines (or the request was dealt with): it is closed.
    pub async fn close_reversal_request(&self, txn_id: TransactionId) -> Result<(), ServiceError> {
        let shard = self.receipt_shard(&txn_id)?;
        self.command(shard, Command::CloseReversalRequest { txn_id })
            .await
    }
}

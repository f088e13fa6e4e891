//! Reversal requests: a payer asks (by forwarding the confirmation SMS) for a committed
//! transfer to be reversed; the request waits on the payer's shard until care approves it (the
//! reversal itself is then an ordinary `Reversal` transfer) or declines it.

use serde::{Deserialize, Serialize};

use crate::account::AccountRef;
use crate::money::Money;
use crate::msisdn::Msisdn;
use crate::outcome::ResultCode;
use crate::txn_id::TransactionId;

use super::command::Applied;
use super::records::{OutgoingState, ReversalMark};
use super::ShardLedger;

/// Most open requests one shard keeps; more are refused as `Overloaded`.
pub const REVERSAL_REQUESTS_MAX: usize = 10_000;

/// An open request, as filed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReversalRequest {
    pub requested_by: Msisdn,
    /// The entry's timestamp.
    pub requested_ms: u64,
    pub amount: Money,
    pub payee: AccountRef,
    pub payee_name: Option<String>,
}

impl ShardLedger {
    /// Files a request to reverse the committed transfer `txn_id`, by its payer `by`. Filing
    /// the same request again changes nothing.
    pub(super) fn request_reversal(
        &mut self,
        txn_id: TransactionId,
        by: &Msisdn,
        timestamp_ms: u64,
    ) -> Applied {
        if let Some(open) = self.state.reversal_requests.get(&txn_id) {
            let code = if open.requested_by == *by {
                ResultCode::Success
            } else {
                ResultCode::NotPermitted
            };
            return Applied::Admin(code);
        }
        let Some(record) = self.outgoing_by_receipt(&txn_id) else {
            // Unknown here, or finished longer ago than the idempotency window.
            return Applied::Admin(ResultCode::NotReversible);
        };
        if record.request.from != AccountRef::Customer(*by) {
            return Applied::Admin(ResultCode::NotPermitted);
        }
        if record.state != OutgoingState::Committed || record.reversal != ReversalMark::None {
            return Applied::Admin(ResultCode::NotReversible);
        }
        if self.state.reversal_requests.len() >= REVERSAL_REQUESTS_MAX {
            return Applied::Admin(ResultCode::Overloaded);
        }
        let request = ReversalRequest {
            requested_by: *by,
            requested_ms: timestamp_ms,
            amount: record.request.amount,
            payee: record.request.to.clone(),
            payee_name: record.payee_name.clone(),
        };
        self.state.reversal_requests.insert(txn_id, request);
        Applied::Admin(ResultCode::Success)
    }

    /// Care approved (and ran) or declined a request: it is closed.
    pub(super) fn close_reversal_request(&mut self, txn_id: &TransactionId) -> Applied {
        self.state.reversal_requests.remove(txn_id);
        Applied::Admin(ResultCode::Success)
    }

    /// Open reversal requests, oldest receipt first.
    pub fn reversal_requests(&self) -> impl Iterator<Item = (&TransactionId, &ReversalRequest)> {
        self.state.reversal_requests.iter()
    }
}

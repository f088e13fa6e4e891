//! `POST /admin/v1/reversals`: care reverses a confirmed transfer by its receipt. The reversal is
//! a new transfer from the original payee back to the original payer, for the same amount
//! (the fee is not refunded), refused if the payee no longer holds the money, at most once.

use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use tuma_actors::ledger::OutgoingState;
use tuma_actors::outcome::ResultCode;
use tuma_actors::roles::Role;
use tuma_actors::transfer::{PinVerdict, TransferId, TransferKind, TransferRequest};
use tuma_actors::txn_id::TransactionId;
use tuma_cluster::engine::{ClientReply, ClientRequest};

use super::admin::authorize;
use super::app::{receipt_json, unix_ms};
use super::error::ApiError;
use super::ApiState;

const REVERSAL_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
pub struct ReversalIn {
    request_id: String,
    transaction_id: String,
}

pub async fn reverse(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<ReversalIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers)?;
    let Json(body) = body?;
    let id = TransferId::parse(&body.request_id)
        .map_err(|e| ApiError::field("request_id", e.to_string()))?;
    let txn_id = TransactionId::parse(&body.transaction_id)
        .map_err(|e| ApiError::field("transaction_id", e.to_string()))?;
    // The receipt names the shard that issued it: the original payer's.
    let (shard, _) = txn_id
        .decode()
        .ok_or_else(|| ApiError::field("transaction_id", "not a receipt this cluster issued"))?;
    if shard >= state.calls.handle.shard_map().shard_count() {
        return Err(ApiError::field(
            "transaction_id",
            "not a receipt this cluster issued",
        ));
    }
    let deadline = Instant::now() + REVERSAL_DEADLINE;
    let original = match state
        .calls
        .call(ClientRequest::TransferByReceipt { shard, txn_id }, deadline)
        .await
        .0
    {
        ClientReply::Transfer(Some(record)) if record.state == OutgoingState::Committed => record,
        ClientReply::Transfer(_) => return Err(ApiError::from_code(ResultCode::NotReversible)),
        other => {
            return Err(ApiError::unavailable(format!(
                "no answer: {}",
                other.describe()
            )))
        }
    };
    let request = TransferRequest {
        id,
        kind: TransferKind::Reversal,
        from: original.ledger_payee.clone(),
        to: original.request.from.clone(),
        amount: original.request.amount,
        account_reference: None,
        pin: PinVerdict::NotRequired,
        deadline_ms: unix_ms() + REVERSAL_DEADLINE.as_millis() as u64,
        initiator: Role::Care,
        reverses: Some(txn_id),
    };
    match state
        .calls
        .call(ClientRequest::Transfer { request, pin: None }, deadline)
        .await
    {
        (ClientReply::Receipt(receipt), retries) => Ok(Json(receipt_json(&receipt, retries))),
        (ClientReply::Refused(code), _) => Err(ApiError::from_code(code)),
        (other, _) => Err(ApiError::unavailable(format!(
            "no decision: {}",
            other.describe()
        ))),
    }
}

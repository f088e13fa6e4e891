//! `POST /admin/v1/reversals`: care reverses a confirmed transfer by its receipt. The reversal is
//! a new transfer from the original payee back to the original payer, for the same amount
//! (the fee is not refunded), refused if the payee no longer holds the money, at most once.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use tuma_actors::transfer::TransferId;
use tuma_actors::txn_id::TransactionId;
use tuma_service::TransferOutcome;

use super::admin::authorize;
use super::app::receipt_json;
use super::error::ApiError;
use super::ApiState;

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
    match state.service.reverse(id, txn_id).await? {
        TransferOutcome::Decided { receipt, retries } => Ok(Json(receipt_json(&receipt, retries))),
        TransferOutcome::Undecided { .. } => Err(ApiError::unavailable(
            "no decision in time; retry with the same request_id",
        )),
    }
}

//! `POST /admin/v1/reversals`: care reverses a confirmed transfer by its receipt. The reversal is
//! a new transfer from the original payee back to the original payer, for the same amount
//! (the fee is not refunded), refused if the payee no longer holds the money, at most once.
//!
//! `/admin/v1/reversal-requests`: the requests customers filed by forwarding a confirmation to
//! 456, and care's approval (the same reversal) or decline; the customer is texted either way.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tuma_actors::transfer::TransferId;
use tuma_actors::txn_id::TransactionId;
use tuma_channels::sms::reversals;
use tuma_service::TransferOutcome;

use super::access::{authorize, Permission};
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
    authorize(&state, &headers, Permission::Reverse)?;
    let Json(body) = body?;
    let id = TransferId::parse(&body.request_id)
        .map_err(|e| ApiError::field("request_id", e.to_string()))?;
    let txn_id = TransactionId::parse(&body.transaction_id)
        .map_err(|e| ApiError::field("transaction_id", e.to_string()))?;
    let outcome = state.service.reverse(id, txn_id).await?;
    reversal_answer(
        outcome,
        "no decision in time; retry with the same request_id",
    )
}

/// A reversal's receipt, or 503 saying how to learn the outcome.
fn reversal_answer(
    outcome: TransferOutcome,
    undecided: &'static str,
) -> Result<Json<serde_json::Value>, ApiError> {
    match outcome {
        TransferOutcome::Decided { receipt, retries } => Ok(Json(receipt_json(&receipt, retries))),
        TransferOutcome::Undecided { .. } => Err(ApiError::unavailable(undecided)),
    }
}

/// `GET /admin/v1/reversal-requests`: every open request customers filed by SMS.
pub async fn reversal_requests(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ReadAccounts)?;
    let open: Vec<_> = state
        .service
        .reversal_requests()
        .await?
        .into_iter()
        .map(|(txn_id, request)| {
            json!({
                "transaction_id": txn_id.to_string(),
                "requested_by": request.requested_by.as_str(),
                "requested_ms": request.requested_ms,
                "amount": request.amount.to_decimal_string(),
                "payee": request.payee.to_string(),
                "payee_name": request.payee_name,
            })
        })
        .collect();
    Ok(Json(json!({ "requests": open })))
}

fn receipt_path(text: &str) -> Result<TransactionId, ApiError> {
    TransactionId::parse(text).map_err(|e| ApiError::field("transaction_id", e.to_string()))
}

/// `POST /admin/v1/reversal-requests/{transaction_id}/approve`: the reversal runs (the
/// customer gets its confirmation, or a text saying why it could not be done).
pub async fn approve_reversal_request(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(txn): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::Reverse)?;
    let txn_id = receipt_path(&txn)?;
    let (decision, customer) = reversals::approve(&state.service, txn_id).await?;
    if let Some(text) = decision.text {
        notify(&state, &customer, text);
    }
    reversal_answer(
        decision.outcome?,
        "no decision in time; approve again to learn the outcome (it reverses once)",
    )
}

/// `POST /admin/v1/reversal-requests/{transaction_id}/decline`: closed; the customer is told.
pub async fn decline_reversal_request(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(txn): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::Reverse)?;
    let txn_id = receipt_path(&txn)?;
    let (text, customer) = reversals::decline(&state.service, txn_id).await?;
    notify(&state, &customer, text);
    Ok(Json(
        json!({ "transaction_id": txn_id.to_string(), "status": "declined" }),
    ))
}

fn notify(state: &ApiState, to: &tuma_actors::msisdn::Msisdn, text: String) {
    if let Err(error) = state.sms.notify(to, text) {
        tracing::error!(%error, "cannot text the customer about their reversal request");
    }
}

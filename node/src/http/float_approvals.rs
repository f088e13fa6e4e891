//! `/admin/v1/float/approvals`: float issues above `--float-approval-above` wait here until a
//! second caller with the right to issue float — not the one who asked — approves or declines.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use tuma_actors::money::Money;
use tuma_service::float_approvals::{Decision, FloatRequest};

use super::access::{authorize, Permission};
use super::error::ApiError;
use super::ApiState;

/// A request as the admin API shows it.
pub fn request_json(request: &FloatRequest) -> Value {
    let mut body = json!({
        "request_id": request.request_id,
        "account": request.account,
        "amount": Money::from_cents(request.amount_cents).to_decimal_string(),
        "requested_by": request.requested_by,
        "requested_unix_ms": request.requested_unix_ms,
    });
    let (status, decided) = match &request.decision {
        Decision::Pending => ("awaiting_approval", None),
        Decision::Approved { by, unix_ms } => ("approved", Some((by, unix_ms))),
        Decision::Declined { by, unix_ms } => ("declined", Some((by, unix_ms))),
    };
    body["status"] = json!(status);
    if let Some((by, unix_ms)) = decided {
        body["decided_by"] = json!(by);
        body["decided_unix_ms"] = json!(unix_ms);
    }
    body
}

/// `GET /admin/v1/float/approvals`: waiting requests first, then the decided ones kept.
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Permission::ReadAudit)?;
    let (approvals, _) = state.service.float_approvals().await?;
    let mut requests: Vec<&FloatRequest> = approvals.requests.values().collect();
    requests.sort_by_key(|r| (r.decision != Decision::Pending, r.requested_unix_ms));
    let listed: Vec<Value> = requests.into_iter().map(request_json).collect();
    Ok(Json(json!({ "requests": listed })))
}

/// `POST /admin/v1/float/approvals/{request_id}/approve`: the float is issued under the
/// request's id.
pub async fn approve(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(state, headers, request_id, true).await
}

/// `POST /admin/v1/float/approvals/{request_id}/decline`: nothing is issued.
pub async fn decline(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    decide(state, headers, request_id, false).await
}

async fn decide(
    state: ApiState,
    headers: HeaderMap,
    request_id: String,
    approve: bool,
) -> Result<Json<Value>, ApiError> {
    let caller = authorize(&state, &headers, Permission::Float)?;
    let (request, receipt) = state
        .service
        .decide_float(&request_id, &caller.name(), approve)
        .await?;
    let mut body = request_json(&request);
    if let Some(receipt) = receipt {
        body["transaction_id"] = json!(receipt.txn_id.map(|t| t.to_string()));
    }
    Ok(Json(body))
}

//! The customer's side of a payment prompt in the app channel:
//! - `GET /v1/prompts?msisdn=2547…` → `{"prompts":[…]}`: the prompt waiting for the customer
//!   (business name, amount, account reference, when it expires), or none;
//! - `POST /v1/prompts/{CheckoutRequestID}` with `{"pin":"1234"}` accepts (the payment runs
//!   and its receipt is answered as `POST /v1/transfers` answers it: 200 with the receipt, 504
//!   `"status":"unknown"` when not decided in time — send it again to learn the outcome) or
//!   `{"decline":true}` declines. `"msisdn"` in the body is optional: it saves asking every
//!   shard for the prompt.
//!
//! These answer in the app channel's JSON (`{"error","result"}` on failure, `result` naming
//! the ledger's refusal), not in Daraja's envelope: they are the customer's phone talking.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tuma_actors::ledger::{Prompt, PromptState};
use tuma_actors::msisdn::Msisdn;
use tuma_actors::pin::Pin;
use tuma_service::{ServiceError, TransferOutcome};

use crate::Daraja;

/// An app-channel error: `{"error": text, "result": name}` with an HTTP status.
pub(crate) struct AppError(StatusCode, &'static str, String);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.2, "result": self.1}))).into_response()
    }
}

fn invalid(field: &str, message: &str) -> AppError {
    AppError(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        format!("{field}: {message}"),
    )
}

fn from_service(error: ServiceError) -> AppError {
    match error {
        ServiceError::Refused(code) => AppError(
            StatusCode::UNPROCESSABLE_ENTITY,
            code.name(),
            code.description().to_string(),
        ),
        ServiceError::TooManyAttempts { .. } => AppError(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            error.to_string(),
        ),
        other => AppError(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            other.to_string(),
        ),
    }
}

fn prompt_json(prompt: &Prompt) -> Value {
    let request = &prompt.request;
    let state = match &prompt.state {
        PromptState::Waiting => "waiting",
        PromptState::Paying => "paying",
        PromptState::Closed { .. } => "closed",
    };
    json!({
        "checkout_request_id": request.checkout_id,
        "business": request.business.as_str(),
        "business_name": request.business_name,
        "kind": request.kind.name(),
        "amount": request.amount.to_decimal_string(),
        "account_reference": request.account_reference,
        "expires_at_ms": request.expires_ms,
        "state": state,
    })
}

#[derive(Deserialize)]
pub(crate) struct WaitingQuery {
    msisdn: String,
}

pub(crate) async fn waiting(
    State(daraja): State<Daraja>,
    Query(query): Query<WaitingQuery>,
) -> Result<Json<Value>, AppError> {
    let customer = Msisdn::parse(&query.msisdn).map_err(|e| invalid("msisdn", &e.to_string()))?;
    let prompt = daraja
        .service()
        .waiting_prompt(&customer)
        .await
        .map_err(from_service)?;
    let prompts: Vec<Value> = prompt.iter().map(prompt_json).collect();
    Ok(Json(json!({ "prompts": prompts })))
}

#[derive(Deserialize)]
pub(crate) struct AnswerIn {
    pin: Option<String>,
    #[serde(default)]
    decline: bool,
    msisdn: Option<String>,
}

pub(crate) async fn answer(
    State(daraja): State<Daraja>,
    Path(checkout_id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Json<AnswerIn>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let Json(body) = body.map_err(|e| invalid("body", &e.body_text()))?;
    if !tuma_actors::ledger::valid_checkout_id(&checkout_id) {
        return Err(invalid("checkout_request_id", "not a checkout request id"));
    }
    let customer = body
        .msisdn
        .as_deref()
        .map(Msisdn::parse)
        .transpose()
        .map_err(|e| invalid("msisdn", &e.to_string()))?;
    let prompt = daraja
        .service()
        .prompt(&checkout_id, customer.as_ref())
        .await
        .map_err(from_service)?
        .ok_or_else(|| {
            AppError(
                StatusCode::NOT_FOUND,
                "unknown_prompt",
                "no such payment request".into(),
            )
        })?;
    match (body.decline, body.pin) {
        (true, None) => {
            daraja
                .service()
                .decline_prompt(&checkout_id, prompt.request.customer)
                .await
                .map_err(from_service)?;
            let declined = json!({"status": "declined", "checkout_request_id": checkout_id});
            Ok((StatusCode::OK, Json(declined)))
        }
        (false, Some(pin)) => {
            let pin = Pin::parse(&pin).map_err(|e| invalid("pin", &e.to_string()))?;
            let outcome = daraja
                .service()
                .accept_prompt(&prompt, pin, Some(peer.ip()))
                .await
                .map_err(from_service)?;
            Ok(match outcome {
                TransferOutcome::Decided { receipt, retries } => {
                    let status = if receipt.result.is_success() {
                        "confirmed"
                    } else {
                        "failed"
                    };
                    let answer = json!({
                        "request_id": receipt.id.as_str(),
                        "transaction_id": receipt.txn_id.map(|t| t.to_string()),
                        "status": status,
                        "result_code": receipt.result.code(),
                        "result": receipt.result.name(),
                        "description": receipt.result.description(),
                        "fee": receipt.fee.to_decimal_string(),
                        "balance": receipt.balance.to_decimal_string(),
                        "payee_name": receipt.payee_name,
                        "retries": retries,
                        "checkout_request_id": checkout_id,
                    });
                    (StatusCode::OK, Json(answer))
                }
                TransferOutcome::Undecided { retries } => {
                    let answer = json!({
                        "request_id": prompt.payment().as_str(),
                        "status": "unknown",
                        "error": "no decision before the deadline; send the answer again to learn the outcome",
                        "retries": retries,
                        "checkout_request_id": checkout_id,
                    });
                    (StatusCode::GATEWAY_TIMEOUT, Json(answer))
                }
            })
        }
        _ => Err(invalid(
            "body",
            "give either {\"pin\": \"…\"} to pay or {\"decline\": true}",
        )),
    }
}

//! The customer's side of an M-Pesa Express prompt, in the app channel:
//! - `GET /v1/prompts?msisdn=2547…` → `{"prompts":[…]}`: the prompt waiting for the customer
//!   (business name, amount, account reference, when it expires), or none;
//! - `POST /v1/prompts/{CheckoutRequestID}` with `{"pin":"1234"}` pays (answered as
//!   `POST /v1/transfers` answers: 200 with the receipt, 504 `"status":"unknown"` when not
//!   decided in time — send it again to learn the outcome) or `{"decline":true}` declines.
//!   `"msisdn"` in the body is optional: it saves asking every shard for the prompt.
//!
//! The business's side (the push, the query, the callbacks) is the `tuma-daraja` crate's.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tuma_actors::ledger::{valid_checkout_id, Prompt, PromptState};
use tuma_actors::msisdn::Msisdn;
use tuma_service::TransferOutcome;

use super::admin::pin_field;
use super::app::{receipt_json, undecided_json};
use super::error::ApiError;
use super::ApiState;

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

fn msisdn_field(text: &str) -> Result<Msisdn, ApiError> {
    Msisdn::parse(text).map_err(|e| ApiError::field("msisdn", e.to_string()))
}

#[derive(Deserialize)]
pub struct WaitingQuery {
    msisdn: String,
}

pub async fn waiting(
    State(state): State<ApiState>,
    Query(query): Query<WaitingQuery>,
) -> Result<Json<Value>, ApiError> {
    let customer = msisdn_field(&query.msisdn)?;
    let prompt = state.service.waiting_prompt(&customer).await?;
    let prompts: Vec<Value> = prompt.iter().map(prompt_json).collect();
    Ok(Json(json!({ "prompts": prompts })))
}

#[derive(Deserialize)]
pub struct AnswerIn {
    pin: Option<String>,
    #[serde(default)]
    decline: bool,
    msisdn: Option<String>,
}

pub async fn answer(
    State(state): State<ApiState>,
    Path(checkout_id): Path<String>,
    caller: Option<ConnectInfo<SocketAddr>>,
    body: Result<Json<AnswerIn>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body?;
    if !valid_checkout_id(&checkout_id) {
        return Err(ApiError::field(
            "checkout_request_id",
            "not a checkout request id",
        ));
    }
    let customer = body.msisdn.as_deref().map(msisdn_field).transpose()?;
    let prompt = state
        .service
        .prompt(&checkout_id, customer.as_ref())
        .await?
        .ok_or_else(|| ApiError::not_found("no such payment request"))?;
    match (body.decline, body.pin) {
        (true, None) => {
            let by = prompt.request.customer;
            state.service.decline_prompt(&checkout_id, by).await?;
            let declined = json!({"status": "declined", "checkout_request_id": checkout_id});
            Ok((StatusCode::OK, Json(declined)))
        }
        (false, Some(pin)) => {
            let pin = pin_field(&pin)?;
            let source = caller.map(|ConnectInfo(address)| address.ip());
            let (status, mut answer) =
                match state.service.accept_prompt(&prompt, pin, source).await? {
                    TransferOutcome::Decided { receipt, retries } => {
                        (StatusCode::OK, receipt_json(&receipt, retries))
                    }
                    TransferOutcome::Undecided { retries } => (
                        StatusCode::GATEWAY_TIMEOUT,
                        undecided_json(&prompt.payment(), retries),
                    ),
                };
            answer["checkout_request_id"] = json!(checkout_id);
            Ok((status, Json(answer)))
        }
        _ => Err(ApiError::bad_request(
            "give either {\"pin\": \"…\"} to pay or {\"decline\": true}",
        )),
    }
}

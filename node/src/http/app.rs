//! `/v1/…`: the app channel for customers and agents.

use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tuma_actors::account::AccountRef;
use tuma_actors::ledger::{Command, Receipt};
use tuma_actors::money::Money;
use tuma_actors::msisdn::Msisdn;
use tuma_actors::outcome::ResultCode;
use tuma_actors::roles::Role;
use tuma_actors::transfer::{
    PinVerdict, TransferId, TransferKind, TransferRequest, ACCOUNT_REFERENCE_LEN_MAX,
};
use tuma_cluster::engine::{ClientReply, ClientRequest};

use super::admin::pin_field;
use super::error::ApiError;
use super::ApiState;

/// Kinds the app channel accepts.
const APP_KINDS: [TransferKind; 6] = [
    TransferKind::SendMoney,
    TransferKind::CashIn,
    TransferKind::CashOut,
    TransferKind::PayBill,
    TransferKind::BuyGoods,
    TransferKind::BuyAirtime,
];
const DEADLINE_MS_DEFAULT: u64 = 15_000;
const DEADLINE_MS_MIN: u64 = 100;
const DEADLINE_MS_MAX: u64 = 120_000;
/// How long past its deadline a caller waits for the payer shard's decision (the sweeper's).
const DECISION_GRACE: Duration = Duration::from_secs(3);
const READ_DEADLINE: Duration = Duration::from_secs(10);

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A positive decimal amount with at most two places.
pub fn amount_field(text: &str) -> Result<Money, ApiError> {
    let amount = Money::parse(text).map_err(|e| ApiError::field("amount", e.to_string()))?;
    if !amount.is_positive() {
        return Err(ApiError::field(
            "amount",
            "amount must be greater than zero",
        ));
    }
    Ok(amount)
}

#[derive(Deserialize)]
pub struct TransferIn {
    request_id: String,
    kind: String,
    from: String,
    to: String,
    amount: String,
    account_reference: Option<String>,
    pin: String,
    /// How long the caller will wait, in ms from now (default 15000).
    deadline_ms: Option<u64>,
}

fn parse_transfer(body: &TransferIn, now_ms: u64) -> Result<(TransferRequest, u64), ApiError> {
    let id = TransferId::parse(&body.request_id)
        .map_err(|e| ApiError::field("request_id", e.to_string()))?;
    let kind = TransferKind::from_name(&body.kind)
        .filter(|k| APP_KINDS.contains(k))
        .ok_or_else(|| {
            let names: Vec<&str> = APP_KINDS.iter().map(|k| k.name()).collect();
            ApiError::field(
                "kind",
                format!(
                    "unknown kind {:?}; expected one of {}",
                    body.kind,
                    names.join(", ")
                ),
            )
        })?;
    let from = AccountRef::parse(&body.from).map_err(|e| ApiError::field("from", e.to_string()))?;
    let to = AccountRef::parse(&body.to).map_err(|e| ApiError::field("to", e.to_string()))?;
    let amount = amount_field(&body.amount)?;
    if let Some(reference) = &body.account_reference {
        if reference.chars().count() > ACCOUNT_REFERENCE_LEN_MAX
            || reference.chars().any(char::is_control)
        {
            return Err(ApiError::field("account_reference", format!("account_reference must be at most {ACCOUNT_REFERENCE_LEN_MAX} printable characters")));
        }
    }
    pin_field(&body.pin)?;
    let wait_ms = body.deadline_ms.unwrap_or(DEADLINE_MS_DEFAULT);
    if !(DEADLINE_MS_MIN..=DEADLINE_MS_MAX).contains(&wait_ms) {
        return Err(ApiError::field(
            "deadline_ms",
            format!("deadline_ms must be {DEADLINE_MS_MIN}..={DEADLINE_MS_MAX}"),
        ));
    }
    let initiator = if kind == TransferKind::CashIn {
        Role::Agent
    } else {
        Role::Customer
    };
    let request = TransferRequest {
        id,
        kind,
        from,
        to,
        amount,
        account_reference: body.account_reference.clone(),
        pin: PinVerdict::Wrong, // replaced by the leader's verdict
        deadline_ms: now_ms + wait_ms,
        initiator,
        reverses: None,
    };
    Ok((request, wait_ms))
}

pub fn receipt_json(receipt: &Receipt, retries: u32) -> Value {
    let confirmed = receipt.result.is_success();
    json!({
        "request_id": receipt.id.as_str(),
        "transaction_id": receipt.txn_id.map(|t| t.to_string()),
        "status": if confirmed { "confirmed" } else { "failed" },
        "result_code": receipt.result.code(),
        "result": receipt.result.name(),
        "description": receipt.result.description(),
        "fee": receipt.fee.to_decimal_string(),
        "balance": receipt.balance.to_decimal_string(),
        "payee_name": receipt.payee_name,
        "retries": retries,
    })
}

pub async fn create_transfer(
    State(state): State<ApiState>,
    body: Result<Json<TransferIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body?;
    let (request, wait_ms) = parse_transfer(&body, unix_ms())?;
    let id = request.id.clone();
    let deadline = Instant::now() + Duration::from_millis(wait_ms) + DECISION_GRACE;
    let (reply, retries) = state
        .calls
        .call(
            ClientRequest::Transfer {
                request,
                pin: Some(body.pin),
            },
            deadline,
        )
        .await;
    match reply {
        ClientReply::Receipt(receipt) => {
            Ok((StatusCode::OK, Json(receipt_json(&receipt, retries))))
        }
        ClientReply::Refused(code) => Err(ApiError::from_code(code)),
        _ => Ok((
            StatusCode::GATEWAY_TIMEOUT,
            Json(json!({
                "request_id": id.as_str(),
                "status": "unknown",
                "error": "no decision before the deadline; retry with the same request_id to learn the outcome",
                "retries": retries,
            })),
        )),
    }
}

#[derive(Deserialize)]
pub struct StatusQuery {
    from: Option<String>,
}

pub async fn transfer_status(
    State(state): State<ApiState>,
    Path(request_id): Path<String>,
    Query(query): Query<StatusQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let id =
        TransferId::parse(&request_id).map_err(|e| ApiError::field("request_id", e.to_string()))?;
    let map = state.calls.handle.shard_map();
    let shards: Vec<u32> = match &query.from {
        Some(from) => vec![map.shard_of(
            &AccountRef::parse(from).map_err(|e| ApiError::field("from", e.to_string()))?,
        )],
        None => (0..map.shard_count()).collect(),
    };
    let deadline = Instant::now() + READ_DEADLINE;
    let replies = futures::future::join_all(shards.into_iter().map(|shard| {
        state.calls.call(
            ClientRequest::TransferStatus {
                shard,
                id: id.clone(),
            },
            deadline,
        )
    }))
    .await;
    let mut pending = false;
    for (reply, _) in replies {
        match reply {
            ClientReply::Receipt(receipt) => return Ok(Json(receipt_json(&receipt, 0))),
            ClientReply::InProgress => pending = true,
            ClientReply::UnknownTransfer => {}
            other => {
                return Err(ApiError::unavailable(format!(
                    "a shard did not answer: {}",
                    other.describe()
                )))
            }
        }
    }
    if pending {
        Ok(Json(
            json!({ "request_id": id.as_str(), "status": "pending" }),
        ))
    } else {
        Err(ApiError::not_found(format!("no transfer {id}")))
    }
}

/// Verifies the `X-Tuma-Pin` header against the account's PIN and records the attempt.
async fn check_pin(
    state: &ApiState,
    headers: &HeaderMap,
    msisdn: &str,
) -> Result<AccountRef, ApiError> {
    let msisdn = Msisdn::parse(msisdn).map_err(|e| ApiError::field("msisdn", e.to_string()))?;
    let account = AccountRef::Customer(msisdn);
    let pin = pin_field(
        headers
            .get("x-tuma-pin")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    )?;
    let deadline = Instant::now() + READ_DEADLINE;
    let (reply, _) = state
        .calls
        .call(
            ClientRequest::Account {
                account: account.clone(),
            },
            deadline,
        )
        .await;
    let hash = match reply {
        ClientReply::Account(Some(a)) => a.pin.map(|p| p.hash),
        ClientReply::Account(None) => return Err(ApiError::from_code(ResultCode::UnknownAccount)),
        other => {
            return Err(ApiError::unavailable(format!(
                "no answer: {}",
                other.describe()
            )))
        }
    };
    let verdict = match hash {
        Some(hash) => match state.verify_pin(hash, pin).await {
            Ok(true) => PinVerdict::Verified,
            Ok(false) => PinVerdict::Wrong,
            Err(error) => {
                tracing::error!(%error, "cannot verify a PIN: check --pin-key-file on every node");
                return Err(ApiError::unavailable(format!(
                    "this node cannot verify the PIN: {error}"
                )));
            }
        },
        None => PinVerdict::Wrong,
    };
    let shard = state.calls.handle.shard_map().shard_of(&account);
    let command = Command::PinAttempt {
        account: account.clone(),
        verdict,
    };
    match state
        .calls
        .call_with(
            ClientRequest::Command { shard, command },
            deadline,
            super::calls::Repeat::AtMostOnce,
        )
        .await
        .0
    {
        ClientReply::Done(ResultCode::Success) => Ok(account),
        ClientReply::Done(code) => Err(ApiError::from_code(code)),
        other => Err(ApiError::unavailable(format!(
            "no answer: {}",
            other.describe()
        ))),
    }
}

pub async fn balance(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(msisdn): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let account = check_pin(&state, &headers, &msisdn).await?;
    let (reply, _) = state
        .calls
        .call(
            ClientRequest::Account {
                account: account.clone(),
            },
            Instant::now() + READ_DEADLINE,
        )
        .await;
    match reply {
        ClientReply::Account(Some(a)) => Ok(Json(json!({
            "msisdn": account.to_string(),
            "balance": a.balances.balance().to_decimal_string(),
            "available": a.balances.available().to_decimal_string(),
        }))),
        other => Err(ApiError::unavailable(format!(
            "no answer: {}",
            other.describe()
        ))),
    }
}

pub async fn statement(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(msisdn): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let account = check_pin(&state, &headers, &msisdn).await?;
    let request = ClientRequest::Statement {
        account: account.clone(),
        limit: 20,
    };
    match state
        .calls
        .call(request, Instant::now() + READ_DEADLINE)
        .await
        .0
    {
        ClientReply::Statement(lines) => {
            let lines: Vec<Value> = lines
                .iter()
                .map(|l| {
                    json!({
                        "request_id": l.transfer.as_str(),
                        "transaction_id": l.receipt,
                        "kind": l.kind,
                        "counterparty": l.counterparty,
                        "amount": Money::from_cents(l.amount_cents).to_decimal_string(),
                        "completed_ms": l.completed_ms,
                    })
                })
                .collect();
            Ok(Json(
                json!({ "msisdn": account.to_string(), "lines": lines }),
            ))
        }
        other => Err(ApiError::unavailable(format!(
            "no answer: {}",
            other.describe()
        ))),
    }
}

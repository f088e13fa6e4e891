//! `/v1/…`: the app channel for customers and agents.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tuma_actors::account::AccountRef;
use tuma_actors::ledger::Receipt;
use tuma_actors::money::Money;
use tuma_actors::msisdn::Msisdn;
use tuma_actors::pin::Pin;
use tuma_actors::roles::Role;
use tuma_actors::transfer::{TransferId, TransferKind, ACCOUNT_REFERENCE_LEN_MAX};
use tuma_service::{TransferOrder, TransferOutcome, TransferStatus};

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

pub(super) fn parse_transfer(body: &TransferIn) -> Result<TransferOrder, ApiError> {
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
    let pin = pin_field(&body.pin)?;
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
    Ok(TransferOrder {
        id,
        kind,
        from,
        to,
        amount,
        account_reference: body.account_reference.clone(),
        pin: Some(pin),
        wait: Duration::from_millis(wait_ms),
        initiator,
    })
}

/// The 504 answer to a transfer not decided before its deadline.
pub fn undecided_json(id: &TransferId, retries: u32) -> Value {
    json!({
        "request_id": id.as_str(),
        "status": "unknown",
        "error": "no decision before the deadline; retry with the same request_id to learn the outcome",
        "retries": retries,
    })
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
    caller: Option<ConnectInfo<SocketAddr>>,
    body: Result<Json<TransferIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body?;
    let order = parse_transfer(&body)?;
    let id = order.id.clone();
    let source = caller.map(|ConnectInfo(address)| address.ip());
    match state.service.transfer_from(order, source).await? {
        TransferOutcome::Decided { receipt, retries } => {
            Ok((StatusCode::OK, Json(receipt_json(&receipt, retries))))
        }
        TransferOutcome::Undecided { retries } => Ok((
            StatusCode::GATEWAY_TIMEOUT,
            Json(undecided_json(&id, retries)),
        )),
    }
}

#[derive(Deserialize)]
pub struct StatusQuery {
    from: Option<String>,
}

/// What a transfer's status needs the caller to prove: that they are its payer (the payer's
/// PIN in `X-Tuma-Pin` with `?from=`, counted toward the PIN's lockout like any PIN entered;
/// or a business's API token with `?from=business:<its shortcode>`), or staff who may read
/// accounts (an admin key with `ReadAccounts`, or the bootstrap key). Named with `?from=`, only
/// a transfer that account paid is found.
async fn prove_status_reader(
    state: &ApiState,
    headers: &HeaderMap,
    payer: Option<&AccountRef>,
) -> Result<(), ApiError> {
    let forbidden = |message: &str| ApiError {
        status: StatusCode::FORBIDDEN,
        message: message.into(),
        field: None,
        code: None,
        retry_after_s: None,
    };
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(token) = bearer {
        if let Some(caller) = state.access.caller(token) {
            return match caller {
                super::access::Caller::Bootstrap => Ok(()),
                super::access::Caller::Key { role, .. }
                    if super::access::allows(role, super::access::Permission::ReadAccounts) =>
                {
                    Ok(())
                }
                super::access::Caller::Key { .. } => {
                    Err(forbidden("this key's role may not read transfers"))
                }
            };
        }
        let now_s = tuma_service::unix_ms() / 1_000;
        if let Some(business) = state.daraja.keys().verify_token(token, now_s) {
            return match payer {
                Some(AccountRef::Business(paid_by)) if *paid_by == business => Ok(()),
                _ => Err(forbidden(
                    "a business reads its own transfers: ?from=business:<its shortcode>",
                )),
            };
        }
        return Err(ApiError::unauthorized());
    }
    if let Some(pin) = headers.get("x-tuma-pin").and_then(|v| v.to_str().ok()) {
        let payer =
            payer.ok_or_else(|| ApiError::field("from", "name the payer whose PIN this is"))?;
        let pin = pin_field(pin)?;
        state.service.authenticate(payer, pin).await?;
        return Ok(());
    }
    Err(ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: "prove you may read it: the payer's PIN in X-Tuma-Pin with ?from=<payer>, the business's API token, or an admin key".into(),
        field: None,
        code: None,
        retry_after_s: None,
    })
}

pub async fn transfer_status(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(request_id): Path<String>,
    Query(query): Query<StatusQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let id =
        TransferId::parse(&request_id).map_err(|e| ApiError::field("request_id", e.to_string()))?;
    let payer = query
        .from
        .as_deref()
        .map(AccountRef::parse)
        .transpose()
        .map_err(|e| ApiError::field("from", e.to_string()))?;
    prove_status_reader(&state, &headers, payer.as_ref()).await?;
    match state.service.transfer_status(&id, payer.as_ref()).await? {
        TransferStatus::Decided(receipt) => Ok(Json(receipt_json(&receipt, 0))),
        TransferStatus::Pending => Ok(Json(
            json!({ "request_id": id.as_str(), "status": "pending" }),
        )),
        TransferStatus::Unknown => Err(ApiError::not_found(format!("no transfer {id}"))),
    }
}

/// The customer named in the path and the PIN in the `X-Tuma-Pin` header.
pub fn holder(headers: &HeaderMap, msisdn: &str) -> Result<(AccountRef, Pin), ApiError> {
    let msisdn = Msisdn::parse(msisdn).map_err(|e| ApiError::field("msisdn", e.to_string()))?;
    let pin = pin_field(
        headers
            .get("x-tuma-pin")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    )?;
    Ok((AccountRef::Customer(msisdn), pin))
}

pub async fn balance(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(msisdn): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (account, pin) = holder(&headers, &msisdn)?;
    let balances = state.service.balance(&account, pin).await?;
    Ok(Json(json!({
        "msisdn": account.to_string(),
        "balance": balances.balance().to_decimal_string(),
        "available": balances.available().to_decimal_string(),
    })))
}

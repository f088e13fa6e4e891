//! `/admin/v1/…` (bearer token), `/health`, `/metrics`.

use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tuma_actors::account::{AccountRef, AgentNumber, Shortcode, SystemAccount};
use tuma_actors::ledger::{Account, ApiCredentials, Command, OpenAccount};
use tuma_actors::money::Money;
use tuma_actors::msisdn::Msisdn;
use tuma_actors::pin::Pin;
use tuma_actors::roles::{AccountKind, Role};
use tuma_actors::transfer::{PinVerdict, TransferId, TransferKind, TransferRequest};
use tuma_cluster::engine::{ClientReply, ClientRequest};

use super::error::ApiError;
use super::ApiState;

/// Admin calls give up after this long.
const ADMIN_DEADLINE: Duration = Duration::from_secs(15);
const NAME_LEN_MAX: usize = 100;
const CREDENTIAL_LEN_MAX: usize = 256;

pub fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = state.admin_token.as_bytes();
    let equal = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if equal {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

pub fn text_field(field: &'static str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ApiError::field(
            field,
            format!("{field} must be 1 to {max} printable characters"),
        ));
    }
    Ok(value.to_string())
}

fn digits_field(field: &'static str, value: &str, max: usize) -> Result<String, ApiError> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::field(
            field,
            format!("{field} must be 1 to {max} letters or digits"),
        ));
    }
    Ok(value.to_string())
}

pub fn pin_field(value: &str) -> Result<Pin, ApiError> {
    Pin::parse(value).map_err(|_| ApiError::field("pin", "pin must be exactly 4 digits"))
}

async fn hash_pin(state: &ApiState, pin: Pin) -> Result<tuma_actors::pin::PinHash, ApiError> {
    state
        .hash_pin(pin)
        .await
        .ok_or_else(|| ApiError::unavailable("PIN hashing failed"))
}

async fn admin_command(
    state: &ApiState,
    account: &AccountRef,
    command: Command,
) -> Result<(), ApiError> {
    let shard = state.calls.handle.shard_map().shard_of(account);
    let (reply, _) = state
        .calls
        .call(
            ClientRequest::Command { shard, command },
            Instant::now() + ADMIN_DEADLINE,
        )
        .await;
    match reply {
        ClientReply::Done(code) if code.is_success() => Ok(()),
        ClientReply::Done(code) => Err(ApiError::from_code(code)),
        other => Err(ApiError::unavailable(format!(
            "no leader answered: {}",
            other.describe()
        ))),
    }
}

fn created(reference: &AccountRef) -> (StatusCode, Json<Value>) {
    (
        StatusCode::CREATED,
        Json(json!({ "ref": reference.to_string() })),
    )
}

#[derive(Deserialize)]
pub struct CustomerIn {
    msisdn: String,
    name: String,
    id_number: String,
    pin: String,
}

pub async fn register_customer(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<CustomerIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers)?;
    let Json(body) = body?;
    let msisdn =
        Msisdn::parse(&body.msisdn).map_err(|e| ApiError::field("msisdn", e.to_string()))?;
    let name = text_field("name", &body.name, NAME_LEN_MAX)?;
    let id_number = digits_field("id_number", &body.id_number, 20)?;
    let pin = pin_field(&body.pin)?;
    let account = AccountRef::Customer(msisdn.clone());
    let open = OpenAccount {
        account: account.clone(),
        kind: AccountKind::Customer,
        name,
        id_number: Some(id_number),
        phone: Some(msisdn),
        store_number: None,
        pin_hash: Some(hash_pin(&state, pin).await?),
        api_credentials: None,
    };
    admin_command(&state, &account, Command::OpenAccount(open)).await?;
    Ok(created(&account))
}

#[derive(Deserialize)]
pub struct AgentIn {
    agent_number: String,
    store_number: String,
    name: String,
    msisdn: String,
    pin: String,
}

pub async fn register_agent(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<AgentIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers)?;
    let Json(body) = body?;
    let number = AgentNumber::parse(&body.agent_number)
        .map_err(|e| ApiError::field("agent_number", e.to_string()))?;
    let store = digits_field("store_number", &body.store_number, 8)?;
    let name = text_field("name", &body.name, NAME_LEN_MAX)?;
    let msisdn =
        Msisdn::parse(&body.msisdn).map_err(|e| ApiError::field("msisdn", e.to_string()))?;
    let pin = pin_field(&body.pin)?;
    let account = AccountRef::Agent(number);
    let open = OpenAccount {
        account: account.clone(),
        kind: AccountKind::Agent,
        name,
        id_number: None,
        phone: Some(msisdn),
        store_number: Some(store),
        pin_hash: Some(hash_pin(&state, pin).await?),
        api_credentials: None,
    };
    admin_command(&state, &account, Command::OpenAccount(open)).await?;
    Ok(created(&account))
}

#[derive(Deserialize)]
pub struct BusinessIn {
    shortcode: String,
    kind: String,
    name: String,
    consumer_key: String,
    consumer_secret: String,
    passkey: String,
}

pub async fn register_business(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<BusinessIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers)?;
    let Json(body) = body?;
    let shortcode = Shortcode::parse(&body.shortcode)
        .map_err(|e| ApiError::field("shortcode", e.to_string()))?;
    let kind = match body.kind.as_str() {
        "paybill" => AccountKind::Paybill,
        "till" => AccountKind::Till,
        _ => {
            return Err(ApiError::field(
                "kind",
                "kind must be \"paybill\" or \"till\"",
            ))
        }
    };
    let name = text_field("name", &body.name, NAME_LEN_MAX)?;
    let consumer_key = text_field("consumer_key", &body.consumer_key, CREDENTIAL_LEN_MAX)?;
    let secret = text_field("consumer_secret", &body.consumer_secret, CREDENTIAL_LEN_MAX)?;
    let passkey = text_field("passkey", &body.passkey, CREDENTIAL_LEN_MAX)?;
    let digest = Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let account = AccountRef::Business(shortcode);
    let open = OpenAccount {
        account: account.clone(),
        kind,
        name,
        id_number: None,
        phone: None,
        store_number: None,
        pin_hash: None,
        api_credentials: Some(ApiCredentials {
            consumer_key,
            consumer_secret_sha256: digest,
            passkey,
        }),
    };
    admin_command(&state, &account, Command::OpenAccount(open)).await?;
    Ok(created(&account))
}

#[derive(Deserialize)]
pub struct FloatIn {
    request_id: String,
    account: String,
    amount: String,
}

pub async fn issue_float(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<FloatIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers)?;
    let Json(body) = body?;
    let id = TransferId::parse(&body.request_id)
        .map_err(|e| ApiError::field("request_id", e.to_string()))?;
    let to =
        AccountRef::parse(&body.account).map_err(|e| ApiError::field("account", e.to_string()))?;
    let amount = super::app::amount_field(&body.amount)?;
    let shard = state.calls.handle.shard_map().shard_of(&to);
    let request = TransferRequest {
        id,
        kind: TransferKind::FloatIssue,
        from: AccountRef::System(SystemAccount::Issuer(shard)),
        to,
        amount,
        account_reference: None,
        pin: PinVerdict::NotRequired,
        deadline_ms: super::app::unix_ms() + ADMIN_DEADLINE.as_millis() as u64,
        initiator: Role::Operator,
        reverses: None,
    };
    let (reply, _) = state
        .calls
        .call(
            ClientRequest::Transfer { request, pin: None },
            Instant::now() + ADMIN_DEADLINE,
        )
        .await;
    match reply {
        ClientReply::Receipt(r) if r.result.is_success() => Ok(Json(json!({
            "status": "confirmed",
            "transaction_id": r.txn_id.map(|t| t.to_string()),
            "fee": "0.00",
            "balance": r.balance.to_decimal_string(),
        }))),
        ClientReply::Receipt(r) => Err(ApiError::from_code(r.result)),
        ClientReply::Refused(code) => Err(ApiError::from_code(code)),
        other => Err(ApiError::unavailable(format!(
            "no answer: {}",
            other.describe()
        ))),
    }
}

/// The account view of the admin API.
pub fn account_json(reference: &AccountRef, account: &Account) -> Value {
    json!({
        "ref": reference.to_string(),
        "kind": account.kind.name(),
        "name": account.name,
        "status": account.status.name(),
        "balance": account.balances.balance().to_decimal_string(),
        "available": account.balances.available().to_decimal_string(),
        "pending_in": account.balances.credits_pending.to_decimal_string(),
        "pending_out": account.balances.debits_pending.to_decimal_string(),
        "commission_earned": account.commission_earned.to_decimal_string(),
        "pin_locked": account.pin.as_ref().is_some_and(|p| p.locked),
    })
}

pub async fn account(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(reference): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers)?;
    let reference =
        AccountRef::parse(&reference).map_err(|e| ApiError::field("ref", e.to_string()))?;
    let (reply, _) = state
        .calls
        .call(
            ClientRequest::Account {
                account: reference.clone(),
            },
            Instant::now() + ADMIN_DEADLINE,
        )
        .await;
    match reply {
        ClientReply::Account(Some(account)) => Ok(Json(account_json(&reference, &account))),
        ClientReply::Account(None) => Err(ApiError::not_found(format!("no account {reference}"))),
        other => Err(ApiError::unavailable(format!(
            "no answer: {}",
            other.describe()
        ))),
    }
}

#[derive(Deserialize)]
pub struct PinIn {
    account: String,
    pin: Option<String>,
}

pub async fn unlock_pin(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<PinIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers)?;
    let Json(body) = body?;
    let account =
        AccountRef::parse(&body.account).map_err(|e| ApiError::field("account", e.to_string()))?;
    admin_command(
        &state,
        &account,
        Command::UnlockPin {
            account: account.clone(),
        },
    )
    .await?;
    Ok(Json(
        json!({ "ref": account.to_string(), "pin": "unlocked" }),
    ))
}

pub async fn reset_pin(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<PinIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers)?;
    let Json(body) = body?;
    let account =
        AccountRef::parse(&body.account).map_err(|e| ApiError::field("account", e.to_string()))?;
    let pin = pin_field(body.pin.as_deref().unwrap_or(""))?;
    let new_hash = hash_pin(&state, pin).await?;
    admin_command(
        &state,
        &account,
        Command::ResetPin {
            account: account.clone(),
            new_hash,
        },
    )
    .await?;
    Ok(Json(json!({ "ref": account.to_string(), "pin": "reset" })))
}

pub async fn cluster(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers)?;
    let status = state
        .calls
        .handle
        .status()
        .await
        .ok_or_else(|| ApiError::unavailable("engine not answering"))?;
    Ok(Json(json!({
        "node": status.node_id,
        "members": status.members,
        "shard_count": state.calls.handle.shard_map().shard_count(),
        "leading": status.leading,
        "actors_live": status.actors_live,
        "actor_restarts": status.actor_restarts,
        "storage_bytes": status.storage_bytes,
        "leaving": status.leaving,
        "shards": status.shards,
        "cluster": super::members::cluster_json(&status),
    })))
}

pub async fn audit(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers)?;
    let shards = state.calls.handle.shard_map().shard_count();
    let deadline = Instant::now() + ADMIN_DEADLINE;
    let replies = futures::future::join_all(
        (0..shards).map(|shard| state.calls.call(ClientRequest::Audit { shard }, deadline)),
    )
    .await;
    let mut audits = Vec::new();
    for (shard, (reply, _)) in replies.into_iter().enumerate() {
        match reply {
            ClientReply::Audit(audit) => audits.push(*audit),
            other => {
                return Err(ApiError::unavailable(format!(
                    "shard {shard} did not answer: {}",
                    other.describe()
                )))
            }
        }
    }
    let sum =
        |f: &dyn Fn(&tuma_actors::ledger::ShardAudit) -> i64| audits.iter().map(f).sum::<i64>();
    let balance_sum = sum(&|a| a.balance_sum.cents());
    let clearing_sum = sum(&|a| a.clearing.cents());
    let in_flight = audits
        .iter()
        .map(|a| a.prepared + a.accepted + a.outbox)
        .sum::<usize>();
    let money = |cents: i64| Money::from_cents(cents).to_decimal_string();
    Ok(Json(json!({
        "totals": {
            "balance_sum": money(balance_sum),
            "clearing_sum": money(clearing_sum),
            "e_money_issued": money(-sum(&|a| a.issuer.cents())),
            "fees": money(sum(&|a| a.fees.cents())),
            "commissions": money(sum(&|a| a.commissions.cents())),
            "transfers_in_flight": in_flight,
            "accounts": audits.iter().map(|a| a.accounts).sum::<usize>(),
        },
        "balanced": balance_sum == 0 && (in_flight > 0 || clearing_sum == 0),
        "shards": audits,
    })))
}

#[derive(Deserialize)]
pub struct PanicIn {
    account: String,
}

/// Test-only fault hook (`--enable-test-hooks`): the account's next transfer panics in its actor.
pub async fn plant_panic(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<PanicIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    if !state.test_hooks {
        return Err(ApiError::not_found("test hooks are disabled"));
    }
    authorize(&state, &headers)?;
    let Json(body) = body?;
    let account =
        AccountRef::parse(&body.account).map_err(|e| ApiError::field("account", e.to_string()))?;
    let (reply, _) = state
        .calls
        .call(
            ClientRequest::PlantPanic { account },
            Instant::now() + ADMIN_DEADLINE,
        )
        .await;
    match reply {
        ClientReply::Done(_) => Ok(Json(json!({ "planted": true }))),
        other => Err(ApiError::unavailable(format!(
            "no answer: {}",
            other.describe()
        ))),
    }
}

/// Test-only fault hook (`--enable-test-hooks`): the engine thread panics. The node exits
/// (status 70) instead of serving on with no engine behind it.
pub async fn plant_engine_panic(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if !state.test_hooks {
        return Err(ApiError::not_found("test hooks are disabled"));
    }
    authorize(&state, &headers)?;
    let reply = state
        .calls
        .handle
        .request(ClientRequest::PlantEnginePanic, Duration::from_secs(2))
        .await;
    Err::<Json<Value>, _>(ApiError::unavailable(format!(
        "the engine did not survive: {}",
        reply.describe()
    )))
}

#[derive(Deserialize)]
pub struct ClockIn {
    offset_ms: i64,
}

/// Test-only fault hook (`--enable-test-hooks`): moves this node's wall clock while it runs
/// (`tuma chaos`'s clock-jump fault).
pub async fn set_clock_offset(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<ClockIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Some(offset) = state.clock_offset.as_ref().filter(|_| state.test_hooks) else {
        return Err(ApiError::not_found("test hooks are disabled"));
    };
    authorize(&state, &headers)?;
    let Json(body) = body?;
    if body.offset_ms.unsigned_abs() > 86_400_000 {
        return Err(ApiError::field("offset_ms", "at most a day either way"));
    }
    offset.store(body.offset_ms, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(
        offset_ms = body.offset_ms,
        "test hook: this node's wall clock moved"
    );
    Ok(Json(json!({ "offset_ms": body.offset_ms })))
}

/// Liveness, and whether this node may lead: its clock against its peers' (`in_bounds`,
/// `unknown` right after a start, `out_of_bounds` with the offset, when it refuses to lead).
pub async fn health(State(state): State<ApiState>) -> impl IntoResponse {
    match state.calls.handle.status().await {
        Some(status) => (
            StatusCode::OK,
            Json(json!({
                "status": "ok",
                "node": status.node_id,
                "leading": status.leading,
                "may_lead": status.may_lead,
                "clock": status.clock,
                "clock_offset_ms": status.clock_offset_ms,
            })),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable" })),
        ),
    }
}

pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let body = state
        .prometheus
        .as_ref()
        .map(|p| p.render())
        .unwrap_or_default();
    ([("content-type", "text/plain; version=0.0.4")], body)
}

//! `/admin/v1/…` (bearer token), `/health`, `/metrics`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tuma_actors::account::{AccountRef, AgentNumber, Shortcode};
use tuma_actors::ledger::{Account, ApiCredentials, OpenAccount};
use tuma_actors::msisdn::Msisdn;
use tuma_actors::pin::Pin;
use tuma_actors::roles::AccountKind;
use tuma_actors::transfer::TransferId;

use super::access::{authorize, Permission};
use super::error::ApiError;
use super::ApiState;

pub(super) const NAME_LEN_MAX: usize = 100;
const CREDENTIAL_LEN_MAX: usize = 256;

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

pub(super) fn digits_field(
    field: &'static str,
    value: &str,
    max: usize,
) -> Result<String, ApiError> {
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
        .service
        .pins()
        .hash(pin)
        .await
        .ok_or_else(|| ApiError::unavailable("PIN hashing failed"))
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
    authorize(&state, &headers, Permission::Register)?;
    let Json(body) = body?;
    let msisdn =
        Msisdn::parse(&body.msisdn).map_err(|e| ApiError::field("msisdn", e.to_string()))?;
    let name = text_field("name", &body.name, NAME_LEN_MAX)?;
    let id_number = digits_field("id_number", &body.id_number, 20)?;
    let pin = pin_field(&body.pin)?;
    let account = AccountRef::Customer(msisdn);
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
    state.service.open_account(open).await?;
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
    authorize(&state, &headers, Permission::Register)?;
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
    state.service.open_account(open).await?;
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
    authorize(&state, &headers, Permission::Register)?;
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
    let keys = state.daraja.keys();
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
            consumer_secret_digest: keys.digest(&secret),
            passkey_digest: keys.digest(&passkey),
        }),
    };
    state.service.register_business(open).await?;
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
    let caller = authorize(&state, &headers, Permission::Float)?;
    let Json(body) = body?;
    let id = TransferId::parse(&body.request_id)
        .map_err(|e| ApiError::field("request_id", e.to_string()))?;
    let to =
        AccountRef::parse(&body.account).map_err(|e| ApiError::field("account", e.to_string()))?;
    let amount = super::app::amount_field(&body.amount)?;
    if state
        .float_approval_above
        .is_some_and(|above| amount > above)
    {
        // Maker-checker: recorded, issued only once another caller approves.
        let request = state
            .service
            .request_float(&id, &to, amount, &caller.name())
            .await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(super::float_approvals::request_json(&request)),
        )
            .into_response());
    }
    let receipt = state.service.issue_float(id, to, amount).await?;
    Ok(Json(json!({
        "status": "confirmed",
        "transaction_id": receipt.txn_id.map(|t| t.to_string()),
        "fee": "0.00",
        "balance": receipt.balance.to_decimal_string(),
    }))
    .into_response())
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
        "commission_earned": account.commission_earned().to_decimal_string(),
        "pin_locked": account.pin.as_ref().is_some_and(|p| p.locked),
    })
}

pub async fn account(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(reference): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ReadAccounts)?;
    let reference =
        AccountRef::parse(&reference).map_err(|e| ApiError::field("ref", e.to_string()))?;
    match state.service.account(&reference).await? {
        Some(account) => Ok(Json(account_json(&reference, &account))),
        None => Err(ApiError::not_found(format!("no account {reference}"))),
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
    authorize(&state, &headers, Permission::ResetPins)?;
    let Json(body) = body?;
    let account =
        AccountRef::parse(&body.account).map_err(|e| ApiError::field("account", e.to_string()))?;
    state.service.unlock_pin(&account).await?;
    Ok(Json(
        json!({ "ref": account.to_string(), "pin": "unlocked" }),
    ))
}

pub async fn reset_pin(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<PinIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ResetPins)?;
    let Json(body) = body?;
    let account =
        AccountRef::parse(&body.account).map_err(|e| ApiError::field("account", e.to_string()))?;
    let pin = pin_field(body.pin.as_deref().unwrap_or(""))?;
    state.service.reset_pin(&account, pin).await?;
    Ok(Json(json!({ "ref": account.to_string(), "pin": "reset" })))
}

pub async fn cluster(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ReadCluster)?;
    let status = state.service.status().await?;
    Ok(Json(json!({
        "node": status.node_id,
        "members": status.members,
        "shard_count": state.service.shard_count(),
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
    authorize(&state, &headers, Permission::ReadAudit)?;
    let audit = state.service.audit().await?;
    let totals = &audit.totals;
    let money = |amount: tuma_actors::money::Money| amount.to_decimal_string();
    Ok(Json(json!({
        "totals": {
            "balance_sum": money(totals.balance_sum),
            "clearing_sum": money(totals.clearing_sum),
            "e_money_issued": money(totals.e_money_issued),
            "fees": money(totals.fees),
            "commissions": money(totals.commissions),
            "transfers_in_flight": totals.transfers_in_flight,
            "accounts": totals.accounts,
        },
        "balanced": totals.balanced(),
        "shards": audit.shards,
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
    authorize(&state, &headers, Permission::TestHooks)?;
    let Json(body) = body?;
    let account =
        AccountRef::parse(&body.account).map_err(|e| ApiError::field("account", e.to_string()))?;
    state.service.plant_actor_panic(account).await?;
    Ok(Json(json!({ "planted": true })))
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
    authorize(&state, &headers, Permission::TestHooks)?;
    let how = state.service.plant_engine_panic().await;
    Err::<Json<Value>, _>(ApiError::unavailable(format!(
        "the engine did not survive: {how}"
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
    authorize(&state, &headers, Permission::TestHooks)?;
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
    match state.service.status().await.ok() {
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

/// Shards named in a `/ready` refusal, at most.
const READY_SHARDS_NAMED_MAX: usize = 10;

/// `GET /ready`: 200 when this node can serve (a load balancer's readiness probe) — its engine
/// answers (and so its storage takes writes: a failed write stops the engine), it knows the
/// cluster state, it may lead (a member, not stopping, its clock within bounds of its peers'),
/// and every shard it holds has a known leader; otherwise 503 with the reasons. `/health` says
/// only that the process is alive and answering.
pub async fn ready(State(state): State<ApiState>) -> impl IntoResponse {
    let Ok(status) = state.service.status().await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reasons": ["the engine does not answer"]})),
        );
    };
    let mut reasons = Vec::new();
    if status.cluster.is_none() {
        reasons.push("no cluster state yet (still joining)".to_string());
    }
    if status.leaving {
        reasons.push("stopping: handing its leaderships away".to_string());
    } else if !status.may_lead {
        reasons.push(match (status.clock.as_str(), status.clock_offset_ms) {
            ("out_of_bounds", Some(offset)) => {
                format!("its clock is {offset} ms from its peers': it may not lead")
            }
            ("out_of_bounds", None) => "its clock is out of bounds: it may not lead".to_string(),
            _ => "it may not lead (not a member, or its clock not yet compared with a majority)"
                .to_string(),
        });
    }
    let leaderless: Vec<u32> = status
        .shards
        .iter()
        .filter(|s| s.leader.is_none())
        .map(|s| s.shard)
        .collect();
    if !leaderless.is_empty() {
        let named: Vec<u32> = leaderless
            .iter()
            .copied()
            .take(READY_SHARDS_NAMED_MAX)
            .collect();
        reasons.push(format!(
            "{} of its {} shards have no known leader (shards {named:?}{})",
            leaderless.len(),
            status.shards.len(),
            if leaderless.len() > named.len() {
                ", …"
            } else {
                ""
            }
        ));
    }
    if reasons.is_empty() {
        (
            StatusCode::OK,
            Json(json!({
                "ready": true,
                "node": status.node_id,
                "shards": status.shards.len(),
                "leading": status.leading,
            })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "node": status.node_id, "reasons": reasons})),
        )
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

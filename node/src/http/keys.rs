//! `/admin/v1/keys`: the cluster's scoped API keys. Only the bootstrap key creates, rotates and
//! revokes them; an auditor may list them. A key's secret is shown once, in the answer that
//! creates it; the cluster keeps a keyed digest.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tuma_service::keys::{KeyRecord, KeyRole, NewKey};

use super::access::{authorize, Permission};
use super::error::ApiError;
use super::ApiState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// `operator`, `care` or `auditor`.
    role: String,
    /// Who holds it ("care desk 4").
    label: String,
}

fn record_json(record: &KeyRecord) -> Value {
    json!({
        "id": record.id,
        "role": record.role.name(),
        "label": record.label,
        "created_unix_ms": record.created_unix_ms,
        "revoked_unix_ms": record.revoked_unix_ms,
        "active": record.is_active(),
    })
}

fn new_key_json(key: &NewKey) -> Value {
    let mut body = record_json(&key.record);
    body["key"] = json!(key.token);
    body
}

/// `GET /admin/v1/keys`: every key, revoked ones included (never their secrets).
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Permission::ReadKeys)?;
    let (ring, version) = state.service.key_ring().await?;
    let keys: Vec<Value> = ring.keys.values().map(record_json).collect();
    Ok(Json(json!({ "keys": keys, "version": version })))
}

/// `POST /admin/v1/keys` `{"role","label"}`: a new key; its secret is in `key`, shown only now.
pub async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ManageKeys)?;
    let Json(body) = body?;
    let role = KeyRole::parse(&body.role)
        .ok_or_else(|| ApiError::field("role", "role must be operator, care or auditor"))?;
    let key = state
        .service
        .create_key(&state.access.digester, role, &body.label)
        .await?;
    state.access.refresh(&state.service).await;
    Ok((StatusCode::CREATED, Json(new_key_json(&key))))
}

/// `POST /admin/v1/keys/{id}/rotate`: a new key with the old one's role and label; the old one
/// stops working on every node within a second.
pub async fn rotate(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ManageKeys)?;
    let key = state
        .service
        .rotate_key(&state.access.digester, &id)
        .await?;
    state.access.refresh(&state.service).await;
    Ok((StatusCode::CREATED, Json(new_key_json(&key))))
}

/// `DELETE /admin/v1/keys/{id}`: the key stops working on every node within a second; it stays
/// listed as revoked.
pub async fn revoke(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Permission::ManageKeys)?;
    let record = state.service.revoke_key(&id).await?;
    state.access.refresh(&state.service).await;
    Ok(Json(record_json(&record)))
}

//! `/admin/v1/backup/…`: what `tuma ctl backup` reads a cluster through (operators; the point
//! a backup is taken at and the directory it writes: `tuma_service::backup`).
//!
//! | endpoint | answer |
//! |---|---|
//! | `POST /admin/v1/backup/pause` `{"seconds"}` | new transfers refused on every shard for that long (1–300 s); `{"paused_until_unix_ms","secrets_fingerprint"}` |
//! | `POST /admin/v1/backup/resume` | accepted again |
//! | `GET /admin/v1/backup/shards/{n}/state` | the shard's ledger state (bytes) with `Tuma-History-Rows`, `Tuma-Audit-Records`, `Tuma-In-Flight`, `Tuma-Entries-Applied` |
//! | `GET /admin/v1/backup/shards/{n}/rows?after=&history_below=&audit_below=` | a page of rows and records (bytes: a rows-file frame's body) with `Tuma-Count` and `Tuma-Next` (hex) |
//! | `GET /admin/v1/backup/documents` | the cluster's documents, `{name: body}` |

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::access::{authorize, Permission};
use super::error::ApiError;
use super::ApiState;

/// Longest pause a backup may ask for.
const PAUSE_S_MAX: u64 = 300;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    seconds: u64,
}

pub async fn pause(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<PauseBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Permission::Backup)?;
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if body.seconds == 0 || body.seconds > PAUSE_S_MAX {
        return Err(ApiError::field(
            "seconds",
            format!("1 to {PAUSE_S_MAX} seconds"),
        ));
    }
    let until_ms = tuma_service::unix_ms() + body.seconds * 1_000;
    state.service.pause_intake(until_ms).await?;
    Ok(Json(json!({
        "paused_until_unix_ms": until_ms,
        "secrets_fingerprint": state.secrets_fingerprint,
    })))
}

pub async fn resume(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Permission::Backup)?;
    state.service.pause_intake(0).await?;
    Ok(Json(json!({ "paused_until_unix_ms": 0 })))
}

fn shard_of(state: &ApiState, shard: u32) -> Result<u32, ApiError> {
    if shard < state.service.shard_count() {
        Ok(shard)
    } else {
        Err(ApiError::not_found(format!("no shard {shard}")))
    }
}

fn with_headers(bytes: Vec<u8>, headers: &[(&'static str, String)]) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    response
}

pub async fn shard_state(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(shard): Path<u32>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Permission::Backup)?;
    let copy = state.service.backup_state(shard_of(&state, shard)?).await?;
    Ok(with_headers(
        copy.state,
        &[
            ("tuma-history-rows", copy.history_rows.to_string()),
            ("tuma-audit-records", copy.audit_records.to_string()),
            ("tuma-in-flight", copy.in_flight.to_string()),
            ("tuma-entries-applied", copy.entries_applied.to_string()),
        ],
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowsQuery {
    after: Option<String>,
    history_below: u64,
    audit_below: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 2_048 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub async fn shard_rows(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(shard): Path<u32>,
    query: Result<Query<RowsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Permission::Backup)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let after = match query.after.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            unhex(text)
                .ok_or_else(|| ApiError::field("after", "the Tuma-Next of the previous page"))?,
        ),
    };
    let page = state
        .service
        .backup_rows(
            shard_of(&state, shard)?,
            after,
            query.history_below,
            query.audit_below,
        )
        .await?;
    let count = page.rows.len() + page.audit_log.len();
    let bytes =
        bincode::serde::encode_to_vec((&page.rows, &page.audit_log), bincode::config::standard())
            .map_err(|e| ApiError::unavailable(format!("encoding a page: {e}")))?;
    let mut headers = vec![("tuma-count", count.to_string())];
    if let Some(next) = &page.next {
        headers.push(("tuma-next", hex(next)));
    }
    Ok(with_headers(bytes, &headers))
}

pub async fn documents(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers, Permission::Backup)?;
    let documents = state.service.documents().await?;
    let bodies: Map<String, Value> = documents
        .into_iter()
        .map(|(name, document)| (name, Value::String(document.body)))
        .collect();
    Ok(Json(Value::Object(bodies)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_and_bad_ones_are_refused() {
        let key = vec![b'H', 0, 0, 0, 7, b'a', 0xff, 0x00];
        assert_eq!(unhex(&hex(&key)), Some(key));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"00".repeat(1_025)), None);
    }
}

//! The audit trail at the HTTP edge: every call to an admin endpoint (`/admin/…`) and every
//! business API call (`/mpesa/…`, and token grants on `/oauth/v1/generate`) made by a caller
//! this cluster can name is recorded — who, what, on what, from where, how it went — in the
//! replicated audit log before its answer is sent (`tuma_service::audit_log`), and read back
//! with `GET /admin/v1/audit-log`.
//!
//! What is recorded of a request's body is an allow-list of fields that name what was acted on
//! (accounts, amounts, receipts, keys' roles, Daraja parties…): never a PIN, password,
//! secret, passkey or security credential, whatever the endpoint. Not recorded: calls no key
//! names (401: counted in `tuma_audit_unnamed_calls_total`, or anyone could fill the log),
//! and business calls answered 429 (throttled: counted, never acted on). A record that cannot
//! be committed within its deadline is logged and counted
//! (`tuma_audit_records_failed_total`); the answer still goes out, since the action is done.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tuma_actors::ledger::AuditLogEntry;
use tuma_service::audit_log::{AuditCursor, AuditPage, AUDIT_PAGE_MAX};

use super::access::{authorize, Caller, Permission};
use super::error::ApiError;
use super::{ApiState, BULK_BODY_BYTES_MAX};

pub const METRIC_RECORDS: &str = "tuma_audit_records_total";
pub const METRIC_RECORDS_FAILED: &str = "tuma_audit_records_failed_total";
pub const METRIC_UNNAMED_CALLS: &str = "tuma_audit_unnamed_calls_total";

/// Body fields that name what an action was about, copied into the record's target.
const TARGET_FIELDS: &[&str] = &[
    // The admin API.
    "account",
    "agent_number",
    "amount",
    "consumer_key",
    "from",
    "http_addr",
    "id_number",
    "kind",
    "label",
    "msisdn",
    "name",
    "node_id",
    "offset_ms",
    "peer_addr",
    "request_id",
    "role",
    "shortcode",
    "store_number",
    "to",
    "transaction_id",
    // The business API.
    "AccountReference",
    "Amount",
    "BillRefNumber",
    "BusinessShortCode",
    "CallBackURL",
    "CheckoutRequestID",
    "CommandID",
    "ConfirmationURL",
    "IdentifierType",
    "Initiator",
    "InitiatorName",
    "Msisdn",
    "OriginatorConversationID",
    "PartyA",
    "PartyB",
    "PhoneNumber",
    "QueueTimeOutURL",
    "ReceiverParty",
    "ResponseType",
    "ResultURL",
    "ShortCode",
    "TransactionID",
    "ValidationURL",
];
/// Most bytes of an error answer read for the record's outcome.
const ERROR_BODY_BYTES_MAX: usize = 64 * 1024;

/// Who made a call, as the record names them.
struct Actor {
    name: String,
    role: String,
}

/// Which calls are recorded, and who made them (`None`: no one this cluster knows).
fn actor_of(state: &ApiState, path: &str, headers: &HeaderMap) -> Option<Option<Actor>> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bearer = authorization.strip_prefix("Bearer ").map(str::trim);
    if path.starts_with("/admin/") {
        let caller = bearer.and_then(|token| state.access.caller(token));
        return Some(caller.map(|caller| Actor {
            name: caller.name(),
            role: match caller {
                Caller::Bootstrap => "bootstrap".into(),
                Caller::Key { role, .. } => role.name().into(),
            },
        }));
    }
    if path.starts_with("/mpesa/") {
        let now_s = tuma_service::unix_ms() / 1_000;
        let business = bearer.and_then(|t| state.daraja.keys().verify_token(t, now_s));
        return Some(business.map(|b| Actor {
            name: format!("business:{}", b.as_str()),
            role: "business".into(),
        }));
    }
    if path == "/oauth/v1/generate" {
        // Named by its consumer key; recorded only when the grant succeeds (below).
        let key = authorization
            .strip_prefix("Basic ")
            .and_then(|b| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|pair| pair.split_once(':').map(|(key, _)| key.to_string()));
        return Some(key.map(|key| Actor {
            name: format!("consumer-key:{key}"),
            role: "business".into(),
        }));
    }
    None
}

/// The allow-listed fields of a JSON body (`field=value …`); a body that is not a JSON object
/// is named by its size.
pub(super) fn target_of(path_and_query: &str, body: &[u8]) -> String {
    let mut target = path_and_query.to_string();
    if body.is_empty() {
        return target;
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        target.push_str(&format!(" ({} bytes)", body.len()));
        return target;
    };
    for name in TARGET_FIELDS {
        match fields.get(*name) {
            Some(Value::String(text)) => target.push_str(&format!(" {name}={text}")),
            Some(Value::Number(n)) => target.push_str(&format!(" {name}={n}")),
            _ => {}
        }
    }
    let rows = fields
        .values()
        .filter_map(Value::as_array)
        .map(Vec::len)
        .sum::<usize>();
    if rows > 0 {
        target.push_str(&format!(" ({rows} rows)"));
    }
    target
}

/// The status and, for a refusal, why (the `error` of our JSON errors, Daraja's
/// `errorMessage`).
pub(super) fn outcome_of(status: StatusCode, error_body: Option<&[u8]>) -> String {
    let why = error_body
        .and_then(|b| serde_json::from_slice::<Map<String, Value>>(b).ok())
        .and_then(|body| {
            ["error", "errorMessage", "ResponseDescription"]
                .iter()
                .find_map(|k| body.get(*k).and_then(Value::as_str).map(str::to_string))
        });
    match why {
        Some(why) => format!("{} {why}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

fn next_action_id(node: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "n{node}-{}-{}",
        tuma_service::unix_ms(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The middleware: records the calls [`actor_of`] names once they are answered.
pub async fn record(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let Some(actor) = actor_of(&state, &path, request.headers()) else {
        return next.run(request).await;
    };
    let Some(actor) = actor else {
        metrics::counter!(METRIC_UNNAMED_CALLS).increment(1);
        return next.run(request).await;
    };
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or("unknown".to_string(), |ConnectInfo(a)| a.ip().to_string());
    let action = format!("{} {path}", request.method());
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_string());
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, BULK_BODY_BYTES_MAX).await else {
        return ApiError::too_large().into_response();
    };
    let target = target_of(&path_and_query, &body);
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS
        || (path == "/oauth/v1/generate" && !status.is_success())
    {
        metrics::counter!(METRIC_UNNAMED_CALLS).increment(1);
        return response;
    }
    let (response, outcome) = if status.is_success() {
        (response, outcome_of(status, None))
    } else {
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, ERROR_BODY_BYTES_MAX)
            .await
            .unwrap_or_default();
        let outcome = outcome_of(status, Some(&bytes));
        (Response::from_parts(parts, Body::from(bytes)), outcome)
    };
    let node = state.service.node_id();
    let entry = AuditLogEntry {
        id: next_action_id(node),
        actor: actor.name,
        role: actor.role,
        action,
        target,
        source: format!("{source} via node {node}"),
        outcome,
    };
    match state.service.record_action(entry).await {
        Ok(()) => metrics::counter!(METRIC_RECORDS).increment(1),
        Err(error) => {
            metrics::counter!(METRIC_RECORDS_FAILED).increment(1);
            tracing::error!(%error, "an action could not be recorded in the audit log");
        }
    }
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Records after this cursor (the `next` of the previous page).
    after: Option<String>,
    /// At most this many (default 100, at most 1,000).
    limit: Option<usize>,
    /// `json` (default) or `jsonl`: one record per line, the next cursor in `Tuma-Next`.
    format: Option<String>,
}

/// `GET /admin/v1/audit-log?after=&limit=&format=`: the audit log, newest first.
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Permission::ReadAuditLog)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let after = match query.after.as_deref() {
        None | Some("") => None,
        Some(text) => Some(AuditCursor::parse(text).ok_or_else(|| {
            ApiError::field("after", "a cursor is the `next` of an earlier page")
        })?),
    };
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > AUDIT_PAGE_MAX {
        return Err(ApiError::field(
            "limit",
            format!("1 to {AUDIT_PAGE_MAX} records a page"),
        ));
    }
    let AuditPage { records, next } = state.service.audit_log(after, limit).await?;
    let next = next.map(|c| c.to_string());
    match query.format.as_deref().unwrap_or("json") {
        "json" => Ok(axum::Json(json!({ "records": records, "next": next })).into_response()),
        "jsonl" => {
            let mut text = String::new();
            for record in &records {
                text.push_str(&serde_json::to_string(record).unwrap_or_default());
                text.push('\n');
            }
            let mut response = text.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-ndjson"),
            );
            if let Some(next) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
                headers.insert("tuma-next", next);
            }
            Ok(response)
        }
        _ => Err(ApiError::field("format", "json or jsonl")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_what_was_acted_on_and_never_a_secret() {
        let body = br#"{"msisdn":"254700000001","pin":"1234","amount":"50.00",
            "SecurityCredential":"abc","Password":"pw","consumer_secret":"s3cret",
            "PartyA":"600000","rows":[1,2,3]}"#;
        let target = target_of("/admin/v1/pins/reset", body);
        assert!(target.starts_with("/admin/v1/pins/reset "), "{target}");
        assert!(target.contains("msisdn=254700000001"), "{target}");
        assert!(target.contains("amount=50.00"), "{target}");
        assert!(target.contains("PartyA=600000"), "{target}");
        assert!(target.contains("(3 rows)"), "{target}");
        for secret in ["1234", "abc", "pw", "s3cret"] {
            assert!(!target.contains(&format!("={secret}")), "{target}");
        }
        assert_eq!(target_of("/x", b"not json"), "/x (8 bytes)");
        assert_eq!(target_of("/x?y=1", b""), "/x?y=1");
    }

    #[test]
    fn outcomes_say_why_a_call_was_refused() {
        assert_eq!(outcome_of(StatusCode::OK, None), "200");
        let ours = br#"{"error":"this key's role may not do this (Float)"}"#;
        assert_eq!(
            outcome_of(StatusCode::FORBIDDEN, Some(ours)),
            "403 this key's role may not do this (Float)"
        );
        let daraja = br#"{"errorCode":"404.001.03","errorMessage":"Invalid Access Token"}"#;
        assert_eq!(
            outcome_of(StatusCode::NOT_FOUND, Some(daraja)),
            "404 Invalid Access Token"
        );
        assert_eq!(outcome_of(StatusCode::BAD_GATEWAY, Some(b"")), "502");
    }
}

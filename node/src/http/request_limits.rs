//! Request budgets on the public endpoints (everything but `/admin/…`, `/health`, `/ready` and
//! `/metrics`): per source address (`--requests-per-source`, every public endpoint: the app,
//! USSD and SMS gateways, the business API) and per phone number (`--requests-per-msisdn`: the
//! app channel's calls naming a customer — `/v1/accounts/{msisdn}/…`, a transfer's or status
//! read's `from`, a prompt's `msisdn`). Past its budget a call is answered `429` with
//! `Retry-After` before anything is done. Token buckets per minute, kept by each node (a caller
//! spreading calls over N nodes gets N budgets), at most [`TRACKED_MAX`] keys each. The failed
//! transfer attempts and the business API's call budgets are separate and come on top.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tuma_actors::msisdn::Msisdn;
use tuma_service::RateBuckets;

use super::error::ApiError;
use super::{ApiState, BODY_BYTES_MAX};

pub const METRIC_LIMITED: &str = "tuma_http_rate_limited_total";
/// Keys each budget tracks at most (the least recently used go first).
pub const TRACKED_MAX: usize = 200_000;

/// The budgets' sizes: calls a minute (0: no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    pub per_source_per_minute: u32,
    pub per_msisdn_per_minute: u32,
}

impl Default for RequestLimits {
    fn default() -> RequestLimits {
        RequestLimits {
            per_source_per_minute: 120_000,
            per_msisdn_per_minute: 1_200,
        }
    }
}

/// This node's budgets.
pub struct RequestLimiter {
    limits: RequestLimits,
    by_source: Mutex<RateBuckets<IpAddr>>,
    by_msisdn: Mutex<RateBuckets<Msisdn>>,
}

impl RequestLimiter {
    pub fn new(limits: RequestLimits) -> RequestLimiter {
        RequestLimiter {
            limits,
            by_source: Mutex::new(RateBuckets::new(limits.per_source_per_minute, TRACKED_MAX)),
            by_msisdn: Mutex::new(RateBuckets::new(limits.per_msisdn_per_minute, TRACKED_MAX)),
        }
    }

    /// Spends one call of `key`'s budget; the wait when it is spent.
    fn admit<K: std::hash::Hash + Eq + Clone>(
        buckets: &Mutex<RateBuckets<K>>,
        key: &K,
        now_ms: u64,
    ) -> Option<std::time::Duration> {
        let mut buckets = buckets.lock().unwrap_or_else(|p| p.into_inner());
        let wait = buckets.wait(key, now_ms);
        if wait.is_none() {
            buckets.charge(key, now_ms);
        }
        wait
    }
}

fn is_public(path: &str) -> bool {
    !(path.starts_with("/admin/") || matches!(path, "/health" | "/ready" | "/metrics"))
}

/// The phone number an app-channel call names, from its path, query or JSON body.
pub(super) fn msisdn_named(path: &str, query: Option<&str>, body: &[u8]) -> Option<Msisdn> {
    if let Some(rest) = path.strip_prefix("/v1/accounts/") {
        return Msisdn::parse(rest.split('/').next()?).ok();
    }
    if !path.starts_with("/v1/") {
        return None;
    }
    let from_query = query.and_then(|q| {
        q.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            matches!(name, "from" | "msisdn").then(|| value.to_string())
        })
    });
    // Only the fields that name a number are read (every other field is skipped unparsed).
    #[derive(serde::Deserialize)]
    struct Naming {
        from: Option<String>,
        msisdn: Option<String>,
    }
    let from_body = || {
        let naming: Naming = serde_json::from_slice(body).ok()?;
        naming.from.or(naming.msisdn)
    };
    Msisdn::parse(&from_query.or_else(from_body)?).ok()
}

fn too_many(what: &str, wait: std::time::Duration) -> Response {
    let retry_after_s = wait.as_secs().max(1);
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: format!("too many requests {what}: retry in {retry_after_s} s"),
        field: None,
        code: None,
        retry_after_s: Some(retry_after_s),
    }
    .into_response()
}

/// The middleware.
pub async fn limit(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if !is_public(&path) {
        return next.run(request).await;
    }
    let limiter = &state.request_limiter;
    let now_ms = tuma_service::unix_ms();
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    if let Some(source) = source.filter(|_| limiter.limits.per_source_per_minute > 0) {
        if let Some(wait) = RequestLimiter::admit(&limiter.by_source, &source, now_ms) {
            metrics::counter!(METRIC_LIMITED, "limit" => "source").increment(1);
            return too_many("from this address", wait);
        }
    }
    if !path.starts_with("/v1/") || limiter.limits.per_msisdn_per_minute == 0 {
        return next.run(request).await;
    }
    let query = request.uri().query().map(str::to_string);
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, BODY_BYTES_MAX).await else {
        return ApiError::too_large().into_response();
    };
    if let Some(msisdn) = msisdn_named(&path, query.as_deref(), &body) {
        if let Some(wait) = RequestLimiter::admit(&limiter.by_msisdn, &msisdn, now_ms) {
            metrics::counter!(METRIC_LIMITED, "limit" => "msisdn").increment(1);
            return too_many("for this phone number", wait);
        }
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phone_number_is_found_where_each_call_names_it() {
        let alice = Msisdn::parse("254711000001").ok();
        assert_eq!(
            msisdn_named("/v1/accounts/254711000001/balance", None, b""),
            alice
        );
        assert_eq!(
            msisdn_named("/v1/accounts/0711000001/statement", None, b""),
            alice
        );
        assert_eq!(
            msisdn_named(
                "/v1/transfers",
                None,
                br#"{"from":"254711000001","to":"x"}"#
            ),
            alice
        );
        assert_eq!(
            msisdn_named("/v1/transfers/t-1", Some("from=254711000001"), b""),
            alice
        );
        assert_eq!(
            msisdn_named("/v1/prompts", Some("msisdn=254711000001"), b""),
            alice
        );
        assert_eq!(
            msisdn_named("/v1/transfers", None, br#"{"from":"agent:1"}"#),
            None
        );
        assert_eq!(
            msisdn_named("/ussd/v1/callback", None, b"phoneNumber=1"),
            None
        );
        assert!(is_public("/v1/transfers") && is_public("/ussd/v1/callback"));
        assert!(!is_public("/admin/v1/audit") && !is_public("/ready"));
    }
}

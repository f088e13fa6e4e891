//! `GET /oauth/v1/generate?grant_type=client_credentials` with `Authorization: Basic
//! base64(ConsumerKey:ConsumerSecret)` → `{"access_token","expires_in":"3599"}` (a string, as
//! Daraja's sandbox answers), and the `Bearer` check every other call goes through.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use tuma_actors::account::{AccountRef, Shortcode};
use tuma_actors::ledger::Account;
use tuma_service::unix_ms;

use crate::envelope::DarajaError;
use crate::{Daraja, TOKEN_LIFETIME_S};

/// Longest `Authorization` header read.
const AUTHORIZATION_LEN_MAX: usize = 1_024;

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()
        .filter(|v| v.len() <= AUTHORIZATION_LEN_MAX)
}

pub(crate) async fn generate(
    State(daraja): State<Daraja>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<Value>, DarajaError> {
    if query.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(DarajaError::bad_grant_type());
    }
    let (key, secret) = authorization(&headers)
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|pair| {
            let (key, secret) = pair.split_once(':')?;
            Some((key.to_string(), secret.to_string()))
        })
        .ok_or_else(DarajaError::bad_authentication)?;
    let business = daraja
        .service()
        .business_of_key(&key)
        .await
        .map_err(|_| DarajaError::unavailable())?
        .ok_or_else(DarajaError::bad_authentication)?;
    // Token requests spend the business's call budget too: guessing its secret is throttled.
    daraja.admit(&business)?;
    let account = business_account(&daraja, &business).await?;
    let genuine = account.api_credentials().is_some_and(|c| {
        c.consumer_key == key && daraja.keys().matches(&secret, &c.consumer_secret_digest)
    });
    if !genuine {
        metrics::counter!("tuma_daraja_token_refusals_total").increment(1);
        return Err(DarajaError::bad_authentication());
    }
    let expires = unix_ms() / 1_000 + TOKEN_LIFETIME_S;
    Ok(Json(json!({
        "access_token": daraja.keys().issue_token(&business, expires),
        "expires_in": (TOKEN_LIFETIME_S - 1).to_string(),
    })))
}

/// The business a call's `Bearer` token was issued to, once the call is within the
/// business's budget on this node.
pub(crate) fn bearer(daraja: &Daraja, headers: &HeaderMap) -> Result<Shortcode, DarajaError> {
    let business = authorization(headers)
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| daraja.keys().verify_token(token.trim(), unix_ms() / 1_000))
        .ok_or_else(DarajaError::bad_token)?;
    daraja.admit(&business)?;
    Ok(business)
}

/// A business's account record (`500.001.1001 Merchant does not exist` when there is none).
pub(crate) async fn business_account(
    daraja: &Daraja,
    business: &Shortcode,
) -> Result<Account, DarajaError> {
    daraja
        .service()
        .account(&AccountRef::Business(business.clone()))
        .await
        .map_err(|_| DarajaError::unavailable())?
        .ok_or_else(|| DarajaError::merchant("Merchant does not exist"))
}

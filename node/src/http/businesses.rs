//! Operators' view of the business API's businesses: their initiators (who may order
//! payouts), moves between their accounts, and a payout order looked up by the business's own
//! key.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tuma_actors::account::{AccountRef, Shortcode};
use tuma_actors::ledger::{PayoutState, Wallet, Wallets, CONVERSATION_ID_LEN_MAX};
use tuma_actors::money::Money;
use tuma_service::PayoutLookup;

use super::access::{authorize, Permission};
use super::admin::text_field;
use super::error::ApiError;
use super::ApiState;

const INITIATOR_PASSWORD_LEN_MAX: usize = tuma_daraja::INITIATOR_PASSWORD_LEN_MAX;

fn shortcode(text: &str) -> Result<Shortcode, ApiError> {
    Shortcode::parse(text).map_err(|e| ApiError::field("shortcode", e.to_string()))
}

#[derive(Deserialize)]
pub struct InitiatorIn {
    password: String,
}

/// `PUT /admin/v1/businesses/{shortcode}/initiators/{name}` `{"password"}`: adds or replaces
/// an initiator allowed to order the business's payouts (B2C, B2B, status, balance). The
/// password is stored as a keyed digest.
pub async fn set_initiator(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((shortcode, name)): Path<(String, String)>,
    body: Result<Json<InitiatorIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ConfigureBusinesses)?;
    let Json(body) = body?;
    let business =
        Shortcode::parse(&shortcode).map_err(|e| ApiError::field("shortcode", e.to_string()))?;
    if !tuma_actors::ledger::valid_initiator_name(&name) {
        return Err(ApiError::field(
            "name",
            "1 to 40 characters of A-Z a-z 0-9 _ - . @",
        ));
    }
    let password = text_field("password", &body.password, INITIATOR_PASSWORD_LEN_MAX)?;
    let initiator = tuma_actors::ledger::Initiator {
        name: name.clone(),
        password_digest: state.daraja.keys().digest(&password),
    };
    state
        .service
        .set_initiator(business.clone(), initiator)
        .await?;
    Ok(Json(
        json!({ "business": business.as_str(), "initiator": name }),
    ))
}

#[derive(Deserialize)]
pub struct MoveIn {
    from: String,
    to: String,
    amount: String,
}

/// `POST /admin/v1/businesses/{shortcode}/wallets/moves` `{"from","to","amount"}`: care moves
/// money between a business's accounts (`utility`, `working`, `settlement`); its balance is
/// unchanged, and payouts spend only Utility. Answers the accounts after the move.
pub async fn move_between_wallets(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(business): Path<String>,
    body: Result<Json<MoveIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::Reverse)?;
    let Json(body) = body?;
    let business = shortcode(&business)?;
    let wallet = |field: &'static str, name: &str| {
        Wallet::from_name(name)
            .ok_or_else(|| ApiError::field(field, "one of utility, working, settlement"))
    };
    let (from, to) = (wallet("from", &body.from)?, wallet("to", &body.to)?);
    let amount =
        Money::parse(&body.amount).map_err(|e| ApiError::field("amount", e.to_string()))?;
    state
        .service
        .move_between_wallets(business.clone(), from, to, amount)
        .await?;
    let account = AccountRef::Business(business.clone());
    let wallets = state
        .service
        .account(&account)
        .await?
        .map(|a| Wallets::of(&a))
        .unwrap_or_default();
    Ok(Json(json!({
        "business": business.as_str(),
        "utility": wallets.utility.to_string(),
        "working": wallets.working.to_string(),
        "settlement": wallets.settlement.to_string(),
        "charges_paid": wallets.charges_paid.to_string(),
    })))
}

/// `GET /admin/v1/businesses/{shortcode}/payouts/{originator_id}`: the business's payout order
/// (B2C, B2B, reversal) made under its `OriginatorConversationID`, while the cluster holds it.
pub async fn payout(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((business, originator_id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ReadAccounts)?;
    let business = shortcode(&business)?;
    if originator_id.len() > CONVERSATION_ID_LEN_MAX {
        return Err(ApiError::field("originator_id", "too long"));
    }
    let lookup = PayoutLookup::ByOriginatorId(originator_id.clone());
    let Some(payout) = state.service.payout(&business, lookup).await? else {
        return Err(ApiError::not_found(format!(
            "no payout {originator_id} of business {}",
            business.as_str()
        )));
    };
    let (state_name, result, transaction_id) = match &payout.state {
        PayoutState::Queued => ("queued", None, None),
        PayoutState::Paying => ("paying", None, None),
        PayoutState::Closed { result, txn_id, .. } => {
            ("closed", Some(result.name()), txn_id.map(|t| t.to_string()))
        }
    };
    let request = &payout.request;
    Ok(Json(json!({
        "business": request.business.as_str(),
        "originator_id": request.originator_id,
        "conversation_id": request.conversation_id,
        "payment_id": payout.payment().to_string(),
        "kind": request.kind.name(),
        "to": request.to.to_string(),
        "amount": request.amount.to_string(),
        "state": state_name,
        "result": result,
        "transaction_id": transaction_id,
    })))
}

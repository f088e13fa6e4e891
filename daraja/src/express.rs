//! M-Pesa Express (STK push): `POST /mpesa/stkpush/v1/processrequest` opens a payment prompt
//! on the customer's shard and answers `MerchantRequestID` and `CheckoutRequestID`; the
//! customer answers in the app channel (`node/src/http/prompts.rs`) or on USSD; the outcome goes to `CallBackURL` from
//! the shard's callback outbox (`callbacks.rs`). `POST /mpesa/stkpushquery/v1/query` answers
//! where a prompt stands (`ResultCode` as a string there, as Daraja does).

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use tuma_actors::account::Shortcode;
use tuma_actors::ledger::{Account, PromptRequest, PromptState};
use tuma_actors::money::Money;
use tuma_actors::msisdn::Msisdn;
use tuma_actors::outcome::ResultCode;
use tuma_actors::roles::AccountKind;
use tuma_actors::transfer::TransferKind;
use tuma_service::{unix_ms, ServiceError};

use crate::envelope::{required, text, whole_shillings, DarajaError};
use crate::oauth::{bearer, business_account};
use crate::{ids, Daraja};

/// Daraja's limits on the texts a prompt shows.
const ACCOUNT_REFERENCE_LEN_MAX: usize = 12;
const TRANSACTION_DESC_LEN_MAX: usize = 13;

/// A ledger outcome as M-Pesa Express reports it: `ResultCode` and `ResultDesc`.
pub fn daraja_result(code: ResultCode) -> (u32, &'static str) {
    match code {
        ResultCode::Success => (0, "The service request is processed successfully."),
        ResultCode::InsufficientFunds => (1, "The balance is insufficient for the transaction."),
        ResultCode::AmountBelowMinimum | ResultCode::AmountOutsideTariff => {
            (2, "Declined due to limit rule: less than the minimum transaction amount.")
        }
        ResultCode::LimitExceeded => {
            (3, "Declined due to limit rule: greater than the maximum transaction amount.")
        }
        ResultCode::DailyLimitExceeded => {
            (4, "Declined due to limit rule: would exceed daily transfer limit.")
        }
        ResultCode::BalanceLimitExceeded => {
            (8, "Declined due to limit rule: would exceed the maximum balance.")
        }
        ResultCode::DeadlinePassed => (1019, "Transaction has expired."),
        ResultCode::Declined => (1032, "Request cancelled by user"),
        ResultCode::NoAnswer => (1037, "DS timeout user cannot be reached"),
        ResultCode::WrongPin => (2001, "The initiator information is invalid."),
        ResultCode::PinLocked => (8006, "The security credential is locked."),
        ResultCode::CustomerBusy => (
            500_001_001,
            "Unable to lock subscriber, a transaction is already in process for the current subscriber",
        ),
        ResultCode::Overloaded => (26, "System busy. The service request is rejected."),
        _ => (2028, "The request is not permitted according to product assignment."),
    }
}

/// The business behind a call: its token's, which must be the body's `BusinessShortCode`, and
/// whose `Password` (with `Timestamp`) must carry its passkey.
async fn authenticated_business(
    daraja: &Daraja,
    headers: &HeaderMap,
    body: &Value,
) -> Result<(Shortcode, Account), DarajaError> {
    let business = bearer(daraja, headers)?;
    let shortcode = required(body, "BusinessShortCode")?;
    if shortcode != business.as_str() {
        return Err(DarajaError::invalid("BusinessShortCode"));
    }
    let password = required(body, "Password")?;
    let timestamp = required(body, "Timestamp")?;
    if timestamp.len() != 14 || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DarajaError::invalid("Timestamp"));
    }
    let account = business_account(daraja, &business).await?;
    let genuine = account.api_credentials().is_some_and(|c| {
        daraja
            .keys()
            .password_matches(&password, &shortcode, &timestamp, &c.passkey_digest)
    });
    if !genuine {
        return Err(DarajaError::merchant("Wrong credentials"));
    }
    Ok((business, account))
}

pub(crate) fn json_body(body: Result<Json<Value>, JsonRejection>) -> Result<Value, DarajaError> {
    match body {
        Ok(Json(value)) if value.is_object() => Ok(value),
        _ => Err(DarajaError::invalid("Request")),
    }
}

/// A printable text of at most `max` characters (empty allowed when not required).
pub(crate) fn short_text(
    body: &Value,
    field: &str,
    max: usize,
    needed: bool,
) -> Result<String, DarajaError> {
    let value = text(body, field).unwrap_or_default();
    if (needed && value.is_empty())
        || value.chars().count() > max
        || value.chars().any(char::is_control)
    {
        return Err(DarajaError::invalid(field));
    }
    Ok(value)
}

pub(crate) fn msisdn(body: &Value, field: &str) -> Result<Msisdn, DarajaError> {
    Msisdn::parse(&required(body, field)?).map_err(|_| DarajaError::invalid(field))
}

pub(crate) async fn push(
    State(daraja): State<Daraja>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, DarajaError> {
    let body = json_body(body)?;
    let (business, account) = authenticated_business(&daraja, &headers, &body).await?;
    let (kind, payee_kind) = match required(&body, "TransactionType")?.as_str() {
        "CustomerPayBillOnline" => (TransferKind::PayBill, AccountKind::Paybill),
        "CustomerBuyGoodsOnline" => (TransferKind::BuyGoods, AccountKind::Till),
        _ => return Err(DarajaError::invalid("TransactionType")),
    };
    // A paybill collects for itself; a business may collect for one of its tills.
    let payee = Shortcode::parse(&required(&body, "PartyB")?)
        .map_err(|_| DarajaError::invalid("PartyB"))?;
    if kind == TransferKind::PayBill && payee != business {
        return Err(DarajaError::invalid("PartyB"));
    }
    let payee_account = if payee == business {
        account
    } else {
        business_account(&daraja, &payee).await?
    };
    if payee_account.kind != payee_kind {
        return Err(DarajaError::invalid("TransactionType"));
    }
    let payee_name = payee_account.name;
    let amount = whole_shillings(&body, "Amount")?;
    let phone = msisdn(&body, "PhoneNumber")?;
    if msisdn(&body, "PartyA")? != phone {
        return Err(DarajaError::invalid("PartyA"));
    }
    let callback = daraja
        .config()
        .urls
        .check("CallBackURL", &required(&body, "CallBackURL")?)?;
    let account_reference = short_text(&body, "AccountReference", ACCOUNT_REFERENCE_LEN_MAX, true)?;
    short_text(&body, "TransactionDesc", TRANSACTION_DESC_LEN_MAX, false)?;
    let now = unix_ms();
    let request = PromptRequest {
        checkout_id: ids::checkout_request_id(now),
        merchant_request_id: ids::merchant_request_id(),
        customer: phone,
        business: payee,
        business_name: payee_name,
        kind,
        amount: Money::from_cents(amount * 100),
        account_reference,
        callback_url: callback.to_string(),
        expires_ms: now + daraja.config().prompt_lifetime.as_millis() as u64,
    };
    match daraja.service().open_prompt(request.clone()).await {
        Ok(()) => {}
        Err(ServiceError::Refused(code)) => return Err(push_refusal(code)),
        Err(_) => return Err(DarajaError::unavailable()),
    }
    metrics::counter!("tuma_daraja_prompts_opened_total").increment(1);
    let accepted = "Success. Request accepted for processing";
    Ok(Json(json!({
        "MerchantRequestID": request.merchant_request_id,
        "CheckoutRequestID": request.checkout_id,
        "ResponseCode": "0",
        "ResponseDescription": accepted,
        "CustomerMessage": accepted,
    })))
}

/// Why a prompt could not be opened, as Daraja answers it.
fn push_refusal(code: ResultCode) -> DarajaError {
    match code {
        ResultCode::UnknownAccount | ResultCode::AccountInactive => {
            DarajaError::invalid("PhoneNumber")
        }
        ResultCode::InvalidAmount => DarajaError::invalid("Amount"),
        ResultCode::InvalidAccountReference => DarajaError::invalid("AccountReference"),
        ResultCode::CustomerBusy => DarajaError::merchant(daraja_result(code).1),
        ResultCode::Overloaded => DarajaError::throttled(),
        _ => DarajaError::invalid("Request"),
    }
}

pub(crate) async fn query(
    State(daraja): State<Daraja>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, DarajaError> {
    let body = json_body(body)?;
    let (business, _) = authenticated_business(&daraja, &headers, &body).await?;
    let checkout_id = required(&body, "CheckoutRequestID")?;
    if !tuma_actors::ledger::valid_checkout_id(&checkout_id) {
        return Err(DarajaError::invalid("CheckoutRequestID"));
    }
    let prompt = daraja
        .service()
        .prompt(&checkout_id, None)
        .await
        .map_err(|_| DarajaError::unavailable())?
        // A business sees its own prompts only (a till's, with the till's credentials).
        .filter(|p| p.request.business == business)
        .ok_or_else(|| DarajaError::invalid("CheckoutRequestID"))?;
    let PromptState::Closed { result, .. } = prompt.state else {
        return Err(DarajaError::merchant("The transaction is being processed"));
    };
    let (code, description) = daraja_result(result);
    Ok(Json(json!({
        "ResponseCode": "0",
        "ResponseDescription": "The service request has been accepted successfully",
        "MerchantRequestID": prompt.request.merchant_request_id,
        "CheckoutRequestID": prompt.request.checkout_id,
        "ResultCode": code.to_string(),
        "ResultDesc": description,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_a_daraja_code_and_the_named_ones_are_darajas() {
        for code in ResultCode::ALL {
            let (_, description) = daraja_result(code);
            assert!(!description.is_empty());
        }
        assert_eq!(daraja_result(ResultCode::Success).0, 0);
        assert_eq!(daraja_result(ResultCode::InsufficientFunds).0, 1);
        assert_eq!(daraja_result(ResultCode::Declined).0, 1032);
        assert_eq!(daraja_result(ResultCode::NoAnswer).0, 1037);
        assert_eq!(daraja_result(ResultCode::WrongPin).0, 2001);
        assert_eq!(daraja_result(ResultCode::DailyLimitExceeded).0, 4);
    }
}

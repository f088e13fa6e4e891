//! Customer to business (C2B): `POST /mpesa/c2b/v1/registerurl` and `/v2/registerurl` record
//! a business's confirmation URL and, optionally, its validation URL (once; a second
//! registration is Daraja's `500.003.1001 Urls are already registered`). Then, for every bill
//! payment or purchase to the business from any channel:
//! - **validation** (when registered): before the payment is submitted the node posts the
//!   payment to the validation URL and waits up to `validation_timeout`; `ResultCode` `0`
//!   goes ahead, a `C2B000xx` code refuses the payment (`rejected_by_payee`), and no answer
//!   applies the registered `ResponseType` (`Completed` goes ahead, `Cancelled` refuses);
//! - **confirmation**: the business's shard queues the payment in its callback outbox in the
//!   entry that credited it (`callbacks.rs` delivers it); v2 registrations get a masked MSISDN.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use tuma_actors::ledger::{Account, C2bUrls, CallbackEvent};
use tuma_actors::msisdn::Msisdn;
use tuma_actors::outcome::ResultCode;
use tuma_actors::transfer::TransferKind;
use tuma_service::{CheckFuture, PayeeCheck, ServiceError, TransferOrder};

use crate::envelope::{required, text, DarajaError};
use crate::oauth::bearer;
use crate::{ids, Daraja};

/// `POST /mpesa/c2b/{v1|v2}/registerurl`.
pub(crate) async fn register(
    State(daraja): State<Daraja>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, DarajaError> {
    let masked_msisdn = match version.as_str() {
        "v1" => false,
        "v2" => true,
        _ => return Err(DarajaError::not_found()),
    };
    let business = bearer(&daraja, &headers)?;
    let Ok(Json(body)) = body else {
        return Err(DarajaError::invalid("Request"));
    };
    if required(&body, "ShortCode")? != business.as_str() {
        return Err(DarajaError::invalid("ShortCode"));
    }
    let completes_by_default = match required(&body, "ResponseType")?.as_str() {
        "Completed" => true,
        "Cancelled" => false,
        _ => return Err(DarajaError::invalid("ResponseType")),
    };
    let urls = &daraja.config().urls;
    let confirmation = urls.check("ConfirmationURL", &required(&body, "ConfirmationURL")?)?;
    let validation = match text(&body, "ValidationURL").filter(|v| !v.is_empty()) {
        Some(url) => Some(urls.check("ValidationURL", &url)?.to_string()),
        None => None,
    };
    let registration = C2bUrls {
        confirmation_url: confirmation.to_string(),
        validation_url: validation,
        completes_by_default,
        masked_msisdn,
    };
    match daraja
        .service()
        .register_c2b_urls(business, registration)
        .await
    {
        Ok(()) => {
            // Daraja spells it `OriginatorCoversationID`; the Rust `mpesa` client reads
            // `OriginatorConverstionID`: both are sent, with the same value.
            let id = ids::request_id();
            Ok(Json(json!({
                "OriginatorCoversationID": id,
                "OriginatorConverstionID": id,
                "ResponseCode": "0",
                "ResponseDescription": "success",
            })))
        }
        Err(ServiceError::Refused(ResultCode::AccountExists)) => Err(DarajaError::new(
            StatusCode::BAD_REQUEST,
            "500.003.1001",
            "Urls are already registered",
        )),
        Err(ServiceError::Refused(_)) => Err(DarajaError::invalid("ShortCode")),
        Err(_) => Err(DarajaError::unavailable()),
    }
}

/// `Pay Bill` or `Buy Goods`, as C2B payloads name a payment.
fn transaction_type(kind: TransferKind) -> &'static str {
    if kind == TransferKind::BuyGoods {
        "Buy Goods"
    } else {
        "Pay Bill"
    }
}

/// `2547 ***** 126`: the v2 payloads' masked MSISDN.
fn masked(msisdn: &Msisdn) -> String {
    let digits = msisdn.as_str();
    let tail = &digits[digits.len().saturating_sub(3)..];
    format!("{} ***** {tail}", &digits[..4.min(digits.len())])
}

/// The first word of a name, as `FirstName`.
fn first_name(name: &str) -> String {
    name.split_whitespace().next().unwrap_or("").to_uppercase()
}

/// The C2B payload for a payment: the validation request (before the payment; no receipt,
/// `OrgAccountBalance` blank) or the confirmation (after it).
#[allow(clippy::too_many_arguments)]
fn payload(
    kind: TransferKind,
    receipt: &str,
    at_ms: u64,
    amount_cents: i64,
    business: &str,
    bill_ref: &str,
    org_balance: &str,
    msisdn: &str,
    name: &str,
) -> Value {
    json!({
        "TransactionType": transaction_type(kind),
        "TransID": receipt,
        "TransTime": ids::timestamp(at_ms),
        "TransAmount": tuma_actors::money::Money::from_cents(amount_cents).to_decimal_string(),
        "BusinessShortCode": business,
        "BillRefNumber": bill_ref,
        "InvoiceNumber": "",
        "OrgAccountBalance": org_balance,
        "ThirdPartyTransID": "",
        "MSISDN": msisdn,
        "FirstName": first_name(name),
        "MiddleName": "",
        "LastName": "",
    })
}

/// The JSON posted to a business's `ConfirmationURL` for a payment credited to it.
pub fn c2b_confirmation_body(event: &CallbackEvent) -> Option<Value> {
    let CallbackEvent::C2bConfirmation {
        receipt,
        kind,
        amount,
        business,
        bill_ref,
        msisdn,
        first_name,
        org_balance,
        completed_ms,
        masked_msisdn,
    } = event
    else {
        return None;
    };
    let msisdn = if *masked_msisdn {
        masked(msisdn)
    } else {
        msisdn.as_str().to_string()
    };
    Some(payload(
        *kind,
        &receipt.to_string(),
        *completed_ms,
        amount.cents(),
        business.as_str(),
        bill_ref,
        &org_balance.to_decimal_string(),
        &msisdn,
        first_name,
    ))
}

/// The business API's validation of bill payments and purchases (installed on the service).
pub(crate) struct Validation {
    pub client: reqwest::Client,
    pub timeout: Duration,
}

impl PayeeCheck for Validation {
    fn applies(&self, payee: &Account) -> bool {
        payee
            .c2b_urls()
            .is_some_and(|urls| urls.validation_url.is_some())
    }

    fn check<'a>(&'a self, order: &'a TransferOrder, payee: &'a Account) -> CheckFuture<'a> {
        Box::pin(async move {
            let Some(urls) = payee.c2b_urls() else {
                return Ok(());
            };
            let Some(url) = &urls.validation_url else {
                return Ok(());
            };
            let business = match &order.to {
                tuma_actors::AccountRef::Business(b) => b.as_str().to_string(),
                _ => return Ok(()),
            };
            let msisdn = match &order.from {
                tuma_actors::AccountRef::Customer(m) if urls.masked_msisdn => masked(m),
                tuma_actors::AccountRef::Customer(m) => m.as_str().to_string(),
                _ => return Ok(()),
            };
            let body = payload(
                order.kind,
                "",
                tuma_service::unix_ms(),
                order.amount.cents(),
                &business,
                order.account_reference.as_deref().unwrap_or(""),
                "",
                &msisdn,
                "",
            );
            let answer = self
                .client
                .post(url)
                .timeout(self.timeout)
                .json(&body)
                .send()
                .await;
            let verdict = match answer {
                Ok(response) if response.status().is_success() => response
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| text(&v, "ResultCode")),
                _ => None,
            };
            metrics::counter!("tuma_daraja_validations_total").increment(1);
            match verdict.as_deref() {
                Some("0") => Ok(()),
                Some(code) if code.starts_with("C2B") => Err(ResultCode::RejectedByPayee),
                // No usable answer in time: the registered default.
                _ if urls.completes_by_default => Ok(()),
                _ => Err(ResultCode::RejectedByPayee),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use tuma_actors::account::Shortcode;
    use tuma_actors::money::Money;

    use super::*;

    #[test]
    fn confirmations_have_darajas_shape_and_v2_masks_the_msisdn() {
        let event = |masked_msisdn| CallbackEvent::C2bConfirmation {
            receipt: "RKL51ZDR4F".parse().unwrap(),
            kind: TransferKind::PayBill,
            amount: Money::from_cents(500),
            business: Shortcode::parse("600966").unwrap(),
            bill_ref: "Sample Transaction".into(),
            msisdn: Msisdn::parse("254708374126").unwrap(),
            first_name: "Nicholas Songok".into(),
            org_balance: Money::from_cents(2_500),
            completed_ms: 1_700_558_005_000,
            masked_msisdn,
        };
        let body = c2b_confirmation_body(&event(true)).unwrap();
        assert_eq!(
            body,
            json!({"TransactionType": "Pay Bill", "TransID": "RKL51ZDR4F",
                "TransTime": "20231121121325", "TransAmount": "5.00",
                "BusinessShortCode": "600966", "BillRefNumber": "Sample Transaction",
                "InvoiceNumber": "", "OrgAccountBalance": "25.00", "ThirdPartyTransID": "",
                "MSISDN": "2547 ***** 126", "FirstName": "NICHOLAS", "MiddleName": "",
                "LastName": ""})
        );
        let plain = c2b_confirmation_body(&event(false)).unwrap();
        assert_eq!(plain["MSISDN"], "254708374126");
    }
}

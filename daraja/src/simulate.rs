//! C2B simulate (`POST /mpesa/c2b/v1/simulate`, `/v2/simulate`), as in Daraja's sandbox: a
//! registered test customer pays the business, with no phone in the loop, so a business can
//! exercise its validation and confirmation URLs. Only on clusters started with
//! `--daraja-simulate-pin` (sandboxes): the payment is submitted with that PIN, so only test
//! customers holding it can be made to pay, and a wrong one counts toward their lockout like
//! any other. Elsewhere the path answers Daraja's `404.001.01`, as production does.
//!
//! Acknowledged at once; the payment runs after the answer (validation first, when
//! registered) and the business learns its outcome from its confirmation URL.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use tuma_actors::account::{AccountRef, Shortcode};
use tuma_actors::money::Money;
use tuma_actors::roles::Role;
use tuma_actors::transfer::{TransferId, TransferKind};
use tuma_service::TransferOrder;

use crate::envelope::{required, text, whole_shillings, DarajaError};
use crate::express::{json_body, msisdn};
use crate::oauth::bearer;
use crate::{ids, Daraja};

/// Daraja's `BillRefNumber` limit.
const BILL_REF_LEN_MAX: usize = 20;
/// How long a simulated payment may take.
const PAYMENT_WAIT: Duration = Duration::from_secs(15);

pub(crate) async fn simulate(
    State(daraja): State<Daraja>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, DarajaError> {
    let Some(pin) = daraja.config().simulate_pin.clone() else {
        return Err(DarajaError::not_found());
    };
    if !matches!(version.as_str(), "v1" | "v2") {
        return Err(DarajaError::not_found());
    }
    let body = json_body(body)?;
    let business = bearer(&daraja, &headers)?;
    let payee = Shortcode::parse(&required(&body, "ShortCode")?)
        .map_err(|_| DarajaError::invalid("ShortCode"))?;
    if payee != business {
        return Err(DarajaError::invalid("ShortCode"));
    }
    let kind = match required(&body, "CommandID")?.as_str() {
        "CustomerPayBillOnline" => TransferKind::PayBill,
        "CustomerBuyGoodsOnline" => TransferKind::BuyGoods,
        _ => return Err(DarajaError::invalid("CommandID")),
    };
    let amount = whole_shillings(&body, "Amount")?;
    let customer = msisdn(&body, "Msisdn")?;
    let bill_ref = text(&body, "BillRefNumber").unwrap_or_default();
    let needs_ref = kind == TransferKind::PayBill;
    if (needs_ref && bill_ref.is_empty())
        || bill_ref.chars().count() > BILL_REF_LEN_MAX
        || bill_ref.chars().any(char::is_control)
    {
        return Err(DarajaError::invalid("BillRefNumber"));
    }
    let originator = ids::request_id();
    let id = TransferId::parse(&format!("c2bsim:{originator}"))
        .map_err(|_| DarajaError::invalid("Request"))?;
    let order = TransferOrder {
        id,
        kind,
        from: AccountRef::Customer(customer),
        to: AccountRef::Business(payee),
        amount: Money::from_cents(amount * 100),
        account_reference: needs_ref.then_some(bill_ref),
        pin: Some(pin),
        wait: PAYMENT_WAIT,
        initiator: Role::Customer,
    };
    let service = daraja.service().clone();
    tokio::spawn(async move {
        if let Err(error) = service.transfer(order).await {
            tracing::debug!(%error, "simulated C2B payment not made");
        }
    });
    metrics::counter!("tuma_daraja_c2b_simulated_total").increment(1);
    // Daraja's sandbox spells it `OriginatorCoversationID`; clients also read the correct
    // spelling: both are sent.
    Ok(Json(json!({
        "OriginatorCoversationID": originator,
        "OriginatorConversationID": originator,
        "ResponseCode": "0",
        "ResponseDescription": "Accept the service request successfully.",
    })))
}

//! Reversal (`POST /mpesa/reversal/v1/request`): a business sends back a payment it received,
//! named by its receipt (`TransactionID`) and amount. It is a payout order of kind `Reversal`
//! (see `payouts.rs`): acknowledged at once, its `Result` posted to `ResultURL`. The ledger
//! reverses a payment once, only from the account it credited, for its amount; a receipt that
//! is not this business's committed payment answers `R000002`, as Daraja does.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use tuma_actors::account::AccountRef;
use tuma_actors::ledger::HistorySide;
use tuma_actors::transfer::TransferKind;
use tuma_actors::txn_id::TransactionId;

use crate::envelope::{required, whole_shillings, DarajaError};
use crate::express::json_body;
use crate::payouts::{initiated, occasion, order, place, refuse, refuse_initiator, OrderLine};
use crate::Daraja;

const INVALID_ORIGINAL: &str = "The OriginalTransactionID is invalid.";

pub(crate) async fn request(
    State(daraja): State<Daraja>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, DarajaError> {
    let body = json_body(body)?;
    let request = initiated(&daraja, &headers, &body, "Initiator", "ReceiverParty").await?;
    if required(&body, "CommandID")? != "TransactionReversal" {
        return Err(DarajaError::invalid("CommandID"));
    }
    // Daraja's own spelling, and its rule: the receiver is an organisation (11). Clients that
    // cannot send 11 (the Rust `mpesa` crate knows only 1, 2 and 4) send a shortcode's 4.
    let identifier = required(&body, "RecieverIdentifierType")
        .or_else(|_| required(&body, "ReceiverIdentifierType"))?;
    if !matches!(identifier.as_str(), "11" | "4") {
        return Err(DarajaError::invalid("RecieverIdentifierType"));
    }
    let amount = whole_shillings(&body, "Amount")?;
    let receipt = required(&body, "TransactionID")?;
    let occasion = occasion(&body)?;
    if !request.initiator_valid {
        return refuse_initiator(&daraja, &request).await;
    }
    let Ok(txn_id) = TransactionId::parse(&receipt) else {
        return refuse(&daraja, &request, json!("R000002"), INVALID_ORIGINAL).await;
    };
    // The payment's payer is who gets the money back; the ledger checks the rest.
    let rows = daraja.service().receipt(txn_id).await.unwrap_or_default();
    let business = AccountRef::Business(request.business.clone());
    let payer = rows
        .iter()
        .find(|r| r.side == HistorySide::Payer && r.committed() && r.counterparty == business)
        .map(|r| r.account.clone());
    let Some(payer) = payer else {
        return refuse(&daraja, &request, json!("R000002"), INVALID_ORIGINAL).await;
    };
    let line = OrderLine {
        kind: TransferKind::Reversal,
        to: payer,
        amount,
        account_reference: None,
        reverses: Some(txn_id),
        command: "TransactionReversal".into(),
        occasion,
    };
    let order = order(&daraja, &request, line);
    place(&daraja, order).await
}

//! Transaction status (`POST /mpesa/transactionstatus/v1/query`) and account balance
//! (`POST /mpesa/accountbalance/v1/query`): acknowledged at once, answered by a `Result`
//! posted to the request's `ResultURL` from the business's callback outbox, like every other
//! result. The answer is read on the shards' leaders when the request arrives.
//!
//! A status query names a payout order by its `OriginalConversationID`, or any transfer the
//! business paid or was paid by its receipt (`TransactionID`); one the business is no party
//! to is answered as not found (`R000002`), never shown.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use tuma_actors::account::AccountRef;
use tuma_actors::ledger::{HistorySide, PayoutState, Wallets};
use tuma_actors::money::Money;
use tuma_actors::roles::AccountKind;
use tuma_actors::txn_id::TransactionId;
use tuma_service::unix_ms;
use tuma_service::PayoutLookup;

use crate::envelope::{required, text, DarajaError};
use crate::express::json_body;
use crate::payouts::{accepted, initiated, queue_result, refuse_initiator, Initiated};
use crate::results::{
    account_balance_list, parameter, payout_result, result_body, shillings, single_reference,
    timestamp_number, ResultHead, NO_TRANSACTION,
};
use crate::{ids, Daraja};

pub(crate) async fn balance(
    State(daraja): State<Daraja>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, DarajaError> {
    let body = json_body(body)?;
    let request = initiated(&daraja, &headers, &body, "Initiator", "PartyA").await?;
    if required(&body, "CommandID")? != "AccountBalance" {
        return Err(DarajaError::invalid("CommandID"));
    }
    if !request.initiator_valid {
        return refuse_initiator(&daraja, &request).await;
    }
    let now = unix_ms();
    let conversation_id = ids::conversation_id(now);
    let wallets = Wallets::of(&request.account);
    let list = account_balance_list(&wallets, request.account.kind == AccountKind::Till);
    let parameters = vec![
        parameter("AccountBalance", json!(list)),
        parameter("BOCompletedTime", json!(timestamp_number(now))),
    ];
    let result = success(&request, &conversation_id, parameters);
    queue_result(&daraja, &request, result).await?;
    Ok(accepted(&conversation_id, &request.originator_id))
}

pub(crate) async fn status(
    State(daraja): State<Daraja>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, DarajaError> {
    let body = json_body(body)?;
    let request = initiated(&daraja, &headers, &body, "Initiator", "PartyA").await?;
    if required(&body, "CommandID")? != "TransactionStatusQuery" {
        return Err(DarajaError::invalid("CommandID"));
    }
    let original = text(&body, "OriginalConversationID").filter(|t| !t.is_empty());
    let receipt = text(&body, "TransactionID").filter(|t| !t.is_empty());
    if original.is_none() && receipt.is_none() {
        return Err(DarajaError::invalid("TransactionID"));
    }
    if !request.initiator_valid {
        return refuse_initiator(&daraja, &request).await;
    }
    let conversation_id = ids::conversation_id(unix_ms());
    // The business's key names a payout; otherwise the receipt names a transfer.
    let found = match original {
        Some(original) => payout_status(&daraja, &request, &original).await?,
        None => {
            let receipt = receipt.unwrap_or_default();
            receipt_status(&daraja, &request, &receipt).await?
        }
    };
    let result = match found {
        Some(parameters) => success(&request, &conversation_id, parameters),
        None => result_body(
            ResultHead {
                code: json!("R000002"),
                description: "The OriginalTransactionID is invalid.",
                originator_id: &request.originator_id,
                conversation_id: &conversation_id,
                transaction_id: NO_TRANSACTION,
            },
            Vec::new(),
            single_reference("QueueTimeoutURL", &request.queue_timeout_url),
        ),
    };
    queue_result(&daraja, &request, result).await?;
    Ok(accepted(&conversation_id, &request.originator_id))
}

fn success(request: &Initiated, conversation_id: &str, parameters: Vec<Value>) -> Value {
    result_body(
        ResultHead {
            code: json!(0),
            description: "The service request is processed successfully.",
            originator_id: &request.originator_id,
            conversation_id,
            transaction_id: NO_TRANSACTION,
        },
        parameters,
        single_reference("QueueTimeoutURL", &request.queue_timeout_url),
    )
}

/// One status answer's parameters.
struct Status {
    debit_party: String,
    credit_party: String,
    originator_id: String,
    conversation_id: String,
    initiated_ms: u64,
    finalised_ms: Option<u64>,
    amount: Money,
    fee: Money,
    status: &'static str,
    reason: String,
    receipt: Option<TransactionId>,
}

fn parameters(status: Status) -> Vec<Value> {
    vec![
        parameter("DebitPartyName", json!(status.debit_party)),
        parameter("CreditPartyName", json!(status.credit_party)),
        parameter("OriginatorConversationID", json!(status.originator_id)),
        parameter(
            "InitiatedTime",
            json!(timestamp_number(status.initiated_ms)),
        ),
        parameter("DebitAccountType", json!("Utility Account")),
        parameter(
            "DebitPartyCharges",
            json!(if status.fee.is_positive() {
                format!("Fee|KES|{}", status.fee)
            } else {
                String::new()
            }),
        ),
        parameter("TransactionReason", json!(status.reason)),
        parameter("ReasonType", json!("")),
        parameter("TransactionStatus", json!(status.status)),
        parameter(
            "FinalisedTime",
            json!(status.finalised_ms.map(timestamp_number).unwrap_or(0)),
        ),
        parameter("Amount", shillings(status.amount)),
        parameter("ConversationID", json!(status.conversation_id)),
        parameter(
            "ReceiptNo",
            json!(status.receipt.map(|r| r.to_string()).unwrap_or_default()),
        ),
    ]
}

/// A payout order of this business by its key.
async fn payout_status(
    daraja: &Daraja,
    request: &Initiated,
    original: &str,
) -> Result<Option<Vec<Value>>, DarajaError> {
    let payout = daraja
        .service()
        .payout(
            &request.business,
            PayoutLookup::ByOriginatorId(original.to_string()),
        )
        .await
        .map_err(|_| DarajaError::unavailable())?;
    let Some(payout) = payout else {
        return Ok(None);
    };
    let (status, reason, finalised_ms, receipt) = match &payout.state {
        PayoutState::Queued | PayoutState::Paying => ("Pending", String::new(), None, None),
        PayoutState::Closed {
            result,
            txn_id,
            closed_ms,
        } => {
            let status = if result.is_success() {
                "Completed"
            } else {
                "Failed"
            };
            let reason = payout_result(*result).1.to_string();
            (status, reason, Some(*closed_ms), *txn_id)
        }
    };
    Ok(Some(parameters(Status {
        debit_party: format!("{} - {}", request.business.as_str(), request.account.name),
        credit_party: payout.request.to.to_string(),
        originator_id: payout.request.originator_id.clone(),
        conversation_id: payout.request.conversation_id.clone(),
        initiated_ms: payout.opened_ms,
        finalised_ms,
        amount: payout.request.amount,
        fee: Money::ZERO,
        status,
        reason,
        receipt,
    })))
}

/// A finished transfer by its receipt, if this business paid it or was paid by it.
async fn receipt_status(
    daraja: &Daraja,
    request: &Initiated,
    receipt: &str,
) -> Result<Option<Vec<Value>>, DarajaError> {
    let Ok(txn_id) = TransactionId::parse(receipt) else {
        return Ok(None);
    };
    let Ok(rows) = daraja.service().receipt(txn_id).await else {
        // A receipt naming no shard of this cluster is simply not found.
        return Ok(None);
    };
    let business = AccountRef::Business(request.business.clone());
    let Some(payer_row) = rows.iter().find(|r| r.side == HistorySide::Payer) else {
        return Ok(None);
    };
    let (payer, payee) = (&payer_row.account, &payer_row.counterparty);
    if *payer != business && *payee != business {
        return Ok(None);
    }
    let committed = payer_row.committed();
    Ok(Some(parameters(Status {
        debit_party: party(daraja, payer).await,
        credit_party: party(daraja, payee).await,
        originator_id: request.originator_id.clone(),
        conversation_id: payer_row.transfer.to_string(),
        initiated_ms: payer_row.completed_ms,
        finalised_ms: Some(payer_row.completed_ms),
        amount: Money::from_cents(payer_row.amount_cents.abs() - payer_row.fee.cents()),
        fee: payer_row.fee,
        status: if committed { "Completed" } else { "Failed" },
        reason: payer_row.kind.name().to_string(),
        receipt: payer_row.receipt,
    })))
}

/// `<number> - <name>` as Daraja names a party.
async fn party(daraja: &Daraja, account: &AccountRef) -> String {
    match daraja.service().account(account).await {
        Ok(Some(record)) => format!("{account} - {}", record.name),
        _ => account.to_string(),
    }
}

//! B2C (`POST /mpesa/b2c/v1/paymentrequest`, `/v3/`) and B2B (`POST /mpesa/b2b/v1/paymentrequest`):
//! the business's order is checked, its initiator authenticated, the order recorded on the
//! business's shard under its `OriginatorConversationID` (a key used before is Daraja's
//! `500.002.1001` duplicate, never a second payment), and acknowledged with our
//! `ConversationID`; the payment runs after the answer and its `Result` goes to the order's
//! `ResultURL` from the shard's callback outbox (`QueueTimeOutURL` if it never started).
//!
//! A wrong initiator or `SecurityCredential` is answered as Daraja does: the request is
//! acknowledged and its `Result` carries `2001 The initiator information is invalid.`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use tuma_actors::account::{AccountRef, Shortcode};
use tuma_actors::ledger::{Account, PayoutRequest};
use tuma_actors::money::Money;
use tuma_actors::outcome::ResultCode;
use tuma_actors::roles::AccountKind;
use tuma_actors::transfer::TransferKind;
use tuma_service::{unix_ms, ServiceError, TransferOutcome};

use crate::envelope::{required, text, whole_shillings, DarajaError};
use crate::express::{json_body, msisdn, short_text};
use crate::oauth::{bearer, business_account};
use crate::results::{result_body, single_reference, ResultHead, NO_TRANSACTION};
use crate::urls::URL_LEN_MAX;
use crate::{ids, Daraja};

/// Daraja's limits.
const REMARKS_LEN_MAX: usize = 100;
const B2B_ACCOUNT_REFERENCE_LEN_MAX: usize = 13;
/// Tries at submitting an order's payment while the cluster is busy or between leaders.
const PAY_TRIES: u32 = 5;

/// What every initiated request (payouts, status, balance) carries, checked.
pub(crate) struct Initiated {
    pub business: Shortcode,
    pub account: Account,
    pub originator_id: String,
    pub result_url: String,
    pub queue_timeout_url: String,
    pub remarks: String,
    /// Whether `Initiator` and `SecurityCredential` are genuine.
    pub initiator_valid: bool,
}

/// Checks the parts of an initiated request every API shares: the token's business is the
/// body's `party_field`, the callback URLs are allowed, the initiator is authenticated.
pub(crate) async fn initiated(
    daraja: &Daraja,
    headers: &HeaderMap,
    body: &Value,
    initiator_field: &str,
    party_field: &str,
) -> Result<Initiated, DarajaError> {
    let business = bearer(daraja, headers)?;
    if required(body, party_field)? != business.as_str() {
        return Err(DarajaError::invalid(party_field));
    }
    let originator_id = match text(body, "OriginatorConversationID").filter(|t| !t.is_empty()) {
        Some(id) if tuma_actors::ledger::valid_conversation_id(&id) => id,
        Some(_) => return Err(DarajaError::invalid("OriginatorConversationID")),
        None => ids::originator_conversation_id(),
    };
    let urls = &daraja.config().urls;
    let result_url = urls.check("ResultURL", &required(body, "ResultURL")?)?;
    let queue_timeout_url = urls.check("QueueTimeOutURL", &required(body, "QueueTimeOutURL")?)?;
    let remarks = short_text(body, "Remarks", REMARKS_LEN_MAX, false)?;
    let name = required(body, initiator_field)?;
    let credential = required(body, "SecurityCredential")?;
    let account = business_account(daraja, &business).await?;
    let initiator_valid = daraja.initiator_valid(&account, &name, &credential).await;
    if !initiator_valid {
        metrics::counter!("tuma_daraja_initiator_refusals_total").increment(1);
    }
    Ok(Initiated {
        business,
        account,
        originator_id,
        result_url: result_url.to_string(),
        queue_timeout_url: queue_timeout_url.to_string(),
        remarks,
        initiator_valid,
    })
}

/// Daraja's synchronous acknowledgement.
pub(crate) fn accepted(conversation_id: &str, originator_id: &str) -> Json<Value> {
    Json(json!({
        "ConversationID": conversation_id,
        "OriginatorConversationID": originator_id,
        "ResponseCode": "0",
        "ResponseDescription": "Accept the service request successfully.",
    }))
}

/// Acknowledges a request whose initiator was not authenticated and queues its `2001`
/// result, as Daraja reports a wrong credential.
pub(crate) async fn refuse_initiator(
    daraja: &Daraja,
    request: &Initiated,
) -> Result<Json<Value>, DarajaError> {
    refuse(
        daraja,
        request,
        json!(2001),
        "The initiator information is invalid.",
    )
    .await
}

/// Acknowledges a request refused before anything was ordered and queues its failed result.
pub(crate) async fn refuse(
    daraja: &Daraja,
    request: &Initiated,
    code: Value,
    description: &str,
) -> Result<Json<Value>, DarajaError> {
    let conversation_id = ids::conversation_id(unix_ms());
    let head = ResultHead {
        code,
        description,
        originator_id: &request.originator_id,
        conversation_id: &conversation_id,
        transaction_id: NO_TRANSACTION,
    };
    let body = result_body(
        head,
        Vec::new(),
        single_reference("QueueTimeoutURL", &request.queue_timeout_url),
    );
    queue_result(daraja, request, body).await?;
    Ok(accepted(&conversation_id, &request.originator_id))
}

/// Queues a rendered result for the request's `ResultURL`.
pub(crate) async fn queue_result(
    daraja: &Daraja,
    request: &Initiated,
    body: Value,
) -> Result<(), DarajaError> {
    match daraja
        .service()
        .queue_callback(
            request.business.clone(),
            request.result_url.clone(),
            body.to_string(),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(ServiceError::Refused(ResultCode::Overloaded)) => Err(DarajaError::throttled()),
        Err(_) => Err(DarajaError::unavailable()),
    }
}

pub(crate) async fn b2c(
    State(daraja): State<Daraja>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, DarajaError> {
    if !matches!(version.as_str(), "v1" | "v3") {
        return Err(DarajaError::not_found());
    }
    let body = json_body(body)?;
    // v3 makes the business's key mandatory; v1 requests without one get ours.
    if version == "v3" && text(&body, "OriginatorConversationID").is_none_or(|t| t.is_empty()) {
        return Err(DarajaError::invalid("OriginatorConversationID"));
    }
    let request = initiated(&daraja, &headers, &body, "InitiatorName", "PartyA").await?;
    if !matches!(
        required(&body, "CommandID")?.as_str(),
        "SalaryPayment" | "BusinessPayment" | "PromotionPayment"
    ) {
        return Err(DarajaError::invalid("CommandID"));
    }
    let amount = whole_shillings(&body, "Amount")?;
    let payee = msisdn(&body, "PartyB")?;
    let occasion = occasion(&body)?;
    if !request.initiator_valid {
        return refuse_initiator(&daraja, &request).await;
    }
    let order = order(
        &daraja,
        &request,
        OrderLine {
            kind: TransferKind::BusinessToCustomer,
            to: AccountRef::Customer(payee),
            amount,
            account_reference: None,
            reverses: None,
            command: required(&body, "CommandID")?,
            occasion,
        },
    );
    place(&daraja, order).await
}

pub(crate) async fn b2b(
    State(daraja): State<Daraja>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, DarajaError> {
    let body = json_body(body)?;
    let request = initiated(&daraja, &headers, &body, "Initiator", "PartyA").await?;
    let command = required(&body, "CommandID")?;
    let payee_kind = match command.as_str() {
        "BusinessPayBill" => AccountKind::Paybill,
        "BusinessBuyGoods" => AccountKind::Till,
        "BusinessTransferFromMMFToUtility" => {
            return crate::wallets::working_to_utility(&daraja, &body, request).await
        }
        _ => return Err(DarajaError::invalid("CommandID")),
    };
    let amount = whole_shillings(&body, "Amount")?;
    let payee = Shortcode::parse(&required(&body, "PartyB")?)
        .map_err(|_| DarajaError::invalid("PartyB"))?;
    let reference = short_text(
        &body,
        "AccountReference",
        B2B_ACCOUNT_REFERENCE_LEN_MAX,
        payee_kind == AccountKind::Paybill,
    )?;
    if !request.initiator_valid {
        return refuse_initiator(&daraja, &request).await;
    }
    // A payee of the wrong kind is a bad request; an unknown one fails in the result (2040).
    if let Ok(Some(account)) = daraja
        .service()
        .account(&AccountRef::Business(payee.clone()))
        .await
    {
        if account.kind != payee_kind {
            return Err(DarajaError::invalid("CommandID"));
        }
    }
    let order = order(
        &daraja,
        &request,
        OrderLine {
            kind: TransferKind::BusinessToBusiness,
            to: AccountRef::Business(payee),
            amount,
            account_reference: (!reference.is_empty()).then_some(reference),
            reverses: None,
            command,
            occasion: String::new(),
        },
    );
    place(&daraja, order).await
}

/// Daraja spells it `Occassion` in B2C; clients send either.
pub(crate) fn occasion(body: &Value) -> Result<String, DarajaError> {
    let field = if body.get("Occassion").is_some() {
        "Occassion"
    } else {
        "Occasion"
    };
    short_text(body, field, REMARKS_LEN_MAX, false)
}

/// What differs between B2C, B2B and reversal orders.
pub(crate) struct OrderLine {
    pub kind: TransferKind,
    pub to: AccountRef,
    /// Whole shillings.
    pub amount: i64,
    pub account_reference: Option<String>,
    pub reverses: Option<tuma_actors::txn_id::TransactionId>,
    pub command: String,
    pub occasion: String,
}

pub(crate) fn order(daraja: &Daraja, request: &Initiated, line: OrderLine) -> PayoutRequest {
    let now = unix_ms();
    debug_assert!(request.result_url.len() <= URL_LEN_MAX);
    PayoutRequest {
        conversation_id: ids::conversation_id(now),
        originator_id: request.originator_id.clone(),
        business: request.business.clone(),
        kind: line.kind,
        to: line.to,
        amount: Money::from_cents(line.amount * 100),
        account_reference: line.account_reference,
        reverses: line.reverses,
        command: line.command,
        remarks: request.remarks.clone(),
        occasion: line.occasion,
        result_url: request.result_url.clone(),
        queue_timeout_url: request.queue_timeout_url.clone(),
        expires_ms: now + daraja.config().payout_queue_timeout.as_millis() as u64,
    }
}

/// Records the order, acknowledges it, and pays it after the answer.
pub(crate) async fn place(
    daraja: &Daraja,
    order: PayoutRequest,
) -> Result<Json<Value>, DarajaError> {
    match daraja.service().open_payout(order.clone()).await {
        Ok(()) => {}
        Err(ServiceError::Refused(code)) => return Err(order_refusal(code)),
        Err(_) => return Err(DarajaError::unavailable()),
    }
    metrics::counter!("tuma_daraja_payouts_ordered_total").increment(1);
    let service = daraja.service().clone();
    let paying = order.clone();
    tokio::spawn(async move { pay(service, paying).await });
    Ok(accepted(&order.conversation_id, &order.originator_id))
}

/// Submits an order's payment, trying again while the cluster is busy; an order that never
/// starts times out to its `QueueTimeOutURL` in the ledger, nothing paid.
async fn pay(service: tuma_service::Service, order: PayoutRequest) {
    for attempt in 1..=PAY_TRIES {
        match service.pay_payout(&order).await {
            Ok(TransferOutcome::Decided { .. }) => return,
            // Still under way: the order closes with its payment.
            Ok(TransferOutcome::Undecided { .. }) => return,
            Err(ServiceError::Refused(code)) if code != ResultCode::Overloaded => return,
            Err(error) => {
                tracing::debug!(%error, attempt, conversation = %order.conversation_id, "payout payment not submitted");
                if unix_ms() >= order.expires_ms {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt)))
                    .await;
            }
        }
    }
}

/// Why an order was not recorded, as Daraja answers it.
fn order_refusal(code: ResultCode) -> DarajaError {
    match code {
        ResultCode::IdempotencyConflict => DarajaError::new(
            StatusCode::CONFLICT,
            "500.002.1001",
            "Duplicate OriginatorConversationID",
        ),
        ResultCode::Overloaded => DarajaError::throttled(),
        ResultCode::UnknownAccount => DarajaError::merchant("Merchant does not exist"),
        ResultCode::InvalidAmount => DarajaError::invalid("Amount"),
        _ => DarajaError::invalid("Request"),
    }
}

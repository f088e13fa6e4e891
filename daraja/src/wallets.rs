//! A business moving money between its own accounts through the API: B2B's
//! `BusinessTransferFromMMFToUtility` brings money set aside in its Working (MMF) account back
//! to its Utility account, where payouts can spend it. Acknowledged at once; the `Result` goes
//! to `ResultURL` like any B2B result. (Care moves money either way with
//! `POST /admin/v1/businesses/{shortcode}/wallets/moves`.)

use axum::Json;
use serde_json::{json, Value};
use tuma_actors::account::{AccountRef, Shortcode};
use tuma_actors::ledger::{Wallet, Wallets};
use tuma_actors::money::Money;
use tuma_actors::outcome::ResultCode;
use tuma_service::{unix_ms, ServiceError};

use crate::envelope::{required, whole_shillings, DarajaError};
use crate::payouts::{accepted, queue_result, refuse, refuse_initiator, Initiated};
use crate::results::{
    parameter, result_body, shillings, single_reference, timestamp_number, ResultHead,
    NO_TRANSACTION,
};
use crate::{ids, Daraja};

pub(crate) async fn working_to_utility(
    daraja: &Daraja,
    body: &Value,
    request: Initiated,
) -> Result<Json<Value>, DarajaError> {
    let amount = whole_shillings(body, "Amount")?;
    let own =
        Shortcode::parse(&required(body, "PartyB")?).map_err(|_| DarajaError::invalid("PartyB"))?;
    if own != request.business {
        return Err(DarajaError::invalid("PartyB"));
    }
    if !request.initiator_valid {
        return refuse_initiator(daraja, &request).await;
    }
    let amount = Money::from_cents(amount * 100);
    let moved = daraja
        .service()
        .move_between_wallets(
            request.business.clone(),
            Wallet::Working,
            Wallet::Utility,
            amount,
        )
        .await;
    match moved {
        Ok(()) => {}
        Err(ServiceError::Refused(ResultCode::InsufficientFunds)) => {
            return refuse(
                daraja,
                &request,
                json!(1),
                "The balance is insufficient for the transaction.",
            )
            .await
        }
        Err(ServiceError::Refused(_)) => return Err(DarajaError::invalid("Request")),
        Err(_) => return Err(DarajaError::unavailable()),
    }
    let wallets = daraja
        .service()
        .account(&AccountRef::Business(request.business.clone()))
        .await
        .ok()
        .flatten()
        .map(|a| Wallets::of(&a))
        .unwrap_or_default();
    let now = unix_ms();
    let conversation_id = ids::conversation_id(now);
    let working = format!("Working Account|KES|{}", wallets.working);
    let parameters = vec![
        parameter("DebitAccountBalance", json!(working)),
        parameter("Amount", shillings(amount)),
        parameter("TransCompletedTime", json!(timestamp_number(now))),
        parameter(
            "InitiatorAccountCurrentBalance",
            json!(format!("Utility Account|KES|{}", wallets.utility)),
        ),
        parameter("Currency", json!("KES")),
    ];
    let body = result_body(
        ResultHead {
            code: json!(0),
            description: "The service request is processed successfully.",
            originator_id: &request.originator_id,
            conversation_id: &conversation_id,
            transaction_id: NO_TRANSACTION,
        },
        parameters,
        json!([single_reference(
            "QueueTimeoutURL",
            &request.queue_timeout_url
        )]),
    );
    queue_result(daraja, &request, body).await?;
    Ok(accepted(&conversation_id, &request.originator_id))
}

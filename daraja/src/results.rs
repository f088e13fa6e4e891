//! The asynchronous `Result` bodies Daraja posts to a request's `ResultURL` (B2C, B2B,
//! transaction status, account balance) and to its `QueueTimeOutURL`, in Daraja's shapes
//! with their quirks: `ResultCode` a number (alphanumeric for a few codes), the B2C
//! `ReferenceItem` a single object but the B2B one an array.
//!
//! Amounts are held as integer cents everywhere; they become JSON numbers (shillings with two
//! decimals, as Daraja sends them) only here, at the wire.

use serde_json::{json, Value};
use tuma_actors::ledger::{CallbackEvent, Wallets};
use tuma_actors::money::Money;
use tuma_actors::outcome::ResultCode;
use tuma_actors::transfer::TransferKind;

use crate::ids;

/// The `TransactionID` of a result that moved no money (Daraja: a prefix and zeros).
pub const NO_TRANSACTION: &str = "OAK0000000";

/// Shillings as Daraja writes them in results (`8959269.60` → a JSON number).
pub fn shillings(amount: Money) -> Value {
    // Exact for every balance below 2^53 cents; this is display, never arithmetic.
    json!(amount.cents() as f64 / 100.0)
}

/// `Name|Currency|Available|Uncleared|Reserved|Unreconciled` for one account.
fn balance_line(name: &str, amount: Money) -> String {
    format!("{name}|KES|{amount}|{amount}|0.00|0.00")
}

/// Account Balance's `AccountBalance` parameter: every account, `&`-separated. A till's
/// payments land in its Merchant account, a paybill's in its Utility account.
pub fn account_balance_list(wallets: &Wallets, till: bool) -> String {
    let landing = if till {
        "Merchant Account"
    } else {
        "Utility Account"
    };
    [
        balance_line("Working Account", wallets.working),
        balance_line("Float Account", Money::ZERO),
        balance_line(landing, wallets.utility),
        balance_line("Charges Paid Account", wallets.charges_paid),
        balance_line("Organization Settlement Account", wallets.settlement),
    ]
    .join("&")
}

/// A payout's outcome as Daraja's `ResultCode` and `ResultDesc`.
pub fn payout_result(code: ResultCode) -> (Value, &'static str) {
    let (number, description) = match code {
        ResultCode::UnknownPayee | ResultCode::UnknownAccount => {
            (2040, "The receiver is not a registered customer.")
        }
        ResultCode::AccountInactive => {
            (2006, "The account status does not allow this transaction.")
        }
        ResultCode::DeadlinePassed => (
            100_000_001,
            "The request could not be processed in time; nothing was paid.",
        ),
        ResultCode::IdempotencyConflict => (15, "Duplicate Detected"),
        ResultCode::ReversalRefused => (1, "The balance is insufficient for the transaction."),
        ResultCode::NotReversible => {
            return (json!("R000002"), "The OriginalTransactionID is invalid.")
        }
        other => crate::daraja_result(other),
    };
    (json!(number), description)
}

/// One `{"Key", "Value"}` of `ResultParameters`.
pub fn parameter(key: &str, value: Value) -> Value {
    json!({"Key": key, "Value": value})
}

/// A `Result` envelope.
pub struct ResultHead<'a> {
    pub code: Value,
    pub description: &'a str,
    pub originator_id: &'a str,
    pub conversation_id: &'a str,
    pub transaction_id: &'a str,
}

/// `{"Result": {...}}` with its parameters (none on failure) and reference items.
pub fn result_body(head: ResultHead<'_>, parameters: Vec<Value>, reference: Value) -> Value {
    let mut result = json!({
        "ResultType": 0,
        "ResultCode": head.code,
        "ResultDesc": head.description,
        "OriginatorConversationID": head.originator_id,
        "ConversationID": head.conversation_id,
        "TransactionID": head.transaction_id,
    });
    if !parameters.is_empty() {
        result["ResultParameters"] = json!({ "ResultParameter": parameters });
    }
    if !reference.is_null() {
        result["ReferenceData"] = json!({ "ReferenceItem": reference });
    }
    json!({ "Result": result })
}

/// B2C's reference data: one object.
pub fn single_reference(key: &str, value: &str) -> Value {
    json!({"Key": key, "Value": value})
}

/// What a closed payout order posts: to its `ResultURL`, or to its `QueueTimeOutURL` when it
/// timed out in the queue (`posted_to`). Daraja names its own internal queue endpoint in
/// `ReferenceData`; we name the URL the body is posted to (clients do not read it). `None` for
/// other events.
pub fn payout_body(event: &CallbackEvent, posted_to: &str) -> Option<Value> {
    let CallbackEvent::PayoutClosed {
        conversation_id,
        originator_id,
        kind,
        to,
        amount,
        reverses,
        result,
        txn_id,
        receiver_name,
        wallets,
        closed_ms,
        timed_out: _,
    } = event
    else {
        return None;
    };
    let (code, description) = payout_result(*result);
    let receipt = txn_id
        .filter(|_| result.is_success())
        .map(|t| t.to_string());
    let head = ResultHead {
        code,
        description,
        originator_id,
        conversation_id,
        transaction_id: receipt.as_deref().unwrap_or(NO_TRANSACTION),
    };
    let b2b = *kind == TransferKind::BusinessToBusiness;
    let reference = if b2b {
        json!([single_reference("QueueTimeoutURL", posted_to)])
    } else {
        single_reference("QueueTimeoutURL", posted_to)
    };
    let Some(receipt) = receipt.clone() else {
        return Some(result_body(head, Vec::new(), reference));
    };
    let public_name = format!("{to} - {}", receiver_name.as_deref().unwrap_or(""));
    let parameters = if let Some(original) = reverses {
        vec![
            parameter(
                "DebitAccountBalance",
                json!(balance_line("Utility Account", wallets.utility)),
            ),
            parameter("Amount", shillings(*amount)),
            parameter("TransCompletedTime", json!(timestamp_number(*closed_ms))),
            parameter("OriginalTransactionID", json!(original.to_string())),
            parameter("Charge", shillings(Money::ZERO)),
            parameter("CreditPartyPublicName", json!(public_name)),
            parameter("DebitPartyPublicName", json!("")),
        ]
    } else if b2b {
        let working = balance_line("Working Account", wallets.working);
        vec![
            parameter("DebitAccountBalance", json!(working)),
            parameter("Amount", shillings(*amount)),
            parameter(
                "DebitPartyAffectedAccountBalance",
                json!(balance_line("Utility Account", wallets.utility)),
            ),
            parameter("TransCompletedTime", json!(timestamp_number(*closed_ms))),
            parameter("DebitPartyCharges", json!("")),
            parameter("ReceiverPartyPublicName", json!(public_name)),
            parameter("Currency", json!("KES")),
            parameter("InitiatorAccountCurrentBalance", json!(working)),
        ]
    } else {
        vec![
            parameter("TransactionAmount", shillings(*amount)),
            parameter("TransactionReceipt", json!(receipt)),
            parameter("ReceiverPartyPublicName", json!(public_name)),
            parameter(
                "TransactionCompletedDateTime",
                json!(ids::dotted_time(*closed_ms)),
            ),
            parameter(
                "B2CUtilityAccountAvailableFunds",
                shillings(wallets.utility),
            ),
            parameter(
                "B2CWorkingAccountAvailableFunds",
                shillings(wallets.working),
            ),
            parameter("B2CRecipientIsRegisteredCustomer", json!("Y")),
            parameter(
                "B2CChargesPaidAccountAvailableFunds",
                shillings(wallets.charges_paid),
            ),
        ]
    };
    Some(result_body(head, parameters, reference))
}

/// `YYYYMMDDHHmmss` (EAT) as the number Daraja sends.
pub fn timestamp_number(unix_ms: u64) -> u64 {
    ids::timestamp(unix_ms).parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tuma_actors::account::AccountRef;
    use tuma_actors::msisdn::Msisdn;

    fn closed(kind: TransferKind, result: ResultCode) -> CallbackEvent {
        CallbackEvent::PayoutClosed {
            conversation_id: "AG_20240706_20106e9209f64bebd05b".into(),
            originator_id: "600997_Test_32et3241ed8yu".into(),
            kind,
            to: AccountRef::Customer(Msisdn::parse("254705912645").unwrap()),
            amount: Money::from_cents(1_000),
            reverses: None,
            result,
            txn_id: tuma_actors::txn_id::TransactionId::generate(
                tuma_actors::calendar::CivilTime::from_unix_ms(1_720_295_332_000),
                0,
                1,
            ),
            receiver_name: Some("NICHOLAS".into()),
            wallets: Wallets {
                utility: Money::from_cents(895_926_960),
                working: Money::ZERO,
                charges_paid: Money::from_cents(-198_000),
                settlement: Money::ZERO,
            },
            closed_ms: 1_720_295_332_000,
            timed_out: false,
        }
    }

    #[test]
    fn a_b2c_result_has_darajas_shape() {
        let body = payout_body(
            &closed(TransferKind::BusinessToCustomer, ResultCode::Success),
            "https://example.com/timeout",
        )
        .unwrap();
        let result = &body["Result"];
        assert_eq!(result["ResultCode"], json!(0));
        assert_eq!(result["ResultType"], json!(0));
        assert_eq!(
            result["OriginatorConversationID"],
            "600997_Test_32et3241ed8yu"
        );
        let parameters = result["ResultParameters"]["ResultParameter"]
            .as_array()
            .unwrap();
        let value = |key: &str| {
            parameters
                .iter()
                .find(|p| p["Key"] == key)
                .map(|p| p["Value"].clone())
                .unwrap()
        };
        assert_eq!(value("TransactionAmount"), json!(10.0));
        assert_eq!(value("B2CUtilityAccountAvailableFunds"), json!(8_959_269.6));
        assert_eq!(
            value("B2CChargesPaidAccountAvailableFunds"),
            json!(-1_980.0)
        );
        assert_eq!(value("ReceiverPartyPublicName"), "254705912645 - NICHOLAS");
        assert_eq!(value("TransactionCompletedDateTime"), "06.07.2024 22:48:52");
        assert!(
            result["ReferenceData"]["ReferenceItem"].is_object(),
            "one object in B2C"
        );
    }

    #[test]
    fn a_failed_or_b2b_result_follows_its_own_quirks() {
        let failed = payout_body(
            &closed(
                TransferKind::BusinessToCustomer,
                ResultCode::InsufficientFunds,
            ),
            "u",
        )
        .unwrap();
        assert_eq!(failed["Result"]["ResultCode"], json!(1));
        assert_eq!(failed["Result"]["TransactionID"], NO_TRANSACTION);
        assert!(failed["Result"].get("ResultParameters").is_none());
        let b2b = payout_body(
            &closed(TransferKind::BusinessToBusiness, ResultCode::Success),
            "u",
        )
        .unwrap();
        assert!(
            b2b["Result"]["ReferenceData"]["ReferenceItem"].is_array(),
            "an array in B2B"
        );
    }

    #[test]
    fn the_balance_list_names_every_account() {
        let wallets = Wallets {
            utility: Money::from_cents(22_803_700),
            working: Money::ZERO,
            charges_paid: Money::from_cents(-154_000),
            settlement: Money::ZERO,
        };
        assert_eq!(
            account_balance_list(&wallets, false),
            "Working Account|KES|0.00|0.00|0.00|0.00&Float Account|KES|0.00|0.00|0.00|0.00&\
             Utility Account|KES|228037.00|228037.00|0.00|0.00&\
             Charges Paid Account|KES|-1540.00|-1540.00|0.00|0.00&\
             Organization Settlement Account|KES|0.00|0.00|0.00|0.00"
        );
        assert!(account_balance_list(&wallets, true).contains("Merchant Account|KES|228037.00"));
    }
}

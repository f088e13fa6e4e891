//! Judging M-Pesa Express after a chaos run (pure): every payment the ledger committed produced
//! exactly one callback — one callback id (repeats of one id are at-least-once delivery; two
//! ids for one prompt are two announcements) with `ResultCode` 0 and the payment's receipt —
//! and no callback says "paid" for a prompt whose payment the ledger does not hold.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::callback_receiver::Received;

/// What the ledger holds of the prompts the clients opened.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Every prompt the clients opened (by CheckoutRequestID).
    pub known: BTreeSet<String>,
    /// Those whose payment committed, with its receipt.
    pub committed: BTreeMap<String, String>,
}

/// What M-Pesa Express came to in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpressTally {
    /// Prompts the clients opened (and learned the id of).
    pub prompts: usize,
    /// Of those, paid in the ledger.
    pub paid: usize,
    /// Prompts announced to the business (any outcome, any prompt).
    pub callbacks: usize,
}

/// The receipt a `stkCallback` carries, if any.
fn receipt_of(stk: &Value) -> Option<&str> {
    stk["CallbackMetadata"]["Item"]
        .as_array()?
        .iter()
        .find(|item| item["Name"] == "MpesaReceiptNumber")?["Value"]
        .as_str()
}

/// The violations, and the tally.
pub fn judge(ledger: &Ledger, received: &[Received]) -> (Vec<String>, ExpressTally) {
    let mut announced: BTreeMap<&str, Vec<(&str, &Value)>> = BTreeMap::new();
    for callback in received {
        let stk = &callback.body["Body"]["stkCallback"];
        let checkout = stk["CheckoutRequestID"].as_str().unwrap_or_default();
        announced
            .entry(checkout)
            .or_default()
            .push((callback.id.as_str(), stk));
    }
    let mut violations = Vec::new();
    for (checkout, callbacks) in &announced {
        let ids: BTreeSet<&str> = callbacks.iter().map(|(id, _)| *id).collect();
        if ids.len() > 1 {
            violations.push(format!(
                "prompt {checkout}: announced by {} callbacks ({ids:?})",
                ids.len()
            ));
        }
        let says_paid = callbacks.iter().find(|(_, stk)| stk["ResultCode"] == 0);
        if let Some((_, stk)) = says_paid {
            if ledger.known.contains(*checkout) && !ledger.committed.contains_key(*checkout) {
                violations.push(format!(
                    "prompt {checkout}: a callback says paid ({stk}) but the ledger holds no committed payment"
                ));
            }
        }
    }
    for (checkout, txn) in &ledger.committed {
        let Some(callbacks) = announced.get(checkout.as_str()) else {
            violations.push(format!(
                "prompt {checkout}: paid as {txn} but no callback arrived within 60 s of healing"
            ));
            continue;
        };
        let (_, stk) = callbacks[0];
        if stk["ResultCode"] != 0 || receipt_of(stk) != Some(txn.as_str()) {
            violations.push(format!(
                "prompt {checkout}: paid as {txn} but its callback says {stk}"
            ));
        }
    }
    let tally = ExpressTally {
        prompts: ledger.known.len(),
        paid: ledger.committed.len(),
        callbacks: announced.len(),
    };
    (violations, tally)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn callback(id: &str, checkout: &str, code: u32, receipt: Option<&str>) -> Received {
        let mut stk = json!({"CheckoutRequestID": checkout, "ResultCode": code});
        if let Some(receipt) = receipt {
            stk["CallbackMetadata"] =
                json!({"Item": [{"Name": "MpesaReceiptNumber", "Value": receipt}]});
        }
        Received {
            id: id.into(),
            body: json!({"Body": {"stkCallback": stk}}),
        }
    }

    fn ledger() -> Ledger {
        Ledger {
            known: ["ws_A", "ws_B", "ws_C"].map(String::from).into(),
            committed: [("ws_A".to_string(), "UA1".to_string())].into(),
        }
    }

    #[test]
    fn one_callback_per_prompt_repeats_of_an_id_allowed() {
        let received = [
            callback("0-1", "ws_A", 0, Some("UA1")),
            callback("0-1", "ws_A", 0, Some("UA1")),
            callback("0-2", "ws_B", 1032, None),
            callback("1-7", "ws_unknown", 1037, None),
        ];
        let (violations, tally) = judge(&ledger(), &received);
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(
            tally,
            ExpressTally {
                prompts: 3,
                paid: 1,
                callbacks: 3
            }
        );
    }

    #[test]
    fn missing_doubled_wrong_and_phantom_callbacks_are_violations() {
        let missing = judge(&ledger(), &[callback("0-2", "ws_B", 1032, None)]).0;
        assert!(missing[0].contains("no callback arrived"), "{missing:?}");
        let doubled = judge(
            &ledger(),
            &[
                callback("0-1", "ws_A", 0, Some("UA1")),
                callback("0-9", "ws_A", 0, Some("UA1")),
            ],
        )
        .0;
        assert!(
            doubled[0].contains("announced by 2 callbacks"),
            "{doubled:?}"
        );
        let wrong = judge(&ledger(), &[callback("0-1", "ws_A", 0, Some("UZZ"))]).0;
        assert!(wrong[0].contains("but its callback says"), "{wrong:?}");
        let failed = judge(&ledger(), &[callback("0-1", "ws_A", 1, None)]).0;
        assert!(failed[0].contains("but its callback says"), "{failed:?}");
        let phantom = judge(
            &ledger(),
            &[
                callback("0-1", "ws_A", 0, Some("UA1")),
                callback("0-3", "ws_C", 0, Some("UC1")),
            ],
        )
        .0;
        assert!(
            phantom[0].contains("ledger holds no committed payment"),
            "{phantom:?}"
        );
    }
}

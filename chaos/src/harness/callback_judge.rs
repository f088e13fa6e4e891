//! Judging business callbacks after a chaos run (pure): every payment the ledger committed
//! produced exactly one announcement — one callback id (repeats of one id are at-least-once
//! delivery; two ids for one request are two announcements) that says paid, with the
//! payment's receipt — and no callback says "paid" for a request whose payment the ledger
//! does not hold. M-Pesa Express prompts (`stkCallback`, by CheckoutRequestID) and B2C payouts
//! (`Result`, by ConversationID) are both judged so; [`stk`] and [`b2c`] read their bodies.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::callback_receiver::Received;

/// What the ledger holds of the requests the clients made.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Every request the clients made and learned the id of.
    pub known: BTreeSet<String>,
    /// Those whose payment committed, with its receipt.
    pub committed: BTreeMap<String, String>,
}

/// What one kind of request came to in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallbackTally {
    /// Requests the clients made (and learned the id of).
    pub requests: usize,
    /// Of those, paid in the ledger.
    pub paid: usize,
    /// Requests announced to the business (any outcome, any request).
    pub callbacks: usize,
}

/// One callback as the judge reads it.
pub struct Announcement<'a> {
    /// The request it tells of.
    pub key: &'a str,
    /// `X-Tuma-Callback-Id`.
    pub id: &'a str,
    pub paid: bool,
    pub receipt: Option<&'a str>,
    pub body: &'a Value,
}

/// An `stkCallback` as an announcement (`None` for other bodies).
pub fn stk(received: &Received) -> Option<Announcement<'_>> {
    if received.path != "/stk/callback" {
        return None;
    }
    let stk = &received.body["Body"]["stkCallback"];
    let key = stk["CheckoutRequestID"].as_str()?;
    let receipt = stk["CallbackMetadata"]["Item"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["Name"] == "MpesaReceiptNumber"))
        .and_then(|i| i["Value"].as_str());
    Some(Announcement {
        key,
        id: &received.id,
        paid: stk["ResultCode"] == 0,
        receipt,
        body: stk,
    })
}

/// A payout's `Result` as an announcement (`None` for other bodies).
pub fn b2c(received: &Received) -> Option<Announcement<'_>> {
    if !received.path.starts_with("/b2c/") {
        return None;
    }
    let result = &received.body["Result"];
    let key = result["ConversationID"].as_str()?;
    let paid = result["ResultCode"] == 0;
    Some(Announcement {
        key,
        id: &received.id,
        paid,
        receipt: result["TransactionID"].as_str().filter(|_| paid),
        body: result,
    })
}

/// The violations, and the tally, for requests named `what` ("prompt", "payout").
pub fn judge(
    what: &str,
    ledger: &Ledger,
    announcements: &[Announcement<'_>],
) -> (Vec<String>, CallbackTally) {
    let mut announced: BTreeMap<&str, Vec<&Announcement<'_>>> = BTreeMap::new();
    for announcement in announcements {
        announced
            .entry(announcement.key)
            .or_default()
            .push(announcement);
    }
    let mut violations = Vec::new();
    for (key, callbacks) in &announced {
        let ids: BTreeSet<&str> = callbacks.iter().map(|a| a.id).collect();
        if ids.len() > 1 {
            violations.push(format!(
                "{what} {key}: announced by {} callbacks ({ids:?})",
                ids.len()
            ));
        }
        if let Some(says_paid) = callbacks.iter().find(|a| a.paid) {
            if ledger.known.contains(*key) && !ledger.committed.contains_key(*key) {
                violations.push(format!(
                    "{what} {key}: a callback says paid ({}) but the ledger holds no committed payment",
                    says_paid.body
                ));
            }
        }
    }
    for (key, txn) in &ledger.committed {
        let Some(callbacks) = announced.get(key.as_str()) else {
            violations.push(format!(
                "{what} {key}: paid as {txn} but no callback arrived within 60 s of healing"
            ));
            continue;
        };
        let first = callbacks[0];
        if !first.paid || first.receipt != Some(txn.as_str()) {
            violations.push(format!(
                "{what} {key}: paid as {txn} but its callback says {}",
                first.body
            ));
        }
    }
    let tally = CallbackTally {
        requests: ledger.known.len(),
        paid: ledger.committed.len(),
        callbacks: announced.len(),
    };
    (violations, tally)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn judge_stk(ledger: &Ledger, received: &[Received]) -> (Vec<String>, CallbackTally) {
        let announcements: Vec<_> = received.iter().filter_map(stk).collect();
        judge("prompt", ledger, &announcements)
    }

    fn callback(id: &str, checkout: &str, code: u32, receipt: Option<&str>) -> Received {
        let mut stk = json!({"CheckoutRequestID": checkout, "ResultCode": code});
        if let Some(receipt) = receipt {
            stk["CallbackMetadata"] =
                json!({"Item": [{"Name": "MpesaReceiptNumber", "Value": receipt}]});
        }
        Received {
            id: id.into(),
            path: "/stk/callback".into(),
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
        let (violations, tally) = judge_stk(&ledger(), &received);
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(
            tally,
            CallbackTally {
                requests: 3,
                paid: 1,
                callbacks: 3
            }
        );
    }

    #[test]
    fn a_payout_result_is_judged_by_its_conversation_id() {
        let ledger = Ledger {
            known: ["AG_1", "AG_2"].map(String::from).into(),
            committed: [("AG_1".to_string(), "UB1".to_string())].into(),
        };
        let result = |id: &str, conversation: &str, code: u32, txn: &str| Received {
            id: id.into(),
            path: "/b2c/result".into(),
            body: json!({"Result": {"ConversationID": conversation, "ResultCode": code,
                "TransactionID": txn}}),
        };
        let received = [
            result("0-1", "AG_1", 0, "UB1"),
            result("0-2", "AG_2", 1, "OAK0000000"),
        ];
        let announcements: Vec<_> = received.iter().filter_map(b2c).collect();
        let (violations, tally) = judge("payout", &ledger, &announcements);
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!((tally.requests, tally.paid, tally.callbacks), (2, 1, 2));
        let phantom = [result("0-3", "AG_2", 0, "UB2")];
        let announcements: Vec<_> = phantom.iter().filter_map(b2c).collect();
        let violations = judge("payout", &ledger, &announcements).0;
        assert_eq!(violations.len(), 2, "{violations:?}");
    }

    #[test]
    fn missing_doubled_wrong_and_phantom_callbacks_are_violations() {
        let missing = judge_stk(&ledger(), &[callback("0-2", "ws_B", 1032, None)]).0;
        assert!(missing[0].contains("no callback arrived"), "{missing:?}");
        let doubled = judge_stk(
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
        let wrong = judge_stk(&ledger(), &[callback("0-1", "ws_A", 0, Some("UZZ"))]).0;
        assert!(wrong[0].contains("but its callback says"), "{wrong:?}");
        let failed = judge_stk(&ledger(), &[callback("0-1", "ws_A", 1, None)]).0;
        assert!(failed[0].contains("but its callback says"), "{failed:?}");
        let phantom = judge_stk(
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

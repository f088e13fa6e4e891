//! What a client asks for, and what it learned.

use serde_json::{json, Value};

/// One transfer a client orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// `send_money`, `cash_in`, `pay_bill`, … (the API's `kind`).
    pub kind: &'static str,
    pub from: String,
    pub to: String,
    pub amount_cents: i64,
}

impl Order {
    pub fn new(
        kind: &'static str,
        from: impl Into<String>,
        to: impl Into<String>,
        amount_cents: i64,
    ) -> Order {
        Order {
            kind,
            from: from.into(),
            to: to.into(),
            amount_cents,
        }
    }

    /// `"123.00"`.
    pub fn amount(&self) -> String {
        format_cents(self.amount_cents)
    }

    /// The `POST /v1/transfers` body under idempotency key `id`.
    pub fn body(&self, id: &str, pin: &str, deadline_ms: u64) -> Value {
        let mut body = json!({
            "request_id": id, "kind": self.kind, "from": self.from, "to": self.to,
            "amount": self.amount(), "pin": pin, "deadline_ms": deadline_ms,
        });
        if self.kind == "pay_bill" {
            body["account_reference"] = json!("ACC-1");
        }
        body
    }
}

/// One request of a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A transfer under the client's own idempotency key (on USSD, the session's id).
    Transfer { id: String, order: Order },
    /// Care reverses a confirmed transfer by its receipt (`/admin/v1/reversals`); `order` is the
    /// money's way back (payer the original payee).
    Reversal {
        id: String,
        receipt: String,
        order: Order,
    },
    /// Float issued to an account (`/admin/v1/float`).
    FloatIssue {
        id: String,
        account: String,
        amount_cents: i64,
    },
    /// A customer's balance through the app channel.
    Balance { account: String },
    /// A business's M-Pesa Express push for `order` (customer → the business, whole
    /// shillings), then the customer's answer: the PIN, or a decline.
    StkPush { order: Order, decline: bool },
    /// A business's B2C payout of `order` (the business → a customer, whole shillings) under
    /// its key `originator`, then the payment's outcome.
    B2c { order: Order, originator: String },
    /// Nothing this turn.
    Skip,
}

/// What a client learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `fee_cents` is `None` when the channel does not say it (a USSD screen, a balance).
    Confirmed { txn: String, fee_cents: Option<i64> },
    /// A final refusal: the answer's `result` (or `HTTP <status>`).
    Failed(String),
    /// No final answer within the retry policy: it may or may not have happened.
    Ambiguous,
}

impl Outcome {
    /// The reading of a `200` answer to a transfer, reversal or float issue.
    pub fn of_answer(answer: &Value) -> Outcome {
        match answer["status"].as_str() {
            Some("confirmed") => Outcome::Confirmed {
                txn: answer["transaction_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                fee_cents: Some(parse_cents(answer["fee"].as_str().unwrap_or("0"))),
            },
            _ => Outcome::Failed(answer["result"].as_str().unwrap_or("unknown").to_string()),
        }
    }
}

/// `"-12.5"` → -1250; unreadable parts count as zero.
pub fn parse_cents(text: &str) -> i64 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    let whole: i64 = whole.trim_start_matches('-').parse().unwrap_or(0);
    let frac: i64 = format!("{frac:0<2}")[..2].parse().unwrap_or(0);
    sign * (whole * 100 + frac)
}

/// 1250 → `"12.50"`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_and_write_as_the_api_spells_them() {
        assert_eq!(parse_cents("12.5"), 1250);
        assert_eq!(parse_cents("-0.07"), -7);
        assert_eq!(parse_cents("400000"), 40_000_000);
        assert_eq!(format_cents(1250), "12.50");
        assert_eq!(format_cents(-7), "-0.07");
        assert_eq!(parse_cents(&format_cents(123_456_789)), 123_456_789);
    }

    #[test]
    fn answers_are_read_as_outcomes_and_pay_bills_carry_a_reference() {
        let confirmed = json!({"status": "confirmed", "transaction_id": "UKS7", "fee": "7.00"});
        assert_eq!(
            Outcome::of_answer(&confirmed),
            Outcome::Confirmed {
                txn: "UKS7".into(),
                fee_cents: Some(700)
            }
        );
        let failed = json!({"status": "failed", "result": "insufficient_funds"});
        assert_eq!(
            Outcome::of_answer(&failed),
            Outcome::Failed("insufficient_funds".into())
        );
        let bill = Order::new("pay_bill", "254700000001", "business:888001", 12_000)
            .body("r-1", "1234", 4_000);
        assert_eq!(bill["amount"], "120.00");
        assert_eq!(bill["account_reference"], "ACC-1");
        let send = Order::new("send_money", "a", "b", 1).body("r-2", "1234", 4_000);
        assert!(send.get("account_reference").is_none());
    }
}

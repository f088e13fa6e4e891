//! The workload through USSD (`tuma chaos --channel ussd`): each transfer is a whole session
//! through the gateway callback, every step to a random node (as a gateway behind a load
//! balancer sends them), a step that gets no answer sent again to another node. The transfer's
//! id is the one the session derives, so the checker looks it up like any other.

use std::time::Duration;

use tuma_actors::msisdn::Msisdn;
use tuma_channels::ussd::transfer_id;

use super::workload::{agent_phone, Bank, Order, Outcome, AGENT_STORE, ATTEMPTS_MAX};
use crate::sim::SimRng;

const CUSTOMER_CODE: &str = "*334#";
const AGENT_CODE: &str = "*335#";
const PIN: &str = "1234";
/// A step's HTTP timeout: past the nodes' answer budget (`--ussd-answer-ms`, 8 s by default).
const STEP_TIMEOUT: Duration = Duration::from_secs(9);

/// `0712345678` for `254712345678`; agent and business numbers as typed.
fn typed(account: &str) -> String {
    if let Some(number) = account
        .strip_prefix("agent:")
        .or_else(|| account.strip_prefix("business:"))
    {
        return number.to_string();
    }
    Msisdn::parse(account).map_or_else(|_| account.to_string(), |m| m.local())
}

/// The code, the dialling phone and the inputs of a session that orders `order`.
fn session_for(bank: &Bank, order: &Order<'_>) -> (&'static str, String, Vec<String>) {
    let amount = order.amount();
    let to = typed(order.to);
    let steps = |inputs: &[&str]| inputs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match order.kind {
        "cash_in" => {
            let agent = bank
                .agents
                .iter()
                .position(|a| a == order.from)
                .unwrap_or(0);
            let inputs = steps(&[&typed(order.from), "1", &to, &amount, "1", PIN]);
            (AGENT_CODE, agent_phone(agent), inputs)
        }
        "cash_out" => {
            let inputs = steps(&["2", &to, AGENT_STORE, &amount, "1", PIN]);
            (CUSTOMER_CODE, order.from.to_string(), inputs)
        }
        "buy_airtime" => {
            let inputs = steps(&["3", "2", &to, &amount, PIN]);
            (CUSTOMER_CODE, order.from.to_string(), inputs)
        }
        "pay_bill" => {
            let inputs = steps(&["4", "1", &to, "ACC-1", &amount, "1", PIN]);
            (CUSTOMER_CODE, order.from.to_string(), inputs)
        }
        "buy_goods" => {
            let inputs = steps(&["4", "2", &to, &amount, "1", PIN]);
            (CUSTOMER_CODE, order.from.to_string(), inputs)
        }
        _ => {
            let inputs = steps(&["1", &to, &amount, "1", PIN]);
            (CUSTOMER_CODE, order.from.to_string(), inputs)
        }
    }
}

/// Runs the session that orders `order`; answers its transfer id and what the screens said.
pub async fn send(
    client: &reqwest::Client,
    urls: &[String],
    rng: &mut SimRng,
    bank: &Bank,
    session_id: &str,
    order: &Order<'_>,
) -> (String, Outcome) {
    let (code, phone, inputs) = session_for(bank, order);
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let msisdn = Msisdn::parse(&phone).expect("the workload's phones are valid");
    let id = transfer_id(code, &msisdn, session_id, &inputs).to_string();
    for n in 0..=inputs.len() {
        let text = inputs[..n].join("*");
        let Some(screen) = step(client, urls, rng, session_id, code, &phone, &text).await else {
            // No node answered this step: if it was the last, the transfer may have happened.
            return (id, Outcome::Ambiguous);
        };
        match screen.strip_prefix("END ") {
            None if n < inputs.len() => continue,
            None => {
                return (
                    id,
                    Outcome::Failed(format!("a screen past the end: {screen}")),
                )
            }
            Some(end) => return (id, outcome_of(end)),
        }
    }
    (id, Outcome::Ambiguous)
}

/// What a final screen says about the transfer.
fn outcome_of(end: &str) -> Outcome {
    let mut words = end.split_whitespace();
    match (words.next(), words.next()) {
        (Some(receipt), Some("Confirmed.")) => Outcome::Confirmed {
            txn: receipt.to_string(),
            fee_cents: None,
        },
        // Not decided within the gateway's time: the SMS would say.
        _ if end.starts_with("Request received") => Outcome::Ambiguous,
        _ => Outcome::Failed(end.to_string()),
    }
}

/// One step, to random nodes until one answers.
async fn step(
    client: &reqwest::Client,
    urls: &[String],
    rng: &mut SimRng,
    session_id: &str,
    code: &str,
    phone: &str,
    text: &str,
) -> Option<String> {
    let form = [
        ("sessionId", session_id),
        ("serviceCode", code),
        ("phoneNumber", phone),
        ("networkCode", "63902"),
        ("text", text),
    ];
    for _ in 0..ATTEMPTS_MAX {
        let url = &urls[rng.below(urls.len() as u64) as usize];
        let sent = client
            .post(format!("{url}/ussd/v1/callback"))
            .timeout(STEP_TIMEOUT)
            .form(&form)
            .send()
            .await;
        if let Ok(response) = sent {
            if response.status() == 200 {
                if let Ok(body) = response.text().await {
                    return Some(body);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_screens_are_read_as_outcomes() {
        assert_eq!(
            outcome_of("UKS7S36UAT Confirmed. You will receive an SMS."),
            Outcome::Confirmed {
                txn: "UKS7S36UAT".into(),
                fee_cents: None
            }
        );
        assert_eq!(
            outcome_of("Request received. You will receive an SMS with the result."),
            Outcome::Ambiguous
        );
        assert!(matches!(
            outcome_of("Failed. Insufficient funds in your M-PESA account."),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn sessions_dial_the_menu_path_of_each_kind() {
        let bank = Bank::new();
        let order = Order {
            kind: "cash_in",
            from: "agent:600102",
            to: "254730000007",
            amount_cents: 12_300,
        };
        let (code, phone, inputs) = session_for(&bank, &order);
        assert_eq!((code, phone.as_str()), (AGENT_CODE, "254740000001"));
        assert_eq!(inputs, ["600102", "1", "0730000007", "123.00", "1", "1234"]);
        let order = Order {
            kind: "pay_bill",
            from: "254730000001",
            to: "business:888001",
            amount_cents: 100,
        };
        let (code, _, inputs) = session_for(&bank, &order);
        assert_eq!(code, CUSTOMER_CODE);
        assert_eq!(inputs, ["4", "1", "888001", "ACC-1", "1.00", "1", "1234"]);
    }
}

//! Transfers through USSD (`tuma chaos --channel ussd`): each transfer is a whole session
//! through the gateway callback, every step to a random node (as a gateway behind a load
//! balancer sends them), a step that gets no answer sent again to another node. The transfer's
//! id is the one the session derives, so the checker looks it up like any other.

use std::time::{Duration, Instant};

use tuma_actors::msisdn::Msisdn;
use tuma_channels::ussd::transfer_id;

use super::gateway::{Answer, Gateway};
use super::order::{Order, Outcome};
use crate::sim::SimRng;

const CUSTOMER_CODE: &str = "*334#";
const AGENT_CODE: &str = "*335#";
/// Every agent's store number (the cash-out menu asks for it).
pub const AGENT_STORE: &str = "1";
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

/// The code, the dialling phone and the inputs of a session that orders `order`; an agent
/// dials from its phone in `agent_phones` (account, phone).
fn session_for(
    agent_phones: &[(String, String)],
    order: &Order,
    pin: &str,
) -> (&'static str, String, Vec<String>) {
    let amount = order.amount();
    let to = typed(&order.to);
    let steps = |inputs: &[&str]| inputs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match order.kind {
        "cash_in" => {
            let phone = agent_phones
                .iter()
                .find(|(account, _)| *account == order.from)
                .map_or_else(|| order.from.clone(), |(_, phone)| phone.clone());
            let inputs = steps(&[&typed(&order.from), "1", &to, &amount, "1", pin]);
            (AGENT_CODE, phone, inputs)
        }
        "cash_out" => {
            let inputs = steps(&["2", &to, AGENT_STORE, &amount, "1", pin]);
            (CUSTOMER_CODE, order.from.to_string(), inputs)
        }
        "buy_airtime" => {
            let inputs = steps(&["3", "2", &to, &amount, pin]);
            (CUSTOMER_CODE, order.from.to_string(), inputs)
        }
        "pay_bill" => {
            let inputs = steps(&["4", "1", &to, "ACC-1", &amount, "1", pin]);
            (CUSTOMER_CODE, order.from.to_string(), inputs)
        }
        "buy_goods" => {
            let inputs = steps(&["4", "2", &to, &amount, "1", pin]);
            (CUSTOMER_CODE, order.from.to_string(), inputs)
        }
        _ => {
            let inputs = steps(&["1", &to, &amount, "1", pin]);
            (CUSTOMER_CODE, order.from.to_string(), inputs)
        }
    }
}

/// Runs the session (id `session_id`) that orders `order`; the answer carries the transfer id
/// the session derives and what the screens said.
pub(super) async fn send(
    gateway: &Gateway,
    rng: &mut SimRng,
    session_id: &str,
    order: &Order,
) -> Answer {
    let (code, phone, inputs) = session_for(&gateway.agent_phones, order, gateway.pin());
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let Ok(msisdn) = Msisdn::parse(&phone) else {
        return Answer::new(
            "",
            Outcome::Failed(format!("{phone} cannot dial a USSD session")),
        );
    };
    let id = transfer_id(code, &msisdn, session_id, &inputs).to_string();
    let mut answer = Answer::new(&id, Outcome::Ambiguous);
    for n in 0..=inputs.len() {
        let text = inputs[..n].join("*");
        let Some(screen) = step(gateway, rng, session_id, code, &phone, &text, &mut answer).await
        else {
            // No node answered this step: if it was the last, the transfer may have happened.
            return answer;
        };
        match screen.strip_prefix("END ") {
            None if n < inputs.len() => continue,
            None => {
                answer.outcome = Outcome::Failed(format!("a screen past the end: {screen}"));
                return answer;
            }
            Some(end) => {
                answer.outcome = outcome_of(end);
                return answer;
            }
        }
    }
    answer
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
    gateway: &Gateway,
    rng: &mut SimRng,
    session_id: &str,
    code: &str,
    phone: &str,
    text: &str,
    answer: &mut Answer,
) -> Option<String> {
    let form = [
        ("sessionId", session_id),
        ("serviceCode", code),
        ("phoneNumber", phone),
        ("networkCode", "63902"),
        ("text", text),
    ];
    let since = Instant::now();
    let mut attempts = 0;
    while gateway.retry.may_try_again(attempts, since) {
        if attempts > 0 {
            tokio::time::sleep(gateway.retry.pause).await;
        }
        attempts += 1;
        answer.attempts += 1;
        let url = gateway.targets.pick(rng);
        let sent = gateway
            .client
            .post(format!("{url}/ussd/v1/callback"))
            .timeout(STEP_TIMEOUT)
            .form(&form)
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == 200 => match response.text().await {
                Ok(body) => return Some(body),
                Err(error) => answer.last_error = Some(format!("{url}: {error}")),
            },
            Ok(response) => answer.last_error = Some(format!("{url}: HTTP {}", response.status())),
            Err(error) => answer.last_error = Some(format!("{url}: {error}")),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_order_no_phone_can_dial_fails_without_a_request() {
        let node = super::super::stub_node::StubNode::start(vec![(200, "END x")]).await;
        let targets = super::super::targets::Targets::new(vec![node.url.clone()]);
        let gateway = Gateway::new(targets, Duration::from_secs(5)).expect("client");
        let order = Order::new("send_money", "business:777001", "254730000001", 100);
        let answer = send(&gateway, &mut SimRng::new(1), "s-1", &order).await;
        assert!(matches!(answer.outcome, Outcome::Failed(ref why) if why.contains("cannot dial")));
        assert_eq!(node.requests(), 0);
    }

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
        let agents = [
            ("agent:600101".to_string(), "254740000000".to_string()),
            ("agent:600102".to_string(), "254740000001".to_string()),
        ];
        let order = Order::new("cash_in", "agent:600102", "254730000007", 12_300);
        let (code, phone, inputs) = session_for(&agents, &order, "1234");
        assert_eq!((code, phone.as_str()), (AGENT_CODE, "254740000001"));
        assert_eq!(inputs, ["600102", "1", "0730000007", "123.00", "1", "1234"]);
        let order = Order::new("pay_bill", "254730000001", "business:888001", 100);
        let (code, _, inputs) = session_for(&agents, &order, "1234");
        assert_eq!(code, CUSTOMER_CODE);
        assert_eq!(inputs, ["4", "1", "888001", "ACC-1", "1.00", "1", "1234"]);
    }
}

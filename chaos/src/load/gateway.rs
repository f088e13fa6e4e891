//! How one request is sent, as a telco gateway or a business sends it: to a node chosen at
//! random, again to another node with the same idempotency key when no final answer came (a
//! refused connection, a 5xx, `504 {"status":"unknown"}`, a 429), until an answer is final or
//! the retry policy gives up — then the outcome is ambiguous.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::order::{format_cents, parse_cents, Order, Outcome, Request};
use super::targets::Targets;
use super::ussd;
use crate::sim::SimRng;

/// How clients reach the cluster.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    /// `POST /v1/transfers` with the client's own request ids.
    Api,
    /// Whole USSD sessions through the gateway callback, each step to a random node; the
    /// transfer's id is the one the session derives.
    Ussd,
}

/// When a request without a final answer is sent again.
#[derive(Copy, Clone, Debug)]
pub struct Retry {
    /// Attempts (each to a node chosen afresh) before the outcome is ambiguous.
    pub attempts_max: usize,
    /// Stop retrying once this long passed since the first attempt.
    pub patience: Option<Duration>,
    /// Pause between attempts.
    pub pause: Duration,
}

impl Retry {
    /// One attempt: what a benchmark measures.
    pub const ONCE: Retry = Retry {
        attempts_max: 1,
        patience: None,
        pause: Duration::ZERO,
    };

    /// Up to `attempts` attempts, 100 ms apart.
    pub fn attempts(attempts: usize) -> Retry {
        Retry {
            attempts_max: attempts.max(1),
            patience: None,
            pause: Duration::from_millis(100),
        }
    }

    /// Attempts 100 ms apart until `patience` has passed.
    pub fn patience(patience: Duration) -> Retry {
        Retry {
            attempts_max: usize::MAX,
            patience: Some(patience),
            pause: Duration::from_millis(100),
        }
    }

    pub(super) fn may_try_again(&self, attempts: usize, since: Instant) -> bool {
        attempts < self.attempts_max && self.patience.is_none_or(|p| since.elapsed() < p)
    }
}

/// A final refusal: any 4xx but 429 (which asks the client to come back later).
fn is_refusal(status: u16) -> bool {
    (400..500).contains(&status) && status != 429
}

/// What one request came to.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The transfer's idempotency key (on USSD, the one the session derived).
    pub id: String,
    pub outcome: Outcome,
    /// Attempts made (0: never sent).
    pub attempts: usize,
    /// Retries the node reported making on the client's behalf (`"retries"` in the answer).
    pub server_retries: u64,
    /// A balance read's balance.
    pub balance_cents: Option<i64>,
    /// Why the last attempt did not end it, when the outcome is ambiguous.
    pub last_error: Option<String>,
}

impl Answer {
    pub fn new(id: &str, outcome: Outcome) -> Answer {
        Answer {
            id: id.to_string(),
            outcome,
            attempts: 0,
            server_retries: 0,
            balance_cents: None,
            last_error: None,
        }
    }

    /// A request the driver could not send (too many in flight).
    pub fn not_sent(why: &str) -> Answer {
        Answer {
            last_error: Some(why.to_string()),
            ..Answer::new("", Outcome::Ambiguous)
        }
    }

    pub fn is_confirmed(&self) -> bool {
        matches!(self.outcome, Outcome::Confirmed { .. })
    }
}

/// The client side of every load: an HTTP client, the nodes, and how to retry.
#[derive(Clone, Debug)]
pub struct Gateway {
    pub(super) client: reqwest::Client,
    pub(super) targets: Targets,
    pub(super) retry: Retry,
    channel: Channel,
    pin: String,
    /// Each transfer's `deadline_ms`.
    deadline_ms: u64,
    pub(super) admin_token: String,
    /// (account, phone) of agents: the phone an agent dials its menu from (USSD cash-in).
    pub(super) agent_phones: Vec<(String, String)>,
    /// The business M-Pesa Express pushes are made for, and its token.
    pub(super) business: Option<super::express::Business>,
    pub(super) tokens: super::express::TokenCache,
}

impl Gateway {
    /// A gateway whose every HTTP attempt gives up after `attempt_timeout`.
    pub fn new(targets: Targets, attempt_timeout: Duration) -> Result<Gateway, String> {
        let client = reqwest::Client::builder()
            .timeout(attempt_timeout)
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Gateway {
            client,
            targets,
            retry: Retry::attempts(6),
            channel: Channel::Api,
            pin: "1234".into(),
            deadline_ms: 8_000,
            admin_token: String::new(),
            agent_phones: Vec::new(),
            business: None,
            tokens: Default::default(),
        })
    }

    /// The business M-Pesa Express pushes ([`Request::StkPush`]) are made for.
    pub fn with_business(mut self, business: super::express::Business) -> Gateway {
        self.business = Some(business);
        self
    }

    pub fn with_retry(mut self, retry: Retry) -> Gateway {
        self.retry = retry;
        self
    }

    pub fn with_channel(mut self, channel: Channel) -> Gateway {
        self.channel = channel;
        self
    }

    pub fn with_pin(mut self, pin: &str) -> Gateway {
        self.pin = pin.to_string();
        self
    }

    pub fn with_deadline_ms(mut self, deadline_ms: u64) -> Gateway {
        self.deadline_ms = deadline_ms;
        self
    }

    /// The operator token for admin and care calls (float, reversals, admin reads).
    pub fn with_admin_token(mut self, token: &str) -> Gateway {
        self.admin_token = token.to_string();
        self
    }

    /// The phones agents dial their USSD menu from.
    pub fn with_agent_phones(mut self, phones: Vec<(String, String)>) -> Gateway {
        self.agent_phones = phones;
        self
    }

    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    pub fn pin(&self) -> &str {
        &self.pin
    }

    /// The node for the next attempt — after the policy's pause when it is not the first —
    /// counted in `attempts`; `None` once the retry policy gives up.
    pub(super) async fn next_attempt(
        &self,
        attempts: &mut usize,
        since: Instant,
        rng: &mut SimRng,
    ) -> Option<String> {
        if !self.retry.may_try_again(*attempts, since) {
            return None;
        }
        if *attempts > 0 {
            tokio::time::sleep(self.retry.pause).await;
        }
        *attempts += 1;
        Some(self.targets.pick(rng))
    }

    /// Sends `request` until it has a final answer or the retry policy gives up.
    pub async fn send(&self, request: &Request, rng: &mut SimRng) -> Answer {
        match request {
            Request::Transfer { id, order } => self.transfer(id, order, rng).await,
            Request::Reversal { id, receipt, .. } => {
                let body = json!({"request_id": id, "transaction_id": receipt});
                self.post_until_final(id, "/admin/v1/reversals", &body, true, rng)
                    .await
            }
            Request::FloatIssue {
                id,
                account,
                amount_cents,
            } => {
                let body = json!({"request_id": id, "account": account, "amount": format_cents(*amount_cents)});
                self.post_until_final(id, "/admin/v1/float", &body, true, rng)
                    .await
            }
            Request::Balance { account } => self.balance(account, rng).await,
            Request::StkPush { order, decline } => self.stk_push(order, *decline, rng).await,
            Request::B2c { order, originator } => self.b2c(order, originator, rng).await,
            Request::Skip => Answer::not_sent("skipped"),
        }
    }

    /// A transfer through this gateway's channel.
    pub async fn transfer(&self, id: &str, order: &Order, rng: &mut SimRng) -> Answer {
        match self.channel {
            Channel::Api => {
                let body = order.body(id, &self.pin, self.deadline_ms);
                self.post_until_final(id, "/v1/transfers", &body, false, rng)
                    .await
            }
            Channel::Ussd => ussd::send(self, rng, id, order).await,
        }
    }

    /// Posts `body` to random nodes (the same idempotency key each time) until an answer is
    /// final: `200` (its `status`), or a `4xx` other than `429` (a refusal).
    pub async fn post_until_final(
        &self,
        id: &str,
        path: &str,
        body: &Value,
        admin: bool,
        rng: &mut SimRng,
    ) -> Answer {
        let mut answer = Answer::new(id, Outcome::Ambiguous);
        let since = Instant::now();
        while let Some(url) = self.next_attempt(&mut answer.attempts, since, rng).await {
            let mut request = self.client.post(format!("{url}{path}")).json(body);
            if admin {
                request = request.bearer_auth(&self.admin_token);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    answer.last_error = Some(format!("{url}: {error}"));
                    continue;
                }
            };
            let status = response.status().as_u16();
            let json: Value = response.json().await.unwrap_or(Value::Null);
            match status {
                200 => {
                    answer.server_retries = json["retries"].as_u64().unwrap_or(0);
                    answer.outcome = Outcome::of_answer(&json);
                    answer.last_error = None;
                    return answer;
                }
                _ if is_refusal(status) => {
                    let result = json["result"]
                        .as_str()
                        .map_or_else(|| format!("HTTP {status}"), str::to_string);
                    answer.outcome = Outcome::Failed(result);
                    answer.last_error = Some(format!("{url}: HTTP {status} {json}"));
                    return answer;
                }
                _ => answer.last_error = Some(format!("{url}: HTTP {status} {json}")),
            }
        }
        answer
    }

    /// A customer's balance through the app channel (PIN in the header): one attempt.
    pub async fn balance(&self, account: &str, rng: &mut SimRng) -> Answer {
        let url = self.targets.pick(rng);
        let request = self
            .client
            .get(format!("{url}/v1/accounts/{account}/balance"))
            .header("X-Tuma-Pin", &self.pin);
        let mut answer = Answer::new("", Outcome::Ambiguous);
        answer.attempts = 1;
        match request.send().await {
            Err(error) => answer.last_error = Some(error.to_string()),
            Ok(response) => {
                let status = response.status().as_u16();
                let json: Value = response.json().await.unwrap_or(Value::Null);
                if status == 200 {
                    answer.balance_cents = json["balance"].as_str().map(parse_cents);
                    answer.outcome = Outcome::Confirmed {
                        txn: String::new(),
                        fee_cents: None,
                    };
                } else if is_refusal(status) {
                    answer.outcome = Outcome::Failed(format!("HTTP {status}"));
                } else {
                    answer.last_error = Some(format!("HTTP {status} {json}"));
                }
            }
        }
        answer
    }

    /// An account's posted balance through the admin API, if the node asked answers.
    pub async fn admin_balance(&self, account: &str, rng: &mut SimRng) -> Option<i64> {
        let url = self.targets.pick(rng);
        let response = self
            .client
            .get(format!("{url}/admin/v1/accounts/{account}"))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: Value = response.json().await.ok()?;
        Some(parse_cents(body["balance"].as_str()?))
    }

    /// Set-up: an admin POST, to node after node until one accepts it (a `409`, already done,
    /// counts), for up to `patience`. The error names the call and the last answer.
    pub async fn admin_until_done(
        &self,
        path: &str,
        body: &Value,
        patience: Duration,
        first: u64,
    ) -> Result<(), String> {
        self.admin_call_until_done(reqwest::Method::POST, path, body, patience, first)
            .await
    }

    /// [`Gateway::admin_until_done`] with another method (`PUT` for settings that replace).
    pub async fn admin_call_until_done(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        patience: Duration,
        first: u64,
    ) -> Result<(), String> {
        let since = Instant::now();
        let mut n = first;
        loop {
            let url = self.targets.nth(n);
            n += 1;
            let error = match self
                .client
                .request(method.clone(), format!("{url}{path}"))
                .bearer_auth(&self.admin_token)
                .json(body)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() || r.status() == 409 => return Ok(()),
                Ok(r) => format!(
                    "{path} {body}: HTTP {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                ),
                Err(e) => format!("{path} {body}: {e}"),
            };
            if since.elapsed() >= patience {
                return Err(error);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::stub_node::StubNode;
    use super::*;

    const CONFIRMED: &str =
        r#"{"status":"confirmed","transaction_id":"UKS7","fee":"7.00","retries":2}"#;

    async fn gateway_to(node: &StubNode, retry: Retry) -> Gateway {
        Gateway::new(Targets::new(vec![node.url.clone()]), Duration::from_secs(5))
            .expect("client")
            .with_retry(Retry {
                pause: Duration::ZERO,
                ..retry
            })
    }

    fn order() -> Order {
        Order::new("send_money", "254700000001", "254700000002", 1_000)
    }

    #[tokio::test]
    async fn no_final_answer_is_retried_with_the_same_id_until_one_comes() {
        let node = StubNode::start(vec![
            (503, r#"{"result":"no_leader"}"#),
            (504, r#"{"status":"unknown"}"#),
            (429, r#"{"result":"rate_limited"}"#),
            (200, CONFIRMED),
        ])
        .await;
        let gateway = gateway_to(&node, Retry::attempts(6)).await;
        let answer = gateway.transfer("r-1", &order(), &mut SimRng::new(1)).await;
        assert_eq!(
            answer.outcome,
            Outcome::Confirmed {
                txn: "UKS7".into(),
                fee_cents: Some(700)
            }
        );
        assert_eq!((answer.attempts, answer.server_retries), (4, 2));
        assert_eq!(node.requests(), 4);
    }

    #[tokio::test]
    async fn a_refusal_is_final_and_not_retried() {
        let node =
            StubNode::start(vec![(401, r#"{"result":"wrong_pin"}"#), (200, CONFIRMED)]).await;
        let gateway = gateway_to(&node, Retry::attempts(6)).await;
        let answer = gateway.transfer("r-1", &order(), &mut SimRng::new(1)).await;
        assert_eq!(answer.outcome, Outcome::Failed("wrong_pin".into()));
        assert_eq!(node.requests(), 1);
        let failed = StubNode::start(vec![(
            200,
            r#"{"status":"failed","result":"insufficient_funds"}"#,
        )])
        .await;
        let gateway = gateway_to(&failed, Retry::attempts(6)).await;
        let answer = gateway.transfer("r-2", &order(), &mut SimRng::new(1)).await;
        assert_eq!(answer.outcome, Outcome::Failed("insufficient_funds".into()));
    }

    #[tokio::test]
    async fn without_a_final_answer_the_outcome_is_ambiguous_after_the_attempts() {
        let node = StubNode::start(vec![(503, r#"{"result":"no_leader"}"#)]).await;
        let gateway = gateway_to(&node, Retry::attempts(3)).await;
        let answer = gateway.transfer("r-1", &order(), &mut SimRng::new(1)).await;
        assert_eq!(answer.outcome, Outcome::Ambiguous);
        assert_eq!((answer.attempts, node.requests()), (3, 3));
        assert!(answer.last_error.is_some_and(|e| e.contains("HTTP 503")));
        let once = gateway_to(&node, Retry::ONCE).await;
        assert_eq!(
            once.transfer("r-2", &order(), &mut SimRng::new(1))
                .await
                .attempts,
            1
        );
    }

    #[tokio::test]
    async fn set_up_counts_already_done_as_done_and_names_what_kept_failing() {
        let done = StubNode::start(vec![(500, "{}"), (409, r#"{"result":"exists"}"#)]).await;
        let gateway = Gateway::new(Targets::new(vec![done.url.clone()]), Duration::from_secs(5))
            .expect("client");
        let body = json!({"msisdn": "254700000001"});
        gateway
            .admin_until_done("/admin/v1/customers", &body, Duration::from_secs(5), 0)
            .await
            .expect("a 409 is already done");
        assert_eq!(done.requests(), 2);
        let failing = StubNode::start(vec![(500, r#"{"error":"disk full"}"#)]).await;
        let gateway = Gateway::new(
            Targets::new(vec![failing.url.clone()]),
            Duration::from_secs(5),
        )
        .expect("client");
        let error = gateway
            .admin_until_done("/admin/v1/customers", &body, Duration::ZERO, 0)
            .await
            .expect_err("never accepted");
        assert!(
            error.contains("HTTP 500") && error.contains("disk full"),
            "{error}"
        );
    }
}

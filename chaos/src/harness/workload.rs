//! The bank workload: accounts funded from float, and concurrent clients sending every kind of
//! transfer through random nodes (as telco gateways do), retrying ambiguous outcomes with the
//! same idempotency key.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::cluster::ADMIN_TOKEN;
use crate::sim::SimRng;

/// Enough customers that the daily limit (KES 500,000 each) lasts for runs of several minutes.
pub const CUSTOMERS: usize = 60;
pub const CUSTOMER_FLOAT_CENTS: i64 = 50_000 * 100;
pub const AGENT_FLOAT_CENTS: i64 = 200_000 * 100;
/// How long a client waits for a decision (the transfer's deadline), ms.
const DEADLINE_MS: u64 = 4_000;
/// Attempts with the same idempotency key before calling an outcome ambiguous.
pub const ATTEMPTS_MAX: usize = 6;
/// One attempt's HTTP timeout: a paused node must not hold a client for the whole deadline.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(2_500);
/// The treasury looks at every customer this often…
const TOP_UP_EVERY: Duration = Duration::from_secs(2);
/// …and issues float to one whose balance fell below this (cents)…
const TOP_UP_BELOW_CENTS: i64 = 10_000 * 100;
/// …of this much (cents): long runs keep their customers able to pay.
const TOP_UP_CENTS: i64 = 40_000 * 100;

/// Every agent's store number.
pub const AGENT_STORE: &str = "1";

/// The phone agent `i` is registered with (it dials the agent menu from it).
pub fn agent_phone(i: usize) -> String {
    format!("25474000000{i}")
}

/// The accounts the workload uses.
#[derive(Clone, Debug)]
pub struct Bank {
    pub customers: Vec<String>,
    pub agents: Vec<String>,
    pub paybill: String,
    pub till: String,
    /// Never registered: transfers to it fail on the payee's shard after the payer's hold.
    pub stranger: String,
}

impl Bank {
    pub fn new() -> Bank {
        Bank {
            customers: (0..CUSTOMERS)
                .map(|i| format!("2547300000{i:02}"))
                .collect(),
            agents: vec!["agent:600101".into(), "agent:600102".into()],
            paybill: "business:888001".into(),
            till: "business:777001".into(),
            stranger: "254739999999".into(),
        }
    }

    /// Every account that holds money, with its initial float in cents.
    pub fn funded(&self) -> Vec<(String, i64)> {
        let mut all: Vec<(String, i64)> = self
            .customers
            .iter()
            .map(|c| (c.clone(), CUSTOMER_FLOAT_CENTS))
            .collect();
        all.extend(self.agents.iter().map(|a| (a.clone(), AGENT_FLOAT_CENTS)));
        all.push((self.paybill.clone(), 0));
        all.push((self.till.clone(), 0));
        all
    }
}

impl Default for Bank {
    fn default() -> Bank {
        Bank::new()
    }
}

/// How clients reach the cluster.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    /// `POST /v1/transfers` with the client's own request ids.
    Api,
    /// Whole USSD sessions through the gateway callback, each step to a random node; the
    /// transfer's id is the one the session derives.
    Ussd,
}

/// What a client learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `fee_cents` is `None` when the channel does not say it (a USSD screen): the checker
    /// takes the recorded one.
    Confirmed {
        txn: String,
        fee_cents: Option<i64>,
    },
    Failed(String),
    Ambiguous,
}

/// One client operation.
#[derive(Clone, Debug)]
pub struct Op {
    pub id: String,
    pub kind: &'static str,
    pub from: String,
    pub to: String,
    pub amount_cents: i64,
    pub started_ms: u64,
    pub latency_ms: u64,
    pub outcome: Outcome,
}

fn cents(text: &str) -> i64 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    let whole: i64 = whole.trim_start_matches('-').parse().unwrap_or(0);
    let frac: i64 = format!("{frac:0<2}")[..2].parse().unwrap_or(0);
    sign * (whole * 100 + frac)
}

pub fn parse_cents(text: &str) -> i64 {
    cents(text)
}

/// One admin POST; a 409 (already done) counts as done. The error names the call and the answer.
pub async fn post_admin(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    body: &Value,
) -> Result<(), String> {
    match client
        .post(format!("{url}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() || r.status() == 409 => Ok(()),
        Ok(r) => Err(format!(
            "{path} {body}: HTTP {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        )),
        Err(e) => Err(format!("{path} {body}: {e}")),
    }
}

/// Registers and funds the bank through any node, retrying until it is done.
pub async fn set_up(client: &reqwest::Client, urls: &[String], bank: &Bank) -> Result<(), String> {
    let mut steps: Vec<(&str, Value)> = Vec::new();
    for c in &bank.customers {
        steps.push((
            "/admin/v1/customers",
            json!({"msisdn": c, "name": format!("Customer {c}"), "id_number": "1", "pin": "1234"}),
        ));
    }
    for (i, a) in bank.agents.iter().enumerate() {
        steps.push(("/admin/v1/agents", json!({"agent_number": a.trim_start_matches("agent:"), "store_number": AGENT_STORE, "name": format!("Agent {i}"), "msisdn": agent_phone(i), "pin": "1234"})));
    }
    for (b, kind) in [(&bank.paybill, "paybill"), (&bank.till, "till")] {
        steps.push(("/admin/v1/businesses", json!({"shortcode": b.trim_start_matches("business:"), "kind": kind, "name": format!("Biz {kind}"), "consumer_key": "k", "consumer_secret": "s", "passkey": "p"})));
    }
    for (i, (account, amount)) in bank
        .funded()
        .into_iter()
        .enumerate()
        .filter(|(_, (_, a))| *a > 0)
    {
        steps.push(("/admin/v1/float", json!({"request_id": format!("chaos-float-{i}"), "account": account, "amount": format!("{}.{:02}", amount / 100, amount % 100)})));
    }
    for (n, (path, body)) in steps.into_iter().enumerate() {
        let started = Instant::now();
        let mut attempt = 0;
        while let Err(error) =
            post_admin(client, &urls[(n + attempt) % urls.len()], path, &body).await
        {
            attempt += 1;
            if started.elapsed() > Duration::from_secs(60) {
                return Err(error);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Draws one operation.
fn draw(rng: &mut SimRng, bank: &Bank) -> (&'static str, String, String, i64) {
    let customer = |rng: &mut SimRng| bank.customers[rng.below(CUSTOMERS as u64) as usize].clone();
    let agent =
        |rng: &mut SimRng| bank.agents[rng.below(bank.agents.len() as u64) as usize].clone();
    // Mostly everyday amounts, a few large ones; enough to hit limits and empty wallets sometimes.
    let amount = (if rng.chance(20) {
        rng.range(500, 20_000)
    } else {
        rng.range(1, 300)
    } * 100) as i64;
    match rng.below(100) {
        0..=39 => ("send_money", customer(rng), customer(rng), amount),
        40..=49 => ("cash_in", agent(rng), customer(rng), amount),
        50..=64 => ("cash_out", customer(rng), agent(rng), amount.max(5_000)),
        65..=74 => ("pay_bill", customer(rng), bank.paybill.clone(), amount),
        75..=84 => ("buy_goods", customer(rng), bank.till.clone(), amount),
        85..=94 => (
            "buy_airtime",
            customer(rng),
            customer(rng),
            amount.min(100_000),
        ),
        _ => ("send_money", customer(rng), bank.stranger.clone(), amount),
    }
}

/// Balance reads made during the run, and any that showed a negative balance.
#[derive(Debug, Default)]
pub struct Reads {
    pub answered: u64,
    pub negative: Vec<String>,
}

/// Shared state of the running clients.
pub struct Clients {
    pub stop: Arc<AtomicBool>,
    pub ops: Arc<Mutex<Vec<Op>>>,
    pub reads: Arc<Mutex<Reads>>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Clients {
    /// Starts `count` clients; each draws from its own seeded generator.
    pub fn start(
        count: usize,
        seed: u64,
        urls: Vec<String>,
        bank: Bank,
        channel: Channel,
        epoch: Instant,
    ) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let ops: Arc<Mutex<Vec<Op>>> = Arc::default();
        let reads: Arc<Mutex<Reads>> = Arc::default();
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .expect("http client");
        let handles = (0..count)
            .map(|c| {
                let (stop, ops, reads, urls, bank, client) = (
                    stop.clone(),
                    ops.clone(),
                    reads.clone(),
                    urls.clone(),
                    bank.clone(),
                    client.clone(),
                );
                tokio::spawn(async move {
                    let mut rng = SimRng::new(seed.wrapping_mul(1_000).wrapping_add(c as u64));
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        if rng.chance(50) {
                            let who = bank.customers[rng.below(CUSTOMERS as u64) as usize].clone();
                            let url = &urls[rng.below(urls.len() as u64) as usize];
                            read_balance(&client, url, &who, &reads).await;
                            continue;
                        }
                        let (kind, from, to, amount_cents) = draw(&mut rng, &bank);
                        if from == to && kind != "buy_airtime" {
                            continue;
                        }
                        let mut id = format!("c{c}-{n}");
                        let started = Instant::now();
                        let order = Order {
                            kind,
                            from: &from,
                            to: &to,
                            amount_cents,
                        };
                        let outcome = match channel {
                            Channel::Api => send(&client, &urls, &mut rng, &id, &order).await,
                            Channel::Ussd => {
                                let (ussd_id, outcome) =
                                    super::ussd::send(&client, &urls, &mut rng, &bank, &id, &order)
                                        .await;
                                id = ussd_id;
                                outcome
                            }
                        };
                        let op = Op {
                            id,
                            kind,
                            from,
                            to,
                            amount_cents,
                            started_ms: started.duration_since(epoch).as_millis() as u64,
                            latency_ms: started.elapsed().as_millis() as u64,
                            outcome,
                        };
                        // Sometimes care reverses a confirmed transfer: a new transfer back.
                        let reversal = match &op.outcome {
                            Outcome::Confirmed { txn, .. }
                                if op.kind == "send_money" && rng.chance(50) =>
                            {
                                Some(txn.clone())
                            }
                            _ => None,
                        };
                        let (payer, payee) = (op.to.clone(), op.from.clone());
                        ops.lock().expect("no panics hold this lock").push(op);
                        if let Some(txn) = reversal {
                            let id = format!("c{c}-{n}-rev");
                            let started = Instant::now();
                            let outcome = reverse(&client, &urls, &mut rng, &id, &txn).await;
                            let op = Op {
                                id,
                                kind: "reversal",
                                from: payer,
                                to: payee,
                                amount_cents,
                                started_ms: started.duration_since(epoch).as_millis() as u64,
                                latency_ms: started.elapsed().as_millis() as u64,
                                outcome,
                            };
                            ops.lock().expect("no panics hold this lock").push(op);
                        }
                    }
                })
            })
            .collect::<Vec<_>>();
        let mut handles = handles;
        handles.push(tokio::spawn(treasury(
            stop.clone(),
            ops.clone(),
            urls,
            bank,
            client,
            seed,
            epoch,
        )));
        Clients {
            stop,
            ops,
            reads,
            handles,
        }
    }

    /// Stops the clients and returns every operation and the balance reads.
    pub async fn finish(self) -> (Vec<Op>, Reads) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.handles {
            let _ = handle.await;
        }
        let ops = self.ops.lock().expect("no panics hold this lock").clone();
        let reads = std::mem::take(&mut *self.reads.lock().expect("no panics hold this lock"));
        (ops, reads)
    }
}

/// Keeps customers funded: every few seconds, float to each one whose balance fell low. Each
/// top-up is an operation like any other (kind `float_issue`, payer the issuer of the
/// customer's shard), so the checker counts it.
async fn treasury(
    stop: Arc<AtomicBool>,
    ops: Arc<Mutex<Vec<Op>>>,
    urls: Vec<String>,
    bank: Bank,
    client: reqwest::Client,
    seed: u64,
    epoch: Instant,
) {
    let mut rng = SimRng::new(seed ^ 0x7EA5);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(TOP_UP_EVERY).await;
        for who in &bank.customers {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let url = &urls[rng.below(urls.len() as u64) as usize];
            let Some(balance) = admin_balance(&client, url, who).await else {
                continue;
            };
            if balance >= TOP_UP_BELOW_CENTS {
                continue;
            }
            n += 1;
            let id = format!("topup-{n}");
            let body = json!({
                "request_id": id, "account": who,
                "amount": format!("{}.{:02}", TOP_UP_CENTS / 100, TOP_UP_CENTS % 100),
            });
            let started = Instant::now();
            let outcome =
                post_until_answered(&client, &urls, &mut rng, "/admin/v1/float", &body).await;
            ops.lock().expect("no panics hold this lock").push(Op {
                id,
                kind: "float_issue",
                from: who.clone(),
                to: who.clone(),
                amount_cents: TOP_UP_CENTS,
                started_ms: started.duration_since(epoch).as_millis() as u64,
                latency_ms: started.elapsed().as_millis() as u64,
                outcome,
            });
        }
    }
}

/// An account's posted balance through the admin API, if a node answers.
async fn admin_balance(client: &reqwest::Client, url: &str, who: &str) -> Option<i64> {
    let response = client
        .get(format!("{url}/admin/v1/accounts/{who}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    Some(cents(body["balance"].as_str()?))
}

/// Care reverses a confirmed transfer by its receipt, retrying with the same request id.
async fn reverse(
    client: &reqwest::Client,
    urls: &[String],
    rng: &mut SimRng,
    id: &str,
    txn: &str,
) -> Outcome {
    let body = json!({"request_id": id, "transaction_id": txn});
    post_until_answered(client, urls, rng, "/admin/v1/reversals", &body).await
}

/// Posts through random nodes until one answers 200 (the same idempotency key each time), or
/// gives up and calls the outcome ambiguous.
async fn post_until_answered(
    client: &reqwest::Client,
    urls: &[String],
    rng: &mut SimRng,
    path: &str,
    body: &Value,
) -> Outcome {
    for _ in 0..ATTEMPTS_MAX {
        let url = &urls[rng.below(urls.len() as u64) as usize];
        let request = client
            .post(format!("{url}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(body);
        let response = match request.send().await {
            Ok(r) if r.status() == 200 => r,
            _ => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Ok(answer) = response.json::<Value>().await {
            return outcome_of(&answer);
        }
    }
    Outcome::Ambiguous
}

/// The client's reading of a transfer answer.
fn outcome_of(answer: &Value) -> Outcome {
    match answer["status"].as_str() {
        Some("confirmed") => Outcome::Confirmed {
            txn: answer["transaction_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            fee_cents: Some(cents(answer["fee"].as_str().unwrap_or("0"))),
        },
        _ => Outcome::Failed(answer["result"].as_str().unwrap_or("unknown").to_string()),
    }
}

/// A customer's balance read through the app channel (PIN in the header).
async fn read_balance(client: &reqwest::Client, url: &str, who: &str, reads: &Mutex<Reads>) {
    let request = client
        .get(format!("{url}/v1/accounts/{who}/balance"))
        .header("X-Tuma-Pin", "1234");
    let Ok(response) = request.send().await else {
        return;
    };
    if !response.status().is_success() {
        return;
    }
    let Ok(body) = response.json::<Value>().await else {
        return;
    };
    let balance = cents(body["balance"].as_str().unwrap_or("0"));
    let mut reads = reads.lock().expect("no panics hold this lock");
    reads.answered += 1;
    if balance < 0 {
        reads
            .negative
            .push(format!("{who} read with balance {balance} cents"));
    }
}

/// One transfer a client orders.
pub struct Order<'a> {
    pub kind: &'static str,
    pub from: &'a str,
    pub to: &'a str,
    pub amount_cents: i64,
}

impl Order<'_> {
    /// `"123.00"`.
    pub fn amount(&self) -> String {
        format!("{}.{:02}", self.amount_cents / 100, self.amount_cents % 100)
    }
}

async fn send(
    client: &reqwest::Client,
    urls: &[String],
    rng: &mut SimRng,
    id: &str,
    order: &Order<'_>,
) -> Outcome {
    let mut body = json!({
        "request_id": id, "kind": order.kind, "from": order.from, "to": order.to,
        "amount": order.amount(),
        "pin": "1234", "deadline_ms": DEADLINE_MS,
    });
    if order.kind == "pay_bill" {
        body["account_reference"] = json!("ACC-1");
    }
    post_until_answered(client, urls, rng, "/v1/transfers", &body).await
}

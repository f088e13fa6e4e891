//! The bank workload: accounts funded from float, and concurrent clients sending every kind of
//! transfer through random nodes (as telco gateways do), retrying ambiguous outcomes with the
//! same idempotency key — the mix of `tuma chaos`, driven by the shared load driver
//! ([`crate::load`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::cluster::ADMIN_TOKEN;
use crate::load::{
    self, format_cents, ussd::AGENT_STORE, Business, Channel, Completed, Gateway, Order, Outcome,
    Pace, Request, Retry, Script, Stop, Targets,
};
use crate::sim::SimRng;

/// Enough customers that the daily limit (KES 500,000 each) lasts for runs of several minutes.
pub const CUSTOMERS: usize = 60;
pub const CUSTOMER_FLOAT_CENTS: i64 = 50_000 * 100;
pub const AGENT_FLOAT_CENTS: i64 = 200_000 * 100;
/// The paybill starts with this much, so its B2C payouts have something to pay from.
pub const PAYBILL_FLOAT_CENTS: i64 = 100_000 * 100;
/// The paybill's payout initiator (API runs).
pub const INITIATOR: &str = "chaos_api";
pub const INITIATOR_PASSWORD: &str = "chaos-initiator-password";
/// How long a client waits for a decision (the transfer's deadline), ms.
const DEADLINE_MS: u64 = 4_000;
/// Attempts with the same idempotency key before calling an outcome ambiguous.
const ATTEMPTS_MAX: usize = 6;
/// One attempt's HTTP timeout: a paused node must not hold a client for the whole deadline.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(2_500);
/// The treasury looks at every customer this often…
const TOP_UP_EVERY: Duration = Duration::from_secs(2);
/// …and issues float to one whose balance fell below this (cents)…
const TOP_UP_BELOW_CENTS: i64 = 10_000 * 100;
/// …of this much (cents): long runs keep their customers able to pay.
const TOP_UP_CENTS: i64 = 40_000 * 100;
/// How long set-up retries each registration or float issue while the cluster settles.
const SET_UP_PATIENCE: Duration = Duration::from_secs(60);

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
        all.push((self.paybill.clone(), PAYBILL_FLOAT_CENTS));
        all.push((self.till.clone(), 0));
        all
    }

    /// The paybill as a business of the business API (its credentials and initiator are the
    /// ones set-up registers), collecting through M-Pesa Express and paying out through B2C;
    /// its callbacks go to the receiver at `receiver_base`. `security_credential` is
    /// [`INITIATOR_PASSWORD`] encrypted under the cluster's certificate.
    pub fn business(&self, receiver_base: &str, security_credential: String) -> Business {
        let shortcode = self.paybill.trim_start_matches("business:").to_string();
        Business {
            consumer_key: format!("key-{shortcode}"),
            consumer_secret: "s".into(),
            passkey: "p".into(),
            shortcode,
            callback_url: format!("{receiver_base}/stk/callback"),
            initiator: INITIATOR.into(),
            security_credential,
            result_url: format!("{receiver_base}/b2c/result"),
            queue_timeout_url: format!("{receiver_base}/b2c/timeout"),
        }
    }

    /// (agent account, the phone it dials from).
    fn agent_phones(&self) -> Vec<(String, String)> {
        self.agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.clone(), agent_phone(i)))
            .collect()
    }
}

impl Default for Bank {
    fn default() -> Bank {
        Bank::new()
    }
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

/// The gateway every chaos client (and the set-up and the treasury) sends through.
fn gateway(urls: Vec<String>, channel: Channel, bank: &Bank) -> Result<Gateway, String> {
    Ok(Gateway::new(Targets::new(urls), ATTEMPT_TIMEOUT)?
        .with_retry(Retry::attempts(ATTEMPTS_MAX))
        .with_channel(channel)
        .with_deadline_ms(DEADLINE_MS)
        .with_admin_token(ADMIN_TOKEN)
        .with_agent_phones(bank.agent_phones()))
}

/// Registers and funds the bank through any node, retrying until it is done.
pub async fn set_up(urls: &[String], bank: &Bank) -> Result<(), String> {
    let gateway = gateway(urls.to_vec(), Channel::Api, bank)?;
    let mut steps = Vec::new();
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
        steps.push(("/admin/v1/businesses", json!({"shortcode": b.trim_start_matches("business:"), "kind": kind, "name": format!("Biz {kind}"), "consumer_key": format!("key-{}", b.trim_start_matches("business:")), "consumer_secret": "s", "passkey": "p"})));
    }
    for (i, (account, amount)) in bank
        .funded()
        .into_iter()
        .enumerate()
        .filter(|(_, (_, a))| *a > 0)
    {
        steps.push(("/admin/v1/float", json!({"request_id": format!("chaos-float-{i}"), "account": account, "amount": format_cents(amount)})));
    }
    for (n, (path, body)) in steps.into_iter().enumerate() {
        gateway
            .admin_until_done(path, &body, SET_UP_PATIENCE, n as u64)
            .await?;
    }
    // The paybill's payout initiator (the business API; harmless on other runs).
    let paybill = bank.paybill.trim_start_matches("business:");
    gateway
        .admin_call_until_done(
            reqwest::Method::PUT,
            &format!("/admin/v1/businesses/{paybill}/initiators/{INITIATOR}"),
            &json!({ "password": INITIATOR_PASSWORD }),
            SET_UP_PATIENCE,
            0,
        )
        .await?;
    Ok(())
}

/// A chaos client's mix: mostly transfers of every kind (everyday amounts, a few large ones:
/// enough to hit limits and empty wallets sometimes), some balance reads, now and then care
/// reversing a transfer just confirmed, and (with a business of the business API) M-Pesa
/// Express payments (6 %, a tenth of them declined) and B2C payouts (about 3 %).
struct BankScript {
    client: usize,
    bank: Bank,
    express: bool,
}

impl Script for BankScript {
    fn next(&mut self, rng: &mut SimRng, n: u64, previous: Option<&Completed>) -> Request {
        if let Some(done) = previous {
            if let (Request::Transfer { order, .. }, Outcome::Confirmed { txn, .. }) =
                (&done.request, &done.answer.outcome)
            {
                // Care reverses a confirmed transfer: a new transfer back.
                if order.kind == "send_money" && rng.chance(50) {
                    return Request::Reversal {
                        id: format!("{}-rev", done.answer.id),
                        receipt: txn.clone(),
                        order: Order::new("reversal", &order.to, &order.from, order.amount_cents),
                    };
                }
            }
        }
        if rng.chance(50) {
            let account = rng.pick(&self.bank.customers).clone();
            return Request::Balance { account };
        }
        if self.express && rng.chance(60) {
            let from = rng.pick(&self.bank.customers).clone();
            let shillings = rng.range(1, 300) as i64;
            let order = Order::new("pay_bill", from, &self.bank.paybill, shillings * 100);
            return Request::StkPush {
                order,
                decline: rng.chance(100),
            };
        }
        if self.express && rng.chance(30) {
            let to = rng.pick(&self.bank.customers).clone();
            let shillings = rng.range(10, 2_000) as i64;
            let order = Order::new(
                "business_to_customer",
                &self.bank.paybill,
                to,
                shillings * 100,
            );
            return Request::B2c {
                order,
                originator: format!("chaos-c{}-{n}", self.client),
            };
        }
        let order = draw(rng, &self.bank);
        if order.from == order.to && order.kind != "buy_airtime" {
            return Request::Skip;
        }
        Request::Transfer {
            id: format!("c{}-{n}", self.client),
            order,
        }
    }
}

/// Draws one transfer.
fn draw(rng: &mut SimRng, bank: &Bank) -> Order {
    let customer = |rng: &mut SimRng| rng.pick(&bank.customers).clone();
    let agent = |rng: &mut SimRng| rng.pick(&bank.agents).clone();
    let amount = (if rng.chance(20) {
        rng.range(500, 20_000)
    } else {
        rng.range(1, 300)
    } * 100) as i64;
    match rng.below(100) {
        0..=39 => Order::new("send_money", customer(rng), customer(rng), amount),
        40..=49 => Order::new("cash_in", agent(rng), customer(rng), amount),
        50..=64 => Order::new("cash_out", customer(rng), agent(rng), amount.max(5_000)),
        65..=74 => Order::new("pay_bill", customer(rng), &bank.paybill, amount),
        75..=84 => Order::new("buy_goods", customer(rng), &bank.till, amount),
        85..=94 => Order::new(
            "buy_airtime",
            customer(rng),
            customer(rng),
            amount.min(100_000),
        ),
        _ => Order::new("send_money", customer(rng), &bank.stranger, amount),
    }
}

/// Balance reads made during the run, and any that showed a negative balance.
#[derive(Debug, Default)]
pub struct Reads {
    pub answered: u64,
    pub negative: Vec<String>,
}

/// What the clients recorded.
#[derive(Default)]
struct Journal {
    ops: Mutex<Vec<Op>>,
    reads: Mutex<Reads>,
}

impl Journal {
    fn record(&self, done: Completed, epoch: Instant) {
        let (kind, order) = match done.request {
            Request::Transfer { order, .. } => (order.kind, order),
            Request::Reversal { order, .. } => ("reversal", order),
            Request::FloatIssue {
                account,
                amount_cents,
                ..
            } => (
                "float_issue",
                Order::new("float_issue", account.clone(), account, amount_cents),
            ),
            // A push that opened no prompt moved nothing: not an operation.
            Request::StkPush { .. } if done.answer.id.is_empty() => return,
            Request::StkPush { order, .. } => (order.kind, order),
            Request::B2c { order, .. } => (order.kind, order),
            Request::Balance { account } => {
                if let Some(balance) = done.answer.balance_cents {
                    let mut reads = self.reads.lock().expect("no panics hold this lock");
                    reads.answered += 1;
                    if balance < 0 {
                        reads
                            .negative
                            .push(format!("{account} read with balance {balance} cents"));
                    }
                }
                return;
            }
            Request::Skip => return,
        };
        let op = Op {
            id: done.answer.id,
            kind,
            from: order.from,
            to: order.to,
            amount_cents: order.amount_cents,
            started_ms: done.sent.saturating_duration_since(epoch).as_millis() as u64,
            latency_ms: done.latency.as_millis() as u64,
            outcome: done.answer.outcome,
        };
        self.ops.lock().expect("no panics hold this lock").push(op);
    }
}

/// The running clients.
pub struct Clients {
    stop: Stop,
    journal: Arc<Journal>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Clients {
    /// Starts `count` clients; each draws from its own seeded generator. With a business of
    /// the business API, they also make M-Pesa Express payments to it and B2C payouts from it.
    pub fn start(
        count: usize,
        seed: u64,
        urls: Vec<String>,
        bank: Bank,
        channel: Channel,
        business: Option<Business>,
        epoch: Instant,
    ) -> Result<Clients, String> {
        let stop = Stop::when_told();
        let journal: Arc<Journal> = Arc::default();
        let mut gateway = gateway(urls, channel, &bank)?;
        let express = business.is_some();
        if let Some(business) = business {
            gateway = gateway.with_business(business);
        }
        let gateway = Arc::new(gateway);
        let sink = {
            let journal = journal.clone();
            Arc::new(move |done: Completed| journal.record(done, epoch))
        };
        let clients = {
            let (gateway, stop, bank) = (gateway.clone(), stop.clone(), bank.clone());
            tokio::spawn(load::drive(
                gateway,
                Pace::Closed { clients: count },
                seed,
                move |client| BankScript {
                    client,
                    bank: bank.clone(),
                    express,
                },
                stop,
                sink.clone(),
            ))
        };
        // The treasury sends float over the API whatever the clients' channel.
        let treasury_gateway = Arc::new(Gateway::clone(&gateway).with_channel(Channel::Api));
        let treasury = tokio::spawn(treasury(stop.clone(), sink, treasury_gateway, bank, seed));
        Ok(Clients {
            stop,
            journal,
            handles: vec![clients, treasury],
        })
    }

    /// Stops the clients and returns every operation and the balance reads.
    pub async fn finish(self) -> (Vec<Op>, Reads) {
        self.stop.now();
        for handle in self.handles {
            let _ = handle.await;
        }
        let ops = self
            .journal
            .ops
            .lock()
            .expect("no panics hold this lock")
            .clone();
        let reads =
            std::mem::take(&mut *self.journal.reads.lock().expect("no panics hold this lock"));
        (ops, reads)
    }
}

/// Keeps customers funded: every few seconds, float to each one whose balance fell low. Each
/// top-up is an operation like any other (kind `float_issue`, payer the issuer of the
/// customer's shard), so the checker counts it.
async fn treasury(
    stop: Stop,
    sink: Arc<dyn Fn(Completed) + Send + Sync>,
    gateway: Arc<Gateway>,
    bank: Bank,
    seed: u64,
) {
    let mut rng = SimRng::new(seed ^ 0x7EA5);
    let mut n = 0u64;
    while !stop.is_over() {
        tokio::time::sleep(TOP_UP_EVERY).await;
        for who in &bank.customers {
            if stop.is_over() {
                break;
            }
            let Some(balance) = gateway.admin_balance(who, &mut rng).await else {
                continue;
            };
            if balance >= TOP_UP_BELOW_CENTS {
                continue;
            }
            n += 1;
            let request = Request::FloatIssue {
                id: format!("topup-{n}"),
                account: who.clone(),
                amount_cents: TOP_UP_CENTS,
            };
            sink(load::send_timed(gateway.as_ref(), usize::MAX, request, &mut rng).await);
        }
    }
}

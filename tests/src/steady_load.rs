//! A steady stream of cross-shard transfers through random nodes, as channel gateways send
//! them — the shared load driver ([`tuma_chaos::load`]) on a runtime of its own: each request
//! is retried with the same id on another node after a refused connection, a 5xx or an
//! "unknown" answer, until it has a final answer or its client-side patience runs out. Counts
//! what a customer would see: confirmed, failed, and retries it took.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tuma_chaos::load::{
    self, parse_cents, Completed, Gateway, Order, Outcome, Pace, Request, Retry, Script, Stop,
    Targets,
};
use tuma_chaos::sim::SimRng;

use crate::{TestCluster, PIN};

/// A request without a final answer after this long counts as failed.
const REQUEST_PATIENCE: Duration = Duration::from_secs(40);
/// One attempt's HTTP timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(12);
/// Each transfer's own deadline (`deadline_ms`): as long as a USSD session lets a customer wait,
/// so that two debug-build clusters sharing two cores in CI measure handovers, not starvation.
const TRANSFER_DEADLINE_MS: u64 = 20_000;

/// A confirmed transfer: request id, payer, receipt.
pub type Confirmed = (String, String, String);

#[derive(Default)]
struct Tally {
    confirmed: Mutex<Vec<Confirmed>>,
    /// Failed requests with the answer that ended them.
    failed: Mutex<Vec<String>>,
    /// Client-side retries (another node, same id) plus the server-side retries the answers
    /// report.
    retries: AtomicU64,
}

impl Tally {
    fn record(&self, done: Completed) {
        let Request::Transfer { id, order } = done.request else {
            return;
        };
        let client_retries = done.answer.attempts.saturating_sub(1) as u64;
        self.retries.fetch_add(
            client_retries + done.answer.server_retries,
            Ordering::Relaxed,
        );
        let why = done.answer.last_error.unwrap_or_default();
        match done.answer.outcome {
            Outcome::Confirmed { txn, .. } => {
                self.confirmed.lock().unwrap().push((id, order.from, txn));
            }
            Outcome::Failed(result) => {
                self.failed
                    .lock()
                    .unwrap()
                    .push(format!("{id}: {result} ({why})"));
            }
            Outcome::Ambiguous => {
                self.failed
                    .lock()
                    .unwrap()
                    .push(format!("{id}: gave up after {why}"));
            }
        }
    }
}

/// Transfers of one amount between random pairs of people.
struct Pairs {
    client: usize,
    people: Arc<Vec<String>>,
    amount_cents: i64,
}

impl Script for Pairs {
    fn next(&mut self, rng: &mut SimRng, n: u64, _previous: Option<&Completed>) -> Request {
        let from = rng.pick(&self.people).clone();
        let to = rng.pick(&self.people).clone();
        if from == to {
            return Request::Skip;
        }
        Request::Transfer {
            id: format!("steady-{}-{n}", self.client),
            order: Order::new("send_money", from, to, self.amount_cents),
        }
    }
}

pub struct SteadyLoad {
    stop: Stop,
    targets: Targets,
    tally: Arc<Tally>,
    driver: JoinHandle<()>,
}

/// What the load saw.
#[derive(Debug)]
pub struct LoadReport {
    pub confirmed: Vec<Confirmed>,
    pub failed: Vec<String>,
    pub retries: u64,
}

/// Registers and funds `customers` customers (prefix `25471`), for [`SteadyLoad::start`].
pub fn customers(cluster: &TestCluster, count: usize, funding: &str) -> Vec<String> {
    let people: Vec<String> = (0..count).map(|i| format!("2547120000{i:02}")).collect();
    for (i, c) in people.iter().enumerate() {
        cluster.register_customer(c);
        cluster.fund(c, funding, &format!("steady-fund-{i}"));
    }
    people
}

impl SteadyLoad {
    /// `clients` clients sending `amount` between random pairs of `people`.
    pub fn start(
        urls: Vec<String>,
        people: Vec<String>,
        clients: usize,
        amount: &str,
    ) -> SteadyLoad {
        let targets = Targets::new(urls);
        let gateway = Gateway::new(targets.clone(), ATTEMPT_TIMEOUT)
            .expect("an HTTP client")
            .with_retry(Retry::patience(REQUEST_PATIENCE))
            .with_pin(PIN)
            .with_deadline_ms(TRANSFER_DEADLINE_MS);
        let (stop, tally) = (Stop::when_told(), Arc::<Tally>::default());
        let (people, amount_cents) = (Arc::new(people), parse_cents(amount));
        let driver = {
            let (stop, tally) = (stop.clone(), tally.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a tokio runtime");
                let script_for = move |client| Pairs {
                    client,
                    people: people.clone(),
                    amount_cents,
                };
                let sink = Arc::new(move |done: Completed| tally.record(done));
                runtime.block_on(load::drive(
                    Arc::new(gateway),
                    Pace::Closed { clients },
                    7919,
                    script_for,
                    stop,
                    sink,
                ));
            })
        };
        SteadyLoad {
            stop,
            targets,
            tally,
            driver,
        }
    }

    /// Changes the nodes requests go to (a node added, or one about to be removed).
    pub fn set_urls(&self, urls: Vec<String>) {
        self.targets.set(urls);
    }

    pub fn confirmed_so_far(&self) -> usize {
        self.tally.confirmed.lock().unwrap().len()
    }

    pub fn finish(self) -> LoadReport {
        self.stop.now();
        self.driver.join().expect("the load driver thread");
        LoadReport {
            confirmed: self.tally.confirmed.lock().unwrap().clone(),
            failed: self.tally.failed.lock().unwrap().clone(),
            retries: self.tally.retries.load(Ordering::Relaxed),
        }
    }
}

/// Every confirmed transfer is committed with the same receipt, asked through `url`.
pub fn assert_confirmed_present(cluster: &TestCluster, url: &str, confirmed: &[Confirmed]) {
    for (id, from, receipt) in confirmed {
        let (status, body) = cluster
            .get(&format!("{url}/v1/transfers/{id}?from={from}"))
            .expect("transfer status");
        assert_eq!(status, 200, "confirmed transfer {id} is missing: {body}");
        assert_eq!(body["status"], "confirmed", "{id}: {body}");
        assert_eq!(
            body["transaction_id"].as_str(),
            Some(receipt.as_str()),
            "{id}"
        );
    }
}

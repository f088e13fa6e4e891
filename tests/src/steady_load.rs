//! A steady stream of cross-shard transfers through random nodes, as channel gateways send
//! them: each request is retried with the same id on another node after a refused connection,
//! a 5xx or an "unknown" answer, until it has a final answer or its client-side deadline
//! passes. Counts what a customer would see: confirmed, failed, and retries it took.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{send_money, TestCluster};

/// A request without a final answer after this long counts as failed.
const REQUEST_PATIENCE: Duration = Duration::from_secs(40);
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

pub struct SteadyLoad {
    stop: Arc<AtomicBool>,
    urls: Arc<Mutex<Vec<String>>>,
    tally: Arc<Tally>,
    threads: Vec<JoinHandle<()>>,
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
    /// `threads` clients sending `amount` between random pairs of `people`.
    pub fn start(
        urls: Vec<String>,
        people: Vec<String>,
        threads: usize,
        amount: &str,
    ) -> SteadyLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let urls = Arc::new(Mutex::new(urls));
        let tally = Arc::new(Tally::default());
        let threads = (0..threads)
            .map(|t| {
                let (stop, urls, tally, people, amount) = (
                    stop.clone(),
                    urls.clone(),
                    tally.clone(),
                    people.clone(),
                    amount.to_string(),
                );
                std::thread::spawn(move || client(t, &stop, &urls, &tally, &people, &amount))
            })
            .collect();
        SteadyLoad {
            stop,
            urls,
            tally,
            threads,
        }
    }

    /// Changes the nodes requests go to (a node added, or one about to be removed).
    pub fn set_urls(&self, urls: Vec<String>) {
        *self.urls.lock().unwrap() = urls;
    }

    pub fn confirmed_so_far(&self) -> usize {
        self.tally.confirmed.lock().unwrap().len()
    }

    pub fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        LoadReport {
            confirmed: self.tally.confirmed.lock().unwrap().clone(),
            failed: self.tally.failed.lock().unwrap().clone(),
            retries: self.tally.retries.load(Ordering::Relaxed),
        }
    }
}

fn client(
    t: usize,
    stop: &AtomicBool,
    urls: &Mutex<Vec<String>>,
    tally: &Tally,
    people: &[String],
    amount: &str,
) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(12))
        .build()
        .unwrap();
    let mut n: usize = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let seed = t * 7919 + n * 104_729;
        let from = &people[seed % people.len()];
        let to = &people[(seed / people.len() + 1 + seed) % people.len()];
        if from == to {
            continue;
        }
        let id = format!("steady-{t}-{n}");
        let mut body = send_money(&id, from, to, amount);
        body["deadline_ms"] = TRANSFER_DEADLINE_MS.into();
        let give_up = Instant::now() + REQUEST_PATIENCE;
        let mut attempt = 0;
        loop {
            let url = {
                let urls = urls.lock().unwrap();
                urls[(seed + attempt) % urls.len()].clone()
            };
            attempt += 1;
            let answer = http.post(format!("{url}/v1/transfers")).json(&body).send();
            let outcome: Result<Value, String> = match answer {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let json: Value = response.json().unwrap_or(Value::Null);
                    match (status, json["status"].as_str()) {
                        (200, Some("confirmed")) => Ok(json),
                        (200, _) | (400..=499, _) => {
                            tally
                                .failed
                                .lock()
                                .unwrap()
                                .push(format!("{id} via {url}: HTTP {status} {json}"));
                            break;
                        }
                        _ => Err(format!("HTTP {status} {json}")),
                    }
                }
                Err(error) => Err(error.to_string()),
            };
            match outcome {
                Ok(json) => {
                    let server_retries = json["retries"].as_u64().unwrap_or(0);
                    tally.retries.fetch_add(server_retries, Ordering::Relaxed);
                    let receipt = json["transaction_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    tally
                        .confirmed
                        .lock()
                        .unwrap()
                        .push((id, from.clone(), receipt));
                    break;
                }
                Err(why) if Instant::now() >= give_up => {
                    tally
                        .failed
                        .lock()
                        .unwrap()
                        .push(format!("{id}: gave up after {why}"));
                    break;
                }
                Err(_) => {
                    tally.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
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

//! Crashes under load on real processes: `kill -9` of the busiest leader mid-stream, its
//! restart and catch-up, then `kill -9` of every node at once. No transfer confirmed to a
//! client may be lost, and the books must balance.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tuma_tests::steady_load::assert_confirmed_present;
use tuma_tests::{send_money, TestCluster};

const CUSTOMERS: usize = 12;
const FUNDING: i64 = 100_000;

fn customers() -> Vec<String> {
    (0..CUSTOMERS)
        .map(|i| format!("2547100000{i:02}"))
        .collect()
}

fn setup(cluster: &TestCluster) {
    for (i, c) in customers().iter().enumerate() {
        cluster.register_customer(c);
        cluster.fund(c, &format!("{FUNDING}.00"), &format!("fund-{i}"));
    }
}

/// Confirmed transfers: (request id, payer, transaction id).
type Confirmed = Arc<Mutex<Vec<(String, String, String)>>>;

struct Load {
    stop: Arc<AtomicBool>,
    confirmed: Confirmed,
    threads: Vec<JoinHandle<u64>>,
}

/// Clients sending cross-shard transfers through random nodes (as gateways do).
fn start_load(urls: Vec<String>, prefix: &str, threads: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let confirmed: Confirmed = Arc::default();
    let handles = (0..threads)
        .map(|t| {
            let (stop, confirmed, urls, prefix) = (
                stop.clone(),
                confirmed.clone(),
                urls.clone(),
                prefix.to_string(),
            );
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(15))
                    .build()
                    .unwrap();
                let people = customers();
                let mut n: u64 = 0;
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let seed = (t as u64 * 7919 + n * 104_729) as usize;
                    let (from, to) = (
                        &people[seed % CUSTOMERS],
                        &people[(seed / CUSTOMERS + 1 + seed) % CUSTOMERS],
                    );
                    if from == to {
                        continue;
                    }
                    let id = format!("{prefix}-{t}-{n}");
                    let url = &urls[seed % urls.len()];
                    sent += 1;
                    let Ok(response) = client
                        .post(format!("{url}/v1/transfers"))
                        .json(&send_money(&id, from, to, "150.00"))
                        .send()
                    else {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    if response.status() != 200 {
                        continue;
                    }
                    let body: Value = response.json().unwrap_or(Value::Null);
                    if body["status"] == "confirmed" {
                        let txn = body["transaction_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        confirmed.lock().unwrap().push((id, from.clone(), txn));
                    }
                }
                sent
            })
        })
        .collect();
    Load {
        stop,
        confirmed,
        threads: handles,
    }
}

impl Load {
    fn finish(self) -> (Vec<(String, String, String)>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.threads.into_iter().map(|t| t.join().unwrap()).sum();
        let confirmed = self.confirmed.lock().unwrap().clone();
        (confirmed, sent)
    }
}

/// Every confirmed transfer is still committed with the same receipt.
fn assert_all_present(cluster: &TestCluster, confirmed: &[(String, String, String)]) {
    let url = cluster.url(cluster.running()[0]).to_string();
    assert_confirmed_present(cluster, &url, confirmed);
}

/// Σ balances = 0, Σ clearing = 0, nothing in flight, and customers + fees = what was issued.
fn assert_books_balance(cluster: &TestCluster) {
    let audit = cluster.quiet_audit(Duration::from_secs(30));
    let totals = &audit["totals"];
    assert_eq!(totals["transfers_in_flight"], 0, "{audit}");
    assert_eq!(totals["balance_sum"], "0.00", "{audit}");
    assert_eq!(totals["clearing_sum"], "0.00", "{audit}");
    assert_eq!(audit["balanced"], true);
    let url = cluster.url(cluster.running()[0]).to_string();
    let customer_cents: i64 = customers()
        .iter()
        .map(|c| {
            let (_, body) = cluster
                .get(&format!("{url}/admin/v1/accounts/{c}"))
                .unwrap();
            let balance = body["balance"].as_str().unwrap().replace('.', "");
            balance.parse::<i64>().unwrap()
        })
        .sum();
    let fees: i64 = totals["fees"]
        .as_str()
        .unwrap()
        .replace('.', "")
        .parse()
        .unwrap();
    assert_eq!(
        customer_cents + fees,
        CUSTOMERS as i64 * FUNDING * 100,
        "money was created or destroyed: {audit}"
    );
    assert_eq!(
        totals["e_money_issued"],
        format!("{}.00", CUSTOMERS as i64 * FUNDING)
    );
}

#[test]
fn killing_the_busiest_leader_loses_nothing_and_it_catches_up_on_restart() {
    let mut cluster = TestCluster::start("kill-leader", 3, 8);
    setup(&cluster);
    let urls: Vec<String> = (1..=3).map(|id| cluster.url(id).to_string()).collect();
    let load = start_load(urls.clone(), "a", 4);
    std::thread::sleep(Duration::from_secs(3));
    let (victim, led) = cluster
        .leaders()
        .into_iter()
        .max_by_key(|(_, led)| led.len())
        .unwrap();
    assert!(!led.is_empty());
    cluster.kill9(victim);
    let killed_at = Instant::now();
    // Service resumes: a transfer from every customer (every shard) goes through a survivor.
    let survivor = cluster.running()[0];
    let people = customers();
    for (i, from) in people.iter().enumerate() {
        let to = &people[(i + 1) % CUSTOMERS];
        let body = send_money(&format!("probe-{i}"), from, to, "1.00");
        loop {
            let answer = cluster.post(&format!("{}/v1/transfers", cluster.url(survivor)), &body);
            if matches!(&answer, Some((200, b)) if b["status"] == "confirmed") {
                break;
            }
            assert!(
                killed_at.elapsed() < Duration::from_secs(20),
                "no service 20 s after the kill: {answer:?}"
            );
        }
    }
    let resumed = killed_at.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    cluster.spawn(victim, None);
    std::thread::sleep(Duration::from_secs(3));
    let (confirmed, sent) = load.finish();
    eprintln!(
        "sent {sent}, confirmed {}, service resumed {resumed:?} after the kill",
        confirmed.len()
    );
    assert!(
        confirmed.len() > 20,
        "too little load got through: {}",
        confirmed.len()
    );
    // The restarted node catches up: its applied index reaches each leader's commit.
    let started = Instant::now();
    loop {
        let statuses = cluster.statuses();
        let commit = |shard: u64| {
            statuses
                .iter()
                .flat_map(|(_, s)| s["shards"].as_array().unwrap().clone())
                .filter(|s| s["shard"] == shard && s["role"] == "leader")
                .map(|s| s["commit_index"].as_u64().unwrap())
                .max()
        };
        let victim_status = statuses
            .iter()
            .find(|(id, _)| *id == victim)
            .map(|(_, s)| s.clone());
        let caught_up = victim_status.is_some_and(|s| {
            s["shards"].as_array().unwrap().iter().all(|r| {
                commit(r["shard"].as_u64().unwrap())
                    .is_some_and(|c| r["applied_index"].as_u64().unwrap() >= c)
            })
        });
        if caught_up {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "node {victim} did not catch up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_all_present(&cluster, &confirmed);
    assert_books_balance(&cluster);
    // A clean stop exits 0.
    assert_eq!(cluster.stop(victim), Some(0));
}

#[test]
fn killing_every_node_under_load_keeps_every_confirmed_transfer() {
    let mut cluster = TestCluster::start("kill-all", 3, 8);
    setup(&cluster);
    let urls: Vec<String> = (1..=3).map(|id| cluster.url(id).to_string()).collect();
    let load = start_load(urls, "b", 4);
    std::thread::sleep(Duration::from_secs(4));
    for id in 1..=3 {
        cluster.kill9(id);
    }
    let (confirmed, sent) = load.finish();
    eprintln!(
        "sent {sent}, confirmed {} before every node was killed",
        confirmed.len()
    );
    assert!(
        confirmed.len() > 20,
        "too little load got through: {}",
        confirmed.len()
    );
    for id in 1..=3 {
        cluster.spawn(id, None);
    }
    cluster.wait_ready(Duration::from_secs(60));
    assert_all_present(&cluster, &confirmed);
    assert_books_balance(&cluster);
}

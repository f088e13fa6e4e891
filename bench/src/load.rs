//! The load: accounts, workloads, and the clients that drive them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tuma_actors::pin::{Pin, PinHasher};
use tuma_chaos::harness::{post_admin, LocalCluster, NetworkMode, NodeOptions};
use tuma_chaos::sim::SimRng;

use crate::measure::{
    process_usage, resident_mib, BenchResult, NodeUsage, Recorder, TICKS_PER_SECOND,
};

/// What the clients send.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Cross-shard send-money between uniformly chosen customers.
    Transfers,
    /// Zipf-like: most transfers touch a few hot accounts (a big paybill, a busy agent).
    Skewed,
    /// A day's mix: send money, cash-in, cash-out, pay bill, buy goods, airtime, balance checks.
    Day,
}

impl Workload {
    pub fn parse(name: &str) -> Option<Workload> {
        match name {
            "transfers" => Some(Workload::Transfers),
            "skewed" => Some(Workload::Skewed),
            "day" => Some(Workload::Day),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Workload::Transfers => "transfers",
            Workload::Skewed => "skewed",
            Workload::Day => "day",
        }
    }
}

/// One run's settings.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub binary: PathBuf,
    pub dir: PathBuf,
    /// Existing nodes to drive instead of starting a cluster.
    pub target: Option<Vec<String>>,
    pub nodes: usize,
    pub shards: u32,
    pub workload: Workload,
    pub duration: Duration,
    pub warmup: Duration,
    pub accounts: usize,
    pub seed: u64,
    /// Closed loop: this many clients, each waiting for its answer.
    pub clients: usize,
    /// Open loop: requests started per second (overrides `clients`' pacing).
    pub rate: Option<u64>,
    /// Start nodes with argon2id PIN hashes of the cheapest parameters.
    pub fast_pin_hash: bool,
    /// Production argon2id PIN hashes (`--pin-hash argon2` on the nodes) instead of keyed
    /// digests; `fast_pin_hash` implies argon2 with the cheapest parameters.
    pub argon2_pin_hash: bool,
    /// Extra `tuma node` flags for a local cluster (such as a short `--idempotency-window`
    /// for a soak).
    pub node_flags: Vec<String>,
}

impl BenchConfig {
    fn argon2_pins(&self) -> bool {
        self.fast_pin_hash || self.argon2_pin_hash
    }

    fn pin_rows(&self) -> PinRows {
        if self.argon2_pins() {
            PinRows::Argon2 {
                fast: self.fast_pin_hash,
            }
        } else {
            PinRows::Keyed
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
}

/// Accounts funded (and so used by the workload); the rest are registered only.
const FUNDED_MAX: usize = 2_000;
/// Rows per bulk registration request.
const IMPORT_BATCH: usize = 5_000;
const HOT_PAYBILL: &str = "business:400200";
const HOT_AGENT: &str = "agent:700100";
/// Most requests in flight in open-loop mode.
const OPEN_LOOP_IN_FLIGHT_MAX: usize = 10_000;

fn customer(i: usize) -> String {
    format!("25475{i:07}")
}

/// An admin POST, retried for up to ~10 s while the cluster settles.
async fn admin(client: &reqwest::Client, url: &str, path: &str, body: Value) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..50 {
        match post_admin(client, url, path, &body).await {
            Ok(()) => return Ok(()),
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("kept failing: {last}"))
}

/// How the bench registers its customers' PINs.
#[derive(Copy, Clone)]
enum PinRows {
    /// Plain PINs, digested by the nodes under their PIN key.
    Keyed,
    /// argon2id PHC strings computed by the bench (`fast`: the cheapest parameters).
    Argon2 { fast: bool },
}

async fn set_up(
    client: &reqwest::Client,
    urls: &[String],
    accounts: usize,
    pin_rows: PinRows,
) -> Result<f64, String> {
    let url = &urls[0];
    admin(client, url, "/admin/v1/businesses", json!({"shortcode": "400200", "kind": "paybill", "name": "Big Utility", "consumer_key": "k", "consumer_secret": "s", "passkey": "p"})).await?;
    admin(client, url, "/admin/v1/agents", json!({"agent_number": "700100", "store_number": "1", "name": "Busy Agent", "msisdn": "254700700100", "pin": "1234"})).await?;
    admin(
        client,
        url,
        "/admin/v1/float",
        json!({"request_id": "bench-agent-float", "account": HOT_AGENT, "amount": "10000000.00"}),
    )
    .await?;
    // Every account is registered in bulk: with argon2, one PHC string computed here (hashing a
    // million PINs on the nodes would dominate the run); with keyed digests the PIN itself,
    // digested by the nodes in microseconds. The first `FUNDED_MAX` are funded and trade
    // (funding a million accounts one float at a time would dominate a run).
    let pin_field = match pin_rows {
        PinRows::Keyed => ("pin", "1234".to_string()),
        PinRows::Argon2 { fast } => {
            let hasher = if fast {
                PinHasher::new(64, 1).map_err(|e| e.to_string())?
            } else {
                PinHasher::owasp()
            };
            let pin = Pin::parse("1234").map_err(|e| e.to_string())?;
            ("pin_hash", hasher.hash(&pin).to_phc())
        }
    };
    let started = Instant::now();
    let rows: Vec<Value> = (0..accounts)
        .map(|i| {
            let mut row =
                json!({"msisdn": customer(i), "name": format!("Bench {i}"), "id_number": "1"});
            row[pin_field.0] = json!(pin_field.1);
            row
        })
        .collect();
    let mut imports = tokio::task::JoinSet::new();
    for (n, chunk) in rows.chunks(IMPORT_BATCH).enumerate() {
        let (client, url, body) = (
            client.clone(),
            urls[n % urls.len()].clone(),
            json!({"customers": chunk}),
        );
        imports.spawn(async move { admin(&client, &url, "/admin/v1/customers/bulk", body).await });
        if imports.len() >= 4 {
            imports
                .join_next()
                .await
                .expect("non-empty")
                .map_err(|e| e.to_string())??;
        }
    }
    while let Some(done) = imports.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let import_rate = accounts as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let tasks: Vec<_> = (0..accounts.min(FUNDED_MAX))
        .map(|i| {
            let (client, url) = (client.clone(), urls[i % urls.len()].clone());
            tokio::spawn(async move {
                admin(&client, &url, "/admin/v1/float", json!({"request_id": format!("bench-float-{i}"), "account": customer(i), "amount": "400000.00"})).await
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(import_rate)
}

/// One request of the workload: (path, body) — a transfer, or a balance check (GET, body null).
fn draw(workload: Workload, rng: &mut SimRng, accounts: usize, id: &str) -> (String, Value) {
    let pick = |rng: &mut SimRng| customer(rng.below(accounts as u64) as usize);
    // Two different customers (a transfer to oneself is refused, and would measure nothing).
    let pair = |rng: &mut SimRng| {
        let from = rng.below(accounts as u64) as usize;
        let to = (from + 1 + rng.below(accounts.saturating_sub(1).max(1) as u64) as usize)
            % accounts.max(1);
        (customer(from), customer(to))
    };
    let transfer = |kind: &str, from: String, to: String, amount: &str| {
        let mut body = json!({"request_id": id, "kind": kind, "from": from, "to": to, "amount": amount, "pin": "1234", "deadline_ms": 10_000});
        if kind == "pay_bill" {
            body["account_reference"] = json!("BENCH");
        }
        ("/v1/transfers".to_string(), body)
    };
    match workload {
        Workload::Transfers => {
            let (from, to) = pair(rng);
            transfer("send_money", from, to, "10.00")
        }
        Workload::Skewed => match rng.below(10) {
            0..=4 => transfer("pay_bill", pick(rng), HOT_PAYBILL.into(), "10.00"),
            5..=7 => transfer("cash_in", HOT_AGENT.into(), pick(rng), "100.00"),
            _ => {
                let (from, to) = pair(rng);
                transfer("send_money", from, to, "10.00")
            }
        },
        Workload::Day => match rng.below(100) {
            0..=34 => {
                let (from, to) = pair(rng);
                transfer("send_money", from, to, "250.00")
            }
            35..=44 => transfer("cash_in", HOT_AGENT.into(), pick(rng), "500.00"),
            45..=54 => transfer("cash_out", pick(rng), HOT_AGENT.into(), "500.00"),
            55..=64 => transfer("pay_bill", pick(rng), HOT_PAYBILL.into(), "120.00"),
            65..=74 => transfer("buy_airtime", pick(rng), pick(rng), "50.00"),
            75..=84 => transfer("pay_bill", pick(rng), HOT_PAYBILL.into(), "75.00"),
            _ => (format!("/v1/accounts/{}/balance", pick(rng)), Value::Null),
        },
    }
}

/// Sends one request; returns Ok(None) when confirmed/answered, Ok(Some(result)) when failed.
async fn send(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    body: &Value,
) -> Result<Option<String>, ()> {
    let response = if body.is_null() {
        client
            .get(format!("{url}{path}"))
            .header("X-Tuma-Pin", "1234")
            .send()
            .await
    } else {
        client.post(format!("{url}{path}")).json(body).send().await
    };
    let response = response.map_err(|_| ())?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(|_| ())?;
    match (status.as_u16(), answer["status"].as_str()) {
        (200, Some("confirmed")) | (200, None) => Ok(None),
        (200, _) => Ok(Some(
            answer["result"].as_str().unwrap_or("failed").to_string(),
        )),
        _ => Err(()),
    }
}

/// Runs the benchmark end to end.
pub async fn run(
    config: BenchConfig,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<BenchResult, BenchError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1024)
        .build()
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut cluster = None;
    let urls = match &config.target {
        Some(urls) => urls.clone(),
        None => {
            let options = NodeOptions {
                network: NetworkMode::Direct,
                plant_fault: None,
                fast_pin_hash: config.fast_pin_hash,
                argon2_pins: config.argon2_pins(),
                extra_args: config.node_flags.clone(),
            };
            let local = LocalCluster::start(
                config.binary.clone(),
                config.dir.clone(),
                config.nodes,
                config.shards,
                options,
            )
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
            if !local.wait_ready(Duration::from_secs(60)).await {
                return Err(BenchError::Setup(
                    "the local cluster never elected leaders".into(),
                ));
            }
            let urls = (1..=config.nodes).map(|id| local.url(id)).collect();
            cluster = Some(local);
            urls
        }
    };
    let import_rate = set_up(&client, &urls, config.accounts, config.pin_rows())
        .await
        .map_err(BenchError::Setup)?;
    let trading = config.accounts.min(FUNDED_MAX);
    let seconds = config.duration.as_secs() as usize;
    let recorder = Arc::new(Mutex::new(Recorder::new(seconds)));
    let start = Instant::now() + config.warmup;
    let end = start + config.duration;
    let usage_before: Vec<Option<(u64, f64)>> = match &cluster {
        Some(c) => (1..=config.nodes)
            .map(|id| c.pid(id).and_then(process_usage))
            .collect(),
        None => Vec::new(),
    };
    // Each node's resident memory, once a second from the start of the warm-up to the end.
    let memory: Arc<Mutex<Vec<Vec<f64>>>> = Arc::new(Mutex::new(Vec::new()));
    let sampler = cluster.as_ref().map(|c| {
        let pids: Vec<Option<u32>> = (1..=config.nodes).map(|id| c.pid(id)).collect();
        let memory = memory.clone();
        tokio::spawn(async move {
            while Instant::now() < end {
                let sample = pids
                    .iter()
                    .map(|pid| pid.and_then(resident_mib).unwrap_or(0.0))
                    .collect();
                memory
                    .lock()
                    .expect("no panics hold this lock")
                    .push(sample);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    });
    let one = |n: u64, rng: &mut SimRng| {
        let id = format!("bench-{}-{n}", config.seed);
        let (path, body) = draw(config.workload, rng, trading, &id);
        let url = urls[(n % urls.len() as u64) as usize].clone();
        let (client, recorder) = (client.clone(), recorder.clone());
        async move {
            let sent = Instant::now();
            let outcome = send(&client, &url, &path, &body).await;
            if sent < start || sent >= end {
                return;
            }
            let second = sent.duration_since(start).as_secs() as usize;
            let mut r = recorder.lock().expect("no panics hold this lock");
            match outcome {
                Ok(None) => r.confirmed(second, sent.elapsed().as_micros() as u64),
                Ok(Some(result)) => r.failed(second, &result),
                Err(()) => r.errors += 1,
            }
        }
    };
    match config.rate {
        None => {
            let handles: Vec<_> = (0..config.clients)
                .map(|c| {
                    let mut rng =
                        SimRng::new(config.seed.wrapping_mul(7919).wrapping_add(c as u64));
                    let mut n = c as u64;
                    let one = &one;
                    let clients = config.clients as u64;
                    async move {
                        while Instant::now() < end {
                            one(n, &mut rng).await;
                            n += clients;
                        }
                    }
                })
                .collect();
            let watcher = async {
                while Instant::now() < end {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    progress(Instant::now().saturating_duration_since(start).as_secs());
                }
            };
            tokio::join!(futures::future::join_all(handles), watcher);
        }
        Some(rate) => {
            let mut rng = SimRng::new(config.seed);
            let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
            let mut next = Instant::now();
            let mut n = 0u64;
            let in_flight = Arc::new(tokio::sync::Semaphore::new(OPEN_LOOP_IN_FLIGHT_MAX));
            let mut tasks = tokio::task::JoinSet::new();
            while Instant::now() < end {
                next += interval;
                tokio::time::sleep_until(next.into()).await;
                n += 1;
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    recorder.lock().expect("no panics hold this lock").errors += 1;
                    continue;
                };
                let job = one(n, &mut rng);
                tasks.spawn(async move {
                    job.await;
                    drop(permit);
                });
                if n.is_multiple_of(rate.max(1)) {
                    progress(Instant::now().saturating_duration_since(start).as_secs());
                }
            }
            while tasks.join_next().await.is_some() {}
        }
    }
    if let Some(sampler) = sampler {
        let _ = sampler.await;
    }
    let node_usage = match &cluster {
        Some(c) => (1..=config.nodes)
            .filter_map(|id| {
                let (ticks_before, _) = usage_before.get(id - 1).copied().flatten()?;
                let (ticks_after, peak) = c.pid(id).and_then(process_usage)?;
                let wall = (config.duration + config.warmup).as_secs_f64();
                Some(NodeUsage {
                    node: id,
                    cpu_cores: (ticks_after - ticks_before) as f64 / TICKS_PER_SECOND / wall,
                    peak_rss_mib: peak,
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let recorder = Arc::try_unwrap(recorder)
        .ok()
        .expect("every client finished")
        .into_inner()
        .expect("no panics hold this lock");
    let result = recorder.finish(
        config.workload.name(),
        config.nodes,
        config.clients,
        config.duration.as_secs_f64(),
        node_usage,
    );
    let memory = std::mem::take(&mut *memory.lock().expect("no panics hold this lock"));
    let result = BenchResult {
        accounts: config.accounts,
        import_rows_per_s: import_rate,
        rss_mib_per_second: memory,
        ..result
    };
    if let Some(mut c) = cluster {
        c.kill_all();
    }
    Ok(result)
}

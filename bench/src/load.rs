//! The load: accounts, workloads, and the clients that drive them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tuma_actors::pin::{Pin, PinHasher};
use tuma_chaos::harness::{LocalCluster, NetworkMode, NodeOptions, ADMIN_TOKEN};
use tuma_chaos::load::{
    self, Completed, Gateway, Order, Outcome, Pace, Request, Retry, Script, Stop, Targets,
};
use tuma_chaos::sim::SimRng;

use crate::costs::{self, Reading};
use crate::lean::{LeanClient, Route};
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
    /// The accounts exist already (an earlier run against the same `target` set them up).
    pub skip_setup: bool,
    /// Which load generator sends the requests, and to which node.
    pub client: LoadClient,
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

/// The load generator.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LoadClient {
    /// The lean client ([`crate::lean`]): keep-alive HTTP/1.1, one write per request.
    Lean(Route),
    /// The chaos harness's gateway (reqwest, JSON values): what `tuma chaos` and the tests use.
    Gateway,
}

impl LoadClient {
    /// How results name it.
    pub fn label(self) -> &'static str {
        match self {
            LoadClient::Lean(Route::Any) => "lean client, a node at random",
            LoadClient::Lean(Route::Leader) => "lean client, to the payer shard's leader",
            LoadClient::Gateway => "gateway client (reqwest), a node at random",
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
/// One request's HTTP timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Each transfer's `deadline_ms`.
const TRANSFER_DEADLINE_MS: u64 = 10_000;
/// How long set-up retries each registration or float issue while the cluster settles.
const ADMIN_PATIENCE: Duration = Duration::from_secs(10);

fn customer(i: usize) -> String {
    format!("25475{i:07}")
}

/// How the bench registers its customers' PINs.
#[derive(Copy, Clone)]
enum PinRows {
    /// Plain PINs, digested by the nodes under their PIN key.
    Keyed,
    /// argon2id PHC strings computed by the bench (`fast`: the cheapest parameters).
    Argon2 { fast: bool },
}

async fn set_up(gateway: &Gateway, accounts: usize, pin_rows: PinRows) -> Result<f64, String> {
    let admin = |path: &'static str, body: Value, first: u64| async move {
        gateway
            .admin_until_done(path, &body, ADMIN_PATIENCE, first)
            .await
    };
    admin("/admin/v1/businesses", json!({"shortcode": "400200", "kind": "paybill", "name": "Big Utility", "consumer_key": "k", "consumer_secret": "s", "passkey": "p"}), 0).await?;
    admin("/admin/v1/agents", json!({"agent_number": "700100", "store_number": "1", "name": "Busy Agent", "msisdn": "254700700100", "pin": "1234"}), 0).await?;
    admin(
        "/admin/v1/float",
        json!({"request_id": "bench-agent-float", "account": HOT_AGENT, "amount": "10000000.00"}),
        0,
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
        let (gateway, body) = (gateway.clone(), json!({"customers": chunk}));
        imports.spawn(async move {
            gateway
                .admin_until_done("/admin/v1/customers/bulk", &body, ADMIN_PATIENCE, n as u64)
                .await
        });
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
            let gateway = gateway.clone();
            let body = json!({"request_id": format!("bench-float-{i}"), "account": customer(i), "amount": "400000.00"});
            tokio::spawn(async move {
                gateway
                    .admin_until_done("/admin/v1/float", &body, ADMIN_PATIENCE, i as u64)
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(import_rate)
}

/// One client's requests: the workload's mix over the first `accounts` customers.
struct WorkloadScript {
    workload: Workload,
    accounts: usize,
    /// The idempotency keys' prefix: `bench-<seed>-<client>-`.
    prefix: String,
}

impl Script for WorkloadScript {
    fn next(&mut self, rng: &mut SimRng, n: u64, _previous: Option<&Completed>) -> Request {
        let id = format!("{}{n}", self.prefix);
        draw(self.workload, rng, self.accounts, id)
    }
}

/// One request of the workload: a transfer, or a balance check.
fn draw(workload: Workload, rng: &mut SimRng, accounts: usize, id: String) -> Request {
    let pick = |rng: &mut SimRng| customer(rng.below(accounts as u64) as usize);
    // Two different customers (a transfer to oneself is refused, and would measure nothing).
    let pair = |rng: &mut SimRng| {
        let from = rng.below(accounts as u64) as usize;
        let to = (from + 1 + rng.below(accounts.saturating_sub(1).max(1) as u64) as usize)
            % accounts.max(1);
        (customer(from), customer(to))
    };
    let transfer =
        |kind: &'static str, from: String, to: String, amount_cents: i64| Request::Transfer {
            id: id.clone(),
            order: Order::new(kind, from, to, amount_cents),
        };
    match workload {
        Workload::Transfers => {
            let (from, to) = pair(rng);
            transfer("send_money", from, to, 1_000)
        }
        Workload::Skewed => match rng.below(10) {
            0..=4 => transfer("pay_bill", pick(rng), HOT_PAYBILL.into(), 1_000),
            5..=7 => transfer("cash_in", HOT_AGENT.into(), pick(rng), 10_000),
            _ => {
                let (from, to) = pair(rng);
                transfer("send_money", from, to, 1_000)
            }
        },
        Workload::Day => match rng.below(100) {
            0..=34 => {
                let (from, to) = pair(rng);
                transfer("send_money", from, to, 25_000)
            }
            35..=44 => transfer("cash_in", HOT_AGENT.into(), pick(rng), 50_000),
            45..=54 => transfer("cash_out", pick(rng), HOT_AGENT.into(), 50_000),
            55..=64 => transfer("pay_bill", pick(rng), HOT_PAYBILL.into(), 12_000),
            65..=74 => transfer("buy_airtime", pick(rng), pick(rng), 5_000),
            75..=84 => transfer("pay_bill", pick(rng), HOT_PAYBILL.into(), 7_500),
            _ => Request::Balance { account: pick(rng) },
        },
    }
}

/// Each node's `/metrics` text (empty for a node that does not answer within a second).
async fn node_metrics(urls: &[String]) -> Vec<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap_or_default();
    let mut texts = Vec::new();
    for url in urls {
        let text = match client.get(format!("{url}/metrics")).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        texts.push(text);
    }
    texts
}

/// Runs the benchmark end to end.
pub async fn run(
    config: BenchConfig,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<BenchResult, BenchError> {
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
    // One attempt per request: the bench measures the cluster, not a gateway's patience.
    let gateway = Gateway::new(Targets::new(urls), REQUEST_TIMEOUT)
        .map_err(BenchError::Setup)?
        .with_retry(Retry::ONCE)
        .with_deadline_ms(TRANSFER_DEADLINE_MS)
        .with_admin_token(ADMIN_TOKEN);
    let import_rate = if config.skip_setup {
        0.0
    } else {
        set_up(&gateway, config.accounts, config.pin_rows())
            .await
            .map_err(BenchError::Setup)?
    };
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
    let sink = {
        let recorder = recorder.clone();
        Arc::new(move |done: Completed| {
            if done.sent < start || done.sent >= end {
                return;
            }
            let second = done.sent.duration_since(start).as_secs() as usize;
            let mut r = recorder.lock().expect("no panics hold this lock");
            match done.answer.outcome {
                Outcome::Confirmed { .. } => r.confirmed(second, done.latency.as_micros() as u64),
                Outcome::Failed(result) => r.failed(second, &result),
                Outcome::Ambiguous => r.errors += 1,
            }
        })
    };
    let pace = match config.rate {
        None => Pace::Closed {
            clients: config.clients,
        },
        Some(per_second) => Pace::Open {
            per_second,
            in_flight_max: OPEN_LOOP_IN_FLIGHT_MAX,
        },
    };
    let (workload, trading, seed) = (config.workload, trading, config.seed);
    let script_for = move |client: usize| WorkloadScript {
        workload,
        accounts: trading,
        prefix: format!("bench-{seed}-{client}-"),
    };
    let watcher = async {
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_secs(1)).await;
            progress(Instant::now().saturating_duration_since(start).as_secs());
        }
    };
    // Costs are counted over the measured window only.
    let probe = {
        let pids: Vec<Option<u32>> = match &cluster {
            Some(c) => (1..=config.nodes).map(|id| c.pid(id)).collect(),
            None => Vec::new(),
        };
        let urls = gateway.targets().all();
        async move {
            tokio::time::sleep_until(start.into()).await;
            let before = Reading::take(&pids, &node_metrics(&urls).await);
            tokio::time::sleep_until(end.into()).await;
            let after = Reading::take(&pids, &node_metrics(&urls).await);
            (before, after)
        }
    };
    let clients = async {
        match config.client {
            LoadClient::Gateway => {
                let gateway = Arc::new(gateway.clone());
                load::drive(gateway, pace, config.seed, script_for, Stop::at(end), sink).await;
            }
            LoadClient::Lean(route) => {
                let lean = LeanClient::new(
                    &gateway.targets().all(),
                    route,
                    gateway.pin(),
                    TRANSFER_DEADLINE_MS,
                    REQUEST_TIMEOUT,
                );
                let lean = match lean {
                    Ok(lean) => Arc::new(lean),
                    Err(why) => return Err(BenchError::Setup(format!("the lean client: {why}"))),
                };
                if route == Route::Leader && lean.refresh_leaders(ADMIN_TOKEN).await == 0 {
                    return Err(BenchError::Setup(
                        "--route leader: no node told which nodes lead the shards".into(),
                    ));
                }
                let refresh = (route == Route::Leader).then(|| {
                    crate::lean::spawn_leader_refresh(lean.clone(), ADMIN_TOKEN.to_string(), end)
                });
                load::drive(lean, pace, config.seed, script_for, Stop::at(end), sink).await;
                if let Some(refresh) = refresh {
                    refresh.abort();
                }
            }
        }
        Ok(())
    };
    let (driven, (), (cost_before, cost_after)) = tokio::join!(clients, watcher, probe);
    driven?;
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
    let costs = costs::costs(
        &cost_before,
        &cost_after,
        config.duration.as_secs_f64(),
        result.confirmed,
    );
    let result = BenchResult {
        load_client: config.client.label().to_string(),
        costs: Some(costs),
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

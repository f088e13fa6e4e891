//! `tuma chaos`: real faults against real nodes, and a bank checker.
//!
//! | file | holds |
//! |---|---|
//! | `launch.rs` | how a `tuma node` process is started (shared by every launcher, `cluster up` and the tests too) |
//! | `cluster.rs` | the cluster under test: `tuma node` processes, start/kill/pause/restart |
//! | `proxy.rs` | per-direction link proxies: partitions (one-way too), delay, loss |
//! | `workload.rs` | the bank: accounts, float, the clients' mix of every transfer kind (sent by [`crate::load`], over the API or whole USSD sessions) |
//! | `faults.rs` | the seeded fault schedule and what each fault does |
//! | `checker.rs` | audits during the run; the final verdict on every answer and balance |
//! | `callback_receiver.rs` | the business's callback URLs: every callback the nodes post, recorded |
//! | `callback_judge.rs` | one callback per committed business payment (STK prompts, B2C payouts), by id |
//! | `initiator.rs` | the paybill's payout `SecurityCredential` under the cluster's certificate |
//! | `report.rs` | the SVG report |
//!
//! Peer traffic goes through the harness's link proxies, so partitions and network faults need
//! neither root nor kernel modules (this machine's kernel has no `tc netem`). Clients talk to the
//! nodes directly, as gateways would.

mod callback_judge;
mod callback_receiver;
mod checker;
mod cluster;
mod faults;
mod initiator;
pub mod launch;
mod netns;
mod proxy;
mod report;
mod workload;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use crate::load::Channel;
pub use callback_judge::CallbackTally;
pub use cluster::{ChaosCluster as LocalCluster, NetworkMode, NodeOptions, ADMIN_TOKEN};
pub use faults::FaultKind;

/// Why a run could not be carried out (as opposed to finding violations).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("{0}")]
    Setup(String),
}

/// One run's settings.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    pub binary: PathBuf,
    pub nodes: usize,
    pub shards: u32,
    pub duration: Duration,
    pub seed: u64,
    pub faults: Vec<FaultKind>,
    pub clients: usize,
    /// Where nodes keep data and logs (removed after a clean run).
    pub dir: PathBuf,
    pub report: Option<PathBuf>,
    /// Passed to every node as `--plant-fault` (checker tests only).
    pub plant_fault: Option<String>,
    pub network: NetworkChoice,
    /// How the clients reach the cluster.
    pub channel: Channel,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct ChaosOutcome {
    pub ops: usize,
    pub confirmed: usize,
    pub failed: usize,
    pub ambiguous: usize,
    pub faults: usize,
    pub violations: Vec<String>,
    pub timeline: Vec<String>,
    /// Balance reads answered during the run.
    pub balance_reads: u64,
    /// Operations by kind.
    pub ops_by_kind: std::collections::BTreeMap<String, usize>,
    /// Failed answers by result name.
    pub failed_by_result: std::collections::BTreeMap<String, usize>,
    /// M-Pesa Express prompts, payments and callbacks (API runs).
    pub express: Option<callback_judge::CallbackTally>,
    /// B2C payout orders, payments and results (API runs).
    pub payouts: Option<callback_judge::CallbackTally>,
}

impl ChaosOutcome {
    /// The contract line.
    pub fn line(&self) -> String {
        format!(
            "ops={} confirmed={} failed={} ambiguous={} faults={} violations={}",
            self.ops,
            self.confirmed,
            self.failed,
            self.ambiguous,
            self.faults,
            self.violations.len()
        )
    }
}

/// Where the nodes run, chosen by `--network`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NetworkChoice {
    /// Namespaces when they can be made and no requested fault needs the proxies; else proxies.
    Auto,
    Namespaces,
    Proxies,
}

/// Decides between namespaces and proxies, and says why in plain words.
fn choose_network(config: &ChaosConfig, say: &(dyn Fn(&str) + Sync)) -> Result<bool, HarnessError> {
    let wants_net = config.faults.contains(&FaultKind::Net);
    if config.network == NetworkChoice::Proxies {
        say("network: loopback with link proxies (--network proxy)");
        return Ok(false);
    }
    let (available, netem) = netns::probe();
    match (config.network, available, wants_net) {
        (NetworkChoice::Namespaces, Err(e), _) => Err(HarnessError::Setup(format!("network namespaces are unavailable: {e}"))),
        (NetworkChoice::Namespaces, Ok(()), true) => Err(HarnessError::Setup(
            "net faults run through link proxies (tc netem is not used); drop `net` or use --network proxy".into(),
        )),
        (_, Ok(()), false) => {
            say("network: each node in its own network namespace on a bridge; partitions are blackhole routes");
            Ok(true)
        }
        (_, Ok(()), true) => {
            let why = if netem { "the harness applies them through link proxies" } else { "this kernel has no tc netem" };
            say(&format!("network: net faults requested and {why}, so nodes run on loopback with link proxies; partitions act on the proxies"));
            Ok(false)
        }
        (_, Err(e), _) => {
            say(&format!("network: namespaces unavailable ({e}); nodes run on loopback with link proxies; partitions act on the proxies"));
            Ok(false)
        }
    }
}

/// Runs the whole experiment. `say` receives timeline lines as they happen.
pub async fn run(
    config: ChaosConfig,
    say: &(dyn Fn(&str) + Sync),
) -> Result<ChaosOutcome, HarnessError> {
    let epoch = Instant::now();
    let stamp = |epoch: Instant| format!("[{:>6.1}s]", epoch.elapsed().as_secs_f64());
    let namespaces = choose_network(&config, say)?;
    let mut cluster = cluster::ChaosCluster::start(
        config.binary.clone(),
        config.dir.clone(),
        config.nodes,
        config.shards,
        cluster::NodeOptions {
            network: if namespaces {
                cluster::NetworkMode::Namespaces
            } else {
                cluster::NetworkMode::Proxies
            },
            plant_fault: config.plant_fault.clone(),
            fast_pin_hash: true,
            argon2_pins: false,
            extra_args: Vec::new(),
        },
    )
    .await?;
    if !cluster.wait_ready(Duration::from_secs(60)).await {
        return Err(HarnessError::Setup(format!(
            "the cluster never elected leaders; logs in {}",
            config.dir.display()
        )));
    }
    let urls: Vec<String> = (1..=config.nodes).map(|id| cluster.url(id)).collect();
    let bank = workload::Bank::new();
    if let Err(error) = workload::set_up(&urls, &bank).await {
        return Err(HarnessError::Setup(format!(
            "registering and funding the bank failed: {error}; logs in {}",
            config.dir.display()
        )));
    }
    say(&format!(
        "{} cluster of {} nodes ready, bank funded; {} clients start",
        stamp(epoch),
        config.nodes,
        config.clients
    ));
    // The paybill collects through M-Pesa Express and pays out through B2C too (API runs):
    // its callbacks come here.
    let (receiver, business) = if config.channel == Channel::Api {
        let receiver = callback_receiver::CallbackReceiver::start(cluster.harness_ip())
            .await
            .map_err(|e| HarnessError::Setup(format!("the callback receiver: {e}")))?;
        let credential = initiator::security_credential(&cluster, workload::INITIATOR_PASSWORD)
            .await
            .map_err(HarnessError::Setup)?;
        let business = bank.business(&receiver.base, credential);
        (Some(receiver), Some(business))
    } else {
        (None, None)
    };
    let run_epoch = Instant::now();
    let urls_for_audit = urls.clone();
    let clients = workload::Clients::start(
        config.clients,
        config.seed,
        urls,
        bank.clone(),
        config.channel,
        business,
        run_epoch,
    )
    .map_err(HarnessError::Setup)?;
    let duration_ms = config.duration.as_millis() as u64;
    let plan = faults::schedule(config.seed, &config.faults, duration_ms);
    let mut outcome = ChaosOutcome::default();
    let mut events = Vec::new();
    let auditor = checker::Auditor::start(urls_for_audit, run_epoch);
    let mut next_fault = 0;
    let mut active: Option<(faults::Planned, String, u64)> = None;
    while (run_epoch.elapsed().as_millis() as u64) < duration_ms {
        let now = run_epoch.elapsed().as_millis() as u64;
        if let Some((fault, description, started)) = &active {
            if now >= started + fault.hold_ms {
                cluster.heal()?;
                cluster.heal_clocks().await;
                say(&format!("{} healed: {description}", stamp(epoch)));
                events.push(faults::FaultEvent {
                    start_ms: *started,
                    end_ms: now,
                    kind: fault.kind,
                    description: description.clone(),
                });
                active = None;
            }
        } else if let Some(fault) = plan.get(next_fault).filter(|f| now >= f.at_ms) {
            next_fault += 1;
            let description = faults::apply(&mut cluster, fault).await;
            say(&format!(
                "{} {}: {description}",
                stamp(epoch),
                fault.kind.name()
            ));
            outcome.faults += 1;
            active = Some((fault.clone(), description, now));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some((fault, description, started)) = active.take() {
        events.push(faults::FaultEvent {
            start_ms: started,
            end_ms: run_epoch.elapsed().as_millis() as u64,
            kind: fault.kind,
            description,
        });
    }
    let (mut ops, reads) = clients.finish().await;
    outcome.balance_reads = reads.answered;
    for negative in reads.negative {
        outcome
            .violations
            .push(format!("negative balance: {negative}"));
    }
    let (audits, audit_violations) = auditor.finish().await;
    for violation in audit_violations {
        say(&format!("VIOLATION during the run: {violation}"));
        outcome.violations.push(violation);
    }
    cluster.heal()?;
    cluster.heal_clocks().await;
    say(&format!(
        "{} workload stopped; every fault healed; waiting for leaders and quiescence",
        stamp(epoch)
    ));
    if !cluster.wait_ready(Duration::from_secs(60)).await {
        outcome
            .violations
            .push("the cluster did not recover within 60 s of healing".to_string());
    } else {
        checker::resolve_payouts(&cluster, &bank, &mut ops).await;
        outcome
            .violations
            .extend(checker::final_checks(&cluster, &bank, &ops).await);
        if let Some(receiver) = &receiver {
            let checks = checker::callback_checks(&cluster, receiver, &ops).await;
            outcome.violations.extend(checks.violations);
            outcome.express = Some(checks.express);
            outcome.payouts = Some(checks.payouts);
        }
    }
    outcome.ops = ops.len();
    outcome.confirmed = ops
        .iter()
        .filter(|o| matches!(o.outcome, crate::load::Outcome::Confirmed { .. }))
        .count();
    outcome.failed = ops
        .iter()
        .filter(|o| matches!(o.outcome, crate::load::Outcome::Failed(_)))
        .count();
    for op in &ops {
        *outcome.ops_by_kind.entry(op.kind.to_string()).or_default() += 1;
        if let crate::load::Outcome::Failed(result) = &op.outcome {
            *outcome.failed_by_result.entry(result.clone()).or_default() += 1;
        }
    }
    outcome.ambiguous = ops
        .iter()
        .filter(|o| o.outcome == crate::load::Outcome::Ambiguous)
        .count();
    outcome.timeline = events
        .iter()
        .map(|e| {
            format!(
                "{:>6.1}s–{:>6.1}s {}",
                e.start_ms as f64 / 1000.0,
                e.end_ms as f64 / 1000.0,
                e.description
            )
        })
        .collect();
    if let Some(path) = &config.report {
        std::fs::write(
            path,
            report::svg(&ops, &audits, &events, duration_ms, &outcome.line()),
        )?;
    }
    cluster.kill_all();
    Ok(outcome)
}

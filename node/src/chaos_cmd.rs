//! `tuma chaos`: starts a cluster, drives money through it, breaks it, and says whether any
//! money was lost, created or left hanging.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tuma_chaos::harness::{self, ChaosConfig, FaultKind};

const DURATION_MAX: Duration = Duration::from_secs(3_600);

#[derive(Args, Debug)]
pub struct ChaosArgs {
    /// Nodes in the cluster under test.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// How long the workload and faults run: `60s`, `2m`, or seconds.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Seed of the fault schedule and the workload; the same seed replays the same schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Faults to use, comma-separated: kill, pause, partition, net, clock (restart a node with
    /// its clock skewed), clock-jump (move a running node's clock by up to an hour), restart,
    /// drain (removes a member while the others go on; it needs --nodes 4 or more).
    #[arg(
        long,
        default_value = "kill,pause,partition,net,clock,clock-jump,restart"
    )]
    faults: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Shards of the cluster under test.
    #[arg(long, default_value_t = 8)]
    shards: u32,
    /// Report file (SVG): throughput, latency and the audit over time, faults shaded.
    #[arg(long, default_value = "chaos-report.svg")]
    report: PathBuf,
    /// Keep the nodes' data and logs after a clean run (they are always kept after a failure).
    #[arg(long)]
    keep_data: bool,
    /// Where nodes run: `auto` (own network namespaces when possible and no `net` fault is
    /// requested, else loopback with link proxies), `netns`, or `proxy`.
    #[arg(long, default_value = "auto")]
    network: String,
    /// How the clients reach the cluster: `api` (`POST /v1/transfers`) or `ussd` (whole USSD
    /// sessions through the gateway callback, each step to a random node).
    #[arg(long, default_value = "api")]
    channel: String,
    /// Plant a fault in every node (checker tests): `ack-before-decide`.
    #[arg(long, hide = true)]
    plant_fault: Option<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.strip_suffix('s') {
        Some(n) => (n, 1),
        None => match text.strip_suffix('m') {
            Some(n) => (n, 60),
            None => (text, 1),
        },
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 60s or 2m"))?;
    let duration = Duration::from_secs(value * unit);
    if duration < Duration::from_secs(10) || duration > DURATION_MAX {
        return Err(format!(
            "duration must be 10s..={}s",
            DURATION_MAX.as_secs()
        ));
    }
    Ok(duration)
}

pub fn run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    if !(1..=7).contains(&args.nodes)
        || !(1..=64).contains(&args.clients)
        || !(1..=256).contains(&args.shards)
    {
        bail!("--nodes must be 1..=7, --clients 1..=64, --shards 1..=256");
    }
    let mut faults = Vec::new();
    for name in args
        .faults
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let kind = FaultKind::parse(name).with_context(|| {
            format!(
                "unknown fault {name:?}; expected kill, pause, partition, net, clock, restart, drain"
            )
        })?;
        if !faults.contains(&kind) {
            faults.push(kind);
        }
    }
    if faults.contains(&FaultKind::Drain) && args.nodes < 4 {
        bail!(
            "the drain fault removes a member: it needs --nodes 4 or more (3 replicas per shard)"
        );
    }
    let dir = std::env::temp_dir().join(format!("tuma-chaos-{}", std::process::id()));
    let config = ChaosConfig {
        binary: std::env::current_exe().context("locating the tuma binary")?,
        nodes: args.nodes,
        shards: args.shards,
        duration: args.duration,
        seed: args.seed,
        faults,
        clients: args.clients,
        dir: dir.clone(),
        report: Some(args.report.clone()),
        plant_fault: args.plant_fault.clone(),
        network: match args.network.as_str() {
            "auto" => harness::NetworkChoice::Auto,
            "netns" => harness::NetworkChoice::Namespaces,
            "proxy" => harness::NetworkChoice::Proxies,
            other => bail!("--network must be auto, netns or proxy, not {other:?}"),
        },
        channel: match args.channel.as_str() {
            "api" => harness::Channel::Api,
            "ussd" => harness::Channel::Ussd,
            other => bail!("--channel must be api or ussd, not {other:?}"),
        },
    };
    println!(
        "tuma chaos: {} nodes, {} s, seed {}, faults {}",
        args.nodes,
        args.duration.as_secs(),
        args.seed,
        args.faults
    );
    let bar = ProgressBar::new(args.duration.as_secs());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len}s {msg}").expect("static template"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let ticker = {
            let bar = bar.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    bar.inc(1);
                }
            })
        };
        let say = |line: &str| {
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
        };
        let result = tokio::select! {
            result = harness::run(config, &say) => Some(result),
            _ = tokio::signal::ctrl_c() => None,
        };
        ticker.abort();
        result
    });
    bar.finish_and_clear();
    let Some(outcome) = outcome else {
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!(
            "interrupted: every node stopped and {} removed",
            dir.display()
        );
        return Ok(ExitCode::from(130));
    };
    let outcome = outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("fault timeline:");
    for line in &outcome.timeline {
        println!("  {line}");
    }
    let failures: Vec<String> = outcome
        .failed_by_result
        .iter()
        .map(|(r, n)| format!("{r}={n}"))
        .collect();
    let kinds: Vec<String> = outcome
        .ops_by_kind
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    println!("operations by kind: {}", kinds.join(" "));
    println!("failed answers by result: {}", failures.join(" "));
    println!(
        "balance reads answered during the run: {}",
        outcome.balance_reads
    );
    if let Some(express) = &outcome.express {
        println!(
            "m-pesa express: prompts={} paid={} announced={} (each paid prompt: one callback, by id)",
            express.requests, express.paid, express.callbacks
        );
    }
    if let Some(payouts) = &outcome.payouts {
        println!(
            "b2c payouts: orders={} paid={} results={} (each paid payout: one result, by id)",
            payouts.requests, payouts.paid, payouts.callbacks
        );
    }
    println!("report: {}", args.report.display());
    if outcome.violations.is_empty() {
        if !args.keep_data {
            let _ = std::fs::remove_dir_all(&dir);
        }
    } else {
        for violation in &outcome.violations {
            println!("VIOLATION: {violation}");
        }
        println!(
            "replay with: tuma chaos --nodes {} --duration {}s --seed {} --faults {}",
            args.nodes,
            args.duration.as_secs(),
            args.seed,
            args.faults
        );
        println!("node logs and data kept in {}", dir.display());
    }
    println!("{}", outcome.line());
    Ok(if outcome.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

//! `tuma bench`: throughput and latency of a local (or running) cluster through the HTTP API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tuma_bench::{output, BenchConfig, Workload};

/// The script that installs and runs the throwaway PostgreSQL (also in `scripts/`).
const POSTGRES_SCRIPT: &str = include_str!("../../scripts/postgres-baseline.sh");

/// Most customers registered (in bulk) before a run.
const ACCOUNTS_MAX: usize = 5_000_000;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Nodes of the local cluster to start (3 replicas).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Drive running nodes instead: `http://HOST:PORT,http://HOST:PORT,…`.
    #[arg(long)]
    target: Option<String>,
    /// `transfers` (cross-shard send money), `skewed` (hot paybill and agent) or `day` (a mix).
    #[arg(long, default_value = "transfers")]
    workload: String,
    /// Measured time (`30s`, `30`, `10m`; at most an hour).
    #[arg(long, default_value = "30s")]
    duration: String,
    /// Unmeasured warm-up before it, in seconds.
    #[arg(long, default_value = "5s")]
    warmup: String,
    /// Customers registered (in bulk) before the run; the first 2000 are funded and trade.
    #[arg(long, default_value_t = 1_000)]
    accounts: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Closed loop: concurrent clients, each waiting for its answer.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Open loop: requests started per second (instead of closed loop).
    #[arg(long)]
    rate: Option<u64>,
    /// Shards of the local cluster.
    #[arg(long, default_value_t = 64)]
    shards: u32,
    /// Store PINs as argon2id hashes of the cheapest parameters (before keyed digests became
    /// the default, this isolated argon2's cost).
    #[arg(long)]
    fast_pin_hash: bool,
    /// Store PINs as production argon2id hashes (`--pin-hash argon2`) instead of the default
    /// keyed digests: measures argon2's cost.
    #[arg(long)]
    argon2_pin_hash: bool,
    /// Side-by-side baseline: `postgres` (one instance) or `postgres-replicated` (that one, then
    /// a primary with two streaming standbys, one of which must have flushed each commit:
    /// both reported).
    #[arg(long)]
    baseline: Option<String>,
    /// The local nodes' `--idempotency-window` (like 60s): a short one shows memory levelling
    /// off in a soak once finished transfers start to retire.
    #[arg(long)]
    idempotency_window: Option<String>,
    /// With --target: the accounts are there already (registered and funded by an earlier run
    /// against the same nodes), so start sending at once.
    #[arg(long, requires = "target")]
    skip_setup: bool,
    /// The load generator: `lean` (keep-alive HTTP/1.1, one write per request: the client's
    /// own cost kept out of the figures) or `gateway` (the chaos harness's reqwest client).
    #[arg(long, default_value = "lean")]
    client: String,
    /// Where the lean client sends each request: `any` (a node at random, as a gateway behind a
    /// load balancer) or `leader` (the payer shard's leader; labelled so in the results).
    #[arg(long, default_value = "any")]
    route: String,
    /// Where result.json, result.md and plots.svg go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
}

fn seconds(flag: &str, text: &str) -> anyhow::Result<Duration> {
    let value = crate::duration::parse(flag, text)?;
    if value > Duration::from_secs(3_600) {
        bail!("--{flag} is at most 3600 s");
    }
    Ok(value)
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let workload =
        Workload::parse(&args.workload).context("--workload must be transfers, skewed or day")?;
    let (baseline, replicated) = match args.baseline.as_deref() {
        None => (false, false),
        Some(name @ ("postgres" | "postgres-replicated")) if workload == Workload::Transfers => {
            (true, name == "postgres-replicated")
        }
        Some("postgres" | "postgres-replicated") => {
            bail!("the PostgreSQL baseline implements the transfers workload only")
        }
        Some(other) => bail!("--baseline {other:?}: postgres or postgres-replicated"),
    };
    let client = match (args.client.as_str(), args.route.as_str()) {
        ("gateway", "any") => tuma_bench::LoadClient::Gateway,
        ("gateway", _) => bail!("--route leader needs --client lean"),
        ("lean", route) => tuma_bench::LoadClient::Lean(
            tuma_bench::lean::Route::parse(route).context("--route must be any or leader")?,
        ),
        (other, _) => bail!("--client {other:?}: lean or gateway"),
    };
    let duration = seconds("duration", &args.duration)?;
    if duration.is_zero() {
        bail!("--duration must be positive");
    }
    if !(1..=ACCOUNTS_MAX).contains(&args.accounts)
        || !(1..=4_096).contains(&args.clients)
        || !(1..=7).contains(&args.nodes)
    {
        bail!("--accounts must be 1..={ACCOUNTS_MAX}, --clients 1..=4096, --nodes 1..=7");
    }
    let target = args.target.as_ref().map(|t| {
        t.split(',')
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .collect::<Vec<_>>()
    });
    let dir = std::env::temp_dir().join(format!("tuma-bench-{}", std::process::id()));
    let config = BenchConfig {
        binary: std::env::current_exe().context("locating the tuma binary")?,
        dir: dir.clone(),
        target,
        nodes: args.nodes,
        shards: args.shards,
        workload,
        duration,
        warmup: seconds("warmup", &args.warmup)?,
        accounts: args.accounts,
        seed: args.seed,
        clients: args.clients,
        rate: args.rate,
        fast_pin_hash: args.fast_pin_hash,
        argon2_pin_hash: args.argon2_pin_hash,
        skip_setup: args.skip_setup,
        client,
        // (The local cluster's nodes run without the public request budgets: chaos's launcher.)
        node_flags: match &args.idempotency_window {
            Some(window) => {
                crate::duration::parse("idempotency-window", window)?;
                vec!["--idempotency-window".into(), window.clone()]
            }
            None => Vec::new(),
        },
    };
    let bar = ProgressBar::new(duration.as_secs());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len}s measured").expect("static template"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (accounts, clients, seed, warmup) =
        (config.accounts, config.clients, config.seed, config.warmup);
    let result = runtime.block_on(tuma_bench::run(config, &|s| bar.set_position(s)));
    bar.finish_and_clear();
    let result = result.map_err(|e| anyhow::anyhow!("{e}"))?;
    let script = dir.join("postgres-baseline.sh");
    let run_postgres = |replicated: bool| -> anyhow::Result<tuma_bench::BenchResult> {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(&script, POSTGRES_SCRIPT)?;
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let (pg, label, instances) = if replicated {
            let pg = tuma_bench::postgres::Postgres::start_replicated(
                &script,
                &dir.join("postgres-replicated"),
            );
            (pg, "transfers (postgres, primary + 2 quorum standbys)", 3)
        } else {
            let pg = tuma_bench::postgres::Postgres::start(&script, &dir.join("postgres"));
            (pg, "transfers (postgres)", 1)
        };
        let pg = pg.map_err(|e| anyhow::anyhow!("{e}"))?;
        let measured = runtime.block_on(tuma_bench::postgres::run(
            &pg, label, instances, accounts, clients, seed, warmup, duration,
        ));
        drop(pg);
        measured.map_err(|e| anyhow::anyhow!("{e}"))
    };
    let postgres = if baseline {
        println!("tuma measured; now the PostgreSQL baseline with the same workload and clients");
        Some(run_postgres(false)?)
    } else {
        None
    };
    let postgres_replicated = if replicated {
        println!("now PostgreSQL with two synchronous (quorum) standbys, the same workload");
        Some(run_postgres(true)?)
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(
        args.out.join("result.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "tuma": &result,
            "postgres": &postgres,
            "postgres_replicated": &postgres_replicated,
        }))?,
    )?;
    let baselines: Vec<&tuma_bench::BenchResult> =
        postgres.iter().chain(postgres_replicated.iter()).collect();
    std::fs::write(
        args.out.join("result.md"),
        output::markdown(&result, &baselines),
    )?;
    std::fs::write(args.out.join("plots.svg"), output::svg(&result))?;
    print!("{}", output::markdown(&result, &baselines));
    if !result.failed_by_result.is_empty() {
        let failures: Vec<String> = result
            .failed_by_result
            .iter()
            .map(|(r, n)| format!("{r}={n}"))
            .collect();
        println!("failed by result: {}", failures.join(" "));
    }
    println!(
        "results: {}/result.json, result.md, plots.svg",
        args.out.display()
    );
    if let Some(replicated) = &postgres_replicated {
        println!("{}", output::replicated_line(&result, replicated));
    }
    println!("{}", output::summary_line(&result, postgres.as_ref()));
    Ok(ExitCode::SUCCESS)
}

//! `tuma sim`: runs the deterministic simulator and prints the summary line.
//!
//! By default the real engine (`tuma_chaos::sim::nodes`); `--model` runs the protocol-model
//! simulator instead. Either way: a progress bar, each failing seed with its violations and the
//! command that replays it, a detail line, then the contract line
//! `seeds=… transfers=… committed=… aborted=… violations=…`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tuma_actors::tariff::Tariffs;
use tuma_chaos::sim::{model, nodes, SeedReport, SimConfig, Summary};
use tuma_cluster::engine::EngineFault;

/// Most seeds one invocation runs.
const SEEDS_MAX: u64 = 10_000_000;

#[derive(Args, Debug)]
pub struct SimArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed; seeds run are `seed-start .. seed-start + seeds`.
    #[arg(long, default_value_t = 1)]
    seed_start: u64,
    /// Run only this seed (replay), with its full event trace.
    #[arg(long, conflicts_with_all = ["seeds", "seed_start"])]
    seed: Option<u64>,
    /// Client transfers per seed (default: 60 for the engine, 250 for the model).
    #[arg(long)]
    transfers: Option<usize>,
    /// Worker threads (defaults to the number of cores). The result does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// With --seed: write the full event trace to this file.
    #[arg(long, requires = "seed")]
    trace: Option<std::path::PathBuf>,
    /// Run the protocol-model simulator (ledgers and drivers over a modelled log) instead of
    /// the real engine.
    #[arg(long)]
    model: bool,
    /// Plant a defect in every simulated node to see the checker catch it:
    /// `presume-abort-early`, `presume-abort-unconfirmed` or `destroy-on-placement-change`
    /// (engine simulator only).
    #[arg(long, conflicts_with = "model")]
    plant_fault: Option<String>,
}

/// One of the two simulators, configured.
enum Simulator {
    Nodes(nodes::NodesConfig),
    Model(SimConfig),
}

impl Simulator {
    fn from_args(args: &SimArgs) -> anyhow::Result<Simulator> {
        if args.model {
            let mut cfg = SimConfig::default();
            cfg.transfers = args.transfers.unwrap_or(cfg.transfers);
            cfg.validate().context("invalid simulator settings")?;
            return Ok(Simulator::Model(cfg));
        }
        let mut cfg = nodes::NodesConfig::default();
        cfg.transfers = args.transfers.unwrap_or(cfg.transfers);
        if let Some(name) = &args.plant_fault {
            let fault = EngineFault::parse(name).filter(|f| *f != EngineFault::AckBeforeDecide);
            cfg.planted_fault = Some(fault.with_context(|| {
                format!("--plant-fault {name:?}: expected presume-abort-early, presume-abort-unconfirmed or destroy-on-placement-change")
            })?);
        }
        cfg.validate().context("invalid simulator settings")?;
        Ok(Simulator::Nodes(cfg))
    }

    fn traced(&self) -> Simulator {
        match self {
            Simulator::Nodes(cfg) => Simulator::Nodes(nodes::NodesConfig {
                trace: true,
                ..cfg.clone()
            }),
            Simulator::Model(cfg) => Simulator::Model(SimConfig {
                trace: true,
                ..cfg.clone()
            }),
        }
    }

    fn run_seed(&self, seed: u64) -> SeedReport {
        let tariffs = Arc::new(Tariffs::kenya_default());
        match self {
            Simulator::Nodes(cfg) => nodes::run_seed(cfg, seed, tariffs),
            Simulator::Model(cfg) => model::run_seed(cfg, seed, tariffs),
        }
    }

    fn run_seeds(
        &self,
        seeds: std::ops::Range<u64>,
        threads: usize,
        progress: &(dyn Fn(&SeedReport) + Sync),
    ) -> Summary {
        match self {
            Simulator::Nodes(cfg) => nodes::run_seeds(cfg, seeds, threads, progress),
            Simulator::Model(cfg) => model::run_seeds(cfg, seeds, threads, progress),
        }
    }

    fn replay_command(&self, seed: u64) -> String {
        match self {
            Simulator::Nodes(cfg) => match cfg.planted_fault {
                Some(fault) => format!("tuma sim --seed {seed} --plant-fault {}", fault.name()),
                None => format!("tuma sim --seed {seed}"),
            },
            Simulator::Model(_) => format!("tuma sim --model --seed {seed}"),
        }
    }
}

pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    let simulator = Simulator::from_args(&args)?;
    if let Some(seed) = args.seed {
        // A replay can show the engines' own logs: TUMA_LOG=debug tuma sim --seed N.
        if std::env::var_os("TUMA_LOG").is_some() {
            crate::init_tracing();
        }
        return replay(&simulator, seed, args.trace.as_deref());
    }
    if args.seeds == 0 || args.seeds > SEEDS_MAX {
        anyhow::bail!("--seeds must be 1..={SEEDS_MAX}");
    }
    let end = args
        .seed_start
        .checked_add(args.seeds)
        .context("--seed-start + --seeds overflows")?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let bar = ProgressBar::new(args.seeds);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {elapsed} eta {eta} {msg}")
            .expect("static template"),
    );
    let summary = simulator.run_seeds(args.seed_start..end, threads, &|report: &SeedReport| {
        bar.inc(1);
        if !report.violations.is_empty() {
            bar.set_message(format!("seed {} FAILED", report.seed));
        }
    });
    bar.finish_and_clear();
    for report in &summary.failed {
        print_failure(&simulator, report);
    }
    if summary.failed_seeds.len() > summary.failed.len() {
        println!("every failing seed:");
        for (seed, first) in &summary.failed_seeds {
            println!("  {}: {first}", simulator.replay_command(*seed));
        }
    }
    println!("{}", summary.detail());
    println!("{}", summary.line());
    Ok(if summary.violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints a failing seed's violations, the command that replays it and, from a traced replay,
/// the end of its story.
fn print_failure(simulator: &Simulator, report: &SeedReport) {
    println!(
        "FAILED seed {} — replay with: {}",
        report.seed,
        simulator.replay_command(report.seed)
    );
    for violation in &report.violations {
        println!("  violation: {violation}");
    }
    let traced = simulator.traced().run_seed(report.seed);
    let lines: Vec<&str> = match report.violations.iter().find_map(|v| v.transfer.clone()) {
        Some(id) => traced.trace_of(id.as_str()),
        None => traced.trace.iter().map(String::as_str).collect(),
    };
    println!("  the last events:");
    for line in lines.iter().rev().take(40).rev() {
        println!("    {line}");
    }
}

fn replay(
    simulator: &Simulator,
    seed: u64,
    trace_path: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let report = simulator.traced().run_seed(seed);
    if let Some(path) = trace_path {
        let mut file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        for line in &report.trace {
            writeln!(file, "{line}")?;
        }
    }
    if !report.violations.is_empty() {
        print_failure(simulator, &report);
    }
    let failed = !report.violations.is_empty();
    let line = format!(
        "seeds=1 transfers={} committed={} aborted={} violations={}",
        report.transfers,
        report.committed,
        report.aborted,
        report.violations.len()
    );
    println!("{line}");
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

//! `tuma sim`: runs the deterministic simulator and prints the summary line.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tuma_actors::tariff::Tariffs;
use tuma_chaos::sim::{run_seed, run_seeds, SeedReport, SimConfig};

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
    /// Client transfers per seed.
    #[arg(long, default_value_t = SimConfig::default().transfers)]
    transfers: usize,
    /// Worker threads (defaults to the number of cores). The result does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// With --seed: write the full event trace to this file.
    #[arg(long, requires = "seed")]
    trace: Option<std::path::PathBuf>,
}

pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    let cfg = SimConfig {
        transfers: args.transfers,
        ..SimConfig::default()
    };
    cfg.validate().context("invalid simulator settings")?;
    if let Some(seed) = args.seed {
        return replay(cfg, seed, args.trace.as_deref());
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
    let summary = run_seeds(
        &cfg,
        args.seed_start..end,
        threads,
        &|report: &SeedReport| {
            bar.inc(1);
            if !report.violations.is_empty() {
                bar.set_message(format!("seed {} FAILED", report.seed));
            }
        },
    );
    bar.finish_and_clear();
    for report in &summary.failed {
        print_failure(&cfg, report);
    }
    println!("{}", summary.detail());
    println!("{}", summary.line());
    Ok(if summary.violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints a failing seed's violations and, from a traced replay, the offending transfer's story.
fn print_failure(cfg: &SimConfig, report: &SeedReport) {
    println!(
        "FAILED seed {} — replay with: tuma sim --seed {}",
        report.seed, report.seed
    );
    for violation in &report.violations {
        println!("  violation: {violation}");
    }
    let traced_cfg = SimConfig {
        trace: true,
        ..cfg.clone()
    };
    let traced = run_seed(&traced_cfg, report.seed, Arc::new(Tariffs::kenya_default()));
    if let Some(id) = report.violations.iter().find_map(|v| v.transfer.clone()) {
        println!("  trace of transfer {id}:");
        for line in traced.trace_of(id.as_str()).iter().rev().take(40).rev() {
            println!("    {line}");
        }
    }
}

fn replay(
    cfg: SimConfig,
    seed: u64,
    trace_path: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let cfg = SimConfig { trace: true, ..cfg };
    let report = run_seed(&cfg, seed, Arc::new(Tariffs::kenya_default()));
    if let Some(path) = trace_path {
        let mut file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        for line in &report.trace {
            writeln!(file, "{line}")?;
        }
    }
    if !report.violations.is_empty() {
        print_failure(&cfg, &report);
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

//! `tuma`: the single binary. Parses the command line and hands off; no logic lives here.

mod bench_cmd;
mod chaos_cmd;
mod cluster_cmd;
mod config;
mod ctl_audit_log;
mod ctl_backup;
mod ctl_cmd;
mod ctl_keys;
mod duration;
mod engine_tuning;
mod http;
mod join;
mod menus_cmd;
mod node_cmd;
mod restore;
mod sim_cmd;
mod tls;

use std::process::ExitCode;

/// mimalloc (built with the `cc` crate alone, no `make`): it hands freed memory back to the
/// system. With glibc's malloc a node
/// that installed a shard with 2M history rows kept 7 of its 10 GiB resident after freeing
/// them (per-thread arenas, fragmented); `malloc_trim` gave them back at once.
#[cfg(not(feature = "heap-profile"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// With the `heap-profile` feature every allocation is recorded by call site (see
/// `node_cmd::run`).
#[cfg(feature = "heap-profile")]
#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

use clap::{Parser, Subcommand};

/// Tuma: mobile money on a fault-tolerant actor cluster.
#[derive(Parser, Debug)]
#[command(name = "tuma", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one cluster node.
    Node(Box<config::NodeArgs>),
    /// Start a local multi-node cluster.
    Cluster {
        #[command(subcommand)]
        command: cluster_cmd::ClusterCommand,
    },
    /// Operate a running cluster.
    Ctl(ctl_cmd::CtlArgs),
    /// Measure throughput and latency through the HTTP API.
    Bench(bench_cmd::BenchArgs),
    /// Break a real local cluster on a seeded schedule and check the bank.
    Chaos(chaos_cmd::ChaosArgs),
    /// Run the deterministic simulator of the money core over many seeds.
    Sim(sim_cmd::SimArgs),
    /// USSD menu files: check one offline (`tuma menus check FILE`), or print a shipped one.
    Menus {
        #[command(subcommand)]
        command: menus_cmd::MenusCommand,
    },
}

/// Logs to stderr; `TUMA_LOG` (or `RUST_LOG`) sets the filter (default `info`).
pub fn init_tracing() {
    init_tracing_as(config::LogFormat::Text);
}

/// Log lines to standard error, filtered by `TUMA_LOG` (or `RUST_LOG`; default `info`).
pub fn init_tracing_as(format: config::LogFormat) {
    let filter = std::env::var("TUMA_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    let _ = match format {
        config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        config::LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every HTTPS client and server of the process uses ring.
    tls::install_crypto_provider();
    let result = match cli.command {
        Command::Node(args) => node_cmd::run(*args),
        Command::Cluster { command } => cluster_cmd::run(command),
        Command::Ctl(args) => ctl_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Chaos(args) => chaos_cmd::run(args),
        Command::Sim(args) => sim_cmd::run(args),
        Command::Menus { command } => menus_cmd::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

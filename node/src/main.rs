//! `tuma`: the single binary. Parses the command line and hands off; no logic lives here.

use tuma_node::{
    bench_cmd, chaos_cmd, cluster_cmd, config, ctl_cmd, menus_cmd, node_cmd, sim_cmd, tls,
};

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

//! `tuma`: the single binary. Parses the command line and hands off; no logic lives here.

mod sim_cmd;

use std::process::ExitCode;

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
    /// Run the deterministic simulator of the money core over many seeds.
    Sim(sim_cmd::SimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => sim_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

//! `tuma ctl`: operator commands against a running cluster.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// Any node's HTTP URL.
    #[arg(long)]
    node: String,
    /// Admin bearer token.
    #[arg(long, env = "TUMA_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand, Debug)]
enum CtlCommand {
    /// Nodes, shards, leaders and replication lag as a table.
    Status,
}

pub fn run(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body: Value = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let response = client
            .get(format!(
                "{}/admin/v1/cluster",
                args.node.trim_end_matches('/')
            ))
            .bearer_auth(&args.admin_token)
            .send()
            .await
            .with_context(|| format!("reaching {}", args.node))?;
        if !response.status().is_success() {
            bail!("{} answered HTTP {}", args.node, response.status());
        }
        Ok::<Value, anyhow::Error>(response.json().await?)
    })?;
    match args.command {
        CtlCommand::Status => print!("{}", status_table(&body)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Renders `/admin/v1/cluster` as a table.
fn status_table(body: &Value) -> String {
    let mut out = format!(
        "node {} of members {}; leads {} of {} shards; {} live actors, {} actor restarts; {} bytes on disk\n",
        body["node"],
        body["members"],
        body["leading"],
        body["shard_count"],
        body["actors_live"],
        body["actor_restarts"],
        body["storage_bytes"]
    );
    out.push_str(&format!(
        "{:>5}  {:<9} {:>6} {:>6} {:>9} {:>9}  {}\n",
        "shard", "role", "leader", "term", "commit", "applied", "follower lag"
    ));
    for shard in body["shards"].as_array().into_iter().flatten() {
        let lag: Vec<String> = shard["follower_lag"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(node, lag)| format!("{node}:{lag}"))
            .collect();
        out.push_str(&format!(
            "{:>5}  {:<9} {:>6} {:>6} {:>9} {:>9}  {}\n",
            shard["shard"].to_string(),
            shard["role"].as_str().unwrap_or("?"),
            shard["leader"]
                .as_u64()
                .map_or("-".to_string(), |l| l.to_string()),
            shard["term"].to_string(),
            shard["commit_index"].to_string(),
            shard["applied_index"].to_string(),
            lag.join(" ")
        ));
    }
    out
}

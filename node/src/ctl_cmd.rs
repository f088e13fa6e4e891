//! `tuma ctl`: operator commands against a running cluster.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// Any node's HTTP URL (every command but `backup verify` needs one).
    #[arg(long)]
    node: Option<String>,
    /// Admin bearer token (every command but `backup verify` needs one).
    #[arg(long, env = "TUMA_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A CA certificate (PEM) to trust for an HTTPS node (the one `tuma cluster up` makes is
    /// DATA/tls/ca.pem).
    #[arg(long, env = "TUMA_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand, Debug)]
enum CtlCommand {
    /// Members, moves under way, and this node's shards, leaders and replication lag.
    Status,
    /// Cluster membership: list members, remove (drain) one.
    Members {
        #[command(subcommand)]
        command: MembersCommand,
    },
    /// Register customers in bulk from a CSV file: `msisdn,name,id_number[,pin_hash|pin]` per
    /// line (no commas inside fields except in the last, a stored hash — argon2id PHC string or
    /// keyed digest — or a 4-digit start PIN; `#` lines skipped).
    Import {
        #[arg(long)]
        csv: std::path::PathBuf,
        /// Rows per request (at most 10000).
        #[arg(long, default_value_t = 5_000)]
        batch: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
    },
    /// USSD menus: list those in force, push a new one.
    Menus {
        #[command(subcommand)]
        command: MenusCommand,
    },
    /// Businesses of the business API: their initiators.
    Businesses {
        #[command(subcommand)]
        command: BusinessesCommand,
    },
    /// The business API: the certificate initiator passwords are encrypted with.
    Daraja {
        #[command(subcommand)]
        command: DarajaCommand,
    },
    /// Scoped API keys (operator, care, auditor): list, create, rotate, revoke.
    Keys {
        #[command(subcommand)]
        command: crate::ctl_keys::KeysCommand,
    },
    /// The audit trail (who did what, when, from where, how it went) as JSON lines, newest
    /// first: a page, or `--all` for an export. Needs an auditor's key (or the bootstrap key).
    AuditLog(crate::ctl_audit_log::AuditLogArgs),
    /// Back the cluster up (`backup --out DIR`: a consistent copy of every shard, taken with
    /// new transfers paused for as long as reading the shards' states takes) or check a backup
    /// offline (`backup verify DIR`). `tuma cluster restore DIR` starts a new cluster from one.
    Backup(crate::ctl_backup::BackupArgs),
}

#[derive(Subcommand, Debug)]
enum BusinessesCommand {
    /// Add or replace an initiator allowed to order a business's payouts (B2C, B2B, status,
    /// balance); its clients send the password RSA-encrypted as `SecurityCredential`.
    Initiator {
        /// The business's shortcode.
        #[arg(long)]
        shortcode: String,
        /// The initiator's name (`InitiatorName` / `Initiator`).
        #[arg(long)]
        name: String,
        /// The initiator's password (from the environment, not the command line).
        #[arg(long, env = "TUMA_INITIATOR_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

#[derive(Subcommand, Debug)]
enum DarajaCommand {
    /// Print the PEM certificate businesses encrypt initiator passwords with (the same on
    /// every node of a cluster).
    Cert,
}

#[derive(Subcommand, Debug)]
enum MenusCommand {
    /// Every menu in force and its version (0: shipped with the binary).
    List,
    /// Check a menu file here, then store it in the cluster: every node serves it to new
    /// sessions within a second; sessions under way keep the version they started with.
    Push {
        /// The menu file (TOML; its `role` and `language` name it, e.g. customer-en).
        file: std::path::PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum MembersCommand {
    /// Every member with its state, replicas and preferred leaderships; moves under way.
    List,
    /// Drain a node: its leaderships and replicas move to other members, then it is marked
    /// removed (a dead node's shards are re-replicated from the surviving replicas).
    Remove {
        /// The node's id.
        id: u64,
    },
}

/// The CA `--tls-ca` names, for every client of this command.
static TLS_CA: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();

/// A client for the node, trusting `--tls-ca`.
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let ca = TLS_CA.get().and_then(|ca| ca.as_deref());
    crate::tls::client(ca, timeout)
}

/// Sends an admin request with `token`: the answer's JSON body, or the node's reason (its
/// `error`, else the status) when it refused.
pub async fn admin_call(
    request: reqwest::RequestBuilder,
    node: &str,
    token: &str,
) -> anyhow::Result<Result<Value, String>> {
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("reaching {node}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(Ok(body))
    } else {
        let reason = body["error"].as_str().unwrap_or(status.as_str());
        Ok(Err(reason.to_string()))
    }
}

pub fn run(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let _ = TLS_CA.set(args.tls_ca.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let CtlCommand::Backup(backup) = &args.command {
        if let Some(verified) = crate::ctl_backup::verify_offline(backup) {
            return verified;
        }
    }
    let node = args
        .node
        .clone()
        .context("--node is needed: any node's HTTP URL")?;
    let admin_token = args
        .admin_token
        .clone()
        .context("--admin-token (or TUMA_ADMIN_TOKEN) is needed")?;
    if let CtlCommand::Import {
        csv,
        batch,
        parallel,
    } = &args.command
    {
        return runtime.block_on(import(&node, &admin_token, csv, *batch, *parallel));
    }
    if let CtlCommand::Menus { command } = &args.command {
        return runtime.block_on(menus(&node, &admin_token, command));
    }
    if let CtlCommand::Keys { command } = &args.command {
        return runtime.block_on(crate::ctl_keys::keys(&node, &admin_token, command));
    }
    if let CtlCommand::Backup(backup) = &args.command {
        return runtime.block_on(crate::ctl_backup::backup(&node, &admin_token, backup));
    }
    if let CtlCommand::AuditLog(log) = &args.command {
        return runtime.block_on(crate::ctl_audit_log::audit_log(&node, &admin_token, log));
    }
    if let CtlCommand::Businesses { command } = &args.command {
        return runtime.block_on(businesses(&node, &admin_token, command));
    }
    if let CtlCommand::Daraja {
        command: DarajaCommand::Cert,
    } = &args.command
    {
        return runtime.block_on(daraja_cert(&node));
    }
    if let CtlCommand::Members {
        command: MembersCommand::Remove { id },
    } = &args.command
    {
        return runtime.block_on(remove_member(&node, &admin_token, *id));
    }
    let body: Value = runtime.block_on(async {
        let client = http_client(Duration::from_secs(10))?;
        let response = client
            .get(format!("{}/admin/v1/cluster", node.trim_end_matches('/')))
            .bearer_auth(&admin_token)
            .send()
            .await
            .with_context(|| format!("reaching {}", node))?;
        if !response.status().is_success() {
            bail!("{} answered HTTP {}", node, response.status());
        }
        Ok::<Value, anyhow::Error>(response.json().await?)
    })?;
    match args.command {
        CtlCommand::Status => {
            print!("{}", members_table(&body["cluster"]));
            print!("{}", status_table(&body));
        }
        CtlCommand::Members { .. } => print!("{}", members_table(&body["cluster"])),
        CtlCommand::Import { .. }
        | CtlCommand::Menus { .. }
        | CtlCommand::Businesses { .. }
        | CtlCommand::Keys { .. }
        | CtlCommand::AuditLog(_)
        | CtlCommand::Backup(_)
        | CtlCommand::Daraja { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

async fn menus(node: &str, token: &str, command: &MenusCommand) -> anyhow::Result<ExitCode> {
    let client = http_client(Duration::from_secs(20))?;
    let base = format!("{}/admin/v1/menus", node.trim_end_matches('/'));
    let request = match command {
        MenusCommand::List => client.get(&base),
        MenusCommand::Push { file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let menu = match tuma_channels::ussd::parse_menu(&text) {
                Ok(menu) => menu,
                Err(errors) => {
                    eprintln!("{}: not pushed:\n{errors}", file.display());
                    return Ok(ExitCode::FAILURE);
                }
            };
            client.put(format!("{base}/{}", menu.name())).body(text)
        }
    };
    let body = match admin_call(request, node, token).await? {
        Ok(body) => body,
        Err(reason) => {
            eprintln!("{reason}");
            return Ok(ExitCode::FAILURE);
        }
    };
    match command {
        MenusCommand::List => {
            for menu in body["menus"].as_array().into_iter().flatten() {
                println!(
                    "{:<16} version {}",
                    menu["name"].as_str().unwrap_or("?"),
                    menu["version"]
                );
            }
        }
        MenusCommand::Push { .. } => println!(
            "menu {} stored as version {}; new sessions on every node use it within a second",
            body["name"].as_str().unwrap_or("?"),
            body["version"]
        ),
    }
    Ok(ExitCode::SUCCESS)
}

async fn businesses(
    node: &str,
    token: &str,
    command: &BusinessesCommand,
) -> anyhow::Result<ExitCode> {
    let BusinessesCommand::Initiator {
        shortcode,
        name,
        password,
    } = command;
    let client = http_client(Duration::from_secs(20))?;
    let url = format!(
        "{}/admin/v1/businesses/{shortcode}/initiators/{name}",
        node.trim_end_matches('/')
    );
    let request = client
        .put(url)
        .json(&serde_json::json!({ "password": password }));
    if let Err(reason) = admin_call(request, node, token).await? {
        eprintln!("initiator not set: {reason}");
        return Ok(ExitCode::FAILURE);
    }
    println!("initiator {name} of business {shortcode} set");
    Ok(ExitCode::SUCCESS)
}

async fn daraja_cert(node: &str) -> anyhow::Result<ExitCode> {
    let client = http_client(Duration::from_secs(60))?;
    let response = client
        .get(format!(
            "{}/daraja/v1/certificate",
            node.trim_end_matches('/')
        ))
        .send()
        .await
        .with_context(|| format!("reaching {node}"))?;
    if !response.status().is_success() {
        bail!("{node} answered HTTP {}", response.status());
    }
    print!("{}", response.text().await?);
    Ok(ExitCode::SUCCESS)
}

async fn remove_member(node: &str, token: &str, id: u64) -> anyhow::Result<ExitCode> {
    let client = http_client(Duration::from_secs(20))?;
    let url = format!("{}/admin/v1/members/{id}", node.trim_end_matches('/'));
    if let Err(reason) = admin_call(client.delete(url), node, token).await? {
        eprintln!("node {id} not removed: {reason}");
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "node {id} is draining: its leaderships and replicas move to other members; \
         `tuma ctl --node {node} members list` shows the progress"
    );
    Ok(ExitCode::SUCCESS)
}

/// Renders the cluster state (members and moves) as a table.
fn members_table(cluster: &Value) -> String {
    let mut out = format!(
        "{:>4}  {:<8} {:>8} {:>8}  {}\n",
        "id", "state", "replicas", "leads", "peer address"
    );
    for m in cluster["members"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:>4}  {:<8} {:>8} {:>8}  {}\n",
            m["id"].to_string(),
            m["state"].as_str().unwrap_or("?"),
            m["replicas"].to_string(),
            m["preferred_leader_of"].to_string(),
            m["peer_addr"].as_str().unwrap_or("?"),
        ));
    }
    let moves = cluster["moves"].as_array().map_or(0, Vec::len);
    out.push_str(&format!(
        "moves under way: {moves}; moves done: {}; meta leader: {}\n",
        cluster["moves_done"], cluster["meta_leader"]
    ));
    for m in cluster["moves"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  shard {:>4}: {} -> {}\n",
            m["shard"], m["from"], m["to"]
        ));
    }
    out
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

/// One CSV line as a bulk row.
fn csv_row(line: &str) -> Option<serde_json::Value> {
    let mut fields = line.splitn(4, ',').map(str::trim);
    let (msisdn, name, id_number) = (fields.next()?, fields.next()?, fields.next()?);
    let mut row = serde_json::json!({"msisdn": msisdn, "name": name, "id_number": id_number});
    match fields.next().filter(|h| !h.is_empty()) {
        // Four digits are a start PIN, digested by the cluster; anything else a stored hash.
        Some(pin) if pin.len() == 4 && pin.bytes().all(|b| b.is_ascii_digit()) => {
            row["pin"] = serde_json::json!(pin)
        }
        Some(hash) => row["pin_hash"] = serde_json::json!(hash),
        None => {}
    }
    Some(row)
}

/// `tuma ctl import`: bulk registration with a progress bar and the rate achieved.
async fn import(
    node: &str,
    token: &str,
    csv: &std::path::Path,
    batch: usize,
    parallel: usize,
) -> anyhow::Result<ExitCode> {
    if !(1..=10_000).contains(&batch) || !(1..=64).contains(&parallel) {
        bail!("--batch must be 1..=10000 and --parallel 1..=64");
    }
    let text =
        std::fs::read_to_string(csv).with_context(|| format!("reading {}", csv.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
    {
        rows.push(csv_row(line).with_context(|| {
            format!("line {}: expected msisdn,name,id_number[,pin_hash]", n + 1)
        })?);
    }
    let client = http_client(Duration::from_secs(120))?;
    let bar = indicatif::ProgressBar::new(rows.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} customers {per_sec} eta {eta}",
        )
        .expect("static template"),
    );
    let started = std::time::Instant::now();
    let url = format!("{}/admin/v1/customers/bulk", node.trim_end_matches('/'));
    let (mut created, mut existing, mut failures) = (0u64, 0u64, Vec::new());
    let mut in_flight = tokio::task::JoinSet::new();
    let mut chunks = rows.chunks(batch).map(|c| c.to_vec());
    loop {
        while in_flight.len() < parallel {
            let Some(chunk) = chunks.next() else { break };
            let (client, url, token) = (client.clone(), url.clone(), token.to_string());
            in_flight.spawn(async move {
                let n = chunk.len() as u64;
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"customers": chunk}))
                    .send()
                    .await;
                let body = match response {
                    Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                    _ => None,
                };
                (n, body)
            });
        }
        let Some(done) = in_flight.join_next().await else {
            break;
        };
        let (n, body) = done?;
        match body {
            Some(body) => {
                created += body["created"].as_u64().unwrap_or(0);
                existing += body["existing"].as_u64().unwrap_or(0);
                failures.extend(body["failed"].as_array().cloned().unwrap_or_default());
            }
            None => {
                failures.push(serde_json::json!({"error": format!("a request of {n} rows failed")}))
            }
        }
        bar.inc(n);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    println!("imported {} rows in {seconds:.1} s ({:.0} rows/s): created={created} existing={existing} failed={}", rows.len(), rows.len() as f64 / seconds.max(1e-9), failures.len());
    for failure in failures.iter().take(10) {
        println!("  failed: {failure}");
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::csv_row;

    #[test]
    fn csv_rows_take_a_start_pin_or_a_stored_hash() {
        let plain = csv_row("254700000001, Amina, 123").unwrap();
        assert_eq!(plain["name"], "Amina");
        assert!(plain.get("pin").is_none() && plain.get("pin_hash").is_none());
        assert_eq!(
            csv_row("254700000001,Amina,123,4321").unwrap()["pin"],
            "4321"
        );
        let phc = "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA";
        let hashed = csv_row(&format!("254700000001,Amina,123,{phc}")).unwrap();
        assert_eq!(hashed["pin_hash"], phc);
        assert!(hashed.get("pin").is_none());
        assert!(csv_row("254700000001,Amina").is_none());
    }
}

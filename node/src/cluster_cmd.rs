//! `tuma cluster up`: runs N `tuma node` children on loopback and keeps them until Ctrl-C or
//! SIGTERM, which it passes on (each node then shuts down cleanly).
//!
//! The data directory holds `cluster.toml` (node count, ports, shards, replicas), the generated
//! `cluster-secret` and `admin-token`, a local CA and each node's certificate in `tls/` (the
//! nodes serve HTTPS; `--plain-http` turns that off), and one `node-<id>/` directory and
//! `node-<id>.log` per node, so running the same command again brings the same cluster back
//! with its money.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tuma_chaos::harness::launch::{self, Membership, NodeLaunch, Secret};

/// Most nodes `cluster up` starts on one machine.
const NODES_MAX: u32 = 15;
/// How long to wait for every shard to elect a leader.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Start (or restart) a local cluster.
    Up(UpArgs),
    /// Start a new local cluster from a backup (`tuma ctl backup --out`): checked first as
    /// `tuma ctl backup verify` checks it, with the backup's shard count. Afterwards the
    /// cluster restarts with `cluster up` on the same `--data`.
    Restore {
        /// The backup directory.
        backup: PathBuf,
        #[command(flatten)]
        up: UpArgs,
    },
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Directory for the cluster's data, secret, token and logs.
    #[arg(long)]
    data: PathBuf,
    /// Admin bearer token (generated and printed if not given).
    #[arg(long, env = "TUMA_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Cluster secret (generated and kept in the data directory if not given).
    #[arg(long, env = "TUMA_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,
    /// Shards (only when the cluster is created).
    #[arg(long, default_value_t = 64)]
    shards: u32,
    /// Replicas per shard (only when the cluster is created; default min(3, nodes)).
    #[arg(long)]
    replicas: Option<u32>,
    /// Register demo customers, an agent and a business with float, and print what to try.
    #[arg(long)]
    demo: bool,
    /// The nodes' `--idempotency-window` (default 24h), like 60s.
    #[arg(long)]
    idempotency_window: Option<String>,
    /// Pass --pin-hash-memory-kib to the nodes (tests use a small value).
    #[arg(long, hide = true)]
    pin_hash_memory_kib: Option<u32>,
    /// Pass --enable-test-hooks to the nodes.
    #[arg(long, hide = true)]
    enable_test_hooks: bool,
    /// Serve plain HTTP instead of HTTPS (no local CA).
    #[arg(long)]
    plain_http: bool,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Layout {
    nodes: u32,
    shards: u32,
    replicas: u32,
    peer_ports: Vec<u16>,
    http_ports: Vec<u16>,
}

fn random_hex(bytes: usize) -> String {
    use rand_core::RngCore;
    let mut buf = vec![0u8; bytes];
    rand_core::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Distinct free loopback ports (all held until every one is chosen, so none repeats).
/// Runs `tuma node --check-config` with a node's command line: the node's own validation of
/// every setting, without starting it.
fn check_settings(launch: &NodeLaunch) -> anyhow::Result<()> {
    let output = launch
        .command()
        .context("preparing a node")?
        .arg("--check-config")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .context("checking a node's settings")?;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        let why = why
            .trim()
            .trim_start_matches("Error: ")
            .trim_start_matches("error: ");
        bail!(
            "node {} would not start, so no node was started: {why}",
            launch.id
        );
    }
    Ok(())
}

fn read_or_create(
    path: &Path,
    given: Option<String>,
    make: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    // Secrets: readable by their owner only (nodes refuse a secret file others may read).
    if let Some(value) = given {
        crate::tls::write_private(path, value.as_bytes())?;
        return Ok(value);
    }
    match std::fs::read_to_string(path) {
        Ok(value) => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            Ok(value.trim().to_string())
        }
        Err(_) => {
            let value = make();
            crate::tls::write_private(path, value.as_bytes())?;
            Ok(value)
        }
    }
}

fn layout(args: &UpArgs) -> anyhow::Result<Layout> {
    let path = args.data.join("cluster.toml");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let layout: Layout =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if layout.nodes != args.nodes {
            bail!(
                "{} holds a {}-node cluster; run with --nodes {}",
                args.data.display(),
                layout.nodes,
                layout.nodes
            );
        }
        return Ok(layout);
    }
    let replicas = args.replicas.unwrap_or(args.nodes.min(3));
    let ports = launch::free_ports(2 * args.nodes as usize)?;
    let layout = Layout {
        nodes: args.nodes,
        shards: args.shards,
        replicas,
        peer_ports: ports[..args.nodes as usize].to_vec(),
        http_ports: ports[args.nodes as usize..].to_vec(),
    };
    std::fs::write(&path, toml::to_string(&layout)?)?;
    Ok(layout)
}

pub fn run(command: ClusterCommand) -> anyhow::Result<ExitCode> {
    let (args, restore) = match command {
        ClusterCommand::Up(args) => (args, None),
        ClusterCommand::Restore { backup, up } => (up, Some(backup)),
    };
    let mut args = args;
    if let Some(backup) = &restore {
        let tariffs = std::sync::Arc::new(tuma_actors::tariff::Tariffs::kenya_default());
        let verified = tuma_service::backup::verify(backup, tariffs)
            .map_err(|problem| anyhow::anyhow!("the backup in {}: {problem}", backup.display()))?;
        if args.data.join("cluster.toml").exists() {
            bail!(
                "{} holds a cluster already: restore into a new --data directory",
                args.data.display()
            );
        }
        args.shards = verified.image.manifest.shards;
        println!(
            "restoring {}: shards={} accounts={} e_money_issued={}",
            backup.display(),
            args.shards,
            verified.totals.accounts,
            verified.totals.e_money_issued
        );
    }
    if args.nodes == 0 || args.nodes > NODES_MAX {
        bail!("--nodes must be 1..={NODES_MAX}");
    }
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("creating {}", args.data.display()))?;
    let layout = layout(&args)?;
    let secret_path = args.data.join("cluster-secret");
    read_or_create(&secret_path, args.cluster_secret.clone(), || random_hex(32))?;
    let token_given = args.admin_token.is_some();
    let token = read_or_create(
        &args.data.join("admin-token"),
        args.admin_token.clone(),
        || random_hex(16),
    )?;
    let tls = if args.plain_http {
        None
    } else {
        Some(crate::tls::local_ca(
            &args.data.join("tls"),
            layout.nodes as usize,
        )?)
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let members = launch::loopback_members(layout.peer_ports.iter().copied());
    let binary = std::env::current_exe().context("locating the tuma binary")?;
    let mut launches = Vec::new();
    for i in 0..layout.nodes as usize {
        let id = i + 1;
        let (data, log) = launch::node_paths(&args.data, id);
        let mut extra_args = Vec::new();
        if let Some(kib) = args.pin_hash_memory_kib {
            extra_args.extend([
                "--pin-hash-memory-kib".to_string(),
                kib.to_string(),
                "--pin-hash-iterations".into(),
                "1".into(),
            ]);
        }
        if let Some(backup) = &restore {
            let backup = std::fs::canonicalize(backup)
                .with_context(|| format!("finding {}", backup.display()))?;
            extra_args.extend(["--restore".to_string(), backup.display().to_string()]);
        }
        if let Some(window) = &args.idempotency_window {
            extra_args.extend(["--idempotency-window".to_string(), window.clone()]);
        }
        if args.enable_test_hooks {
            extra_args.push("--enable-test-hooks".into());
        }
        if let Some(tls) = &tls {
            for (flag, path) in [
                ("--tls-cert", &tls.nodes[i].cert),
                ("--tls-key", &tls.nodes[i].key),
                ("--tls-ca", &tls.ca_cert),
            ] {
                extra_args.extend([flag.to_string(), path.display().to_string()]);
            }
        }
        launches.push(NodeLaunch {
            binary: binary.clone(),
            id,
            data,
            listen_peer: format!("127.0.0.1:{}", layout.peer_ports[i]),
            listen_http: format!("127.0.0.1:{}", layout.http_ports[i]),
            membership: Membership::Initial {
                members: members.clone(),
                shards: layout.shards,
                replicas: layout.replicas as usize,
            },
            secret: Secret::File(secret_path.clone()),
            admin_token: token.clone(),
            log,
            log_filter: None,
            wrapper: Vec::new(),
            extra_args,
        });
    }
    // Every node's settings pass the node's own validation before any node starts: a refused
    // setting (a short admin token, a bad window) stops here with the node's reason, rather
    // than starting nodes that each exit.
    for launch in &launches {
        check_settings(launch)?;
    }
    let mut children: Vec<Child> = Vec::new();
    for (i, launch) in launches.iter().enumerate() {
        let mut command = launch.command().context("preparing a node")?;
        let child = command.spawn().context("starting a node")?;
        println!(
            "node {} http={scheme}://127.0.0.1:{} peer=127.0.0.1:{} pid={}",
            launch.id,
            layout.http_ports[i],
            layout.peer_ports[i],
            child.id()
        );
        children.push(child);
    }
    if !token_given {
        println!("admin token: {token}");
    }
    if let Some(tls) = &tls {
        println!("CA certificate: {}", tls.ca_cert.display());
    }
    let urls: Vec<String> = layout
        .http_ports
        .iter()
        .map(|p| format!("{scheme}://127.0.0.1:{p}"))
        .collect();
    let client = crate::tls::client(
        tls.as_ref().map(|t| t.ca_cert.as_path()),
        Duration::from_secs(5),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let curl = match &tls {
        Some(tls) => format!("curl -s --cacert {}", tls.ca_cert.display()),
        None => "curl -s".to_string(),
    };
    let outcome = runtime.block_on(supervise(
        &client,
        &curl,
        &urls,
        &token,
        layout.shards,
        args.demo,
        &mut children,
    ));
    stop(&mut children);
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    client: &reqwest::Client,
    curl: &str,
    urls: &[String],
    token: &str,
    shards: u32,
    demo: bool,
    children: &mut [Child],
) -> anyhow::Result<ExitCode> {
    // Listen for the stop signals first, so a signal during start-up still stops the nodes.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let start = async {
        wait_ready(client, urls, token, shards, children).await?;
        println!("cluster ready");
        if demo {
            crate::cluster_cmd::demo(client, &urls[0], token, curl).await?;
        }
        Ok::<(), anyhow::Error>(())
    };
    tokio::select! {
        result = start => result?,
        _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        _ = terminate.recv() => return Ok(ExitCode::SUCCESS),
    }
    let mut reported = vec![false; children.len()];
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = terminate.recv() => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                for (i, child) in children.iter_mut().enumerate() {
                    if let (false, Ok(Some(status))) = (reported[i], child.try_wait()) {
                        reported[i] = true;
                        eprintln!("node {} exited ({status}); see node-{}.log", i + 1, i + 1);
                    }
                }
            }
        }
    }
}

/// Polls every node until each shard has a leader.
async fn wait_ready(
    client: &reqwest::Client,
    urls: &[String],
    token: &str,
    shards: u32,
    children: &mut [Child],
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let mut led = std::collections::BTreeSet::new();
        for url in urls {
            let response = client
                .get(format!("{url}/admin/v1/cluster"))
                .bearer_auth(token)
                .send()
                .await;
            if let Ok(body) = match response {
                Ok(r) if r.status().is_success() => r.json::<Value>().await,
                _ => continue,
            } {
                for shard in body["shards"].as_array().into_iter().flatten() {
                    if shard["role"] == "leader" {
                        led.insert(shard["shard"].as_u64().unwrap_or(u64::MAX));
                    }
                }
            }
        }
        if led.len() as u32 >= shards {
            return Ok(());
        }
        for (i, child) in children.iter_mut().enumerate() {
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "node {} exited before the cluster was ready ({status}); see node-{}.log",
                    i + 1,
                    i + 1
                );
            }
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!(
                "only {} of {shards} shards have a leader after {READY_TIMEOUT:?}",
                led.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn stop(children: &mut [Child]) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    for child in children.iter() {
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for child in children.iter_mut() {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// Demo accounts: customers, an agent and a paybill, each funded; then what to try.
async fn demo(client: &reqwest::Client, url: &str, token: &str, curl: &str) -> anyhow::Result<()> {
    let post = |path: &str, body: Value| {
        client
            .post(format!("{url}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let customers = [
        ("254700000001", "Amina Otieno"),
        ("254700000002", "Brian Kamau"),
        ("254700000003", "Cynthia Wanjiru"),
    ];
    for (msisdn, name) in customers {
        let r = post(
            "/admin/v1/customers",
            json!({"msisdn": msisdn, "name": name, "id_number": "12345678", "pin": "1234"}),
        )
        .await?;
        ensure_ok(r.status(), "registering a demo customer")?;
    }
    let r = post("/admin/v1/agents", json!({"agent_number": "500100", "store_number": "1", "name": "Kibanda Shop", "msisdn": "254700000009", "pin": "1234"})).await?;
    ensure_ok(r.status(), "registering the demo agent")?;
    let r = post("/admin/v1/businesses", json!({"shortcode": "888880", "kind": "paybill", "name": "Nairobi Water", "consumer_key": "demo-key", "consumer_secret": "demo-secret", "passkey": "demo-passkey"})).await?;
    ensure_ok(r.status(), "registering the demo business")?;
    let r = client
        .put(format!(
            "{url}/admin/v1/businesses/888880/initiators/demo_api"
        ))
        .bearer_auth(token)
        .json(&json!({"password": "demo-initiator"}))
        .send()
        .await?;
    ensure_ok(r.status(), "setting the demo business's initiator")?;
    for (i, (account, amount)) in [
        ("254700000001", "20000.00"),
        ("254700000002", "5000.00"),
        ("agent:500100", "100000.00"),
        ("business:888880", "50000.00"),
    ]
    .iter()
    .enumerate()
    {
        let r = post(
            "/admin/v1/float",
            json!({"request_id": format!("demo-float-{i}"), "account": account, "amount": amount}),
        )
        .await?;
        ensure_ok(r.status(), "issuing demo float")?;
    }
    println!("demo: customers 254700000001 (Ksh20,000), 254700000002 (Ksh5,000), 254700000003; agent:500100 (float Ksh100,000); paybill business:888880 (Ksh50,000; API key demo-key, secret demo-secret, passkey demo-passkey, initiator demo_api with password demo-initiator). Every PIN is 1234.");
    println!("try:  {curl} -X POST {url}/v1/transfers -H 'content-type: application/json' -d '{{\"request_id\":\"first-1\",\"kind\":\"send_money\",\"from\":\"254700000001\",\"to\":\"254700000002\",\"amount\":\"1000.00\",\"pin\":\"1234\"}}'");
    println!("then: {curl} {url}/v1/accounts/254700000002/balance -H 'X-Tuma-Pin: 1234'");
    println!("ussd: {curl} {url}/ussd/v1/callback -d sessionId=demo-1 -d serviceCode='*334#' -d phoneNumber=+254700000001 -d text=   (then text=1, text=1*0700000002, … as README shows; the agent 500100 dials *335# from 254700000009, store 1)");
    Ok(())
}

fn ensure_ok(status: reqwest::StatusCode, what: &str) -> anyhow::Result<()> {
    // 409: already registered or funded by an earlier run of the same demo.
    if status.is_success() || status == reqwest::StatusCode::CONFLICT {
        Ok(())
    } else {
        bail!("{what} failed: HTTP {status}")
    }
}

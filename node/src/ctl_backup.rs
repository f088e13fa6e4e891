//! `tuma ctl backup --out DIR` and `tuma ctl backup verify DIR` (the format and the point a
//! backup is taken at: `tuma_service::backup`).
//!
//! The backup pauses new transfers on every shard (for at most `--pause-s`; the pause lifts by
//! itself if this command dies), reads every shard's state once nothing is in flight, resumes
//! intake, then copies each shard's history rows and audit records page by page and the
//! cluster's documents, writes the manifest, and checks the directory as `verify` does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Client;
use serde_json::{json, Value};
use tuma_service::backup::{self, FileDigest, Manifest, ShardPoint};

use crate::ctl_cmd::{admin_call, http_client};

/// `backup --out DIR` takes one; `backup verify DIR` checks one.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,
    /// The directory to write the backup to (created; must not exist or be empty).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Longest pause of new transfers while the shards' states are read, in seconds (1–300).
    #[arg(long, default_value_t = 20)]
    pause_s: u64,
}

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Check a backup offline: digests, every shard's books and history, the totals.
    Verify {
        dir: PathBuf,
        /// The tariff file the cluster runs with (default: the shipped tariffs).
        #[arg(long)]
        tariffs: Option<PathBuf>,
    },
}

/// A shard's state as read for the backup.
struct ShardState {
    bytes: Vec<u8>,
    history_rows: u64,
    audit_records: u64,
    in_flight: u64,
    entries_applied: u64,
}

fn header_u64(response: &reqwest::Response, name: &str) -> anyhow::Result<u64> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("the answer lacks {name}"))
}

async fn get_bytes(client: &Client, url: &str, token: &str) -> anyhow::Result<reqwest::Response> {
    let response = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("reaching {url}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        bail!(
            "{url}: {}",
            body["error"].as_str().unwrap_or(status.as_str())
        );
    }
    Ok(response)
}

async fn shard_state(
    client: &Client,
    base: &str,
    token: &str,
    shard: u32,
) -> anyhow::Result<ShardState> {
    let response = get_bytes(
        client,
        &format!("{base}/admin/v1/backup/shards/{shard}/state"),
        token,
    )
    .await?;
    Ok(ShardState {
        history_rows: header_u64(&response, "tuma-history-rows")?,
        audit_records: header_u64(&response, "tuma-audit-records")?,
        in_flight: header_u64(&response, "tuma-in-flight")?,
        entries_applied: header_u64(&response, "tuma-entries-applied")?,
        bytes: response.bytes().await?.to_vec(),
    })
}

/// Every shard's state with nothing in flight, read while intake is paused (until `deadline`).
async fn quiet_states(
    client: &Client,
    base: &str,
    token: &str,
    shards: u32,
    deadline: Instant,
) -> anyhow::Result<Vec<ShardState>> {
    let mut states = Vec::with_capacity(shards as usize);
    for shard in 0..shards {
        loop {
            let state = shard_state(client, base, token, shard).await?;
            if state.in_flight == 0 {
                states.push(state);
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "shard {shard} still had {} transfers in flight when the pause ended: try again, or with a longer --pause-s",
                    state.in_flight
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(states)
}

async fn take(node: &str, token: &str, out: &Path, pause_s: u64) -> anyhow::Result<ExitCode> {
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        bail!("{} exists and is not empty", out.display());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let client = http_client(Duration::from_secs(120))?;
    let base = node.trim_end_matches('/').to_string();
    let cluster =
        match admin_call(client.get(format!("{base}/admin/v1/members")), node, token).await? {
            Ok(cluster) => cluster,
            Err(reason) => bail!("{reason}"),
        };
    let shards = cluster["placement"]
        .as_array()
        .map(|p| p.len() as u32)
        .context("the cluster state names no shards")?;
    let pause_s = pause_s.clamp(1, 300);
    let started = Instant::now();
    let taken_unix_ms = tuma_service::unix_ms();
    let paused = admin_call(
        client
            .post(format!("{base}/admin/v1/backup/pause"))
            .json(&json!({ "seconds": pause_s })),
        node,
        token,
    )
    .await?;
    let secrets_fingerprint = match paused {
        Ok(answer) => answer["secrets_fingerprint"].as_str().map(str::to_string),
        Err(reason) => bail!("pausing intake: {reason}"),
    };
    let states = quiet_states(
        &client,
        &base,
        token,
        shards,
        started + Duration::from_secs(pause_s),
    )
    .await;
    let resumed = admin_call(
        client.post(format!("{base}/admin/v1/backup/resume")),
        node,
        token,
    )
    .await;
    let states = states?;
    let paused_for = started.elapsed();
    if let Err(reason) = resumed? {
        eprintln!("resuming intake failed ({reason}); it resumes by itself within {pause_s} s");
    }
    eprintln!(
        "read {shards} shard states with nothing in flight; new transfers were paused for {} ms",
        paused_for.as_millis()
    );

    let total_rows: u64 = states
        .iter()
        .map(|s| s.history_rows + s.audit_records)
        .sum();
    let bar = ProgressBar::new(total_rows);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows and records ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut files: Vec<FileDigest> = Vec::new();
    let mut points = Vec::new();
    for (shard, state) in (0u32..).zip(&states) {
        files.push(backup::write_file(
            out,
            &backup::state_file(shard),
            &state.bytes,
        )?);
        let mut rows_bytes = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!(
                "{base}/admin/v1/backup/shards/{shard}/rows?history_below={}&audit_below={}",
                state.history_rows, state.audit_records
            );
            if let Some(after) = &after {
                url.push_str(&format!("&after={after}"));
            }
            let response = get_bytes(&client, &url, token).await?;
            let count = header_u64(&response, "tuma-count")?;
            let next = response
                .headers()
                .get("tuma-next")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let page = response.bytes().await?;
            let len = u32::try_from(page.len()).context("a page over 4 GiB")?;
            rows_bytes.write_all(&len.to_be_bytes())?;
            rows_bytes.write_all(&page)?;
            bar.inc(count);
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        files.push(backup::write_file(
            out,
            &backup::rows_file(shard),
            &rows_bytes,
        )?);
        points.push(ShardPoint {
            shard,
            history_rows: state.history_rows,
            audit_records: state.audit_records,
            entries_applied: state.entries_applied,
        });
    }
    bar.finish_and_clear();
    let documents = match admin_call(
        client.get(format!("{base}/admin/v1/backup/documents")),
        node,
        token,
    )
    .await?
    {
        Ok(documents) => documents,
        Err(reason) => bail!("reading the cluster's documents: {reason}"),
    };
    files.push(backup::write_file(
        out,
        backup::DOCUMENTS_FILE,
        serde_json::to_vec_pretty(&documents)?.as_slice(),
    )?);
    let mut manifest = Manifest {
        format: backup::FORMAT.to_string(),
        shards,
        taken_unix_ms,
        points,
        files,
        e_money_issued: String::new(),
        accounts: 0,
        secrets_fingerprint,
    };
    // The copy's own books, computed as `verify` will.
    let tariffs = std::sync::Arc::new(tuma_actors::tariff::Tariffs::kenya_default());
    let write_manifest = |manifest: &Manifest| {
        std::fs::write(
            out.join(backup::MANIFEST_FILE),
            serde_json::to_vec_pretty(manifest).expect("a manifest encodes"),
        )
    };
    write_manifest(&manifest)?;
    let verified = match backup::verify(out, tariffs) {
        Ok(verified) => verified,
        Err(problem) => bail!(
            "the backup in {} does not check out: {problem}",
            out.display()
        ),
    };
    manifest.e_money_issued = verified.totals.e_money_issued.to_string();
    manifest.accounts = verified.totals.accounts;
    write_manifest(&manifest)?;
    println!(
        "backup {}: shards={shards} accounts={} e_money_issued={} history_rows={} audit_records={} paused_ms={} took_ms={}",
        out.display(),
        verified.totals.accounts,
        verified.totals.e_money_issued,
        manifest.points.iter().map(|p| p.history_rows).sum::<u64>(),
        manifest.points.iter().map(|p| p.audit_records).sum::<u64>(),
        paused_for.as_millis(),
        started.elapsed().as_millis()
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(dir: &Path, tariffs: Option<&Path>) -> anyhow::Result<ExitCode> {
    let tariffs = match tariffs {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            tuma_actors::tariff::Tariffs::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => tuma_actors::tariff::Tariffs::kenya_default(),
    };
    match backup::verify(dir, std::sync::Arc::new(tariffs)) {
        Ok(verified) => {
            let totals = &verified.totals;
            println!(
                "backup {}: verified shards={} accounts={} e_money_issued={} balance_sum={} clearing_sum={} fees={} history_rows={} audit_records={}",
                dir.display(),
                verified.image.manifest.shards,
                totals.accounts,
                totals.e_money_issued,
                totals.balance_sum,
                totals.clearing_sum,
                totals.fees,
                verified.image.shards.values().map(|s| s.rows.len()).sum::<usize>(),
                verified.image.shards.values().map(|s| s.audit_log.len()).sum::<usize>(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problem) => {
            eprintln!("backup {}: NOT valid: {problem}", dir.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `backup verify DIR`, which needs no node: its outcome, or `None` for a backup to take.
pub fn verify_offline(args: &BackupArgs) -> Option<anyhow::Result<ExitCode>> {
    args.command
        .as_ref()
        .map(|BackupCommand::Verify { dir, tariffs }| verify(dir, tariffs.as_deref()))
}

pub async fn backup(node: &str, token: &str, args: &BackupArgs) -> anyhow::Result<ExitCode> {
    match (&args.command, &args.out) {
        (Some(BackupCommand::Verify { dir, tariffs }), _) => verify(dir, tariffs.as_deref()),
        (None, Some(out)) => take(node, token, out, args.pause_s).await,
        (None, None) => bail!("say where: tuma ctl backup --out DIR (or: backup verify DIR)"),
    }
}

//! The PostgreSQL baseline: the same `transfers` workload as a stored-procedure transfer with row
//! locks, a balance check and an idempotency key, on a throwaway instance with default
//! durability (fsync and synchronous_commit on), driven by the same closed-loop clients.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

use crate::load::BenchError;
use crate::measure::{BenchResult, Recorder};
use tuma_chaos::sim::SimRng;

const SCHEMA: &str = r#"
CREATE TABLE accounts (id text PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
CREATE TABLE transfers (
    request_id text PRIMARY KEY, from_id text NOT NULL, to_id text NOT NULL,
    amount bigint NOT NULL, fee bigint NOT NULL, status text NOT NULL,
    created timestamptz NOT NULL DEFAULT now());
CREATE FUNCTION transfer(p_id text, p_from text, p_to text, p_amount bigint, p_fee bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE existing text; bal bigint;
BEGIN
    SELECT status INTO existing FROM transfers WHERE request_id = p_id;
    IF FOUND THEN RETURN existing; END IF;
    -- Lock both rows in one order, so concurrent transfers cannot deadlock.
    PERFORM 1 FROM accounts WHERE id IN (p_from, p_to) ORDER BY id FOR UPDATE;
    SELECT balance INTO bal FROM accounts WHERE id = p_from;
    IF bal IS NULL THEN RETURN 'unknown_account'; END IF;
    IF bal < p_amount + p_fee THEN
        INSERT INTO transfers VALUES (p_id, p_from, p_to, p_amount, p_fee, 'insufficient_funds');
        RETURN 'insufficient_funds';
    END IF;
    UPDATE accounts SET balance = balance - p_amount - p_fee WHERE id = p_from;
    UPDATE accounts SET balance = balance + p_amount WHERE id = p_to;
    INSERT INTO transfers VALUES (p_id, p_from, p_to, p_amount, p_fee, 'confirmed');
    RETURN 'confirmed';
EXCEPTION WHEN unique_violation THEN
    SELECT status INTO existing FROM transfers WHERE request_id = p_id;
    RETURN existing;
END $$;
"#;

/// A running throwaway instance; stopped and removed on drop.
pub struct Postgres {
    script: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl Postgres {
    /// Installs PostgreSQL if missing and starts an instance in `dir` (through `script`).
    pub fn start(script: &Path, dir: &Path) -> Result<Postgres, BenchError> {
        Postgres::start_with(script, dir, "start", 1)
    }

    /// The same with two streaming standbys, one of which must have flushed each commit
    /// (`synchronous_standby_names = 'ANY 1 (…)'`): a quorum of copies, as Raft keeps.
    pub fn start_replicated(script: &Path, dir: &Path) -> Result<Postgres, BenchError> {
        Postgres::start_with(script, dir, "start-replicated", 3)
    }

    fn start_with(
        script: &Path,
        dir: &Path,
        command: &str,
        instances: usize,
    ) -> Result<Postgres, BenchError> {
        // Held until the script runs, so the three ports differ.
        let listeners = (0..instances)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        drop(listeners);
        let port = ports[0];
        let status = Command::new(script)
            .arg(command)
            .arg(dir)
            .args(ports.iter().map(u16::to_string))
            .status()
            .map_err(|e| BenchError::Setup(format!("running {}: {e}", script.display())))?;
        if !status.success() {
            return Err(BenchError::Setup(format!(
                "{} {command} failed ({status})",
                script.display()
            )));
        }
        Ok(Postgres {
            script: script.to_path_buf(),
            dir: dir.to_path_buf(),
            port,
        })
    }

    async fn connect(&self) -> Result<tokio_postgres::Client, BenchError> {
        let config = format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        );
        let (client, connection) = tokio_postgres::connect(&config, NoTls)
            .await
            .map_err(|e| BenchError::Setup(format!("connecting to postgres: {e}")))?;
        tokio::spawn(connection);
        Ok(client)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the `transfers` workload against PostgreSQL with `clients` connections; `label` and
/// `instances` name it in the results.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    pg: &Postgres,
    label: &str,
    instances: usize,
    accounts: usize,
    clients: usize,
    seed: u64,
    warmup: Duration,
    duration: Duration,
) -> Result<BenchResult, BenchError> {
    let setup = pg.connect().await?;
    setup
        .batch_execute(SCHEMA)
        .await
        .map_err(|e| BenchError::Setup(format!("creating the schema: {e}")))?;
    setup
        .execute("INSERT INTO accounts SELECT '25475' || lpad(g::text, 7, '0'), 40000000 FROM generate_series(0, $1::int - 1) g", &[&(accounts as i32)])
        .await
        .map_err(|e| BenchError::Setup(format!("creating accounts: {e}")))?;
    let fee = tuma_actors::tariff::Tariffs::kenya_default()
        .send_fee(tuma_actors::money::Money::from_cents(1_000))
        .map_or(0, |m| m.cents());
    let recorder = Arc::new(Mutex::new(Recorder::new(duration.as_secs() as usize)));
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let client = pg.connect().await?;
        let recorder = recorder.clone();
        tasks.spawn(async move {
            let statement = client
                .prepare("SELECT transfer($1, $2, $3, $4, $5)")
                .await
                .ok()?;
            let mut rng = SimRng::new(seed.wrapping_mul(7919).wrapping_add(c as u64));
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let from = rng.below(accounts as u64) as usize;
                let to = (from + 1 + rng.below(accounts.saturating_sub(1).max(1) as u64) as usize)
                    % accounts.max(1);
                let id = format!("pg-{c}-{n}");
                let (from, to) = (format!("25475{from:07}"), format!("25475{to:07}"));
                let sent = Instant::now();
                let answer = client
                    .query_one(&statement, &[&id, &from, &to, &1_000i64, &fee])
                    .await;
                if sent < start || sent >= end {
                    continue;
                }
                let second = sent.duration_since(start).as_secs() as usize;
                let mut r = recorder.lock().ok()?;
                match answer.map(|row| row.get::<_, String>(0)) {
                    Ok(status) if status == "confirmed" => {
                        r.confirmed(second, sent.elapsed().as_micros() as u64)
                    }
                    Ok(status) => r.failed(second, &status),
                    Err(_) => r.errors += 1,
                }
            }
            Some(())
        });
    }
    while tasks.join_next().await.is_some() {}
    let recorder = Arc::try_unwrap(recorder)
        .ok()
        .expect("every client finished")
        .into_inner()
        .expect("no panics hold this lock");
    Ok(recorder.finish(
        label,
        instances,
        clients,
        duration.as_secs_f64(),
        Vec::new(),
    ))
}

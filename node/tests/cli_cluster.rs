//! `tuma cluster up` from the outside: the contract lines, HTTPS under the local CA it makes,
//! the demo, a first transfer, a clean stop on SIGTERM, a restart on the same data directory
//! that keeps the money, and a backup of it restored into a new cluster (`tuma ctl backup`,
//! `tuma cluster restore`; refused under another cluster secret).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

struct Up {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn cluster_up(data: &std::path::Path) -> Up {
    start_cluster(&["up", "--shards", "8", "--demo"], data)
}

/// `tuma cluster <args> --nodes 3 --data <data>` with small PIN hashes, its stdout read by line.
fn start_cluster(args: &[&str], data: &std::path::Path) -> Up {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tuma"))
        .arg("cluster")
        .args(args)
        .args(["--nodes", "3", "--pin-hash-memory-kib", "64"])
        .arg("--data")
        .arg(data)
        .env("TUMA_ADMIN_TOKEN", "cluster-up-test-token")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Up { child, lines }
}

/// Node `n`'s URL from `cluster up`'s `node N http=URL peer=… pid=…` line.
fn node_url(lines: &[String], n: usize) -> String {
    lines
        .iter()
        .find(|l| l.starts_with(&format!("node {n} ")))
        .and_then(|l| l.split(' ').nth(2))
        .unwrap_or_else(|| panic!("no node {n} line in {lines:?}"))
        .trim_start_matches("http=")
        .to_string()
}

/// The demo payee's balance read with its PIN through `url`.
fn payee_balance(client: &reqwest::blocking::Client, url: &str) -> Value {
    client
        .get(format!("{url}/v1/accounts/254700000002/balance"))
        .header("X-Tuma-Pin", "1234")
        .send()
        .unwrap()
        .json()
        .unwrap()
}

impl Up {
    /// Lines up to and including the first one containing `marker`.
    fn read_until(&self, marker: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(90))
                .unwrap_or_else(|_| panic!("no {marker:?} after {seen:?}"));
            let done = line.contains(marker);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    fn terminate(mut self) -> i32 {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

#[test]
fn cluster_up_serves_stops_cleanly_and_comes_back_with_its_money() {
    let data = std::env::temp_dir().join(format!("tuma-cluster-up-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let up = cluster_up(&data);
    let lines = up.read_until("cluster ready");
    let nodes: Vec<&String> = lines.iter().filter(|l| l.starts_with("node ")).collect();
    assert_eq!(nodes.len(), 3, "{lines:?}");
    for (i, line) in nodes.iter().enumerate() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[0..2], ["node", &(i + 1).to_string()], "{line}");
        assert!(
            fields[2].starts_with("http=https://127.0.0.1:")
                && fields[3].starts_with("peer=127.0.0.1:")
                && fields[4].starts_with("pid="),
            "{line}"
        );
    }
    let url = nodes[1]
        .split(' ')
        .nth(2)
        .unwrap()
        .trim_start_matches("http=")
        .to_string();
    up.read_until("then: curl");
    // HTTPS, trusted through the CA cluster up made; plain HTTP is not served.
    let ca = data.join("tls/ca.pem");
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("CA certificate: {}", ca.display())),
        "{lines:?}"
    );
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let untrusting = reqwest::blocking::Client::new();
    assert!(
        untrusting.get(format!("{url}/health")).send().is_err(),
        "a client that does not trust the local CA is refused"
    );
    let plain = url.replacen("https://", "http://", 1);
    assert!(
        untrusting
            .get(format!("{plain}/health"))
            .send()
            .map_or(true, |r| !r.status().is_success()),
        "no plain HTTP"
    );
    let transfer = json!({"request_id": "first-1", "kind": "send_money", "from": "254700000001", "to": "254700000002", "amount": "1000.00", "pin": "1234"});
    let answer: Value = client
        .post(format!("{url}/v1/transfers"))
        .json(&transfer)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer["status"], "confirmed", "{answer}");
    assert_eq!(answer["balance"], "18987.00", "{answer}");
    // The operator's table: one row per shard, every shard with a leader.
    let status = Command::new(env!("CARGO_BIN_EXE_tuma"))
        .args([
            "ctl",
            "--node",
            &url,
            "--admin-token",
            "cluster-up-test-token",
            "status",
        ])
        .env("TUMA_TLS_CA", &ca)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{table}");
    // The members first (every node active, nothing moving), then this node's shards.
    assert_eq!(table.matches(" active ").count(), 3, "{table}");
    assert!(table.contains("moves under way: 0"), "{table}");
    let header = table
        .lines()
        .position(|l| l.contains("shard") && l.contains("follower lag"))
        .unwrap_or_else(|| panic!("no shard table: {table}"));
    let rows: Vec<&str> = table.lines().skip(header + 1).collect();
    assert_eq!(rows.len(), 8, "{table}");
    assert!(
        rows.iter().all(|r| r
            .split_whitespace()
            .nth(2)
            .is_some_and(|leader| leader != "-")),
        "{table}"
    );
    // Scoped keys through ctl: created (shown once), listed, revoked.
    let ctl = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tuma"))
            .args([
                "ctl",
                "--node",
                &url,
                "--admin-token",
                "cluster-up-test-token",
            ])
            .args(args)
            .env("TUMA_TLS_CA", &ca)
            .output()
            .unwrap()
    };
    let created = ctl(&["keys", "create", "--role", "auditor", "--label", "ci desk"]);
    let key = String::from_utf8_lossy(&created.stdout).trim().to_string();
    assert!(created.status.success() && key.starts_with("tk_"), "{key}");
    let id = &key[3..11];
    let listed = ctl(&["keys", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains(id) && listed.contains("auditor") && listed.contains("active"),
        "{listed}"
    );
    assert!(ctl(&["keys", "revoke", id]).status.success());
    let again = ctl(&["keys", "revoke", id]);
    assert!(!again.status.success(), "revoked once");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
    let wrong = Command::new(env!("CARGO_BIN_EXE_tuma"))
        .args([
            "ctl",
            "--node",
            &url,
            "--admin-token",
            "not-the-token",
            "status",
        ])
        .env("TUMA_TLS_CA", &ca)
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "a wrong token is refused");
    assert_eq!(
        up.terminate(),
        0,
        "cluster up should stop its nodes cleanly"
    );
    // The same data directory brings the same cluster back, money included.
    let up = cluster_up(&data);
    let lines = up.read_until("cluster ready");
    let url = node_url(&lines, 1);
    // The credit settles on the payee's shard after the payer's decision (resent after restart).
    let started = std::time::Instant::now();
    let balance = loop {
        let balance = payee_balance(&client, &url);
        if balance["balance"] == "6000.00" || started.elapsed() > Duration::from_secs(15) {
            break balance;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(balance["balance"], "6000.00", "{balance}");

    // A backup of it restores into a new cluster under the same secret, not under another.
    let backup = data.with_extension("backup");
    let _ = std::fs::remove_dir_all(&backup);
    let taken = Command::new(env!("CARGO_BIN_EXE_tuma"))
        .args([
            "ctl",
            "--node",
            &url,
            "--admin-token",
            "cluster-up-test-token",
            "backup",
            "--out",
        ])
        .arg(&backup)
        .env("TUMA_TLS_CA", &ca)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&taken.stdout).to_string();
    assert!(
        taken.status.success() && said.contains("shards=8"),
        "{said}"
    );
    assert_eq!(up.terminate(), 0);
    let secret = std::fs::read_to_string(data.join("cluster-secret")).unwrap();
    let wrong_data = data.with_extension("wrong-secret");
    let refused = Command::new(env!("CARGO_BIN_EXE_tuma"))
        .arg("cluster")
        .arg("restore")
        .arg(&backup)
        .args([
            "--nodes",
            "3",
            "--cluster-secret",
            "another-cluster-secret-0123456789",
        ])
        .arg("--data")
        .arg(&wrong_data)
        .env("TUMA_ADMIN_TOKEN", "cluster-up-test-token")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let why = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(!refused.status.success(), "{why}");
    assert!(
        why.contains("another cluster secret") && why.contains("no node was started"),
        "{why}"
    );
    let restored_data = data.with_extension("restored");
    let _ = std::fs::remove_dir_all(&restored_data);
    let backup_arg = backup.display().to_string();
    let up = start_cluster(
        &["restore", &backup_arg, "--cluster-secret", secret.trim()],
        &restored_data,
    );
    let lines = up.read_until("cluster ready");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("restoring ") && l.contains("shards=8")),
        "{lines:?}"
    );
    let url = node_url(&lines, 2);
    let new_ca = std::fs::read(restored_data.join("tls/ca.pem")).unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&new_ca).unwrap())
        .build()
        .unwrap();
    let balance = payee_balance(&client, &url);
    assert_eq!(
        balance["balance"], "6000.00",
        "the PIN and the money came along: {balance}"
    );
    assert_eq!(up.terminate(), 0);
    for dir in [&data, &backup, &restored_data, &wrong_data] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn cluster_up_refuses_bad_settings_before_it_starts_any_node() {
    let data = std::env::temp_dir().join(format!("tuma-cluster-up-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    for (flag, value, reason) in [
        (
            "--admin-token",
            "15-characters!!",
            "the admin token must be at least 16 characters",
        ),
        ("--idempotency-window", "soon", "idempotency-window"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_tuma"))
            .args(["cluster", "up", "--nodes", "3", "--shards", "8"])
            .arg("--data")
            .arg(&data)
            .args([flag, value])
            .env("TUMA_ADMIN_TOKEN", "cluster-up-test-token")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert!(!output.status.success(), "{flag} {value}: {stdout}");
        assert!(stderr.contains(reason), "{flag} {value}: {stderr}");
        assert!(stderr.contains("no node was started"), "{stderr}");
        assert!(!stdout.contains("node 1 http="), "a node started: {stdout}");
    }
    let _ = std::fs::remove_dir_all(&data);
}

//! # tuma-tests — integration tests on real processes
//!
//! [`TestCluster`] starts `tuma node` processes on loopback (free ports, a temporary data
//! directory, a fast PIN hash), and lets a test kill (-9), stop (SIGTERM) and restart them.
//! The tests live in `tests/tests/`. They run the `tuma` binary Cargo built for this workspace
//! (`cargo test --workspace` builds it; `cargo build -p tuma-node` does too).

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tuma_chaos::harness::launch::{self, Membership, NodeLaunch, Secret};

pub mod fake_gateway;
pub mod steady_load;

pub const TOKEN: &str = "integration-test-token";
pub const PIN: &str = "1234";

/// The `tuma` binary next to this test's executable.
pub fn tuma_binary() -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(format!("tuma{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p tuma-node` (or `cargo test --workspace`)",
        path.display()
    );
    path
}

/// Distinct free loopback ports.
fn free_ports(count: usize) -> Vec<u16> {
    launch::free_ports(count).expect("free loopback ports")
}

/// One node process.
pub struct NodeProc {
    pub id: usize,
    pub url: String,
    http_port: u16,
    peer_port: u16,
    /// Added to a running cluster with `--join` (not an initial member).
    joined: bool,
    child: Option<Child>,
}

/// A cluster of `tuma node` processes in a temporary directory, killed and removed on drop.
pub struct TestCluster {
    pub dir: PathBuf,
    pub nodes: Vec<NodeProc>,
    pub shards: u32,
    secret: String,
    /// Extra flags for every node.
    pub extra_args: Vec<String>,
    pub client: reqwest::blocking::Client,
}

impl TestCluster {
    /// Starts `n` nodes with `shards` shards (3 replicas, or n if fewer) and waits for leaders.
    pub fn start(name: &str, n: usize, shards: u32) -> TestCluster {
        TestCluster::start_with_secrets(name, n, shards, |_| None)
    }

    /// As `start`, but node `id` uses `secret(id)` instead of the cluster secret when given.
    pub fn start_with_secrets(
        name: &str,
        n: usize,
        shards: u32,
        secret: impl Fn(usize) -> Option<String>,
    ) -> TestCluster {
        let dir = std::env::temp_dir().join(format!("tuma-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ports = free_ports(2 * n);
        let nodes = (1..=n)
            .map(|id| {
                let http_port = ports[2 * (id - 1)];
                NodeProc {
                    id,
                    url: format!("http://127.0.0.1:{http_port}"),
                    http_port,
                    peer_port: ports[2 * id - 1],
                    joined: false,
                    child: None,
                }
            })
            .collect();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut cluster = TestCluster {
            dir,
            nodes,
            shards,
            secret: "integration-cluster-secret".into(),
            extra_args: extra_args(),
            client,
        };
        for id in 1..=n {
            cluster.spawn(id, secret(id).as_deref());
        }
        cluster.wait_ready(Duration::from_secs(60));
        cluster
    }

    fn members(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| !n.joined)
            .map(|n| format!("{}=127.0.0.1:{}", n.id, n.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts node `id` (again), optionally with another cluster secret.
    pub fn spawn(&mut self, id: usize, secret: Option<&str>) {
        let node = &self.nodes[id - 1];
        let membership = if node.joined {
            let through = self
                .nodes
                .iter()
                .find(|n| n.id != id && n.child.is_some())
                .expect("a running member to join through");
            Membership::Join {
                through: through.url.clone(),
            }
        } else {
            Membership::Initial {
                members: self.members(),
                shards: self.shards,
                replicas: self.nodes.iter().filter(|n| !n.joined).count().min(3),
            }
        };
        let (data, log) = launch::node_paths(&self.dir, id);
        let mut extra_args: Vec<String> = launch::FAST_PIN_HASH_ARGS.map(String::from).into();
        extra_args.push("--enable-test-hooks".into());
        extra_args.extend(self.extra_args.iter().cloned());
        let child = NodeLaunch {
            binary: tuma_binary(),
            id,
            data,
            listen_peer: format!("127.0.0.1:{}", node.peer_port),
            listen_http: format!("127.0.0.1:{}", node.http_port),
            membership,
            secret: Secret::Inline(secret.unwrap_or(&self.secret).to_string()),
            admin_token: TOKEN.into(),
            log,
            log_filter: Some("info,raft=warn".into()),
            wrapper: Vec::new(),
            extra_args,
        }
        .command()
        .and_then(|mut command| command.spawn())
        .expect("starting tuma node");
        self.nodes[id - 1].child = Some(child);
    }

    /// Gives stopped node `id` another peer port (a pod rescheduled under another address): its
    /// next `spawn` listens there, with the same data directory.
    pub fn move_peer_port(&mut self, id: usize) -> u16 {
        assert!(self.nodes[id - 1].child.is_none(), "stop node {id} first");
        let port = free_ports(1)[0];
        self.nodes[id - 1].peer_port = port;
        port
    }

    /// Starts a new node that joins the running cluster (`tuma node --join`); returns its id.
    pub fn add_node(&mut self) -> usize {
        let ports = free_ports(2);
        let id = self.nodes.len() + 1;
        self.nodes.push(NodeProc {
            id,
            url: format!("http://127.0.0.1:{}", ports[0]),
            http_port: ports[0],
            peer_port: ports[1],
            joined: true,
            child: None,
        });
        self.spawn(id, None);
        id
    }

    /// `DELETE /admin/v1/members/{id}` through a running node.
    pub fn remove_member(&self, id: usize) -> (u16, Value) {
        let url = self.url(self.running()[0]);
        let response = self
            .client
            .delete(format!("{url}/admin/v1/members/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .expect("removing a member");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// The cluster state (`GET /admin/v1/members`) as the first running node sees it.
    pub fn cluster_state(&self) -> Value {
        let url = self.url(self.running()[0]);
        match self.get(&format!("{url}/admin/v1/members")) {
            Some((200, state)) => state,
            _ => Value::Null,
        }
    }

    /// Polls `done` every 200 ms until it holds; panics naming `what` after `timeout`.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, mut done: impl FnMut(&Self) -> bool) {
        let started = Instant::now();
        loop {
            self.check_alive();
            if done(self) {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "timed out waiting for {what}; cluster state {}; logs in {}",
                self.cluster_state(),
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `kill -9` node `id`.
    pub fn kill9(&mut self, id: usize) {
        if let Some(mut child) = self.nodes[id - 1].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits (at most `timeout`) for node `id` to exit on its own; returns its exit code.
    pub fn wait_exit(&mut self, id: usize, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.nodes[id - 1].child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.nodes[id - 1].child = None;
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM node `id` and return its exit code.
    pub fn stop(&mut self, id: usize) -> Option<i32> {
        use nix::sys::signal::{kill, Signal};
        let mut child = self.nodes[id - 1].child.take()?;
        let _ = kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Node `id`'s peer port address (`127.0.0.1:port`).
    pub fn peer_addr(&self, id: usize) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.nodes[id - 1].peer_port))
    }

    pub fn url(&self, id: usize) -> &str {
        &self.nodes[id - 1].url
    }

    /// Node ids currently running.
    pub fn running(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id)
            .collect()
    }

    pub fn get(&self, url: &str) -> Option<(u16, Value)> {
        let response = self
            .client
            .get(url)
            .bearer_auth(TOKEN)
            .header("X-Tuma-Pin", PIN)
            .send()
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().unwrap_or(Value::Null)))
    }

    pub fn post(&self, url: &str, body: &Value) -> Option<(u16, Value)> {
        let response = self
            .client
            .post(url)
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().unwrap_or(Value::Null)))
    }

    /// A business API call: `body` posted to node `node`'s `path` with a `Bearer` token.
    pub fn call_api(&self, node: usize, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url(node)))
            .bearer_auth(token)
            .json(body)
            .send()
            .expect("the node answers");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub fn put(&self, url: &str, body: &Value) -> Option<(u16, Value)> {
        let response = self
            .client
            .put(url)
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().unwrap_or(Value::Null)))
    }

    /// The sum of a metric's series on node `id`'s `/metrics` (0 when absent or unreachable).
    pub fn metric(&self, id: usize, name: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.url(id)))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        text.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Each running node's `/admin/v1/cluster`.
    pub fn statuses(&self) -> Vec<(usize, Value)> {
        self.running()
            .into_iter()
            .filter_map(|id| {
                self.get(&format!("{}/admin/v1/cluster", self.url(id)))
                    .filter(|(s, _)| *s == 200)
                    .map(|(_, v)| (id, v))
            })
            .collect()
    }

    /// Shards led by each running node.
    pub fn leaders(&self) -> Vec<(usize, Vec<u64>)> {
        self.statuses()
            .into_iter()
            .map(|(id, status)| {
                let led = status["shards"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["role"] == "leader")
                    .filter_map(|s| s["shard"].as_u64())
                    .collect();
                (id, led)
            })
            .collect()
    }

    /// Panics with the log's tail if a node process exited.
    fn check_alive(&mut self) {
        for node in &mut self.nodes {
            if let Some(Ok(Some(status))) = node.child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(self.dir.join(format!("node-{}.log", node.id)))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                panic!(
                    "node {} exited ({status}):\n{}",
                    node.id,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }

    /// Waits until every shard has a leader among the running nodes.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let started = Instant::now();
        loop {
            self.check_alive();
            let led: std::collections::BTreeSet<u64> =
                self.leaders().into_iter().flat_map(|(_, s)| s).collect();
            if led.len() as u32 == self.shards {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "only {} of {} shards have a leader; logs in {}",
                led.len(),
                self.shards,
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Registers a customer through node 1 (or any running node).
    pub fn register_customer(&self, msisdn: &str) {
        let url = self.url(self.running()[0]);
        let (status, body) = self
            .post(&format!("{url}/admin/v1/customers"), &json!({"msisdn": msisdn, "name": format!("Customer {msisdn}"), "id_number": "12345678", "pin": PIN}))
            .expect("registering");
        assert_eq!(status, 201, "{body}");
    }

    pub fn fund(&self, account: &str, amount: &str, request_id: &str) {
        let url = self.url(self.running()[0]);
        let (status, body) = self
            .post(
                &format!("{url}/admin/v1/float"),
                &json!({"request_id": request_id, "account": account, "amount": amount}),
            )
            .expect("funding");
        assert_eq!(status, 200, "{body}");
    }

    /// The cluster-wide audit, once nothing is in flight (or the last one seen at the timeout).
    pub fn quiet_audit(&self, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            let url = self.url(self.running()[0]);
            if let Some((200, audit)) = self.get(&format!("{url}/admin/v1/audit")) {
                if audit["totals"]["transfers_in_flight"] == 0 || started.elapsed() > timeout {
                    return audit;
                }
            }
            assert!(
                started.elapsed() < timeout + Duration::from_secs(30),
                "audit never answered"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every record of the audit log, newest first (paged 50 at a time, asserted in order).
    pub fn audit_log(&self, token: &str) -> Vec<Value> {
        let mut records = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/admin/v1/audit-log?limit=50",
                self.url(self.running()[0])
            );
            if let Some(cursor) = &after {
                url.push_str(&format!("&after={cursor}"));
            }
            let response = self
                .client
                .get(url)
                .bearer_auth(token)
                .send()
                .expect("the node answers");
            assert_eq!(response.status(), 200, "the audit log answers");
            let page: Value = response.json().expect("a page");
            let got = page["records"].as_array().expect("records").clone();
            let times: Vec<u64> = got.iter().filter_map(|r| r["at_ms"].as_u64()).collect();
            assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
            records.extend(got);
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_string()),
                None => return records,
            }
        }
    }

    pub fn log_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

thread_local! {
    static EXTRA_ARGS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn extra_args() -> Vec<String> {
    EXTRA_ARGS.with(|a| a.borrow().clone())
}

/// Extra `tuma node` flags for clusters this test thread starts next.
pub fn with_node_flags(flags: &[&str]) {
    EXTRA_ARGS.with(|a| *a.borrow_mut() = flags.iter().map(|f| f.to_string()).collect());
}

/// A send-money request body.
pub fn send_money(request_id: &str, from: &str, to: &str, amount: &str) -> Value {
    json!({"request_id": request_id, "kind": "send_money", "from": from, "to": to, "amount": amount, "pin": PIN, "deadline_ms": 8000})
}

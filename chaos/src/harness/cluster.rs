//! The cluster under test: real `tuma node` processes, started, killed, paused and restarted on
//! command. Each node runs either in its own network namespace (partitions are blackhole routes)
//! or on loopback reaching its peers through the harness's link proxies (partitions, delay and
//! loss act on the proxies). See [`Network`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use super::launch::{self, Membership, NodeLaunch, Secret};
use super::netns::{self, Netns};
use super::proxy::LinkProxy;
use super::HarnessError;

/// How nodes are connected, and so how network faults are made.
pub enum Network {
    /// (from, to) → the proxy `from` uses to reach `to`.
    Proxies(BTreeMap<(usize, usize), LinkProxy>),
    /// One namespace per node on a bridge.
    Namespaces(Netns),
    /// Loopback, peers connected directly (benchmarks: no fault injection, no proxy overhead).
    Direct,
}

/// Which [`Network`] to build.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    Namespaces,
    Proxies,
    Direct,
}

/// How the nodes are started.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub network: NetworkMode,
    /// Passed as `--plant-fault` (checker tests only).
    pub plant_fault: Option<String>,
    /// A small argon2 cost for PIN hashes (tests); `false` keeps the production default.
    pub fast_pin_hash: bool,
    /// Store new PINs as argon2id hashes (`--pin-hash argon2`) instead of keyed digests.
    pub argon2_pins: bool,
    /// More flags for every node (tests: checkpoint cadence and the like).
    pub extra_args: Vec<String>,
}

pub const ADMIN_TOKEN: &str = "chaos-harness-admin-token";
const SECRET: &str = "chaos-harness-cluster-secret";

struct Node {
    http_port: u16,
    peer_port: u16,
    child: Option<Child>,
    paused: bool,
    clock_offset_ms: i64,
    /// Its clock was moved while running (the clock-jump fault) and not yet put back.
    clock_jumped: bool,
}

pub struct ChaosCluster {
    binary: PathBuf,
    pub dir: PathBuf,
    nodes: Vec<Node>,
    network: Network,
    shards: u32,
    options: NodeOptions,
    pub client: reqwest::Client,
}

/// Reserves a loopback port: the listener is held until the node is about to bind it, so the
/// proxies' own ephemeral ports cannot collide with it.
fn reserve_port() -> std::io::Result<(u16, std::net::TcpListener)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((listener.local_addr()?.port(), listener))
}

impl ChaosCluster {
    pub async fn start(
        binary: PathBuf,
        dir: PathBuf,
        n: usize,
        shards: u32,
        options: NodeOptions,
    ) -> Result<ChaosCluster, HarnessError> {
        std::fs::create_dir_all(&dir)?;
        let mut nodes = Vec::new();
        let mut reserved = Vec::new();
        for _ in 0..n {
            let (http_port, http) = reserve_port()?;
            let (peer_port, peer) = reserve_port()?;
            reserved.extend([http, peer]);
            nodes.push(Node {
                http_port,
                peer_port,
                child: None,
                paused: false,
                clock_offset_ms: 0,
                clock_jumped: false,
            });
        }
        let network = if options.network == NetworkMode::Namespaces {
            Network::Namespaces(Netns::create(n).map_err(HarnessError::Setup)?)
        } else if options.network == NetworkMode::Direct {
            Network::Direct
        } else {
            let mut links = BTreeMap::new();
            for from in 1..=n {
                for to in (1..=n).filter(|t| *t != from) {
                    let target: SocketAddr = format!("127.0.0.1:{}", nodes[to - 1].peer_port)
                        .parse()
                        .expect("loopback address");
                    links.insert((from, to), LinkProxy::start(target).await?);
                }
            }
            Network::Proxies(links)
        };
        drop(reserved);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| HarnessError::Http(e.to_string()))?;
        let mut cluster = ChaosCluster {
            binary,
            dir,
            nodes,
            network,
            shards,
            options,
            client,
        };
        for id in 1..=n {
            cluster.spawn(id)?;
        }
        Ok(cluster)
    }

    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    pub fn url(&self, id: usize) -> String {
        match &self.network {
            Network::Namespaces(ns) => format!("http://{}:{}", ns.node_ip(id), netns::HTTP_PORT),
            Network::Proxies(_) | Network::Direct => {
                format!("http://127.0.0.1:{}", self.nodes[id - 1].http_port)
            }
        }
    }

    /// The address the nodes reach this process at (for the business's callback URL).
    pub fn harness_ip(&self) -> std::net::IpAddr {
        match &self.network {
            Network::Namespaces(ns) => ns
                .host_ip()
                .parse()
                .expect("the bridge address is an IP address"),
            Network::Proxies(_) | Network::Direct => std::net::Ipv4Addr::LOCALHOST.into(),
        }
    }

    /// `(peer listen address, http listen address)` of node `id`.
    fn listen(&self, id: usize) -> (String, String) {
        match &self.network {
            Network::Namespaces(ns) => (
                format!("{}:{}", ns.node_ip(id), netns::PEER_PORT),
                format!("{}:{}", ns.node_ip(id), netns::HTTP_PORT),
            ),
            Network::Proxies(_) | Network::Direct => {
                let node = &self.nodes[id - 1];
                (
                    format!("127.0.0.1:{}", node.peer_port),
                    format!("127.0.0.1:{}", node.http_port),
                )
            }
        }
    }

    fn members_for(&self, id: usize) -> String {
        (1..=self.nodes.len())
            .map(|j| match &self.network {
                Network::Namespaces(ns) => format!("{j}={}:{}", ns.node_ip(j), netns::PEER_PORT),
                Network::Proxies(links) => {
                    let port = if j == id {
                        self.nodes[j - 1].peer_port
                    } else {
                        links[&(id, j)].port
                    };
                    format!("{j}=127.0.0.1:{port}")
                }
                Network::Direct => format!("{j}=127.0.0.1:{}", self.nodes[j - 1].peer_port),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn spawn(&mut self, id: usize) -> std::io::Result<()> {
        let node = &self.nodes[id - 1];
        let (listen_peer, listen_http) = self.listen(id);
        let (data, log) = launch::node_paths(&self.dir, id);
        let wrapper = match &self.network {
            // `ip netns exec` switches namespace and execs the node: the pid is the node's.
            Network::Namespaces(ns) => vec![
                "ip".to_string(),
                "netns".into(),
                "exec".into(),
                ns.namespace(id),
            ],
            Network::Proxies(_) | Network::Direct => Vec::new(),
        };
        let mut extra_args = vec![
            "--clock-offset-ms".to_string(),
            node.clock_offset_ms.to_string(),
            // The clock-jump fault moves a running node's clock through a test hook.
            "--enable-test-hooks".into(),
            // The load is a few accounts sending many transfers each, from one address: the
            // public request budgets are not what chaos tests.
            "--requests-per-source".into(),
            "0".into(),
            "--requests-per-msisdn".into(),
            "0".into(),
        ];
        if let Some(fault) = &self.options.plant_fault {
            extra_args.extend(["--plant-fault".to_string(), fault.clone()]);
        }
        if self.options.fast_pin_hash {
            extra_args.extend(launch::FAST_PIN_HASH_ARGS.map(String::from));
        }
        if self.options.argon2_pins {
            extra_args.extend(["--pin-hash".to_string(), "argon2".into()]);
        }
        extra_args.extend(self.options.extra_args.iter().cloned());
        let mut command = NodeLaunch {
            binary: self.binary.clone(),
            id,
            data,
            listen_peer,
            listen_http,
            membership: Membership::Initial {
                members: self.members_for(id),
                shards: self.shards,
                replicas: self.nodes.len().min(3),
            },
            secret: Secret::Inline(SECRET.into()),
            admin_token: ADMIN_TOKEN.into(),
            log,
            // TUMA_CHAOS_NODE_LOG sets the nodes' log filter when a run needs more.
            log_filter: Some(
                std::env::var("TUMA_CHAOS_NODE_LOG").unwrap_or_else(|_| "info,raft=warn".into()),
            ),
            wrapper,
            extra_args,
        }
        .command()?;
        let child = command.spawn()?;
        let node = &mut self.nodes[id - 1];
        node.child = Some(child);
        node.clock_jumped = false;
        node.paused = false;
        Ok(())
    }

    /// The process id of node `id`, while it runs.
    pub fn pid(&self, id: usize) -> Option<u32> {
        self.nodes[id - 1].child.as_ref().map(Child::id)
    }

    pub fn is_up(&self, id: usize) -> bool {
        self.nodes[id - 1].child.is_some()
    }

    pub fn kill9(&mut self, id: usize) {
        if let Some(mut child) = self.nodes[id - 1].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.nodes[id - 1].paused = false;
    }

    /// SIGTERM and wait (a clean stop), killing after 20 s.
    pub fn stop(&mut self, id: usize) {
        self.resume(id);
        let Some(mut child) = self.nodes[id - 1].child.take() else {
            return;
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn pause(&mut self, id: usize) {
        if let Some(child) = &self.nodes[id - 1].child {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGSTOP);
            self.nodes[id - 1].paused = true;
        }
    }

    pub fn resume(&mut self, id: usize) {
        let node = &mut self.nodes[id - 1];
        if let (Some(child), true) = (&node.child, node.paused) {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
        }
        node.paused = false;
    }

    /// Moves a running node's wall clock by `jump_ms` (on top of its start offset) through the
    /// test hook; `false` if the node did not take it.
    pub async fn jump_clock(&mut self, id: usize, jump_ms: i64) -> bool {
        let offset_ms = self.nodes[id - 1].clock_offset_ms + jump_ms;
        let answered = self
            .client
            .post(format!("{}/admin/v1/test/clock", self.url(id)))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "offset_ms": offset_ms }))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        self.nodes[id - 1].clock_jumped |= answered;
        answered
    }

    /// Puts every jumped clock back to its node's start offset.
    pub async fn heal_clocks(&mut self) {
        for id in 1..=self.nodes.len() {
            if self.nodes[id - 1].clock_jumped && self.jump_clock(id, 0).await {
                self.nodes[id - 1].clock_jumped = false;
            }
        }
    }

    pub fn set_clock_offset(&mut self, id: usize, offset_ms: i64) {
        self.nodes[id - 1].clock_offset_ms = offset_ms;
    }

    /// Cuts `from → to` (one direction).
    pub fn cut(&self, from: usize, to: usize) {
        match &self.network {
            Network::Namespaces(ns) => ns.cut(from, to),
            Network::Proxies(links) => {
                if let Some(link) = links.get(&(from, to)) {
                    link.set_cut(true);
                }
            }
            Network::Direct => {}
        }
    }

    /// Delay and loss on every link (proxies only; returns false in namespaces, where this
    /// kernel offers no `tc netem`).
    pub fn degrade(&self, delay_ms: u64, loss_per_mille: u32) -> bool {
        let Network::Proxies(links) = &self.network else {
            return false;
        };
        for link in links.values() {
            link.set_delay(delay_ms);
            link.set_loss(loss_per_mille);
        }
        true
    }

    /// Every link clean, every node running and unpaused.
    pub fn heal(&mut self) -> std::io::Result<()> {
        match &self.network {
            Network::Namespaces(ns) => ns.heal(),
            Network::Proxies(links) => links.values().for_each(LinkProxy::heal),
            Network::Direct => {}
        }
        for id in 1..=self.nodes.len() {
            self.resume(id);
            if !self.is_up(id) {
                self.spawn(id)?;
            }
        }
        Ok(())
    }

    /// Waits until every shard has a leader.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            let mut led = BTreeSet::new();
            for id in 1..=self.nodes.len() {
                if let Ok(r) = self
                    .client
                    .get(format!("{}/admin/v1/cluster", self.url(id)))
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                {
                    if let Ok(body) = r.json::<Value>().await {
                        for s in body["shards"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|s| s["role"] == "leader")
                        {
                            led.insert(s["shard"].as_u64().unwrap_or(u64::MAX));
                        }
                    }
                }
            }
            if led.len() as u32 >= self.shards {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Asks any other node to remove member `id`; describes what the cluster answered.
    pub async fn drain(&self, id: usize) -> String {
        let via = 1 + id % self.nodes.len();
        let answer = self
            .client
            .delete(format!("{}/admin/v1/members/{id}", self.url(via)))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => {
                format!("remove node {id}: draining, its replicas move to the others")
            }
            Ok(r) => {
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                format!(
                    "remove node {id} refused ({status}): {}",
                    body["error"].as_str().unwrap_or("?")
                )
            }
            Err(error) => format!("remove node {id}: node {via} unreachable ({error})"),
        }
    }

    /// The cluster state (`GET /admin/v1/members`) from the first node that answers.
    pub async fn members(&self) -> Option<Value> {
        for id in 1..=self.nodes.len() {
            let answer = self
                .client
                .get(format!("{}/admin/v1/members", self.url(id)))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await;
            if let Ok(r) = answer {
                if let Ok(body) = r.json::<Value>().await {
                    if body["members"].is_array() {
                        return Some(body);
                    }
                }
            }
        }
        None
    }

    /// Kills every process (used on drop and on Ctrl-C).
    pub fn kill_all(&mut self) {
        for id in 1..=self.nodes.len() {
            self.resume(id);
            self.kill9(id);
        }
    }
}

impl Drop for ChaosCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

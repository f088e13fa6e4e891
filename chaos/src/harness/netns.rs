//! Network namespaces for the cluster under test: each node runs in its own namespace with a
//! veth pair on a bridge the harness creates, so partitions are real IP-level cuts (blackhole
//! routes inside the namespaces). Needs root and iproute2; everything made here is removed on
//! drop, including after Ctrl-C or a panic.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Mutex;

/// Peer and HTTP ports inside every namespace (each has its own network stack).
pub const PEER_PORT: u16 = 7000;
pub const HTTP_PORT: u16 = 8080;

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Can this process create namespaces? And does the kernel have `tc netem`?
pub fn probe() -> (Result<(), String>, bool) {
    let name = format!("tuma-probe-{}", std::process::id());
    if let Err(e) = ip(&["netns", "add", &name]) {
        return (Err(e), false);
    }
    let netem = Command::new("ip")
        .args([
            "netns", "exec", &name, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
            "1ms",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    let _ = ip(&["netns", "del", &name]);
    (Ok(()), netem)
}

/// The namespaces, veths and bridge of one run.
pub struct Netns {
    tag: u32,
    subnet: u32,
    nodes: usize,
    bridge: String,
    /// Active cuts: (from, to).
    cuts: Mutex<BTreeSet<(usize, usize)>>,
}

impl Netns {
    /// Creates a bridge and one namespace per node.
    pub fn create(nodes: usize) -> Result<Netns, String> {
        let tag = std::process::id() % 100_000;
        let subnet = 200 + tag % 50;
        let netns = Netns {
            tag,
            subnet,
            nodes,
            bridge: format!("tb{tag}"),
            cuts: Mutex::new(BTreeSet::new()),
        };
        ip(&["link", "add", &netns.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", netns.host_ip()),
            "dev",
            &netns.bridge,
        ])?;
        ip(&["link", "set", &netns.bridge, "up"])?;
        for id in 1..=nodes {
            let ns = netns.namespace(id);
            let (host, inner) = (format!("tv{tag}h{id}"), format!("tv{tag}n{id}"));
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &host, "master", &netns.bridge])?;
            ip(&["link", "set", &host, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", netns.node_ip(id)),
                "dev",
                &inner,
            ])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(netns)
    }

    pub fn namespace(&self, id: usize) -> String {
        format!("tuma-{}-{id}", self.tag)
    }

    pub fn node_ip(&self, id: usize) -> String {
        format!("10.{}.{}.{}", self.subnet, self.tag % 250, 10 + id)
    }

    pub fn host_ip(&self) -> String {
        format!("10.{}.{}.1", self.subnet, self.tag % 250)
    }

    /// Drops everything `from` sends to `to`.
    pub fn cut(&self, from: usize, to: usize) {
        let mut cuts = self.cuts.lock().expect("no panics hold this lock");
        if cuts.insert((from, to)) {
            let _ = ip(&[
                "-n",
                &self.namespace(from),
                "route",
                "add",
                "blackhole",
                &format!("{}/32", self.node_ip(to)),
            ]);
        }
    }

    /// Removes every cut.
    pub fn heal(&self) {
        let mut cuts = self.cuts.lock().expect("no panics hold this lock");
        for (from, to) in std::mem::take(&mut *cuts) {
            let _ = ip(&[
                "-n",
                &self.namespace(from),
                "route",
                "del",
                "blackhole",
                &format!("{}/32", self.node_ip(to)),
            ]);
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for id in 1..=self.nodes {
            let _ = ip(&["netns", "del", &self.namespace(id)]);
            let _ = ip(&["link", "del", &format!("tv{}h{id}", self.tag)]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

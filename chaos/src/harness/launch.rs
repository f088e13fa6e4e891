//! How a `tuma node` process is started: the one code path from a node's description to its
//! command line, shared by every launcher — `tuma cluster up`, the chaos and bench harness
//! ([`super::LocalCluster`]) and the integration tests (`tests/src/lib.rs`). A flag the node
//! gains or renames changes here once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How the node finds its cluster.
#[derive(Clone, Debug)]
pub enum Membership {
    /// An initial member: `--members` (`id=host:port,…`), shards and replicas.
    Initial {
        members: String,
        shards: u32,
        replicas: usize,
    },
    /// A new node joining a running cluster through this member's HTTP URL (`--join`).
    Join { through: String },
}

/// The cluster secret: inline (`--cluster-secret`) or read from a file.
#[derive(Clone, Debug)]
pub enum Secret {
    Inline(String),
    File(PathBuf),
}

/// One node process to start.
#[derive(Clone, Debug)]
pub struct NodeLaunch {
    pub binary: PathBuf,
    pub id: usize,
    pub data: PathBuf,
    pub listen_peer: String,
    pub listen_http: String,
    pub membership: Membership,
    pub secret: Secret,
    pub admin_token: String,
    /// The node's log (stdout and stderr), appended to.
    pub log: PathBuf,
    /// `TUMA_LOG` for the node, if set.
    pub log_filter: Option<String>,
    /// Runs the node through this command and its arguments (`ip netns exec <ns>`), which must
    /// exec it so the child's pid is the node's.
    pub wrapper: Vec<String>,
    /// Every other flag (PIN-hash cost, test hooks, planted faults, tuning).
    pub extra_args: Vec<String>,
}

/// A small argon2 cost for PIN hashes, for tests and benchmarks that do not measure hashing.
pub const FAST_PIN_HASH_ARGS: [&str; 4] =
    ["--pin-hash-memory-kib", "64", "--pin-hash-iterations", "1"];

impl NodeLaunch {
    /// The command that starts the node, its output going to its log.
    pub fn command(&self) -> std::io::Result<Command> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        command
            .arg("node")
            .args(["--id", &self.id.to_string()])
            .arg("--data")
            .arg(&self.data)
            .args(["--listen-peer", &self.listen_peer])
            .args(["--listen-http", &self.listen_http]);
        match &self.membership {
            Membership::Initial {
                members,
                shards,
                replicas,
            } => command
                .args(["--members", members])
                .args(["--shards", &shards.to_string()])
                .args(["--replicas", &replicas.to_string()]),
            Membership::Join { through } => command.args(["--join", through]),
        };
        match &self.secret {
            Secret::Inline(secret) => command.args(["--cluster-secret", secret]),
            Secret::File(path) => command.arg("--cluster-secret-file").arg(path),
        };
        command
            .args(["--admin-token", &self.admin_token])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(filter) = &self.log_filter {
            command.env("TUMA_LOG", filter);
        }
        Ok(command)
    }
}

/// Distinct free loopback ports: every one is held until all are chosen, so none repeats.
pub fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let held = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// `id=127.0.0.1:port,…` for nodes 1.. on these loopback peer ports.
pub fn loopback_members(peer_ports: impl IntoIterator<Item = u16>) -> String {
    peer_ports
        .into_iter()
        .enumerate()
        .map(|(i, port)| format!("{}=127.0.0.1:{port}", i + 1))
        .collect::<Vec<_>>()
        .join(",")
}

/// The node's data directory and log inside a cluster directory.
pub fn node_paths(dir: &Path, id: usize) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("node-{id}")),
        dir.join(format!("node-{id}.log")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(launch: &NodeLaunch) -> Vec<String> {
        let command = launch.command().unwrap();
        std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn an_initial_member_and_a_joining_node_get_their_flags() {
        let dir = std::env::temp_dir().join(format!("tuma-launch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (data, log) = node_paths(&dir, 2);
        let mut launch = NodeLaunch {
            binary: "/bin/tuma".into(),
            id: 2,
            data,
            listen_peer: "127.0.0.1:7002".into(),
            listen_http: "127.0.0.1:8002".into(),
            membership: Membership::Initial {
                members: loopback_members([7001, 7002]),
                shards: 8,
                replicas: 2,
            },
            secret: Secret::File(dir.join("secret")),
            admin_token: "token".into(),
            log,
            log_filter: None,
            wrapper: vec!["ip".into(), "netns".into(), "exec".into(), "ns2".into()],
            extra_args: vec!["--enable-test-hooks".into()],
        };
        let initial = args(&launch).join(" ");
        assert!(initial.starts_with("ip netns exec ns2 /bin/tuma node --id 2 --data "));
        assert!(
            initial.contains("--members 1=127.0.0.1:7001,2=127.0.0.1:7002 --shards 8 --replicas 2")
        );
        assert!(initial.contains("--cluster-secret-file "));
        assert!(initial.ends_with("--admin-token token --enable-test-hooks"));
        launch.membership = Membership::Join {
            through: "http://127.0.0.1:8001".into(),
        };
        launch.secret = Secret::Inline("s3cret".into());
        launch.wrapper.clear();
        let joining = args(&launch).join(" ");
        assert!(joining.starts_with("/bin/tuma node"));
        assert!(joining.contains("--join http://127.0.0.1:8001 --cluster-secret s3cret"));
        assert!(!joining.contains("--members"));
        assert!(
            dir.join("node-2.log").exists(),
            "the log is opened for appending"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(16).unwrap();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), 16);
    }
}

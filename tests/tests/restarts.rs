//! A data directory belongs to one node of one cluster: restarting it with another shard count
//! or node id is refused with a message that says why, and a second process cannot open it.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tuma_tests::{tuma_binary, TestCluster};

/// Runs a one-member node on `data` with `shards` shards and returns how it ended.
fn node_on(data: &Path, shards: u32) -> Output {
    Command::new(tuma_binary())
        .args([
            "node",
            "--id",
            "1",
            "--members",
            "1=127.0.0.1:1",
            "--cluster-secret",
            "integration-cluster-secret",
        ])
        .args([
            "--admin-token",
            "integration-test-token",
            "--listen-http",
            "127.0.0.1:0",
            "--listen-peer",
            "127.0.0.1:0",
        ])
        .args(["--shards", &shards.to_string()])
        .arg("--data")
        .arg(data)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_data_directory_refuses_another_identity_and_a_second_process() {
    let mut cluster = TestCluster::start("identity", 1, 4);
    let data = cluster.dir.join("node-1");
    // While node 1 runs, its directory is locked.
    let second = node_on(&data, 4);
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("in use by another process"), "{stderr}");
    assert_eq!(cluster.stop(1), Some(0), "a clean stop exits 0");
    std::thread::sleep(Duration::from_millis(200));
    // Stopped, the directory still refuses to become a node of a differently shaped cluster.
    let other = node_on(&data, 8);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success(), "{stderr}");
    assert!(
        stderr.contains("refusing to start it as node 1 with 8 shards"),
        "{stderr}"
    );
}

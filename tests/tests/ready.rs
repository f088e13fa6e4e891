//! `GET /ready`, a load balancer's readiness probe: 200 on a node that can serve; 503 with the
//! reasons once it cannot (its peers gone: no quorum, no leaders, no clock majority); 200
//! again once they are back. `/health` stays 200 throughout: the process is alive.

use std::time::{Duration, Instant};

use tuma_tests::TestCluster;

/// Polls node 1's `/ready` until it answers `status`; returns its body.
fn await_ready(cluster: &TestCluster, status: u16, within: Duration) -> serde_json::Value {
    let url = format!("{}/ready", cluster.url(1));
    let started = Instant::now();
    loop {
        let answer = cluster.get(&url);
        if let Some((code, body)) = &answer {
            if *code == status {
                return body.clone();
            }
        }
        assert!(
            started.elapsed() < within,
            "node 1's /ready never answered {status}: last {answer:?}; logs in {}",
            cluster.dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_node_is_ready_only_while_it_can_serve() {
    let mut cluster = TestCluster::start("ready", 3, 4);
    cluster.wait_ready(Duration::from_secs(60));
    let ready = await_ready(&cluster, 200, Duration::from_secs(30));
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["shards"], 4, "{ready}");
    cluster.kill9(2);
    cluster.kill9(3);
    let refused = await_ready(&cluster, 503, Duration::from_secs(30));
    assert_eq!(refused["ready"], false, "{refused}");
    let reasons = refused["reasons"].as_array().expect("reasons");
    assert!(!reasons.is_empty(), "{refused}");
    let health = cluster.get(&format!("{}/health", cluster.url(1)));
    assert_eq!(
        health.map(|(code, _)| code),
        Some(200),
        "alive though not ready"
    );
    cluster.spawn(2, None);
    cluster.spawn(3, None);
    let again = await_ready(&cluster, 200, Duration::from_secs(60));
    assert_eq!(again["ready"], true, "{again}");
}

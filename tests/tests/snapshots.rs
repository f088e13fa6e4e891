//! Checkpoints and log compaction: a node that was down while the log moved past a checkpoint
//! catches up from a snapshot, and a restart recovers from checkpoint plus log. (The same with
//! a snapshot over the transport's frame limit, cut midway: `snapshot_stream.rs`.)

use std::time::{Duration, Instant};

use tuma_tests::{send_money, with_node_flags, TestCluster};

#[test]
fn a_node_behind_a_compacted_log_catches_up_from_a_snapshot() {
    with_node_flags(&[
        "--checkpoint-every-entries",
        "20",
        "--log-keep-entries",
        "5",
    ]);
    let mut cluster = TestCluster::start("snapshot", 3, 2);
    let people: Vec<String> = (0..6).map(|i| format!("2547200000{i:02}")).collect();
    for (i, p) in people.iter().enumerate() {
        cluster.register_customer(p);
        cluster.fund(p, "10000.00", &format!("fund-{i}"));
    }
    // Take a node down; move every shard's log well past several checkpoints.
    let victim = 3;
    cluster.kill9(victim);
    let url = cluster.url(1).to_string();
    for n in 0..120 {
        let (from, to) = (&people[n % 6], &people[(n + 1) % 6]);
        let (status, body) = cluster
            .post(
                &format!("{url}/v1/transfers"),
                &send_money(&format!("s{n}"), from, to, "10.00"),
            )
            .unwrap();
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("confirmed")),
            "{body}"
        );
    }
    // The leaders saw the victim's link down and stopped pipelining entries to it (which
    // the transport would have queued and delivered, stale, on its return).
    let unreachable: f64 = (1..victim)
        .map(|id| cluster.metric(id, "tuma_raft_unreachable_reports_total"))
        .sum();
    assert!(
        unreachable > 0.0,
        "no leader reported node {victim} unreachable"
    );
    cluster.spawn(victim, None);
    let started = Instant::now();
    loop {
        let statuses = cluster.statuses();
        let leader_commit: Vec<(u64, u64)> = statuses
            .iter()
            .flat_map(|(_, s)| s["shards"].as_array().unwrap().clone())
            .filter(|s| s["role"] == "leader")
            .map(|s| {
                (
                    s["shard"].as_u64().unwrap(),
                    s["commit_index"].as_u64().unwrap(),
                )
            })
            .collect();
        let victim_status = statuses
            .iter()
            .find(|(id, _)| *id == victim)
            .map(|(_, s)| s.clone());
        let caught_up = victim_status.is_some_and(|s| {
            leader_commit.len() == 2
                && s["shards"].as_array().unwrap().iter().all(|r| {
                    let commit = leader_commit
                        .iter()
                        .find(|(shard, _)| r["shard"] == *shard)
                        .map(|(_, c)| *c)
                        .unwrap_or(u64::MAX);
                    r["applied_index"].as_u64().unwrap() >= commit
                })
        });
        if caught_up {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "node {victim} never caught up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log =
        std::fs::read_to_string(cluster.log_dir().join(format!("node-{victim}.log"))).unwrap();
    assert!(
        log.contains("installed a snapshot"),
        "the node should have caught up from a snapshot"
    );
    // Make the caught-up node serve: stop the others one at a time is not needed; restart every
    // node from its checkpoint + log and check the books.
    for id in 1..=3 {
        cluster.kill9(id);
    }
    for id in 1..=3 {
        cluster.spawn(id, None);
    }
    cluster.wait_ready(Duration::from_secs(60));
    let audit = cluster.quiet_audit(Duration::from_secs(30));
    assert_eq!(audit["totals"]["balance_sum"], "0.00");
    assert_eq!(audit["totals"]["e_money_issued"], "60000.00");
    let (_, body) = cluster
        .get(&format!(
            "{}/v1/transfers/s119?from={}",
            cluster.url(1),
            people[119 % 6]
        ))
        .unwrap();
    assert_eq!(body["status"], "confirmed");
}

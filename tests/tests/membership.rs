//! Elastic membership on real processes, with transfers running throughout: grow 3 → 5 and
//! see replicas and leaders spread; restart a joined node; remove a live node and see it
//! drained; kill a node for good, remove it, and see every shard back at three replicas. The
//! books balance and no confirmed transfer is lost. (The rolling restart is in
//! `rolling_restart.rs`, its own binary, so the two clusters do not share the CPU.)

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use tuma_tests::steady_load::{assert_confirmed_present, customers, SteadyLoad};
use tuma_tests::TestCluster;

const SHARDS: u32 = 12;
const SETTLE: Duration = Duration::from_secs(120);

/// Replicas per member (by id) in the cluster state, for members in `state`.
fn replicas_by_member(state: &Value, member_state: &str) -> Vec<(u64, u64)> {
    state["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["state"] == member_state)
        .map(|m| (m["id"].as_u64().unwrap(), m["replicas"].as_u64().unwrap()))
        .collect()
}

fn settled(state: &Value) -> bool {
    state["moves"].as_array().is_some_and(Vec::is_empty)
}

fn member_state(state: &Value, id: usize) -> String {
    state["members"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["id"] == id as u64)
        .and_then(|m| m["state"].as_str())
        .unwrap_or("?")
        .to_string()
}

/// For every shard, the voters its leader reports (from the running nodes' views).
fn leader_voters(cluster: &TestCluster) -> Vec<(u64, BTreeSet<u64>)> {
    let mut out = Vec::new();
    for (_, status) in cluster.statuses() {
        for shard in status["shards"].as_array().into_iter().flatten() {
            if shard["role"] == "leader" {
                let voters = shard["voters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .collect();
                out.push((shard["shard"].as_u64().unwrap(), voters));
            }
        }
    }
    out.sort();
    out
}

/// Shards node `id` holds a replica of, from its own view.
fn shards_held(cluster: &TestCluster, id: usize) -> usize {
    cluster
        .get(&format!("{}/admin/v1/cluster", cluster.url(id)))
        .map_or(usize::MAX, |(_, s)| {
            s["shards"].as_array().map_or(0, Vec::len)
        })
}

#[test]
fn grow_drain_and_replace_a_dead_node_while_money_moves() {
    let mut cluster = TestCluster::start("membership", 3, SHARDS);
    let people = customers(&cluster, 12, "100000.00");
    let urls = |c: &TestCluster, ids: &[usize]| ids.iter().map(|i| c.url(*i).to_string()).collect();
    let load = SteadyLoad::start(urls(&cluster, &[1, 2, 3]), people, 4, "150.00");

    // Grow 3 → 5: replicas and preferred leaders spread within one of each other.
    let four = cluster.add_node();
    let five = cluster.add_node();
    load.set_urls(urls(&cluster, &[1, 2, 3, four, five]));
    cluster.wait_for("replicas to spread over five nodes", SETTLE, |c| {
        let state = c.cluster_state();
        let loads: Vec<u64> = replicas_by_member(&state, "active")
            .iter()
            .map(|(_, r)| *r)
            .collect();
        settled(&state)
            && loads.len() == 5
            && loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1
    });
    let state = cluster.cluster_state();
    for (id, replicas) in replicas_by_member(&state, "active") {
        assert!(
            replicas >= 7,
            "node {id} holds {replicas} replicas: {state}"
        );
    }
    cluster.wait_for("the new nodes to hold their replicas", SETTLE, |c| {
        shards_held(c, four) >= 7 && shards_held(c, five) >= 7
    });
    cluster.wait_for("leaders on the new nodes", SETTLE, |c| {
        let leaders = c.leaders();
        [four, five]
            .iter()
            .all(|n| leaders.iter().any(|(id, led)| id == n && !led.is_empty()))
    });

    // A joined node restarts (same flags, `--join` again) with its replicas and leaderships.
    let held = shards_held(&cluster, four);
    assert_eq!(cluster.stop(four), Some(0), "node {four} stops cleanly");
    cluster.spawn(four, None);
    cluster.wait_for("the restarted joined node to lead again", SETTLE, |c| {
        shards_held(c, four) == held
            && c.leaders()
                .iter()
                .any(|(id, led)| *id == four && !led.is_empty())
    });

    // Remove a live node: drained (leaderships and replicas moved), then marked removed.
    load.set_urls(urls(&cluster, &[1, 3, four, five]));
    let (status, body) = cluster.remove_member(2);
    assert_eq!(status, 202, "{body}");
    cluster.wait_for("node 2 to be drained and removed", SETTLE, |c| {
        member_state(&c.cluster_state(), 2) == "removed" && shards_held(c, 2) == 0
    });
    assert_eq!(cluster.stop(2), Some(0), "a drained node stops cleanly");

    // Kill a node for good and remove it: its shards are re-replicated from the survivors.
    load.set_urls(urls(&cluster, &[1, four, five]));
    cluster.kill9(3);
    let (status, body) = cluster.remove_member(3);
    assert_eq!(status, 202, "{body}");
    let survivors: BTreeSet<u64> = [1, four as u64, five as u64].into();
    cluster.wait_for(
        "every shard back at three replicas on the survivors",
        SETTLE,
        |c| {
            let voters = leader_voters(c);
            member_state(&c.cluster_state(), 3) == "removed"
                && voters.len() == SHARDS as usize
                && voters.iter().all(|(_, v)| *v == survivors)
        },
    );
    // Three members are left for three replicas: one more removal is refused.
    let (status, body) = cluster.remove_member(1);
    assert_eq!(status, 409, "{body}");
    // Bad requests name what is wrong: an unknown member, a removed one, an unreachable address.
    let (status, body) = cluster.remove_member(99);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("not a member"),
        "{body}"
    );
    let (status, body) = cluster.remove_member(2);
    assert_eq!(status, 409, "{body}");
    let join = serde_json::json!({"peer_addr": "0.0.0.0:7999"});
    let (status, body) = cluster
        .post(&format!("{}/admin/v1/members", cluster.url(1)), &join)
        .unwrap();
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("peer_addr")),
        "{body}"
    );

    let report = load.finish();
    println!(
        "membership under load: confirmed={} failed={} retries={}",
        report.confirmed.len(),
        report.failed.len(),
        report.retries
    );
    assert!(
        report.confirmed.len() > 50,
        "too little traffic: {report:?}"
    );
    let audit = cluster.quiet_audit(Duration::from_secs(60));
    assert_eq!(audit["balanced"], true, "{audit}");
    assert_eq!(audit["totals"]["transfers_in_flight"], 0, "{audit}");
    assert_confirmed_present(&cluster, cluster.url(1), &report.confirmed);
}

/// A member restarted under another peer address (a pod rescheduled, a machine renumbered),
/// with its data, is linked to there by every other member — an initial member and a joined
/// one — and carries its share of the quorum again.
#[test]
fn a_member_that_comes_back_at_another_address_is_reached_there() {
    let mut cluster = TestCluster::start("readdress", 3, 4);
    let people = customers(&cluster, 2, "100.00");
    let peer_addr_of = |cluster: &TestCluster, id: usize| {
        cluster.cluster_state()["members"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["id"] == id)
            .and_then(|m| m["peer_addr"].as_str().map(str::to_string))
    };
    // An initial member.
    cluster.kill9(3);
    let port = cluster.move_peer_port(3);
    cluster.spawn(3, None);
    let moved = format!("127.0.0.1:{port}");
    cluster.wait_for("node 3's new address", Duration::from_secs(30), |c| {
        peer_addr_of(c, 3).as_deref() == Some(moved.as_str())
    });
    // Without node 1, every shard's quorum needs node 3: reached at its new address.
    cluster.kill9(1);
    cluster.wait_for(
        "a transfer through nodes 2 and 3",
        Duration::from_secs(60),
        |c| {
            let answer = c.post(
                &format!("{}/v1/transfers", c.url(2)),
                &tuma_tests::send_money("after-move", &people[0], &people[1], "1.00"),
            );
            matches!(answer, Some((200, body)) if body["status"] == "confirmed")
        },
    );
    cluster.spawn(1, None);
    // A joined member, restarted with --join and its data, is readdressed, not refused.
    let joined = cluster.add_node();
    cluster.wait_for("node 4 joined", Duration::from_secs(30), |c| {
        peer_addr_of(c, joined).is_some()
    });
    cluster.kill9(joined);
    let port = cluster.move_peer_port(joined);
    cluster.spawn(joined, None);
    let moved = format!("127.0.0.1:{port}");
    cluster.wait_for("node 4's new address", Duration::from_secs(30), |c| {
        peer_addr_of(c, joined).as_deref() == Some(moved.as_str())
    });
    let audit = cluster.quiet_audit(Duration::from_secs(20));
    assert_eq!(audit["balanced"], true, "{audit}");
}

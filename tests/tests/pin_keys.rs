//! Keyed PIN digests on real processes: PINs verify under the cluster's PIN key; a node started
//! with another key refuses to judge (503) instead of counting wrong PINs, so a misconfigured
//! node cannot lock customers out; with the right key back, the same customer transacts.

use std::time::Duration;

use serde_json::Value;
use tuma_tests::{send_money, TestCluster};

const ALICE: &str = "254711500001";
const BOB: &str = "254711500002";

fn transfer(cluster: &TestCluster, id: &str, pin: &str, deadline_ms: u64) -> (u16, Value) {
    let mut body = send_money(id, ALICE, BOB, "10.00");
    body["pin"] = pin.into();
    body["deadline_ms"] = deadline_ms.into();
    cluster
        .post(&format!("{}/v1/transfers", cluster.url(1)), &body)
        .expect("transfer answered")
}

/// A secret file only its owner may read (nodes refuse others).
fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn a_node_with_another_pin_key_refuses_to_judge_and_locks_no_one_out() {
    let mut cluster = TestCluster::start("pin-keys", 1, 2);
    let key_a = cluster.dir.join("pin-key-a");
    write_private(&key_a, "pin key A for the integration test");
    let key_b = cluster.dir.join("pin-key-b");
    write_private(&key_b, "pin key B for the integration test");
    let with_key = |cluster: &mut TestCluster, key: &std::path::Path| {
        cluster.stop(1);
        cluster.extra_args = vec!["--pin-key-file".into(), key.display().to_string()];
        cluster.spawn(1, None);
        cluster.wait_ready(Duration::from_secs(30));
    };
    with_key(&mut cluster, &key_a);
    cluster.register_customer(ALICE);
    cluster.register_customer(BOB);
    cluster.fund(ALICE, "100.00", "fund-alice");
    let (_, account) = cluster
        .get(&format!("{}/admin/v1/accounts/{ALICE}", cluster.url(1)))
        .unwrap();
    assert_eq!(account["status"], "active", "{account}");

    let (status, answer) = transfer(&cluster, "keyed-1", tuma_tests::PIN, 5_000);
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("confirmed")),
        "{answer}"
    );
    let (status, answer) = transfer(&cluster, "keyed-2", "9999", 5_000);
    assert_eq!(
        answer["result"], "wrong_pin",
        "a wrong PIN is judged wrong: {status} {answer}"
    );

    // Another key: no attempt is judged — the transfer gets no decision (504, retry later) —
    // and none is counted against the customer, though five wrong PINs would lock.
    with_key(&mut cluster, &key_b);
    for n in 0..6 {
        let (status, answer) = transfer(&cluster, &format!("other-key-{n}"), "9999", 600);
        assert_eq!(
            (status, answer["status"].as_str()),
            (504, Some("unknown")),
            "attempt {n}: {answer}"
        );
    }
    let (_, account) = cluster
        .get(&format!("{}/admin/v1/accounts/{ALICE}", cluster.url(1)))
        .unwrap();
    assert_eq!(account["pin_locked"], false, "{account}");
    let log = std::fs::read_to_string(cluster.log_dir().join("node-1.log")).unwrap();
    assert!(
        log.contains("check --pin-key-file"),
        "the node says what to fix"
    );

    // The right key again: one wrong try was counted before, nothing since; the PIN works.
    with_key(&mut cluster, &key_a);
    let (status, answer) = transfer(&cluster, "keyed-3", tuma_tests::PIN, 5_000);
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("confirmed")),
        "{answer}"
    );
}

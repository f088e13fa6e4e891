//! Maker-checker float on real nodes: a float issue above `--float-approval-above` waits until a
//! second caller approves it — never the one who asked — and is then issued exactly once;
//! a declined one issues nothing; smaller issues go through at once.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tuma_tests::{with_node_flags, TestCluster, TOKEN};

/// Creates an operator key with the bootstrap token; returns it.
fn operator_key(cluster: &TestCluster, label: &str) -> String {
    let (code, body) = cluster
        .post(
            &format!("{}/admin/v1/keys", cluster.url(1)),
            &json!({"role": "operator", "label": label}),
        )
        .expect("the node answers");
    assert_eq!(code, 201, "{body}");
    let key = body["key"].as_str().expect("a key").to_string();
    // Every node rereads the key ring within a second.
    let started = Instant::now();
    for node in 1..=cluster.nodes.len() {
        while post_as(
            cluster,
            node,
            &key,
            "/admin/v1/float/approvals/none/approve",
            &json!(null),
        )
        .0 == 401
        {
            assert!(started.elapsed() < Duration::from_secs(5), "key not known");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    key
}

fn post_as(
    cluster: &TestCluster,
    node: usize,
    key: &str,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let response = cluster
        .client
        .post(format!("{}{path}", cluster.url(node)))
        .bearer_auth(key)
        .json(body)
        .send()
        .expect("the node answers");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn balance(cluster: &TestCluster, account: &str) -> String {
    let (_, body) = cluster
        .get(&format!("{}/admin/v1/accounts/{account}", cluster.url(2)))
        .expect("the node answers");
    body["balance"].as_str().unwrap_or("?").to_string()
}

#[test]
fn a_large_float_issue_waits_for_a_second_caller_and_is_issued_once() {
    with_node_flags(&["--float-approval-above", "10000.00"]);
    let cluster = TestCluster::start("maker-checker", 3, 4);
    cluster.register_customer("254711100001");
    let maker = operator_key(&cluster, "treasury maker");
    let checker = operator_key(&cluster, "treasury checker");
    let float = |id: &str, amount: &str| json!({"request_id": id, "account": "254711100001", "amount": amount});

    // At or under the amount: issued at once.
    let (code, small) = post_as(
        &cluster,
        1,
        &maker,
        "/admin/v1/float",
        &float("small", "10000.00"),
    );
    assert_eq!(
        (code, small["status"].as_str()),
        (200, Some("confirmed")),
        "{small}"
    );

    // Above it: recorded, nothing issued, until another caller approves.
    let (code, asked) = post_as(
        &cluster,
        1,
        &maker,
        "/admin/v1/float",
        &float("big", "250000.00"),
    );
    assert_eq!(code, 202, "{asked}");
    assert_eq!(asked["status"], "awaiting_approval");
    assert_eq!(balance(&cluster, "254711100001"), "10000.00");
    let (code, again) = post_as(
        &cluster,
        2,
        &maker,
        "/admin/v1/float",
        &float("big", "250000.00"),
    );
    assert_eq!(
        code, 202,
        "the same request again is the same request: {again}"
    );
    let (code, own) = post_as(
        &cluster,
        3,
        &maker,
        "/admin/v1/float/approvals/big/approve",
        &json!(null),
    );
    assert_eq!(code, 409, "the maker cannot check: {own}");
    assert_eq!(balance(&cluster, "254711100001"), "10000.00");

    let (code, approved) = post_as(
        &cluster,
        2,
        &checker,
        "/admin/v1/float/approvals/big/approve",
        &json!(null),
    );
    assert_eq!(code, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert!(approved["transaction_id"].is_string(), "{approved}");
    assert_eq!(balance(&cluster, "254711100001"), "260000.00");
    let (code, twice) = post_as(
        &cluster,
        1,
        &checker,
        "/admin/v1/float/approvals/big/approve",
        &json!(null),
    );
    assert_eq!(code, 409, "decided once: {twice}");
    assert_eq!(
        balance(&cluster, "254711100001"),
        "260000.00",
        "issued exactly once"
    );

    // Declined: nothing issued. The bootstrap key is a caller of its own.
    let (code, _) = post_as(
        &cluster,
        1,
        TOKEN,
        "/admin/v1/float",
        &float("declined", "99999.00"),
    );
    assert_eq!(code, 202);
    let (code, declined) = post_as(
        &cluster,
        3,
        &maker,
        "/admin/v1/float/approvals/declined/decline",
        &json!(null),
    );
    assert_eq!(
        (code, declined["status"].as_str()),
        (200, Some("declined")),
        "{declined}"
    );
    assert_eq!(balance(&cluster, "254711100001"), "260000.00");

    let (code, listed) = cluster
        .get(&format!("{}/admin/v1/float/approvals", cluster.url(3)))
        .expect("the node answers");
    assert_eq!(code, 200);
    let requests = listed["requests"].as_array().expect("requests");
    let by_id = |id: &str| requests.iter().find(|r| r["request_id"] == id).cloned();
    let big = by_id("big").expect("listed");
    assert_eq!(
        big["requested_by"],
        json!(format!("key:{}", &maker[3..11])),
        "{big}"
    );
    assert_eq!(
        big["decided_by"],
        json!(format!("key:{}", &checker[3..11])),
        "{big}"
    );
    assert_eq!(
        by_id("declined").expect("listed")["requested_by"],
        "bootstrap"
    );
    let audit = cluster.quiet_audit(Duration::from_secs(10));
    assert_eq!(audit["balanced"], true, "{audit}");

    // The audit log tells the story: who asked, who refused to check their own, who approved.
    let log = cluster.audit_log(TOKEN);
    let recorded = |actor: &str, action: &str, outcome: &str| {
        log.iter().any(|r| {
            r["actor"] == actor
                && r["action"] == action
                && r["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with(outcome))
        })
    };
    let (maker_id, checker_id) = (
        format!("key:{}", &maker[3..11]),
        format!("key:{}", &checker[3..11]),
    );
    assert!(recorded(&maker_id, "POST /admin/v1/float", "202"));
    assert!(recorded(
        &maker_id,
        "POST /admin/v1/float/approvals/big/approve",
        "409"
    ));
    assert!(recorded(
        &checker_id,
        "POST /admin/v1/float/approvals/big/approve",
        "200"
    ));
    assert!(recorded(
        &maker_id,
        "POST /admin/v1/float/approvals/declined/decline",
        "200"
    ));
    assert!(recorded("bootstrap", "POST /admin/v1/float", "202"));
    assert!(
        log.iter().any(|r| r["target"]
            .as_str()
            .is_some_and(|t| t.contains("request_id=big amount=250000.00"))
            || r["target"]
                .as_str()
                .is_some_and(|t| t.contains("amount=250000.00"))),
        "the target names the amount"
    );
}

//! The HTTP API on a real node: bad input is refused with a clear error and moves no money;
//! wrong PINs lock; duplicates answer the same; a panicking actor is restarted and counted.

use std::time::Duration;

use serde_json::{json, Value};
use tuma_tests::{send_money, with_node_flags, TestCluster, PIN};

const ALICE: &str = "254711000001";
const BOB: &str = "254711000002";

/// The account's posted balance once nothing is pending to it: a transfer is confirmed when its
/// payer's shard decides, and the payee's shard settles the credit a moment later.
fn balance(cluster: &TestCluster, who: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        let (_, body) = cluster
            .get(&format!("{}/admin/v1/accounts/{who}", cluster.url(1)))
            .unwrap();
        if body["pending_in"] == "0.00" || started.elapsed() > Duration::from_secs(10) {
            return body["balance"].as_str().unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_input_gets_a_clear_error_and_moves_no_money() {
    let cluster = TestCluster::start("api-input", 1, 4);
    cluster.register_customer(ALICE);
    cluster.register_customer(BOB);
    cluster.fund(ALICE, "1000.00", "fund-alice");
    let url = format!("{}/v1/transfers", cluster.url(1));
    let raw = cluster
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("malformed JSON"),
        "{body}"
    );
    // A body over the limit is refused before it is read, with its own status.
    let oversized = format!(
        "{{\"request_id\":\"big\",\"note\":\"{}\"}}",
        "x".repeat(300 * 1024)
    );
    let raw = cluster
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(oversized)
        .send()
        .unwrap();
    assert_eq!(raw.status(), 413);
    let body: Value = raw.json().unwrap();
    assert!(body["error"].as_str().unwrap().contains("larger"), "{body}");
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"request_id": "x1", "kind": "teleport", "from": ALICE, "to": BOB, "amount": "10.00", "pin": PIN}),
            "kind",
        ),
        (
            json!({"request_id": "x2", "kind": "send_money", "from": ALICE, "to": BOB, "amount": "-10.00", "pin": PIN}),
            "amount",
        ),
        (
            json!({"request_id": "x3", "kind": "send_money", "from": ALICE, "to": BOB, "amount": "10.001", "pin": PIN}),
            "amount",
        ),
        (
            json!({"request_id": "x4", "kind": "send_money", "from": ALICE, "to": BOB, "amount": "0", "pin": PIN}),
            "amount",
        ),
        (
            json!({"request_id": "x5", "kind": "send_money", "from": "0712", "to": BOB, "amount": "10.00", "pin": PIN}),
            "from",
        ),
        (
            json!({"request_id": "x6", "kind": "send_money", "from": ALICE, "to": "+1555123", "amount": "10.00", "pin": PIN}),
            "to",
        ),
        (
            json!({"request_id": "x7", "kind": "send_money", "from": ALICE, "to": BOB, "amount": "10.00", "pin": "12"}),
            "pin",
        ),
        (
            json!({"request_id": "has space", "kind": "send_money", "from": ALICE, "to": BOB, "amount": "10.00", "pin": PIN}),
            "request_id",
        ),
        (
            json!({"request_id": "x8", "kind": "send_money", "from": ALICE, "to": BOB, "amount": "10.00", "pin": PIN, "deadline_ms": 5}),
            "deadline_ms",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = cluster.post(&url, &body).unwrap();
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["field"], field, "{body} → {answer}");
    }
    let (status, answer) = cluster
        .post(&url, &json!({"request_id": "x9", "kind": "send_money"}))
        .unwrap();
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("missing field"),
        "{answer}"
    );
    // Admin: wrong token, duplicates, malformed registration.
    let wrong = cluster
        .client
        .post(format!("{}/admin/v1/customers", cluster.url(1)))
        .bearer_auth("wrong-token-wrong")
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let dup = json!({"msisdn": ALICE, "name": "Again", "id_number": "1", "pin": PIN});
    assert_eq!(
        cluster
            .post(&format!("{}/admin/v1/customers", cluster.url(1)), &dup)
            .unwrap()
            .0,
        409
    );
    let bad = json!({"msisdn": "07123", "name": "X", "id_number": "1", "pin": PIN});
    let (status, answer) = cluster
        .post(&format!("{}/admin/v1/customers", cluster.url(1)), &bad)
        .unwrap();
    assert_eq!((status, answer["field"].as_str()), (400, Some("msisdn")));
    assert_eq!(balance(&cluster, ALICE), "1000.00");
    assert_eq!(balance(&cluster, BOB), "0.00");
}

#[test]
fn wrong_pins_fail_then_lock_and_duplicates_answer_the_same() {
    let cluster = TestCluster::start("api-pin", 1, 4);
    cluster.register_customer(ALICE);
    cluster.register_customer(BOB);
    cluster.fund(ALICE, "1000.00", "fund-alice");
    let url = format!("{}/v1/transfers", cluster.url(1));
    let ok = send_money("dup-1", ALICE, BOB, "100.00");
    let (s1, first) = cluster.post(&url, &ok).unwrap();
    let (s2, second) = cluster.post(&url, &ok).unwrap();
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(first["status"], "confirmed");
    assert_eq!(first["transaction_id"], second["transaction_id"]);
    assert_eq!(first["fee"], "0.00");
    // The confirmations leave through the node's SMS sink (its log, until a gateway is connected).
    let txn = first["transaction_id"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    loop {
        let log = std::fs::read_to_string(cluster.log_dir().join("node-1.log")).unwrap();
        if log.contains(&format!(
            "{txn} Confirmed. Ksh100.00 sent to CUSTOMER 254711000002"
        )) && log.contains(&format!("{txn} Confirmed. You have received Ksh100.00"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "confirmation texts for {txn} never left the outbox"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(balance(&cluster, BOB), "100.00", "a duplicate moved money");
    for attempt in 1..=5 {
        let mut body = send_money(&format!("wrong-{attempt}"), ALICE, BOB, "10.00");
        body["pin"] = json!("9999");
        let (status, answer) = cluster.post(&url, &body).unwrap();
        assert_eq!(status, 200);
        assert_eq!(answer["status"], "failed");
        assert_eq!(
            answer["result"],
            if attempt < 5 {
                "wrong_pin"
            } else {
                "pin_locked"
            },
            "attempt {attempt}"
        );
    }
    let (_, locked) = cluster
        .post(&url, &send_money("after-lock", ALICE, BOB, "10.00"))
        .unwrap();
    assert_eq!(locked["result"], "pin_locked");
    assert_eq!(balance(&cluster, BOB), "100.00");
    let (status, _) = cluster
        .post(
            &format!("{}/admin/v1/pins/unlock", cluster.url(1)),
            &json!({"account": ALICE}),
        )
        .unwrap();
    assert_eq!(status, 200);
    let (_, answer) = cluster
        .post(&url, &send_money("after-unlock", ALICE, BOB, "10.00"))
        .unwrap();
    assert_eq!(answer["status"], "confirmed");
    assert_eq!(balance(&cluster, BOB), "110.00");
    let (status, answer) = cluster
        .get(&format!("{}/v1/accounts/{BOB}/balance", cluster.url(1)))
        .unwrap();
    assert_eq!((status, answer["balance"].as_str()), (200, Some("110.00")));
}

/// Failed attempts are budgeted: a payer who has failed its budget (wrong PINs, here) is turned
/// away with `429` and `Retry-After` before anything reaches the log — even with the right PIN —
/// while other payers go on; an unknown payer is budgeted the same way.
#[test]
fn failed_attempts_past_the_budget_are_answered_429_and_other_payers_go_on() {
    const STRANGER: &str = "254799000009";
    with_node_flags(&["--failed-attempts-per-payer", "3"]);
    let cluster = TestCluster::start("api-attempts", 1, 4);
    cluster.register_customer(ALICE);
    cluster.register_customer(BOB);
    cluster.fund(ALICE, "1000.00", "fund-alice");
    cluster.fund(BOB, "1000.00", "fund-bob");
    let url = format!("{}/v1/transfers", cluster.url(1));
    let wrong = |id: &str, from: &str, to: &str| {
        let mut body = send_money(id, from, to, "10.00");
        body["pin"] = json!("9999");
        body
    };
    for n in 1..=3 {
        let (status, answer) = cluster
            .post(&url, &wrong(&format!("try-{n}"), ALICE, BOB))
            .unwrap();
        assert_eq!(
            (status, answer["result"].as_str()),
            (200, Some("wrong_pin")),
            "try {n}"
        );
    }
    let response = reqwest::blocking::Client::new()
        .post(&url)
        .json(&send_money("try-right", ALICE, BOB, "10.00"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    let answer: Value = response.json().unwrap();
    assert_eq!(answer["result"], "too_many_attempts", "{answer}");
    assert_eq!(answer["retry_after_s"], retry_after);
    // Turned away, not submitted: the id was never used, and no money moved.
    let (status, _) = cluster
        .get(&format!("{}/v1/transfers/try-right", cluster.url(1)))
        .unwrap();
    assert_eq!(status, 404);
    assert_eq!(balance(&cluster, BOB), "1000.00");

    // Another payer, from the same address, is not held back.
    let (status, answer) = cluster
        .post(&url, &send_money("bob-pays", BOB, ALICE, "5.00"))
        .unwrap();
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("confirmed")),
        "{answer}"
    );

    // A payer nobody registered is budgeted too.
    for n in 1..=3 {
        let (status, answer) = cluster
            .post(&url, &wrong(&format!("stranger-{n}"), STRANGER, BOB))
            .unwrap();
        assert_ne!(status, 429, "stranger {n}: {answer}");
    }
    let (status, _) = cluster
        .post(&url, &wrong("stranger-4", STRANGER, BOB))
        .unwrap();
    assert_eq!(status, 429);
}

/// A gateway that reuses a request id for another payment must be told so — never answered
/// with the first payment's receipt (before, this answered 200 "confirmed" with it).
#[test]
fn a_request_id_reused_for_another_request_is_refused_and_moves_no_money() {
    const CAROL: &str = "254711000003";
    let cluster = TestCluster::start("api-reuse", 1, 4);
    for who in [ALICE, BOB, CAROL] {
        cluster.register_customer(who);
    }
    cluster.fund(ALICE, "1000.00", "fund-alice");
    let url = format!("{}/v1/transfers", cluster.url(1));
    let (status, first) = cluster
        .post(&url, &send_money("reused-1", ALICE, BOB, "100.00"))
        .unwrap();
    assert_eq!(
        (status, first["status"].as_str()),
        (200, Some("confirmed")),
        "{first}"
    );
    let mut other = send_money("reused-1", ALICE, CAROL, "250.00");
    other["pin"] = json!("9999");
    let (status, refused) = cluster.post(&url, &other).unwrap();
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["result"], "idempotency_conflict", "{refused}");
    assert_eq!(
        refused["error"],
        "request_id reused for a different request"
    );
    assert!(refused.get("transaction_id").is_none(), "{refused}");
    let (status, again) = cluster
        .post(&url, &send_money("reused-1", ALICE, BOB, "100.00"))
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        again["transaction_id"], first["transaction_id"],
        "the same request keeps its answer"
    );
    assert_eq!(balance(&cluster, CAROL), "0.00");
    assert_eq!(balance(&cluster, BOB), "100.00");
}

/// A transfer's status is read only by whoever proves they may: its payer (with the PIN),
/// staff whose key reads accounts, a business for its own payments (`daraja_payouts.rs`).
#[test]
fn a_transfers_status_answers_only_callers_who_prove_they_may_read_it() {
    let cluster = TestCluster::start("api-status-proof", 1, 4);
    for who in [ALICE, BOB] {
        cluster.register_customer(who);
    }
    cluster.fund(ALICE, "1000.00", "fund-alice");
    let (status, sent) = cluster
        .post(
            &format!("{}/v1/transfers", cluster.url(1)),
            &send_money("proof-1", ALICE, BOB, "10.00"),
        )
        .unwrap();
    assert_eq!(status, 200, "{sent}");
    let url = |from: &str| format!("{}/v1/transfers/proof-1?from={from}", cluster.url(1));
    let read = |url: String, header: Option<(&str, String)>| {
        let mut request = cluster.client.get(url);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let response = request.send().expect("the node answers");
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap_or(Value::Null))
    };
    let pin = |p: &str| Some(("X-Tuma-Pin", p.to_string()));
    let bearer = |t: &str| Some(("Authorization", format!("Bearer {t}")));

    let (status, body) = read(url(ALICE), None);
    assert_eq!(status, 401, "no proof: {body}");
    assert!(body.get("transaction_id").is_none(), "{body}");
    let (status, body) = read(url(ALICE), pin(PIN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["transaction_id"], sent["transaction_id"]);
    assert_eq!(body["balance"], sent["balance"]);
    let (status, _) = read(url(ALICE), pin("9999"));
    assert_eq!(status, 401, "a wrong PIN proves nothing");
    // Bob's own PIN proves Bob, and Bob did not pay it: not found, nothing told.
    let (status, body) = read(url(BOB), pin(PIN));
    assert_eq!(status, 404, "{body}");
    let (status, _) = read(format!("{}/v1/transfers/proof-1", cluster.url(1)), pin(PIN));
    assert_eq!(status, 400, "a PIN needs ?from=");
    // Staff: care reads it (without ?from= too); an operator's key may not.
    let key = |role: &str| {
        let (status, body) = cluster
            .post(
                &format!("{}/admin/v1/keys", cluster.url(1)),
                &json!({"role": role, "label": "status test"}),
            )
            .unwrap();
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().unwrap().to_string()
    };
    let (care, operator) = (key("care"), key("operator"));
    std::thread::sleep(Duration::from_millis(600)); // the key ring reaches the node
    let (status, body) = read(
        format!("{}/v1/transfers/proof-1", cluster.url(1)),
        bearer(&care),
    );
    assert_eq!(
        (status, &body["transaction_id"]),
        (200, &sent["transaction_id"]),
        "{body}"
    );
    let (status, _) = read(url(ALICE), bearer(&operator));
    assert_eq!(status, 403);
    let (status, _) = read(url(ALICE), bearer("tk_00000000_not-a-key"));
    assert_eq!(status, 401);
    // Wrong PINs count toward the lockout, like any PIN entered: guessing locks it.
    for _ in 0..4 {
        assert_eq!(read(url(ALICE), pin("9999")).0, 401);
    }
    let (_, account) = cluster
        .get(&format!("{}/admin/v1/accounts/{ALICE}", cluster.url(1)))
        .unwrap();
    assert_eq!(account["pin_locked"], true, "{account}");
    assert_ne!(
        read(url(ALICE), pin(PIN)).0,
        200,
        "locked: the right PIN no longer reads it"
    );
}

/// Public endpoints have budgets per phone number and per source address: past them, 429 with
/// `Retry-After`, before anything is done; the admin API is not budgeted.
#[test]
fn public_calls_past_their_budgets_are_answered_429_with_retry_after() {
    with_node_flags(&["--requests-per-msisdn", "5", "--requests-per-source", "40"]);
    let cluster = TestCluster::start("api-request-limits", 1, 2);
    for who in [ALICE, BOB] {
        cluster.register_customer(who);
    }
    let read = |who: &str| {
        let response = cluster
            .client
            .get(format!("{}/v1/accounts/{who}/balance", cluster.url(1)))
            .header("X-Tuma-Pin", PIN)
            .send()
            .expect("the node answers");
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let status = response.status().as_u16();
        (
            status,
            retry_after,
            response.json::<Value>().unwrap_or(Value::Null),
        )
    };
    for _ in 0..5 {
        assert_eq!(read(ALICE).0, 200);
    }
    let (status, retry_after, body) = read(ALICE);
    assert_eq!(status, 429, "{body}");
    assert!(
        retry_after.is_some_and(|s| (1..=60).contains(&s)),
        "{retry_after:?}"
    );
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("phone number")),
        "{body}"
    );
    assert_eq!(read(BOB).0, 200, "another number has its own budget");
    // The admin API is not budgeted: the care read of Alice's account still answers.
    let (status, _) = cluster
        .get(&format!("{}/admin/v1/accounts/{ALICE}", cluster.url(1)))
        .unwrap();
    assert_eq!(status, 200);
    // 7 public calls so far; the address's budget of 40 ends with the 40th.
    let mut answered = 7;
    let limited = loop {
        let other = format!("2547119{answered:05}");
        let (status, retry_after, body) = read(&other);
        if status == 429 {
            break (retry_after, body);
        }
        answered += 1;
        assert!(answered <= 40, "the address's budget never ran out");
    };
    assert_eq!(answered, 40, "the 41st call from the address is refused");
    assert!(limited.0.is_some(), "Retry-After");
    assert!(
        limited.1["error"]
            .as_str()
            .is_some_and(|e| e.contains("address")),
        "{}",
        limited.1
    );
    assert!(cluster.metric(1, "tuma_http_rate_limited_total") >= 2.0);
}

/// A node whose engine dies exits (status 70, logged) rather than keep HTTP and the peer port
/// up with nothing behind them.
#[test]
fn an_engine_panic_stops_the_node() {
    let mut cluster = TestCluster::start("engine-panic", 1, 2);
    let _ = cluster.post(
        &format!("{}/admin/v1/test/engine-panic", cluster.url(1)),
        &json!({}),
    );
    let code = cluster.wait_exit(1, Duration::from_secs(20));
    assert_eq!(
        code,
        Some(70),
        "the node kept running (or exited otherwise) after its engine died"
    );
    let log = std::fs::read_to_string(cluster.log_dir().join("node-1.log")).unwrap();
    assert!(log.contains("the engine thread panicked; exiting"), "{log}");
}

#[test]
fn a_panicking_actor_is_restarted_and_the_node_keeps_serving() {
    let cluster = TestCluster::start("api-panic", 1, 4);
    cluster.register_customer(ALICE);
    cluster.register_customer(BOB);
    cluster.fund(ALICE, "1000.00", "fund-alice");
    let node = cluster.url(1).to_string();
    let restarts = || {
        cluster.get(&format!("{node}/admin/v1/cluster")).unwrap().1["actor_restarts"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(restarts(), 0);
    let (status, _) = cluster
        .post(
            &format!("{node}/admin/v1/test/panic"),
            &json!({"account": ALICE}),
        )
        .unwrap();
    assert_eq!(status, 200);
    // The first attempt dies with the actor; the HTTP layer retries with the same request id
    // and the rebuilt actor serves it.
    let (status, answer) = cluster
        .post(
            &format!("{node}/v1/transfers"),
            &send_money("after-panic", ALICE, BOB, "50.00"),
        )
        .unwrap();
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("confirmed")),
        "{answer}"
    );
    assert!(answer["retries"].as_u64().unwrap() >= 1, "{answer}");
    assert_eq!(restarts(), 1);
    let metrics = cluster
        .client
        .get(format!("{node}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("tuma_actor_restarts_total") && l.ends_with(" 1")),
        "{metrics}"
    );
    assert_eq!(cluster.get(&format!("{node}/health")).unwrap().0, 200);
    assert_eq!(balance(&cluster, BOB), "50.00");
}

#[test]
fn a_node_with_the_wrong_secret_cannot_join_or_inject() {
    let cluster = TestCluster::start_with_secrets("wrong-secret", 3, 4, |id| {
        (id == 3).then(|| "a-different-cluster-secret".to_string())
    });
    cluster.register_customer(ALICE);
    cluster.register_customer(BOB);
    cluster.fund(ALICE, "500.00", "fund-alice");
    let (status, answer) = cluster
        .post(
            &format!("{}/v1/transfers", cluster.url(1)),
            &send_money("t1", ALICE, BOB, "100.00"),
        )
        .unwrap();
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("confirmed"))
    );
    // Node 3 never heard a leader nor applied an entry past the base checkpoint every group
    // starts from (index 5): its messages were refused and so were ours.
    let (_, status3) = cluster
        .get(&format!("{}/admin/v1/cluster", cluster.url(3)))
        .unwrap();
    for shard in status3["shards"].as_array().unwrap() {
        assert_eq!(shard["applied_index"], 5, "{shard}");
        assert_ne!(shard["role"], "leader", "{shard}");
    }
    let log = std::fs::read_to_string(cluster.log_dir().join("node-1.log")).unwrap();
    assert!(
        log.contains("peer authentication failed"),
        "node 1 should log refusing node 3"
    );
    assert_eq!(balance(&cluster, BOB), "100.00");
}

#[test]
fn bulk_registration_reports_each_row() {
    let cluster = TestCluster::start("api-bulk", 1, 4);
    cluster.register_customer(ALICE);
    let rows = json!({"customers": [
        {"msisdn": "254722000001", "name": "Bulk One", "id_number": "1", "pin": PIN},
        {"msisdn": ALICE, "name": "Already Here", "id_number": "2"},
        {"msisdn": "07123", "name": "Bad Number", "id_number": "3"},
        {"msisdn": "254722000002", "name": "Bulk Two", "id_number": "4"},
    ]});
    let (status, answer) = cluster
        .post(
            &format!("{}/admin/v1/customers/bulk", cluster.url(1)),
            &rows,
        )
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["created"].as_u64(), answer["existing"].as_u64()),
        (Some(2), Some(1)),
        "{answer}"
    );
    let failed = answer["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["row"], 2);
    assert!(
        failed[0]["error"].as_str().unwrap().contains("msisdn"),
        "{answer}"
    );
    // The imported customer with a PIN can transact once funded; the one without cannot.
    cluster.fund("254722000001", "100.00", "fund-bulk-1");
    let (_, ok) = cluster
        .post(
            &format!("{}/v1/transfers", cluster.url(1)),
            &send_money("bulk-t1", "254722000001", ALICE, "10.00"),
        )
        .unwrap();
    assert_eq!(ok["status"], "confirmed", "{ok}");
    cluster.fund("254722000002", "100.00", "fund-bulk-2");
    let (_, no_pin) = cluster
        .post(
            &format!("{}/v1/transfers", cluster.url(1)),
            &send_money("bulk-t2", "254722000002", ALICE, "10.00"),
        )
        .unwrap();
    assert_eq!(no_pin["result"], "no_pin", "{no_pin}");
    let empty = json!({"customers": []});
    assert_eq!(
        cluster
            .post(
                &format!("{}/admin/v1/customers/bulk", cluster.url(1)),
                &empty
            )
            .unwrap()
            .0,
        400
    );
}

#[test]
fn care_reverses_a_confirmed_transfer_once() {
    let cluster = TestCluster::start("api-reversal", 1, 4);
    cluster.register_customer(ALICE);
    cluster.register_customer(BOB);
    cluster.fund(ALICE, "1000.00", "fund-alice");
    let node = cluster.url(1).to_string();
    let (_, sent) = cluster
        .post(
            &format!("{node}/v1/transfers"),
            &send_money("to-reverse", ALICE, BOB, "500.00"),
        )
        .unwrap();
    assert_eq!(sent["status"], "confirmed", "{sent}");
    let txn = sent["transaction_id"].as_str().unwrap().to_string();
    assert_eq!(balance(&cluster, BOB), "500.00");
    let (status, reversed) = cluster
        .post(
            &format!("{node}/admin/v1/reversals"),
            &json!({"request_id": "rev-1", "transaction_id": txn}),
        )
        .unwrap();
    assert_eq!(
        (status, reversed["status"].as_str()),
        (200, Some("confirmed")),
        "{reversed}"
    );
    assert_eq!(balance(&cluster, BOB), "0.00");
    assert_eq!(
        balance(&cluster, ALICE),
        "993.00",
        "the original fee (7.00) is not refunded"
    );
    let (status, again) = cluster
        .post(
            &format!("{node}/admin/v1/reversals"),
            &json!({"request_id": "rev-2", "transaction_id": txn}),
        )
        .unwrap();
    assert_eq!(
        (status, again["result"].as_str()),
        (200, Some("not_reversible")),
        "{again}"
    );
    let (status, bad) = cluster
        .post(
            &format!("{node}/admin/v1/reversals"),
            &json!({"request_id": "rev-3", "transaction_id": "nope"}),
        )
        .unwrap();
    assert_eq!(
        (status, bad["field"].as_str()),
        (400, Some("transaction_id"))
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    with_node_flags(&["--log-format", "json"]);
    let cluster = TestCluster::start("json-logs", 1, 2);
    cluster.register_customer(ALICE);
    let log = std::fs::read_to_string(cluster.log_dir().join("node-1.log")).expect("node log");
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(object["level"].is_string(), "{line}");
        assert!(object["timestamp"].is_string(), "{line}");
        assert!(object["fields"].is_object(), "{line}");
    }
}

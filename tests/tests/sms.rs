//! Confirmation texts through real SMS gateway interfaces (stand-ins that speak Kannel's
//! `sendsms` and Africa's Talking's messaging API): a gateway outage holds up no money, the
//! texts wait in the spool and go out when the gateway is back, and delivery reports — sent to
//! any node — show up in `GET /admin/v1/sms`.

use std::time::{Duration, Instant};

use serde_json::Value;
use tuma_tests::fake_gateway::{FakeGateway, Style};
use tuma_tests::{send_money, with_node_flags, TestCluster};

const ALICE: &str = "254711000001";
const BOB: &str = "254711000002";

/// Node flags for an Africa's Talking gateway at `url` (username `sandbox`, sender `MPESA`).
fn africastalking_flags(url: &str, api_key: &str) {
    with_node_flags(&[
        "--sms-gateway",
        "africastalking",
        "--sms-gateway-url",
        url,
        "--sms-username",
        "sandbox",
        "--sms-secret",
        api_key,
        "--sms-from",
        "MPESA",
    ]);
}

/// Every text to `msisdn`, as any node gathers them from the cluster.
fn texts(cluster: &TestCluster, node: usize, msisdn: &str) -> Vec<Value> {
    let (status, body) = cluster
        .get(&format!(
            "{}/admin/v1/sms?msisdn={msisdn}",
            cluster.url(node)
        ))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body["texts"].as_array().unwrap().clone()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pay_bob(cluster: &TestCluster, id: &str) {
    let (status, body) = cluster
        .post(
            &format!("{}/v1/transfers", cluster.url(1)),
            &send_money(id, ALICE, BOB, "100.00"),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["status"], "confirmed",
        "money moves whatever the gateway does: {body}"
    );
}

#[test]
fn texts_wait_out_an_africastalking_outage_and_reports_from_any_node_show() {
    let gateway = FakeGateway::start(Style::AfricasTalking);
    gateway.set_up(false);
    africastalking_flags(&gateway.url, "test-api-key");
    let cluster = TestCluster::start("sms-at", 3, 4);
    cluster.register_customer(ALICE);
    cluster.register_customer(BOB);
    cluster.fund(ALICE, "1000.00", "fund-alice");
    pay_bob(&cluster, "sms-1");
    pay_bob(&cluster, "sms-2");

    // The gateway is down: the texts wait, queued, and the gateway was tried.
    wait_until("two queued texts for Bob", Duration::from_secs(20), || {
        texts(&cluster, 2, BOB)
            .iter()
            .filter(|t| t["status"] == "queued")
            .count()
            == 2
    });
    wait_until("a refused attempt", Duration::from_secs(10), || {
        gateway.received().iter().any(|r| r.answered == 503)
    });

    // Back up: both go out, in the gateway's format, and are recorded as accepted.
    gateway.set_up(true);
    wait_until("Bob's texts accepted", Duration::from_secs(90), || {
        let bobs = texts(&cluster, 3, BOB);
        bobs.len() == 2 && bobs.iter().all(|t| t["status"] == "accepted")
    });
    let accepted: Vec<_> = gateway
        .received()
        .into_iter()
        .filter(|r| r.answered == 201 && r.fields["to"] == format!("+{BOB}"))
        .collect();
    assert!(accepted.len() >= 2, "{accepted:?}");
    for request in &accepted {
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/version1/messaging")
        );
        assert_eq!(request.headers["apikey"], "test-api-key");
        assert_eq!(request.fields["username"], "sandbox");
        assert_eq!(request.fields["from"], "MPESA");
        assert!(
            request.fields["message"].contains("Confirmed. You have received Ksh100.00"),
            "{}",
            request.fields["message"]
        );
    }

    // A delivery report, posted by the gateway to whichever node it likes.
    let bobs = texts(&cluster, 1, BOB);
    let gateway_ref = bobs[0]["gateway_ref"].as_str().unwrap().to_string();
    let report = cluster
        .client
        .post(format!("{}/sms/v1/dlr", cluster.url(2)))
        .form(&[
            ("id", gateway_ref.as_str()),
            ("status", "Success"),
            ("phoneNumber", "+254711000002"),
        ])
        .send()
        .unwrap();
    assert_eq!(report.status(), 200);
    // Viewed from another node than the one the report reached (and whichever sent it).
    let texts_now = texts(&cluster, 1, BOB);
    let reported = texts_now
        .iter()
        .find(|t| t["gateway_ref"] == gateway_ref.as_str())
        .unwrap();
    assert_eq!(reported["status"], "delivered", "{reported}");
    let (status, body) = cluster
        .get(&format!("{}/admin/v1/sms?msisdn=0711", cluster.url(1)))
        .unwrap();
    assert_eq!(status, 400, "{body}");
    // Malformed reports and incoming texts are refused, naming what is missing.
    let no_status = cluster
        .client
        .post(format!("{}/sms/v1/dlr", cluster.url(1)))
        .form(&[("id", gateway_ref.as_str())])
        .send()
        .unwrap();
    assert_eq!(no_status.status(), 400);
    assert!(no_status.text().unwrap().contains("id and status"));
    let no_text = cluster
        .client
        .post(format!("{}/sms/v1/inbound", cluster.url(1)))
        .form(&[("from", "+254711000001"), ("to", "456")])
        .send()
        .unwrap();
    assert_eq!(no_text.status(), 400);
    assert!(no_text.text().unwrap().contains("from, to and text"));
}

#[test]
fn kannel_gets_sendsms_requests_with_a_report_url_that_names_the_text() {
    let gateway = FakeGateway::start(Style::Kannel);
    with_node_flags(&[
        "--sms-gateway",
        "kannel",
        "--sms-gateway-url",
        &gateway.url,
        "--sms-username",
        "tuma",
        "--sms-secret",
        "kannel-pass",
    ]);
    let cluster = TestCluster::start("sms-kannel", 3, 4);
    cluster.register_customer(ALICE);
    cluster.register_customer(BOB);
    cluster.fund(ALICE, "1000.00", "fund-alice");
    pay_bob(&cluster, "kannel-1");
    wait_until("Bob's text at Kannel", Duration::from_secs(30), || {
        gateway
            .received()
            .iter()
            .any(|r| r.fields.get("to").map(String::as_str) == Some(BOB))
    });
    let request = gateway
        .received()
        .into_iter()
        .find(|r| r.fields.get("to").map(String::as_str) == Some(BOB))
        .unwrap();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("GET", "/cgi-bin/sendsms")
    );
    assert_eq!(request.fields["username"], "tuma");
    assert_eq!(request.fields["password"], "kannel-pass");
    assert!(request.fields["text"].contains("You have received Ksh100.00"));
    let dlr_url = request.fields["dlr-url"].clone();
    assert!(
        dlr_url.contains("/sms/v1/dlr?gateway=kannel&id=tuma-") && dlr_url.ends_with("status=%d"),
        "{dlr_url}"
    );
    // Kannel calls the report URL back with %d filled in: 1 is delivered.
    let callback = dlr_url.replace("%d", "1");
    let answer = cluster.client.get(&callback).send().unwrap();
    assert_eq!(answer.status(), 200);
    wait_until("the report in the view", Duration::from_secs(10), || {
        texts(&cluster, 2, BOB)
            .iter()
            .any(|t| t["status"] == "delivered")
    });
}

/// Every text the gateway accepted for `msisdn`.
fn texts_at_gateway(gateway: &FakeGateway, msisdn: &str) -> Vec<String> {
    gateway
        .received()
        .into_iter()
        .filter(|r| {
            r.answered == 201
                && r.fields.get("to").map(String::as_str) == Some(&format!("+{msisdn}"))
        })
        .map(|r| r.fields["message"].clone())
        .collect()
}

fn wait_for_text(gateway: &FakeGateway, msisdn: &str, containing: &str) -> String {
    let mut found = None;
    wait_until(
        &format!("a text to {msisdn} with {containing:?}"),
        Duration::from_secs(30),
        || {
            found = texts_at_gateway(gateway, msisdn)
                .into_iter()
                .find(|t| t.contains(containing));
            found.is_some()
        },
    );
    found.unwrap()
}

fn text_in(cluster: &TestCluster, node: usize, from: &str, to: &str, text: &str) {
    let response = cluster
        .client
        .post(format!("{}/sms/v1/inbound", cluster.url(node)))
        .form(&[
            ("from", format!("+{from}")),
            ("to", to.to_string()),
            ("text", text.to_string()),
            ("date", "2026-12-01 10:00:00".into()),
            ("id", "ATXid_in".into()),
        ])
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn a_confirmation_forwarded_to_456_becomes_a_request_care_approves_or_declines() {
    let gateway = FakeGateway::start(Style::AfricasTalking);
    africastalking_flags(&gateway.url, "key");
    let cluster = TestCluster::start("sms-456", 3, 4);
    cluster.register_customer(ALICE);
    cluster.register_customer(BOB);
    cluster.fund(ALICE, "1000.00", "fund-alice");
    pay_bob(&cluster, "rev-1");
    let first = wait_for_text(&gateway, ALICE, "Confirmed. Ksh100.00 sent to");
    let first_txn = first.split_whitespace().next().unwrap().to_string();

    // Alice forwards it to 456: a request is filed and she is told.
    text_in(&cluster, 2, ALICE, "456", &format!("Fwd: {first}"));
    wait_for_text(
        &gateway,
        ALICE,
        &format!("Your request to reverse {first_txn} of Ksh100.00"),
    );
    // Bob cannot ask for Alice's money back; other texts get help.
    text_in(&cluster, 3, BOB, "456", &first);
    wait_for_text(&gateway, BOB, &format!("Only the sender of {first_txn}"));
    text_in(&cluster, 1, BOB, "22334", "balance please");
    wait_for_text(&gateway, BOB, "forward its confirmation SMS to 456");

    let (status, open) = cluster
        .get(&format!("{}/admin/v1/reversal-requests", cluster.url(3)))
        .unwrap();
    assert_eq!(status, 200, "{open}");
    let requests = open["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{open}");
    assert_eq!(requests[0]["transaction_id"], first_txn.as_str());
    assert_eq!(requests[0]["requested_by"], ALICE);
    assert_eq!(requests[0]["amount"], "100.00");

    // Care approves: the money comes back (not the fee) and Alice gets the reversal's text.
    let url = format!(
        "{}/admin/v1/reversal-requests/{first_txn}/approve",
        cluster.url(1)
    );
    let (status, body) = cluster.post(&url, &serde_json::json!({})).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "confirmed", "{body}");
    wait_for_text(
        &gateway,
        ALICE,
        &format!("Reversal of transaction {first_txn}"),
    );
    let (status, _) = cluster.post(&url, &serde_json::json!({})).unwrap();
    assert_eq!(status, 404, "a request is decided once");

    // A second transfer's request is declined: closed, and Alice told.
    pay_bob(&cluster, "rev-2");
    let second = wait_until_second_confirmation(&gateway, &first_txn);
    let second_txn = second.split_whitespace().next().unwrap().to_string();
    text_in(&cluster, 1, ALICE, "456", &second);
    wait_for_text(
        &gateway,
        ALICE,
        &format!("Your request to reverse {second_txn}"),
    );
    let url = format!(
        "{}/admin/v1/reversal-requests/{second_txn}/decline",
        cluster.url(2)
    );
    let (status, body) = cluster.post(&url, &serde_json::json!({})).unwrap();
    assert_eq!(status, 200, "{body}");
    wait_for_text(
        &gateway,
        ALICE,
        &format!("{second_txn} of Ksh100.00 was declined"),
    );
    let (_, open) = cluster
        .get(&format!("{}/admin/v1/reversal-requests", cluster.url(2)))
        .unwrap();
    assert_eq!(open["requests"].as_array().unwrap().len(), 0, "{open}");
    let audit = cluster.quiet_audit(Duration::from_secs(20));
    assert_eq!(audit["balanced"], true, "{audit}");
}

/// Alice's confirmation of a transfer other than `first_txn`.
fn wait_until_second_confirmation(gateway: &FakeGateway, first_txn: &str) -> String {
    let mut found = None;
    wait_until(
        "Alice's second confirmation",
        Duration::from_secs(30),
        || {
            found = texts_at_gateway(gateway, ALICE)
                .into_iter()
                .find(|t| t.contains("Confirmed. Ksh100.00 sent to") && !t.starts_with(first_txn));
            found.is_some()
        },
    );
    found.unwrap()
}

//! History on a real node: statements by page, the mini statement, care's statement of any
//! account and its receipt lookup, and a request id reused after the idempotency window refused
//! as `request_id_expired` rather than taken as a second transfer.

use std::time::Duration;

use serde_json::{json, Value};
use tuma_tests::{send_money, with_node_flags, TestCluster};

const ALICE: &str = "254711000001";
const BOB: &str = "254711000002";

fn lines(page: &Value) -> Vec<String> {
    page["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("no lines in {page}"))
        .iter()
        .map(|l| l["request_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn statements_page_through_history_and_an_expired_request_id_is_refused() {
    with_node_flags(&["--idempotency-window", "2s"]);
    let cluster = TestCluster::start("history", 1, 4);
    cluster.register_customer(ALICE);
    cluster.register_customer(BOB);
    cluster.fund(ALICE, "1000.00", "fund-alice");
    let url = format!("{}/v1/transfers", cluster.url(1));
    for n in 1..=12 {
        let (status, answer) = cluster
            .post(&url, &send_money(&format!("h-{n}"), ALICE, BOB, "1.00"))
            .unwrap();
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("confirmed"))
        );
    }
    // A wrong PIN is answered as before and leaves no line.
    let mut wrong = send_money("h-wrong", ALICE, BOB, "1.00");
    wrong["pin"] = json!("9999");
    let (status, answer) = cluster.post(&url, &wrong).unwrap();
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("wrong_pin"))
    );

    let base = format!("{}/v1/accounts/{ALICE}", cluster.url(1));
    let (status, first) = cluster.get(&format!("{base}/statement?limit=5")).unwrap();
    assert_eq!(status, 200, "{first}");
    assert_eq!(lines(&first), ["h-12", "h-11", "h-10", "h-9", "h-8"]);
    assert_eq!(first["lines"][0]["amount"], "-1.00");
    let before = first["next_before"]
        .as_u64()
        .expect("a cursor after a full page");
    let (_, second) = cluster
        .get(&format!("{base}/statement?limit=5&before={before}"))
        .unwrap();
    assert_eq!(lines(&second), ["h-7", "h-6", "h-5", "h-4", "h-3"]);
    let before = second["next_before"].as_u64().unwrap();
    let (_, last) = cluster
        .get(&format!("{base}/statement?limit=5&before={before}"))
        .unwrap();
    assert_eq!(lines(&last), ["h-2", "h-1", "fund-alice"]);
    assert_eq!(last["next_before"], Value::Null);

    let (status, mini) = cluster.get(&format!("{base}/mini-statement")).unwrap();
    assert_eq!(status, 200);
    assert_eq!(lines(&mini), ["h-12", "h-11", "h-10", "h-9", "h-8"]);

    let (status, bad) = cluster.get(&format!("{base}/statement?limit=0")).unwrap();
    assert_eq!((status, bad["field"].as_str()), (400, Some("limit")));

    let (status, care) = cluster
        .get(&format!(
            "{}/admin/v1/accounts/{BOB}/statement?limit=20",
            cluster.url(1)
        ))
        .unwrap();
    assert_eq!(status, 200, "{care}");
    assert_eq!(lines(&care).len(), 12);
    assert_eq!(care["lines"][0]["amount"], "1.00");

    // The receipt resolves from the history.
    let (_, status_answer) = cluster
        .get(&format!("{}/v1/transfers/h-1", cluster.url(1)))
        .unwrap();
    let txn = status_answer["transaction_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, receipt) = cluster
        .get(&format!("{}/admin/v1/transactions/{txn}", cluster.url(1)))
        .unwrap();
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["rows"][0]["side"], "payer");
    assert_eq!(receipt["rows"][0]["request_id"], "h-1");
    assert_eq!(receipt["rows"][0]["amount"], "-1.00");
    let (status, _) = cluster
        .get(&format!(
            "{}/admin/v1/transactions/UAB0000000",
            cluster.url(1)
        ))
        .unwrap();
    assert!(status == 400 || status == 404, "{status}");

    // Past the window the id is refused as expired, not taken as a second transfer.
    std::thread::sleep(Duration::from_millis(2_500));
    let (status, again) = cluster
        .post(&url, &send_money("h-1", ALICE, BOB, "1.00"))
        .unwrap();
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["result"], "request_id_expired");
    let (_, alice) = cluster
        .get(&format!("{}/admin/v1/accounts/{ALICE}", cluster.url(1)))
        .unwrap();
    assert_eq!(alice["balance"], "988.00", "{alice}");
}

//! Scoped API keys on real nodes: every admin endpoint × every role does exactly what the role
//! table says (a key of another role is answered 403, no key or a wrong one 401), keys work on
//! every node, and a revoked or rotated key stops working on every node within a second. The
//! audit log then holds a record of every call a key made — who, what, from which node, with
//! the status it got — and none of the secrets the calls carried.
//!
//! The table below is the contract, written independently of the node's own table
//! (`node/src/http/access.rs`): a change to either that the other does not make fails here.

use std::time::{Duration, Instant};

use reqwest::blocking::RequestBuilder;
use reqwest::Method;
use serde_json::{json, Value};
use tuma_tests::{TestCluster, TOKEN};

const OPERATOR: &str = "operator";
const CARE: &str = "care";
const AUDITOR: &str = "auditor";

/// One endpoint: method, path, body, and the roles that may call it.
struct Endpoint {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    roles: &'static [&'static str],
}

fn endpoint(
    method: Method,
    path: &'static str,
    body: Option<Value>,
    roles: &'static [&'static str],
) -> Endpoint {
    Endpoint {
        method,
        path,
        body,
        roles,
    }
}

/// Every admin endpoint. Bodies are plausible but aimed at nothing that matters: an allowed
/// call may succeed or be refused for its content (400, 404, 409…), never 401 or 403.
fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    let customer = json!({"msisdn": "254799000001", "name": "Role Test", "id_number": "12345678", "pin": "1234"});
    vec![
        endpoint(
            M::POST,
            "/admin/v1/customers",
            Some(customer.clone()),
            &[OPERATOR],
        ),
        endpoint(
            M::POST,
            "/admin/v1/customers/bulk",
            Some(json!({"customers": [customer]})),
            &[OPERATOR],
        ),
        endpoint(
            M::POST,
            "/admin/v1/agents",
            Some(
                json!({"agent_number": "300999", "name": "A", "phone": "254799000002", "id_number": "1", "pin": "1234"}),
            ),
            &[OPERATOR],
        ),
        endpoint(
            M::POST,
            "/admin/v1/businesses",
            Some(json!({"shortcode": "999999", "name": "B"})),
            &[OPERATOR],
        ),
        endpoint(
            M::POST,
            "/admin/v1/float",
            Some(json!({"request_id": "role-float", "account": "254799000009", "amount": "1.00"})),
            &[OPERATOR],
        ),
        endpoint(
            M::PUT,
            "/admin/v1/businesses/999999/initiators/api",
            Some(json!({"password": "initiator-password"})),
            &[OPERATOR],
        ),
        endpoint(
            M::PUT,
            "/admin/v1/menus/customer-en",
            Some(json!("not a menu")),
            &[OPERATOR],
        ),
        endpoint(
            M::POST,
            "/admin/v1/members",
            Some(json!({"peer_addr": "0.0.0.0:1"})),
            &[OPERATOR],
        ),
        endpoint(M::DELETE, "/admin/v1/members/99", None, &[OPERATOR]),
        endpoint(M::GET, "/admin/v1/cluster", None, &[OPERATOR, AUDITOR]),
        endpoint(M::GET, "/admin/v1/members", None, &[OPERATOR, AUDITOR]),
        endpoint(M::GET, "/admin/v1/menus", None, &[OPERATOR, AUDITOR]),
        endpoint(
            M::GET,
            "/admin/v1/menus/customer-en",
            None,
            &[OPERATOR, AUDITOR],
        ),
        endpoint(M::GET, "/admin/v1/ussd/events", None, &[OPERATOR, AUDITOR]),
        endpoint(
            M::GET,
            "/admin/v1/sms?msisdn=254799000009",
            None,
            &[OPERATOR, AUDITOR],
        ),
        endpoint(M::GET, "/admin/v1/sms/reports", None, &[OPERATOR, AUDITOR]),
        endpoint(M::GET, "/admin/v1/audit", None, &[OPERATOR, AUDITOR]),
        endpoint(
            M::GET,
            "/admin/v1/float/approvals",
            None,
            &[OPERATOR, AUDITOR],
        ),
        endpoint(
            M::POST,
            "/admin/v1/float/approvals/none/approve",
            None,
            &[OPERATOR],
        ),
        endpoint(
            M::POST,
            "/admin/v1/float/approvals/none/decline",
            None,
            &[OPERATOR],
        ),
        endpoint(
            M::POST,
            "/admin/v1/pins/unlock",
            Some(json!({"msisdn": "254799000009"})),
            &[CARE],
        ),
        endpoint(
            M::POST,
            "/admin/v1/pins/reset",
            Some(json!({"msisdn": "254799000009", "new_pin": "4321"})),
            &[CARE],
        ),
        endpoint(
            M::POST,
            "/admin/v1/reversals",
            Some(json!({"transaction_id": "UKS7S36UAT", "reason": "x"})),
            &[CARE],
        ),
        endpoint(
            M::POST,
            "/admin/v1/reversal-requests/UKS7S36UAT/approve",
            None,
            &[CARE],
        ),
        endpoint(
            M::POST,
            "/admin/v1/reversal-requests/UKS7S36UAT/decline",
            None,
            &[CARE],
        ),
        endpoint(
            M::POST,
            "/admin/v1/businesses/999999/wallets/moves",
            Some(json!({"from": "utility", "to": "working", "amount": "1.00"})),
            &[CARE],
        ),
        endpoint(
            M::GET,
            "/admin/v1/accounts/254799000009",
            None,
            &[CARE, AUDITOR],
        ),
        endpoint(
            M::GET,
            "/admin/v1/accounts/254799000009/statement",
            None,
            &[CARE, AUDITOR],
        ),
        endpoint(
            M::GET,
            "/admin/v1/transactions/UKS7S36UAT",
            None,
            &[CARE, AUDITOR],
        ),
        endpoint(
            M::GET,
            "/admin/v1/reversal-requests",
            None,
            &[CARE, AUDITOR],
        ),
        endpoint(
            M::GET,
            "/admin/v1/businesses/999999/payouts/x",
            None,
            &[CARE, AUDITOR],
        ),
        endpoint(M::GET, "/admin/v1/keys", None, &[AUDITOR]),
        endpoint(M::GET, "/admin/v1/audit-log?limit=5", None, &[AUDITOR]),
        endpoint(
            M::POST,
            "/admin/v1/backup/pause",
            Some(json!({"seconds": 1})),
            &[OPERATOR],
        ),
        endpoint(M::POST, "/admin/v1/backup/resume", None, &[OPERATOR]),
        endpoint(M::GET, "/admin/v1/backup/shards/0/state", None, &[OPERATOR]),
        endpoint(
            M::GET,
            "/admin/v1/backup/shards/0/rows?history_below=0&audit_below=0",
            None,
            &[OPERATOR],
        ),
        endpoint(M::GET, "/admin/v1/backup/documents", None, &[OPERATOR]),
        endpoint(
            M::POST,
            "/admin/v1/keys",
            Some(json!({"role": "auditor", "label": "x"})),
            &[],
        ),
        endpoint(M::POST, "/admin/v1/keys/00000000/rotate", None, &[]),
        endpoint(M::DELETE, "/admin/v1/keys/00000000", None, &[]),
        endpoint(M::POST, "/admin/v1/test/panic", None, &[]),
    ]
}

fn request(cluster: &TestCluster, node: usize, e: &Endpoint, token: &str) -> RequestBuilder {
    let url = format!("{}{}", cluster.url(node), e.path);
    let mut request = cluster.client.request(e.method.clone(), url);
    if !token.is_empty() {
        request = request.bearer_auth(token);
    }
    match &e.body {
        Some(Value::String(text)) => request.body(text.clone()),
        Some(body) => request.json(body),
        None => request,
    }
}

fn status(cluster: &TestCluster, node: usize, e: &Endpoint, token: &str) -> u16 {
    request(cluster, node, e, token)
        .send()
        .expect("the node answers")
        .status()
        .as_u16()
}

/// Creates a key with the bootstrap token; returns (id, token).
fn create_key(cluster: &TestCluster, role: &str) -> (String, String) {
    let (code, body) = cluster
        .post(
            &format!("{}/admin/v1/keys", cluster.url(1)),
            &json!({"role": role, "label": format!("{role} desk")}),
        )
        .expect("the node answers");
    assert_eq!(code, 201, "{body}");
    let token = body["key"]
        .as_str()
        .expect("the key, shown once")
        .to_string();
    (body["id"].as_str().expect("an id").to_string(), token)
}

fn audit_endpoint() -> Endpoint {
    endpoint(Method::GET, "/admin/v1/cluster", None, &[OPERATOR, AUDITOR])
}

/// Waits until `token` gets `wanted` (or not: `!=`) from `/admin/v1/cluster` on every node;
/// returns how long it took.
fn until_every_node(
    cluster: &TestCluster,
    token: &str,
    accepted: bool,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    let probe = audit_endpoint();
    for node in 1..=3 {
        loop {
            let code = status(cluster, node, &probe, token);
            if (code != 401) == accepted {
                break;
            }
            assert!(
                started.elapsed() < within,
                "node {node} still answers {code} after {:?}",
                started.elapsed()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    started.elapsed()
}

#[test]
fn every_role_can_do_exactly_what_its_table_says_on_every_node() {
    let cluster = TestCluster::start("roles", 3, 4);
    let keys: Vec<(&str, String, String)> = [OPERATOR, CARE, AUDITOR]
        .into_iter()
        .map(|role| {
            let (id, token) = create_key(&cluster, role);
            (role, id, token)
        })
        .collect();
    for (_, _, token) in &keys {
        until_every_node(&cluster, token, true, Duration::from_secs(5));
    }
    let mut checked = 0;
    let mut calls = Vec::new();
    let endpoints = endpoints();
    for (i, e) in endpoints.iter().enumerate() {
        let node = 1 + i % 3;
        for (role, id, token) in &keys {
            let code = status(&cluster, node, e, token);
            calls.push((format!("key:{id}"), role.to_string(), e, node, code));
            if e.roles.contains(role) {
                assert!(
                    code != 401 && code != 403,
                    "{role} may {} {} but got {code}",
                    e.method,
                    e.path
                );
            } else {
                assert_eq!(code, 403, "{role} may not {} {}", e.method, e.path);
            }
            checked += 1;
        }
        assert_eq!(
            status(&cluster, node, e, ""),
            401,
            "no key: {} {}",
            e.method,
            e.path
        );
        let wrong = "tk_0badc0de_not-a-real-secret";
        assert_eq!(
            status(&cluster, node, e, wrong),
            401,
            "{} {}",
            e.method,
            e.path
        );
    }
    assert_eq!(checked, endpoints.len() * 3);
    // The bootstrap key may do everything a role may (and manage keys).
    let listed = cluster
        .get(&format!("{}/admin/v1/keys", cluster.url(2)))
        .expect("the node answers");
    assert_eq!(listed.0, 200);
    let listed = listed.1["keys"].as_array().expect("keys").clone();
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .iter()
            .all(|k| k.get("key").is_none() && k.get("digest").is_none()),
        "neither secrets nor digests are listed: {listed:?}"
    );

    // Every call a key made is in the audit log, as it went; no call without a key is.
    let auditor = &keys[2].2;
    let log = cluster.audit_log(auditor);
    for (actor, role, e, node, code) in &calls {
        let action = format!(
            "{} {}",
            e.method,
            e.path.split('?').next().unwrap_or(e.path)
        );
        let found = log.iter().any(|r| {
            r["actor"] == actor.as_str()
                && r["role"] == role.as_str()
                && r["action"] == action.as_str()
                && r["source"]
                    .as_str()
                    .is_some_and(|s| s.ends_with(&format!("via node {node}")))
                && r["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with(&code.to_string()))
        });
        assert!(
            found,
            "no record of {role} {action} → {code} on node {node}"
        );
    }
    assert!(
        log.iter().all(|r| {
            let actor = r["actor"].as_str().unwrap_or("");
            actor == "bootstrap" || actor.starts_with("key:")
        }),
        "only named callers are recorded"
    );
    // What a call's body and answer could have put in a record: its target and outcome.
    let text: String = log
        .iter()
        .flat_map(|r| [&r["target"], &r["outcome"]])
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("msisdn=254799000009"),
        "targets name the account"
    );
    for secret in ["pin=", "4321", "initiator-password", "not-a-real-secret"] {
        assert!(!text.contains(secret), "the log holds a secret: {secret}");
    }
    for (_, _, token) in &keys {
        assert!(!text.contains(token.as_str()), "the log holds a key");
    }
    // The export pages back the same records, one JSON object per line.
    let lines = cluster
        .client
        .get(format!(
            "{}/admin/v1/audit-log?format=jsonl&limit=1000",
            cluster.url(3)
        ))
        .bearer_auth(auditor)
        .send()
        .expect("the node answers")
        .text()
        .expect("text");
    assert!(lines.lines().count() >= calls.len());
    for line in lines.lines() {
        let record: Value = serde_json::from_str(line).expect("one record a line");
        assert!(
            record["seq"].is_u64() && record["at"].is_string(),
            "{record}"
        );
    }
}

#[test]
fn a_revoked_or_rotated_key_stops_working_on_every_node_within_a_second() {
    let cluster = TestCluster::start("keys-revoke", 3, 4);
    let (id, token) = create_key(&cluster, AUDITOR);
    until_every_node(&cluster, &token, true, Duration::from_secs(5));
    let revoked = cluster
        .client
        .delete(format!("{}/admin/v1/keys/{id}", cluster.url(1)))
        .bearer_auth(TOKEN)
        .send()
        .expect("the node answers");
    assert_eq!(revoked.status(), 200);
    let took = until_every_node(&cluster, &token, false, Duration::from_secs(1));
    eprintln!("revoked key refused on every node after {took:?}");

    let (id, old) = create_key(&cluster, OPERATOR);
    until_every_node(&cluster, &old, true, Duration::from_secs(5));
    let (code, rotated) = cluster
        .post(
            &format!("{}/admin/v1/keys/{id}/rotate", cluster.url(2)),
            &json!(null),
        )
        .expect("the node answers");
    assert_eq!(code, 201, "{rotated}");
    assert_eq!(rotated["role"], OPERATOR);
    let new = rotated["key"].as_str().expect("the new key").to_string();
    let took = until_every_node(&cluster, &old, false, Duration::from_secs(1));
    eprintln!("rotated-out key refused on every node after {took:?}");
    until_every_node(&cluster, &new, true, Duration::from_secs(1));
    // Revoking again is a conflict; an unknown key is not found.
    let again = cluster
        .client
        .delete(format!("{}/admin/v1/keys/{id}", cluster.url(3)))
        .bearer_auth(TOKEN)
        .send()
        .expect("the node answers");
    assert_eq!(again.status(), 409);
    let unknown = cluster
        .client
        .delete(format!("{}/admin/v1/keys/ffffffff", cluster.url(3)))
        .bearer_auth(TOKEN)
        .send()
        .expect("the node answers");
    assert_eq!(unknown.status(), 404);
}

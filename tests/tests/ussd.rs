//! The USSD channel on a real 3-node cluster, through the gateway callback as Africa's Talking
//! sends it: every step of a session goes to a node picked at random, so sessions continue
//! wherever their next step lands. Every customer and agent flow, the error screens, a menu
//! reloaded mid-session, and a node killed mid-session (nothing doubled, nothing lost).

use std::time::Duration;

use serde_json::{json, Value};
use tuma_tests::{TestCluster, PIN, TOKEN};

const ALICE: &str = "254711000001";
const BOB: &str = "254711000002";
const CAROL: &str = "254711000003";
const AGENT_PHONE: &str = "254722000009";
const STRANGER: &str = "254733999999";
const CUSTOMER_CODE: &str = "*334#";
const AGENT_CODE: &str = "*335#";

fn local(msisdn: &str) -> String {
    format!("0{}", &msisdn[3..])
}

/// A gateway: picks each step's node from a seeded sequence.
struct Gateway<'c> {
    cluster: &'c TestCluster,
    state: u64,
    sessions: u64,
}

impl<'c> Gateway<'c> {
    fn new(cluster: &'c TestCluster, seed: u64) -> Gateway<'c> {
        Gateway {
            cluster,
            state: seed,
            sessions: 0,
        }
    }

    fn any_node(&mut self) -> usize {
        let running = self.cluster.running();
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        running[(self.state >> 33) as usize % running.len()]
    }

    fn new_session(&mut self) -> String {
        self.sessions += 1;
        format!("ATUid_test_{}_{}", self.state % 100_000, self.sessions)
    }

    fn step_on(&self, node: usize, session: &str, phone: &str, code: &str, text: &str) -> String {
        step(self.cluster, node, session, phone, code, text)
    }

    /// A whole session: every prefix of `inputs` in turn, each to a random node. Every screen
    /// before the last must expect input; answers every screen.
    fn dial(&mut self, phone: &str, code: &str, inputs: &[&str]) -> Vec<String> {
        let session = self.new_session();
        let mut screens = Vec::new();
        for n in 0..=inputs.len() {
            let node = self.any_node();
            let body = self.step_on(node, &session, phone, code, &inputs[..n].join("*"));
            if n < inputs.len() {
                assert!(body.starts_with("CON "), "step {n} of {inputs:?}: {body:?}");
            }
            screens.push(body);
        }
        screens
    }

    /// The last screen of a session.
    fn last(&mut self, phone: &str, code: &str, inputs: &[&str]) -> String {
        self.dial(phone, code, inputs).pop().unwrap()
    }
}

/// One step to one node, as the gateway posts it: the raw body, checked to be a USSD answer.
fn step(
    cluster: &TestCluster,
    node: usize,
    session: &str,
    phone: &str,
    code: &str,
    text: &str,
) -> String {
    let url = format!("{}/ussd/v1/callback", cluster.url(node));
    let form = [
        ("sessionId", session),
        ("serviceCode", code),
        ("phoneNumber", &format!("+{phone}")),
        ("networkCode", "63902"),
        ("text", text),
    ];
    let response = cluster.client.post(&url).form(&form).send().unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let body = response.text().unwrap();
    assert!(
        body.starts_with("CON ") || body.starts_with("END "),
        "{body:?}"
    );
    assert!(body.chars().count() <= 4 + 182, "{body:?}");
    body
}

fn balance(cluster: &TestCluster, who: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        let (_, body) = cluster
            .get(&format!(
                "{}/admin/v1/accounts/{who}",
                cluster.url(cluster.running()[0])
            ))
            .unwrap();
        if body["pending_in"] == "0.00" || started.elapsed() > Duration::from_secs(10) {
            return body["balance"].as_str().unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn setup(cluster: &TestCluster) {
    for who in [ALICE, BOB, CAROL] {
        cluster.register_customer(who);
    }
    let url = cluster.url(1);
    let agent = json!({"agent_number": "5001", "store_number": "77", "name": "Duka Moja", "msisdn": AGENT_PHONE, "pin": PIN});
    let (status, body) = cluster
        .post(&format!("{url}/admin/v1/agents"), &agent)
        .unwrap();
    assert_eq!(status, 201, "{body}");
    for (shortcode, kind, name) in [
        ("888880", "paybill", "Kenya Power"),
        ("555001", "till", "Mama Mboga"),
    ] {
        let business = json!({"shortcode": shortcode, "kind": kind, "name": name, "consumer_key": format!("key{shortcode}"), "consumer_secret": "secret", "passkey": "passkey"});
        let (status, body) = cluster
            .post(&format!("{url}/admin/v1/businesses"), &business)
            .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    cluster.fund(ALICE, "20000.00", "fund-alice");
    cluster.fund(CAROL, "100.00", "fund-carol");
    cluster.fund("agent:5001", "50000.00", "fund-agent");
}

#[test]
fn every_flow_and_error_screen_with_each_step_on_a_random_node() {
    let cluster = TestCluster::start("ussd-flows", 3, 4);
    setup(&cluster);
    let mut gw = Gateway::new(&cluster, 7);
    let bob = local(BOB);

    // Send Money: the confirmation names the recipient and the fee; the PIN comes last.
    let screens = gw.dial(ALICE, CUSTOMER_CODE, &["1", &bob, "500", "1", PIN]);
    assert!(
        screens[0].starts_with("CON M-PESA\n1. Send Money\n2. Withdraw Cash"),
        "{}",
        screens[0]
    );
    assert_eq!(screens[1], "CON Enter phone no.");
    assert!(
        screens[3].contains(&format!(
            "Send Ksh500.00 to Customer {BOB} {bob}?\nFee Ksh7.00"
        )),
        "{}",
        screens[3]
    );
    assert_eq!(screens[4], "CON Enter M-PESA PIN");
    assert!(
        screens[5].starts_with("END ") && screens[5].contains("Confirmed"),
        "{}",
        screens[5]
    );
    assert_eq!(balance(&cluster, BOB), "500.00");
    assert_eq!(balance(&cluster, ALICE), "19493.00");

    // Withdraw Cash at agent 5001, store 77: 1,000 and the 29 fee.
    let screens = gw.dial(ALICE, CUSTOMER_CODE, &["2", "5001", "77", "1000", "1", PIN]);
    assert!(
        screens[4]
            .contains("Withdraw Ksh1,000.00 from Duka Moja, agent 5001, store 77?\nFee Ksh29.00"),
        "{}",
        screens[4]
    );
    assert!(screens[6].contains("Confirmed"), "{}", screens[6]);
    assert_eq!(balance(&cluster, ALICE), "18464.00");

    // Buy Airtime for my phone and for another.
    assert!(gw
        .last(ALICE, CUSTOMER_CODE, &["3", "1", "100", PIN])
        .contains("Confirmed"));
    assert!(gw
        .last(ALICE, CUSTOMER_CODE, &["3", "2", "0799000001", "50", PIN])
        .contains("Confirmed"));
    assert_eq!(balance(&cluster, ALICE), "18314.00");

    // Lipa na M-PESA: Pay Bill with an account number, Buy Goods at a till.
    let screens = gw.dial(
        ALICE,
        CUSTOMER_CODE,
        &["4", "1", "888880", "ACC42", "200", "1", PIN],
    );
    assert!(
        screens[5].contains("Pay Ksh200.00 to Kenya Power for account ACC42?"),
        "{}",
        screens[5]
    );
    assert!(screens[7].contains("Confirmed"), "{}", screens[7]);
    let screens = gw.dial(ALICE, CUSTOMER_CODE, &["4", "2", "555001", "300", "1", PIN]);
    assert!(
        screens[4].contains("Pay Ksh300.00 to Mama Mboga, till 555001?"),
        "{}",
        screens[4]
    );
    assert!(screens[6].contains("Confirmed"), "{}", screens[6]);
    assert_eq!(balance(&cluster, ALICE), "17814.00");

    // My Account: balance, mini statement (last 5), change PIN and back.
    assert_eq!(
        gw.last(ALICE, CUSTOMER_CODE, &["5", "1", PIN]),
        "END Your M-PESA balance is Ksh17,814.00."
    );
    let statement = gw.last(ALICE, CUSTOMER_CODE, &["5", "2", PIN]);
    assert!(
        statement.starts_with("END M-PESA statement:\n"),
        "{statement}"
    );
    assert_eq!(statement.lines().count(), 6, "{statement}");
    assert!(statement.contains(" -300.00"), "{statement}");
    assert!(gw
        .last(ALICE, CUSTOMER_CODE, &["5", "3", PIN, "4321", "4321"])
        .contains("PIN has been changed"));
    assert!(gw
        .last(ALICE, CUSTOMER_CODE, &["5", "1", "4321"])
        .contains("Ksh17,814.00"));
    assert!(gw
        .last(ALICE, CUSTOMER_CODE, &["5", "3", "4321", PIN, PIN])
        .contains("PIN has been changed"));

    // The agent menu: deposit for a customer (named on the confirmation), float, commission.
    let screens = gw.dial(
        AGENT_PHONE,
        AGENT_CODE,
        &["5001", "1", &local(CAROL), "300", "1", PIN],
    );
    assert_eq!(screens[0], "CON Enter your agent no.");
    assert!(
        screens[1].starts_with("CON M-PESA Agent 5001\n1. Deposit"),
        "{}",
        screens[1]
    );
    assert!(
        screens[4].contains(&format!("Deposit Ksh300.00 to Customer {CAROL}")),
        "{}",
        screens[4]
    );
    assert!(screens[6].contains("Confirmed"), "{}", screens[6]);
    assert_eq!(balance(&cluster, CAROL), "400.00");
    // My Account → Language: the next session is in Kiswahili, and back.
    let changed = gw.last(BOB, CUSTOMER_CODE, &["5", "4", "2"]);
    assert_eq!(changed, "END Your M-PESA menu language has been changed.");
    let swahili = gw.dial(BOB, CUSTOMER_CODE, &["5"]);
    assert!(
        swahili[0].starts_with("CON M-PESA\n1. Tuma Pesa"),
        "{}",
        swahili[0]
    );
    assert!(
        swahili[1].starts_with("CON Akaunti Yangu"),
        "{}",
        swahili[1]
    );
    let back = gw.last(BOB, CUSTOMER_CODE, &["5", "4", "1"]);
    assert_eq!(back, "END Lugha ya menyu yako ya M-PESA imebadilishwa.");
    assert!(gw.dial(BOB, CUSTOMER_CODE, &[])[0].starts_with("CON M-PESA\n1. Send Money"));

    let float = gw.last(AGENT_PHONE, AGENT_CODE, &["5001", "2", PIN]);
    assert!(float.starts_with("END Float balance is Ksh"), "{float}");
    let commission = gw.last(AGENT_PHONE, AGENT_CODE, &["5001", "3", PIN]);
    assert!(
        commission.starts_with("END Commission earned: Ksh"),
        "{commission}"
    );

    // Error screens.
    let wrong_pin = gw.last(BOB, CUSTOMER_CODE, &["1", &local(ALICE), "10", "1", "9999"]);
    assert!(wrong_pin.contains("Wrong PIN"), "{wrong_pin}");
    let poor = gw.last(
        BOB,
        CUSTOMER_CODE,
        &["1", &local(ALICE), "100000", "1", PIN],
    );
    assert!(poor.contains("Insufficient funds"), "{poor}");
    let too_much = gw.last(ALICE, CUSTOMER_CODE, &["1", &bob, "300000"]);
    assert!(
        too_much.starts_with("END ") && too_much.contains("limit"),
        "{too_much}"
    );
    let unknown = gw.last(ALICE, CUSTOMER_CODE, &["1", "0799999999", "10"]);
    assert!(unknown.contains("not registered"), "{unknown}");
    let no_agent = gw.last(ALICE, CUSTOMER_CODE, &["2", "9999"]);
    assert!(no_agent.contains("Unknown agent number"), "{no_agent}");
    let wrong_store = gw.last(ALICE, CUSTOMER_CODE, &["2", "5001", "78"]);
    assert!(
        wrong_store.contains("store number does not match"),
        "{wrong_store}"
    );
    let no_business = gw.last(ALICE, CUSTOMER_CODE, &["4", "1", "999999", "X", "10"]);
    assert!(no_business.contains("Unknown business"), "{no_business}");
    let not_mine = gw.last(ALICE, AGENT_CODE, &["5001"]);
    assert!(
        not_mine.contains("not registered for that agent"),
        "{not_mine}"
    );
    assert_eq!(
        gw.last(ALICE, CUSTOMER_CODE, &["1", &bob, "10", "2"]),
        "END Request cancelled."
    );
    assert!(gw
        .last(STRANGER, CUSTOMER_CODE, &["5", "1", PIN])
        .contains("not registered on M-PESA"));
    assert!(gw
        .last(ALICE, CUSTOMER_CODE, &["5", "3", PIN, "1111", "2222"])
        .contains("do not match"));
    // Bad input re-prompts where a real menu would, and the session goes on.
    let screens = gw.dial(
        ALICE,
        CUSTOMER_CODE,
        &["7", "1", "12345", &bob, "abc", "20", "1", PIN],
    );
    assert_eq!(screens[1], "CON Invalid entry.\nM-PESA\n1. Send Money\n2. Withdraw Cash\n3. Buy Airtime\n4. Lipa na M-PESA\n5. My Account");
    assert_eq!(screens[3], "CON Invalid entry.\nEnter phone no.");
    assert_eq!(screens[5], "CON Invalid entry.\nEnter amount");
    assert!(screens[8].contains("Confirmed"), "{}", screens[8]);
    // A locked PIN: five wrong PINs, then even the right one is refused.
    for _ in 0..5 {
        gw.last(CAROL, CUSTOMER_CODE, &["5", "1", "0000"]);
    }
    let locked = gw.last(CAROL, CUSTOMER_CODE, &["5", "1", PIN]);
    assert!(locked.contains("locked"), "{locked}");
    let node = gw.any_node();
    let unknown_code = gw.step_on(node, "s-unknown", ALICE, "*999#", "");
    assert!(
        unknown_code.starts_with("END Unknown service code"),
        "{unknown_code}"
    );
    // A gateway request without its fields is refused with 400 (the gateway ends the session).
    let malformed = cluster
        .client
        .post(format!("{}/ussd/v1/callback", cluster.url(node)))
        .form(&[("serviceCode", CUSTOMER_CODE), ("text", "")])
        .send()
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert!(malformed.text().unwrap().starts_with("END Bad request"));

    // Money is conserved across every flow.
    let audit = cluster.quiet_audit(Duration::from_secs(20));
    assert_eq!(audit["balanced"], true, "{audit}");
}

#[test]
fn a_retried_or_rerouted_last_step_orders_one_transfer_and_a_killed_node_loses_nothing() {
    let mut cluster = TestCluster::start("ussd-kill", 3, 4);
    setup(&cluster);
    let bob = local(BOB);
    let inputs = ["1", bob.as_str(), "250", "1", PIN];
    let text = |n: usize| inputs[..n].join("*");

    // The last step retried on the same node and on the two others: one transfer.
    for n in 0..5 {
        assert!(step(&cluster, 1, "retry-1", ALICE, CUSTOMER_CODE, &text(n)).starts_with("CON "));
    }
    let first = step(&cluster, 1, "retry-1", ALICE, CUSTOMER_CODE, &text(5));
    assert!(first.contains("Confirmed"), "{first}");
    for node in [1, 2, 3] {
        assert_eq!(
            step(&cluster, node, "retry-1", ALICE, CUSTOMER_CODE, &text(5)),
            first
        );
    }
    assert_eq!(balance(&cluster, BOB), "250.00");

    // A session started on node 3, which dies before the last step: the gateway sends the
    // rest to node 1, which rebuilds the session from the inputs and finishes it.
    for n in 0..4 {
        assert!(step(&cluster, 3, "killed-1", ALICE, CUSTOMER_CODE, &text(n)).starts_with("CON "));
    }
    cluster.kill9(3);
    let finished = step(&cluster, 1, "killed-1", ALICE, CUSTOMER_CODE, &text(4));
    assert_eq!(finished, "CON Enter M-PESA PIN");
    let done = step(&cluster, 1, "killed-1", ALICE, CUSTOMER_CODE, &text(5));
    assert!(done.contains("Confirmed"), "{done}");
    assert_eq!(balance(&cluster, BOB), "500.00");

    // The last step sent to node 2 as it dies: whatever node 2 did, the gateway's retry on
    // node 1 answers the one outcome, and the money moved once.
    for n in 0..5 {
        step(&cluster, 2, "killed-2", ALICE, CUSTOMER_CODE, &text(n));
    }
    let url = format!("{}/ussd/v1/callback", cluster.url(2));
    let form: Vec<(String, String)> = [
        ("sessionId", "killed-2"),
        ("serviceCode", CUSTOMER_CODE),
        ("phoneNumber", ALICE),
        ("text", &text(5)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let client = cluster.client.clone();
    let racing = std::thread::spawn(move || client.post(&url).form(&form).send().map(|r| r.text()));
    std::thread::sleep(Duration::from_millis(5));
    cluster.kill9(2);
    let _ = racing.join();
    cluster.spawn(3, None);
    cluster.wait_ready(Duration::from_secs(60));
    let retried = step(&cluster, 1, "killed-2", ALICE, CUSTOMER_CODE, &text(5));
    assert!(
        retried.contains("Confirmed") || retried.contains("Request received"),
        "{retried}"
    );
    let started = std::time::Instant::now();
    while balance(&cluster, BOB) != "750.00" {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Bob has {}",
            balance(&cluster, BOB)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        balance(&cluster, BOB),
        "750.00",
        "the transfer happened once"
    );
    let audit = cluster.quiet_audit(Duration::from_secs(20));
    assert_eq!(audit["balanced"], true, "{audit}");
}

#[test]
fn a_menu_pushed_mid_session_serves_new_sessions_and_the_session_keeps_its_version() {
    let cluster = TestCluster::start("ussd-menus", 3, 4);
    cluster.register_customer(ALICE);
    cluster.register_customer(BOB);
    cluster.fund(ALICE, "1000.00", "fund-alice");
    let gw = Gateway::new(&cluster, 3);
    let bob = local(BOB);
    assert!(gw
        .step_on(1, "old-1", ALICE, CUSTOMER_CODE, "")
        .starts_with("CON M-PESA\n"));

    // A bad menu is refused with its line; nothing changes.
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../channels/menus/customer-en.toml"),
    )
    .unwrap();
    let push = |node: usize, name: &str, body: String| -> (u16, Value) {
        let response = cluster
            .client
            .put(format!("{}/admin/v1/menus/{name}", cluster.url(node)))
            .bearer_auth(TOKEN)
            .body(body)
            .send()
            .unwrap();
        (response.status().as_u16(), response.json().unwrap())
    };
    let broken = shipped.replace("next = \"send_amount\"", "next = \"nowhere\"");
    let (status, body) = push(2, "customer-en", broken);
    assert_eq!(status, 400, "{body}");
    let fault = &body["errors"][0];
    assert!(
        fault["error"]
            .as_str()
            .unwrap()
            .contains("\"nowhere\", which is not defined"),
        "{body}"
    );
    let header = shipped.find("[screens.send_phone]").unwrap();
    let line = shipped[..header].matches('\n').count() + 1;
    assert_eq!(
        fault["line"].as_u64(),
        Some(line as u64),
        "the screen's line: {body}"
    );
    let (status, _) = push(2, "agent-en", shipped.clone());
    assert_eq!(status, 400, "a customer menu pushed as the agent menu");

    // A new version through node 2; every node serves it to new sessions.
    let edited = shipped
        .replace("choose = \"M-PESA\"", "choose = \"TUMA\"")
        .replace(
            "ask = \"Enter phone no.\"",
            "ask = \"Phone number of the recipient\"",
        );
    let (status, body) = push(2, "customer-en", edited);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 1);
    for node in [1, 2, 3] {
        let started = std::time::Instant::now();
        loop {
            let session = format!("new-{node}-{}", started.elapsed().as_millis());
            if gw
                .step_on(node, &session, ALICE, CUSTOMER_CODE, "")
                .starts_with("CON TUMA\n")
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "node {node} kept the old menu"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // The session begun before the push goes on with the version it started with.
    assert_eq!(
        gw.step_on(1, "old-1", ALICE, CUSTOMER_CODE, "1"),
        "CON Enter phone no."
    );
    let done = ["1", bob.as_str(), "20", "1", PIN];
    for n in 2..=5 {
        gw.step_on(1, "old-1", ALICE, CUSTOMER_CODE, &done[..n].join("*"));
    }
    assert_eq!(balance(&cluster, BOB), "20.00");
    let (_, menus) = cluster
        .get(&format!("{}/admin/v1/menus", cluster.url(3)))
        .unwrap();
    assert!(
        menus["menus"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "customer-en", "version": 1})),
        "{menus}"
    );
}

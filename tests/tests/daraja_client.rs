//! The business API driven by a real Daraja client library — the Rust `mpesa` crate (1.1),
//! pointed at a 3-node cluster through its `ApiEnvironment` (base URL and the certificate
//! `GET /daraja/v1/certificate` publishes) — with callbacks received by a test HTTP server:
//! OAuth; M-Pesa Express paid, declined, answered with a wrong PIN and left unanswered; C2B
//! registration and simulate with validation accepting, rejecting and timing out; B2C and B2B
//! paid and failed; transaction status; account balance; reversal.
//!
//! Needs the feature `daraja-client` (the crate links OpenSSL; `scripts/install-openssl-dev.sh`
//! installs its headers): `cargo test -p tuma-tests --features daraja-client --test
//! daraja_client`. `.ci/run` runs it.
#![cfg(feature = "daraja-client")]

use std::time::{Duration, Instant};

use mpesa::{ApiEnvironment, CommandId, IdentifierTypes, Mpesa, ResponseType};
use serde_json::{json, Value};
use tuma_tests::fake_gateway::{FakeGateway, Style};
use tuma_tests::{with_node_flags, TestCluster, PIN};

const SHORTCODE: &str = "600500";
const PAYEE_PAYBILL: &str = "600600";
const PASSKEY: &str = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";
const CUSTOMER: &str = "254708374160";
const INITIATOR: &str = "testapi";
const INITIATOR_PASSWORD: &str = "Safaricom999!*!";

/// A Tuma node as the client's environment: its base URL and the cluster's certificate.
#[derive(Clone, Debug)]
struct Tuma {
    base_url: String,
    certificate: String,
}

impl ApiEnvironment for Tuma {
    fn base_url(&self) -> &str {
        &self.base_url
    }
    fn get_certificate(&self) -> &str {
        &self.certificate
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn register(cluster: &TestCluster, shortcode: &str, key: &str) {
    let (status, body) = cluster
        .post(
            &format!("{}/admin/v1/businesses", cluster.url(1)),
            &json!({"shortcode": shortcode, "kind": "paybill", "name": format!("Business {shortcode}"),
                "consumer_key": key, "consumer_secret": "secret", "passkey": PASSKEY}),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
}

/// Everything the receiver got on `path` whose `field` (a JSON pointer) is `value`, waited for.
fn posted(receiver: &FakeGateway, path: &str, pointer: &str, value: &str) -> Value {
    let started = Instant::now();
    loop {
        let found: Vec<Value> = receiver
            .received()
            .into_iter()
            .filter(|r| r.path == path && r.answered == 200)
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .filter(|b| b.pointer(pointer).and_then(Value::as_str) == Some(value))
            .collect();
        if let Some(first) = found.first() {
            assert_eq!(found.len(), 1, "{path} {value} delivered twice");
            return first.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing on {path} for {value}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn balance(cluster: &TestCluster, account: &str) -> String {
    let (_, body) = cluster
        .get(&format!("{}/admin/v1/accounts/{account}", cluster.url(2)))
        .unwrap();
    body["balance"].as_str().unwrap_or_default().to_string()
}

fn answer_prompt(cluster: &TestCluster, checkout: &str, body: Value) -> Value {
    cluster
        .post(&format!("{}/v1/prompts/{checkout}", cluster.url(3)), &body)
        .unwrap()
        .1
}

#[test]
fn a_real_daraja_client_library_works_against_a_tuma_cluster() {
    with_node_flags(&[
        "--daraja-prompt-lifetime",
        "3s",
        "--daraja-validation-timeout",
        "2s",
        "--daraja-simulate-pin",
        PIN,
    ]);
    let cluster = TestCluster::start("daraja-client", 3, 2);
    let receiver = FakeGateway::start(Style::CallbackReceiver);
    let validator = FakeGateway::start(Style::CallbackReceiver);
    cluster.register_customer(CUSTOMER);
    cluster.fund(CUSTOMER, "5000.00", "fund-client-customer");
    register(&cluster, SHORTCODE, "client-key");
    register(&cluster, PAYEE_PAYBILL, "payee-key");
    cluster.fund(
        &format!("business:{SHORTCODE}"),
        "10000.00",
        "fund-client-business",
    );
    let (status, body) = cluster
        .put(
            &format!(
                "{}/admin/v1/businesses/{SHORTCODE}/initiators/{INITIATOR}",
                cluster.url(1)
            ),
            &json!({"password": INITIATOR_PASSWORD}),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let certificate = cluster
        .client
        .get(format!("{}/daraja/v1/certificate", cluster.url(1)))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let environment = Tuma {
        base_url: cluster.url(2).to_string(),
        certificate,
    };
    let client = Mpesa::new("client-key", "secret", environment);
    client.set_initiator_password(INITIATOR_PASSWORD);
    let rt = runtime();
    assert!(rt.block_on(client.is_connected()), "OAuth with the client");
    let stk_url = format!("{}/stk/callback", receiver.url);
    let result_url = format!("{}/result", receiver.url);
    let timeout_url = format!("{}/timeout", receiver.url);

    // M-Pesa Express: paid, declined, wrong PIN, unanswered — each called back once.
    let push = |amount: u32| {
        rt.block_on(
            client
                .express_request(SHORTCODE)
                .pass_key(PASSKEY)
                .amount(amount)
                .phone_number(CUSTOMER)
                .party_a(CUSTOMER)
                .party_b(SHORTCODE)
                .callback_url(&stk_url)
                .account_ref("INV-9")
                .transaction_type(CommandId::CustomerPayBillOnline)
                .transaction_desc("Water")
                .send(),
        )
        .expect("the push is accepted")
        .checkout_request_id
    };
    let stk_result = |checkout: &str| {
        posted(
            &receiver,
            "/stk/callback",
            "/Body/stkCallback/CheckoutRequestID",
            checkout,
        )["Body"]["stkCallback"]["ResultCode"]
            .clone()
    };
    let paid = push(100);
    let answer = answer_prompt(&cluster, &paid, json!({"pin": PIN}));
    assert_eq!(answer["status"], "confirmed", "{answer}");
    assert_eq!(stk_result(&paid), json!(0));
    let declined = push(50);
    answer_prompt(&cluster, &declined, json!({"decline": true}));
    assert_eq!(stk_result(&declined), json!(1032));
    let wrong = push(50);
    answer_prompt(&cluster, &wrong, json!({"pin": "0000"}));
    assert_eq!(stk_result(&wrong), json!(2001));
    let silent = push(50);
    assert_eq!(stk_result(&silent), json!(1037), "unanswered within 3 s");
    assert_eq!(balance(&cluster, CUSTOMER), "4900.00");

    // C2B: register (validation on), then simulated payments the validator accepts, rejects,
    // and leaves unanswered (the registered Completed applies).
    let registered = rt
        .block_on(
            client
                .c2b_register()
                .short_code(SHORTCODE)
                .confirmation_url(&format!("{}/confirm", receiver.url))
                .validation_url(&format!("{}/validate", validator.url))
                .response_type(ResponseType::Completed)
                .send(),
        )
        .expect("the URLs are registered");
    assert_eq!(registered.response_code, "0");
    let simulate = |amount: u32, reference: &'static str| {
        rt.block_on(
            client
                .c2b_simulate()
                .short_code(SHORTCODE)
                .msisdn(CUSTOMER)
                .amount(amount)
                .bill_ref_number(reference)
                .command_id(CommandId::CustomerPayBillOnline)
                .send(),
        )
        .expect("the simulation is accepted")
    };
    validator.set_answer(Some((
        200,
        r#"{"ResultCode":"0","ResultDesc":"Accepted"}"#,
        Duration::ZERO,
    )));
    simulate(20, "ACCEPT-ME");
    let confirmed = posted(&receiver, "/confirm", "/BillRefNumber", "ACCEPT-ME");
    assert_eq!(confirmed["TransAmount"], "20.00");
    validator.set_answer(Some((
        200,
        r#"{"ResultCode":"C2B00012","ResultDesc":"Rejected"}"#,
        Duration::ZERO,
    )));
    simulate(30, "REJECT-ME");
    // Simulated payments run after the answer: the validator must have been asked (and have
    // answered: it records a request with its answer) before its answer changes.
    let started = Instant::now();
    while !validator
        .received()
        .iter()
        .any(|r| r.body.contains("REJECT-ME"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "REJECT-ME never validated"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    validator.set_answer(Some((200, r#"{"ResultCode":"0"}"#, Duration::from_secs(4))));
    simulate(40, "LATE");
    let late = posted(&receiver, "/confirm", "/BillRefNumber", "LATE");
    assert_eq!(
        late["TransAmount"], "40.00",
        "no answer in time: Completed applies"
    );
    assert!(
        !receiver
            .received()
            .iter()
            .any(|r| r.body.contains("REJECT-ME")),
        "a rejected payment is never confirmed"
    );
    assert_eq!(balance(&cluster, CUSTOMER), "4840.00");

    // B2C: paid, then failed for funds; each result posted once.
    let b2c = |amount: u32| {
        rt.block_on(
            client
                .b2c(INITIATOR)
                .party_a(SHORTCODE)
                .party_b(CUSTOMER)
                .amount(amount)
                .command_id(CommandId::BusinessPayment)
                .result_url(&result_url)
                .timeout_url(&timeout_url)
                .remarks("salary")
                .occasion("December")
                .send(),
        )
        .expect("the payout is accepted")
        .conversation_id
    };
    let result = |conversation: &str| {
        posted(&receiver, "/result", "/Result/ConversationID", conversation)["Result"].clone()
    };
    let salary = b2c(500);
    let paid_out = result(&salary);
    assert_eq!(paid_out["ResultCode"], json!(0), "{paid_out}");
    let receipt = paid_out["TransactionID"].as_str().unwrap().to_string();
    assert_eq!(balance(&cluster, CUSTOMER), "5340.00");
    let too_much = b2c(50_000);
    assert_eq!(result(&too_much)["ResultCode"], json!(1));

    // B2B to a paybill, and to one that does not exist (2040).
    let b2b = |to: &'static str| {
        rt.block_on(
            client
                .b2b(INITIATOR)
                .party_a(SHORTCODE)
                .party_b(to)
                .amount(250)
                .command_id(CommandId::BusinessPayBill)
                .sender_id(IdentifierTypes::ShortCode)
                .receiver_id(IdentifierTypes::ShortCode)
                .account_ref("353353")
                .result_url(&result_url)
                .timeout_url(&timeout_url)
                .remarks("supplies")
                .send(),
        )
        .expect("the payment is accepted")
        .conversation_id
    };
    let supplies = b2b(PAYEE_PAYBILL);
    assert_eq!(result(&supplies)["ResultCode"], json!(0));
    assert_eq!(
        balance(&cluster, &format!("business:{PAYEE_PAYBILL}")),
        "250.00"
    );
    let nowhere = b2b("699999");
    assert_eq!(result(&nowhere)["ResultCode"], json!(2040));

    // Transaction status of the B2C payout, by its receipt.
    let status = rt
        .block_on(
            client
                .transaction_status(INITIATOR)
                .transaction_id(&receipt)
                .party_a(SHORTCODE)
                .identifier_type(IdentifierTypes::ShortCode)
                .result_url(&result_url)
                .timeout_url(&timeout_url)
                .send(),
        )
        .expect("the status query is accepted");
    let answered = result(&status.conversation_id);
    let parameters = answered["ResultParameters"]["ResultParameter"].to_string();
    assert!(parameters.contains("Completed"), "{answered}");
    assert!(parameters.contains(&receipt), "{answered}");

    // Account balance: the Utility account at the business's balance.
    let asked = rt
        .block_on(
            client
                .account_balance(INITIATOR)
                .party_a(SHORTCODE)
                .identifier_type(IdentifierTypes::ShortCode)
                .result_url(&result_url)
                .timeout_url(&timeout_url)
                .send(),
        )
        .expect("the balance query is accepted");
    let answered = result(&asked.conversation_id);
    let utility = format!(
        "Utility Account|KES|{}",
        balance(&cluster, &format!("business:{SHORTCODE}"))
    );
    assert!(
        answered.to_string().contains(&utility),
        "{answered} lacks {utility}"
    );

    // Reversal of the accepted C2B payment: the customer gets it back.
    let confirmed_receipt = confirmed["TransID"].as_str().unwrap().to_string();
    let reversal = rt
        .block_on(
            client
                .transaction_reversal(INITIATOR)
                .transaction_id(&confirmed_receipt)
                .amount(20)
                .receiver_party(SHORTCODE)
                .receiver_identifier_type(IdentifierTypes::ShortCode)
                .result_url(&result_url)
                .timeout_url(&timeout_url)
                .remarks("refund")
                .send(),
        )
        .expect("the reversal is accepted");
    assert_eq!(result(&reversal.conversation_id)["ResultCode"], json!(0));
    assert_eq!(balance(&cluster, CUSTOMER), "5360.00");

    // A wrong credential: accepted, then 2001 in the result, nothing paid.
    client.set_initiator_password("not the password");
    let refused = b2c(10);
    assert_eq!(result(&refused)["ResultCode"], json!(2001));
    assert_eq!(balance(&cluster, CUSTOMER), "5360.00");
}

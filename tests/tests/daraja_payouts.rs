//! The business API's payouts and queries on real nodes: B2C (v1, v3) and B2B paid once with
//! their `Result` posted to `ResultURL` (success, insufficient funds, an unregistered
//! receiver, a wrong initiator credential), a duplicate `OriginatorConversationID` refused
//! with nothing paid twice, transaction status by key and by receipt, the account balance
//! list, and an expired token.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Encrypt, RsaPublicKey};
use serde_json::{json, Value};
use tuma_tests::fake_gateway::{FakeGateway, Style};
use tuma_tests::TestCluster;
use x509_cert::der::{DecodePem, Encode};

const PAYER: &str = "600200";
const PAYEE_PAYBILL: &str = "600300";
const CUSTOMER: &str = "254708374150";
const INITIATOR: &str = "testapi";
const INITIATOR_PASSWORD: &str = "Safaricom999!*!";
/// The test cluster's secret (`tests/src/lib.rs`).
const CLUSTER_SECRET: &str = "integration-cluster-secret";

fn call(cluster: &TestCluster, node: usize, path: &str, token: &str, body: &Value) -> (u16, Value) {
    cluster.call_api(node, path, token, body)
}

fn register(cluster: &TestCluster, shortcode: &str, kind: &str) -> String {
    let (status, body) = cluster
        .post(
            &format!("{}/admin/v1/businesses", cluster.url(1)),
            &json!({"shortcode": shortcode, "kind": kind, "name": format!("Business {shortcode}"),
                "consumer_key": format!("key-{shortcode}"), "consumer_secret": "secret",
                "passkey": "pk"}),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let basic = STANDARD.encode(format!("key-{shortcode}:secret"));
    let response = cluster
        .client
        .get(format!(
            "{}/oauth/v1/generate?grant_type=client_credentials",
            cluster.url(2)
        ))
        .header("Authorization", format!("Basic {basic}"))
        .send()
        .unwrap();
    let body: Value = response.json().unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// What a Daraja client does with the published certificate: RSA PKCS#1 v1.5, base64.
fn security_credential(certificate_pem: &str, password: &str) -> String {
    let certificate = x509_cert::Certificate::from_pem(certificate_pem).expect("a certificate");
    let spki = certificate
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    let public = RsaPublicKey::from_public_key_der(&spki).expect("an RSA key");
    let ciphertext = public
        .encrypt(&mut rand_core::OsRng, Pkcs1v15Encrypt, password.as_bytes())
        .unwrap();
    STANDARD.encode(ciphertext)
}

/// The `Result` posted to `path` for conversation `conversation`, waited for; it must have
/// been delivered exactly once.
fn result_for(receiver: &FakeGateway, path: &str, conversation: &str) -> Value {
    let started = Instant::now();
    loop {
        let delivered: Vec<Value> = receiver
            .received()
            .into_iter()
            .filter(|r| r.answered == 200 && r.path == path)
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .filter(|body| body["Result"]["ConversationID"] == conversation)
            .collect();
        if let Some(body) = delivered.first() {
            assert_eq!(
                delivered.len(),
                1,
                "result for {conversation} delivered twice"
            );
            return body["Result"].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no result for {conversation} at {path}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn parameter(result: &Value, key: &str) -> Value {
    result["ResultParameters"]["ResultParameter"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["Key"] == key))
        .map(|p| p["Value"].clone())
        .unwrap_or(Value::Null)
}

fn balance(cluster: &TestCluster, account: &str) -> String {
    let (_, body) = cluster
        .get(&format!("{}/admin/v1/accounts/{account}", cluster.url(1)))
        .unwrap();
    body["balance"].as_str().unwrap_or_default().to_string()
}

struct Api<'a> {
    cluster: &'a TestCluster,
    token: String,
    credential: String,
    receiver: &'a FakeGateway,
}

impl Api<'_> {
    fn urls(&self, kind: &str) -> (String, String) {
        (
            format!("{}/{kind}/result", self.receiver.url),
            format!("{}/{kind}/timeout", self.receiver.url),
        )
    }

    fn b2c(
        &self,
        version: &str,
        originator: &str,
        to: &str,
        amount: u32,
        credential: &str,
    ) -> (u16, Value) {
        let (result, timeout) = self.urls("b2c");
        let body = json!({"OriginatorConversationID": originator, "InitiatorName": INITIATOR,
            "SecurityCredential": credential, "CommandID": "BusinessPayment",
            "Amount": amount, "PartyA": PAYER.parse::<u64>().unwrap(), "PartyB": to,
            "Remarks": "salary", "QueueTimeOutURL": timeout, "ResultURL": result,
            "Occassion": "December"});
        call(
            self.cluster,
            1,
            &format!("/mpesa/b2c/{version}/paymentrequest"),
            &self.token,
            &body,
        )
    }

    fn initiated(&self, path: &str, kind: &str, mut body: Value) -> (u16, Value) {
        let (result, timeout) = self.urls(kind);
        body["Initiator"] = json!(INITIATOR);
        body["SecurityCredential"] = json!(self.credential);
        body["PartyA"] = json!(PAYER);
        body["IdentifierType"] = json!("4");
        body["Remarks"] = json!("ok");
        body["ResultURL"] = json!(result);
        body["QueueTimeOutURL"] = json!(timeout);
        call(self.cluster, 2, path, &self.token, &body)
    }

    /// An accepted request's ConversationID.
    fn accepted(&self, answer: (u16, Value)) -> String {
        let (status, body) = answer;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ResponseCode"], "0", "{body}");
        let conversation = body["ConversationID"].as_str().unwrap().to_string();
        assert!(conversation.starts_with("AG_"), "{conversation}");
        conversation
    }
}

#[test]
fn b2c_b2b_status_and_balance_answer_to_result_urls_and_duplicates_never_pay_twice() {
    // A sandbox cluster: C2B simulate pays with the test customers' PIN.
    tuma_tests::with_node_flags(&["--daraja-simulate-pin", tuma_tests::PIN]);
    let cluster = TestCluster::start("daraja-payouts", 3, 2);
    let receiver = FakeGateway::start(Style::CallbackReceiver);
    cluster.register_customer(CUSTOMER);
    let token = register(&cluster, PAYER, "paybill");
    register(&cluster, PAYEE_PAYBILL, "paybill");
    register(&cluster, "600400", "till");
    cluster.fund(&format!("business:{PAYER}"), "5000.00", "fund-payer");
    let (status, body) = cluster
        .put(
            &format!(
                "{}/admin/v1/businesses/{PAYER}/initiators/{INITIATOR}",
                cluster.url(3)
            ),
            &json!({"password": INITIATOR_PASSWORD}),
        )
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // Operators' refusals: a malformed initiator name, a wallet that is not one, an unknown key.
    let (status, body) = cluster
        .put(
            &format!(
                "{}/admin/v1/businesses/{PAYER}/initiators/bad%20name",
                cluster.url(1)
            ),
            &json!({"password": "x"}),
        )
        .unwrap();
    assert_eq!((status, &body["field"]), (400, &json!("name")), "{body}");
    let (status, body) = cluster
        .post(
            &format!(
                "{}/admin/v1/businesses/{PAYER}/wallets/moves",
                cluster.url(1)
            ),
            &json!({"from": "utility", "to": "cash", "amount": "1.00"}),
        )
        .unwrap();
    assert_eq!((status, &body["field"]), (400, &json!("to")), "{body}");
    let (status, _) = cluster
        .get(&format!(
            "{}/admin/v1/businesses/{PAYER}/payouts/never-used",
            cluster.url(1)
        ))
        .unwrap();
    assert_eq!(status, 404);
    let certificate = cluster
        .client
        .get(format!("{}/daraja/v1/certificate", cluster.url(2)))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let other_node = cluster
        .client
        .get(format!("{}/daraja/v1/certificate", cluster.url(3)))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        certificate, other_node,
        "every node publishes the same certificate"
    );
    let api = Api {
        cluster: &cluster,
        token,
        credential: security_credential(&certificate, INITIATOR_PASSWORD),
        receiver: &receiver,
    };

    // B2C v3: accepted, paid, one result with the receipt and the wallets.
    let paid = api.accepted(api.b2c("v3", "salary-1", CUSTOMER, 100, &api.credential));
    let result = result_for(&receiver, "/b2c/result", &paid);
    assert_eq!(result["ResultCode"], json!(0), "{result}");
    assert_eq!(result["OriginatorConversationID"], "salary-1");
    let receipt = parameter(&result, "TransactionReceipt");
    assert_eq!(result["TransactionID"], receipt);
    assert_eq!(parameter(&result, "TransactionAmount"), json!(100.0));
    assert_eq!(balance(&cluster, CUSTOMER), "100.00");
    let utility = parameter(&result, "B2CUtilityAccountAvailableFunds");
    assert_eq!(
        format!("{:.2}", utility.as_f64().unwrap()),
        balance(&cluster, &format!("business:{PAYER}")),
        "the result reports the payer's balance after the payment"
    );

    // The same key again: Daraja's duplicate error, nothing paid twice.
    let (status, body) = api.b2c("v3", "salary-1", CUSTOMER, 100, &api.credential);
    assert_eq!(body["errorCode"], "500.002.1001", "{status} {body}");
    // v3 needs the key; v1 makes one up.
    let (status, body) = api.b2c("v3", "", CUSTOMER, 100, &api.credential);
    assert_eq!(
        (status, &body["errorCode"]),
        (400, &json!("400.002.02")),
        "{body}"
    );

    // Failures arrive as results: funds, an unregistered receiver, a wrong credential.
    let poor = api.accepted(api.b2c("v1", "salary-2", CUSTOMER, 9_000, &api.credential));
    assert_eq!(
        result_for(&receiver, "/b2c/result", &poor)["ResultCode"],
        json!(1)
    );
    let stranger = api.accepted(api.b2c("v1", "salary-3", "254799000111", 10, &api.credential));
    assert_eq!(
        result_for(&receiver, "/b2c/result", &stranger)["ResultCode"],
        json!(2040)
    );
    let wrong = security_credential(&certificate, "not the password");
    let refused = api.accepted(api.b2c("v1", "salary-4", CUSTOMER, 10, &wrong));
    let result = result_for(&receiver, "/b2c/result", &refused);
    assert_eq!(result["ResultCode"], json!(2001), "{result}");
    assert_eq!(
        result["ResultDesc"],
        "The initiator information is invalid."
    );
    assert_eq!(
        balance(&cluster, CUSTOMER),
        "100.00",
        "only the first payout paid"
    );

    // B2B to a paybill, with its account reference; a till asked as a paybill is refused.
    let b2b = api.accepted(api.initiated(
        "/mpesa/b2b/v1/paymentrequest",
        "b2b",
        json!({"CommandID": "BusinessPayBill", "SenderIdentifierType": "4",
            "RecieverIdentifierType": "4", "Amount": "250", "PartyB": PAYEE_PAYBILL,
            "AccountReference": "353353", "Requester": "254700000000"}),
    ));
    let result = result_for(&receiver, "/b2b/result", &b2b);
    assert_eq!(result["ResultCode"], json!(0), "{result}");
    assert!(result["ReferenceData"]["ReferenceItem"].is_array());
    assert_eq!(
        balance(&cluster, &format!("business:{PAYEE_PAYBILL}")),
        "250.00"
    );
    let (status, body) = api.initiated(
        "/mpesa/b2b/v1/paymentrequest",
        "b2b",
        json!({"CommandID": "BusinessPayBill", "Amount": "5", "PartyB": "600400",
            "AccountReference": "1"}),
    );
    assert_eq!(
        (status, &body["errorCode"]),
        (400, &json!("400.002.02")),
        "{body}"
    );

    // Status by the business's key and by the receipt; a receipt of others is not shown.
    let by_key = api.accepted(api.initiated(
        "/mpesa/transactionstatus/v1/query",
        "status",
        json!({"CommandID": "TransactionStatusQuery", "OriginalConversationID": "salary-1",
            "TransactionID": "", "Occasion": "OK"}),
    ));
    let result = result_for(&receiver, "/status/result", &by_key);
    assert_eq!(
        parameter(&result, "TransactionStatus"),
        "Completed",
        "{result}"
    );
    assert_eq!(parameter(&result, "ReceiptNo"), receipt);
    let by_receipt = api.accepted(api.initiated(
        "/mpesa/transactionstatus/v1/query",
        "status",
        json!({"CommandID": "TransactionStatusQuery", "TransactionID": receipt}),
    ));
    let result = result_for(&receiver, "/status/result", &by_receipt);
    assert_eq!(
        parameter(&result, "TransactionStatus"),
        "Completed",
        "{result}"
    );
    assert_eq!(parameter(&result, "Amount"), json!(100.0));
    let unknown = api.accepted(api.initiated(
        "/mpesa/transactionstatus/v1/query",
        "status",
        json!({"CommandID": "TransactionStatusQuery", "TransactionID": "SAA0000000"}),
    ));
    assert_eq!(
        result_for(&receiver, "/status/result", &unknown)["ResultCode"],
        "R000002"
    );

    // A reversal of a customer's bill payment: sent back once; the same receipt again is
    // R000002; a wrong receiver identifier type is a bad request.
    let bill = json!({"request_id": "bill-to-payer", "kind": "pay_bill", "from": CUSTOMER,
        "to": format!("business:{PAYER}"), "amount": "40.00", "account_reference": "A1",
        "pin": tuma_tests::PIN});
    let (status, paid_bill) = cluster
        .post(&format!("{}/v1/transfers", cluster.url(3)), &bill)
        .unwrap();
    assert_eq!(
        (status, &paid_bill["status"]),
        (200, &json!("confirmed")),
        "{paid_bill}"
    );
    let bill_receipt = paid_bill["transaction_id"].as_str().unwrap().to_string();
    assert_eq!(balance(&cluster, CUSTOMER), "60.00");
    let reversal = |receipt: &str, identifier: &str| {
        let mut body = json!({"CommandID": "TransactionReversal", "TransactionID": receipt,
            "Amount": "40", "ReceiverParty": PAYER, "RecieverIdentifierType": identifier});
        body.as_object_mut().unwrap().remove("PartyA");
        let (result, timeout) = api.urls("reversal");
        body["Initiator"] = json!(INITIATOR);
        body["SecurityCredential"] = json!(api.credential);
        body["Remarks"] = json!("refund");
        body["ResultURL"] = json!(result);
        body["QueueTimeOutURL"] = json!(timeout);
        call(&cluster, 1, "/mpesa/reversal/v1/request", &api.token, &body)
    };
    let reversed = api.accepted(reversal(&bill_receipt, "11"));
    let result = result_for(&receiver, "/reversal/result", &reversed);
    assert_eq!(result["ResultCode"], json!(0), "{result}");
    assert_eq!(
        parameter(&result, "OriginalTransactionID"),
        json!(bill_receipt)
    );
    assert_eq!(
        balance(&cluster, CUSTOMER),
        "100.00",
        "the payment came back"
    );
    let again = api.accepted(reversal(&bill_receipt, "11"));
    assert_eq!(
        result_for(&receiver, "/reversal/result", &again)["ResultCode"],
        "R000002"
    );
    assert_eq!(balance(&cluster, CUSTOMER), "100.00", "reversed once");
    let (status, body) = reversal(&bill_receipt, "2");
    assert_eq!(
        (status, &body["errorCode"]),
        (400, &json!("400.002.02")),
        "{body}"
    );

    // C2B simulate: a test customer pays the business, confirmed to its confirmation URL.
    let registration = json!({"ShortCode": PAYER, "ResponseType": "Completed",
        "ConfirmationURL": format!("{}/c2b/confirm", receiver.url)});
    let (status, body) = call(
        &cluster,
        2,
        "/mpesa/c2b/v1/registerurl",
        &api.token,
        &registration,
    );
    assert_eq!(status, 200, "{body}");
    let simulate = json!({"ShortCode": PAYER.parse::<u64>().unwrap(),
        "CommandID": "CustomerPayBillOnline", "Amount": "15", "Msisdn": CUSTOMER,
        "BillRefNumber": "Test Ref"});
    let (status, body) = call(&cluster, 3, "/mpesa/c2b/v2/simulate", &api.token, &simulate);
    assert_eq!(
        (status, &body["ResponseCode"]),
        (200, &json!("0")),
        "{body}"
    );
    assert!(
        body["OriginatorCoversationID"].as_str().is_some(),
        "Daraja's spelling"
    );
    let started = Instant::now();
    let confirmation = loop {
        let found = receiver
            .received()
            .into_iter()
            .filter(|r| r.path == "/c2b/confirm")
            .find_map(|r| serde_json::from_str::<Value>(&r.body).ok());
        if let Some(found) = found {
            break found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no confirmation"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(confirmation["TransAmount"], "15.00", "{confirmation}");
    assert_eq!(confirmation["BillRefNumber"], "Test Ref");
    assert_eq!(balance(&cluster, CUSTOMER), "85.00");

    // The balance list, with the Utility account at the payer's balance.
    let asked = api.accepted(api.initiated(
        "/mpesa/accountbalance/v1/query",
        "balance",
        json!({"CommandID": "AccountBalance"}),
    ));
    let result = result_for(&receiver, "/balance/result", &asked);
    let list = parameter(&result, "AccountBalance");
    let utility = format!(
        "Utility Account|KES|{}",
        balance(&cluster, &format!("business:{PAYER}"))
    );
    assert!(
        list.as_str().unwrap().contains(&utility),
        "{list} lacks {utility}"
    );
    assert!(list.as_str().unwrap().contains("Charges Paid Account|KES|"));

    // Care sets money aside in the Working account: payouts cannot spend it; the business
    // brings it back with BusinessTransferFromMMFToUtility.
    let (status, moved) = cluster
        .post(
            &format!(
                "{}/admin/v1/businesses/{PAYER}/wallets/moves",
                cluster.url(2)
            ),
            &json!({"from": "utility", "to": "working", "amount": "4000.00"}),
        )
        .unwrap();
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["working"], "4000.00");
    let utility_left: f64 = moved["utility"].as_str().unwrap().parse().unwrap();
    let too_much = (utility_left as u32) + 100;
    let set_aside = api.accepted(api.b2c("v1", "salary-5", CUSTOMER, too_much, &api.credential));
    assert_eq!(
        result_for(&receiver, "/b2c/result", &set_aside)["ResultCode"],
        json!(1),
        "money set aside in Working is not paid out"
    );
    let back = api.accepted(api.initiated(
        "/mpesa/b2b/v1/paymentrequest",
        "b2b",
        json!({"CommandID": "BusinessTransferFromMMFToUtility", "Amount": "4000",
            "PartyB": PAYER}),
    ));
    let result = result_for(&receiver, "/b2b/result", &back);
    assert_eq!(result["ResultCode"], json!(0), "{result}");
    assert_eq!(
        parameter(&result, "DebitAccountBalance"),
        "Working Account|KES|0.00"
    );
    let (_, moved) = cluster
        .post(
            &format!(
                "{}/admin/v1/businesses/{PAYER}/wallets/moves",
                cluster.url(2)
            ),
            &json!({"from": "working", "to": "utility", "amount": "1.00"}),
        )
        .unwrap();
    assert_eq!(moved["result"], "insufficient_funds", "{moved}");

    // An expired token (signed with the cluster's key, expired a second ago) is refused.
    let keys = tuma_daraja::Keys::derive(CLUSTER_SECRET.as_bytes());
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let business = tuma_actors::account::Shortcode::parse(PAYER).unwrap();
    let expired = keys.issue_token(&business, now_s - 1);
    let fresh = keys.issue_token(&business, now_s + 60);
    let balance_body = json!({"Initiator": INITIATOR, "SecurityCredential": api.credential,
        "CommandID": "AccountBalance", "PartyA": PAYER, "IdentifierType": "4", "Remarks": "ok",
        "ResultURL": format!("{}/balance/result", receiver.url),
        "QueueTimeOutURL": format!("{}/balance/timeout", receiver.url)});
    let (status, body) = call(
        &cluster,
        3,
        "/mpesa/accountbalance/v1/query",
        &expired,
        &balance_body,
    );
    assert_eq!(
        (status, &body["errorCode"]),
        (401, &json!("404.001.03")),
        "{body}"
    );
    let (status, body) = call(
        &cluster,
        3,
        "/mpesa/accountbalance/v1/query",
        &fresh,
        &balance_body,
    );
    assert_eq!(status, 200, "the same token unexpired is taken: {body}");

    // Leaders count every transfer that became final, by kind and result.
    let finished: f64 = (1..=3)
        .map(|id| cluster.metric(id, "tuma_transfers_finished_total"))
        .sum();
    assert!(finished >= 5.0, "tuma_transfers_finished_total: {finished}");
    let audit = cluster.quiet_audit(Duration::from_secs(20));
    assert_eq!(audit["balanced"], true, "{audit}");

    // A business reads its own payment's status with its API token, and no one else's.
    let status_of = |from: &str| {
        let response = cluster
            .client
            .get(format!(
                "{}/v1/transfers/pay:{paid}?from={from}",
                cluster.url(1)
            ))
            .bearer_auth(&api.token)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap_or(Value::Null))
    };
    let (status, own) = status_of(&format!("business:{PAYER}"));
    assert_eq!(
        (status, own["status"].as_str()),
        (200, Some("confirmed")),
        "{own}"
    );
    assert_eq!(own["transaction_id"], receipt, "{own}");
    assert_eq!(status_of(&format!("business:{PAYEE_PAYBILL}")).0, 403);
    assert_eq!(status_of(CUSTOMER).0, 403);

    // Business-credential actions are in the audit log under the business, never their secrets.
    let log = cluster.audit_log(tuma_tests::TOKEN);
    let payer = format!("business:{PAYER}");
    let b2c_calls: Vec<&Value> = log
        .iter()
        .filter(|r| {
            r["actor"] == payer.as_str()
                && r["role"] == "business"
                && r["action"] == "POST /mpesa/b2c/v3/paymentrequest"
                && r["target"]
                    .as_str()
                    .is_some_and(|t| t.contains("OriginatorConversationID=salary-1"))
        })
        .collect();
    let outcome = |r: &Value| r["outcome"].as_str().unwrap_or("").to_string();
    assert!(
        b2c_calls.iter().any(|r| outcome(r) == "200"),
        "the B2C order is recorded: {b2c_calls:?}"
    );
    assert!(
        b2c_calls
            .iter()
            .any(|r| outcome(r) == "409 Duplicate OriginatorConversationID"),
        "and its duplicate, refused: {b2c_calls:?}"
    );
    assert!(
        log.iter().any(|r| r["action"] == "GET /oauth/v1/generate"
            && r["actor"]
                .as_str()
                .is_some_and(|a| a.starts_with("consumer-key:"))),
        "token grants are recorded"
    );
    let text = serde_json::to_string(&log).expect("json");
    assert!(!text.contains(&api.credential), "no security credential");
    assert!(!text.contains(INITIATOR_PASSWORD), "no initiator password");
    assert!(
        !log.iter().any(
            |r| r["outcome"].as_str().is_some_and(|o| o.starts_with("401"))
                && r["action"] == "POST /mpesa/accountbalance/v1/query"
        ),
        "a call with an expired token names no one and is not recorded"
    );
}

//! The Daraja-compatible business API on real nodes: OAuth, M-Pesa Express (STK push) accepted
//! with the PIN, declined, answered with a wrong PIN and left unanswered, each outcome posted
//! once to the business's callback URL in `stkCallback` form; the STK query; a callback
//! receiver that is down and comes back; the prompt on USSD (shown first when the customer
//! dials; paid or declined there); Daraja's error envelope for bad tokens, wrong passwords, a
//! busy customer and unknown resources.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use tuma_tests::fake_gateway::{FakeGateway, Received, Style};
use tuma_tests::{with_node_flags, TestCluster, PIN};

const SHORTCODE: &str = "174379";
/// Daraja's public sandbox passkey (the reference's test vector).
const PASSKEY: &str = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";
const CONSUMER_KEY: &str = "tuma-test-consumer-key";
const CONSUMER_SECRET: &str = "tuma-test-consumer-secret";
const CUSTOMER: &str = "254708374149";

struct Business<'a> {
    cluster: &'a TestCluster,
    token: String,
    receiver: &'a FakeGateway,
}

fn call(cluster: &TestCluster, node: usize, path: &str, token: &str, body: &Value) -> (u16, Value) {
    cluster.call_api(node, path, token, body)
}

fn token(cluster: &TestCluster, node: usize, key: &str, secret: &str, grant: &str) -> (u16, Value) {
    let basic = STANDARD.encode(format!("{key}:{secret}"));
    let response = cluster
        .client
        .get(format!(
            "{}/oauth/v1/generate?grant_type={grant}",
            cluster.url(node)
        ))
        .header("Authorization", format!("Basic {basic}"))
        .send()
        .expect("the node answers");
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

/// Daraja's password for a timestamp.
fn password(timestamp: &str) -> String {
    STANDARD.encode(format!("{SHORTCODE}{PASSKEY}{timestamp}"))
}

impl Business<'_> {
    fn push(&self, node: usize, amount: u32) -> (u16, Value) {
        let timestamp = "20250101120000";
        let body = json!({
            "BusinessShortCode": 174379,
            "Password": password(timestamp),
            "Timestamp": timestamp,
            "TransactionType": "CustomerPayBillOnline",
            "Amount": amount.to_string(),
            "PartyA": CUSTOMER,
            "PartyB": SHORTCODE,
            "PhoneNumber": 254708374149u64,
            "CallBackURL": format!("{}/stk/callback", self.receiver.url),
            "AccountReference": "INV-7",
            "TransactionDesc": "Water bill",
        });
        call(
            self.cluster,
            node,
            "/mpesa/stkpush/v1/processrequest",
            &self.token,
            &body,
        )
    }

    /// A push that must be accepted; its CheckoutRequestID.
    fn accepted_push(&self, node: usize, amount: u32) -> String {
        let (status, body) = self.push(node, amount);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ResponseCode"], "0");
        let checkout = body["CheckoutRequestID"].as_str().unwrap().to_string();
        assert!(checkout.starts_with("ws_CO_"), "{checkout}");
        assert!(body["MerchantRequestID"].as_str().is_some());
        checkout
    }

    fn query(&self, node: usize, checkout: &str) -> (u16, Value) {
        let timestamp = "20250101120001";
        let body = json!({"BusinessShortCode": SHORTCODE, "Password": password(timestamp),
            "Timestamp": timestamp, "CheckoutRequestID": checkout});
        call(
            self.cluster,
            node,
            "/mpesa/stkpushquery/v1/query",
            &self.token,
            &body,
        )
    }
}

/// The customer's answer to a prompt, through the app channel.
fn answer(cluster: &TestCluster, node: usize, checkout: &str, body: Value) -> (u16, Value) {
    cluster
        .post(
            &format!("{}/v1/prompts/{checkout}", cluster.url(node)),
            &body,
        )
        .expect("the node answers")
}

/// The `stkCallback` posted for `checkout`, waited for (and proof it was posted once).
fn callback_for(receiver: &FakeGateway, checkout: &str, timeout: Duration) -> (Value, Received) {
    let started = Instant::now();
    loop {
        let delivered: Vec<(Value, Received)> = receiver
            .received()
            .into_iter()
            .filter(|r| r.answered == 200)
            .filter_map(|r| Some((serde_json::from_str::<Value>(&r.body).ok()?, r)))
            .filter(|(body, _)| body["Body"]["stkCallback"]["CheckoutRequestID"] == checkout)
            .collect();
        if let Some((body, received)) = delivered.first() {
            assert_eq!(
                delivered.len(),
                1,
                "callback for {checkout} delivered twice"
            );
            return (body["Body"]["stkCallback"].clone(), received.clone());
        }
        assert!(
            started.elapsed() < timeout,
            "no callback for {checkout} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One USSD step of session `session` on `node`: the screen (`CON …` or `END …`).
fn ussd(cluster: &TestCluster, node: usize, session: &str, text: &str) -> String {
    let form = [
        ("sessionId", session),
        ("serviceCode", "*334#"),
        ("phoneNumber", &format!("+{CUSTOMER}")),
        ("networkCode", "63902"),
        ("text", text),
    ];
    let response = cluster
        .client
        .post(format!("{}/ussd/v1/callback", cluster.url(node)))
        .form(&form)
        .send()
        .expect("the node answers");
    response.text().unwrap()
}

fn metadata(callback: &Value, name: &str) -> Value {
    callback["CallbackMetadata"]["Item"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["Name"] == name))
        .map(|i| i["Value"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn stk_push_accepted_declined_wrong_pin_and_unanswered_each_call_back_once() {
    with_node_flags(&["--daraja-prompt-lifetime", "3s"]);
    let cluster = TestCluster::start("daraja", 3, 2);
    let receiver = FakeGateway::start(Style::CallbackReceiver);
    cluster.register_customer(CUSTOMER);
    cluster.fund(CUSTOMER, "10000.00", "fund-daraja");
    let (status, body) = cluster
        .post(
            &format!("{}/admin/v1/businesses", cluster.url(1)),
            &json!({"shortcode": SHORTCODE, "kind": "paybill", "name": "Nairobi Water",
                "consumer_key": CONSUMER_KEY, "consumer_secret": CONSUMER_SECRET, "passkey": PASSKEY}),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");

    // OAuth: Basic credentials → a token, `expires_in` a string as Daraja's sandbox sends it.
    let (status, body) = token(
        &cluster,
        2,
        CONSUMER_KEY,
        CONSUMER_SECRET,
        "client_credentials",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], "3599");
    let business = Business {
        cluster: &cluster,
        token: body["access_token"].as_str().unwrap().to_string(),
        receiver: &receiver,
    };
    let (status, body) = token(&cluster, 2, CONSUMER_KEY, "wrong", "client_credentials");
    assert_eq!((status, &body["errorCode"]), (400, &json!("400.008.01")));
    assert!(body["requestId"].as_str().is_some());
    let (_, body) = token(&cluster, 3, CONSUMER_KEY, CONSUMER_SECRET, "password");
    assert_eq!(body["errorCode"], "400.008.02");

    // Daraja's envelope for a bad token, a wrong password, unknown resources.
    let forged = Business {
        cluster: &cluster,
        token: "not-a-token".into(),
        receiver: &receiver,
    };
    let (status, body) = forged.push(1, 10);
    assert_eq!((status, &body["errorCode"]), (401, &json!("404.001.03")));
    let (status, body) = call(
        &cluster,
        1,
        "/mpesa/stkpush/v1/processrequest",
        &business.token,
        &json!({"BusinessShortCode": SHORTCODE, "Password": password("20250101120000"),
            "Timestamp": "20250101120009", "TransactionType": "CustomerPayBillOnline",
            "Amount": 1, "PartyA": CUSTOMER, "PartyB": SHORTCODE, "PhoneNumber": CUSTOMER,
            "CallBackURL": "https://shop.example/cb", "AccountReference": "x"}),
    );
    assert_eq!((status, &body["errorCode"]), (500, &json!("500.001.1001")));
    assert_eq!(body["errorMessage"], "Wrong credentials");
    let (status, body) = call(
        &cluster,
        1,
        "/mpesa/nothing/v1/here",
        &business.token,
        &json!({}),
    );
    assert_eq!((status, &body["errorCode"]), (404, &json!("404.001.01")));
    // C2B simulate exists only on sandbox clusters (`--daraja-simulate-pin`), as in Daraja.
    let simulate = json!({"ShortCode": SHORTCODE, "CommandID": "CustomerPayBillOnline",
        "Amount": 1, "Msisdn": CUSTOMER, "BillRefNumber": "x"});
    let (status, body) = call(
        &cluster,
        1,
        "/mpesa/c2b/v1/simulate",
        &business.token,
        &simulate,
    );
    assert_eq!((status, &body["errorCode"]), (404, &json!("404.001.01")));

    // Accepted with the PIN on another node than the push's.
    let paid = business.accepted_push(1, 100);
    let (status, body) = business.push(2, 5);
    assert_eq!((status, &body["errorCode"]), (500, &json!("500.001.1001")));
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("already in process"),
        "{body}"
    );
    let (status, body) = cluster
        .get(&format!("{}/v1/prompts?msisdn={CUSTOMER}", cluster.url(3)))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["prompts"][0]["checkout_request_id"], paid.as_str());
    assert_eq!(body["prompts"][0]["business_name"], "Nairobi Water");
    assert_eq!(body["prompts"][0]["amount"], "100.00");
    assert_eq!(body["prompts"][0]["account_reference"], "INV-7");
    let (status, body) = business.query(2, &paid);
    assert_eq!(
        (status, &body["errorMessage"]),
        (500, &json!("The transaction is being processed"))
    );
    let (status, body) = answer(&cluster, 3, &paid, json!({"pin": PIN}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "confirmed", "{body}");
    let receipt = body["transaction_id"].as_str().unwrap().to_string();
    let (callback, received) = callback_for(&receiver, &paid, Duration::from_secs(15));
    assert_eq!(callback["ResultCode"], 0);
    assert_eq!(metadata(&callback, "Amount"), 100);
    assert_eq!(metadata(&callback, "MpesaReceiptNumber"), receipt.as_str());
    assert_eq!(metadata(&callback, "PhoneNumber"), 254708374149u64);
    assert!(metadata(&callback, "TransactionDate").as_u64().unwrap() > 20_250_000_000_000);
    assert!(received.headers.contains_key("x-tuma-callback-id"));
    let (status, body) = business.query(1, &paid);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ResultCode"], "0", "a string in the query answer");

    // Declined: 1032, without metadata. A second answer to a closed prompt is refused.
    let declined = business.accepted_push(2, 50);
    let (status, body) = answer(
        &cluster,
        1,
        &declined,
        json!({"decline": true, "msisdn": CUSTOMER}),
    );
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("declined")),
        "{body}"
    );
    let (callback, _) = callback_for(&receiver, &declined, Duration::from_secs(15));
    assert_eq!(callback["ResultCode"], 1032);
    assert!(callback.get("CallbackMetadata").is_none());
    let (status, _) = answer(&cluster, 1, &declined, json!({"pin": PIN}));
    assert_eq!(status, 422, "a declined prompt cannot be paid");
    let (status, _) = answer(&cluster, 1, &declined, json!({}));
    assert_eq!(status, 400, "neither a PIN nor a decline");
    let (status, _) = answer(&cluster, 2, "ws_CO_000000000000", json!({"pin": PIN}));
    assert_eq!(status, 404, "an unknown prompt");

    // A wrong PIN: 2001.
    let wrong = business.accepted_push(3, 50);
    let (status, body) = answer(&cluster, 2, &wrong, json!({"pin": "0000"}));
    assert_eq!(
        (status, &body["result"]),
        (200, &json!("wrong_pin")),
        "{body}"
    );
    let (callback, _) = callback_for(&receiver, &wrong, Duration::from_secs(15));
    assert_eq!(callback["ResultCode"], 2001);

    // Unanswered within the prompt's 3 s: 1037.
    let silent = business.accepted_push(1, 50);
    let (callback, _) = callback_for(&receiver, &silent, Duration::from_secs(20));
    assert_eq!(callback["ResultCode"], 1037);
    let (_, body) = business.query(3, &silent);
    assert_eq!(body["ResultCode"], "1037");

    // The receiver is down when the outcome is decided: it gets it once it is back.
    receiver.set_up(false);
    let late = business.accepted_push(2, 70);
    let (_, body) = answer(&cluster, 2, &late, json!({"pin": PIN, "msisdn": CUSTOMER}));
    assert_eq!(body["status"], "confirmed", "{body}");
    let started = Instant::now();
    while !receiver
        .received()
        .iter()
        .any(|r| r.answered == 503 && r.body.contains(&late))
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never tried while down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    receiver.set_up(true);
    let (callback, _) = callback_for(&receiver, &late, Duration::from_secs(90));
    assert_eq!(callback["ResultCode"], 0);

    // On USSD: the prompt shows first when the customer dials; each step on another node.
    let dialled = business.accepted_push(1, 30);
    let offer = ussd(&cluster, 2, "ussd-pay", "");
    assert!(
        offer.starts_with("CON Pay Nairobi Water Ksh30.00 for account INV-7?"),
        "{offer}"
    );
    assert!(ussd(&cluster, 3, "ussd-pay", "1").starts_with("CON Enter your M-PESA PIN"));
    let paid_screen = ussd(&cluster, 1, "ussd-pay", &format!("1*{PIN}"));
    assert!(
        paid_screen.starts_with("END ") && paid_screen.contains("Confirmed"),
        "{paid_screen}"
    );
    let (callback, _) = callback_for(&receiver, &dialled, Duration::from_secs(15));
    assert_eq!(callback["ResultCode"], 0);
    let refused = business.accepted_push(2, 30);
    assert!(ussd(&cluster, 3, "ussd-no", "").starts_with("CON Pay Nairobi Water"));
    let declined_screen = ussd(&cluster, 3, "ussd-no", "2");
    assert!(
        declined_screen.starts_with("END You declined"),
        "{declined_screen}"
    );
    let (callback, _) = callback_for(&receiver, &refused, Duration::from_secs(15));
    assert_eq!(callback["ResultCode"], 1032);
    // With no prompt waiting, the menu is as always; "0" skips a prompt to the menu.
    let menu = ussd(&cluster, 1, "ussd-menu", "");
    assert!(
        menu.starts_with("CON ") && !menu.contains("Pay Nairobi Water"),
        "{menu}"
    );
    let skipped = business.accepted_push(3, 30);
    assert_eq!(
        ussd(&cluster, 2, "ussd-skip", "0"),
        menu,
        "0 goes to the menu"
    );
    let _ = answer(&cluster, 1, &skipped, json!({"decline": true}));

    let (_, account) = cluster
        .get(&format!(
            "{}/admin/v1/accounts/business:{SHORTCODE}",
            cluster.url(1)
        ))
        .unwrap();
    assert_eq!(account["balance"], "200.00", "{account}");
}

/// A customer's bill payment through the app channel: (HTTP status, answer).
fn pay_bill(cluster: &TestCluster, node: usize, id: &str, to: &str, amount: &str) -> (u16, Value) {
    let body = json!({"request_id": id, "kind": "pay_bill", "from": CUSTOMER, "to": to,
        "amount": amount, "account_reference": "ACC-42", "pin": PIN});
    cluster
        .post(&format!("{}/v1/transfers", cluster.url(node)), &body)
        .expect("the node answers")
}

#[test]
fn c2b_validation_accepts_rejects_or_times_out_and_every_payment_is_confirmed_once() {
    with_node_flags(&[
        "--daraja-validation-timeout",
        "2s",
        "--daraja-calls-per-minute",
        "5",
    ]);
    let cluster = TestCluster::start("daraja-c2b", 3, 2);
    let validator = FakeGateway::start(Style::CallbackReceiver);
    let receiver = FakeGateway::start(Style::CallbackReceiver);
    cluster.register_customer(CUSTOMER);
    cluster.fund(CUSTOMER, "10000.00", "fund-c2b");
    let (status, body) = cluster
        .post(
            &format!("{}/admin/v1/businesses", cluster.url(1)),
            &json!({"shortcode": "600100", "kind": "paybill", "name": "Kisumu Power",
                "consumer_key": "c2b-key", "consumer_secret": "c2b-secret", "passkey": "pk"}),
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let (_, body) = token(&cluster, 1, "c2b-key", "c2b-secret", "client_credentials");
    let access = body["access_token"].as_str().unwrap().to_string();

    // Before registering, a payment needs no validation and is not confirmed to anyone.
    let (status, body) = pay_bill(&cluster, 1, "c2b-0", "business:600100", "10.00");
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("confirmed")),
        "{body}"
    );

    let registration = json!({"ShortCode": 600100, "ResponseType": "Completed",
        "ConfirmationURL": format!("{}/c2b/confirm", receiver.url),
        "ValidationURL": format!("{}/c2b/validate", validator.url)});
    let (status, body) = call(
        &cluster,
        2,
        "/mpesa/c2b/v2/registerurl",
        &access,
        &registration,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ResponseCode"], "0");
    assert!(
        body["OriginatorCoversationID"].as_str().is_some(),
        "Daraja's spelling"
    );
    let (_, body) = call(
        &cluster,
        3,
        "/mpesa/c2b/v1/registerurl",
        &access,
        &registration,
    );
    assert_eq!(
        body["errorCode"], "500.003.1001",
        "a second registration is refused"
    );
    let (_, body) = call(
        &cluster,
        3,
        "/mpesa/c2b/v1/registerurl",
        &access,
        &json!({"ShortCode": "600100", "ResponseType": "completed", "ConfirmationURL": "https://x.example/c"}),
    );
    assert_eq!(
        body["errorCode"], "400.002.02",
        "ResponseType is exactly Completed or Cancelled"
    );

    // Validation accepts: the payment goes ahead and is confirmed with the masked MSISDN.
    validator.set_answer(Some((
        200,
        r#"{"ResultCode":"0","ResultDesc":"Accepted"}"#,
        Duration::ZERO,
    )));
    let (status, body) = pay_bill(&cluster, 3, "c2b-1", "business:600100", "25.00");
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("confirmed")),
        "{body}"
    );
    let receipt = body["transaction_id"].as_str().unwrap().to_string();
    let asked = validator.received();
    assert_eq!(asked.len(), 1, "validated once");
    let asked: Value = serde_json::from_str(&asked[0].body).unwrap();
    assert_eq!(asked["TransAmount"], "25.00");
    assert_eq!(asked["BillRefNumber"], "ACC-42");
    assert_eq!(asked["BusinessShortCode"], "600100");
    let confirmation = confirmation_for(&receiver, &receipt);
    assert_eq!(confirmation["TransactionType"], "Pay Bill");
    assert_eq!(confirmation["TransAmount"], "25.00");
    assert_eq!(confirmation["MSISDN"], "2547 ***** 149");
    assert_eq!(confirmation["FirstName"], "CUSTOMER");
    assert_eq!(confirmation["OrgAccountBalance"], "35.00");

    // A wrong PIN never reaches the business: refused before validation.
    let body = json!({"request_id": "c2b-pin", "kind": "pay_bill", "from": CUSTOMER,
        "to": "business:600100", "amount": "5.00", "account_reference": "ACC-42", "pin": "0000"});
    let (_, answer) = cluster
        .post(&format!("{}/v1/transfers", cluster.url(2)), &body)
        .unwrap();
    assert_eq!(answer["result"], "wrong_pin", "{answer}");
    assert_eq!(
        validator.received().len(),
        1,
        "validation not asked for a wrong PIN"
    );

    // Validation rejects: refused, nothing moves, nothing is confirmed.
    validator.set_answer(Some((
        200,
        r#"{"ResultCode":"C2B00012","ResultDesc":"Rejected"}"#,
        Duration::ZERO,
    )));
    let (status, body) = pay_bill(&cluster, 2, "c2b-2", "business:600100", "30.00");
    assert_eq!(
        (status, &body["result"]),
        (422, &json!("rejected_by_payee")),
        "{body}"
    );

    // Validation does not answer in time: the registered default (Completed) applies.
    validator.set_answer(Some((200, r#"{"ResultCode":"0"}"#, Duration::from_secs(4))));
    let (status, body) = pay_bill(&cluster, 1, "c2b-3", "business:600100", "40.00");
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("confirmed")),
        "{body}"
    );
    let late = body["transaction_id"].as_str().unwrap().to_string();
    assert_eq!(
        confirmation_for(&receiver, &late)["OrgAccountBalance"],
        "75.00"
    );

    let (_, account) = cluster
        .get(&format!(
            "{}/admin/v1/accounts/business:600100",
            cluster.url(1)
        ))
        .unwrap();
    assert_eq!(account["balance"], "75.00", "{account}");
    let confirmed = receiver.received();
    assert_eq!(
        confirmed.len(),
        2,
        "one confirmation per payment after registering: {confirmed:?}"
    );

    // Each business has a call budget per node: five a minute here (its token request on node
    // 1 spent one), then Spike Arrest.
    let query = json!({"BusinessShortCode": "600100", "Password": "x",
        "Timestamp": "20250101120000", "CheckoutRequestID": "ws_CO_1"});
    let codes: Vec<Value> = (0..6)
        .map(|_| call(&cluster, 1, "/mpesa/stkpushquery/v1/query", &access, &query).1)
        .map(|answer| answer["errorCode"].clone())
        .collect();
    assert!(!codes[..4].contains(&json!("500.003.02")), "{codes:?}");
    assert_eq!(
        codes[4..],
        [json!("500.003.02"), json!("500.003.02")],
        "{codes:?}"
    );
    // The refusal says when to come back: five calls a minute refill one every 12 s.
    let refused = cluster
        .client
        .post(format!("{}/mpesa/stkpushquery/v1/query", cluster.url(1)))
        .bearer_auth(&access)
        .json(&query)
        .send()
        .expect("the node answers");
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry_after), "Retry-After {retry_after}");
}

/// The confirmation posted for the payment with this receipt, waited for.
fn confirmation_for(receiver: &FakeGateway, receipt: &str) -> Value {
    let started = Instant::now();
    loop {
        let found = receiver
            .received()
            .into_iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .find(|body| body["TransID"] == receipt);
        if let Some(body) = found {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no confirmation of {receipt}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

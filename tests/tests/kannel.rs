//! End to end with Kannel from Debian's packages (`scripts/install-kannel.sh`) and its fake
//! SMSC: a USSD send-money session on a real cluster produces the payer's and the payee's
//! confirmations at the SMSC, Kannel's delivery reports come back, and a confirmation
//! forwarded to 456 from the phone becomes a reversal request (and the customer is texted).
//! Without Kannel installed the test says it skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tuma_tests::{with_node_flags, TestCluster, PIN};

const ALICE: &str = "254711000001";
const BOB: &str = "254711000002";
const BINARIES: [&str; 3] = [
    "/usr/sbin/bearerbox",
    "/usr/sbin/smsbox",
    "/usr/lib/kannel/test/fakesmsc",
];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kannel/kannel-local.sh")
}

/// A running Kannel; stopped (and its directory removed) when dropped.
struct Kannel {
    dir: PathBuf,
}

impl Kannel {
    fn start(sendsms_port: u16, get_url: &str) -> Kannel {
        let dir = std::env::temp_dir().join(format!("tuma-kannel-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let status = Command::new("bash")
            .arg(script())
            .args(["start", dir.to_str().unwrap(), get_url])
            .env("KANNEL_SENDSMS_PORT", sendsms_port.to_string())
            .env("KANNEL_USERNAME", "tuma")
            .env("KANNEL_PASSWORD", "kannel-secret")
            .status()
            .expect("running kannel-local.sh");
        assert!(
            status.success(),
            "Kannel did not start; logs in {}",
            dir.display()
        );
        Kannel { dir }
    }

    /// The texts the fake SMSC received: `FROM TO text TEXT` lines.
    fn received(&self) -> Vec<String> {
        let output = Command::new("bash")
            .arg(script())
            .args(["mt-log", self.dir.to_str().unwrap()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A text from a phone, through the fake SMSC.
    fn send_from_phone(&self, from: &str, to: &str, text: &str) {
        let line = format!("{from} {to} text {text}");
        assert!(line.len() < 250, "fakesmsc splits longer lines");
        let status = Command::new("bash")
            .arg(script())
            .args(["mo", self.dir.to_str().unwrap(), &line])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_for_text(&self, to: &str, containing: &str) -> String {
        let started = Instant::now();
        loop {
            let found = self
                .received()
                .into_iter()
                .find(|line| line.contains(to) && line.contains(containing));
            if let Some(line) = found {
                return line;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no text to {to} with {containing:?} at the SMSC; it has {:#?}",
                self.received()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Kannel {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", self.dir.to_str().unwrap()])
            .status();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ussd(cluster: &TestCluster, node: usize, text: &str) -> String {
    let form = [
        ("sessionId", "kannel-e2e-1"),
        ("serviceCode", "*334#"),
        ("phoneNumber", ALICE),
        ("networkCode", "63902"),
        ("text", text),
    ];
    let url = format!("{}/ussd/v1/callback", cluster.url(node));
    cluster
        .client
        .post(url)
        .form(&form)
        .send()
        .unwrap()
        .text()
        .unwrap()
}

#[test]
fn a_ussd_payment_texts_both_parties_through_kannel_and_a_forward_to_456_files_a_reversal() {
    if let Some(missing) = BINARIES.iter().find(|b| !Path::new(b).exists()) {
        eprintln!(
            "SKIPPED: Kannel is not installed ({missing} is missing); run scripts/install-kannel.sh to run this test"
        );
        return;
    }
    let sendsms_port = free_port();
    let gateway_url = format!("http://127.0.0.1:{sendsms_port}");
    with_node_flags(&[
        "--sms-gateway",
        "kannel",
        "--sms-gateway-url",
        &gateway_url,
        "--sms-username",
        "tuma",
        "--sms-secret",
        "kannel-secret",
        "--sms-from",
        "MPESA",
    ]);
    let cluster = TestCluster::start("kannel", 3, 4);
    let get_url = format!("{}/sms/v1/inbound?from=%p&to=%P&text=%b", cluster.url(2));
    let kannel = Kannel::start(sendsms_port, &get_url);
    cluster.register_customer(ALICE);
    cluster.register_customer(BOB);
    cluster.fund(ALICE, "1000.00", "fund-alice");

    // Alice sends Bob Ksh100 from her phone's USSD menu, each step to another node.
    let inputs = ["1", "0711000002", "100", "1", PIN];
    for n in 0..=inputs.len() {
        let screen = ussd(&cluster, 1 + n % 3, &inputs[..n].join("*"));
        assert!(
            screen.starts_with(if n < inputs.len() { "CON " } else { "END " }),
            "{screen}"
        );
    }
    let payer = kannel.wait_for_text(ALICE, "Confirmed. Ksh100.00 sent to");
    kannel.wait_for_text(BOB, "You have received Ksh100.00");

    // Kannel's delivery reports come back to the node that sent each text.
    let started = Instant::now();
    loop {
        let (_, body) = cluster
            .get(&format!("{}/admin/v1/sms?msisdn={BOB}", cluster.url(3)))
            .unwrap();
        if body["texts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["status"] == "delivered")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no delivery report: {body}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Alice forwards her confirmation to 456 from the phone.
    let confirmation = payer.split_once(" text ").map(|(_, t)| t).unwrap();
    let receipt = confirmation.split_whitespace().next().unwrap().to_string();
    let forwarded: String = confirmation.chars().take(150).collect();
    kannel.send_from_phone(&format!("+{ALICE}"), "456", &forwarded);
    kannel.wait_for_text(ALICE, &format!("Your request to reverse {receipt}"));
    let (status, open) = cluster
        .get(&format!("{}/admin/v1/reversal-requests", cluster.url(1)))
        .unwrap();
    assert_eq!(status, 200);
    let requests = open["requests"].as_array().unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r["transaction_id"] == receipt.as_str() && r["requested_by"] == ALICE),
        "{open}"
    );
}

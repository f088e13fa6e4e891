//! Backup and restore on real nodes: a backup taken while transfers keep coming is checked
//! offline (and a damaged copy is refused), then restored into a new cluster whose books
//! balance, whose e-money is the backup's, which holds every transfer confirmed before the
//! backup began, the audit trail, and which takes new transfers at once.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tuma_tests::{send_money, tuma_binary, with_node_flags, TestCluster, TOKEN};

const PEOPLE: usize = 8;

fn person(i: usize) -> String {
    format!("2547330000{i:02}")
}

fn ctl(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(tuma_binary())
        .arg("ctl")
        .args(args)
        .env("TUMA_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("tuma runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Sends transfers round the ring until `stop`; returns (request id, payer) of each confirmed.
fn load(url: String, stop: Arc<AtomicBool>, confirmed: Arc<Mutex<Vec<(String, String)>>>) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a client");
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let (from, to) = (person(n % PEOPLE), person((n + 3) % PEOPLE));
        let id = format!("load-{n}");
        let answer: Option<Value> = client
            .post(format!("{url}/v1/transfers"))
            .json(&send_money(&id, &from, &to, "1.00"))
            .send()
            .ok()
            .and_then(|r| r.json().ok());
        if answer.is_some_and(|a| a["status"] == "confirmed") {
            confirmed.lock().expect("the list").push((id, from));
        }
        n += 1;
    }
}

fn e_money(audit: &Value) -> String {
    audit["totals"]["e_money_issued"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

#[test]
fn a_backup_taken_under_load_restores_into_a_new_cluster_with_every_confirmed_transfer() {
    let cluster = TestCluster::start("backup", 3, 4);
    for i in 0..PEOPLE {
        cluster.register_customer(&person(i));
        cluster.fund(&person(i), "1000.00", &format!("fund-{i}"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let loader = {
        let (url, stop, confirmed) = (cluster.url(2).to_string(), stop.clone(), confirmed.clone());
        std::thread::spawn(move || load(url, stop, confirmed))
    };
    std::thread::sleep(Duration::from_millis(1_500));
    let before: Vec<(String, String)> = confirmed.lock().expect("the list").clone();
    // Outside the cluster's directory, which goes with the cluster.
    let copies = std::env::temp_dir().join(format!("tuma-it-backups-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copies);
    let dir = copies.join("backup-1");
    let (ok, out, err) = ctl(&[
        "--node",
        cluster.url(1),
        "backup",
        "--out",
        dir.to_str().expect("a path"),
    ]);
    assert!(ok, "backup failed: {out}{err}");
    eprint!("{err}{out}");
    assert!(out.contains("shards=4 accounts="), "{out}");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    loader.join().expect("the load ends");
    let after = confirmed.lock().expect("the list").len();
    eprintln!(
        "{} transfers confirmed before the backup, {after} in all",
        before.len()
    );
    assert!(
        before.len() >= 5 && after > before.len(),
        "transfers kept confirming around the backup: {} before, {after} in all",
        before.len()
    );

    // Offline: the copy checks out; a damaged one does not.
    let (ok, out, err) = ctl(&["backup", "verify", dir.to_str().expect("a path")]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("verified shards=4") && out.contains("balance_sum=0.00"),
        "{out}"
    );
    assert!(out.contains("clearing_sum=0.00"), "{out}");
    let damaged = copies.join("backup-damaged");
    copy_dir(&dir, &damaged);
    let rows = damaged.join("shard-0001.rows");
    let mut bytes = std::fs::read(&rows).expect("rows");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&rows, bytes).expect("write");
    let (ok, _, err) = ctl(&["backup", "verify", damaged.to_str().expect("a path")]);
    assert!(!ok && err.contains("shard-0001.rows"), "{err}");

    let audit = cluster.quiet_audit(Duration::from_secs(20));
    assert_eq!(audit["balanced"], true, "{audit}");
    let issued = e_money(&audit);
    drop(cluster);

    // A new cluster from the backup.
    with_node_flags(&["--restore", dir.to_str().expect("a path")]);
    let restored = TestCluster::start("backup-restored", 3, 4);
    let audit = restored.quiet_audit(Duration::from_secs(20));
    assert_eq!(audit["balanced"], true, "{audit}");
    assert_eq!(e_money(&audit), issued, "the backup's e-money");
    for (id, from) in &before {
        let (status, body) = restored
            .get(&format!(
                "{}/v1/transfers/{id}?from={from}",
                restored.url(3)
            ))
            .expect("the node answers");
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("confirmed")),
            "{id} was confirmed before the backup: {body}"
        );
    }
    let log = restored.audit_log(TOKEN);
    assert!(
        log.iter().any(|r| r["action"] == "POST /admin/v1/float"
            && r["target"].as_str().is_some_and(|t| t.contains("fund-0"))),
        "the audit trail came along"
    );
    let (status, body) = restored
        .post(
            &format!("{}/v1/transfers", restored.url(1)),
            &send_money("after-restore", &person(0), &person(1), "2.00"),
        )
        .expect("the node answers");
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("confirmed")),
        "the restored cluster takes transfers: {body}"
    );
    let _ = std::fs::remove_dir_all(&copies);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("a directory") {
        let entry = entry.expect("an entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

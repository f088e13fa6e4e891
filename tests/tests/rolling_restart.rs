//! A rolling restart of every node (SIGTERM, start again) under steady load: each stopping
//! node hands its leaderships over first, so no request fails — retries on another node inside
//! a request's deadline are allowed, counted and reported.

use std::time::Duration;

use tuma_tests::steady_load::{assert_confirmed_present, customers, SteadyLoad};
use tuma_tests::TestCluster;

const SETTLE: Duration = Duration::from_secs(120);

#[test]
fn a_rolling_restart_fails_no_request() {
    let mut cluster = TestCluster::start("rolling", 3, 8);
    let people = customers(&cluster, 12, "100000.00");
    let urls: Vec<String> = (1..=3).map(|i| cluster.url(i).to_string()).collect();
    let load = SteadyLoad::start(urls, people, 4, "120.00");
    std::thread::sleep(Duration::from_secs(2));
    for id in 1..=3 {
        let before = load.confirmed_so_far();
        assert_eq!(cluster.stop(id), Some(0), "node {id} stops cleanly");
        cluster.spawn(id, None);
        cluster.wait_ready(Duration::from_secs(60));
        // Let the restarted node catch up and take its leaderships back before the next one.
        cluster.wait_for("the restarted node to lead again", SETTLE, |c| {
            c.leaders()
                .iter()
                .any(|(n, led)| *n == id && !led.is_empty())
        });
        cluster.wait_for("traffic to keep flowing", SETTLE, |_| {
            load.confirmed_so_far() > before + 20
        });
    }
    let report = load.finish();
    println!(
        "rolling restart: confirmed={} failed={} retries={}",
        report.confirmed.len(),
        report.failed.len(),
        report.retries
    );
    assert!(
        report.failed.is_empty(),
        "requests failed: {:?}",
        report.failed
    );
    let audit = cluster.quiet_audit(Duration::from_secs(60));
    assert_eq!(audit["balanced"], true, "{audit}");
    assert_confirmed_present(&cluster, cluster.url(1), &report.confirmed);
}

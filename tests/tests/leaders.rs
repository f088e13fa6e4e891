//! Leadership spreads evenly: every node ends up leading its fair share of shards.

use std::time::{Duration, Instant};

use tuma_tests::TestCluster;

#[test]
fn leaders_spread_evenly_across_nodes() {
    let cluster = TestCluster::start("leaders", 3, 9);
    let started = Instant::now();
    loop {
        let counts: Vec<usize> = cluster.leaders().iter().map(|(_, led)| led.len()).collect();
        if counts.len() == 3 && counts.iter().all(|&c| c == 3) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "leaders never balanced: {counts:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

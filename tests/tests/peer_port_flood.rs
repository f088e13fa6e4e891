//! Silent sockets on the peer port must not lock real peers out. Anyone who reaches the port can
//! open connections and never say a word, and open another the moment one is closed: here
//! 10,000 at once, from the address the real peers use, each reopened as soon as the node
//! closes it (at most 4,000 new sockets a second). A node that restarts meanwhile must still
//! rejoin. Node 3 stays down, so the cluster serves again only once the restarted node 2 and the
//! flooded node 1 have found each other through node 1's port. (Before admission pushed out the
//! oldest unauthenticated socket, the flood took every slot back the moment one was freed and
//! node 2 never got in: checked by running this test against the old acceptor.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tuma_tests::{send_money, TestCluster};

/// Sockets held open at once.
const HELD: usize = 10_000;
/// Most new sockets a second, over all of them.
const CONNECTS_PER_SECOND: u32 = 4_000;

/// Spaces connects out to [`CONNECTS_PER_SECOND`].
struct Pace(Mutex<tokio::time::Instant>);

impl Pace {
    async fn wait(&self) {
        let slot = {
            let mut next = self.0.lock().await;
            let slot = (*next).max(tokio::time::Instant::now());
            *next = slot + Duration::from_secs(1) / CONNECTS_PER_SECOND;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// One silent socket to `target`, reopened whenever the node closes it.
async fn hold_silent_socket(target: SocketAddr, pace: Arc<Pace>, opened: Arc<AtomicUsize>) {
    loop {
        pace.wait().await;
        let Ok(mut socket) = TcpStream::connect(target).await else {
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        let mut buffer = [0u8; 64];
        while let Ok(read) = socket.read(&mut buffer).await {
            if read == 0 {
                break;
            }
        }
    }
}

/// Raises this process's open-file limit to its hard limit; returns how many sockets it may
/// hold beside what the test itself needs.
fn socket_budget() -> usize {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    }
    (hard.min(1 << 20) as usize).saturating_sub(500)
}

#[test]
fn silent_sockets_on_the_peer_port_do_not_keep_a_restarted_node_out() {
    let budget = socket_budget();
    let held = HELD.min(budget);
    if held < HELD {
        eprintln!(
            "this process may open only {budget} files (ulimit -Hn): holding {held} sockets, not {HELD}"
        );
    }
    assert!(
        held >= 2_000,
        "too few file descriptors to flood with ({budget})"
    );
    let mut cluster = TestCluster::start("flood", 3, 4);
    cluster.register_customer("254711000001");
    cluster.register_customer("254711000002");
    cluster.fund("254711000001", "1000.00", "flood-float");
    cluster.kill9(3);
    cluster.kill9(2);

    let opened = Arc::new(AtomicUsize::new(0));
    let flood = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the flood");
    let pace = Arc::new(Pace(Mutex::new(tokio::time::Instant::now())));
    for _ in 0..held {
        let target = cluster.peer_addr(1);
        flood.spawn(hold_silent_socket(target, pace.clone(), opened.clone()));
    }
    let started = Instant::now();
    while opened.load(Ordering::Relaxed) < held {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "opened only {} sockets in a minute",
            opened.load(Ordering::Relaxed)
        );
        thread::sleep(Duration::from_millis(50));
    }

    cluster.spawn(2, None);
    let url = cluster.url(1).to_string();
    let rejoined = Instant::now();
    let mut answer = None;
    while rejoined.elapsed() < Duration::from_secs(90) {
        let body = send_money("flood-send", "254711000001", "254711000002", "10.00");
        if let Some((status, reply)) = cluster.post(&format!("{url}/v1/transfers"), &body) {
            let confirmed = status == 200 && reply["status"] == "confirmed";
            answer = Some(reply);
            if confirmed {
                break;
            }
        }
        thread::sleep(Duration::from_millis(500));
    }
    let took = rejoined.elapsed();
    let pushed_out = cluster.metric(1, "tuma_transport_handshakes_pushed_out_total");
    flood.shutdown_background();
    let answer = answer.expect("an answer");
    assert_eq!(
        answer["status"], "confirmed",
        "node 2 never rejoined node 1 through its flooded peer port: last answer {answer}; logs in {}",
        cluster.dir.display()
    );
    let total = opened.load(Ordering::Relaxed);
    eprintln!(
        "rejoined and confirmed a transfer {took:?} after the restart; {total} silent sockets opened, {pushed_out} pushed out by node 1"
    );
    assert!(
        pushed_out >= (held as f64) * 0.9,
        "node 1 pushed out only {pushed_out} of the {total} silent sockets"
    );
}

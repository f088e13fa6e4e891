//! Transport tests on loopback: every wait is bounded, so a failure fails instead of hanging.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, timeout};

use super::crypto::{self, Hello, Sealer, HELLO_LEN};
use super::frame::{self, HEADER_LEN};
use super::*;

mod security;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Msg {
    seq: u64,
    body: String,
}

fn msg(seq: u64) -> Msg {
    Msg {
        seq,
        body: format!("message {seq}"),
    }
}

type Inbox = mpsc::Receiver<(NodeId, Msg)>;

const SECRET: &[u8] = b"tuma-test-cluster-secret-0123456789";
const WAIT: Duration = Duration::from_secs(10);

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback")
}

/// An address nobody listens on (connections are refused).
fn dead_addr() -> SocketAddr {
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    reserved.local_addr().expect("local addr")
}

fn config(
    id: NodeId,
    listen: SocketAddr,
    peers: &[(NodeId, SocketAddr)],
    secret: &[u8],
) -> TransportConfig {
    let mut config =
        TransportConfig::new(id, listen, peers.iter().copied().collect(), secret.to_vec());
    config.reconnect_backoff_min_ms = 10;
    config.reconnect_backoff_max_ms = 200;
    config
}

async fn start(config: TransportConfig, listener: TcpListener) -> (Transport<Msg>, Inbox) {
    let (tx, rx) = mpsc::channel(1024);
    let transport = Transport::start_with_listener(config, listener, tx)
        .await
        .expect("start transport");
    (transport, rx)
}

async fn recv_n(inbox: &mut Inbox, n: usize) -> Vec<(NodeId, Msg)> {
    let collect = async {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            match inbox.recv().await {
                Some(delivered) => got.push(delivered),
                None => break,
            }
        }
        got
    };
    let got = timeout(WAIT, collect)
        .await
        .expect("timed out waiting for messages");
    assert_eq!(got.len(), n, "inbound channel closed early");
    got
}

/// The sequence numbers of `got`, all of which must come from `from`.
fn seqs(got: &[(NodeId, Msg)], from: NodeId) -> Vec<u64> {
    got.iter()
        .map(|(sender, m)| {
            assert_eq!(*sender, from);
            m.seq
        })
        .collect()
}

async fn assert_silent(inbox: &mut Inbox, period: Duration) {
    if let Ok(Some(delivered)) = timeout(period, inbox.recv()).await {
        panic!("unexpected delivery {delivered:?}");
    }
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let wait = async {
        while !condition() {
            sleep(Duration::from_millis(5)).await;
        }
    };
    timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Waits until the other side closes (or resets) the connection.
async fn expect_closed(stream: &mut TcpStream) {
    let drain = async {
        let mut buf = [0u8; 256];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    timeout(WAIT, drain)
        .await
        .expect("connection was not closed");
}

/// A genuine connector handshake, as node `id`, with node 1 at `addr`.
async fn raw_session(addr: SocketAddr, id: NodeId, secret: &[u8]) -> (TcpStream, Sealer) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let sealer = crypto::connect(&mut stream, id, 1, secret)
        .await
        .expect("handshake");
    (stream, sealer)
}

fn seal(sealer: &mut Sealer, messages: &[Msg]) -> Vec<u8> {
    let mut frames = Vec::new();
    assert_eq!(
        frame::seal_batch(sealer, messages, 1 << 20, &mut frames).expect("seal"),
        0
    );
    assert_eq!(frames.len(), 1);
    frames.remove(0)
}

#[tokio::test]
async fn exchange_both_ways_in_order_with_batching() {
    let (la, lb) = (listener().await, listener().await);
    let (addr_a, addr_b) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
    let (a, mut inbox_a) = start(config(1, addr_a, &[(1, addr_a), (2, addr_b)], SECRET), la).await;
    let (b, mut inbox_b) = start(config(2, addr_b, &[(1, addr_a)], SECRET), lb).await;

    for i in 0..100 {
        a.send(2, msg(i)).unwrap();
        b.send(1, msg(1_000 + i)).unwrap();
    }
    assert_eq!(
        seqs(&recv_n(&mut inbox_b, 100).await, 1),
        (0..100).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&recv_n(&mut inbox_a, 100).await, 2),
        (1_000..1_100).collect::<Vec<_>>()
    );

    let before = a.stats().frames_sent;
    for i in 0..10_000 {
        a.send(2, msg(i)).unwrap();
    }
    assert_eq!(
        seqs(&recv_n(&mut inbox_b, 10_000).await, 1),
        (0..10_000).collect::<Vec<_>>()
    );
    let frames = a.stats().frames_sent - before;
    assert!(
        frames < 100,
        "no batching: {frames} frames for 10 000 messages"
    );
    assert_eq!(b.stats().frames_received, a.stats().frames_sent);
    for stats in [a.stats(), b.stats()] {
        assert_eq!((stats.auth_failures, stats.frames_rejected), (0, 0));
    }
    assert!(a.is_connected(2) && b.is_connected(1));
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn reconnects_after_the_peer_restarts() {
    let l = listener().await;
    let addr = l.local_addr().unwrap();
    let peer2 = dead_addr();
    let (a, mut inbox) = start(config(1, addr, &[(2, peer2)], SECRET), l).await;
    let lb = listener().await;
    let (b, _) = start(
        config(2, lb.local_addr().unwrap(), &[(1, addr)], SECRET),
        lb,
    )
    .await;
    b.send(1, msg(0)).unwrap();
    assert_eq!(seqs(&recv_n(&mut inbox, 1).await, 2), [0]);

    a.shutdown();
    drop(a);
    let closed = timeout(WAIT, inbox.recv())
        .await
        .expect("inbound channel not closed");
    assert!(
        closed.is_none(),
        "shutdown must close every inbound connection"
    );
    eventually("the sender to notice", || !b.is_connected(1)).await;

    let rebind = async {
        loop {
            match TcpListener::bind(addr).await {
                Ok(l) => return l,
                Err(_) => sleep(Duration::from_millis(10)).await,
            }
        }
    };
    let l = timeout(WAIT, rebind).await.expect("rebind the same port");
    let (a, mut inbox) = start(config(1, addr, &[(2, peer2)], SECRET), l).await;
    eventually("the sender to reconnect", || b.is_connected(1)).await;
    for i in 1..=20 {
        b.send(1, msg(i)).unwrap();
    }
    assert_eq!(
        seqs(&recv_n(&mut inbox, 20).await, 2),
        (1..=20).collect::<Vec<_>>()
    );

    // Dropping the last handle stops the transport just like shutdown.
    drop(a);
    eventually("the sender to notice the drop", || !b.is_connected(1)).await;
    b.shutdown();
}

/// Counts `tuma_transport_dropped_total`.
#[derive(Default)]
struct DropCounter(Arc<AtomicU64>);

struct Count(Arc<AtomicU64>);

impl metrics::CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

impl metrics::Recorder for DropCounter {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        if key.name() == METRIC_DROPPED {
            metrics::Counter::from_arc(Arc::new(Count(self.0.clone())))
        } else {
            metrics::Counter::noop()
        }
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[tokio::test]
async fn full_queue_refuses_messages() {
    let l = listener().await;
    let own = l.local_addr().unwrap();
    let mut config = config(1, own, &[(1, own), (2, dead_addr())], SECRET);
    config.queue_max = 4;
    let (t, _inbox) = start(config, l).await;
    sleep(Duration::from_millis(50)).await; // the writer is now failing to connect and backing off
    let recorder = DropCounter::default();
    let results: Vec<_> =
        metrics::with_local_recorder(&recorder, || (0..6).map(|i| t.send(2, msg(i))).collect());
    use SendError::*;
    assert_eq!(
        results,
        [
            Ok(()),
            Ok(()),
            Ok(()),
            Ok(()),
            Err(QueueFull),
            Err(QueueFull)
        ]
    );
    assert_eq!(recorder.0.load(Ordering::Relaxed), 2);
    assert_eq!(t.send(3, msg(0)), Err(UnknownPeer));
    assert_eq!(t.send(1, msg(0)), Err(UnknownPeer), "own id is not a peer");
    assert!(!t.is_connected(2));
    let clone = t.clone();
    t.shutdown();
    assert_eq!(clone.send(2, msg(0)), Err(Closed));
}

#[tokio::test]
async fn config_is_validated() {
    let peers = BTreeMap::from([(2, dead_addr())]);
    let base = TransportConfig::new(1, "127.0.0.1:0".parse().unwrap(), peers, SECRET.to_vec());
    assert!(base.validate().is_ok());
    assert_eq!(
        (base.queue_max, base.batch_max, base.frame_bytes_max),
        (65_536, 1024, 64 << 20)
    );
    assert_eq!(
        (base.reconnect_backoff_min_ms, base.reconnect_backoff_max_ms),
        (50, 2_000)
    );
    let invalid = |change: fn(&mut TransportConfig)| {
        let mut config = base.clone();
        change(&mut config);
        matches!(config.validate(), Err(TransportError::Config(_)))
    };
    assert!(invalid(|c| c.secret = b"fifteen bytes!!".to_vec()));
    assert!(invalid(|c| c.batch_max = 0));
    assert!(invalid(|c| c.queue_max = 0));
    assert!(invalid(|c| c.node_id = 0));
    assert!(invalid(|c| {
        c.peers.insert(0, c.listen);
    }));
    assert!(invalid(|c| c.frame_bytes_max = 100));
    assert!(invalid(|c| c.reconnect_backoff_min_ms = 0));
    assert!(invalid(|c| {
        c.reconnect_backoff_min_ms = 500;
        c.reconnect_backoff_max_ms = 100;
    }));
    assert!(
        !format!("{base:?}").contains(&format!("{SECRET:?}")),
        "Debug leaks the secret"
    );

    let (tx, _rx) = mpsc::channel::<(NodeId, Msg)>(1);
    let mut short = base.clone();
    short.secret.truncate(8);
    assert!(matches!(
        Transport::start(short, tx.clone()).await,
        Err(TransportError::Config(_))
    ));
    let started = Transport::start(base, tx)
        .await
        .expect("start binds the listen address");
    assert_ne!(started.local_addr().port(), 0);
    started.shutdown();
}

/// Found by the `peer_frames` fuzz target: 13 bytes whose length prefix claims a 3.7 GB string
/// made the decoder allocate it before reading. Refused by the decoding limit now.
#[test]
fn a_length_prefix_beyond_the_frame_limit_is_refused_before_allocating() {
    let claims_gigabytes = [
        0x0f, 0x07, 0x08, 0x03, 0xdd, 0x00, 0x0f, 0x00, 0xfc, 0xff, 0xff, 0x03, 0xdd,
    ];
    let refused = frame::decode_batch::<crate::wire::PeerFrame>(&claims_gigabytes)
        .expect_err("13 bytes are not a batch");
    assert!(
        refused.to_string().to_lowercase().contains("limit"),
        "refused by the limit, not after allocating: {refused}"
    );
}

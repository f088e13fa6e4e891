//! # Peer transport
//!
//! Carries messages (Raft traffic, the money protocol) between the nodes of a cluster over tokio
//! TCP, in length-delimited frames, each an encrypted and authenticated batch of serde messages
//! encoded with bincode 2. The wire format and the handshake are described in `frame.rs` and
//! `crypto.rs`.
//!
//! ## Connections
//! Each node opens one outbound connection to every peer, from a writer task per peer, and only
//! ever *writes* on it; the connections its listener accepts are only *read*. Every pair of nodes
//! therefore has two connections, one per direction: simple and symmetric, no tie-breaking
//! between simultaneous dials, and one key per connection is safe with a counter nonce because
//! traffic on it flows one way.
//!
//! ## Security
//! Every connection starts with a handshake that derives a fresh session key from the cluster
//! secret and two fresh randoms, then authenticates the connector with an encrypted frame. A node
//! with the wrong secret is refused, logged at WARN (`peer authentication failed`) and counted
//! (`auth_failures`, metric `tuma_transport_auth_failures_total`); it can neither join nor inject.
//! Forged, corrupted, replayed or reordered frames and oversize lengths close the connection and
//! are counted (`frames_rejected`, metric `tuma_transport_frames_rejected_total`).
//!
//! ## Delivery
//! At most once, in order per connection. [`Transport::send`] never blocks: a full per-peer queue
//! refuses the message (back-pressure; Raft and the money protocol retry). When a write fails the
//! connection is dropped and the messages of the batch being written may be lost; the writer backs
//! off (doubling from the minimum to the maximum) and reconnects, keeping at most `queue_max`
//! messages queued meanwhile. On the receiving side messages are handed to the inbound channel
//! with `send().await`, so a slow node pushes back on the socket rather than buffering unboundedly.

mod admission;
mod crypto;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod tasks;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Node ids are u64 (Raft ids), 1-based.
pub type NodeId = u64;

/// Shortest accepted cluster secret, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// Largest accepted `frame_bytes_max`: also the most a frame's decoding may claim, so a length
/// prefix inside a frame cannot make the node allocate more than this (see `frame.rs`).
pub const MAX_FRAME_BYTES: usize = 256 << 20;
/// Smallest accepted `frame_bytes_max`.
pub const MIN_FRAME_BYTES: usize = 1024;
/// Messages refused because a peer's queue was full.
pub const METRIC_DROPPED: &str = "tuma_transport_dropped_total";
/// Inbound connections that failed the handshake.
pub const METRIC_AUTH_FAILURES: &str = "tuma_transport_auth_failures_total";
/// Unauthenticated inbound connections pushed out by newer ones (see `admission.rs`).
pub const METRIC_HANDSHAKES_PUSHED_OUT: &str = "tuma_transport_handshakes_pushed_out_total";
/// Frames refused after the handshake (forged, replayed, oversize, undecodable).
pub const METRIC_FRAMES_REJECTED: &str = "tuma_transport_frames_rejected_total";
/// Frames written to peers.
pub const METRIC_FRAMES_SENT: &str = "tuma_transport_frames_sent_total";
/// Frames received from authenticated peers.
pub const METRIC_FRAMES_RECEIVED: &str = "tuma_transport_frames_received_total";

/// Configuration of one node's transport.
#[derive(Clone)]
pub struct TransportConfig {
    /// This node's id (non-zero).
    pub node_id: NodeId,
    /// Address to listen on; port 0 picks a free port (see [`Transport::local_addr`]).
    pub listen: SocketAddr,
    /// Every other member and its address; an entry for `node_id` itself is ignored.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The cluster secret, at least [`MIN_SECRET_LEN`] bytes. Never printed by `Debug`.
    pub secret: Vec<u8>,
    /// Bound of each peer's outbound queue, in messages (default 65 536).
    pub queue_max: usize,
    /// Most messages per frame (default 1024).
    pub batch_max: usize,
    /// Largest frame accepted or sent, counting counter, ciphertext and tag (default 64 MiB).
    pub frame_bytes_max: usize,
    /// First reconnect delay, doubled after each failure (default 50 ms).
    pub reconnect_backoff_min_ms: u64,
    /// Cap of the reconnect delay (default 2 000 ms).
    pub reconnect_backoff_max_ms: u64,
}

impl TransportConfig {
    /// A configuration with the default bounds.
    pub fn new(
        node_id: NodeId,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, SocketAddr>,
        secret: Vec<u8>,
    ) -> Self {
        TransportConfig {
            node_id,
            listen,
            peers,
            secret,
            queue_max: 65_536,
            batch_max: 1024,
            frame_bytes_max: 64 << 20,
            reconnect_backoff_min_ms: 50,
            reconnect_backoff_max_ms: 2_000,
        }
    }

    /// Checks the configuration; [`Transport::start`] calls it too.
    pub fn validate(&self) -> Result<(), TransportError> {
        let fail = |why: String| Err(TransportError::Config(why));
        if self.node_id == 0 {
            return fail("node_id must be non-zero (ids are 1-based)".into());
        }
        if self.peers.contains_key(&0) {
            return fail("peer ids must be non-zero (ids are 1-based)".into());
        }
        if self.secret.len() < MIN_SECRET_LEN {
            return fail(format!(
                "cluster secret has {} bytes, at least {MIN_SECRET_LEN} are required",
                self.secret.len()
            ));
        }
        if self.queue_max == 0 {
            return fail("queue_max must be at least 1".into());
        }
        if self.batch_max == 0 {
            return fail("batch_max must be at least 1".into());
        }
        if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&self.frame_bytes_max) {
            return fail(format!(
                "frame_bytes_max must be between {MIN_FRAME_BYTES} and {MAX_FRAME_BYTES} bytes"
            ));
        }
        if self.reconnect_backoff_min_ms == 0 {
            return fail("reconnect_backoff_min_ms must be at least 1".into());
        }
        if self.reconnect_backoff_min_ms > self.reconnect_backoff_max_ms {
            return fail(format!(
                "reconnect_backoff_min_ms ({}) exceeds reconnect_backoff_max_ms ({})",
                self.reconnect_backoff_min_ms, self.reconnect_backoff_max_ms
            ));
        }
        Ok(())
    }
}

/// `Debug` without the secret, so a logged configuration never leaks it.
impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConfig")
            .field("node_id", &self.node_id)
            .field("listen", &self.listen)
            .field("peers", &self.peers)
            .field(
                "secret",
                &format_args!("<{} bytes redacted>", self.secret.len()),
            )
            .field("queue_max", &self.queue_max)
            .field("batch_max", &self.batch_max)
            .field("frame_bytes_max", &self.frame_bytes_max)
            .field("reconnect_backoff_min_ms", &self.reconnect_backoff_min_ms)
            .field("reconnect_backoff_max_ms", &self.reconnect_backoff_max_ms)
            .finish()
    }
}

/// Why a message was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The peer's queue is full (back-pressure); the caller retries later.
    #[error("peer queue full")]
    QueueFull,
    /// No such peer in the configuration.
    #[error("unknown peer")]
    UnknownPeer,
    /// The transport has been shut down.
    #[error("transport closed")]
    Closed,
}

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid transport configuration: {0}")]
    Config(String),
    #[error("transport i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Counters of one transport, for tests and status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Data frames written to peers.
    pub frames_sent: u64,
    /// Data frames received, verified and decoded.
    pub frames_received: u64,
    /// Inbound connections refused by the handshake (wrong secret, garbage, timeout).
    pub auth_failures: u64,
    /// Frames refused after authentication (forged, replayed, oversize, undecodable).
    pub frames_rejected: u64,
    /// Unauthenticated connections pushed out by newer ones.
    pub handshakes_pushed_out: u64,
}

/// The live counters behind [`TransportStats`], each mirrored into a metric.
#[derive(Default)]
struct Counters {
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    auth_failures: AtomicU64,
    frames_rejected: AtomicU64,
    handshakes_pushed_out: AtomicU64,
}

impl Counters {
    fn add(&self, counter: &AtomicU64, metric: &'static str, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(metric).increment(n);
    }

    fn snapshot(&self) -> TransportStats {
        TransportStats {
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            frames_received: self.frames_received.load(Ordering::Relaxed),
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            frames_rejected: self.frames_rejected.load(Ordering::Relaxed),
            handshakes_pushed_out: self.handshakes_pushed_out.load(Ordering::Relaxed),
        }
    }
}

/// What the tasks share: the configuration and the counters (never the task handles, so that
/// dropping the last [`Transport`] handle stops everything).
struct Shared {
    config: TransportConfig,
    counters: Counters,
}

/// A node's peer transport. Cheap to clone; the tasks stop at [`Transport::shutdown`] or when the
/// last clone is dropped.
pub struct Transport<M> {
    inner: Arc<Inner<M>>,
}

struct Inner<M> {
    shared: Arc<Shared>,
    /// Outbound links, one per peer; members join and leave at run time.
    links: RwLock<HashMap<NodeId, PeerLink<M>>>,
    /// Where writer tasks of peers added later are spawned.
    runtime: tokio::runtime::Handle,
    local_addr: SocketAddr,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
}

/// One peer's outbound queue and connection flag.
struct PeerLink<M> {
    addr: SocketAddr,
    queue: mpsc::Sender<M>,
    up: Arc<AtomicBool>,
}

impl<M> Inner<M> {
    fn links(&self) -> std::sync::RwLockReadGuard<'_, HashMap<NodeId, PeerLink<M>>> {
        self.links
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn stop(&self) {
        self.closed.store(true, Ordering::Release);
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

impl<M> Drop for Inner<M> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<M> Clone for Transport<M> {
    fn clone(&self) -> Self {
        Transport {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<M> fmt::Debug for Transport<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("node_id", &self.inner.shared.config.node_id)
            .field("local_addr", &self.inner.local_addr)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<M: Serialize + DeserializeOwned + Send + Sync + 'static> Transport<M> {
    /// Binds `config.listen` and starts: an accept loop, and per peer a writer task that
    /// (re)connects with capped exponential back-off. Every message received from an
    /// authenticated peer is delivered to `inbound` as `(from, message)`. Must be called inside a
    /// tokio runtime.
    pub async fn start(
        config: TransportConfig,
        inbound: mpsc::Sender<(NodeId, M)>,
    ) -> Result<Transport<M>, TransportError> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen).await?;
        Self::start_with_listener(config, listener, inbound).await
    }

    /// Like [`Transport::start`] on a listener the caller has already bound (`config.listen` is
    /// then ignored): lets a caller learn every node's address before starting any of them.
    pub async fn start_with_listener(
        config: TransportConfig,
        listener: TcpListener,
        inbound: mpsc::Sender<(NodeId, M)>,
    ) -> Result<Transport<M>, TransportError> {
        config.validate()?;
        let local_addr = listener.local_addr()?;
        let node = config.node_id;
        let shared = Arc::new(Shared {
            config,
            counters: Counters::default(),
        });
        let peers = shared.config.peers.clone();
        let span = tracing::info_span!("peer_accept", node, %local_addr);
        let acceptor = tasks::run_acceptor(shared.clone(), listener, inbound);
        let inner = Inner {
            shared,
            links: RwLock::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
            local_addr,
            tasks: Mutex::new(vec![tokio::spawn(acceptor.instrument(span))]),
            closed: AtomicBool::new(false),
        };
        let transport = Transport {
            inner: Arc::new(inner),
        };
        for (peer, addr) in peers {
            transport.add_peer(peer, addr);
        }
        tracing::info!(node, %local_addr, peers = transport.inner.links().len(), "peer transport started");
        Ok(transport)
    }

    /// Starts (or re-points) the outbound link to `peer`; a no-op for this node itself and for
    /// a peer already linked at `addr`. Callable from any thread.
    pub fn add_peer(&self, peer: NodeId, addr: SocketAddr) {
        let node = self.node_id();
        if peer == node || peer == 0 {
            return;
        }
        let mut links = self
            .inner
            .links
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if links.get(&peer).is_some_and(|l| l.addr == addr) {
            return;
        }
        let shared = self.inner.shared.clone();
        let (queue, rx) = mpsc::channel(shared.config.queue_max);
        let up = Arc::new(AtomicBool::new(false));
        let span = tracing::info_span!("peer_out", node, peer, %addr);
        let writer = tasks::run_writer(shared, peer, addr, rx, up.clone());
        let task = self.inner.runtime.spawn(writer.instrument(span));
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(task);
        // Replacing a link drops its queue, which ends the old writer.
        links.insert(peer, PeerLink { addr, queue, up });
    }

    /// Queues a message for a peer without blocking. A full queue refuses the message
    /// ([`SendError::QueueFull`], counted in `tuma_transport_dropped_total`): back-pressure, the
    /// caller (Raft, the money protocol) retries. Queued messages are delivered at most once.
    pub fn send(&self, to: NodeId, message: M) -> Result<(), SendError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let links = self.inner.links();
        let link = links.get(&to).ok_or(SendError::UnknownPeer)?;
        link.queue.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                metrics::counter!(METRIC_DROPPED).increment(1);
                SendError::QueueFull
            }
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }
}

impl<M> Transport<M> {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.shared.config.node_id
    }

    /// Whether the outbound connection to `peer` is currently up and authenticated.
    pub fn is_connected(&self, peer: NodeId) -> bool {
        self.inner
            .links()
            .get(&peer)
            .is_some_and(|link| link.up.load(Ordering::Acquire))
    }

    /// Stops all tasks and closes all connections and the listener; later sends fail with
    /// [`SendError::Closed`]. Queued messages are discarded.
    pub fn shutdown(&self) {
        self.inner.stop();
    }

    /// Counters: frames sent and received, authentication failures, frames rejected.
    pub fn stats(&self) -> TransportStats {
        self.inner.shared.counters.snapshot()
    }
}

//! What the engine touches outside itself: its clock, its peers and its randomness (its store is
//! the [`LogStore`](crate::storage::LogStore) trait). Production passes the wall clock and the
//! TCP transport; the simulator passes a simulated clock and an in-memory network, so the same
//! engine code runs in both, deterministically from a seed in the simulator.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tuma_actors::ledger::ShardLedger;

use crate::storage::LogStore;
use crate::transport::{NodeId, Transport};
use crate::wire::PeerFrame;

/// The engine's two clocks.
pub trait Clock: Send {
    /// Milliseconds since an arbitrary start; never runs backwards. Timers use it.
    fn monotonic_ms(&self) -> u64;
    /// Unix milliseconds as this node believes them; may be skewed or jump. Stamped on
    /// proposals and compared with peers' clocks.
    fn wall_ms(&self) -> u64;
}

/// The host's clocks, with an offset on the wall clock (0 in production; chaos tests skew a
/// node with `--clock-offset-ms` and, with test hooks on, move it while it runs).
pub struct SystemClock {
    started: Instant,
    offset_ms: Arc<AtomicI64>,
}

impl SystemClock {
    pub fn new(offset_ms: i64) -> SystemClock {
        SystemClock::with_offset(Arc::new(AtomicI64::new(offset_ms)))
    }

    /// A clock whose wall-clock offset is read from `offset_ms` at every reading.
    pub fn with_offset(offset_ms: Arc<AtomicI64>) -> SystemClock {
        SystemClock {
            started: Instant::now(),
            offset_ms,
        }
    }
}

impl Clock for SystemClock {
    fn monotonic_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn wall_ms(&self) -> u64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        (wall + self.offset_ms.load(Ordering::Relaxed)).max(0) as u64
    }
}

/// The peer network as the engine uses it: at most once, never blocking.
pub trait Network: Send {
    /// Queues a frame for `to`; `false` when it was refused (queue full, unknown peer).
    fn send(&self, to: NodeId, frame: PeerFrame) -> bool;
    /// Learns (or updates) a peer's address.
    fn add_peer(&self, peer: NodeId, addr: SocketAddr);
    /// Whether frames to `peer` are likely to arrive now (a live connection).
    fn is_connected(&self, peer: NodeId) -> bool;
    /// Stops sending and receiving.
    fn shutdown(&self);
}

impl Network for Transport<PeerFrame> {
    fn send(&self, to: NodeId, frame: PeerFrame) -> bool {
        Transport::send(self, to, frame).is_ok()
    }
    fn add_peer(&self, peer: NodeId, addr: SocketAddr) {
        Transport::add_peer(self, peer, addr)
    }
    fn is_connected(&self, peer: NodeId) -> bool {
        Transport::is_connected(self, peer)
    }
    fn shutdown(&self) {
        Transport::shutdown(self)
    }
}

/// Told of every ledger entry a replica applies and every money-protocol message a shard sends
/// (the simulator's checker listens here; a production node has none).
pub trait ApplyObserver: Send {
    /// Replica of `shard` applied the entry at `index` whose encoded bytes are `data`;
    /// `ledger` is its state after.
    fn applied(&mut self, shard: u32, index: u64, data: &[u8], ledger: &ShardLedger);
    /// Replica of `shard` applied a configuration change at `index`; `voters` are the voters
    /// of the configuration now in force (incoming and outgoing).
    fn configured(&mut self, _shard: u32, _index: u64, _voters: &[u64]) {}
    /// A shard's driver on this node sent `envelope` (to a local replica or over the network).
    fn protocol_sent(&mut self, _envelope: &tuma_actors::protocol::Envelope) {}
}

/// Everything the engine is handed from outside.
pub struct EngineEnv {
    pub store: Box<dyn LogStore>,
    pub network: Box<dyn Network>,
    pub clock: Box<dyn Clock>,
    /// Seeds the engine's randomness: election timeouts and this run's proposal-tag prefix.
    /// Production draws it from the OS; the simulator from its seed.
    pub seed: u64,
    pub observer: Option<Box<dyn ApplyObserver>>,
}

impl EngineEnv {
    /// Production: the given store and transport, the host's clock, a seed from the OS.
    pub fn production(
        store: Box<dyn LogStore>,
        transport: Transport<PeerFrame>,
        clock: SystemClock,
    ) -> EngineEnv {
        let mut seed = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        EngineEnv {
            store,
            network: Box::new(transport),
            clock: Box::new(clock),
            seed: u64::from_le_bytes(seed),
            observer: None,
        }
    }
}

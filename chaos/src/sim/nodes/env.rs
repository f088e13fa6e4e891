//! The simulated outside world one engine sees: a clock that reads simulated time (its wall
//! clock skewed and jumped by the simulator), and a network whose sends land in an outbox the
//! simulator delivers — late, twice, or never — and whose links it cuts.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tuma_cluster::engine::{Clock, Network};
use tuma_cluster::transport::NodeId;
use tuma_cluster::wire::PeerFrame;

/// Simulated time starts at 2026-11-27 08:00 EAT (Unix ms).
pub const EPOCH_MS: u64 = 1_795_755_600_000;

/// One node's clocks: the world's time, and a wall clock offset by the node's skew.
pub struct SimClock {
    pub now_ms: Arc<AtomicU64>,
    pub offset_ms: Arc<AtomicI64>,
}

impl Clock for SimClock {
    fn monotonic_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed)
    }
    fn wall_ms(&self) -> u64 {
        let wall = EPOCH_MS as i64
            + self.now_ms.load(Ordering::Relaxed) as i64
            + self.offset_ms.load(Ordering::Relaxed);
        wall.max(0) as u64
    }
}

/// Which nodes are up and which links are cut, as the world sets them.
#[derive(Default, Debug)]
pub struct Links {
    pub up: BTreeSet<NodeId>,
    /// (from, to): frames from `from` to `to` are lost.
    pub cut: BTreeSet<(NodeId, NodeId)>,
}

impl Links {
    pub fn passes(&self, from: NodeId, to: NodeId) -> bool {
        self.up.contains(&to) && !self.cut.contains(&(from, to))
    }
}

/// Frames a node sent, waiting for the world to deliver them.
pub type Outbox = Arc<Mutex<Vec<(NodeId, PeerFrame)>>>;

/// One node's network.
pub struct SimNetwork {
    pub me: NodeId,
    pub outbox: Outbox,
    pub links: Arc<Mutex<Links>>,
}

impl Network for SimNetwork {
    fn send(&self, to: NodeId, frame: PeerFrame) -> bool {
        self.outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((to, frame));
        true
    }
    fn add_peer(&self, _peer: NodeId, _addr: SocketAddr) {}
    fn is_connected(&self, peer: NodeId) -> bool {
        self.links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .passes(self.me, peer)
    }
    fn shutdown(&self) {}
}

/// The address a simulated node claims (never dialled).
pub fn peer_addr(node: NodeId) -> SocketAddr {
    SocketAddr::from(([10, 0, (node / 250) as u8, (node % 250) as u8 + 1], 7001))
}

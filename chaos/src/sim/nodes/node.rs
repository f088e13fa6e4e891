//! One simulated node: the real [`Engine`] over a [`MemDisk`], a simulated clock and network.
//! Crashing drops the engine (everything volatile is lost, the disk stays); restarting opens a
//! new engine on the same disk, as a restarted process would.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex};

use tuma_cluster::engine::{Engine, EngineConfig, EngineEnv, NodeHandle};
use tuma_cluster::storage::MemDisk;
use tuma_cluster::transport::NodeId;
use tuma_cluster::wire::PeerFrame;

use super::env::{peer_addr, Links, Outbox, SimClock, SimNetwork};
use super::recorder::{NodeObserver, Recorder};

/// What running one step did.
pub enum StepResult {
    Ok,
    /// The engine stopped on a storage failure (an armed disk fault, or a real defect).
    Fatal(String),
    /// The engine panicked: a replica halted.
    Panicked(String),
}

pub struct Running {
    pub engine: Engine,
    pub handle: NodeHandle,
    pub outbox: Outbox,
}

pub struct SimNode {
    pub id: NodeId,
    pub disk: MemDisk,
    /// The wall clock's offset from true time (skew plus jumps).
    pub offset_ms: Arc<AtomicI64>,
    /// The skew it started with (a healed clock goes back to it).
    pub skew_ms: i64,
    pub running: Option<Running>,
    pub paused: bool,
    /// Frames that arrived while paused, delivered on resume.
    pub held: Vec<(NodeId, PeerFrame)>,
    /// The next timer wake scheduled for it.
    pub next_wake: Option<u64>,
    /// A step is already scheduled at this time (deliveries batch into it).
    pub step_at: Option<u64>,
    /// An initial member (bootstraps) or a node that joined.
    pub initial: bool,
    /// Started this many times (seeds each run's randomness differently).
    pub starts: u64,
    /// Stopped on purpose (drained and removed, or left): not restarted at healing.
    pub retired: bool,
    /// Dies in the middle of its next step that sends a money-protocol message.
    pub crash_while_sending: bool,
    /// The shards it held after its last step, with each one's applied configuration index
    /// and whether that configuration counted this node as a voter (the checker judges every
    /// replica that disappears).
    pub replicas_seen: std::collections::BTreeMap<u32, (u64, bool)>,
}

/// What every node of a seed shares.
pub struct Shared {
    pub now_ms: Arc<AtomicU64>,
    pub links: Arc<Mutex<Links>>,
    pub recorder: Arc<Mutex<Recorder>>,
    pub seed: u64,
}

impl SimNode {
    pub fn new(id: NodeId, skew_ms: i64, initial: bool) -> SimNode {
        SimNode {
            id,
            disk: MemDisk::new(),
            offset_ms: Arc::new(AtomicI64::new(skew_ms)),
            skew_ms,
            running: None,
            paused: false,
            held: Vec::new(),
            next_wake: None,
            step_at: None,
            initial,
            starts: 0,
            retired: false,
            crash_while_sending: false,
            replicas_seen: std::collections::BTreeMap::new(),
        }
    }

    pub fn is_up(&self) -> bool {
        self.running.is_some()
    }

    /// Reachable by callers: up and not paused.
    pub fn serves(&self) -> bool {
        self.running.is_some() && !self.paused
    }

    /// Opens a new engine on this node's disk. `members` are the peers it knows at start.
    pub fn start(
        &mut self,
        template: &EngineConfig,
        members: &[NodeId],
        shared: &Shared,
    ) -> Result<(), String> {
        let mut config = template.clone();
        config.node_id = self.id;
        config.bootstrap = self.initial;
        config.members = members
            .iter()
            .map(|n| (*n, peer_addr(*n)))
            .collect::<BTreeMap<_, _>>();
        self.starts += 1;
        let outbox: Outbox = Arc::default();
        let env = EngineEnv {
            store: Box::new(self.disk.open()),
            network: Box::new(SimNetwork {
                me: self.id,
                outbox: outbox.clone(),
                links: shared.links.clone(),
            }),
            clock: Box::new(SimClock {
                now_ms: shared.now_ms.clone(),
                offset_ms: self.offset_ms.clone(),
            }),
            seed: shared
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(self.id * 1_000 + self.starts),
            observer: Some(Box::new(NodeObserver {
                node: self.id,
                now_ms: shared.now_ms.clone(),
                recorder: shared.recorder.clone(),
            })),
        };
        let opened = catch_unwind(AssertUnwindSafe(|| Engine::open(config, env)));
        match opened {
            Ok(Ok((engine, handle))) => {
                self.running = Some(Running {
                    engine,
                    handle,
                    outbox,
                });
                self.paused = false;
                self.next_wake = None;
                self.step_at = None;
                self.replicas_seen.clear();
                Ok(())
            }
            Ok(Err(error)) => Err(format!("node {} cannot restart: {error}", self.id)),
            Err(panic) => Err(format!(
                "node {} panicked while restarting: {}",
                self.id,
                panic_message(&panic)
            )),
        }
    }

    /// Drops the engine: everything not on the disk is gone.
    pub fn crash(&mut self) {
        self.crash_while_sending = false;
        self.running = None;
        self.paused = false;
        self.held.clear();
        self.next_wake = None;
        self.step_at = None;
    }

    /// Runs the engine until it has no more queued inputs (bounded).
    pub fn step(&mut self) -> StepResult {
        let Some(running) = self.running.as_mut() else {
            return StepResult::Ok;
        };
        let engine = &mut running.engine;
        let _span = tracing::info_span!("node", id = self.id).entered();
        let result = catch_unwind(AssertUnwindSafe(|| {
            for _ in 0..16 {
                match engine.step() {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(fatal) => return Err(fatal.to_string()),
                }
            }
            Ok(())
        }));
        match result {
            Ok(Ok(())) => StepResult::Ok,
            Ok(Err(fatal)) => StepResult::Fatal(fatal),
            Err(panic) => StepResult::Panicked(panic_message(&panic)),
        }
    }

    /// Frames the engine sent since the last call.
    pub fn take_outbox(&mut self) -> Vec<(NodeId, PeerFrame)> {
        match &self.running {
            Some(running) => {
                std::mem::take(&mut *running.outbox.lock().unwrap_or_else(|p| p.into_inner()))
            }
            None => Vec::new(),
        }
    }
}

pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let message = if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "a panic without a message".to_string()
    };
    match super::last_panic_location() {
        Some(at) => format!("{message} (at {at})"),
        None => message,
    }
}

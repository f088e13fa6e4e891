//! A scripted cluster of real engines for scenario tests (after TiKV's `test_raftstore`): the
//! same nodes, disks, clock and network as the simulator, but the test decides what happens —
//! which links are cut, which frames are injected — and time advances a millisecond at a
//! time, every frame arriving one millisecond after it was sent.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use tuma_actors::pin::Pin;
use tuma_actors::tariff::Tariffs;
use tuma_cluster::engine::{ClientReply, ClientRequest, EngineConfig, EngineFault, ReplicaProbe};
use tuma_cluster::transport::NodeId;
use tuma_cluster::wire::PeerFrame;

use super::env::{peer_addr, EPOCH_MS};
use super::node::{Shared, SimNode, StepResult};
use super::setup::{sim_pin_hasher, RIGHT_PIN};
use super::world::World;

/// A frame on its way.
struct InFlight {
    at: u64,
    from: NodeId,
    to: NodeId,
    frame: PeerFrame,
}

pub struct Scripted {
    shared: Shared,
    template: EngineConfig,
    nodes: BTreeMap<NodeId, SimNode>,
    in_flight: Vec<InFlight>,
    /// Every frame each node sent, for tests to inspect.
    pub sent: Vec<(NodeId, NodeId, PeerFrame)>,
}

impl Scripted {
    /// `nodes` initial members holding `shards` shards of `replicas` replicas each.
    pub fn new(nodes: u64, shards: u32, replicas: usize, planted: Option<EngineFault>) -> Scripted {
        Scripted::with(nodes, shards, replicas, |config| {
            config.planted_fault = planted
        })
    }

    /// As [`Scripted::new`], with the engine configuration adjusted by `tune`.
    pub fn with(
        nodes: u64,
        shards: u32,
        replicas: usize,
        tune: impl FnOnce(&mut EngineConfig),
    ) -> Scripted {
        let members = (1..=nodes).map(|n| (n, peer_addr(n))).collect();
        let mut template = EngineConfig::new(1, members, shards, replicas);
        template.tariffs = std::sync::Arc::new(Tariffs::kenya_default());
        template.pin_hasher = sim_pin_hasher();
        template.checkpoint_every_entries = 1_000;
        tune(&mut template);
        let mut scripted = Scripted {
            shared: World::new_shared(7),
            template,
            nodes: (1..=nodes).map(|n| (n, SimNode::new(n, 0, true))).collect(),
            in_flight: Vec::new(),
            sent: Vec::new(),
        };
        for id in 1..=nodes {
            scripted.start(id);
        }
        scripted
    }

    /// Starts (or restarts) a node on its disk.
    pub fn start(&mut self, id: NodeId) {
        let members: Vec<NodeId> = self.nodes.keys().copied().collect();
        let node = self.nodes.get_mut(&id).expect("a member");
        node.start(&self.template, &members, &self.shared)
            .expect("the node starts");
        self.shared.links.lock().expect("links").up.insert(id);
    }

    /// Drops a node's engine as `kill -9` would.
    pub fn crash(&mut self, id: NodeId) {
        self.nodes.get_mut(&id).expect("a member").crash();
        self.shared.links.lock().expect("links").up.remove(&id);
    }

    /// Cuts the links from `from` to every other node (it still hears them).
    pub fn mute(&mut self, from: NodeId) {
        let others: Vec<NodeId> = self.nodes.keys().copied().filter(|n| *n != from).collect();
        let mut links = self.shared.links.lock().expect("links");
        for other in others {
            links.cut.insert((from, other));
        }
    }

    /// Cuts every link to and from `id`.
    pub fn isolate(&mut self, id: NodeId) {
        let others: Vec<NodeId> = self.nodes.keys().copied().filter(|n| *n != id).collect();
        let mut links = self.shared.links.lock().expect("links");
        for other in others {
            links.cut.insert((id, other));
            links.cut.insert((other, id));
        }
    }

    /// SIGSTOP: the node is not stepped, and frames sent to it meanwhile are lost.
    pub fn pause(&mut self, id: NodeId) {
        self.nodes.get_mut(&id).expect("a member").paused = true;
    }

    /// SIGCONT.
    pub fn resume(&mut self, id: NodeId) {
        self.nodes.get_mut(&id).expect("a member").paused = false;
    }

    /// Mends the one-way link `from` → `to`.
    pub fn mend(&mut self, from: NodeId, to: NodeId) {
        self.shared
            .links
            .lock()
            .expect("links")
            .cut
            .remove(&(from, to));
    }

    /// Mends every link.
    pub fn heal(&mut self) {
        self.shared.links.lock().expect("links").cut.clear();
    }

    pub fn now(&self) -> u64 {
        self.shared.now_ms.load(Ordering::Relaxed)
    }

    /// Wall clock of the simulated world now.
    pub fn wall_ms(&self) -> u64 {
        EPOCH_MS + self.now()
    }

    /// Advances time by `ms`, a millisecond at a time.
    pub fn run_for(&mut self, ms: u64) {
        for _ in 0..ms {
            self.tick();
        }
    }

    /// Advances time until `done` holds (checked every millisecond) or `ms` passed.
    pub fn run_until(&mut self, ms: u64, mut done: impl FnMut(&Scripted) -> bool) -> bool {
        for _ in 0..ms {
            if done(self) {
                return true;
            }
            self.tick();
        }
        done(self)
    }

    fn tick(&mut self) {
        let now = self.now() + 1;
        self.shared.now_ms.store(now, Ordering::Relaxed);
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|f| f.at <= now);
        self.in_flight = later;
        for frame in due {
            let passes = self
                .shared
                .links
                .lock()
                .expect("links")
                .passes(frame.from, frame.to);
            let node = self.nodes.get(&frame.to).filter(|n| !n.paused);
            if let Some(running) = node.and_then(|n| n.running.as_ref()) {
                if passes {
                    running.handle.peer(frame.from, frame.frame);
                }
            }
        }
        let ids: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.paused)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.step(id);
        }
    }

    fn step(&mut self, id: NodeId) {
        let now = self.now();
        let node = self.nodes.get_mut(&id).expect("a member");
        match node.step() {
            StepResult::Ok => {}
            StepResult::Fatal(error) => panic!("node {id} stopped: {error}"),
            StepResult::Panicked(message) => panic!("node {id} panicked: {message}"),
        }
        for (to, frame) in node.take_outbox() {
            self.sent.push((id, to, frame.clone()));
            self.in_flight.push(InFlight {
                at: now + 1,
                from: id,
                to,
                frame,
            });
        }
    }

    /// Hands `frame` to node `to` as if `from` had sent it (the transport authenticated
    /// `from`).
    pub fn inject(&mut self, from: NodeId, to: NodeId, frame: PeerFrame) {
        let at = self.now() + 1;
        self.in_flight.push(InFlight {
            at,
            from,
            to,
            frame,
        });
    }

    /// Submits a request at node `id`.
    pub fn submit(&mut self, id: NodeId, request: ClientRequest) -> oneshot::Receiver<ClientReply> {
        let running = self.nodes[&id].running.as_ref().expect("the node runs");
        match running.handle.submit(request) {
            Ok(reply) => reply,
            Err(reply) => panic!("node {id} refused the request: {}", reply.describe()),
        }
    }

    /// Submits a request and runs until it is answered (at most `ms`).
    pub fn ask(&mut self, id: NodeId, request: ClientRequest, ms: u64) -> Option<ClientReply> {
        let mut reply = self.submit(id, request);
        for _ in 0..ms {
            if let Ok(answer) = reply.try_recv() {
                return Some(answer);
            }
            self.tick();
        }
        reply.try_recv().ok()
    }

    /// The node leading `shard`, if any serves it.
    pub fn leader_of(&self, shard: u32) -> Option<NodeId> {
        self.replicas(shard)
            .into_iter()
            .find(|(_, p)| p.serving)
            .map(|(id, _)| id)
    }

    /// Every live replica of `shard`.
    pub fn replicas(&self, shard: u32) -> Vec<(NodeId, ReplicaProbe<'_>)> {
        let mut out = Vec::new();
        for (id, node) in &self.nodes {
            if let Some(running) = node.running.as_ref() {
                for probe in running.engine.probe_replicas() {
                    if probe.shard == shard {
                        out.push((*id, probe));
                    }
                }
            }
        }
        out
    }

    /// The PIN every scripted account gets, hashed as the nodes verify it.
    pub fn pin_hash() -> tuma_actors::pin::PinHash {
        sim_pin_hasher().hash(&Pin::parse(RIGHT_PIN).expect("valid pin"))
    }

    /// Frames node `from` sent since the last call, dropping the record.
    pub fn take_sent(&mut self) -> Vec<(NodeId, NodeId, PeerFrame)> {
        std::mem::take(&mut self.sent)
    }
}

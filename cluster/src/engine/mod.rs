//! The engine: one thread per node that owns every shard replica on it — the raft-rs
//! `RawNode`s, the ledgers, the protocol drivers and the account actors — and runs the Ready
//! loop with group commit.
//!
//! | file | holds |
//! |---|---|
//! | `request.rs` | client requests and replies, waiters, the engine's inputs |
//! | `group.rs` | one Raft group without its state machine: conf changes, base and later checkpoints |
//! | `replica.rs` | one shard replica: proposing, applying committed entries, checkpoints |
//! | `meta_group.rs` | the meta group: the cluster state (members, placement, moves) |
//! | `membership.rs` | following the cluster state, the rebalancer, conf-change steps, leaving |
//! | `ready.rs` | the Ready loop over all groups with one write batch and one fsync |
//! | `clients.rs` | serving client requests: leaders answer, others forward |
//! | `actors.rs` | account actors and their supervision |
//! | `status.rs` | the node's view for `/admin/v1/cluster` and `tuma ctl status` |
//!
//! Loop order (see ARCHITECTURE.md): drain inputs → tick Raft and drivers → for every replica
//! with a Ready: send leader messages, apply the snapshot, apply committed entries, stage
//! entries and hard state → one durable write → send persisted messages → advance.

mod actors;
mod clients;
mod group;
mod membership;
mod meta_group;
mod pins;
mod ready;
mod replica;
mod request;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tuma_actors::protocol::DriverConfig;
use tuma_actors::tariff::Tariffs;
use tuma_actors::ShardMap;

use crate::membership::{ClusterMeta, PlanLimits, META_GROUP};
use crate::placement::Placement;
use crate::storage::{ClusterIdentity, LogStore, StorageError, WriteBatch};
use crate::transport::{NodeId, Transport};
use crate::wire::PeerFrame;

pub use actors::AccountActors;
pub use request::{ClientReply, ClientRequest, Input, StatementLine, Waiter};
pub use status::{NodeStatus, ShardStatus};

use group::GroupStart;
use membership::Leaving;
use meta_group::MetaGroup;
use replica::Replica;

/// Most PIN verifications waiting for a worker before transfers are answered "unavailable".
const PIN_QUEUE_MAX: usize = 4_096;

/// How often the membership pass runs (rebalancer, configuration steps, leaving).
const MEMBERSHIP_PASS_MS: u64 = 250;

/// Most SMS records one housekeeping pass delivers per shard.
const SMS_PER_PASS_MAX: usize = 1_000;

/// Engine settings; every queue and timer is bounded here and validated at start-up.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub node_id: NodeId,
    pub shards: u32,
    pub replicas: usize,
    /// Peer address of every member known at start (this node included): the initial members
    /// of a new cluster, or the members a joining node was told of.
    pub members: BTreeMap<NodeId, SocketAddr>,
    /// True for an initial member (it bootstraps the cluster state with the others); false
    /// for a node that joined a running cluster (it waits for the leaders' snapshots).
    pub bootstrap: bool,
    /// Bounds of the rebalancer.
    pub plan_limits: PlanLimits,
    /// Raft tick.
    pub tick_ms: u64,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    pub driver: DriverConfig,
    /// Checkpoint a shard's ledger after this many applied entries…
    pub checkpoint_every_entries: u64,
    /// …keeping this many entries before it in the log for slow followers.
    pub log_keep_entries: u64,
    /// Passivate an account actor idle this long.
    pub actor_idle_ms: u64,
    /// Bound of the engine's input queue (back-pressure to HTTP and peers).
    pub input_queue_max: usize,
    /// Give up on a request forwarded to another node after this long.
    pub forward_timeout_ms: u64,
    pub tariffs: Arc<Tariffs>,
    /// Added to this node's clock (chaos tests skew clocks with it; 0 in production).
    pub clock_offset_ms: i64,
    /// A fault planted for chaos-checker tests; `None` in production.
    pub planted_fault: Option<EngineFault>,
    /// Verifies PINs (keyed digests need the cluster's PIN key).
    pub pin_hasher: tuma_actors::pin::PinHasher,
}

/// Faults a chaos test can plant in a node to prove the checker catches them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EngineFault {
    /// Tell the client "confirmed" as soon as the payer's funds are held, before the decision.
    AckBeforeDecide,
}

impl EngineConfig {
    /// Defaults for a node of a cluster.
    pub fn new(
        node_id: NodeId,
        members: BTreeMap<NodeId, SocketAddr>,
        shards: u32,
        replicas: usize,
    ) -> EngineConfig {
        EngineConfig {
            node_id,
            shards,
            replicas,
            members,
            bootstrap: true,
            plan_limits: PlanLimits::default(),
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 2,
            driver: DriverConfig::default(),
            checkpoint_every_entries: 20_000,
            log_keep_entries: 2_000,
            actor_idle_ms: 120_000,
            input_queue_max: 100_000,
            forward_timeout_ms: 30_000,
            tariffs: Arc::new(Tariffs::kenya_default()),
            clock_offset_ms: 0,
            planted_fault: None,
            pin_hasher: tuma_actors::pin::PinHasher::owasp(),
        }
    }

    /// Refuses inconsistent settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_id == 0 {
            return Err("node ids start at 1".into());
        }
        if !self.bootstrap {
            // A joining node learns the members from the cluster state.
            return self.validate_timers();
        }
        if !self.members.contains_key(&self.node_id) {
            return Err(format!(
                "node {} is not among the members {:?}",
                self.node_id,
                self.members.keys()
            ));
        }
        if self.members.contains_key(&0) {
            return Err("node ids start at 1".into());
        }
        if ShardMap::new(self.shards).is_none() {
            return Err(format!(
                "shards must be 1..={}",
                tuma_actors::account::SHARD_COUNT_MAX
            ));
        }
        if self.replicas == 0 || self.replicas > self.members.len() {
            return Err(format!(
                "replicas must be 1..={} (the number of members)",
                self.members.len()
            ));
        }
        self.validate_timers()
    }

    fn validate_timers(&self) -> Result<(), String> {
        if ShardMap::new(self.shards).is_none() || self.replicas == 0 {
            return Err("shards and replicas must be positive".into());
        }
        if self.tick_ms == 0
            || self.heartbeat_ticks == 0
            || self.election_ticks <= self.heartbeat_ticks
        {
            return Err("need tick_ms > 0 and election_ticks > heartbeat_ticks > 0".into());
        }
        if self.plan_limits.moves_max == 0 {
            return Err("the rebalancer needs at least one move at a time".into());
        }
        if self.checkpoint_every_entries == 0 || self.input_queue_max == 0 {
            return Err("checkpoint interval and input queue must be positive".into());
        }
        self.driver.validate().map_err(|e| e.to_string())
    }
}

/// The handle the rest of the node uses to talk to the engine thread.
#[derive(Clone)]
pub struct NodeHandle {
    inputs: SyncSender<Input>,
    map: ShardMap,
    node_id: NodeId,
}

impl NodeHandle {
    /// Asks the engine; `Unavailable` if its queue is full or it stopped.
    pub async fn request(&self, request: ClientRequest, timeout: Duration) -> ClientReply {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.inputs.try_send(Input::Client {
            request,
            waiter: Waiter::Local(tx),
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return ClientReply::Unavailable("node overloaded".into())
            }
            Err(TrySendError::Disconnected(_)) => {
                return ClientReply::Unavailable("node stopping".into())
            }
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => ClientReply::Unavailable("request dropped (leadership changed)".into()),
            Err(_) => ClientReply::Unavailable("timed out".into()),
        }
    }

    /// The node's status.
    pub async fn status(&self) -> Option<NodeStatus> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inputs.try_send(Input::Status { reply: tx }).ok()?;
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .ok()?
            .ok()
    }

    /// Hands every leadership on this node to other nodes (before a stop); answers how many
    /// it still leads when done or when `within` is up.
    pub async fn leave(&self, within: Duration) -> Option<usize> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let deadline = Instant::now() + within;
        self.inputs
            .try_send(Input::Leave {
                deadline,
                reply: tx,
            })
            .ok()?;
        tokio::time::timeout(within + Duration::from_secs(1), rx)
            .await
            .ok()?
            .ok()
    }

    /// Feeds a peer frame in (from the transport's receive task).
    pub fn peer(&self, from: NodeId, frame: PeerFrame) -> bool {
        self.inputs.try_send(Input::Peer { from, frame }).is_ok()
    }

    /// Asks the engine to stop after flushing.
    pub fn shutdown(&self) {
        let _ = self.inputs.send(Input::Shutdown);
    }

    pub fn shard_map(&self) -> ShardMap {
        self.map
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }
}

/// The engine thread's state.
pub struct Engine {
    config: EngineConfig,
    map: ShardMap,
    /// The meta group and the cluster state it keeps.
    meta: MetaGroup,
    store: Box<dyn LogStore>,
    transport: Transport<PeerFrame>,
    inputs_tx: SyncSender<Input>,
    pin_verifier: pins::PinVerifier,
    replicas: BTreeMap<u32, Replica>,
    actors: AccountActors,
    /// Requests this node forwarded to a leader: id → (waiter, sent at).
    forwarded: HashMap<u64, (Waiter, Instant)>,
    next_forward_id: u64,
    next_proposal_tag: u64,
    /// Leaders other nodes named for shards this node does not lead.
    leader_hints: HashMap<u32, NodeId>,
    /// Turns through a shard's holders when its leader is unknown.
    guess_turn: usize,
    /// Set while handing leaderships away before a stop.
    leaving: Option<Leaving>,
    /// The rebalancer plans again once the meta group applied its previous proposals.
    rebalance_after_index: u64,
    /// This node was removed from the cluster.
    removed: bool,
    /// The meta commit index persisted before this start: replicas are destroyed for the
    /// cluster state only once the meta group has applied this far again.
    meta_replayed_to: u64,
    started: Instant,
    stopping: bool,
}

/// Errors that stop a node from starting.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
}

impl Engine {
    /// Opens every replica this node holds (recovering from the store) and starts the engine
    /// thread. Returns the handle and the thread's join handle.
    pub fn start(
        config: EngineConfig,
        store: Box<dyn LogStore>,
        transport: Transport<PeerFrame>,
    ) -> Result<(NodeHandle, std::thread::JoinHandle<()>), EngineError> {
        config.validate().map_err(EngineError::Config)?;
        let map = ShardMap::new(config.shards).expect("validated");
        check_identity(&config, store.as_ref())?;
        let groups = store.groups()?;
        let bootstrap = groups.is_empty() && config.bootstrap;
        let mut writes = Vec::new();
        let meta = open_meta(&config, store.as_ref(), &groups, bootstrap, &mut writes)?;
        let meta_commit = meta.group.log.hard_state().commit;
        let replicas = open_replicas(
            &config,
            map,
            store.as_ref(),
            &groups,
            bootstrap,
            &mut writes,
        )?;
        if !writes.is_empty() {
            store.write(WriteBatch { ops: writes })?;
        }
        for (&id, &addr) in &config.members {
            transport.add_peer(id, addr);
        }
        let (inputs_tx, inputs_rx) = std::sync::mpsc::sync_channel(config.input_queue_max);
        let handle = NodeHandle {
            inputs: inputs_tx.clone(),
            map,
            node_id: config.node_id,
        };
        let pin_hasher = config.pin_hasher.clone();
        let mut engine = Engine {
            actors: AccountActors::new(Duration::from_millis(config.actor_idle_ms)),
            config,
            map,
            meta,
            store,
            transport,
            pin_verifier: pins::PinVerifier::start(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
                PIN_QUEUE_MAX,
                inputs_tx.clone(),
                pin_hasher,
            ),
            inputs_tx,
            replicas,
            forwarded: HashMap::new(),
            next_forward_id: 1,
            next_proposal_tag: 1,
            leader_hints: HashMap::new(),
            guess_turn: 0,
            leaving: None,
            rebalance_after_index: 0,
            removed: false,
            meta_replayed_to: meta_commit,
            started: Instant::now(),
            stopping: false,
        };
        engine.on_meta_changed();
        let thread = std::thread::Builder::new()
            .name(format!("tuma-engine-{}", engine.config.node_id))
            .spawn(move || engine.run(inputs_rx))
            .map_err(|e| EngineError::Config(format!("cannot start the engine thread: {e}")))?;
        Ok((handle, thread))
    }

    fn run(mut self, inputs: Receiver<Input>) {
        let tick = Duration::from_millis(self.config.tick_ms);
        let driver_tick = Duration::from_millis(50);
        let mut next_tick = Instant::now() + tick;
        let mut next_driver_tick = Instant::now() + driver_tick;
        let mut next_housekeeping = Instant::now() + Duration::from_secs(1);
        let membership_every = Duration::from_millis(MEMBERSHIP_PASS_MS);
        let mut next_membership = Instant::now() + membership_every;
        let _span = tracing::info_span!("engine", node = self.config.node_id).entered();
        loop {
            let wait = next_tick
                .min(next_driver_tick)
                .min(next_membership)
                .saturating_duration_since(Instant::now());
            match inputs.recv_timeout(wait) {
                Ok(input) => self.handle_input(input),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.stopping = true,
            }
            for _ in 0..self.config.input_queue_max {
                match inputs.try_recv() {
                    Ok(input) => self.handle_input(input),
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + tick;
                self.tick_groups();
            }
            if now >= next_membership {
                next_membership = now + membership_every;
                self.membership_pass();
            }
            if now >= next_driver_tick {
                next_driver_tick = now + driver_tick;
                self.drive_protocol();
            }
            if let Err(error) = self.process_readies() {
                // A failed write to the log is fatal: never acknowledge what is not durable.
                tracing::error!(%error, "storage write failed; stopping the node");
                std::process::exit(70);
            }
            if now >= next_housekeeping {
                next_housekeeping = now + Duration::from_secs(1);
                self.housekeeping(now);
            }
            if self.stopping {
                tracing::info!("engine stopped after a final flush");
                self.transport.shutdown();
                return;
            }
        }
    }

    fn handle_input(&mut self, input: Input) {
        match input {
            Input::Client { request, waiter } => self.serve(request, waiter),
            Input::Peer { from, frame } => self.on_peer(from, frame),
            Input::PinChecked {
                request,
                verdict,
                waiter,
            } => self.propose_transfer(request, verdict, waiter),
            Input::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Input::Reply { waiter, reply } => self.reply(waiter, reply),
            Input::Leave { deadline, reply } => {
                tracing::info!("stopping: handing leaderships to other nodes");
                self.leaving = Some(Leaving {
                    deadline,
                    reply: Some(reply),
                });
            }
            Input::Shutdown => self.stopping = true,
        }
    }

    /// Ticks every group; a stopping node ticks only what it still leads, so its followers
    /// never start an election.
    fn tick_groups(&mut self) {
        let leaving = self.leaving.is_some();
        let groups = self
            .replicas
            .values_mut()
            .map(|r| &mut r.group)
            .chain(std::iter::once(&mut self.meta.group));
        for group in groups {
            if !leaving || group.is_leader() {
                group.raw.tick();
            }
        }
    }

    /// The leader clock stamped on proposals (wall clock plus the configured skew).
    fn now_ms(&self) -> u64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        (wall + self.config.clock_offset_ms).max(0) as u64
    }

    fn housekeeping(&mut self, now: Instant) {
        let passivated = self.actors.passivate_idle(now);
        if passivated > 0 {
            tracing::debug!(passivated, "passivated idle account actors");
        }
        let timeout = Duration::from_millis(self.config.forward_timeout_ms);
        self.forwarded
            .retain(|_, (_, at)| now.duration_since(*at) < timeout);
        self.balance_leaders();
        self.deliver_sms();
        self.membership_metrics();
        metrics::gauge!("tuma_actors_live").set(self.actors.live() as f64);
        metrics::gauge!("tuma_storage_bytes").set(self.store.size_on_disk() as f64);
    }

    /// Drains each led shard's SMS outbox. Until an SMS gateway is connected the sink is the
    /// node log (target `tuma::sms`); delivery is then recorded through the log, which keeps the
    /// replicated outbox bounded.
    fn deliver_sms(&mut self) {
        let now_ms = self.now_ms();
        for replica in self.replicas.values_mut().filter(|r| r.is_leader()) {
            let mut last = None;
            let mut sent = 0u64;
            for record in replica
                .ledger
                .sms_outbox()
                .filter(|r| r.seq >= replica.sms_sent_up_to)
                .take(SMS_PER_PASS_MAX)
            {
                tracing::info!(target: "tuma::sms", to = %record.to, seq = record.seq, "{}", record.text);
                last = Some(record.seq);
                sent += 1;
            }
            if let Some(up_to_seq) = last {
                replica.sms_sent_up_to = up_to_seq + 1;
                metrics::counter!("tuma_sms_delivered_total").increment(sent);
                let _ = replica.propose(
                    tuma_actors::ledger::Command::SmsDelivered { up_to_seq },
                    None,
                    now_ms,
                );
            }
        }
    }

    /// Hands leadership of a shard to its preferred replica (first of the replica set it is
    /// heading to) once that replica is a caught-up voter, so leaders spread evenly.
    fn balance_leaders(&mut self) {
        if self.started.elapsed() < Duration::from_secs(3) || self.leaving.is_some() {
            return;
        }
        let Some(meta) = self.meta.meta.as_ref() else {
            return;
        };
        for (shard, replica) in self.replicas.iter_mut() {
            let Some(&preferred) = meta.desired(*shard).first() else {
                continue;
            };
            if replica.is_leader()
                && preferred != self.config.node_id
                && replica.group.is_voter(preferred)
                && replica.group.caught_up(preferred)
            {
                replica.group.raw.transfer_leader(preferred);
            }
        }
    }

    fn send_frame(&self, to: NodeId, frame: PeerFrame) {
        if to == self.config.node_id {
            let _ = self.inputs_tx.try_send(Input::Peer { from: to, frame });
        } else if self.transport.send(to, frame).is_err() {
            metrics::counter!("tuma_engine_frames_dropped_total").increment(1);
        }
    }
}

/// The meta group: from the store, or bootstrapped with the initial members' cluster state (an
/// initial member's first start), or empty until the leader's snapshot (a joining node).
fn open_meta(
    config: &EngineConfig,
    store: &dyn LogStore,
    groups: &[u32],
    bootstrap: bool,
    writes: &mut Vec<crate::storage::WriteOp>,
) -> Result<MetaGroup, EngineError> {
    let start = if groups.contains(&META_GROUP) {
        match store.load_shard(META_GROUP)? {
            Some(durable) => GroupStart::Durable(durable),
            None => GroupStart::Uninitialized,
        }
    } else if bootstrap {
        let initial = ClusterMeta::initial(&config.members, config.shards, config.replicas)
            .expect("validated");
        GroupStart::Bootstrap {
            voters: config.members.keys().copied().collect(),
            data: meta_group::meta_data(&initial),
        }
    } else {
        GroupStart::Uninitialized
    };
    let (meta, meta_writes) = MetaGroup::open(config, start)?;
    writes.extend(meta_writes);
    Ok(meta)
}

/// The shard replicas: every one the store holds, or on an initial member's first start those
/// the initial placement gives it.
fn open_replicas(
    config: &EngineConfig,
    map: ShardMap,
    store: &dyn LogStore,
    groups: &[u32],
    bootstrap: bool,
    writes: &mut Vec<crate::storage::WriteOp>,
) -> Result<BTreeMap<u32, Replica>, EngineError> {
    let mut replicas = BTreeMap::new();
    if bootstrap {
        let members: Vec<NodeId> = config.members.keys().copied().collect();
        let placement = Placement::new(members, config.replicas, config.shards).expect("validated");
        for shard in placement.shards_of(config.node_id) {
            let start = GroupStart::Bootstrap {
                voters: placement.replicas_of(shard),
                data: replica::empty_ledger_data(config, map, shard),
            };
            let (replica, shard_writes) = Replica::open(config, map, shard, start)?;
            writes.extend(shard_writes);
            replicas.insert(shard, replica);
        }
    }
    for &shard in groups.iter().filter(|g| **g != META_GROUP) {
        if shard >= config.shards {
            return Err(EngineError::Config(format!(
                "the data directory holds shard {shard} of a cluster with more shards"
            )));
        }
        let start = match store.load_shard(shard)? {
            Some(durable) => GroupStart::Durable(durable),
            None => GroupStart::Uninitialized,
        };
        let (replica, _) = Replica::open(config, map, shard, start)?;
        replicas.insert(shard, replica);
    }
    Ok(replicas)
}

/// Refuses a data directory that belongs to another node or another cluster shape.
fn check_identity(config: &EngineConfig, store: &dyn LogStore) -> Result<(), EngineError> {
    let identity = ClusterIdentity {
        node_id: config.node_id,
        shards: config.shards,
        replicas: config.replicas as u32,
        members: if config.bootstrap {
            config.members.keys().copied().collect()
        } else {
            Vec::new()
        },
    };
    let Some(found) = store.identity()? else {
        return Ok(store.set_identity(&identity)?);
    };
    let same_node = found.node_id == identity.node_id
        && found.shards == identity.shards
        && found.replicas == identity.replicas;
    // A joined node's members come from the cluster state, not from its flags.
    if same_node && (!config.bootstrap || found == identity) {
        return Ok(());
    }
    Err(EngineError::Config(format!(
        "the data directory belongs to node {} of a cluster with {} shards, {} replicas, members {:?}; \
         refusing to start it as node {} with {} shards, {} replicas, members {:?}",
        found.node_id, found.shards, found.replicas, found.members,
        identity.node_id, identity.shards, identity.replicas, identity.members
    )))
}

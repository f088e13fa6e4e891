//! The engine: one thread per node that owns every shard replica on it — the raft-rs
//! `RawNode`s, the ledgers, the protocol drivers and the account actors — and runs the Ready
//! loop with group commit.
//!
//! The engine touches the outside only through its [`EngineEnv`]: a [`LogStore`], a
//! [`Network`], a [`Clock`] and a seed. Production passes the disk store, the TCP transport and the wall
//! clock and runs [`Engine::start`]'s thread; the simulator (`tuma sim`) passes in-memory ones
//! and calls [`Engine::step`] itself, so the code that runs in production is the code the
//! simulator tests.
//!
//! | file | holds |
//! |---|---|
//! | `config.rs` | [`EngineConfig`]: every limit and timer, validated |
//! | `env.rs` | [`Clock`], [`Network`], [`EngineEnv`]: what the engine touches outside |
//! | `handle.rs` | [`NodeHandle`]: how HTTP and the transport talk to the engine |
//! | `request.rs` | client requests and replies, waiters, the engine's inputs |
//! | `open.rs` | opening the meta group and the replicas; the data directory's identity |
//! | `group.rs` | one Raft group without its state machine: conf changes, checkpoints, tags |
//! | `replica.rs` | one shard replica: proposing, applying, reads, readiness to serve |
//! | `proposals.rs` | a leader's untagged proposals of one loop, batched into one entry |
//! | `meta_group.rs` | the meta group: the cluster state (members, placement, moves) |
//! | `membership.rs` | following the cluster state, the rebalancer, conf-change steps, leaving |
//! | `ready.rs` | the Ready loop over all groups with one write batch and one fsync |
//! | `router.rs` | leader hints, forwarded requests, guessing a shard's leader |
//! | `snapshots/` | snapshots streamed in chunks from the stored checkpoint, resumable |
//! | `clients.rs` | serving client requests: leaders answer, others forward |
//! | `clock_check.rs` | peers' clock offsets; refusing to lead with a clock out of bounds |
//! | `actors.rs` | account actors and their supervision |
//! | `status.rs` | the node's view for `/admin/v1/cluster` and `tuma ctl status` |
//!
//! Loop order (see ARCHITECTURE.md): drain inputs → tick Raft and drivers → every leader's
//! queued proposals into its log (one batch entry each) → for every replica with a Ready: send
//! leader messages, apply the snapshot, apply committed entries, stage
//! entries and hard state → one durable write → send persisted messages → advance.

mod actors;
mod clients;
mod clock_check;
mod config;
mod env;
mod group;
mod handle;
mod history_reads;
mod job_queue;
mod membership;
mod meta_group;
mod open;
mod pins;
mod probe;
mod proposals;
mod reads;
mod ready;
mod removal_watch;
mod replica;
mod request;
mod restore;
mod router;
mod snapshots;
mod status;
mod waiters;

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use tuma_actors::rng::SplitMix64;
use tuma_actors::ShardMap;

use crate::storage::{LogStore, StorageError, WriteBatch};
use crate::transport::NodeId;
use crate::wire::PeerFrame;

pub use actors::AccountActors;
pub use clock_check::ClockVerdict;
pub use config::{
    EngineConfig, EngineFault, SmsDelivery, IDEMPOTENCY_WINDOW_MS_DEFAULT, RETIRE_GRACE_MS_DEFAULT,
};
pub use env::{ApplyObserver, Clock, EngineEnv, Network, SystemClock};
pub use handle::NodeHandle;
pub use probe::{MetaProbe, ReplicaProbe};
pub use request::{
    ClientReply, ClientRequest, Input, PayoutLookup, PromptLookup, ShardBackupState, StatementLine,
    Waiter,
};
pub use restore::{RestoreImage, RestoredShard};
pub use snapshots::StreamConfig;
pub use status::{NodeStatus, ShardStatus};

use clock_check::PeerClocks;
use membership::Leaving;
use meta_group::MetaGroup;
use replica::Replica;
use router::Router;

/// Most PIN verifications waiting for a worker before transfers are answered "unavailable".
const PIN_QUEUE_MAX: usize = 4_096;
/// Protocol drivers tick this often.
const DRIVER_TICK_MS: u64 = 50;
/// How often the membership pass runs (rebalancer, configuration steps, leaving).
const MEMBERSHIP_PASS_MS: u64 = 250;
/// Passivation, forward expiry, leader balancing, SMS, metrics.
const HOUSEKEEPING_MS: u64 = 1_000;
/// Leaders are balanced only once a node has run this long (its peers are up).
const BALANCE_AFTER_MS: u64 = 3_000;
/// Most SMS records one housekeeping pass delivers per shard.
const SMS_PER_PASS_MAX: usize = 1_000;

/// When each periodic duty runs next (monotonic ms).
struct Timers {
    raft_tick: u64,
    driver: u64,
    membership: u64,
    housekeeping: u64,
    clock_ping: u64,
}

impl Timers {
    fn next(&self) -> u64 {
        self.raft_tick
            .min(self.driver)
            .min(self.membership)
            .min(self.housekeeping)
            .min(self.clock_ping)
    }
}

/// The engine thread's state.
pub struct Engine {
    config: EngineConfig,
    map: ShardMap,
    /// The meta group and the cluster state it keeps.
    meta: MetaGroup,
    store: Box<dyn LogStore>,
    network: Box<dyn Network>,
    clock: Box<dyn Clock>,
    observer: Option<Box<dyn ApplyObserver>>,
    rng: SplitMix64,
    inputs: Receiver<Input>,
    inputs_tx: SyncSender<Input>,
    pin_verifier: pins::PinVerifier,
    history_reads: history_reads::HistoryReads,
    replicas: BTreeMap<u32, Replica>,
    /// Replicas destroyed here: shard → index of their removal. A replica made again must start
    /// from a snapshot past it.
    tombstones: BTreeMap<u32, u64>,
    actors: AccountActors,
    router: Router,
    /// Snapshots streaming to followers and from leaders.
    snapshots: snapshots::SnapshotStreams,
    /// Measured offsets of the peers' wall clocks.
    peer_clocks: PeerClocks,
    /// The last verdict on this node's clock (logged when it changes).
    clock_verdict: ClockVerdict,
    /// Tags on proposals whose proposer waits for them (unique across restarts: the groups
    /// prefix them with this run's random incarnation).
    next_proposal_tag: u64,
    /// Set while handing leaderships away before a stop.
    leaving: Option<Leaving>,
    /// The rebalancer plans again once the meta group applied its previous proposals: (term,
    /// last index) when it proposed them.
    rebalance_after: (u64, u64),
    /// This node was removed from the cluster.
    removed: bool,
    /// The meta group's leader said this node is not in the meta group: its cluster state is
    /// stale, and it leads nothing.
    outside_cluster: bool,
    timers: Timers,
    started_ms: u64,
    stopping: bool,
    stopped: bool,
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

/// Why a running engine stopped on its own: the node must exit (never serve what is not
/// durable).
#[derive(Debug, thiserror::Error)]
pub enum EngineFatal {
    #[error("storage write failed: {0}")]
    Storage(#[from] StorageError),
}

impl Engine {
    /// Opens every group this node holds (recovering from the store, or bootstrapping an initial
    /// member's first start). Returns the engine, not yet running, and its handle.
    pub fn open(config: EngineConfig, env: EngineEnv) -> Result<(Engine, NodeHandle), EngineError> {
        config.validate().map_err(EngineError::Config)?;
        let EngineEnv {
            store,
            network,
            clock,
            seed,
            observer,
        } = env;
        let map = ShardMap::new(config.shards).expect("validated");
        open::check_identity(&config, store.as_ref())?;
        let mut rng = SplitMix64::new(seed);
        let incarnation = rng.next_u64();
        let groups = store.groups()?;
        let tombstones = store.tombstones()?;
        let bootstrap = groups.is_empty() && config.bootstrap;
        let mut writes = Vec::new();
        let meta = open::open_meta(
            &config,
            store.as_ref(),
            &groups,
            bootstrap,
            incarnation,
            &mut writes,
        )?;
        let replicas = open::open_replicas(
            &config,
            map,
            store.as_ref(),
            &groups,
            bootstrap,
            incarnation,
            &mut writes,
        )?;
        if !writes.is_empty() {
            store.write(WriteBatch { ops: writes })?;
        }
        for (&id, &addr) in &config.members {
            network.add_peer(id, addr);
        }
        let (inputs_tx, inputs) = std::sync::mpsc::sync_channel(config.input_queue_max);
        let handle = NodeHandle {
            inputs: inputs_tx.clone(),
            map,
            node_id: config.node_id,
        };
        let now = clock.monotonic_ms();
        let first_forward_id = rng.next_u64() >> 1;
        let first_stream = rng.next_u64() >> 1;
        let mut engine = Engine {
            actors: AccountActors::new(config.actor_idle_ms),
            history_reads: history_reads::HistoryReads::new(inputs_tx.clone()),
            pin_verifier: pins::PinVerifier::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
                PIN_QUEUE_MAX,
                inputs_tx.clone(),
                config.pin_hasher.clone(),
            ),
            peer_clocks: PeerClocks::new(config.max_clock_offset_ms),
            snapshots: snapshots::SnapshotStreams::new(
                config.snapshot_streams.clone(),
                first_stream,
            ),
            clock_verdict: ClockVerdict::Unknown,
            timers: Timers {
                raft_tick: now + config.tick_ms,
                driver: now + DRIVER_TICK_MS,
                membership: now + MEMBERSHIP_PASS_MS,
                housekeeping: now + HOUSEKEEPING_MS,
                clock_ping: now,
            },
            config,
            map,
            meta,
            store,
            network,
            clock,
            observer,
            rng,
            inputs,
            inputs_tx,
            replicas,
            tombstones,
            router: Router::new(first_forward_id),
            next_proposal_tag: 1,
            leaving: None,
            rebalance_after: (0, 0),
            removed: false,
            outside_cluster: false,
            started_ms: now,
            stopping: false,
            stopped: false,
        };
        engine.randomize_election_timeouts();
        engine.on_meta_changed();
        Ok((engine, handle))
    }

    /// Opens the engine and runs it on its own thread. The thread ends when the engine stops:
    /// `Ok` after `Shutdown`, `Err` on a fatal error (the caller must exit the process).
    pub fn start(
        config: EngineConfig,
        env: EngineEnv,
    ) -> Result<(NodeHandle, std::thread::JoinHandle<Result<(), EngineFatal>>), EngineError> {
        let (engine, handle) = Engine::open(config, env)?;
        let thread = std::thread::Builder::new()
            .name(format!("tuma-engine-{}", engine.config.node_id))
            .spawn(move || engine.run())
            .map_err(|e| EngineError::Config(format!("cannot start the engine thread: {e}")))?;
        Ok((handle, thread))
    }

    /// The production loop: wait for an input or the next timer, then step.
    fn run(mut self) -> Result<(), EngineFatal> {
        let _span = tracing::info_span!("engine", node = self.config.node_id).entered();
        loop {
            // Proposals queued while applying go into the log at once, not at the next timer.
            let wait = if self.replicas.values().any(Replica::has_queued_proposals) {
                0
            } else {
                self.timers.next().saturating_sub(self.clock.monotonic_ms())
            };
            match self.inputs.recv_timeout(Duration::from_millis(wait)) {
                Ok(input) => self.handle_input(input),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.stopping = true,
            }
            let started = std::time::Instant::now();
            let stepped = self.step();
            metrics::histogram!("tuma_engine_step_seconds").record(started.elapsed().as_secs_f64());
            if let Err(fatal) = stepped {
                tracing::error!(error = %fatal, "the engine stops; the node must exit");
                self.network.shutdown();
                return Err(fatal);
            }
            if self.stopped {
                return Ok(());
            }
        }
    }

    /// One turn of the engine: every queued input, the timers that are due, one Ready pass
    /// over every group (one durable write). Returns how many inputs it handled, so a caller
    /// driving it by hand (the simulator) can step again while inputs keep arriving.
    pub fn step(&mut self) -> Result<usize, EngineFatal> {
        let mut handled = 0;
        while handled < self.config.input_queue_max {
            match self.inputs.try_recv() {
                Ok(input) => {
                    self.handle_input(input);
                    handled += 1;
                }
                Err(_) => break,
            }
        }
        self.run_due_timers()?;
        self.process_readies()?;
        if self.stopping && !self.stopped {
            tracing::info!("engine stopped after a final flush");
            self.network.shutdown();
            self.stopped = true;
        }
        Ok(handled)
    }

    /// When the next timer is due, on the engine's monotonic clock.
    pub fn next_timer_ms(&self) -> u64 {
        self.timers.next()
    }

    /// True once the engine flushed after `Shutdown`.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    fn run_due_timers(&mut self) -> Result<(), EngineFatal> {
        let now = self.clock.monotonic_ms();
        if now >= self.timers.clock_ping {
            self.timers.clock_ping = now + clock_check::PING_EVERY_MS;
            self.ping_clocks(now);
        }
        if now >= self.timers.raft_tick {
            self.timers.raft_tick = now + self.config.tick_ms;
            self.tick_groups();
        }
        if now >= self.timers.membership {
            self.timers.membership = now + MEMBERSHIP_PASS_MS;
            self.membership_pass();
        }
        if now >= self.timers.driver {
            self.timers.driver = now + DRIVER_TICK_MS;
            self.drive_protocol();
        }
        if now >= self.timers.housekeeping {
            self.timers.housekeeping = now + HOUSEKEEPING_MS;
            self.housekeeping(now);
        }
        Ok(())
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
            Input::Leave { within_ms, reply } => {
                tracing::info!("stopping: handing leaderships to other nodes");
                self.leaving = Some(Leaving {
                    deadline_ms: self.clock.monotonic_ms() + within_ms,
                    reply: Some(reply),
                });
            }
            Input::Shutdown => self.stopping = true,
        }
    }

    /// Ticks every group; a node that must not lead (stopping, or its clock not known to be
    /// within bounds) ticks only what it still leads, so its followers never start an election.
    fn tick_groups(&mut self) {
        let campaign = self.may_campaign();
        let rng = &mut self.rng;
        let groups = self
            .replicas
            .values_mut()
            .map(|r| &mut r.group)
            .chain(std::iter::once(&mut self.meta.group));
        for group in groups {
            if campaign || group.is_leader() {
                group.randomize_election_timeout(rng);
                group.raw.tick();
                group.randomize_election_timeout(rng);
            }
        }
    }

    /// Gives every group a fresh election timeout drawn from the engine's seeded randomness.
    fn randomize_election_timeouts(&mut self) {
        let rng = &mut self.rng;
        for group in self
            .replicas
            .values_mut()
            .map(|r| &mut r.group)
            .chain(std::iter::once(&mut self.meta.group))
        {
            group.randomize_election_timeout(rng);
        }
    }

    /// The timestamp stamped on proposals: this node's wall clock, clamped to within the
    /// bound of its peers' consensus.
    fn now_ms(&self) -> u64 {
        let wall = self.clock.wall_ms();
        let members = self.live_members();
        self.peer_clocks.clamp(
            wall,
            &members,
            self.config.node_id,
            self.clock.monotonic_ms(),
        )
    }

    /// The members this node compares clocks with (the cluster state's live members, or the
    /// configured ones until the cluster state is known).
    fn live_members(&self) -> Vec<NodeId> {
        match self.meta.meta.as_ref() {
            Some(meta) => meta.live_members(),
            None => self.config.members.keys().copied().collect(),
        }
    }

    fn housekeeping(&mut self, now: u64) {
        self.snapshots.expire(now);
        metrics::gauge!("tuma_snapshot_receiving_bytes")
            .set(self.snapshots.receiving_bytes() as f64);
        let passivated = self.actors.passivate_idle(now);
        if passivated > 0 {
            tracing::debug!(passivated, "passivated idle account actors");
        }
        for waiter in self.router.expire(now, self.config.forward_timeout_ms) {
            self.reply(
                waiter,
                ClientReply::Ambiguous("the leader did not answer in time".into()),
            );
        }
        self.balance_leaders();
        self.deliver_sms();
        self.membership_metrics();
        metrics::gauge!("tuma_actors_live").set(self.actors.live() as f64);
        let paced: usize = self.replicas.values().map(Replica::duties_paced).sum();
        metrics::gauge!("tuma_protocol_duties_paced").set(paced as f64);
        metrics::gauge!("tuma_storage_bytes").set(self.store.size_on_disk() as f64);
    }

    /// Drains each led shard's SMS outbox into the node log (target `tuma::sms`) and records the
    /// delivery, which keeps the replicated outbox bounded — unless an SMS channel outside the
    /// cluster takes the texts ([`config::SmsDelivery::External`]).
    fn deliver_sms(&mut self) {
        if self.config.sms_delivery != config::SmsDelivery::Log || !self.may_lead() {
            return;
        }
        let now_ms = self.now_ms();
        for replica in self.replicas.values_mut().filter(|r| r.is_serving()) {
            let mut last = None;
            let mut sent = 0u64;
            for record in replica.unsent_sms().take(SMS_PER_PASS_MAX) {
                tracing::info!(target: "tuma::sms", to = %record.to, seq = record.seq, "{}", record.text);
                last = Some(record.seq);
                sent += 1;
            }
            if let Some(up_to_seq) = last {
                replica.sms_handed_over(up_to_seq);
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
        let now = self.clock.monotonic_ms();
        if now < self.started_ms + BALANCE_AFTER_MS || self.leaving.is_some() {
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
        } else if self.network.send(to, frame) {
            metrics::counter!("tuma_peer_frames_sent_total").increment(1);
        } else {
            metrics::counter!("tuma_engine_frames_dropped_total").increment(1);
        }
    }
}

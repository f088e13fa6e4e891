//! The engine's settings: every queue, timer and limit is bounded here and validated at start-up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tuma_actors::protocol::DriverConfig;
use tuma_actors::tariff::Tariffs;
use tuma_actors::ShardMap;

use crate::membership::PlanLimits;
use crate::transport::NodeId;

/// Largest snapshot chunk: well inside the transport's frame limit.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 8 << 20;

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
    /// …or after this many bytes of entries — or as many bytes as the last checkpoint, if more —
    /// whichever comes first (the log a node keeps in memory and replays at restart stays
    /// bounded in bytes whatever the traffic per shard, and checkpoints cost amortized O(1) per
    /// byte of log)…
    pub checkpoint_every_bytes: u64,
    /// …keeping this many entries before it in the log for slow followers…
    pub log_keep_entries: u64,
    /// …but no more than this many bytes of them.
    pub log_keep_bytes: u64,
    /// Passivate an account actor idle this long.
    pub actor_idle_ms: u64,
    /// Bound of the engine's input queue (back-pressure to HTTP and peers).
    pub input_queue_max: usize,
    /// Give up on a request forwarded to another node after this long.
    pub forward_timeout_ms: u64,
    pub tariffs: Arc<Tariffs>,
    /// A node whose wall clock differs from its peers' by more than this refuses to lead
    /// (and says so in its log and status); proposals are stamped within it.
    pub max_clock_offset_ms: u64,
    /// Test-only hooks (`PlantPanic`) are served only when this is on.
    pub test_hooks: bool,
    /// A snapshot a leader delivered whose follower still has not answered within this long
    /// is sent again (the stream itself resumes and gives up by `snapshot_streams`).
    pub snapshot_retry_ms: u64,
    /// Chunk size, window and timers of snapshot streams.
    pub snapshot_streams: super::snapshots::StreamConfig,
    /// A fault planted for chaos-checker tests; `None` in production.
    pub planted_fault: Option<EngineFault>,
    /// Verifies PINs (keyed digests need the cluster's PIN key).
    pub pin_hasher: tuma_actors::pin::PinHasher,
    /// A finished transfer's record stays in memory this long: a retry with its id within it
    /// gets the same answer; after it, `request_id_expired`. Its history row stays for good.
    pub idempotency_window_ms: u64,
    /// Finished records retire this long after the window closes: longer than any transfer's
    /// wait plus the clock bound, so a retry let through just before the window closed can only
    /// apply past its own deadline (and be refused) if its record is gone by then.
    pub retire_grace_ms: u64,
    /// Who takes each led shard's confirmation texts: the engine itself (writing them to the
    /// node log and acknowledging them at once: the simulator, tools) or a channel outside the
    /// cluster that reads the outbox and acknowledges what it has taken (`tuma node`).
    pub sms_delivery: SmsDelivery,
    /// An initial member's first start bootstraps from this backup instead of empty ledgers.
    pub restore: Option<std::sync::Arc<super::restore::RestoreImage>>,
}

/// Who takes the shards' confirmation texts (see [`EngineConfig::sms_delivery`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SmsDelivery {
    /// The engine writes them to the node log (target `tuma::sms`) and acknowledges them.
    Log,
    /// A channel reads them with `ClientRequest::SmsOutbox` and acknowledges them with
    /// `Command::SmsDelivered` once it holds them durably.
    External,
}

/// The default idempotency window: 24 hours.
pub const IDEMPOTENCY_WINDOW_MS_DEFAULT: u64 = 24 * 3_600_000;
/// The default retirement grace: longer than the longest wait the API allows a transfer
/// (120 s) plus the clock bound.
pub const RETIRE_GRACE_MS_DEFAULT: u64 = 130_000;

/// Faults a chaos test can plant in a node to prove the checker catches them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EngineFault {
    /// Tell the client "confirmed" as soon as the payer's funds are held, before the decision.
    AckBeforeDecide,
    /// A new leader runs its protocol driver (answering inquiries, presuming abort) before it
    /// has applied an entry of its own term — the defect the readiness gate removed — and
    /// presumes abort without confirming its leadership.
    PresumeAbortEarly,
    /// A serving leader presumes abort without first confirming, by a ReadIndex round, that it
    /// still leads — the defect by which a leader paused or cut off, deposed without knowing
    /// it, told a payee to abort a transfer the new leader had prepared.
    PresumeAbortUnconfirmed,
    /// Destroy a replica as soon as the cluster state no longer places it here, even while its
    /// group still counts it as a voter — the defect the group-removal rule removed.
    DestroyOnPlacementChange,
}

impl EngineFault {
    /// The name used on command lines (`--plant-fault`).
    pub fn name(self) -> &'static str {
        match self {
            EngineFault::AckBeforeDecide => "ack-before-decide",
            EngineFault::PresumeAbortEarly => "presume-abort-early",
            EngineFault::PresumeAbortUnconfirmed => "presume-abort-unconfirmed",
            EngineFault::DestroyOnPlacementChange => "destroy-on-placement-change",
        }
    }

    /// Every planted fault.
    pub const ALL: [EngineFault; 4] = [
        EngineFault::AckBeforeDecide,
        EngineFault::PresumeAbortEarly,
        EngineFault::PresumeAbortUnconfirmed,
        EngineFault::DestroyOnPlacementChange,
    ];

    /// Parses a `--plant-fault` name.
    pub fn parse(name: &str) -> Option<EngineFault> {
        EngineFault::ALL.into_iter().find(|f| f.name() == name)
    }
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
            // A node holds every shard's log in memory: with 64 shards these bound it at
            // about 64 × 384 KiB of entry data, reached within a minute of load (a soak
            // found the larger bounds took most of ten minutes at 400/s to fill, and read as
            // memory that kept growing).
            checkpoint_every_bytes: 256 << 10,
            log_keep_bytes: 128 << 10,
            log_keep_entries: 2_000,
            actor_idle_ms: 120_000,
            input_queue_max: 100_000,
            forward_timeout_ms: 30_000,
            tariffs: Arc::new(Tariffs::kenya_default()),
            max_clock_offset_ms: 500,
            test_hooks: false,
            snapshot_retry_ms: 10_000,
            snapshot_streams: super::snapshots::StreamConfig::default(),
            planted_fault: None,
            pin_hasher: tuma_actors::pin::PinHasher::owasp(),
            idempotency_window_ms: IDEMPOTENCY_WINDOW_MS_DEFAULT,
            retire_grace_ms: RETIRE_GRACE_MS_DEFAULT,
            sms_delivery: SmsDelivery::Log,
            restore: None,
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
        if self.max_clock_offset_ms == 0 {
            return Err("max_clock_offset_ms must be positive".into());
        }
        if self.idempotency_window_ms < 1_000 {
            return Err("the idempotency window must be at least 1 s".into());
        }
        let streams = &self.snapshot_streams;
        if streams.chunk_bytes == 0
            || streams.chunk_bytes > SNAPSHOT_CHUNK_BYTES_MAX
            || streams.window_chunks == 0
            || streams.resend_ms == 0
            || streams.give_up_ms <= streams.resend_ms
        {
            return Err(format!("snapshot streams need 1..={SNAPSHOT_CHUNK_BYTES_MAX} bytes per chunk, a window of at least one chunk, and a give-up time longer than the resend time"));
        }
        if self.checkpoint_every_entries == 0
            || self.checkpoint_every_bytes == 0
            || self.input_queue_max == 0
        {
            return Err("checkpoint interval and input queue must be positive".into());
        }
        self.driver.validate().map_err(|e| e.to_string())
    }
}

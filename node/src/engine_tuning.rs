//! The engine's limits and timers, settable like every other setting: a flag, its environment
//! variable (`TUMA_` + the flag's name), or the `[engine]` table of the TOML file (the flag's
//! name without its dashes: `raft-tick-ms = 100`). Unset ones keep the engine's defaults
//! (`EngineConfig::new`); the result is validated with the rest of the engine's configuration
//! (`--check-config` says what is wrong before a node starts).

use clap::Args;
use serde::Deserialize;
use tuma_cluster::engine::EngineConfig;

#[derive(Args, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EngineTuning {
    /// Raft's tick, ms (default 100): heartbeats and elections count in ticks.
    #[arg(long, env = "TUMA_RAFT_TICK_MS")]
    pub raft_tick_ms: Option<u64>,
    /// Ticks without a leader before a follower stands for election (default 10).
    #[arg(long, env = "TUMA_RAFT_ELECTION_TICKS")]
    pub raft_election_ticks: Option<usize>,
    /// Ticks between a leader's heartbeats (default 2; fewer than the election ticks).
    #[arg(long, env = "TUMA_RAFT_HEARTBEAT_TICKS")]
    pub raft_heartbeat_ticks: Option<usize>,
    /// Checkpoint a shard after this many bytes of log too (default 262144).
    #[arg(long, env = "TUMA_CHECKPOINT_EVERY_BYTES")]
    pub checkpoint_every_bytes: Option<u64>,
    /// Keep at most this many bytes of log before a checkpoint for slow followers (default
    /// 131072).
    #[arg(long, env = "TUMA_LOG_KEEP_BYTES")]
    pub log_keep_bytes: Option<u64>,
    /// Requests and peer messages the engine queues at most before refusing more (default
    /// 100000).
    #[arg(long, env = "TUMA_ENGINE_INPUT_QUEUE_MAX")]
    pub engine_input_queue_max: Option<usize>,
    /// Give up on a request forwarded to another node after this long, ms (default 30000).
    #[arg(long, env = "TUMA_FORWARD_TIMEOUT_MS")]
    pub forward_timeout_ms: Option<u64>,
    /// An account actor idle this long is passivated, ms (default 120000).
    #[arg(long, env = "TUMA_ACTOR_IDLE_MS")]
    pub actor_idle_ms: Option<u64>,
    /// A snapshot a follower has not acknowledged is sent again after this long, ms (default
    /// 10000).
    #[arg(long, env = "TUMA_SNAPSHOT_RETRY_MS")]
    pub snapshot_retry_ms: Option<u64>,
    /// Bytes of one snapshot chunk (default 1048576; at most 8 MiB).
    #[arg(long, env = "TUMA_SNAPSHOT_CHUNK_BYTES")]
    pub snapshot_chunk_bytes: Option<usize>,
    /// Snapshot chunks in flight to one follower (default 8).
    #[arg(long, env = "TUMA_SNAPSHOT_WINDOW_CHUNKS")]
    pub snapshot_window_chunks: Option<usize>,
    /// An unacknowledged snapshot chunk is resent after this long, ms (default 2000).
    #[arg(long, env = "TUMA_SNAPSHOT_RESEND_MS")]
    pub snapshot_resend_ms: Option<u64>,
    /// A snapshot stream with no progress this long is abandoned, ms (default 60000; longer than
    /// the resend time).
    #[arg(long, env = "TUMA_SNAPSHOT_GIVE_UP_MS")]
    pub snapshot_give_up_ms: Option<u64>,
    /// The money protocol resends an unanswered offer or decision after this long, ms (default
    /// 200).
    #[arg(long, env = "TUMA_DRIVER_RESEND_MS")]
    pub driver_resend_ms: Option<u64>,
    /// A protocol step whose proposal was lost is proposed again after this long, ms (default
    /// 500).
    #[arg(long, env = "TUMA_DRIVER_PROPOSE_RETRY_MS")]
    pub driver_propose_retry_ms: Option<u64>,
    /// How long past a transfer's deadline a payer waits for the payee's answer before it
    /// asks, ms (default 2000; at least the resend time).
    #[arg(long, env = "TUMA_DRIVER_INQUIRY_GRACE_MS")]
    pub driver_inquiry_grace_ms: Option<u64>,
    /// Protocol duties (resends, inquiries, sweeps) one shard leader does per tick at most
    /// (default 10000).
    #[arg(long, env = "TUMA_DRIVER_DUTIES_PER_TICK_MAX")]
    pub driver_duties_per_tick_max: Option<usize>,
}

impl EngineTuning {
    /// These settings where given, the file's (`[engine]`) where not.
    pub fn or(self, file: EngineTuning) -> EngineTuning {
        EngineTuning {
            raft_tick_ms: self.raft_tick_ms.or(file.raft_tick_ms),
            raft_election_ticks: self.raft_election_ticks.or(file.raft_election_ticks),
            raft_heartbeat_ticks: self.raft_heartbeat_ticks.or(file.raft_heartbeat_ticks),
            checkpoint_every_bytes: self.checkpoint_every_bytes.or(file.checkpoint_every_bytes),
            log_keep_bytes: self.log_keep_bytes.or(file.log_keep_bytes),
            engine_input_queue_max: self.engine_input_queue_max.or(file.engine_input_queue_max),
            forward_timeout_ms: self.forward_timeout_ms.or(file.forward_timeout_ms),
            actor_idle_ms: self.actor_idle_ms.or(file.actor_idle_ms),
            snapshot_retry_ms: self.snapshot_retry_ms.or(file.snapshot_retry_ms),
            snapshot_chunk_bytes: self.snapshot_chunk_bytes.or(file.snapshot_chunk_bytes),
            snapshot_window_chunks: self.snapshot_window_chunks.or(file.snapshot_window_chunks),
            snapshot_resend_ms: self.snapshot_resend_ms.or(file.snapshot_resend_ms),
            snapshot_give_up_ms: self.snapshot_give_up_ms.or(file.snapshot_give_up_ms),
            driver_resend_ms: self.driver_resend_ms.or(file.driver_resend_ms),
            driver_propose_retry_ms: self
                .driver_propose_retry_ms
                .or(file.driver_propose_retry_ms),
            driver_inquiry_grace_ms: self
                .driver_inquiry_grace_ms
                .or(file.driver_inquiry_grace_ms),
            driver_duties_per_tick_max: self
                .driver_duties_per_tick_max
                .or(file.driver_duties_per_tick_max),
        }
    }

    /// Sets what was given on `config`.
    pub fn apply(&self, config: &mut EngineConfig) {
        fn set<T: Copy>(target: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *target = value;
            }
        }
        set(&mut config.tick_ms, self.raft_tick_ms);
        set(&mut config.election_ticks, self.raft_election_ticks);
        set(&mut config.heartbeat_ticks, self.raft_heartbeat_ticks);
        set(
            &mut config.checkpoint_every_bytes,
            self.checkpoint_every_bytes,
        );
        set(&mut config.log_keep_bytes, self.log_keep_bytes);
        set(&mut config.input_queue_max, self.engine_input_queue_max);
        set(&mut config.forward_timeout_ms, self.forward_timeout_ms);
        set(&mut config.actor_idle_ms, self.actor_idle_ms);
        set(&mut config.snapshot_retry_ms, self.snapshot_retry_ms);
        let streams = &mut config.snapshot_streams;
        set(&mut streams.chunk_bytes, self.snapshot_chunk_bytes);
        set(&mut streams.window_chunks, self.snapshot_window_chunks);
        set(&mut streams.resend_ms, self.snapshot_resend_ms);
        set(&mut streams.give_up_ms, self.snapshot_give_up_ms);
        let driver = &mut config.driver;
        set(&mut driver.resend_interval_ms, self.driver_resend_ms);
        set(&mut driver.propose_retry_ms, self.driver_propose_retry_ms);
        set(&mut driver.inquiry_grace_ms, self.driver_inquiry_grace_ms);
        set(
            &mut driver.duties_per_tick_max,
            self.driver_duties_per_tick_max,
        );
    }
}

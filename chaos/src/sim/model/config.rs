//! Simulator knobs. Each is a bound; the per-seed values are drawn within them.

use tuma_actors::ledger::PlantedFault;
use tuma_actors::protocol::DriverConfig;

/// How hard a seed is.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Shards per seed, drawn in this range.
    pub shards_min: u32,
    pub shards_max: u32,
    /// Client transfers per seed (reversals come on top).
    pub transfers: usize,
    /// Window over which transfers start, simulated ms.
    pub workload_ms: u64,
    /// Upper bounds of the per-seed network fault rates.
    pub drop_per_mille_max: u32,
    pub duplicate_per_mille_max: u32,
    /// Ordinary one-way delay is 1..=this; a few messages take up to 10× longer (reordering).
    pub delay_ms_max: u64,
    /// Leader crashes per seed, and how long a shard stays down.
    pub crashes: u32,
    pub downtime_ms_max: u64,
    /// Partitions per seed (each in its own time slot), and how long each lasts.
    pub partitions: u32,
    pub partition_ms_max: u64,
    /// Leader clocks are off by at most this much, either way.
    pub skew_ms_max: u64,
    /// Every transfer must resolve on both sides within this long after its deadline (plus
    /// skew), or after the last crash or partition in progress then, whichever is later.
    pub grace_ms: u64,
    /// Leaders tick their drivers this often.
    pub tick_ms: u64,
    /// Clients retry an unanswered request this often.
    pub client_retry_ms: u64,
    pub driver: DriverConfig,
    /// A protocol fault to plant (tests only; needs the `planted-faults` feature).
    pub planted_fault: Option<PlantedFault>,
    /// Record a line per event (for replays and byte-for-byte comparison).
    pub trace: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            shards_min: 3,
            shards_max: 6,
            transfers: 250,
            workload_ms: 15_000,
            drop_per_mille_max: 150,
            duplicate_per_mille_max: 50,
            delay_ms_max: 20,
            crashes: 6,
            downtime_ms_max: 1_500,
            partitions: 4,
            partition_ms_max: 4_000,
            skew_ms_max: 150,
            grace_ms: 3_000,
            tick_ms: 50,
            client_retry_ms: 400,
            driver: DriverConfig::default(),
            planted_fault: None,
            trace: false,
        }
    }
}

/// A setting the simulator cannot run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfigError(pub String);

impl std::fmt::Display for SimConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SimConfigError {}

impl SimConfig {
    /// Refuses settings outside what the simulator supports.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        let fail = |m: &str| Err(SimConfigError(m.to_string()));
        if self.shards_min < 2 || self.shards_min > self.shards_max || self.shards_max > 64 {
            return fail("shards must satisfy 2 <= min <= max <= 64");
        }
        if self.transfers == 0 || self.transfers > 100_000 {
            return fail("transfers per seed must be 1..=100000");
        }
        if self.drop_per_mille_max > 500 || self.duplicate_per_mille_max > 500 {
            return fail("drop and duplicate rates are at most 500 per mille");
        }
        if self.tick_ms == 0 || self.client_retry_ms == 0 || self.workload_ms == 0 {
            return fail("tick, retry and workload times must be positive");
        }
        self.driver
            .validate()
            .map_err(|e| SimConfigError(e.to_string()))
    }
}

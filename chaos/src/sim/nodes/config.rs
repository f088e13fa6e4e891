//! Knobs of the real-engine simulator. Each is a bound; every seed draws its own values within
//! them, so seeds differ in cluster shape, fault mix and network weather.

use tuma_cluster::engine::EngineFault;

#[derive(Clone, Debug)]
pub struct NodesConfig {
    /// Initial members per seed, drawn in this range (replicas: 3, or all if fewer).
    pub nodes_min: u64,
    pub nodes_max: u64,
    /// Seeds in a thousand that run one node with one replica per shard (single-voter groups
    /// restarting at any point).
    pub single_node_per_mille: u32,
    /// Shards per seed.
    pub shards_min: u64,
    pub shards_max: u64,
    /// Client transfers per seed (conflicting reuses of ids come on top).
    pub transfers: usize,
    /// Simulated time over which transfers start and faults strike.
    pub workload_ms: u64,
    /// After the workload everything heals; every transfer must resolve, every shard be fully
    /// replicated with a serving leader within this long.
    pub settle_ms: u64,
    /// Faults per seed (crashes, pauses, partitions, clock jumps, membership changes…).
    pub faults: u64,
    /// Upper bounds of the per-seed network weather.
    pub drop_per_mille_max: u32,
    pub duplicate_per_mille_max: u32,
    pub delay_ms_max: u64,
    /// Nodes' wall clocks are off by at most this much, either way. Each seed draws its own
    /// bound up to this: two nodes then differ by less than the engine's clock bound (500 ms),
    /// which is all the engine may assume.
    pub skew_ms_max: u64,
    /// A clock jump moves a running node's wall clock by up to this much.
    pub clock_jump_ms_max: u64,
    /// Checkpoint intervals (entries) drawn per seed: small, so checkpoints, compaction and
    /// snapshots to lagging replicas happen in every run.
    pub checkpoint_every_min: u64,
    pub checkpoint_every_max: u64,
    /// A defect to plant in every node (checker tests).
    pub planted_fault: Option<EngineFault>,
    /// Record a line per notable event (replays; byte-for-byte comparison).
    pub trace: bool,
}

impl Default for NodesConfig {
    fn default() -> NodesConfig {
        NodesConfig {
            nodes_min: 3,
            nodes_max: 5,
            single_node_per_mille: 100,
            shards_min: 2,
            shards_max: 4,
            transfers: 60,
            workload_ms: 8_000,
            settle_ms: 30_000,
            faults: 6,
            drop_per_mille_max: 80,
            duplicate_per_mille_max: 30,
            delay_ms_max: 12,
            skew_ms_max: 240,
            clock_jump_ms_max: 3_600_000,
            checkpoint_every_min: 10,
            checkpoint_every_max: 120,
            planted_fault: None,
            trace: false,
        }
    }
}

/// A setting the simulator cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NodesConfigError(pub String);

impl NodesConfig {
    pub fn validate(&self) -> Result<(), NodesConfigError> {
        let fail = |m: &str| Err(NodesConfigError(m.to_string()));
        if self.nodes_min < 3 || self.nodes_min > self.nodes_max || self.nodes_max > 7 {
            return fail("nodes must satisfy 3 <= min <= max <= 7");
        }
        if self.shards_min == 0 || self.shards_min > self.shards_max || self.shards_max > 16 {
            return fail("shards must satisfy 1 <= min <= max <= 16");
        }
        if self.transfers == 0 || self.transfers > 10_000 {
            return fail("transfers per seed must be 1..=10000");
        }
        if self.workload_ms < 1_000 || self.settle_ms < 5_000 {
            return fail("the workload needs at least 1 s and settling at least 5 s");
        }
        if self.drop_per_mille_max > 300 || self.duplicate_per_mille_max > 300 {
            return fail("drop and duplicate rates are at most 300 per mille");
        }
        if self.skew_ms_max >= 250 {
            return fail("skew must stay under 250 ms (two nodes within the 500 ms clock bound)");
        }
        if self.checkpoint_every_min == 0 || self.checkpoint_every_min > self.checkpoint_every_max {
            return fail("checkpoint intervals must satisfy 1 <= min <= max");
        }
        Ok(())
    }
}

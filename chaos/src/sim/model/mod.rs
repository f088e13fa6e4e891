//! The protocol-model simulator (`tuma sim --model`): many shards, each a
//! [`ShardLedger`](tuma_actors::ledger::ShardLedger) plus a leader-side
//! [`ShardDriver`](tuma_actors::protocol::ShardDriver), over a network that drops, duplicates,
//! delays and reorders messages and is cut by partitions; shard leaders crash (entries in flight
//! lost or kept at random) and come back with skewed clocks. It models a shard's replication as
//! "a log that applies after a short delay", so it sees nothing of Raft, the engine or
//! membership — the real-engine simulator (`super::nodes`) does. It earns its place by speed:
//! thousands of seeds a second of the money protocol alone, with hostile network rates and
//! planted protocol faults (a payee spending a pending credit, a commit after the deadline).
//!
//! | file | holds |
//! |---|---|
//! | `config.rs` | knobs and their limits |
//! | `world/` | the event loop: network, log, leaders, clients, faults |
//! | `checker.rs` | per-step and final checks, violations |
//! | `report.rs` | per-seed reports, the summary line, running many seeds |

pub mod checker;
mod config;
mod report;
mod world;

pub use checker::Violation;
pub use config::SimConfig;
pub use report::{run_seed, run_seeds};

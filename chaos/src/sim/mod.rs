//! `tuma sim`: a deterministic simulator of the money core.
//!
//! Many shards (each a [`ShardLedger`](tuma_actors::ledger::ShardLedger) plus a leader-side
//! [`ShardDriver`](tuma_actors::protocol::ShardDriver)) talk over a simulated network that drops,
//! duplicates, delays and reorders messages and is cut by partitions; shard leaders crash
//! (volatile state lost, applied state kept, entries in flight lost or kept at random) and come
//! back with skewed clocks; clients drive every transfer kind with random deadlines and retry
//! with the same idempotency key. The [`checker`] runs after every step and after quiescence.
//!
//! | file | holds |
//! |---|---|
//! | `rng.rs` | the seeded generator (hand-written so seeds replay forever) |
//! | `config.rs` | knobs and their limits |
//! | `workload.rs` | the bank: accounts, funding, random transfers of every kind |
//! | `world.rs` | the event loop: network, log, leaders, clients, faults |
//! | `checker.rs` | per-step and final checks, violations |
//! | `report.rs` | per-seed reports, the summary line, running many seeds |

pub mod checker;
mod config;
mod report;
mod rng;
mod workload;
mod world;

pub use checker::Violation;
pub use config::SimConfig;
pub use report::{run_seed, run_seeds, SeedReport, Summary};
pub use rng::SimRng;

//! `tuma sim`: deterministic simulation, from a seed, of everything that can go wrong.
//!
//! Two simulators share the bank ([`bank`]) and the seeded generator ([`rng`]):
//!
//! - [`nodes`] (the default): N nodes of the **real engine** — the Ready loop, group commit,
//!   checkpoints and snapshots, leader balancing, protocol drivers, account actors, request
//!   routing and forwarding, the meta group, joins, drains and graceful leaves — in one thread,
//!   over an in-memory network, in-memory disks and simulated clocks. Faults: message loss,
//!   duplication, delay and reordering, partitions (one-way too), crashes at any point (also in
//!   the middle of a write, and with a torn last write), restarts, pauses, clock skew and
//!   jumps, membership changes; clients retry, reuse ids for other requests, type wrong PINs.
//!   The checker asserts after every step and after healing (see `nodes/checks.rs`).
//! - [`model`] (`tuma sim --model`): the money protocol alone, with a modelled log, at
//!   thousands of seeds a second under hostile network rates.
//!
//! Either way a seed replays byte for byte: `tuma sim --seed N`.

mod bank;
pub mod model;
pub mod nodes;
mod report;
mod rng;

pub use model::{SimConfig, Violation};
pub use report::{run_many, SeedReport, Summary};
pub use rng::SimRng;

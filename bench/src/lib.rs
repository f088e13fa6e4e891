//! # tuma-bench — how fast, measured
//!
//! | module | holds |
//! |---|---|
//! | [`lean`] | the lean load generator: keep-alive HTTP/1.1 per node, one write per request, a minimal answer parser; optionally to the payer shard's leader |
//! | [`load`] | accounts, the workloads (`transfers`, `skewed`, `day`), closed- and open-loop clients |
//! | [`measure`] | latency histograms, per-second series, node CPU and peak memory from `/proc` |
//! | [`output`] | the JSON result, the markdown table, the SVG plots, the summary line |
//! | [`postgres`] | the PostgreSQL baseline: the same workload as a stored procedure with row locks |
//!
//! `tuma bench` drives the same HTTP API real channels use, against its own local cluster
//! (started on loopback with production settings) or a running one (`--target`).

pub mod costs;
pub mod lean;
pub mod load;
pub mod measure;
pub mod output;
pub mod postgres;

pub use load::{run, BenchConfig, BenchError, LoadClient, Workload};
pub use measure::BenchResult;

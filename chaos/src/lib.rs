//! # tuma-chaos — proving the money core
//!
//! | module | holds |
//! |---|---|
//! | [`sim`] | `tuma sim`: a deterministic simulator of many shards over a faulty network, with a checker |
//!
//! The harness against real processes (`tuma chaos`) is built on the cluster (issue 4).

pub mod sim;

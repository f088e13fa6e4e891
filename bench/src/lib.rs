//! # tuma-bench — load generation and baselines
//!
//! Not built yet: the benchmark issue (#5) builds `tuma bench` here once the cluster serves.

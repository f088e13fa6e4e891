//! # tuma-cluster — the replicated core
//!
//! Multi-Raft over raft-rs, sled storage behind traits, the encrypted peer transport, the shard
//! map and routing. Not built yet: the cluster issue (#3) builds it on the pure ledger and
//! protocol of `tuma-actors`, which the simulator in `tuma-chaos` already exercises.

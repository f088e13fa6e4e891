//! # tuma-cluster — the replicated core
//!
//! | module | holds |
//! |---|---|
//! | [`engine`] | the per-node engine thread: multi-Raft Ready loop with group commit, replicas, account actors, routing |
//! | [`storage`] | the `LogStore` trait, its disk implementation (fjall for the log and history, sled for checkpoint data), and the in-memory Raft log |
//! | [`transport`] | the authenticated, encrypted, batching peer transport |
//! | [`membership`] | the meta group's state (members, placement, moves), the rebalancer's plan, conf-change steps |
//! | [`placement`] | the initial placement of a new cluster's shards |
//! | [`wire`] | frames between nodes |
//! | [`slog_bridge`] | raft-rs's slog records into `tracing` |

pub mod engine;
pub mod membership;
pub mod placement;
pub mod slog_bridge;
pub mod storage;
pub mod transport;
pub mod wire;

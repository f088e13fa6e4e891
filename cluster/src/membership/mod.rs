//! Elastic membership: the cluster state kept by the meta Raft group, the rebalancer's plan,
//! and the steps a group leader takes to reach a new replica set.
//!
//! | file | holds |
//! |---|---|
//! | `meta.rs` | [`ClusterMeta`]: members, placement, moves; the commands that change them |
//! | `plan.rs` | [`plan`]: the rebalancer's next moves (bounded), leader spreading, removals |
//! | `reconcile.rs` | [`next_step`]: learner → catch up → joint promotion/removal, one step at a time |
//!
//! All three are pure; the engine (`engine/membership.rs`) runs them and does the I/O.

mod meta;
mod plan;
mod reconcile;
#[cfg(test)]
mod tests;

pub use meta::{
    same_set, ClusterMeta, Document, Member, MemberState, MetaCommand, MetaOutcome, Move,
    DOCUMENTS_MAX, DOCUMENT_BYTES_MAX, DOCUMENT_NAME_LEN_MAX, META_GROUP,
};
pub use plan::{plan, PlanLimits};
pub use reconcile::{next_step, ConfStep, GroupView, CATCH_UP_SLACK};

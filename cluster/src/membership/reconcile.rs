//! What a Raft group's leader does next to bring its configuration to the desired replica set:
//! add missing replicas as learners, promote them once caught up while removing the replicas
//! they replace (joint consensus), drop stray learners, and hand leadership over first when the
//! leader itself is leaving. One step at a time; pure.

use std::collections::BTreeMap;

use crate::transport::NodeId;

/// A learner is caught up when it is at most this many entries behind the leader's last.
pub const CATCH_UP_SLACK: u64 = 64;

/// The leader's view of its group.
#[derive(Clone, Debug, Default)]
pub struct GroupView {
    pub me: NodeId,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// In a joint configuration (leaving it is automatic).
    pub joint: bool,
    /// A configuration change is proposed but not yet applied.
    pub change_pending: bool,
    pub last_index: u64,
    /// Each peer's matched index, from the leader's progress tracker.
    pub matched: BTreeMap<NodeId, u64>,
}

impl GroupView {
    fn caught_up(&self, node: NodeId) -> bool {
        self.matched
            .get(&node)
            .is_some_and(|&m| m > 0 && m + CATCH_UP_SLACK >= self.last_index)
    }
}

/// The leader's next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfStep {
    /// Leave the joint configuration the group is in.
    LeaveJoint,
    /// Nothing to do now (a change is in flight or a learner is catching up).
    Wait,
    /// The configuration equals the desired set.
    Reached,
    TransferLeader(NodeId),
    AddLearner(NodeId),
    RemoveLearner(NodeId),
    /// One joint change: promote these learners, remove these voters.
    Replace {
        promote: Vec<NodeId>,
        remove: Vec<NodeId>,
    },
}

/// The next step towards `desired`.
pub fn next_step(desired: &[NodeId], view: &GroupView) -> ConfStep {
    if view.change_pending {
        return ConfStep::Wait;
    }
    if view.joint {
        // raft-rs leaves a joint configuration by itself only on the leader that applied the
        // joint entry (its own TODO); any later leader must propose the leave.
        return ConfStep::LeaveJoint;
    }
    if desired.is_empty() {
        return ConfStep::Wait;
    }
    if !view.voters.contains(&view.me) {
        // A leader its own group removed (raft-rs keeps it leading, but drops its proposals):
        // whatever the cluster state wants, only a voter can change the configuration now.
        let heir = view
            .voters
            .iter()
            .filter(|n| view.caught_up(**n))
            .max_by_key(|n| {
                (
                    view.matched.get(*n).copied().unwrap_or(0),
                    std::cmp::Reverse(**n),
                )
            });
        return match heir {
            Some(&heir) => ConfStep::TransferLeader(heir),
            None => ConfStep::Wait,
        };
    }
    let leaving = !desired.contains(&view.me);
    if leaving {
        let heir = desired
            .iter()
            .find(|n| view.voters.contains(n) && view.caught_up(**n));
        if let Some(&heir) = heir {
            return ConfStep::TransferLeader(heir);
        }
        // No desired replica can take over yet (a cancelled move left the group on members
        // the cluster state no longer wants): bring them in first, keeping this leader a voter
        // until one of them is a caught-up voter to hand over to.
    }
    if let Some(&stray) = view.learners.iter().find(|n| !desired.contains(n)) {
        return ConfStep::RemoveLearner(stray);
    }
    let promote: Vec<NodeId> = desired
        .iter()
        .filter(|n| !view.voters.contains(n))
        .copied()
        .collect();
    if let Some(&new) = promote.iter().find(|n| !view.learners.contains(n)) {
        return ConfStep::AddLearner(new);
    }
    let remove: Vec<NodeId> = view
        .voters
        .iter()
        .filter(|n| !desired.contains(n) && **n != view.me)
        .copied()
        .collect();
    if promote.is_empty() && remove.is_empty() {
        // A leaving leader is removed by its heir, once it has handed over.
        return if leaving {
            ConfStep::Wait
        } else {
            ConfStep::Reached
        };
    }
    if promote.iter().all(|n| view.caught_up(*n)) {
        ConfStep::Replace { promote, remove }
    } else {
        ConfStep::Wait
    }
}

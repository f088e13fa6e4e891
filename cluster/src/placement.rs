//! Where each shard's replicas live and which of them should lead.
//!
//! Replicas of shard `s` are `R` consecutive members starting at position `s mod N` of the
//! sorted member list, so every node carries the same number of replicas (±1); the first of
//! them is the shard's preferred leader, which spreads leaders evenly too.

use crate::transport::NodeId;

/// The replica set of every shard, from the initial members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    members: Vec<NodeId>,
    replicas: usize,
    shards: u32,
}

impl Placement {
    /// `members` non-empty, `replicas` in `1..=members.len()`.
    pub fn new(mut members: Vec<NodeId>, replicas: usize, shards: u32) -> Option<Placement> {
        members.sort_unstable();
        members.dedup();
        (replicas >= 1 && replicas <= members.len() && shards >= 1).then_some(Placement {
            members,
            replicas,
            shards,
        })
    }

    /// The nodes holding `shard`, preferred leader first.
    pub fn replicas_of(&self, shard: u32) -> Vec<NodeId> {
        let n = self.members.len();
        (0..self.replicas)
            .map(|i| self.members[(shard as usize + i) % n])
            .collect()
    }

    /// The node that should lead `shard` when it is healthy.
    pub fn preferred_leader(&self, shard: u32) -> NodeId {
        self.members[shard as usize % self.members.len()]
    }

    /// Shards `node` holds a replica of.
    pub fn shards_of(&self, node: NodeId) -> Vec<u32> {
        (0..self.shards)
            .filter(|&s| self.replicas_of(s).contains(&node))
            .collect()
    }

    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    pub fn shard_count(&self) -> u32 {
        self.shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_and_leaders_are_spread_evenly() {
        let p = Placement::new(vec![3, 1, 2, 4, 5], 3, 64).unwrap();
        let counts: Vec<usize> = p.members().iter().map(|&m| p.shards_of(m).len()).collect();
        assert!(
            counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
            "{counts:?}"
        );
        let leaders: Vec<usize> = p
            .members()
            .iter()
            .map(|&m| (0..64).filter(|&s| p.preferred_leader(s) == m).count())
            .collect();
        assert!(
            leaders.iter().max().unwrap() - leaders.iter().min().unwrap() <= 1,
            "{leaders:?}"
        );
        for s in 0..64 {
            let r = p.replicas_of(s);
            assert_eq!(r[0], p.preferred_leader(s));
            let mut unique = r.clone();
            unique.dedup();
            assert_eq!(unique.len(), 3);
        }
        assert!(Placement::new(vec![1, 2], 3, 8).is_none());
    }
}

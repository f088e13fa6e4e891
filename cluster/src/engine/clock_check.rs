//! Bounded clock offset (after CockroachDB's remote clock monitor): every node pings its peers
//! with its clocks, measures each peer's wall-clock offset from the answer (uncertain by half the
//! round trip), and refuses to lead while its clock disagrees with a majority of the members by
//! more than `max_offset_ms`. Proposal timestamps are also clamped to the members' consensus
//! time, so one node whose clock runs hours ahead can never push a shard's clock (which only
//! moves forward) into the future. Pure: the engine hands it every clock reading.

use std::collections::BTreeMap;

use crate::transport::NodeId;

/// A peer's offset measured this long ago is forgotten.
pub const SAMPLE_TTL_MS: u64 = 5_000;
/// How often a node pings each peer.
pub const PING_EVERY_MS: u64 = 500;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Sample {
    /// Peer wall clock minus ours.
    offset_ms: i64,
    /// Half the round trip: the offset is known only within this.
    uncertainty_ms: u64,
    /// When it was measured (our monotonic clock).
    at_ms: u64,
}

/// What this node may conclude about its own clock.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClockVerdict {
    /// Within bounds of a majority of the members (itself included).
    InBounds,
    /// Too few fresh measurements to tell (just started, or peers unreachable).
    Unknown,
    /// Off by more than the bound from a majority; `offset_ms` is the median offset of the
    /// peers (positive: they are ahead of this node).
    OutOfBounds { offset_ms: i64 },
}

/// The latest offset measured to each peer.
#[derive(Debug)]
pub struct PeerClocks {
    max_offset_ms: u64,
    samples: BTreeMap<NodeId, Sample>,
}

impl PeerClocks {
    pub fn new(max_offset_ms: u64) -> PeerClocks {
        PeerClocks {
            max_offset_ms,
            samples: BTreeMap::new(),
        }
    }

    /// Records a pong: we sent at (`sent_mono_ms`, `sent_wall_ms`), the peer's wall clock read
    /// `peer_wall_ms` when it answered, and the answer arrived at `now_mono_ms`.
    pub fn record(
        &mut self,
        peer: NodeId,
        sent_mono_ms: u64,
        sent_wall_ms: u64,
        peer_wall_ms: u64,
        now_mono_ms: u64,
    ) {
        let Some(round_trip) = now_mono_ms.checked_sub(sent_mono_ms) else {
            return; // an answer to a ping from a previous run of this node
        };
        let midpoint = sent_wall_ms.saturating_add(round_trip / 2);
        let offset_ms = (peer_wall_ms as i128 - midpoint as i128)
            .clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        self.samples.insert(
            peer,
            Sample {
                offset_ms,
                uncertainty_ms: round_trip / 2,
                at_ms: now_mono_ms,
            },
        );
    }

    fn fresh<'a>(
        &'a self,
        members: &'a [NodeId],
        me: NodeId,
        now_mono_ms: u64,
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        members
            .iter()
            .filter(move |n| **n != me)
            .filter_map(|n| self.samples.get(n))
            .filter(move |s| now_mono_ms.saturating_sub(s.at_ms) <= SAMPLE_TTL_MS)
    }

    /// Whether this node's clock agrees with a majority of `members` (this node counts as
    /// agreeing with itself).
    pub fn verdict(&self, members: &[NodeId], me: NodeId, now_mono_ms: u64) -> ClockVerdict {
        let others = members.iter().filter(|n| **n != me).count();
        if others == 0 {
            return ClockVerdict::InBounds;
        }
        let majority = (others + 1) / 2 + 1;
        let fresh: Vec<&Sample> = self.fresh(members, me, now_mono_ms).collect();
        let agreeing = 1 + fresh
            .iter()
            .filter(|s| s.offset_ms.unsigned_abs() <= self.max_offset_ms + s.uncertainty_ms)
            .count();
        if agreeing >= majority {
            return ClockVerdict::InBounds;
        }
        let unmeasured = others - fresh.len();
        if agreeing + unmeasured >= majority {
            return ClockVerdict::Unknown; // the peers not measured yet could still agree
        }
        ClockVerdict::OutOfBounds {
            offset_ms: self.median_offset(members, me, now_mono_ms),
        }
    }

    /// The median of the fresh offsets, this node's own (0) included.
    fn median_offset(&self, members: &[NodeId], me: NodeId, now_mono_ms: u64) -> i64 {
        let mut offsets: Vec<i64> = self
            .fresh(members, me, now_mono_ms)
            .map(|s| s.offset_ms)
            .chain(std::iter::once(0))
            .collect();
        offsets.sort_unstable();
        offsets[offsets.len() / 2]
    }

    /// `wall_ms` moved to within `max_offset_ms` of the members' median clock.
    pub fn clamp(&self, wall_ms: u64, members: &[NodeId], me: NodeId, now_mono_ms: u64) -> u64 {
        let consensus = (wall_ms as i64).saturating_add(self.median_offset(members, me, now_mono_ms));
        let bound = self.max_offset_ms as i64;
        (wall_ms as i64)
            .clamp(consensus.saturating_sub(bound), consensus.saturating_add(bound))
            .max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    const BASE: u64 = 100 * HOUR;

    fn clocks_with(offsets: &[(NodeId, i64)]) -> PeerClocks {
        let mut clocks = PeerClocks::new(500);
        for &(peer, offset) in offsets {
            // Sent at wall BASE, answered after a 10 ms round trip.
            let peer_wall = (BASE as i64 + 5 + offset) as u64;
            clocks.record(peer, 100, BASE, peer_wall, 110);
        }
        clocks
    }

    #[test]
    fn a_node_alone_is_always_in_bounds() {
        assert_eq!(
            PeerClocks::new(500).verdict(&[1], 1, 0),
            ClockVerdict::InBounds
        );
    }

    #[test]
    fn a_node_an_hour_ahead_of_both_peers_is_out_of_bounds_and_they_are_not() {
        let ahead = clocks_with(&[(2, -(HOUR as i64)), (3, -(HOUR as i64))]);
        assert_eq!(
            ahead.verdict(&[1, 2, 3], 1, 110),
            ClockVerdict::OutOfBounds {
                offset_ms: -(HOUR as i64)
            }
        );
        let peer = clocks_with(&[(1, HOUR as i64), (3, 3)]);
        assert_eq!(peer.verdict(&[1, 2, 3], 2, 110), ClockVerdict::InBounds);
    }

    #[test]
    fn without_fresh_samples_the_verdict_is_unknown() {
        let clocks = clocks_with(&[(2, 0), (3, 0)]);
        assert_eq!(
            clocks.verdict(&[1, 2, 3], 1, 110 + SAMPLE_TTL_MS + 1),
            ClockVerdict::Unknown
        );
        assert_eq!(
            PeerClocks::new(500).verdict(&[1, 2, 3], 1, 0),
            ClockVerdict::Unknown
        );
    }

    #[test]
    fn one_fresh_agreeing_peer_of_two_is_a_majority() {
        let clocks = clocks_with(&[(2, 40)]);
        assert_eq!(clocks.verdict(&[1, 2, 3], 1, 110), ClockVerdict::InBounds);
    }

    #[test]
    fn an_offset_within_the_round_trip_uncertainty_is_tolerated() {
        let clocks = clocks_with(&[(2, 504), (3, 504)]);
        assert_eq!(clocks.verdict(&[1, 2, 3], 1, 110), ClockVerdict::InBounds);
        let clocks = clocks_with(&[(2, 520), (3, 520)]);
        assert!(matches!(
            clocks.verdict(&[1, 2, 3], 1, 110),
            ClockVerdict::OutOfBounds { .. }
        ));
    }

    #[test]
    fn a_clock_an_hour_ahead_is_clamped_to_the_consensus_plus_the_bound() {
        let ahead = clocks_with(&[(2, -(HOUR as i64)), (3, -(HOUR as i64))]);
        let wall = 10 * HOUR;
        assert_eq!(ahead.clamp(wall, &[1, 2, 3], 1, 110), wall - HOUR + 500);
        let fine = clocks_with(&[(2, 30), (3, -20)]);
        assert_eq!(fine.clamp(wall, &[1, 2, 3], 1, 110), wall);
    }

    #[test]
    fn a_pong_from_a_previous_run_is_ignored() {
        let mut clocks = PeerClocks::new(500);
        clocks.record(2, 1_000, 0, 0, 10);
        assert_eq!(clocks.verdict(&[1, 2], 1, 10), ClockVerdict::Unknown);
    }
}

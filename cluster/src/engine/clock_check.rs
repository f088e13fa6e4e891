//! Bounded clock offset (after CockroachDB's remote clock monitor): every node pings its peers,
//! and from each answer learns where that peer's wall clock stands against its own *monotonic*
//! clock (uncertain by half the round trip). So it always knows the members' consensus time —
//! the median of their estimated wall clocks and its own — without trusting its own wall clock,
//! and sees at once when its wall clock jumps. A node whose wall clock is off the consensus of a
//! majority of the members by more than `max_offset_ms` refuses to lead; every proposal's
//! timestamp is clamped to within the bound of the consensus, so a node whose clock runs hours
//! ahead can never push a shard's clock (which only moves forward) into the future. Pure: the
//! engine hands it every clock reading.

use std::collections::BTreeMap;

use crate::transport::NodeId;

/// A peer's clock measured this long ago is no longer trusted (peers' clocks drift and jump).
pub const SAMPLE_TTL_MS: u64 = 5_000;
/// How often a node pings each peer.
pub const PING_EVERY_MS: u64 = 500;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Sample {
    /// The peer's wall clock minus our monotonic clock, at the measurement.
    wall_minus_mono_ms: i64,
    /// Half the round trip: the estimate is known only within this.
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
    /// Off by more than the bound from a majority; `offset_ms` is how far the members'
    /// consensus is from this node's clock (positive: they are ahead of it).
    OutOfBounds { offset_ms: i64 },
}

/// The latest measurement of each peer's clock.
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

    /// Records a pong: we pinged at monotonic `sent_mono_ms`, the peer's wall clock read
    /// `peer_wall_ms` when it answered, and the answer arrived at monotonic `now_mono_ms`.
    pub fn record(&mut self, peer: NodeId, sent_mono_ms: u64, peer_wall_ms: u64, now_mono_ms: u64) {
        let Some(round_trip) = now_mono_ms.checked_sub(sent_mono_ms) else {
            return; // an answer to a ping from a previous run of this node
        };
        let midpoint = sent_mono_ms + round_trip / 2;
        let wall_minus_mono_ms = (i128::from(peer_wall_ms) - i128::from(midpoint))
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX))
            as i64;
        self.samples.insert(
            peer,
            Sample {
                wall_minus_mono_ms,
                uncertainty_ms: round_trip / 2,
                at_ms: now_mono_ms,
            },
        );
    }

    /// Fresh estimates of the other members' wall clocks now, with their uncertainty.
    fn estimates(&self, members: &[NodeId], me: NodeId, now_mono_ms: u64) -> Vec<(i64, u64)> {
        members
            .iter()
            .filter(|n| **n != me)
            .filter_map(|n| self.samples.get(n))
            .filter(|s| now_mono_ms.saturating_sub(s.at_ms) <= SAMPLE_TTL_MS)
            .map(|s| {
                (
                    s.wall_minus_mono_ms.saturating_add(now_mono_ms as i64),
                    s.uncertainty_ms,
                )
            })
            .collect()
    }

    /// Whether this node's wall clock (`wall_ms` now) agrees with a majority of `members`
    /// (this node counts as agreeing with itself).
    pub fn verdict(
        &self,
        members: &[NodeId],
        me: NodeId,
        now_mono_ms: u64,
        wall_ms: u64,
    ) -> ClockVerdict {
        let others = members.iter().filter(|n| **n != me).count();
        if others == 0 {
            return ClockVerdict::InBounds;
        }
        let cluster_size = others + 1;
        let majority = cluster_size / 2 + 1;
        let estimates = self.estimates(members, me, now_mono_ms);
        let agreeing = 1 + estimates
            .iter()
            .filter(|(peer, uncertainty)| {
                (*peer - wall_ms as i64).unsigned_abs() <= self.max_offset_ms + uncertainty
            })
            .count();
        if agreeing >= majority {
            return ClockVerdict::InBounds;
        }
        let unmeasured = others - estimates.len();
        if agreeing + unmeasured >= majority {
            return ClockVerdict::Unknown; // the peers not measured yet could still agree
        }
        ClockVerdict::OutOfBounds {
            offset_ms: self.consensus(members, me, now_mono_ms, wall_ms) - wall_ms as i64,
        }
    }

    /// The lower median of the members' estimated wall clocks now, this node's own included:
    /// with as many clocks ahead as not, the earlier one (a clock running ahead is what can
    /// poison a shard).
    fn consensus(&self, members: &[NodeId], me: NodeId, now_mono_ms: u64, wall_ms: u64) -> i64 {
        let mut clocks: Vec<i64> = self
            .estimates(members, me, now_mono_ms)
            .into_iter()
            .map(|(clock, _)| clock)
            .chain(std::iter::once(wall_ms as i64))
            .collect();
        clocks.sort_unstable();
        clocks[(clocks.len() - 1) / 2]
    }

    /// `wall_ms`, but never more than `max_offset_ms` past the members' consensus time. (A
    /// clock behind is left alone: stamping earlier only makes deadlines stricter, and a node
    /// too far behind refuses to lead anyway.)
    pub fn clamp(&self, wall_ms: u64, members: &[NodeId], me: NodeId, now_mono_ms: u64) -> u64 {
        let consensus = self.consensus(members, me, now_mono_ms, wall_ms);
        let ceiling = consensus.saturating_add(self.max_offset_ms as i64).max(0) as u64;
        wall_ms.min(ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    /// Wall clocks read about this; monotonic clocks start near 0.
    const WALL: u64 = 100 * HOUR;

    /// Peers measured at monotonic 100..110 (10 ms round trip), each `offset` ms off `WALL`.
    fn clocks_with(offsets: &[(NodeId, i64)]) -> PeerClocks {
        let mut clocks = PeerClocks::new(500);
        for &(peer, offset) in offsets {
            let peer_wall = (WALL as i64 + 105 + offset) as u64;
            clocks.record(peer, 100, peer_wall, 110);
        }
        clocks
    }

    /// Our wall clock at monotonic 110, `jump` ms off the true time.
    fn wall(jump: i64) -> u64 {
        (WALL as i64 + 110 + jump) as u64
    }

    #[test]
    fn a_node_alone_is_always_in_bounds() {
        assert_eq!(
            PeerClocks::new(500).verdict(&[1], 1, 0, wall(0)),
            ClockVerdict::InBounds
        );
    }

    #[test]
    fn a_node_an_hour_ahead_of_both_peers_is_out_of_bounds_and_they_are_not() {
        let clocks = clocks_with(&[(2, 0), (3, 0)]);
        assert_eq!(
            clocks.verdict(&[1, 2, 3], 1, 110, wall(0)),
            ClockVerdict::InBounds
        );
        assert_eq!(
            clocks.verdict(&[1, 2, 3], 1, 110, wall(HOUR as i64)),
            ClockVerdict::OutOfBounds {
                offset_ms: -(HOUR as i64)
            },
            "a jump is seen at once, without a new measurement"
        );
        let peer = clocks_with(&[(1, HOUR as i64), (3, 3)]);
        assert_eq!(
            peer.verdict(&[1, 2, 3], 2, 110, wall(0)),
            ClockVerdict::InBounds
        );
    }

    #[test]
    fn without_fresh_samples_the_verdict_is_unknown() {
        let clocks = clocks_with(&[(2, 0), (3, 0)]);
        assert_eq!(
            clocks.verdict(&[1, 2, 3], 1, 110 + SAMPLE_TTL_MS + 1, wall(0)),
            ClockVerdict::Unknown
        );
        assert_eq!(
            PeerClocks::new(500).verdict(&[1, 2, 3], 1, 0, wall(0)),
            ClockVerdict::Unknown
        );
    }

    #[test]
    fn one_fresh_agreeing_peer_of_two_is_a_majority() {
        let clocks = clocks_with(&[(2, 40)]);
        assert_eq!(
            clocks.verdict(&[1, 2, 3], 1, 110, wall(0)),
            ClockVerdict::InBounds
        );
    }

    #[test]
    fn an_offset_within_the_round_trip_uncertainty_is_tolerated() {
        let clocks = clocks_with(&[(2, 504), (3, 504)]);
        assert_eq!(
            clocks.verdict(&[1, 2, 3], 1, 110, wall(0)),
            ClockVerdict::InBounds
        );
        let clocks = clocks_with(&[(2, 520), (3, 520)]);
        assert!(matches!(
            clocks.verdict(&[1, 2, 3], 1, 110, wall(0)),
            ClockVerdict::OutOfBounds { .. }
        ));
    }

    #[test]
    fn a_clock_an_hour_ahead_is_clamped_to_the_consensus_plus_the_bound() {
        let clocks = clocks_with(&[(2, 0), (3, 0)]);
        let ahead = wall(HOUR as i64);
        assert_eq!(clocks.clamp(ahead, &[1, 2, 3], 1, 110), wall(500));
        assert_eq!(clocks.clamp(wall(30), &[1, 2, 3], 1, 110), wall(30));
    }

    #[test]
    fn a_peer_running_ahead_never_pulls_an_honest_clock_forward() {
        let clocks = clocks_with(&[(2, HOUR as i64)]);
        assert_eq!(clocks.clamp(wall(0), &[1, 2, 3], 1, 110), wall(0));
    }

    #[test]
    fn a_pong_from_a_previous_run_is_ignored() {
        let mut clocks = PeerClocks::new(500);
        clocks.record(2, 1_000, WALL, 10);
        assert_eq!(
            clocks.verdict(&[1, 2], 1, 10, wall(0)),
            ClockVerdict::Unknown
        );
    }
}

//! What one replica knows about whether its group still holds it (volatile): when it last
//! heard from a leader of its group, when it last asked the members, and whether a member said
//! its configuration no longer has this replica. `membership.rs` decides from it which replicas
//! to destroy and which to ask about.

/// How often a silent replica asks the members whether its group still has it, ms.
pub(super) const QUERY_EVERY_MS: u64 = 2_000;

#[derive(Debug, Default)]
pub(super) struct RemovalWatch {
    /// The shard's leader said its configuration, as of this index, no longer holds this
    /// replica.
    tombstoned: Option<u64>,
    /// When this replica last asked the members whether its group still has it (monotonic ms).
    queried_at: u64,
    /// When it last heard from a leader of its group (monotonic ms).
    heard_leader_at: u64,
    /// Logged once: its configuration no longer has this node.
    noted_outside: bool,
}

impl RemovalWatch {
    /// A leader of the group spoke (or this replica leads).
    pub fn heard_leader(&mut self, now_ms: u64) {
        self.heard_leader_at = now_ms;
    }

    /// A member said the group's configuration as of `conf_index` no longer holds this replica.
    pub fn tombstone(&mut self, conf_index: u64) {
        self.tombstoned = Some(conf_index);
    }

    pub fn tombstoned(&self) -> Option<u64> {
        self.tombstoned
    }

    /// Whether to ask the members now: no leader spoke for `silent_ms` and no question went out
    /// in the last [`QUERY_EVERY_MS`]. Answering yes records the question.
    pub fn query_due(&mut self, now_ms: u64, silent_ms: u64) -> bool {
        let due = now_ms >= self.heard_leader_at + silent_ms
            && now_ms >= self.queried_at + QUERY_EVERY_MS;
        if due {
            self.queried_at = now_ms;
        }
        due
    }

    /// True the first time it is called (so "outside its configuration" is logged once).
    pub fn first_note_outside(&mut self) -> bool {
        !std::mem::replace(&mut self.noted_outside, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_replica_asks_once_per_interval_and_not_while_a_leader_speaks() {
        let mut watch = RemovalWatch::default();
        watch.heard_leader(1_000);
        assert!(!watch.query_due(1_500, 1_000), "a leader spoke 500 ms ago");
        assert!(watch.query_due(2_000, 1_000));
        assert!(!watch.query_due(2_500, 1_000), "asked 500 ms ago");
        assert!(watch.query_due(2_000 + QUERY_EVERY_MS, 1_000));
        watch.heard_leader(10_000);
        assert!(!watch.query_due(10_500, 1_000));
    }

    #[test]
    fn the_outside_note_is_taken_once_and_a_tombstone_is_kept() {
        let mut watch = RemovalWatch::default();
        assert!(watch.first_note_outside());
        assert!(!watch.first_note_outside());
        assert_eq!(watch.tombstoned(), None);
        watch.tombstone(42);
        assert_eq!(watch.tombstoned(), Some(42));
    }
}

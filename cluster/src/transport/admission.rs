//! Admission of inbound connections before they authenticate.
//!
//! Anyone who reaches the peer port can open sockets and say nothing. Refusing new sockets once
//! the unauthenticated ones fill their slots would let such a client lock real peers out — a
//! node that restarts could not rejoin. So a new connection is always admitted, and the oldest
//! unauthenticated one makes room: first among those of the same source address (one address
//! holds at most `per_source_max`, so it cannot crowd out the others), then overall
//! (`pending_max`). A real peer authenticates in a round trip or two and leaves the pending set
//! long before newer sockets could push it out; a silent one is pushed out or times out.
//!
//! Pure bookkeeping: the acceptor holds, for each pending handshake, a value (the handle that
//! cancels it) and cancels those [`Admission::admit`] hands back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// Unauthenticated connections of the whole node, and of one source address.
pub(super) struct Admission<T> {
    pending_max: usize,
    per_source_max: usize,
    next_id: u64,
    /// Pending handshakes by admission order (oldest first).
    pending: BTreeMap<u64, (IpAddr, T)>,
    by_source: HashMap<IpAddr, BTreeSet<u64>>,
}

impl<T> Admission<T> {
    /// Both bounds are at least 1.
    pub(super) fn new(pending_max: usize, per_source_max: usize) -> Admission<T> {
        Admission {
            pending_max: pending_max.max(1),
            per_source_max: per_source_max.max(1),
            next_id: 0,
            pending: BTreeMap::new(),
            by_source: HashMap::new(),
        }
    }

    /// Admits a connection from `source` whose handshake `cancel` stops. Returns its id and the
    /// handles of the handshakes pushed out to make room (to be cancelled).
    pub(super) fn admit(&mut self, source: IpAddr, cancel: T) -> (u64, Vec<T>) {
        let mut evicted = Vec::new();
        let from_source = self.by_source.get(&source).map_or(0, BTreeSet::len);
        if from_source >= self.per_source_max {
            let oldest = *self.by_source[&source].first().expect("counted above");
            evicted.extend(self.remove(oldest));
        }
        if self.pending.len() >= self.pending_max {
            let oldest = *self.pending.keys().next().expect("full");
            evicted.extend(self.remove(oldest));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, (source, cancel));
        self.by_source.entry(source).or_default().insert(id);
        debug_assert!(self.pending.len() <= self.pending_max);
        (id, evicted)
    }

    /// Handshake `id` ended (authenticated, failed or cancelled): its room is free. Returns its
    /// handle if it was still pending.
    pub(super) fn remove(&mut self, id: u64) -> Option<T> {
        let (source, cancel) = self.pending.remove(&id)?;
        if let Some(ids) = self.by_source.get_mut(&source) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_source.remove(&source);
            }
        }
        Some(cancel)
    }

    pub(super) fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn one_source_pushes_out_only_its_own_oldest_sockets() {
        let mut admission = Admission::new(8, 3);
        let (peer, _) = admission.admit(ip(2), -1);
        let mut pushed_out = Vec::new();
        for i in 0..100 {
            let (_, evicted) = admission.admit(ip(1), i);
            pushed_out.extend(evicted);
        }
        assert_eq!(pushed_out, (0..97).collect::<Vec<_>>(), "oldest first");
        assert_eq!(
            admission.pending(),
            4,
            "3 of the flooding source, 1 of the peer"
        );
        assert_eq!(
            admission.remove(peer),
            Some(-1),
            "the other source kept its socket"
        );
    }

    #[test]
    fn many_sources_push_out_the_oldest_overall_and_a_new_socket_always_gets_in() {
        let mut admission = Admission::new(4, 4);
        let ids: Vec<u64> = (1..=4).map(|i| admission.admit(ip(i), i).0).collect();
        let (newest, evicted) = admission.admit(ip(9), 9);
        assert_eq!(evicted, vec![1], "the oldest made room");
        assert_eq!(admission.pending(), 4);
        assert_eq!(admission.remove(ids[0]), None, "already pushed out");
        assert_eq!(
            admission.remove(ids[1]),
            Some(2),
            "authenticated: its room is free"
        );
        let (_, evicted) = admission.admit(ip(9), 10);
        assert!(evicted.is_empty(), "room was free");
        assert_eq!(admission.remove(newest), Some(9));
    }
}

//! Where a request for a shard this node does not lead goes: the leader hints other nodes gave,
//! the requests forwarded and waiting for their answer, and the turn through a shard's holders
//! when no leader is known. Pure bookkeeping; the engine does the sending.

use std::collections::BTreeMap;

use tuma_actors::transfer::TransferId;

use super::request::{ClientReply, ClientRequest, Waiter};
use crate::transport::NodeId;

/// A request forwarded to a leader and not answered yet.
struct Forwarded {
    waiter: Waiter,
    /// The node asked.
    to: NodeId,
    /// The transfer the answer must be about, if it is about one.
    transfer: Option<TransferId>,
    /// When it was sent (monotonic ms).
    at: u64,
}

pub(super) struct Router {
    /// Requests forwarded to a leader, by forward id.
    forwarded: BTreeMap<u64, Forwarded>,
    /// Forward ids start at a random point each run, so an answer to a forward made before a
    /// restart never answers a request of this run.
    next_forward_id: u64,
    /// Leaders other nodes named for shards this node does not lead.
    hints: BTreeMap<u32, NodeId>,
    /// Turns through a shard's holders when its leader is unknown.
    turn: usize,
}

impl Router {
    /// A router whose forward ids start at `first_forward_id` (random per run).
    pub fn new(first_forward_id: u64) -> Router {
        Router {
            forwarded: BTreeMap::new(),
            next_forward_id: first_forward_id,
            hints: BTreeMap::new(),
            turn: 0,
        }
    }

    /// Remembers a waiter whose request goes to node `to`; returns the forward's id.
    pub fn forwarding(
        &mut self,
        waiter: Waiter,
        to: NodeId,
        request: &ClientRequest,
        now_ms: u64,
    ) -> u64 {
        self.next_forward_id = self.next_forward_id.wrapping_add(1);
        let transfer = match request {
            ClientRequest::Transfer { request, .. } => Some(request.id.clone()),
            ClientRequest::TransferStatus { id, .. } => Some(id.clone()),
            _ => None,
        };
        self.forwarded.insert(
            self.next_forward_id,
            Forwarded {
                waiter,
                to,
                transfer,
                at: now_ms,
            },
        );
        self.next_forward_id
    }

    /// The waiter of forward `id` for `reply`, if node `from` is the node it was sent to (an
    /// answer from any other node is not one) and a receipt is for the transfer asked about.
    pub fn answered(&mut self, id: u64, from: NodeId, reply: &ClientReply) -> Option<Waiter> {
        let forward = self.forwarded.get(&id)?;
        if forward.to != from {
            return None;
        }
        if let (ClientReply::Receipt(receipt), Some(asked)) = (reply, &forward.transfer) {
            if &receipt.id != asked {
                tracing::error!(forward = id, asked = %asked, answered = %receipt.id, "a forwarded request was answered with another transfer's receipt; dropped");
                return None;
            }
        }
        self.forwarded.remove(&id).map(|f| f.waiter)
    }

    /// A leader other nodes named for `shard`, if any.
    pub fn hint(&self, shard: u32) -> Option<NodeId> {
        self.hints.get(&shard).copied()
    }

    /// Forwards unanswered for `timeout_ms`: their waiters, to be told "unavailable".
    pub fn expire(&mut self, now_ms: u64, timeout_ms: u64) -> Vec<Waiter> {
        let expired: Vec<u64> = self
            .forwarded
            .iter()
            .filter(|(_, f)| now_ms.saturating_sub(f.at) >= timeout_ms)
            .map(|(id, _)| *id)
            .collect();
        expired
            .into_iter()
            .filter_map(|id| self.forwarded.remove(&id).map(|f| f.waiter))
            .collect()
    }

    /// Another node named `leader` as the leader of `shard`.
    pub fn learn(&mut self, shard: u32, leader: NodeId) {
        self.hints.insert(shard, leader);
    }

    /// Where to send a request for `shard`: the leader this node's replica knows, else a
    /// reachable hinted leader, else the next reachable candidate in turn (any candidate when
    /// none is reachable). A candidate that does not lead names the leader in its answer.
    pub fn guess(
        &mut self,
        shard: u32,
        me: NodeId,
        known_leader: Option<NodeId>,
        candidates: Vec<NodeId>,
        reachable: impl Fn(NodeId) -> bool,
    ) -> Option<NodeId> {
        if let Some(leader) = known_leader.filter(|n| *n != me) {
            return Some(leader);
        }
        if let Some(&hint) = self.hints.get(&shard) {
            if hint != me && reachable(hint) {
                return Some(hint);
            }
            self.hints.remove(&shard);
        }
        let candidates: Vec<NodeId> = candidates.into_iter().filter(|n| *n != me).collect();
        let live: Vec<NodeId> = candidates
            .iter()
            .copied()
            .filter(|n| reachable(*n))
            .collect();
        let pool = if live.is_empty() { candidates } else { live };
        self.turn = self.turn.wrapping_add(1);
        pool.get(self.turn % pool.len().max(1)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_leader_wins_then_a_reachable_hint_then_candidates_in_turn() {
        let mut router = Router::new(0);
        assert_eq!(router.guess(3, 1, Some(2), vec![2, 3], |_| true), Some(2));
        router.learn(3, 3);
        assert_eq!(router.guess(3, 1, None, vec![2, 3], |_| true), Some(3));
        // An unreachable hint is dropped; reachable candidates take turns.
        let picks: Vec<_> = (0..4)
            .map(|_| router.guess(3, 1, None, vec![1, 2, 3], |n| n != 3))
            .collect();
        assert_eq!(picks, vec![Some(2); 4]);
        assert_eq!(router.guess(3, 1, None, vec![1], |_| true), None);
    }

    #[test]
    fn forwards_are_answered_once_and_expire() {
        let mut router = Router::new(0);
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let audit = ClientRequest::Audit { shard: 0 };
        let id = router.forwarding(Waiter::Local(tx), 2, &audit, 100);
        let reply = ClientReply::InProgress;
        assert!(
            router.answered(id, 3, &reply).is_none(),
            "only node 2 may answer"
        );
        assert!(router.expire(200, 1_000).is_empty());
        assert_eq!(router.expire(1_100, 1_000).len(), 1);
        assert!(router.answered(id, 2, &reply).is_none());
    }
}

//! What every replica applied, seen from outside: the engines report each applied ledger entry
//! (an observer in their environment). The recorder checks log matching on the spot — every
//! replica applies the same bytes at the same index — and keeps, for every watched account, the
//! committed history of its balance with the simulated time each state was first applied,
//! against which reads are judged. It also sees every money-protocol message a shard sends and
//! judges its decisions the same way: a payer shard may say "abort" only of a transfer its
//! committed log has not prepared (or has aborted), and "commit" only of one it has committed —
//! an answer from a leader that has not applied its log, or that was deposed without knowing
//! it, contradicts what the shard had already committed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tuma_actors::account::AccountRef;
use tuma_actors::ledger::{Decision, OutgoingState, ShardLedger};
use tuma_actors::protocol::{Envelope, PeerMessage};
use tuma_actors::transfer::TransferId;
use tuma_cluster::engine::ApplyObserver;
use tuma_cluster::transport::NodeId;

/// One committed state of an account: when it was first applied anywhere, at which index, and
/// the balance in cents.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BalanceState {
    pub first_applied_at: u64,
    pub index: u64,
    pub balance_cents: i64,
}

/// When a payer shard's committed state first held a transfer's record, and first held it
/// committed or ended (aborted or refused).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PayerSeen {
    pub held_at: Option<u64>,
    pub committed_at: Option<u64>,
    pub ended_at: Option<u64>,
}

#[derive(Default)]
pub struct Recorder {
    /// Per shard: the hash of the entry at each index, from its first application.
    entries: BTreeMap<u32, BTreeMap<u64, u64>>,
    /// Accounts whose balance history is kept, by shard.
    watched: BTreeMap<u32, Vec<AccountRef>>,
    pub timelines: BTreeMap<AccountRef, Vec<BalanceState>>,
    /// Per payer shard, the client transfers whose decisions are judged.
    pub payer_records: BTreeMap<u32, BTreeMap<TransferId, PayerSeen>>,
    /// The newest configuration any replica applied, per shard: its index and voters.
    pub configurations: BTreeMap<u32, (u64, Vec<NodeId>)>,
    pub violations: Vec<String>,
    /// Entries applied, counting every replica.
    pub applications: u64,
}

impl Recorder {
    /// Watches `account` (on `shard`) from balance zero.
    pub fn watch(&mut self, shard: u32, account: AccountRef) {
        self.timelines.entry(account.clone()).or_insert_with(|| {
            vec![BalanceState {
                first_applied_at: 0,
                index: 0,
                balance_cents: 0,
            }]
        });
        self.watched.entry(shard).or_default().push(account);
    }

    /// Judges every decision `payer_shard` sends about transfer `id`.
    pub fn watch_transfer(&mut self, payer_shard: u32, id: TransferId) {
        self.payer_records
            .entry(payer_shard)
            .or_default()
            .entry(id)
            .or_default();
    }

    /// A shard's driver on `node` sent `envelope` at `now`: a decision must agree with what
    /// the payer shard had committed by then.
    fn protocol_sent(&mut self, node: NodeId, envelope: &Envelope, now: u64) {
        let PeerMessage::Decision { id, decision } = &envelope.message else {
            return;
        };
        let Some(seen) = self
            .payer_records
            .get(&envelope.from)
            .and_then(|records| records.get(id))
        else {
            return;
        };
        if let Some(problem) = judge_decision(seen, *decision) {
            self.violations.push(format!(
                "shard {} on node {node} sent {decision:?} for {id} at {now} ms, {problem} (first committed states: {seen:?})",
                envelope.from
            ));
        }
    }

    /// A hash over every entry every shard committed (for the replay digest).
    pub fn digest(&self) -> u64 {
        let mut hash = FNV_OFFSET;
        for (shard, entries) in &self.entries {
            for (index, entry) in entries {
                for word in [u64::from(*shard), *index, *entry] {
                    hash = fnv(hash, &word.to_le_bytes());
                }
            }
        }
        hash
    }

    fn applied(
        &mut self,
        node: NodeId,
        shard: u32,
        index: u64,
        data: &[u8],
        ledger: &ShardLedger,
        now: u64,
    ) {
        self.applications += 1;
        let hash = fnv(FNV_OFFSET, data);
        let seen = self.entries.entry(shard).or_default();
        match seen.get(&index) {
            Some(&first) if first != hash => {
                self.violations.push(format!(
                    "log mismatch: node {node} applied a different entry at shard {shard} index {index} than another replica did"
                ));
                return;
            }
            Some(_) => return,
            None => {
                seen.insert(index, hash);
            }
        }
        for account in self.watched.get(&shard).into_iter().flatten() {
            let balance = ledger
                .account(account)
                .map_or(0, |a| a.balances.balance().cents());
            let timeline = self.timelines.entry(account.clone()).or_default();
            if timeline.last().map(|s| s.balance_cents) != Some(balance) {
                timeline.push(BalanceState {
                    first_applied_at: now,
                    index,
                    balance_cents: balance,
                });
            }
        }
        for (id, seen) in self.payer_records.get_mut(&shard).into_iter().flatten() {
            let Some(record) = ledger.outgoing(id) else {
                continue;
            };
            seen.held_at.get_or_insert(now);
            match record.state {
                OutgoingState::Prepared => {}
                OutgoingState::Committed => {
                    seen.committed_at.get_or_insert(now);
                }
                OutgoingState::Aborted(_) | OutgoingState::Refused(_) => {
                    seen.ended_at.get_or_insert(now);
                }
            }
        }
    }
}

/// What is wrong with a payer shard deciding `decision` when its committed state had said
/// `seen` (first states only: they never change once committed), if anything.
pub fn judge_decision(seen: &PayerSeen, decision: Decision) -> Option<&'static str> {
    match decision {
        Decision::Abort if seen.committed_at.is_some() => Some("after its shard had committed it"),
        Decision::Abort if seen.held_at.is_some() && seen.ended_at.is_none() => {
            Some("while its shard held it prepared and undecided (a presumed abort)")
        }
        Decision::Commit if seen.committed_at.is_none() => {
            Some("before its shard had committed it")
        }
        _ => None,
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The observer handed to one node's engine.
pub struct NodeObserver {
    pub node: NodeId,
    pub now_ms: Arc<AtomicU64>,
    pub recorder: Arc<Mutex<Recorder>>,
}

impl ApplyObserver for NodeObserver {
    fn configured(&mut self, shard: u32, index: u64, voters: &[u64]) {
        let mut recorder = self.recorder.lock().unwrap_or_else(|p| p.into_inner());
        let newest = recorder.configurations.entry(shard).or_default();
        if index >= newest.0 {
            *newest = (index, voters.to_vec());
        }
    }

    fn applied(&mut self, shard: u32, index: u64, data: &[u8], ledger: &ShardLedger) {
        let now = self.now_ms.load(Ordering::Relaxed);
        self.recorder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .applied(self.node, shard, index, data, ledger, now);
    }

    fn protocol_sent(&mut self, envelope: &Envelope) {
        let now = self.now_ms.load(Ordering::Relaxed);
        self.recorder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .protocol_sent(self.node, envelope, now);
    }
}

/// Is `balance` what a linearizable read running over `[started, answered]` could return?
/// It must be a committed state first applied no later than the answer, and no later state may
/// have been applied before the read began.
pub fn read_is_linearizable(
    timeline: &[BalanceState],
    balance: i64,
    started: u64,
    answered: u64,
) -> bool {
    timeline.iter().enumerate().any(|(i, state)| {
        state.balance_cents == balance
            && state.first_applied_at <= answered
            && timeline
                .get(i + 1)
                .is_none_or(|next| next.first_applied_at >= started)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(at: u64, balance: i64) -> BalanceState {
        BalanceState {
            first_applied_at: at,
            index: at,
            balance_cents: balance,
        }
    }

    #[test]
    fn a_decision_must_agree_with_what_the_payer_shard_committed() {
        let unknown = PayerSeen::default();
        let prepared = PayerSeen {
            held_at: Some(10),
            ..PayerSeen::default()
        };
        let committed = PayerSeen {
            committed_at: Some(20),
            ..prepared
        };
        let aborted = PayerSeen {
            ended_at: Some(20),
            ..prepared
        };
        assert_eq!(
            judge_decision(&unknown, Decision::Abort),
            None,
            "never prepared"
        );
        assert_eq!(judge_decision(&aborted, Decision::Abort), None);
        assert_eq!(judge_decision(&committed, Decision::Commit), None);
        assert!(
            judge_decision(&prepared, Decision::Abort).is_some(),
            "presumed abort"
        );
        assert!(judge_decision(&committed, Decision::Abort).is_some());
        assert!(judge_decision(&prepared, Decision::Commit).is_some());
        assert!(judge_decision(&aborted, Decision::Commit).is_some());
    }

    #[test]
    fn a_read_may_return_any_state_current_during_it_and_nothing_older() {
        let timeline = [state(0, 0), state(100, 50), state(200, 70)];
        assert!(read_is_linearizable(&timeline, 50, 150, 160));
        assert!(
            read_is_linearizable(&timeline, 50, 150, 250),
            "70 is concurrent, 50 still fine"
        );
        assert!(read_is_linearizable(&timeline, 70, 150, 250));
        assert!(
            !read_is_linearizable(&timeline, 0, 150, 160),
            "a stale read"
        );
        assert!(
            !read_is_linearizable(&timeline, 70, 120, 150),
            "a read from the future"
        );
        assert!(
            !read_is_linearizable(&timeline, 99, 0, 1_000),
            "a value never committed"
        );
    }
}

//! What every replica applied, seen from outside: the engines report each applied ledger entry
//! (an observer in their environment). The recorder checks log matching on the spot — every
//! replica applies the same bytes at the same index — and keeps, for every watched account, the
//! committed history of its balance with the simulated time each state was first applied,
//! against which reads are judged.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tuma_actors::account::AccountRef;
use tuma_actors::ledger::ShardLedger;
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

#[derive(Default)]
pub struct Recorder {
    /// Per shard: the hash of the entry at each index, from its first application.
    entries: BTreeMap<u32, BTreeMap<u64, u64>>,
    /// Accounts whose balance history is kept, by shard.
    watched: BTreeMap<u32, Vec<AccountRef>>,
    pub timelines: BTreeMap<AccountRef, Vec<BalanceState>>,
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

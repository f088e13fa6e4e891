//! Account actors on a shard leader (DESIGN §5), and their supervision.
//!
//! An actor is activated by the first message for its account and passivated after an idle
//! period. It lives on the engine thread, so commands for one account are handled one at a time
//! (one writer per account) without locks; its durable state is the shard's ledger, so a
//! crashed actor is "rebuilt" by creating a new cell that reads the ledger again. Handlers run
//! under `catch_unwind`: a panic drops the cell, counts `tuma_actor_restarts_total`, answers
//! the caller with a retryable error, and the node keeps serving. (actix is not used: its
//! Supervisor does not catch panics and its runtime would be a second scheduler beside the
//! Raft loop; the cells below are the thin shell DESIGN §5 asks for.)

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use tuma_actors::account::AccountRef;

/// The handler panicked; the actor was dropped and will be rebuilt on its next message.
#[derive(Debug)]
pub struct ActorCrashed;

struct Cell {
    /// Monotonic ms of its last message.
    last_active: u64,
    handled: u64,
}

/// Live actors of this node's led shards.
pub struct AccountActors {
    cells: BTreeMap<AccountRef, Cell>,
    idle_ms: u64,
    restarts: u64,
    /// Test-only fault hook: accounts whose next handler panics.
    planted_panics: BTreeSet<AccountRef>,
}

impl AccountActors {
    pub fn new(idle_ms: u64) -> AccountActors {
        AccountActors {
            cells: BTreeMap::new(),
            idle_ms,
            restarts: 0,
            planted_panics: BTreeSet::new(),
        }
    }

    /// Runs `handler` as the actor of `account`, activating it if needed.
    pub fn dispatch<R>(
        &mut self,
        account: &AccountRef,
        now: u64,
        handler: impl FnOnce() -> R,
    ) -> Result<R, ActorCrashed> {
        let cell = self.cells.entry(account.clone()).or_insert_with(|| {
            metrics::counter!("tuma_actor_activations_total").increment(1);
            Cell {
                last_active: now,
                handled: 0,
            }
        });
        cell.last_active = now;
        cell.handled += 1;
        let planted = self.planted_panics.remove(account);
        let result = catch_unwind(AssertUnwindSafe(|| {
            if planted {
                panic!("planted actor fault for {account}");
            }
            handler()
        }));
        match result {
            Ok(value) => Ok(value),
            Err(_) => {
                self.cells.remove(account);
                self.restarts += 1;
                metrics::counter!("tuma_actor_restarts_total").increment(1);
                tracing::error!(%account, "account actor panicked; it will be rebuilt from shard state");
                Err(ActorCrashed)
            }
        }
    }

    /// Makes the next handler of `account` panic (test-only fault hook).
    pub fn plant_panic(&mut self, account: AccountRef) {
        self.planted_panics.insert(account);
    }

    /// Drops actors idle longer than the passivation time; returns how many.
    pub fn passivate_idle(&mut self, now: u64) -> usize {
        let before = self.cells.len();
        let idle = self.idle_ms;
        self.cells
            .retain(|_, cell| now.saturating_sub(cell.last_active) < idle);
        before - self.cells.len()
    }

    /// Stops the actors of a shard whose leadership was lost.
    pub fn stop_shard(&mut self, on_shard: impl Fn(&AccountRef) -> bool) {
        self.cells.retain(|account, _| !on_shard(account));
    }

    pub fn live(&self) -> usize {
        self.cells.len()
    }

    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Messages handled by a live actor (for tests).
    pub fn handled(&self, account: &AccountRef) -> Option<u64> {
        self.cells.get(account).map(|c| c.handled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_is_contained_counted_and_rebuilt() {
        let mut actors = AccountActors::new(120_000);
        let account = AccountRef::parse("0712345678").unwrap();
        let now = 1_000;
        assert_eq!(actors.dispatch(&account, now, || 7).unwrap(), 7);
        actors.plant_panic(account.clone());
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let crashed = actors.dispatch(&account, now, || 8);
        std::panic::set_hook(hook);
        assert!(crashed.is_err());
        assert_eq!(actors.restarts(), 1);
        assert_eq!(actors.live(), 0);
        assert_eq!(actors.dispatch(&account, now, || 9).unwrap(), 9);
        assert_eq!(actors.handled(&account), Some(1), "a fresh actor");
        assert_eq!(actors.passivate_idle(now + 121_000), 1);
    }
}

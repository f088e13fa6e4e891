//! The four posting primitives. Each moves one amount from a debit account to a credit account
//! and updates the shard totals, so Σdebits = Σcredits holds after every one of them.

use crate::account::AccountRef;
use crate::money::Money;

use super::records::Balances;
use super::ShardLedger;

/// Which counters a primitive changes.
#[derive(Copy, Clone, Debug)]
enum Step {
    /// pending += amount
    Hold,
    /// pending -= amount; posted += amount
    PostPending,
    /// pending -= amount
    Void,
    /// posted += amount
    Post,
}

fn add(value: Money, delta: i64) -> Money {
    let cents = value
        .cents()
        .checked_add(delta)
        .expect("ledger counter overflow (amounts are bounded by limits)");
    Money::from_cents(cents)
}

fn apply_step(balances: &mut Balances, debit_side: bool, step: Step, cents: i64) {
    let (pending, posted) = if debit_side {
        (&mut balances.debits_pending, &mut balances.debits_posted)
    } else {
        (&mut balances.credits_pending, &mut balances.credits_posted)
    };
    match step {
        Step::Hold => *pending = add(*pending, cents),
        Step::PostPending => {
            *pending = add(*pending, -cents);
            *posted = add(*posted, cents);
        }
        Step::Void => *pending = add(*pending, -cents),
        Step::Post => *posted = add(*posted, cents),
    }
}

impl ShardLedger {
    /// Reserve `amount`: pending debit on `debit`, pending credit on `credit`.
    pub(super) fn hold(&mut self, debit: &AccountRef, credit: &AccountRef, amount: Money) {
        self.step(debit, credit, amount, Step::Hold);
    }

    /// Turn a hold into posted money.
    pub(super) fn post_pending(&mut self, debit: &AccountRef, credit: &AccountRef, amount: Money) {
        self.step(debit, credit, amount, Step::PostPending);
    }

    /// Release a hold.
    pub(super) fn void_pending(&mut self, debit: &AccountRef, credit: &AccountRef, amount: Money) {
        self.step(debit, credit, amount, Step::Void);
    }

    /// Move posted money directly (same-shard transfers, commissions).
    pub(super) fn post(&mut self, debit: &AccountRef, credit: &AccountRef, amount: Money) {
        self.step(debit, credit, amount, Step::Post);
    }

    fn step(&mut self, debit: &AccountRef, credit: &AccountRef, amount: Money, step: Step) {
        assert!(!amount.is_negative(), "posting a negative amount {amount}");
        if amount.is_zero() {
            return;
        }
        assert_ne!(debit, credit, "posting to the same account on both sides");
        let cents = amount.cents();
        for (account, debit_side) in [(debit, true), (credit, false)] {
            let record = self
                .state
                .accounts
                .get_mut(account)
                .unwrap_or_else(|| panic!("posting to unknown account {account}"));
            apply_step(&mut record.balances, debit_side, step, cents);
            apply_step(&mut self.state.totals, debit_side, step, cents);
            self.touched.push(account.clone());
        }
    }
}

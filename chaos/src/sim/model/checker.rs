//! The checker: what must hold after every step, and after healing and quiescence.
//!
//! Per step (every applied entry): the shard's full audit (books balance, nothing overdrawn,
//! running totals equal a recount), and the entry's effect on the accounts it names equals the
//! record transition it made — so an entry applied twice, or money moved without a transition,
//! is caught at the step that did it. At the end: Σ clearing = 0, Σ balances = 0, both sides of
//! every cross-shard transfer agree, what clients were told matches what happened, every
//! transfer resolved by deadline + skew + grace, commits were decided before their deadline, and
//! every account's balance reconciles with its transfer records.

use std::collections::BTreeMap;

use tuma_actors::account::{AccountRef, SystemAccount};
use tuma_actors::ledger::{Balances, Command, Entry, IncomingState, OutgoingState, ShardLedger};
use tuma_actors::transfer::TransferId;

/// One thing that went wrong, with the seed that replays it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub seed: u64,
    pub transfer: Option<TransferId>,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.transfer {
            Some(t) => write!(f, "seed {}: transfer {t}: {}", self.seed, self.message),
            None => write!(f, "seed {}: {}", self.seed, self.message),
        }
    }
}

/// Record states and balances captured just before an entry applies.
pub(super) struct Before {
    id: Option<TransferId>,
    outgoing: Option<OutgoingState>,
    incoming: Option<IncomingState>,
    balances: Vec<(AccountRef, Balances)>,
}

fn command_transfer(command: &Command) -> Option<TransferId> {
    match command {
        Command::Transfer(r) => Some(r.id.clone()),
        Command::ReceiveCredit(o) => Some(o.id.clone()),
        Command::Decide { id, .. }
        | Command::Settle { id, .. }
        | Command::DecisionDelivered { id } => Some(id.clone()),
        _ => None,
    }
}

/// The accounts an entry may move money on (besides fees and commissions).
fn accounts_named(ledger: &ShardLedger, command: &Command) -> Vec<AccountRef> {
    let shard = ledger.shard();
    let mut accounts = match command {
        Command::Transfer(r) => vec![
            r.from.clone(),
            r.to.clone(),
            AccountRef::System(SystemAccount::Airtime(shard)),
        ],
        Command::ReceiveCredit(o) => vec![o.to.clone()],
        Command::Decide { id, .. } => ledger
            .outgoing(id)
            .map(|r| vec![r.request.from.clone()])
            .unwrap_or_default(),
        Command::Settle { id, .. } => ledger
            .incoming(id)
            .and_then(|r| r.offer.as_ref())
            .map(|o| vec![o.to.clone()])
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    accounts.sort();
    accounts.dedup();
    accounts.retain(|a| ledger.account(a).is_some());
    accounts
}

/// Change of the four counters, in cents.
type Delta = [i64; 4];

fn delta(before: &Balances, after: &Balances) -> Delta {
    [
        after.debits_pending.cents() - before.debits_pending.cents(),
        after.debits_posted.cents() - before.debits_posted.cents(),
        after.credits_pending.cents() - before.credits_pending.cents(),
        after.credits_posted.cents() - before.credits_posted.cents(),
    ]
}

/// Collects violations for one seed.
pub(super) struct Checker {
    seed: u64,
    pub violations: Vec<Violation>,
}

impl Checker {
    pub fn new(seed: u64) -> Checker {
        Checker {
            seed,
            violations: Vec::new(),
        }
    }

    pub fn fail(&mut self, transfer: Option<&TransferId>, message: String) {
        if self.violations.len() < 20 {
            self.violations.push(Violation {
                seed: self.seed,
                transfer: transfer.cloned(),
                message,
            });
        }
    }

    pub fn before(&self, ledger: &ShardLedger, entry: &Entry) -> Before {
        let id = command_transfer(&entry.command);
        Before {
            outgoing: id
                .as_ref()
                .and_then(|id| ledger.outgoing(id))
                .map(|r| r.state.clone()),
            incoming: id
                .as_ref()
                .and_then(|id| ledger.incoming(id))
                .map(|r| r.state.clone()),
            id,
            balances: accounts_named(ledger, &entry.command)
                .into_iter()
                .map(|a| {
                    let b = ledger.account(&a).expect("retained").balances;
                    (a, b)
                })
                .collect(),
        }
    }

    /// Checks one applied entry against the transition it made, then the shard's audit.
    pub fn after(&mut self, ledger: &ShardLedger, before: Before) {
        if let Err(v) = ledger.audit() {
            self.fail(
                before.id.as_ref(),
                format!("shard {} audit: {v}", ledger.shard()),
            );
            return;
        }
        let expected = self.expected_deltas(ledger, &before);
        for (account, old) in &before.balances {
            let new = ledger
                .account(account)
                .expect("accounts are never removed")
                .balances;
            let got = delta(old, &new);
            let want = expected.get(account).copied().unwrap_or([0; 4]);
            if got != want {
                self.fail(
                    before.id.as_ref(),
                    format!(
                        "shard {}: {account} moved {got:?} but the transition {:?}/{:?} → {:?}/{:?} allows {want:?} (applied twice?)",
                        ledger.shard(),
                        before.outgoing,
                        before.incoming,
                        before.id.as_ref().and_then(|id| ledger.outgoing(id)).map(|r| &r.state),
                        before.id.as_ref().and_then(|id| ledger.incoming(id)).map(|r| &r.state),
                    ),
                );
            }
        }
    }

    /// What the record transition made by this entry may do to each account's counters.
    fn expected_deltas(
        &self,
        ledger: &ShardLedger,
        before: &Before,
    ) -> BTreeMap<AccountRef, Delta> {
        let mut expected: BTreeMap<AccountRef, Delta> = BTreeMap::new();
        let Some(id) = &before.id else {
            return expected;
        };
        let mut add = |account: &AccountRef, d: Delta| {
            let e = expected.entry(account.clone()).or_insert([0; 4]);
            for i in 0..4 {
                e[i] += d[i];
            }
        };
        if let Some(record) = ledger.outgoing(id) {
            let total = record.request.amount.cents() + record.fee.cents();
            let amount = record.request.amount.cents();
            let from = &record.request.from;
            match (&before.outgoing, &record.state) {
                (None, OutgoingState::Prepared) => add(from, [total, 0, 0, 0]),
                (None, OutgoingState::Committed) => {
                    add(from, [0, total, 0, 0]);
                    add(&record.ledger_payee, [0, 0, 0, amount]);
                }
                (Some(OutgoingState::Prepared), OutgoingState::Committed) => {
                    add(from, [-total, total, 0, 0])
                }
                (Some(OutgoingState::Prepared), OutgoingState::Aborted(_)) => {
                    add(from, [-total, 0, 0, 0])
                }
                _ => {}
            }
        }
        if let Some(record) = ledger.incoming(id) {
            if let Some(offer) = &record.offer {
                let amount = offer.amount.cents();
                match (&before.incoming, &record.state) {
                    (None, IncomingState::Accepted) => add(&offer.to, [0, 0, amount, 0]),
                    (Some(IncomingState::Accepted), IncomingState::Committed) => {
                        add(&offer.to, [0, 0, -amount, amount])
                    }
                    (Some(IncomingState::Accepted), IncomingState::Aborted) => {
                        add(&offer.to, [0, 0, -amount, 0])
                    }
                    _ => {}
                }
            }
        }
        expected
    }

    /// Σ clearing = 0, Σ balances = 0, no transfer left in flight, both sides agree, commits
    /// before deadline, every balance reconciles with its records.
    pub fn final_checks(&mut self, ledgers: &[ShardLedger]) {
        let mut clearing = 0i64;
        let mut balances = 0i64;
        for ledger in ledgers {
            match ledger.audit() {
                Ok(audit) => {
                    clearing += audit.clearing.cents();
                    balances += audit.balance_sum.cents();
                    if audit.prepared + audit.accepted + audit.outbox > 0 {
                        self.fail(
                            None,
                            format!("shard {} not quiescent: {audit:?}", ledger.shard()),
                        );
                    }
                }
                Err(v) => self.fail(None, format!("shard {} final audit: {v}", ledger.shard())),
            }
        }
        if clearing != 0 {
            self.fail(None, format!("Σ clearing = {clearing} cents, not 0"));
        }
        if balances != 0 {
            self.fail(None, format!("Σ balances = {balances} cents, not 0"));
        }
        self.check_sides_agree(ledgers);
        self.check_reconciliation(ledgers);
    }

    fn check_sides_agree(&mut self, ledgers: &[ShardLedger]) {
        for ledger in ledgers {
            for (id, record) in ledger_outgoing(ledger) {
                if record.payee_shard == ledger.shard()
                    || matches!(record.state, OutgoingState::Refused(_))
                {
                    continue;
                }
                let remote = ledgers[record.payee_shard as usize].incoming(id);
                let remote_state = remote
                    .filter(|r| r.payer_shard == ledger.shard())
                    .map(|r| &r.state);
                let agree = matches!(
                    (&record.state, remote_state),
                    (OutgoingState::Committed, Some(IncomingState::Committed))
                        | (
                            OutgoingState::Aborted(_),
                            None | Some(IncomingState::Aborted | IncomingState::Rejected(_)),
                        )
                );
                if !agree {
                    self.fail(
                        Some(id),
                        format!(
                            "payer shard says {:?}, payee shard says {remote_state:?}",
                            record.state
                        ),
                    );
                }
                if record.state == OutgoingState::Committed
                    && record
                        .decided_ms
                        .is_some_and(|d| d > record.request.deadline_ms)
                {
                    self.fail(
                        Some(id),
                        format!(
                            "committed at {} ms, after its deadline {} ms",
                            record.decided_ms.unwrap_or_default(),
                            record.request.deadline_ms
                        ),
                    );
                }
            }
        }
    }

    /// Every non-system account's balance equals what its committed records add up to.
    fn check_reconciliation(&mut self, ledgers: &[ShardLedger]) {
        for ledger in ledgers {
            let mut recount: BTreeMap<AccountRef, i64> = BTreeMap::new();
            for (_, record) in ledger_outgoing(ledger) {
                if record.state != OutgoingState::Committed {
                    continue;
                }
                *recount.entry(record.request.from.clone()).or_default() -=
                    record.request.amount.cents() + record.fee.cents();
                if record.payee_shard == ledger.shard() {
                    *recount.entry(record.ledger_payee.clone()).or_default() +=
                        record.request.amount.cents();
                }
            }
            for id in ledger_incoming_ids(ledger) {
                let record = ledger.incoming(&id).expect("listed");
                if let (IncomingState::Committed, Some(offer)) = (&record.state, &record.offer) {
                    *recount.entry(offer.to.clone()).or_default() += offer.amount.cents();
                }
            }
            for (account, data) in ledger.accounts() {
                if account.is_system() {
                    continue;
                }
                let expected = recount.get(account).copied().unwrap_or(0);
                if data.balances.balance().cents() != expected {
                    self.fail(None, format!(
                        "{account}: balance {} does not reconcile with its records ({expected} cents)",
                        data.balances.balance()
                    ));
                }
            }
        }
    }
}

fn ledger_outgoing(
    ledger: &ShardLedger,
) -> impl Iterator<Item = (&TransferId, &tuma_actors::ledger::OutgoingTransfer)> {
    ledger.outgoing_records()
}

fn ledger_incoming_ids(ledger: &ShardLedger) -> Vec<TransferId> {
    ledger
        .incoming_records()
        .map(|(id, _)| id.clone())
        .collect()
}

//! A batch entry (the leader's many commands in one log entry) is exactly its commands applied
//! in order: the same state and the same outcomes, whatever they are — successes, refusals,
//! retries under a used id, overdrafts — and a batch is not nested.

use proptest::prelude::*;

use crate::account::AccountRef;
use crate::ledger::{Applied, Command, Entry, ShardLedger};
use crate::outcome::ResultCode;
use crate::roles::AccountKind;
use crate::testkit::{ksh, Cluster};
use crate::transfer::{TransferId, TransferKind};

/// Four funded customers on the one shard of a one-shard cluster.
fn funded() -> (Cluster, Vec<AccountRef>) {
    let mut c = Cluster::new(1);
    let customers: Vec<AccountRef> = (0..4)
        .map(|i| {
            let customer = c.customer_on(0, i);
            c.open(&customer, AccountKind::Customer)
        })
        .collect();
    for customer in &customers {
        c.fund(customer, ksh(1_000));
    }
    (c, customers)
}

proptest! {
    #[test]
    fn a_batch_applies_exactly_as_its_commands_one_by_one(
        sends in prop::collection::vec((0usize..4, 0usize..4, 1i64..700, 0u8..4), 1..40)
    ) {
        let (mut c, customers) = funded();
        let commands: Vec<Command> = sends
            .iter()
            .enumerate()
            .map(|(n, (from, to, shillings, id_reuse))| {
                let mut request = c.request(
                    TransferKind::SendMoney,
                    &customers[*from],
                    &customers[*to],
                    ksh(*shillings),
                );
                // Now and then an id used earlier in the batch: a retry or a conflict.
                if *id_reuse == 0 && n > 0 {
                    request.id = TransferId::parse(&format!("req-{}", n)).unwrap();
                }
                Command::Transfer(request)
            })
            .collect();
        let now = c.now;
        let mut one_by_one: ShardLedger = c.ledgers[0].clone();
        let mut batched = one_by_one.clone();
        let singles: Vec<Applied> = commands
            .iter()
            .map(|command| one_by_one.apply(&Entry { timestamp_ms: now, command: command.clone() }))
            .collect();
        let batch = batched.apply(&Entry { timestamp_ms: now, command: Command::Batch(commands) });
        prop_assert_eq!(batch, Applied::Batch(singles));
        prop_assert_eq!(one_by_one.take_history(), batched.take_history());
        // The only difference: one entry applied instead of many.
        let mut state = batched.state().clone();
        state.entries_applied = one_by_one.state().entries_applied;
        prop_assert_eq!(&state, one_by_one.state());
        prop_assert!(batched.audit().is_ok());
    }
}

#[test]
fn batches_are_not_nested() {
    let (mut c, customers) = funded();
    let inner = Command::Transfer(c.request(
        TransferKind::SendMoney,
        &customers[0],
        &customers[1],
        ksh(10),
    ));
    let nested = Command::Batch(vec![Command::Batch(vec![inner])]);
    assert_eq!(
        c.apply(0, nested),
        Applied::Batch(vec![Applied::Admin(ResultCode::NotPermitted)])
    );
    assert_eq!(c.balance(&customers[1]), ksh(1_000), "nothing moved");
}

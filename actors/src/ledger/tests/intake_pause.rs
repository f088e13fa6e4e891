//! A backup's pause: new transfers refused, unrecorded, until the pause's time or its lifting.

use crate::ledger::{Applied, Command};
use crate::outcome::ResultCode;
use crate::roles::AccountKind;
use crate::testkit::{ksh, Cluster};
use crate::transfer::TransferKind;

#[test]
fn a_paused_shard_refuses_new_transfers_unrecorded_until_its_time() {
    let mut c = Cluster::new(2);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(1, 2), AccountKind::Customer);
    c.fund(&alice, ksh(5_000));
    let until_ms = c.now + 1_000;
    c.apply(0, Command::PauseIntake { until_ms });
    let refused = c.request(TransferKind::SendMoney, &alice, &bob, ksh(100));
    let id = refused.id.clone();
    match c.apply(0, Command::Transfer(refused.clone())) {
        Applied::TransferRefused { result, .. } => assert_eq!(result, ResultCode::Overloaded),
        other => panic!("a paused shard took a transfer: {other:?}"),
    }
    assert!(c.ledgers[0].outgoing(&id).is_none(), "nothing recorded");
    // The pause lifts at its time.
    c.now = until_ms;
    let receipt = c.finish(refused);
    assert!(receipt.result.is_success(), "{receipt:?}");
    c.apply(
        0,
        Command::PauseIntake {
            until_ms: c.now + 60_000,
        },
    );
    c.apply(0, Command::PauseIntake { until_ms: 0 });
    let again = c.request(TransferKind::SendMoney, &alice, &bob, ksh(100));
    assert!(
        c.finish(again).result.is_success(),
        "resumed at once with 0"
    );
}

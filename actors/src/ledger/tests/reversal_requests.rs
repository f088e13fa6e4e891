//! Payers' reversal requests: filed once by the payer of a committed transfer, refused for
//! anyone else or anything not reversible, closed by care.

use crate::ledger::{Applied, Command};
use crate::outcome::ResultCode;
use crate::roles::AccountKind;
use crate::testkit::{ksh, Cluster};
use crate::transfer::TransferKind;

#[test]
fn the_payer_files_once_others_cannot_and_care_closes_it() {
    let mut c = Cluster::new(1);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(0, 2), AccountKind::Customer);
    c.fund(&alice, ksh(1_000));
    let sent = c.request(TransferKind::SendMoney, &alice, &bob, ksh(100));
    let receipt = c.finish(sent);
    let txn_id = receipt.txn_id.unwrap();
    let file = |by: &crate::account::AccountRef| Command::RequestReversal {
        txn_id,
        by: *by.msisdn().unwrap(),
    };
    // Bob received the money: he may not ask for it back.
    assert_eq!(
        c.apply(0, file(&bob)),
        Applied::Admin(ResultCode::NotPermitted)
    );
    assert_eq!(c.ledgers[0].reversal_requests().count(), 0);
    assert_eq!(
        c.apply(0, file(&alice)),
        Applied::Admin(ResultCode::Success)
    );
    assert_eq!(
        c.apply(0, file(&alice)),
        Applied::Admin(ResultCode::Success)
    );
    let open: Vec<_> = c.ledgers[0].reversal_requests().collect();
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].1.amount, &open[0].1.payee), (ksh(100), &bob));
    assert_eq!(
        c.apply(0, Command::CloseReversalRequest { txn_id }),
        Applied::Admin(ResultCode::Success)
    );
    assert_eq!(c.ledgers[0].reversal_requests().count(), 0);

    // A failed transfer's receipt cannot be asked back.
    let too_much = c.request(TransferKind::SendMoney, &alice, &bob, ksh(100_000));
    let failed = c.finish(too_much);
    if let Some(failed_txn) = failed.txn_id {
        let request = Command::RequestReversal {
            txn_id: failed_txn,
            by: *alice.msisdn().unwrap(),
        };
        assert_eq!(
            c.apply(0, request),
            Applied::Admin(ResultCode::NotReversible)
        );
    }
}

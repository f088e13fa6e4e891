//! C2B: a business's URLs registered once; one confirmation per bill payment or purchase
//! credited to it afterwards, on its own shard, same-shard and cross-shard alike.

use crate::account::AccountRef;
use crate::ledger::{C2bUrls, CallbackEvent, Command};
use crate::outcome::ResultCode;
use crate::roles::AccountKind;
use crate::testkit::{ksh, Cluster};
use crate::transfer::TransferKind;

fn urls() -> C2bUrls {
    C2bUrls {
        confirmation_url: "http://127.0.0.1:9/confirm".into(),
        validation_url: None,
        completes_by_default: true,
        masked_msisdn: false,
    }
}

fn register(c: &mut Cluster, business: &AccountRef, urls: C2bUrls) -> ResultCode {
    let AccountRef::Business(shortcode) = business else {
        unreachable!()
    };
    let shard = c.shard_of(business);
    match c.apply(
        shard,
        Command::RegisterC2bUrls {
            business: shortcode.clone(),
            urls,
        },
    ) {
        crate::ledger::Applied::Admin(code) => code,
        other => panic!("{other:?}"),
    }
}

/// The confirmations queued on `shard`: (receipt, amount, bill reference, business balance).
fn confirmations(c: &Cluster, shard: usize) -> Vec<(String, i64, String, i64)> {
    c.ledgers[shard]
        .callbacks(0, 100)
        .filter_map(|cb| match &cb.event {
            CallbackEvent::C2bConfirmation {
                receipt,
                amount,
                bill_ref,
                org_balance,
                ..
            } => Some((
                receipt.to_string(),
                amount.cents(),
                bill_ref.clone(),
                org_balance.cents(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn every_payment_after_registration_is_confirmed_once_on_the_business_shard() {
    let mut c = Cluster::new(2);
    let near = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let far = c.open(&c.customer_on(1, 2), AccountKind::Customer);
    let business = c.open(&c.business_on(0, 600_100), AccountKind::Paybill);
    c.fund(&near, ksh(5_000));
    c.fund(&far, ksh(5_000));
    let before = c.request(TransferKind::PayBill, &near, &business, ksh(10));
    assert!(c.finish(before).result.is_success());
    assert!(
        confirmations(&c, 0).is_empty(),
        "nothing before registering"
    );

    assert_eq!(register(&mut c, &business, urls()), ResultCode::Success);
    assert_eq!(
        register(&mut c, &business, urls()),
        ResultCode::Success,
        "the same registration again changes nothing"
    );
    let mut other = urls();
    other.confirmation_url = "http://127.0.0.1:9/elsewhere".into();
    assert_eq!(
        register(&mut c, &business, other),
        ResultCode::AccountExists,
        "a second registration is refused"
    );
    let stranger = AccountRef::Business(crate::account::Shortcode::parse("999999").unwrap());
    assert_eq!(
        register(&mut c, &stranger, urls()),
        ResultCode::UnknownAccount
    );

    let same_shard = c.request(TransferKind::PayBill, &near, &business, ksh(25));
    let same_receipt = c.finish(same_shard).txn_id.unwrap().to_string();
    let cross_shard = c.request(TransferKind::PayBill, &far, &business, ksh(40));
    let cross_receipt = c.finish(cross_shard).txn_id.unwrap().to_string();
    // A transfer of another kind to the business is not a C2B payment; a refused one is none.
    let refused = c.request(TransferKind::PayBill, &near, &business, ksh(1_000_000));
    assert!(!c.finish(refused).result.is_success());
    assert_eq!(
        confirmations(&c, 0),
        vec![
            (same_receipt, 2_500, "INV-1".to_string(), 3_500),
            (cross_receipt, 4_000, "INV-1".to_string(), 7_500),
        ]
    );
    assert!(
        confirmations(&c, 1).is_empty(),
        "only the business's shard tells"
    );
}

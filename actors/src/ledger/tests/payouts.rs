//! Business payouts (B2C, B2B): an order recorded under the business's key, paid once, closed
//! once with one result callback; duplicates refused; an order never started times out to its
//! `QueueTimeOutURL` with nothing paid.

use crate::account::AccountRef;
use crate::ledger::{
    payout_payment_id, Applied, CallbackEvent, Command, PayoutRequest, PayoutState, ShardLedger,
};
use crate::money::Money;
use crate::outcome::ResultCode;
use crate::roles::{AccountKind, Role};
use crate::testkit::{ksh, Cluster};
use crate::transfer::{PinVerdict, TransferKind, TransferRequest};

struct Payroll {
    c: Cluster,
    business: AccountRef,
    customer: AccountRef,
}

/// A funded paybill on shard 1 of two and a customer on shard 0.
fn payroll() -> Payroll {
    let mut c = Cluster::new(2);
    let business = c.open(&c.business_on(1, 600_200), AccountKind::Paybill);
    let customer = c.open(&c.customer_on(0, 7), AccountKind::Customer);
    c.fund(&business, ksh(10_000));
    Payroll {
        c,
        business,
        customer,
    }
}

fn order(p: &Payroll, conversation_id: &str, originator_id: &str, amount: Money) -> PayoutRequest {
    let AccountRef::Business(business) = &p.business else {
        unreachable!()
    };
    PayoutRequest {
        conversation_id: conversation_id.into(),
        originator_id: originator_id.into(),
        business: business.clone(),
        kind: TransferKind::BusinessToCustomer,
        to: p.customer.clone(),
        amount,
        account_reference: None,
        reverses: None,
        command: "BusinessPayment".into(),
        remarks: "salary".into(),
        occasion: String::new(),
        result_url: "http://127.0.0.1:9/result".into(),
        queue_timeout_url: "http://127.0.0.1:9/timeout".into(),
        expires_ms: p.c.now + 30_000,
    }
}

/// The transfer that pays an order, as the edge submits it.
fn payment(p: &Payroll, order: &PayoutRequest) -> TransferRequest {
    TransferRequest {
        id: payout_payment_id(&order.conversation_id),
        kind: order.kind,
        from: p.business.clone(),
        to: order.to.clone(),
        amount: order.amount,
        account_reference: order.account_reference.clone(),
        pin: PinVerdict::NotRequired,
        deadline_ms: p.c.now + 10_000,
        initiator: Role::Business,
        reverses: order.reverses,
    }
}

fn open(p: &mut Payroll, order: &PayoutRequest) -> Applied {
    p.c.apply(1, Command::OpenPayout(order.clone()))
}

fn business_shard(p: &Payroll) -> &ShardLedger {
    &p.c.ledgers[1]
}

/// The callbacks queued on the business's shard, as (url, result, receipt present, timed out).
fn results(p: &Payroll) -> Vec<(String, ResultCode, bool, bool)> {
    business_shard(p)
        .callbacks(0, 10)
        .map(|c| match &c.event {
            CallbackEvent::PayoutClosed {
                result,
                txn_id,
                timed_out,
                ..
            } => (c.url.clone(), *result, txn_id.is_some(), *timed_out),
            other => panic!("not a payout's callback: {other:?}"),
        })
        .collect()
}

#[test]
fn an_order_is_paid_once_across_shards_and_announced_once_with_its_wallets() {
    let mut p = payroll();
    let first = order(&p, "AG_1", "emp-1", ksh(1_000));
    assert_eq!(open(&mut p, &first), Applied::Admin(ResultCode::Success));
    assert_eq!(
        open(&mut p, &first),
        Applied::Admin(ResultCode::Success),
        "the edge retrying the same order changes nothing"
    );
    let duplicate = order(&p, "AG_2", "emp-1", ksh(1_000));
    assert_eq!(
        open(&mut p, &duplicate),
        Applied::Admin(ResultCode::IdempotencyConflict),
        "the business's key, used again, is a duplicate"
    );
    assert!(matches!(
        p.c.submit(payment(&p, &first)),
        Applied::TransferPrepared(_)
    ));
    assert_eq!(
        business_shard(&p).payout("AG_1").unwrap().state,
        PayoutState::Paying
    );
    // Being paid, it no longer times out in the queue.
    p.c.apply(
        1,
        Command::ExpireRequests {
            up_to_ms: first.expires_ms + 1,
        },
    );
    p.c.deliver_all();
    let receipt = p.c.finish(payment(&p, &first));
    assert!(receipt.result.is_success(), "{receipt:?}");
    assert_eq!(
        results(&p),
        vec![(
            "http://127.0.0.1:9/result".into(),
            ResultCode::Success,
            true,
            false
        )]
    );
    assert_eq!(p.c.balance(&p.customer), ksh(1_000));
    let paid = ksh(1_000).cents() + receipt.fee.cents();
    assert_eq!(p.c.balance(&p.business).cents(), ksh(10_000).cents() - paid);
    let wallets = business_shard(&p).wallets(&p.business);
    assert_eq!(wallets.utility, p.c.balance(&p.business));
    assert_eq!(wallets.charges_paid.cents(), -receipt.fee.cents());
    let CallbackEvent::PayoutClosed {
        receiver_name,
        wallets: announced,
        ..
    } = &business_shard(&p).callbacks(0, 1).next().unwrap().event
    else {
        unreachable!()
    };
    assert!(
        receiver_name.is_some(),
        "the payee's name goes into the result"
    );
    assert_eq!(*announced, wallets);
    // A second payment of the same order is refused: paid once.
    let mut again = payment(&p, &first);
    again.id = payout_payment_id("AG_1x");
    assert!(matches!(
        p.c.submit(again),
        Applied::TransferRefused {
            result: ResultCode::NotPermitted,
            ..
        }
    ));
    assert_eq!(p.c.balance(&p.customer), ksh(1_000));
}

#[test]
fn a_refused_payment_closes_the_order_with_its_code_and_moves_nothing() {
    let mut p = payroll();
    let too_much = order(&p, "AG_3", "emp-3", ksh(50_000));
    open(&mut p, &too_much);
    let receipt = p.c.finish(payment(&p, &too_much));
    assert_eq!(receipt.result, ResultCode::InsufficientFunds);
    assert_eq!(
        results(&p),
        vec![(
            "http://127.0.0.1:9/result".into(),
            ResultCode::InsufficientFunds,
            false,
            false
        )]
    );
    assert_eq!(p.c.balance(&p.business), ksh(10_000));
    assert_eq!(
        business_shard(&p).wallets(&p.business).charges_paid,
        Money::ZERO
    );
}

#[test]
fn a_payment_must_be_what_was_ordered() {
    let mut p = payroll();
    let ordered = order(&p, "AG_4", "emp-4", ksh(100));
    open(&mut p, &ordered);
    let mut more = payment(&p, &ordered);
    more.amount = ksh(5_000);
    assert!(matches!(
        p.c.submit(more),
        Applied::TransferRefused {
            result: ResultCode::NotPermitted,
            ..
        }
    ));
    assert_eq!(
        business_shard(&p).payout("AG_4").unwrap().state,
        PayoutState::Queued
    );
    assert!(results(&p).is_empty());
}

#[test]
fn an_order_never_started_times_out_to_its_queue_timeout_url_and_pays_nothing() {
    let mut p = payroll();
    let stuck = order(&p, "AG_5", "emp-5", ksh(100));
    open(&mut p, &stuck);
    p.c.apply(
        1,
        Command::ExpireRequests {
            up_to_ms: stuck.expires_ms - 1,
        },
    );
    assert_eq!(
        business_shard(&p).payout("AG_5").unwrap().state,
        PayoutState::Queued,
        "not yet due"
    );
    p.c.apply(
        1,
        Command::ExpireRequests {
            up_to_ms: stuck.expires_ms,
        },
    );
    assert_eq!(
        results(&p),
        vec![(
            "http://127.0.0.1:9/timeout".into(),
            ResultCode::DeadlinePassed,
            false,
            true
        )]
    );
    // A payment arriving late is refused.
    assert!(matches!(
        p.c.submit(payment(&p, &stuck)),
        Applied::TransferRefused {
            result: ResultCode::NotPermitted,
            ..
        }
    ));
    assert_eq!(p.c.balance(&p.business), ksh(10_000));
    assert_eq!(
        business_shard(&p)
            .payout_by_origin(&stuck.business, "emp-5")
            .map(|o| o.request.conversation_id.as_str()),
        Some("AG_5"),
        "the key stays taken until the order retires"
    );
}

#[test]
fn a_payment_that_started_and_missed_its_deadline_goes_to_the_result_url() {
    let mut p = payroll();
    let ordered = order(&p, "AG_6", "emp-6", ksh(100));
    open(&mut p, &ordered);
    let pay = payment(&p, &ordered);
    assert!(matches!(
        p.c.submit(pay.clone()),
        Applied::TransferPrepared(_)
    ));
    // The offer is lost; the payer aborts at the payment's deadline.
    p.c.in_flight.clear();
    p.c.now = pay.deadline_ms + 1;
    p.c.tick();
    p.c.deliver_all();
    assert_eq!(
        results(&p),
        vec![(
            "http://127.0.0.1:9/result".into(),
            ResultCode::DeadlinePassed,
            false,
            false
        )],
        "its payment started, so the order did not time out in the queue"
    );
    assert_eq!(p.c.balance(&p.business), ksh(10_000));
}

#[test]
fn initiators_are_set_by_name_and_bounded() {
    let mut p = payroll();
    let AccountRef::Business(business) = p.business.clone() else {
        unreachable!()
    };
    let set = |name: &str, digest: &str| Command::SetInitiator {
        business: business.clone(),
        initiator: crate::ledger::Initiator {
            name: name.into(),
            password_digest: digest.into(),
        },
    };
    assert_eq!(
        p.c.apply(1, set("api_op", "d1")),
        Applied::Admin(ResultCode::Success)
    );
    assert_eq!(
        p.c.apply(1, set("api_op", "d2")),
        Applied::Admin(ResultCode::Success)
    );
    assert_eq!(
        p.c.apply(1, set("bad name", "d")),
        Applied::Admin(ResultCode::NotPermitted)
    );
    for i in 1..crate::ledger::INITIATORS_MAX {
        assert_eq!(
            p.c.apply(1, set(&format!("op{i}"), "d")),
            Applied::Admin(ResultCode::Success)
        );
    }
    assert_eq!(
        p.c.apply(1, set("one_more", "d")),
        Applied::Admin(ResultCode::Overloaded)
    );
    let account = business_shard(&p).account(&p.business).unwrap();
    let initiators = &account.extras.as_ref().unwrap().initiators;
    assert_eq!(initiators.len(), crate::ledger::INITIATORS_MAX);
    assert_eq!(initiators[0].password_digest, "d2", "replaced by name");
}

#[test]
fn a_business_reverses_a_payment_it_received_once_and_only_its_own() {
    let mut p = payroll();
    p.c.fund(&p.customer, ksh(1_000));
    let paid = p.c.finish(TransferRequest {
        id: crate::transfer::TransferId::parse("bill-1").unwrap(),
        kind: TransferKind::PayBill,
        from: p.customer.clone(),
        to: p.business.clone(),
        amount: ksh(300),
        account_reference: Some("ACC".into()),
        pin: PinVerdict::Verified,
        deadline_ms: p.c.now + 10_000,
        initiator: Role::Customer,
        reverses: None,
    });
    let receipt = paid.txn_id.expect("committed");
    let mut back = order(&p, "AG_R1", "rev-1", ksh(300));
    back.kind = TransferKind::Reversal;
    back.reverses = Some(receipt);
    assert_eq!(open(&mut p, &back), Applied::Admin(ResultCode::Success));
    let reversed = p.c.finish(payment(&p, &back));
    assert!(reversed.result.is_success(), "{reversed:?}");
    assert_eq!(p.c.balance(&p.customer), ksh(1_000));
    let mut again = order(&p, "AG_R2", "rev-2", ksh(300));
    again.kind = TransferKind::Reversal;
    again.reverses = Some(receipt);
    open(&mut p, &again);
    let refused = p.c.finish(payment(&p, &again));
    assert_eq!(refused.result, ResultCode::NotReversible, "reversed once");
    assert_eq!(p.c.balance(&p.customer), ksh(1_000));
    // A reversal order without its receipt, or a receipt on a B2C order, is malformed.
    let mut bare = order(&p, "AG_R3", "rev-3", ksh(300));
    bare.kind = TransferKind::Reversal;
    assert_eq!(
        open(&mut p, &bare),
        Applied::Admin(ResultCode::NotPermitted)
    );
    // A business cannot order a reversal debiting someone else.
    let mut theirs = payment(&p, &back);
    theirs.id = crate::transfer::TransferId::parse("rev-theirs").unwrap();
    theirs.from = p.customer.clone();
    theirs.to = p.business.clone();
    let receipt = p.c.finish(theirs);
    assert_eq!(receipt.result, ResultCode::NotPermitted);
}

#[test]
fn money_set_aside_in_working_or_settlement_is_not_paid_out_and_moves_back() {
    use crate::ledger::Wallet;
    let mut p = payroll();
    let AccountRef::Business(business) = p.business.clone() else {
        unreachable!()
    };
    let set_aside = |p: &mut Payroll, from, to, amount| {
        p.c.apply(
            1,
            Command::MoveBetweenWallets {
                business: business.clone(),
                from,
                to,
                amount,
            },
        )
    };
    assert_eq!(
        set_aside(&mut p, Wallet::Utility, Wallet::Working, ksh(8_000)),
        Applied::Admin(ResultCode::Success)
    );
    assert_eq!(
        set_aside(&mut p, Wallet::Utility, Wallet::Settlement, ksh(3_000)),
        Applied::Admin(ResultCode::InsufficientFunds),
        "only 2,000 is left in Utility"
    );
    assert_eq!(
        set_aside(&mut p, Wallet::Working, Wallet::Working, ksh(1)),
        Applied::Admin(ResultCode::SameAccount)
    );
    let wallets = business_shard(&p).wallets(&p.business);
    assert_eq!((wallets.utility, wallets.working), (ksh(2_000), ksh(8_000)));
    assert_eq!(
        p.c.balance(&p.business),
        ksh(10_000),
        "the balance is unchanged"
    );
    // A payout may spend only Utility.
    let big = order(&p, "AG_W1", "w-1", ksh(5_000));
    open(&mut p, &big);
    assert_eq!(
        p.c.finish(payment(&p, &big)).result,
        ResultCode::InsufficientFunds
    );
    assert_eq!(
        set_aside(&mut p, Wallet::Working, Wallet::Utility, ksh(8_000)),
        Applied::Admin(ResultCode::Success)
    );
    let again = order(&p, "AG_W2", "w-2", ksh(5_000));
    open(&mut p, &again);
    assert!(p.c.finish(payment(&p, &again)).result.is_success());
    assert_eq!(business_shard(&p).wallets(&p.business).utility, ksh(5_000));
}

//! One scenario per result code: each refusal names the rule and moves no money.

use crate::account::AccountRef;
use crate::ledger::{AccountStatus, Applied, Command, OpenAccount};
use crate::money::Money;
use crate::msisdn::Msisdn;
use crate::outcome::ResultCode;
use crate::roles::{AccountKind, Role};
use crate::tariff::Tariffs;
use crate::testkit::{ksh, Cluster, T0};
use crate::transfer::{PinVerdict, TransferKind};

fn stranger() -> AccountRef {
    AccountRef::Customer(Msisdn::parse("0799999999").unwrap())
}

/// A one-shard cluster with two funded customers.
fn bank() -> (Cluster, AccountRef, AccountRef) {
    let mut c = Cluster::new(1);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(0, 2), AccountKind::Customer);
    c.fund(&alice, ksh(10_000));
    (c, alice, bob)
}

/// Submits and expects a refusal that moved nothing.
fn refused(c: &mut Cluster, request: crate::transfer::TransferRequest, code: ResultCode) {
    let before: Vec<Money> = [&request.from, &request.to]
        .iter()
        .filter_map(|a| c.ledgers[0].account(a).map(|x| x.balances.balance()))
        .collect();
    let receipt = c.finish(request.clone());
    assert_eq!(receipt.result, code, "{request:?}");
    assert_eq!(receipt.txn_id, None);
    assert_eq!(receipt.fee, Money::ZERO);
    let after: Vec<Money> = [&request.from, &request.to]
        .iter()
        .filter_map(|a| c.ledgers[0].account(a).map(|x| x.balances.balance()))
        .collect();
    assert_eq!(before, after, "a refusal moved money");
    c.ledgers[0].audit().unwrap();
}

#[test]
fn success_moves_amount_and_fee() {
    let (mut c, alice, bob) = bank();
    let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(1_000));
    let receipt = c.finish(request);
    assert_eq!(receipt.result, ResultCode::Success);
    assert_eq!(receipt.fee, ksh(13));
    assert_eq!(c.balance(&alice), ksh(10_000 - 1_013));
    assert_eq!(c.balance(&bob), ksh(1_000));
    assert_eq!(receipt.balance, ksh(8_987));
    assert!(receipt.txn_id.is_some());
}

#[test]
fn refusals_for_amount_parties_and_roles() {
    let (mut c, alice, bob) = bank();
    let agent = c.open(&c.agent_on(0), AccountKind::Agent);
    let r = c.request(TransferKind::SendMoney, &alice, &bob, ksh(20_000));
    refused(&mut c, r, ResultCode::InsufficientFunds);
    let r = c.request(
        TransferKind::SendMoney,
        &alice,
        &bob,
        Money::from_cents(25_000_001),
    );
    refused(&mut c, r, ResultCode::LimitExceeded);
    let r = c.request(TransferKind::SendMoney, &alice, &bob, Money::ZERO);
    refused(&mut c, r, ResultCode::InvalidAmount);
    let r = c.request(TransferKind::SendMoney, &alice, &alice, ksh(10));
    refused(&mut c, r, ResultCode::SameAccount);
    let r = c.request(TransferKind::SendMoney, &stranger(), &bob, ksh(10));
    refused(&mut c, r, ResultCode::UnknownAccount);
    let r = c.request(TransferKind::SendMoney, &alice, &stranger(), ksh(10));
    refused(&mut c, r, ResultCode::UnknownPayee);
    let r = c.request(TransferKind::CashOut, &alice, &agent, ksh(49));
    refused(&mut c, r, ResultCode::AmountBelowMinimum);
    // An agent may not use send-money, and a customer may not start a deposit.
    let r = c.request(TransferKind::SendMoney, &agent, &bob, ksh(10));
    refused(&mut c, r, ResultCode::NotPermitted);
    let mut r = c.request(TransferKind::CashIn, &agent, &bob, ksh(100));
    r.initiator = Role::Customer;
    refused(&mut c, r, ResultCode::NotPermitted);
    let mut r = c.request(TransferKind::PayBill, &alice, &bob, ksh(10));
    r.account_reference = None;
    refused(&mut c, r, ResultCode::InvalidAccountReference);
    let mut r = c.request(TransferKind::SendMoney, &alice, &bob, ksh(10));
    r.account_reference = Some("x".repeat(21));
    refused(&mut c, r, ResultCode::InvalidAccountReference);
}

#[test]
fn refusals_for_state_time_and_load() {
    let (mut c, alice, bob) = bank();
    let mut r = c.request(TransferKind::SendMoney, &alice, &bob, ksh(10));
    r.deadline_ms = T0 - 1;
    refused(&mut c, r, ResultCode::DeadlinePassed);
    c.apply(
        0,
        Command::SetStatus {
            account: alice.clone(),
            status: AccountStatus::Frozen,
        },
    );
    let r = c.request(TransferKind::SendMoney, &alice, &bob, ksh(10));
    refused(&mut c, r, ResultCode::AccountInactive);
    c.apply(
        0,
        Command::SetStatus {
            account: alice.clone(),
            status: AccountStatus::Active,
        },
    );
    let r = c.request(TransferKind::SendMoney, &bob, &alice, ksh(10));
    refused(&mut c, r, ResultCode::InsufficientFunds);
    // A customer registered without a PIN cannot transact.
    let nopin = c.customer_on(0, 3);
    let open = OpenAccount {
        account: nopin.clone(),
        kind: AccountKind::Customer,
        name: "No Pin".into(),
        id_number: None,
        phone: None,
        store_number: None,
        pin_hash: None,
        api_credentials: None,
    };
    c.apply(0, Command::OpenAccount(open.clone()));
    c.fund(&nopin, ksh(100));
    let r = c.request(TransferKind::SendMoney, &nopin, &bob, ksh(10));
    refused(&mut c, r, ResultCode::NoPin);
    assert_eq!(
        c.apply(0, Command::OpenAccount(open.clone())),
        Applied::Admin(ResultCode::Success),
        "a retry of the same registration gets the same answer"
    );
    let other = OpenAccount {
        name: "Someone Else".into(),
        ..open
    };
    assert_eq!(
        c.apply(0, Command::OpenAccount(other)),
        Applied::Admin(ResultCode::AccountExists)
    );
}

#[test]
fn overload_and_conflicting_reuse_are_refused_without_a_record() {
    let mut c = Cluster::with_tariffs(1, Tariffs::kenya_default(), |cfg| cfg.sms_outbox_max = 2);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(0, 2), AccountKind::Customer);
    c.fund(&alice, ksh(1_000));
    let first = c.request(TransferKind::SendMoney, &alice, &bob, ksh(10));
    assert!(c.finish(first.clone()).result.is_success());
    // The outbox now holds two texts: the next transfer waits for delivery.
    let second = c.request(TransferKind::SendMoney, &alice, &bob, ksh(10));
    let applied = c.submit(second.clone());
    assert_eq!(
        applied,
        Applied::TransferRefused {
            id: second.id.clone(),
            result: ResultCode::Overloaded
        }
    );
    assert!(
        c.ledgers[0].outgoing(&second.id).is_none(),
        "overload must not burn the id"
    );
    c.apply(
        0,
        Command::SmsDelivered {
            up_to_seq: u64::MAX,
        },
    );
    assert!(c.finish(second).result.is_success());
    // Same id, different amount: refused, the original untouched.
    let mut conflicting = first.clone();
    conflicting.amount = ksh(11);
    let applied = c.submit(conflicting);
    assert_eq!(
        applied,
        Applied::TransferRefused {
            id: first.id.clone(),
            result: ResultCode::IdempotencyConflict
        }
    );
    assert_eq!(
        c.ledgers[0].receipt(&first.id).unwrap().result,
        ResultCode::Success
    );
}

#[test]
fn a_band_gap_is_outside_the_tariff() {
    let text = Tariffs::kenya_default_text()
        .replace("band send_money      50001   250000        108\n", "");
    let tariffs = Tariffs::parse(&text).unwrap();
    let mut c = Cluster::with_tariffs(1, tariffs, |_| {});
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(0, 2), AccountKind::Customer);
    c.fund(&alice, ksh(100_000));
    let r = c.request(TransferKind::SendMoney, &alice, &bob, ksh(60_000));
    refused(&mut c, r, ResultCode::AmountOutsideTariff);
}

#[test]
fn duplicates_get_the_same_answer_and_move_money_once() {
    let (mut c, alice, bob) = bank();
    let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(500));
    let first = c.finish(request.clone());
    let mut retry = request.clone();
    retry.pin = PinVerdict::Wrong; // a retry's PIN verdict and deadline do not matter
    retry.deadline_ms = T0 - 5;
    let again = c.finish(retry);
    assert_eq!(first, again);
    assert_eq!(c.balance(&bob), ksh(500));
    let failed = c.request(TransferKind::SendMoney, &bob, &alice, ksh(5_000));
    let a = c.finish(failed.clone());
    c.fund(&bob, ksh(10_000));
    let b = c.finish(failed);
    assert_eq!(a, b, "a recorded refusal stays the answer for its id");
    assert_eq!(b.result, ResultCode::InsufficientFunds);
}

#[test]
fn bulk_registration_answers_per_account() {
    let mut c = Cluster::new(2);
    let here = c.customer_on(0, 1);
    let there = c.customer_on(1, 2);
    c.open(&here, AccountKind::Customer);
    let open = |account: &AccountRef| OpenAccount {
        account: account.clone(),
        kind: AccountKind::Customer,
        name: "Bulk".into(),
        id_number: None,
        phone: None,
        store_number: None,
        pin_hash: None,
        api_credentials: None,
    };
    let fresh = c.customer_on(0, 3);
    let applied = c.apply(
        0,
        Command::OpenAccounts(vec![open(&fresh), open(&here), open(&there)]),
    );
    assert_eq!(
        applied,
        Applied::AdminMany(vec![
            ResultCode::Success,
            ResultCode::AccountExists,
            ResultCode::NotPermitted
        ])
    );
    assert!(c.ledgers[0].account(&fresh).is_some());
    assert!(
        c.ledgers[0].account(&there).is_none(),
        "an account of another shard is never opened here"
    );
}

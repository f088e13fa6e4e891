//! Cross-shard transfers through the protocol: commit, refusal, deadline abort, lost messages,
//! inquiry, late offers, reversals, colliding ids, receipt uniqueness.

use std::collections::BTreeSet;

use crate::account::AccountRef;
use crate::ledger::{Command, CreditAnswer, IncomingState, OutgoingState};
use crate::money::Money;
use crate::outcome::ResultCode;
use crate::protocol::{Envelope, PeerMessage};
use crate::roles::{AccountKind, Role};
use crate::testkit::{ksh, Cluster};
use crate::transfer::{PinVerdict, TransferKind, TransferRequest};

fn two_shards() -> (Cluster, AccountRef, AccountRef) {
    let mut c = Cluster::new(2);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(1, 2), AccountKind::Customer);
    c.fund(&alice, ksh(10_000));
    (c, alice, bob)
}

fn assert_quiet(c: &Cluster) {
    assert_eq!(c.totals(), (0, 0), "Σ clearing and Σ balances");
    for ledger in &c.ledgers {
        let audit = ledger.audit().unwrap();
        assert_eq!(
            (audit.prepared, audit.accepted, audit.outbox),
            (0, 0, 0),
            "shard {}",
            audit.shard
        );
    }
}

#[test]
fn finished_transfers_leave_nothing_paced_in_either_leader() {
    let (mut c, alice, bob) = two_shards();
    for n in 0..20 {
        let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(10 + n));
        assert_eq!(c.finish(request).result, ResultCode::Success);
    }
    let stranger = c.customer_on(1, 7);
    let refused = c.request(TransferKind::SendMoney, &alice, &stranger, ksh(10));
    assert_eq!(c.finish(refused).result, ResultCode::UnknownPayee);
    c.deliver_all();
    assert_quiet(&c);
    // Every duty of a finished transfer is forgotten once its decision is delivered: a leader
    // that stays leader does not accumulate per-transfer state.
    assert_eq!(
        (c.drivers[0].paced(), c.drivers[1].paced()),
        (0, 0),
        "duties still paced after every transfer finished"
    );
}

#[test]
fn commit_posts_on_both_sides_and_writes_both_texts() {
    let (mut c, alice, bob) = two_shards();
    let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(1_000));
    let receipt = c.finish(request.clone());
    assert_eq!(receipt.result, ResultCode::Success);
    assert_eq!(receipt.payee_name.as_deref(), Some("customer holder"));
    assert_eq!(c.balance(&alice), ksh(8_987));
    assert_eq!(c.balance(&bob), ksh(1_000));
    assert_eq!(
        c.ledgers[1].incoming(&request.id).unwrap().state,
        IncomingState::Committed
    );
    assert_quiet(&c);
    let txn = receipt.txn_id.unwrap().to_string();
    let payer_text = c.ledgers[0].sms_outbox().last().unwrap();
    assert!(payer_text.text.starts_with(&format!(
        "{txn} Confirmed. Ksh1,000.00 sent to CUSTOMER HOLDER {}",
        bob.msisdn().unwrap().local()
    )));
    assert!(payer_text
        .text
        .contains("New M-PESA balance is Ksh8,987.00. Transaction cost, Ksh13.00."));
    assert!(payer_text
        .text
        .contains("Amount you can transact within the day is 499,000.00."));
    let payee_text = c.ledgers[1].sms_outbox().last().unwrap();
    assert_eq!(&payee_text.to, bob.msisdn().unwrap());
    assert!(payee_text.text.starts_with(&format!(
        "{txn} Confirmed. You have received Ksh1,000.00 from CUSTOMER HOLDER"
    )));
}

#[test]
fn payee_refusal_aborts_and_releases_the_hold() {
    let (mut c, alice, _) = two_shards();
    let stranger = c.customer_on(1, 7);
    let request = c.request(TransferKind::SendMoney, &alice, &stranger, ksh(100));
    let receipt = c.finish(request.clone());
    assert_eq!(receipt.result, ResultCode::UnknownPayee);
    assert_eq!(c.balance(&alice), ksh(10_000));
    assert_eq!(
        c.ledgers[0]
            .account(&alice)
            .unwrap()
            .balances
            .debits_pending,
        Money::ZERO
    );
    assert_eq!(
        c.ledgers[1].incoming(&request.id).unwrap().state,
        IncomingState::Rejected(ResultCode::UnknownPayee)
    );
    // The payer is texted that it failed, under the receipt it was given.
    let text = &c.ledgers[0].sms_outbox().last().unwrap().text;
    let txn = c.ledgers[0].outgoing(&request.id).unwrap().txn_id.unwrap();
    assert!(
        text.starts_with(&format!("{txn} Failed. Ksh100.00 to "))
            && text.contains("was not completed")
            && text.ends_with("New M-PESA balance is Ksh10,000.00."),
        "{text}"
    );
    assert_quiet(&c);
}

#[test]
fn lost_offer_aborts_at_the_deadline_and_a_late_offer_is_refused() {
    let (mut c, alice, bob) = two_shards();
    let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(100));
    c.submit(request.clone());
    let offer: Vec<Envelope> = c.in_flight.drain(..).collect();
    assert!(matches!(offer[0].message, PeerMessage::Credit(_)));
    // The sweeper does nothing before the deadline…
    c.now = request.deadline_ms;
    c.tick();
    c.in_flight.clear();
    assert_eq!(
        c.ledgers[0].outgoing(&request.id).unwrap().state,
        OutgoingState::Prepared
    );
    // …and aborts after it. The abort reaches the payee before the offer does.
    c.now = request.deadline_ms + 1;
    c.tick();
    let receipt = c.ledgers[0].receipt(&request.id).unwrap();
    assert_eq!(receipt.result, ResultCode::DeadlinePassed);
    c.deliver_all();
    assert_eq!(
        c.ledgers[1].incoming(&request.id).unwrap().state,
        IncomingState::Aborted
    );
    c.in_flight.extend(offer);
    c.deliver_all();
    assert_eq!(
        c.ledgers[1].incoming(&request.id).unwrap().state,
        IncomingState::Aborted
    );
    assert_eq!(c.balance(&bob), Money::ZERO);
    assert_eq!(c.balance(&alice), ksh(10_000));
    assert_quiet(&c);
}

#[test]
fn an_acceptance_after_the_deadline_aborts_and_voids_the_pending_credit() {
    let (mut c, alice, bob) = two_shards();
    let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(100));
    c.submit(request.clone());
    // Deliver the offer only: the answer is held back past the deadline.
    let offer = c.in_flight.pop_front().unwrap();
    let effects = c.drivers[1].on_message(&c.ledgers[1], &offer, c.now);
    for command in effects.propose {
        c.apply(1, command);
    }
    let answer = c.in_flight.pop_front().unwrap();
    assert!(matches!(
        answer.message,
        PeerMessage::CreditAnswer {
            answer: CreditAnswer::Accepted { .. },
            ..
        }
    ));
    assert_eq!(
        c.ledgers[1].account(&bob).unwrap().balances.credits_pending,
        ksh(100)
    );
    c.now = request.deadline_ms + 5;
    c.in_flight.push_back(answer);
    c.deliver_all();
    assert_eq!(
        c.ledgers[0].receipt(&request.id).unwrap().result,
        ResultCode::DeadlinePassed
    );
    assert_eq!(
        c.ledgers[1].incoming(&request.id).unwrap().state,
        IncomingState::Aborted
    );
    assert_eq!(
        c.ledgers[1].account(&bob).unwrap().balances.credits_pending,
        Money::ZERO
    );
    assert_quiet(&c);
}

#[test]
fn the_payee_asks_when_the_decision_never_comes() {
    let (mut c, alice, bob) = two_shards();
    let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(100));
    c.submit(request.clone());
    // Offer delivered and accepted; the answer and every later message are lost.
    let offer = c.in_flight.pop_front().unwrap();
    let effects = c.drivers[1].on_message(&c.ledgers[1], &offer, c.now);
    for command in effects.propose {
        c.apply(1, command);
    }
    c.in_flight.clear();
    // Past the deadline the payer's sweeper aborts; its decision is lost too.
    c.now = request.deadline_ms + 1;
    c.tick();
    c.in_flight.clear();
    assert_eq!(
        c.ledgers[1].incoming(&request.id).unwrap().state,
        IncomingState::Accepted
    );
    // Past deadline + grace the payee inquires, and the payer answers from its durable decision.
    c.now = request.deadline_ms + 2_001;
    c.drivers[0] = crate::protocol::ShardDriver::new(0, Default::default()); // and its leader changed
    let effects = c.drivers[1].on_tick(&c.ledgers[1], c.now);
    assert!(effects
        .send
        .iter()
        .any(|e| matches!(e.message, PeerMessage::Inquiry { .. })));
    c.in_flight.extend(
        effects
            .send
            .into_iter()
            .filter(|e| matches!(e.message, PeerMessage::Inquiry { .. })),
    );
    c.deliver_all();
    assert_eq!(
        c.ledgers[1].incoming(&request.id).unwrap().state,
        IncomingState::Aborted
    );
    assert_quiet(&c);
}

#[test]
fn duplicate_messages_add_no_entries() {
    let (mut c, alice, bob) = two_shards();
    let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(100));
    c.submit(request.clone());
    let offer = c.in_flight.front().cloned().unwrap();
    c.deliver_all();
    let applied = c.ledgers[1].entries_applied();
    c.in_flight.push_back(offer);
    c.deliver_all();
    assert_eq!(
        c.ledgers[1].entries_applied(),
        applied,
        "a recorded offer is answered from state"
    );
    assert_eq!(c.balance(&bob), ksh(100));
}

fn reversal(
    c: &mut Cluster,
    of: &TransferRequest,
    txn: crate::txn_id::TransactionId,
) -> TransferRequest {
    let mut r = c.request(TransferKind::Reversal, &of.to, &of.from, of.amount);
    r.reverses = Some(txn);
    r.initiator = Role::Care;
    r.pin = PinVerdict::NotRequired;
    r
}

#[test]
fn care_reverses_once_and_not_when_the_money_is_gone() {
    let (mut c, alice, bob) = two_shards();
    let original = c.request(TransferKind::SendMoney, &alice, &bob, ksh(1_000));
    let txn = c.finish(original.clone()).txn_id.unwrap();
    let undo = reversal(&mut c, &original, txn);
    let receipt = c.finish(undo);
    assert_eq!(receipt.result, ResultCode::Success);
    assert_eq!(c.balance(&bob), Money::ZERO);
    assert_eq!(
        c.balance(&alice),
        ksh(10_000 - 13),
        "the fee is not refunded"
    );
    let again = reversal(&mut c, &original, txn);
    assert_eq!(c.finish(again).result, ResultCode::NotReversible);
    let text = &c.ledgers[0].sms_outbox().last().unwrap().text;
    assert!(
        text.contains(&format!(
            "Reversal of transaction {txn} has been successfully reversed"
        )),
        "{text}"
    );
    // A second transfer whose payee spends the money first cannot be reversed.
    let second = c.request(TransferKind::SendMoney, &alice, &bob, ksh(500));
    let txn = c.finish(second.clone()).txn_id.unwrap();
    let spend = c.request(TransferKind::SendMoney, &bob, &alice, ksh(400));
    assert!(c.finish(spend).result.is_success());
    let undo = reversal(&mut c, &second, txn);
    assert_eq!(c.finish(undo).result, ResultCode::ReversalRefused);
    // Only care may reverse.
    let mut by_customer = reversal(&mut c, &second, txn);
    by_customer.initiator = Role::Customer;
    assert_eq!(c.finish(by_customer).result, ResultCode::NotPermitted);
    assert_quiet(&c);
}

#[test]
fn an_id_colliding_across_payer_shards_never_merges() {
    let mut c = Cluster::new(3);
    let a0 = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let a1 = c.open(&c.customer_on(1, 2), AccountKind::Customer);
    let b2 = c.open(&c.customer_on(2, 3), AccountKind::Customer);
    c.fund(&a0, ksh(1_000));
    c.fund(&a1, ksh(1_000));
    let first = c.request(TransferKind::SendMoney, &a0, &b2, ksh(100));
    assert!(c.finish(first.clone()).result.is_success());
    let mut clash = c.request(TransferKind::SendMoney, &a1, &b2, ksh(200));
    clash.id = first.id.clone();
    assert_eq!(c.finish(clash).result, ResultCode::IdempotencyConflict);
    assert_eq!(c.balance(&b2), ksh(100));
    assert_eq!(c.balance(&a1), ksh(1_000));
    assert_quiet(&c);
}

#[test]
fn receipts_are_unique_across_shards_and_days() {
    let mut c = Cluster::new(3);
    let payers: Vec<AccountRef> = (0..3)
        .map(|s| c.open(&c.customer_on(s, 10 + s), AccountKind::Customer))
        .collect();
    let payee = c.open(&c.customer_on(1, 99), AccountKind::Customer);
    let mut seen = BTreeSet::new();
    for day in 0..2 {
        for payer in &payers {
            c.fund(payer, ksh(5_000));
        }
        for n in 0..150 {
            let payer = payers[n % 3].clone();
            let r = c.request(TransferKind::SendMoney, &payer, &payee, ksh(10));
            let receipt = c.finish(r);
            assert!(receipt.result.is_success(), "day {day}: {receipt:?}");
            assert!(seen.insert(receipt.txn_id.unwrap()), "duplicate receipt");
            c.apply(
                c.shard_of(&payer),
                Command::SmsDelivered {
                    up_to_seq: u64::MAX,
                },
            );
            c.apply(
                1,
                Command::SmsDelivered {
                    up_to_seq: u64::MAX,
                },
            );
        }
        c.now += 24 * 3_600_000;
    }
    assert_eq!(seen.len(), 300);
}

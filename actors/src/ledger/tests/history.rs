//! History rows as transfers finish, retirement of finished records, and refusals that leave
//! no record.

use crate::account::AccountRef;
use crate::ledger::{Command, Decision, HistoryRow, HistorySide};
use crate::outcome::ResultCode;
use crate::roles::AccountKind;
use crate::testkit::{ksh, Cluster};
use crate::transfer::{PinVerdict, TransferKind};

fn rows(c: &mut Cluster, shard: usize) -> Vec<HistoryRow> {
    c.ledgers[shard].take_history()
}

fn retire_all(c: &mut Cluster, shard: usize) {
    let up_to_ms = c.now;
    c.apply(shard, Command::Retire { up_to_ms });
}

/// Two shards: alice (funded, her funding row taken) on shard 0, bob on shard 1.
fn alice_on_0_bob_on_1() -> (Cluster, AccountRef, AccountRef) {
    let mut c = Cluster::new(2);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(1, 2), AccountKind::Customer);
    c.fund(&alice, ksh(5_000));
    rows(&mut c, 0);
    (c, alice, bob)
}

#[test]
fn a_same_shard_transfer_writes_a_row_for_each_party_with_one_receipt() {
    let mut c = Cluster::new(1);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(0, 2), AccountKind::Customer);
    c.fund(&alice, ksh(5_000));
    let funded = rows(&mut c, 0);
    assert_eq!(
        funded.len(),
        1,
        "the issuer is a system account: no row for it"
    );
    assert_eq!(funded[0].account, alice);
    assert_eq!(funded[0].side, HistorySide::Payee);

    let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(1_000));
    let receipt = c.finish(request.clone());
    assert!(receipt.result.is_success());
    let sent = rows(&mut c, 0);
    assert_eq!(sent.len(), 2);
    let (payer, payee) = (&sent[0], &sent[1]);
    assert_eq!((payer.seq, payee.seq), (1, 2));
    assert_eq!(payer.account, alice);
    assert_eq!(
        payer.amount_cents,
        -(ksh(1_000).cents() + receipt.fee.cents())
    );
    assert_eq!(payer.balance_after, receipt.balance);
    assert_eq!(payee.account, bob);
    assert_eq!(payee.amount_cents, ksh(1_000).cents());
    assert_eq!(payer.receipt, receipt.txn_id);
    assert_eq!(payee.receipt, receipt.txn_id);
    assert_eq!(c.ledgers[0].history_next_seq(), 3);
}

#[test]
fn a_cross_shard_transfer_writes_the_payer_row_on_its_shard_and_the_payee_row_on_the_other() {
    let (mut c, alice, bob) = alice_on_0_bob_on_1();
    let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(700));
    let receipt = c.finish(request);
    assert!(receipt.result.is_success());
    let payer = rows(&mut c, 0);
    let payee = rows(&mut c, 1);
    assert_eq!(payer.len(), 1);
    assert_eq!(payee.len(), 1);
    assert_eq!(
        (payer[0].side, payee[0].side),
        (HistorySide::Payer, HistorySide::Payee)
    );
    assert_eq!(payer[0].receipt, receipt.txn_id);
    assert_eq!(payee[0].receipt, receipt.txn_id);
    assert_eq!(payee[0].counterparty, alice);
}

#[test]
fn an_aborted_transfer_has_a_payer_row_that_moved_nothing() {
    let (mut c, alice, bob) = alice_on_0_bob_on_1();
    let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(700));
    c.submit(request.clone());
    c.in_flight.clear(); // the offer is lost
    c.now = request.deadline_ms + 1;
    c.apply(
        0,
        Command::Decide {
            id: request.id.clone(),
            answer: None,
        },
    );
    let payer = rows(&mut c, 0);
    assert_eq!(payer.len(), 1);
    assert_eq!(payer[0].result, ResultCode::DeadlinePassed);
    assert_eq!((payer[0].amount_cents, payer[0].receipt), (0, None));
    assert!(!payer[0].committed());
}

#[test]
fn retirement_drops_finished_records_and_their_receipts_but_not_undelivered_decisions() {
    let mut c = Cluster::new(2);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(1, 2), AccountKind::Customer);
    let carol = c.open(&c.customer_on(0, 3), AccountKind::Customer);
    c.fund(&alice, ksh(5_000));
    let local = c.request(TransferKind::SendMoney, &alice, &carol, ksh(100));
    let local_receipt = c.finish(local.clone());
    let remote = c.request(TransferKind::SendMoney, &alice, &bob, ksh(100));
    c.submit(remote.clone());
    // Deliver the offer and the answer, but lose the decision on its way to bob's shard.
    let mut budget = 100;
    while let Some(envelope) = c.in_flight.pop_front() {
        budget -= 1;
        assert!(budget > 0);
        if envelope.to == 1
            && matches!(
                envelope.message,
                crate::protocol::PeerMessage::Decision { .. }
            )
        {
            continue;
        }
        let effects = c.drivers[envelope.to as usize].on_message(
            &c.ledgers[envelope.to as usize],
            &envelope,
            c.now,
        );
        c.run_effects(envelope.to as usize, effects);
    }
    assert_eq!(
        c.ledgers[0].pending_decision(&remote.id),
        Some((1, Decision::Commit))
    );
    c.now += 1;
    retire_all(&mut c, 0);
    assert!(
        c.ledgers[0].outgoing(&local.id).is_none(),
        "finished and retired"
    );
    let txn = local_receipt.txn_id.unwrap();
    assert!(c.ledgers[0].outgoing_by_receipt(&txn).is_none());
    assert!(
        c.ledgers[0].outgoing(&remote.id).is_some(),
        "kept while its decision is undelivered"
    );
    // The decision arrives; the next retirement takes the record.
    c.deliver_all();
    c.tick();
    c.now += 10_000;
    c.tick();
    c.deliver_all();
    assert_eq!(c.ledgers[0].pending_decision(&remote.id), None);
    retire_all(&mut c, 0);
    assert!(c.ledgers[0].outgoing(&remote.id).is_none());
    // Bob's side retires once its deadline has passed too.
    assert!(c.now > remote.deadline_ms);
    retire_all(&mut c, 1);
    assert!(c.ledgers[1].incoming(&remote.id).is_none());
    assert_eq!(c.ledgers[0].retiring() + c.ledgers[1].retiring(), 0);
    // A late copy of the commit settles nothing and stops nothing.
    let applied = c.apply(
        1,
        Command::Settle {
            id: remote.id.clone(),
            payer_shard: 0,
            decision: Decision::Commit,
        },
    );
    assert!(matches!(applied, crate::ledger::Applied::Settled { .. }));
    assert_eq!(c.totals(), (0, 0));
}

#[test]
fn a_retirement_before_a_record_finished_leaves_it() {
    let mut c = Cluster::new(1);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(0, 2), AccountKind::Customer);
    c.fund(&alice, ksh(5_000));
    let earlier = c.now;
    c.now += 1_000;
    let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(100));
    let first = c.finish(request.clone());
    c.apply(0, Command::Retire { up_to_ms: earlier });
    assert_eq!(
        c.finish(request),
        first,
        "within the window: the same answer"
    );
}

#[test]
fn refusals_anyone_could_provoke_leave_no_record_but_wrong_pins_still_count() {
    let mut c = Cluster::new(1);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(0, 2), AccountKind::Customer);
    c.fund(&alice, ksh(5_000));
    rows(&mut c, 0);
    let stranger = c.customer_on(0, 9);
    let unknown = c.request(TransferKind::SendMoney, &stranger, &bob, ksh(10));
    assert_eq!(c.finish(unknown.clone()).result, ResultCode::UnknownAccount);
    let to_self = c.request(TransferKind::SendMoney, &alice, &alice, ksh(10));
    assert_eq!(c.finish(to_self.clone()).result, ResultCode::SameAccount);
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let mut wrong = c.request(TransferKind::SendMoney, &alice, &bob, ksh(10));
        wrong.pin = PinVerdict::Wrong;
        attempts.push(c.finish(wrong.clone()).result);
        assert!(c.ledgers[0].outgoing(&wrong.id).is_none());
    }
    assert_eq!(attempts[0], ResultCode::WrongPin);
    for id in [&unknown.id, &to_self.id] {
        assert!(c.ledgers[0].outgoing(id).is_none());
    }
    assert!(rows(&mut c, 0).is_empty(), "no history either");
    let pin = c.ledgers[0].account(&alice).unwrap().pin.clone().unwrap();
    assert_eq!(pin.failed_attempts, 3, "the PIN counter counted them");
    // A refusal after the PIN checked out (no funds) is recorded: a retry gets the same answer.
    let broke = c.open(&c.customer_on(0, 4), AccountKind::Customer);
    let poor = c.request(TransferKind::SendMoney, &broke, &bob, ksh(10));
    assert_eq!(c.finish(poor.clone()).result, ResultCode::InsufficientFunds);
    assert!(c.ledgers[0].outgoing(&poor.id).is_some());
}

#[test]
fn the_sms_outbox_is_read_from_a_sequence_number_on() {
    let mut c = Cluster::new(1);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(0, 2), AccountKind::Customer);
    c.fund(&alice, ksh(5_000));
    for _ in 0..3 {
        let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(10));
        assert!(c.finish(request).result.is_success());
    }
    let all: Vec<u64> = c.ledgers[0].sms_outbox().map(|r| r.seq).collect();
    assert!(all.len() >= 6, "{all:?}");
    let from: Vec<u64> = c.ledgers[0]
        .sms_outbox_from(all[3])
        .map(|r| r.seq)
        .collect();
    assert_eq!(from, all[3..].to_vec());
    assert_eq!(c.ledgers[0].sms_outbox_from(u64::MAX).count(), 0);
    c.apply(0, Command::SmsDelivered { up_to_seq: all[1] });
    let rest: Vec<u64> = c.ledgers[0].sms_outbox_from(0).map(|r| r.seq).collect();
    assert_eq!(rest, all[2..].to_vec());
}

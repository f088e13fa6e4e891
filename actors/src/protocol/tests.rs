//! Driver tests: what a leader sends and proposes for each event, and its pacing.

use crate::ledger::{Command, Decision};

use crate::roles::AccountKind;
use crate::testkit::{ksh, Cluster};
use crate::transfer::{TransferId, TransferKind};

use super::{DriverConfig, Envelope, PeerMessage, ShardDriver};

#[test]
fn prepared_offers_are_resent_on_pace_and_swept_after_the_deadline() {
    let mut c = Cluster::new(2);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(1, 2), AccountKind::Customer);
    c.fund(&alice, ksh(100));
    let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(10));
    c.submit(request.clone());
    assert_eq!(
        c.in_flight.len(),
        1,
        "the offer goes out as soon as Prepare applies"
    );
    c.in_flight.clear();
    let mut driver = ShardDriver::new(0, DriverConfig::default());
    let first = driver.on_tick(&c.ledgers[0], c.now);
    assert!(matches!(
        first.send[..],
        [Envelope {
            to: 1,
            message: PeerMessage::Credit(_),
            ..
        }]
    ));
    assert!(
        driver.on_tick(&c.ledgers[0], c.now + 199).is_empty(),
        "paced"
    );
    assert_eq!(driver.on_tick(&c.ledgers[0], c.now + 200).send.len(), 1);
    let swept = driver.on_tick(&c.ledgers[0], request.deadline_ms + 1);
    assert_eq!(
        swept.propose,
        vec![Command::Decide {
            id: request.id.clone(),
            answer: None
        }]
    );
    assert!(swept.send.is_empty(), "no offer after the deadline");
    assert!(
        driver
            .on_tick(&c.ledgers[0], request.deadline_ms + 2)
            .propose
            .is_empty(),
        "proposal paced"
    );
    assert!(driver.paced() > 0);
}

#[test]
fn an_inquiry_about_an_unknown_transfer_is_answered_abort() {
    let c = Cluster::new(2);
    let mut driver = ShardDriver::new(0, DriverConfig::default());
    let id = TransferId::parse("never-seen").unwrap();
    let inquiry = Envelope {
        from: 1,
        to: 0,
        message: PeerMessage::Inquiry { id: id.clone() },
    };
    let effects = driver.on_message(&c.ledgers[0], &inquiry, c.now);
    assert!(
        effects.send.is_empty(),
        "not before the absence is confirmed"
    );
    assert_eq!(effects.confirm_absent, vec![(id.clone(), 1)]);
    let effects = driver.answer_confirmed_inquiry(&c.ledgers[0], &id, 1, c.now);
    assert_eq!(
        effects.send,
        vec![Envelope {
            from: 0,
            to: 1,
            message: PeerMessage::Decision {
                id,
                decision: Decision::Abort
            }
        }]
    );
    assert!(effects.propose.is_empty());
}

#[test]
fn decisions_settle_through_the_log_and_repeat_acks_come_from_state() {
    let mut c = Cluster::new(2);
    let id = TransferId::parse("t-1").unwrap();
    let decision = Envelope {
        from: 0,
        to: 1,
        message: PeerMessage::Decision {
            id: id.clone(),
            decision: Decision::Abort,
        },
    };
    let effects = c.drivers[1].on_message(&c.ledgers[1], &decision, c.now);
    assert_eq!(
        effects.propose,
        vec![Command::Settle {
            id: id.clone(),
            payer_shard: 0,
            decision: Decision::Abort
        }]
    );
    for command in effects.propose {
        c.apply(1, command);
    }
    assert!(matches!(
        c.in_flight.pop_front().unwrap().message,
        PeerMessage::DecisionAck { .. }
    ));
    let again = c.drivers[1].on_message(&c.ledgers[1], &decision, c.now);
    assert!(again.propose.is_empty());
    assert!(matches!(
        again.send[..],
        [Envelope {
            message: PeerMessage::DecisionAck { .. },
            ..
        }]
    ));
}

#[test]
fn a_commit_for_a_transfer_never_accepted_is_a_protocol_violation() {
    let mut c = Cluster::new(2);
    let entry = crate::ledger::Entry {
        timestamp_ms: c.now,
        command: Command::Settle {
            id: TransferId::parse("x").unwrap(),
            payer_shard: 0,
            decision: Decision::Commit,
        },
    };
    let error = c.ledgers[1].try_apply(&entry).unwrap_err();
    assert!(error.message.contains("never accepted"), "{error}");
}

#[test]
fn driver_config_is_validated() {
    assert!(DriverConfig::default().validate().is_ok());
    let zero = DriverConfig {
        resend_interval_ms: 0,
        ..DriverConfig::default()
    };
    assert!(zero.validate().is_err());
    let short_grace = DriverConfig {
        inquiry_grace_ms: 10,
        ..DriverConfig::default()
    };
    assert!(short_grace.validate().is_err());
    let no_budget = DriverConfig {
        duties_per_tick_max: 0,
        ..DriverConfig::default()
    };
    assert!(no_budget.validate().is_err());
}

/// A shard speaks only for its own side of a transfer: an answer, an acknowledgement or an
/// inquiry about a transfer from a shard that is not its payee is ignored.
#[test]
fn only_the_payee_shard_answers_acknowledges_or_inquires() {
    let mut c = Cluster::new(3);
    let alice = c.open(&c.customer_on(0, 1), AccountKind::Customer);
    let bob = c.open(&c.customer_on(1, 2), AccountKind::Customer);
    c.fund(&alice, ksh(100));
    let request = c.request(TransferKind::SendMoney, &alice, &bob, ksh(10));
    c.submit(request.clone());
    c.in_flight.clear();
    let mut driver = ShardDriver::new(0, DriverConfig::default());
    let answer = |from| Envelope {
        from,
        to: 0,
        message: PeerMessage::CreditAnswer {
            id: request.id.clone(),
            answer: crate::ledger::CreditAnswer::Accepted {
                payee_name: "BOB".into(),
            },
        },
    };
    assert!(
        driver
            .on_message(&c.ledgers[0], &answer(2), c.now)
            .is_empty(),
        "shard 2 is not the payee"
    );
    assert_eq!(
        driver
            .on_message(&c.ledgers[0], &answer(1), c.now)
            .propose
            .len(),
        1
    );
    let inquiry = Envelope {
        from: 2,
        to: 0,
        message: PeerMessage::Inquiry {
            id: request.id.clone(),
        },
    };
    assert!(driver
        .on_message(&c.ledgers[0], &inquiry, request.deadline_ms + 5_000)
        .is_empty());
}

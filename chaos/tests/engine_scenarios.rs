//! The reviewed defects, each as a scripted scenario on real engines (in memory, one thread,
//! time advanced by the test): each fails on the engine before its fix.

use protobuf::Message as _;
use raft::prelude::{Message, MessageType};
use tuma_actors::account::{AccountRef, AgentNumber, SystemAccount};
use tuma_actors::ledger::{Command, OpenAccount};
use tuma_actors::money::Money;
use tuma_actors::protocol::{Envelope, PeerMessage};
use tuma_actors::roles::{AccountKind, Role};
use tuma_actors::transfer::{PinVerdict, TransferId, TransferKind, TransferRequest};
use tuma_actors::ShardMap;
use tuma_chaos::sim::nodes::scripted::Scripted;
use tuma_cluster::engine::{ClientReply, ClientRequest, EngineFault};
use tuma_cluster::wire::PeerFrame;

fn agent(n: u32) -> AccountRef {
    AccountRef::Agent(AgentNumber::parse(&n.to_string()).unwrap())
}

fn open_agent(cluster: &mut Scripted, at: u64, account: &AccountRef, shard: u32) {
    let open = OpenAccount {
        account: account.clone(),
        kind: AccountKind::Agent,
        name: "Agent".into(),
        id_number: None,
        phone: None,
        store_number: Some("1".into()),
        pin_hash: Some(Scripted::pin_hash()),
        api_credentials: None,
    };
    let reply = cluster.ask(
        at,
        ClientRequest::Command {
            shard,
            command: Command::OpenAccount(open),
        },
        5_000,
    );
    assert!(
        matches!(reply, Some(ClientReply::Done(code)) if code.is_success()),
        "{:?}",
        reply.map(|r| r.describe())
    );
}

/// Whether `node` sent a protocol decision since the last look.
fn sent_a_decision(cluster: &mut Scripted, node: u64) -> bool {
    cluster.take_sent().into_iter().any(|(from, _, frame)| {
        from == node
            && matches!(
                frame,
                PeerFrame::Protocol(Envelope {
                    message: PeerMessage::Decision { .. },
                    ..
                })
            )
    })
}

fn float(cluster: &Scripted, n: usize, to: &AccountRef, shard: u32) -> ClientRequest {
    ClientRequest::Transfer {
        request: TransferRequest {
            id: TransferId::parse(&format!("float-{n}")).unwrap(),
            kind: TransferKind::FloatIssue,
            from: AccountRef::System(SystemAccount::Issuer(shard)),
            to: to.clone(),
            amount: Money::from_shillings(1_000),
            account_reference: None,
            pin: PinVerdict::NotRequired,
            deadline_ms: cluster.wall_ms() + 60_000,
            initiator: Role::Operator,
            reverses: None,
        },
        pin: None,
    }
}

/// A node that wins an election cannot be trusted before it applied an entry of its own term:
/// until then its state may miss entries its log already holds committed. It answers no
/// protocol message (an inquiry answered "never prepared here" could presume abort for a
/// transfer that committed), no request and no read. Shard 0 lives on nodes 1 and 2 (node 1
/// preferred), shard 1 on nodes 2 and 3: node 1, restarted, takes shard 0 back and is muted
/// the moment it wins, so its first entry never commits; an inquiry from shard 1 must go
/// unanswered.
#[test]
fn a_leader_answers_nothing_before_it_applied_an_entry_of_its_term() {
    for (planted, answers) in [(None, false), (Some(EngineFault::PresumeAbortEarly), true)] {
        let mut cluster = Scripted::new(3, 2, 2, planted);
        assert!(cluster.run_until(10_000, |c| c.leader_of(0) == Some(1)));
        cluster.crash(1);
        cluster.run_for(100);
        cluster.start(1);
        let unready = |c: &Scripted| {
            c.replicas(0)
                .iter()
                .any(|(id, p)| *id == 1 && p.leader && !p.serving)
        };
        assert!(
            cluster.run_until(15_000, unready),
            "node 1 took shard 0 back"
        );
        cluster.mute(1);
        cluster.take_sent();
        let inquiry = Envelope {
            from: 1,
            to: 0,
            message: PeerMessage::Inquiry {
                id: TransferId::parse("t-unknown").unwrap(),
            },
        };
        cluster.inject(3, 1, PeerFrame::Protocol(inquiry));
        let mut read = cluster.submit(1, ClientRequest::Audit { shard: 0 });
        cluster.run_for(50);
        assert!(
            unready(&cluster),
            "node 1 still leads without its first entry applied"
        );
        let presumed = sent_a_decision(&mut cluster, 1);
        assert_eq!(
            presumed, answers,
            "planted {planted:?}: presumed abort answered"
        );
        if planted.is_none() {
            let answer = read.try_recv().expect("answered at once");
            assert!(
                matches!(answer, ClientReply::Unavailable(_)),
                "{}",
                answer.describe()
            );
        }
    }
}

/// A read is answered only by a leader that confirmed its leadership with a quorum: a leader
/// cut off from its group (which elects another and moves on) answers no read at all.
#[test]
fn a_deposed_leader_that_does_not_know_it_answers_no_read() {
    let mut cluster = Scripted::new(3, 1, 3, None);
    assert!(cluster.run_until(5_000, |c| c.leader_of(0).is_some()));
    let old = cluster.leader_of(0).unwrap();
    cluster.isolate(old);
    let mut read = cluster.submit(old, ClientRequest::Audit { shard: 0 });
    assert!(cluster.run_until(5_000, |c| c
        .replicas(0)
        .iter()
        .any(|(id, p)| *id != old && p.serving)));
    cluster.run_for(3_000);
    assert!(
        !matches!(read.try_recv(), Ok(ClientReply::Audit(_))),
        "a leader cut off from its group answered a read"
    );
}

/// `--replicas 1`: a single voter commits in Readies that carry no hard state; its commit
/// index must still reach the disk before a checkpoint past it does, or it cannot restart
/// (`hs.commit 5 is out of range [105, 129]`).
#[test]
fn a_single_voter_group_restarts_after_checkpoints() {
    let mut cluster = Scripted::with(1, 2, 1, |config| {
        config.checkpoint_every_entries = 50;
        config.log_keep_entries = 5;
    });
    assert!(cluster.run_until(5_000, |c| c.leader_of(0).is_some()
        && c.leader_of(1).is_some()));
    let map = ShardMap::new(2).unwrap();
    let to = (100_000..)
        .map(agent)
        .find(|a| map.shard_of(a) == 0)
        .unwrap();
    open_agent(&mut cluster, 1, &to, 0);
    for n in 0..120 {
        let request = float(&cluster, n, &to, 0);
        let reply = cluster.ask(1, request, 2_000);
        assert!(matches!(reply, Some(ClientReply::Receipt(r)) if r.result.is_success()));
    }
    cluster.crash(1);
    cluster.start(1);
    assert!(
        cluster.run_until(5_000, |c| c.leader_of(0).is_some()),
        "the node came back"
    );
    let reply = cluster.ask(1, ClientRequest::Account { account: to }, 2_000);
    let Some(ClientReply::Account(Some(account))) = reply else {
        panic!("no account after the restart");
    };
    assert_eq!(account.balances.balance(), Money::from_shillings(120_000));
}

/// A peer speaks only for itself: a Raft message whose sender is not the node its
/// connection authenticated is dropped (here, a vote request for a far-future term that
/// would otherwise depose the leader).
#[test]
fn a_raft_message_claiming_another_sender_is_dropped() {
    let mut cluster = Scripted::new(3, 1, 3, None);
    assert!(cluster.run_until(5_000, |c| c.leader_of(0).is_some()));
    let leader = cluster.leader_of(0).unwrap();
    let term = cluster
        .replicas(0)
        .iter()
        .find(|(id, _)| *id == leader)
        .unwrap()
        .1
        .term;
    let liar = (1..=3).find(|n| *n != leader).unwrap();
    let claimed = (1..=3).find(|n| *n != leader && *n != liar).unwrap();
    let mut vote = Message::default();
    vote.set_msg_type(MessageType::MsgRequestVote);
    vote.from = claimed;
    vote.to = leader;
    vote.term = term + 100;
    vote.index = 1_000;
    vote.log_term = term + 99;
    let frame = PeerFrame::Raft {
        shard: 0,
        message: vote.write_to_bytes().unwrap(),
    };
    cluster.inject(liar, leader, frame);
    cluster.run_for(20);
    let now = cluster
        .replicas(0)
        .iter()
        .find(|(id, _)| *id == leader)
        .unwrap()
        .1
        .term;
    assert_eq!(
        now, term,
        "the forged vote request changed the leader's term"
    );
    assert_eq!(cluster.leader_of(0), Some(leader));
}

/// "Never prepared here, so abort" is a read of everything the payer shard committed: a leader
/// deposed without knowing it must not presume abort for a transfer the new leader may have
/// prepared. Found by the simulator's decision check: a paused leader woke to a queue of
/// inquiries and answered them from its stale state. It now answers only after a ReadIndex
/// round confirms it still leads — which a deposed leader never gets. Here the leader of
/// shard 0 is paused until another is elected, and the first thing it hears on waking is an
/// inquiry about a transfer it never saw.
#[test]
fn a_deposed_leader_that_does_not_know_it_presumes_no_abort() {
    for (planted, answers) in [
        (None, false),
        (Some(EngineFault::PresumeAbortUnconfirmed), true),
    ] {
        let mut cluster = Scripted::new(3, 4, 3, planted);
        assert!(cluster.run_until(5_000, |c| (0..4).all(|s| c.leader_of(s).is_some())));
        let old = cluster.leader_of(0).unwrap();
        // The asking payee shard is led elsewhere, so an answer leaves `old` as a frame.
        let payee = (1..4)
            .find(|s| cluster.leader_of(*s) != Some(old))
            .expect("a shard led by another node");
        cluster.pause(old);
        assert!(cluster.run_until(5_000, |c| c
            .replicas(0)
            .iter()
            .any(|(id, p)| *id != old && p.serving)));
        cluster.resume(old);
        assert!(
            cluster
                .replicas(0)
                .iter()
                .any(|(id, p)| *id == old && p.serving),
            "the old leader still believes it serves"
        );
        cluster.take_sent();
        let inquiry = Envelope {
            from: payee,
            to: 0,
            message: PeerMessage::Inquiry {
                id: TransferId::parse("t-prepared-elsewhere").unwrap(),
            },
        };
        let asker = cluster.leader_of(payee).unwrap();
        cluster.inject(asker, old, PeerFrame::Protocol(inquiry));
        cluster.run_for(50);
        let presumed = sent_a_decision(&mut cluster, old);
        assert_eq!(
            presumed, answers,
            "planted {planted:?}: presumed abort answered"
        );
    }
}

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::*;

fn addr(n: u64) -> SocketAddr {
    format!("127.0.0.1:{}", 7000 + n).parse().unwrap()
}

fn cluster(nodes: u64, shards: u32) -> ClusterMeta {
    let members: BTreeMap<u64, SocketAddr> = (1..=nodes).map(|n| (n, addr(n))).collect();
    ClusterMeta::initial(&members, shards, 3).unwrap()
}

fn join(meta: &mut ClusterMeta, n: u64) {
    let outcome = meta.apply(
        &MetaCommand::Join {
            node_id: None,
            peer_addr: addr(n),
            http_addr: None,
        },
        0,
    );
    assert_eq!(outcome, MetaOutcome::Joined(n));
}

/// Runs the rebalancer to a fixed point, completing every move it starts at once.
/// Returns the number of rounds and the most moves ever in flight.
fn settle(meta: &mut ClusterMeta, limits: PlanLimits) -> (usize, usize) {
    let mut most_in_flight = 0;
    for round in 0..1_000 {
        let commands = plan(meta, limits, 0);
        if commands.is_empty() {
            return (round, most_in_flight);
        }
        for c in &commands {
            let outcome = meta.apply(c, 0);
            assert!(
                !matches!(outcome, MetaOutcome::Refused(_)),
                "{c:?}: {outcome:?}"
            );
        }
        most_in_flight = most_in_flight.max(meta.moves.len());
        let moves: Vec<(u32, Vec<u64>)> = meta
            .moves
            .iter()
            .map(|(s, m)| (*s, m.target.clone()))
            .collect();
        for (shard, replicas) in moves {
            assert_eq!(
                meta.apply(&MetaCommand::FinishMove { shard, replicas }, 0),
                MetaOutcome::Done
            );
        }
        meta.check().unwrap();
    }
    panic!("the rebalancer does not settle");
}

fn loads(meta: &ClusterMeta) -> Vec<usize> {
    meta.members_in(MemberState::Active)
        .iter()
        .map(|n| meta.placement.iter().filter(|p| p.contains(n)).count())
        .collect()
}

fn leads(meta: &ClusterMeta) -> Vec<usize> {
    meta.members_in(MemberState::Active)
        .iter()
        .map(|n| meta.placement.iter().filter(|p| p[0] == *n).count())
        .collect()
}

fn spread(counts: &[usize]) -> usize {
    counts.iter().max().unwrap() - counts.iter().min().unwrap()
}

#[test]
fn joins_get_the_next_id_and_a_retried_join_the_same_one() {
    let mut meta = cluster(3, 8);
    join(&mut meta, 4);
    join(&mut meta, 4);
    assert_eq!(meta.members.len(), 4);
    let taken = meta.apply(
        &MetaCommand::Join {
            node_id: Some(2),
            peer_addr: addr(9),
            http_addr: None,
        },
        0,
    );
    assert!(matches!(taken, MetaOutcome::Refused(r) if r.contains("taken")));
    let zero = meta.apply(
        &MetaCommand::Join {
            node_id: Some(0),
            peer_addr: addr(9),
            http_addr: None,
        },
        0,
    );
    assert!(matches!(zero, MetaOutcome::Refused(_)));
}

#[test]
fn growing_three_to_five_spreads_replicas_and_leaders_within_one() {
    let mut meta = cluster(3, 64);
    join(&mut meta, 4);
    join(&mut meta, 5);
    let limits = PlanLimits {
        moves_max: 3,
        ..PlanLimits::default()
    };
    let (_, most) = settle(&mut meta, limits);
    assert!(most <= 3, "{most} moves in flight");
    assert!(spread(&loads(&meta)) <= 1, "{:?}", loads(&meta));
    assert!(spread(&leads(&meta)) <= 1, "{:?}", leads(&meta));
    assert!(meta.moves_done >= 30, "only {} moves", meta.moves_done);
}

#[test]
fn a_drained_member_ends_with_nothing_and_is_removed() {
    let mut meta = cluster(4, 32);
    settle(&mut meta, PlanLimits::default());
    assert_eq!(
        meta.apply(&MetaCommand::Drain { node: 2 }, 0),
        MetaOutcome::Done
    );
    // Leaderships leave the draining node before its replicas do.
    let first = plan(&meta, PlanLimits::default(), 0);
    assert!(first
        .iter()
        .any(|c| matches!(c, MetaCommand::SetLeaderOrder { .. })));
    settle(&mut meta, PlanLimits::default());
    assert_eq!(meta.state_of(2), Some(MemberState::Removed));
    assert!(meta.placement.iter().all(|p| !p.contains(&2)));
    assert!(spread(&loads(&meta)) <= 1);
    // Three members left for three replicas: a further removal is refused.
    let refused = meta.apply(&MetaCommand::Drain { node: 1 }, 0);
    assert!(matches!(refused, MetaOutcome::Refused(r) if r.contains("add a node first")));
    let again = meta.apply(&MetaCommand::Drain { node: 2 }, 0);
    assert!(matches!(again, MetaOutcome::Refused(_)));
}

#[test]
fn moves_to_a_leaving_member_are_cancelled_and_stuck_moves_time_out() {
    let mut meta = cluster(4, 8);
    let target = vec![1, 2, 4];
    let shard = (0..8)
        .find(|s| meta.placement[*s as usize] != target)
        .unwrap();
    assert_eq!(
        meta.apply(
            &MetaCommand::StartMove {
                shard,
                target: target.clone()
            },
            1_000
        ),
        MetaOutcome::Done
    );
    let limits = PlanLimits::default();
    assert!(!plan(&meta, limits, 2_000).contains(&MetaCommand::CancelMove { shard }));
    assert!(plan(&meta, limits, 1_000 + limits.move_timeout_ms + 1)
        .contains(&MetaCommand::CancelMove { shard }));
    meta.apply(&MetaCommand::Drain { node: 4 }, 0);
    assert!(plan(&meta, limits, 2_000).contains(&MetaCommand::CancelMove { shard }));
    // A stale report does not finish a move.
    let stale = meta.apply(
        &MetaCommand::FinishMove {
            shard,
            replicas: vec![1, 2, 3],
        },
        0,
    );
    assert!(matches!(stale, MetaOutcome::Refused(_)));
}

#[test]
fn bad_moves_are_refused() {
    let mut meta = cluster(3, 4);
    for target in [vec![1, 2], vec![1, 1, 2], vec![1, 2, 9]] {
        let outcome = meta.apply(&MetaCommand::StartMove { shard: 0, target }, 0);
        assert!(matches!(outcome, MetaOutcome::Refused(_)));
    }
    let outcome = meta.apply(
        &MetaCommand::StartMove {
            shard: 4,
            target: vec![1, 2, 3],
        },
        0,
    );
    assert!(matches!(outcome, MetaOutcome::Refused(_)));
    assert!(meta.moves.is_empty());
    meta.check().unwrap();
}

fn view(me: u64, voters: &[u64], learners: &[u64], matched: &[(u64, u64)]) -> GroupView {
    GroupView {
        me,
        voters: voters.to_vec(),
        learners: learners.to_vec(),
        joint: false,
        change_pending: false,
        last_index: 1_000,
        matched: matched.iter().copied().collect(),
    }
}

#[test]
fn a_leader_adds_a_learner_waits_for_it_then_swaps_in_one_joint_change() {
    let desired = [1, 2, 4];
    let all = [(1, 1_000), (2, 1_000), (3, 1_000)];
    assert_eq!(
        next_step(&desired, &view(1, &[1, 2, 3], &[], &all)),
        ConfStep::AddLearner(4)
    );
    let behind = [(1, 1_000), (2, 1_000), (3, 1_000), (4, 10)];
    assert_eq!(
        next_step(&desired, &view(1, &[1, 2, 3], &[4], &behind)),
        ConfStep::Wait
    );
    let caught_up = [(1, 1_000), (2, 1_000), (3, 1_000), (4, 990)];
    assert_eq!(
        next_step(&desired, &view(1, &[1, 2, 3], &[4], &caught_up)),
        ConfStep::Replace {
            promote: vec![4],
            remove: vec![3]
        }
    );
    assert_eq!(
        next_step(&desired, &view(1, &[1, 2, 4], &[], &caught_up)),
        ConfStep::Reached
    );
    let mut pending = view(1, &[1, 2, 3], &[4], &caught_up);
    pending.change_pending = true;
    assert_eq!(next_step(&desired, &pending), ConfStep::Wait);
    pending.change_pending = false;
    pending.joint = true;
    assert_eq!(
        next_step(&desired, &pending),
        ConfStep::LeaveJoint,
        "a leader that did not apply the joint entry itself must leave it"
    );
    pending.change_pending = true;
    assert_eq!(next_step(&desired, &pending), ConfStep::Wait);
}

#[test]
fn a_leaving_leader_hands_over_first_and_stray_learners_go() {
    let all = [(1, 1_000), (2, 1_000), (3, 1_000)];
    assert_eq!(
        next_step(&[2, 3, 4], &view(1, &[1, 2, 3], &[], &all)),
        ConfStep::TransferLeader(2)
    );
    let lagging = [(1, 1_000), (2, 5), (3, 1_000)];
    assert_eq!(
        next_step(&[2, 3, 4], &view(1, &[1, 2, 3], &[], &lagging)),
        ConfStep::TransferLeader(3)
    );
    assert_eq!(
        next_step(&[1, 2, 3], &view(1, &[1, 2, 3], &[5], &all)),
        ConfStep::RemoveLearner(5)
    );
    assert_eq!(
        next_step(&[], &view(1, &[1, 2, 3], &[], &all)),
        ConfStep::Wait
    );
}

/// A move towards a member that then drained was cancelled half-way (seed 319 of the engine
/// simulator): the group is on [5, 2, 6] with node 1 a learner, led by the draining node 2,
/// and the cluster state now wants [1, 3, 4] — no wanted replica is a voter to hand over to.
/// The leader brings them in first (staying a voter), then hands over; it never waits forever.
#[test]
fn a_leaving_leader_with_no_heir_brings_the_wanted_replicas_in_then_hands_over() {
    let desired = [1, 3, 4];
    let all = [
        (1, 1_000),
        (2, 1_000),
        (3, 1_000),
        (4, 1_000),
        (5, 1_000),
        (6, 1_000),
    ];
    assert_eq!(
        next_step(&desired, &view(2, &[5, 2, 6], &[1], &all)),
        ConfStep::AddLearner(3)
    );
    assert_eq!(
        next_step(&desired, &view(2, &[5, 2, 6], &[1, 3, 4], &all)),
        ConfStep::Replace {
            promote: vec![1, 3, 4],
            remove: vec![5, 6]
        },
        "the leader stays a voter"
    );
    assert_eq!(
        next_step(&desired, &view(2, &[2, 1, 3, 4], &[], &all)),
        ConfStep::TransferLeader(1)
    );
    let behind = [(1, 3), (2, 1_000), (3, 4), (4, 5)];
    assert_eq!(
        next_step(&desired, &view(2, &[2, 1, 3, 4], &[], &behind)),
        ConfStep::Wait,
        "no caught-up heir yet"
    );
    assert_eq!(
        next_step(&desired, &view(1, &[2, 1, 3, 4], &[], &all)),
        ConfStep::Replace {
            promote: vec![],
            remove: vec![2]
        },
        "the heir removes the old leader"
    );
}

/// A move to node 4 was cancelled after its joint change applied: the cluster state wants
/// [1, 2, 3] back, but node 1 (still leading) is no longer in its group. It must hand over to
/// a voter rather than propose changes raft-rs drops; the new leader then adds node 1 back.
#[test]
fn a_leader_its_group_removed_hands_over_to_a_voter_even_when_the_cluster_state_wants_it_back() {
    let matched = [(2, 1_000), (3, 1_000), (4, 1_000)];
    assert_eq!(
        next_step(&[1, 2, 3], &view(1, &[2, 4, 3], &[], &matched)),
        ConfStep::TransferLeader(2)
    );
    let lagging = [(2, 3), (3, 1_000), (4, 1_000)];
    assert_eq!(
        next_step(&[1, 2, 3], &view(1, &[2, 4, 3], &[], &lagging)),
        ConfStep::TransferLeader(3)
    );
    assert_eq!(
        next_step(&[1, 2, 3], &view(2, &[2, 4, 3], &[], &matched)),
        ConfStep::AddLearner(1)
    );
}

/// Two members of one shard drain at once: the shard moves off both in one move (a target
/// naming a draining member would be refused, and the drain would never end).
#[test]
fn two_draining_members_of_one_shard_are_replaced_in_one_move() {
    let mut meta = cluster(5, 3);
    let shard0 = meta.placement[0].clone();
    for node in &shard0[1..] {
        assert_eq!(
            meta.apply(&MetaCommand::Drain { node: *node }, 0),
            MetaOutcome::Done
        );
    }
    settle(&mut meta, PlanLimits::default());
    for node in &shard0[1..] {
        assert_eq!(
            meta.state_of(*node),
            Some(MemberState::Removed),
            "node {node}"
        );
    }
    assert!(meta.placement.iter().all(|p| p.len() == 3));
}

#[test]
fn documents_are_versioned_by_body_and_bounded() {
    let mut meta = cluster(3, 4);
    let put = |name: &str, body: &str| MetaCommand::PutDocument {
        name: name.into(),
        body: body.into(),
        expected_version: None,
    };
    assert_eq!(
        meta.apply(&put("menu/customer-en", "a"), 10),
        MetaOutcome::DocumentVersion(1)
    );
    // A retried put of the same body is no new version.
    assert_eq!(
        meta.apply(&put("menu/customer-en", "a"), 20),
        MetaOutcome::DocumentVersion(1)
    );
    assert_eq!(
        meta.apply(&put("menu/customer-en", "b"), 30),
        MetaOutcome::DocumentVersion(2)
    );
    let stored = &meta.documents["menu/customer-en"];
    assert_eq!((stored.body.as_str(), stored.stored_ms), ("b", 30));

    let too_big = "x".repeat(DOCUMENT_BYTES_MAX + 1);
    assert!(matches!(
        meta.apply(&put("big", &too_big), 40),
        MetaOutcome::Refused(_)
    ));
    assert!(matches!(
        meta.apply(&put("bad name", "a"), 40),
        MetaOutcome::Refused(_)
    ));
    for n in 1..DOCUMENTS_MAX {
        let outcome = meta.apply(&put(&format!("d{n}"), "a"), 50);
        assert_eq!(outcome, MetaOutcome::DocumentVersion(1));
    }
    let refused = meta.apply(&put("one-too-many", "a"), 60);
    assert!(matches!(refused, MetaOutcome::Refused(r) if r.contains("at most")));
    assert_eq!(meta.documents.len(), DOCUMENTS_MAX);
}

#[test]
fn a_member_joining_again_records_where_it_serves_http() {
    let mut meta = cluster(3, 4);
    assert_eq!(meta.members[&2].http_addr, None);
    let http: SocketAddr = "127.0.0.1:8082".parse().unwrap();
    let again = MetaCommand::Join {
        node_id: Some(2),
        peer_addr: addr(2),
        http_addr: Some(http),
    };
    assert_eq!(meta.apply(&again, 0), MetaOutcome::Joined(2));
    assert_eq!(meta.members[&2].http_addr, Some(http));
    // Without an address it keeps the one it has; another node's id is refused.
    let bare = MetaCommand::Join {
        node_id: None,
        peer_addr: addr(2),
        http_addr: None,
    };
    assert_eq!(meta.apply(&bare, 0), MetaOutcome::Joined(2));
    assert_eq!(meta.members[&2].http_addr, Some(http));
    let stolen = MetaCommand::Join {
        node_id: Some(3),
        peer_addr: addr(2),
        http_addr: Some(http),
    };
    assert!(matches!(meta.apply(&stolen, 0), MetaOutcome::Refused(_)));
}

#[test]
fn a_document_written_over_an_expected_version_refuses_a_lost_race_but_not_a_retry() {
    let mut meta = cluster(3, 4);
    let put = |body: &str, expected: u64| MetaCommand::PutDocument {
        name: "access/keys".into(),
        body: body.into(),
        expected_version: Some(expected),
    };
    assert_eq!(
        meta.apply(&put("a", 0), 10),
        MetaOutcome::DocumentVersion(1)
    );
    assert_eq!(
        meta.apply(&put("b", 1), 20),
        MetaOutcome::DocumentVersion(2)
    );
    // Another writer read version 1 too: refused, "b" stays.
    let lost = meta.apply(&put("c", 1), 30);
    assert!(
        matches!(&lost, MetaOutcome::Refused(r) if r.contains("version 2")),
        "{lost:?}"
    );
    assert_eq!(meta.documents["access/keys"].body, "b");
    // The winner's retry (its first attempt was applied, its answer lost) is no conflict.
    assert_eq!(
        meta.apply(&put("b", 1), 40),
        MetaOutcome::DocumentVersion(2)
    );
    assert!(matches!(
        meta.apply(&put("new", 1), 50),
        MetaOutcome::Refused(_)
    ));
    assert!(matches!(
        meta.apply(
            &MetaCommand::PutDocument {
                name: "fresh".into(),
                body: "x".into(),
                expected_version: Some(3)
            },
            60
        ),
        MetaOutcome::Refused(_)
    ));
}

#[test]
fn a_member_holding_its_data_comes_back_at_another_address_and_a_new_node_cannot_take_its_id() {
    let mut meta = cluster(3, 4);
    let http: SocketAddr = "127.0.0.1:8093".parse().unwrap();
    let back = MetaCommand::Readdress {
        node: 3,
        peer_addr: addr(9),
        http_addr: Some(http),
    };
    assert_eq!(meta.apply(&back, 0), MetaOutcome::Joined(3));
    assert_eq!(meta.members[&3].peer_addr, addr(9));
    assert_eq!(meta.members[&3].http_addr, Some(http));
    assert_eq!(
        meta.apply(&back, 0),
        MetaOutcome::Joined(3),
        "again: the same"
    );
    // Another member's address, an unknown node and a removed one are refused.
    let onto_another = MetaCommand::Readdress {
        node: 3,
        peer_addr: addr(1),
        http_addr: None,
    };
    assert!(
        matches!(meta.apply(&onto_another, 0), MetaOutcome::Refused(r) if r.contains("node 1"))
    );
    let unknown = MetaCommand::Readdress {
        node: 7,
        peer_addr: addr(7),
        http_addr: None,
    };
    assert!(matches!(meta.apply(&unknown, 0), MetaOutcome::Refused(_)));
    // A join (a node without the member's data) asking for its id is still refused.
    let new_node = MetaCommand::Join {
        node_id: Some(3),
        peer_addr: addr(8),
        http_addr: None,
    };
    assert!(matches!(meta.apply(&new_node, 0), MetaOutcome::Refused(r) if r.contains("taken")));
    assert_eq!(meta.members[&3].peer_addr, addr(9));
}

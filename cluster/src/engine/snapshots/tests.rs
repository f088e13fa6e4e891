use raft::prelude::{MessageType, Snapshot};

use super::*;
use crate::storage::{MemDisk, MemStore, WriteBatch, WriteOp};

const GROUP: u32 = 3;
const LEADER: NodeId = 1;
const FOLLOWER: NodeId = 2;

fn config() -> StreamConfig {
    StreamConfig {
        chunk_bytes: 10,
        window_chunks: 3,
        resend_ms: 100,
        give_up_ms: 1_000,
        receive_bytes_max: 1_000,
        receive_idle_ms: 5_000,
    }
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn store_with_checkpoint(index: u64, bytes: Vec<u8>) -> (MemDisk, MemStore) {
    let disk = MemDisk::new();
    let store = disk.open();
    write_checkpoint(&store, index, bytes);
    (disk, store)
}

fn write_checkpoint(store: &MemStore, index: u64, bytes: Vec<u8>) {
    let mut snapshot = Snapshot::default();
    snapshot.mut_metadata().index = index;
    snapshot.mut_metadata().term = 2;
    snapshot.data = bytes.into();
    store
        .write(WriteBatch {
            ops: vec![WriteOp::Checkpoint {
                shard: GROUP,
                snapshot,
                compact_from: 1,
                compact_to: 0,
            }],
        })
        .unwrap();
}

/// The `MsgSnapshot` raft-rs hands the engine: metadata only.
fn snapshot_message(index: u64) -> Message {
    let mut message = Message::default();
    message.set_msg_type(MessageType::MsgSnapshot);
    message.from = LEADER;
    message.to = FOLLOWER;
    message.term = 2;
    message.mut_snapshot().mut_metadata().index = index;
    message.mut_snapshot().mut_metadata().term = 2;
    message
}

/// Delivers chunk frames to the receiver; returns the acknowledgements and any whole message.
fn deliver(
    receiver: &mut SnapshotStreams,
    frames: Vec<(NodeId, PeerFrame)>,
    now: u64,
) -> (Vec<PeerFrame>, Option<Message>) {
    let mut acks = Vec::new();
    let mut whole = None;
    for (to, frame) in frames {
        assert_eq!(to, FOLLOWER);
        let PeerFrame::SnapshotChunk {
            shard,
            stream,
            header,
            index,
            offset,
            total,
            data,
        } = frame
        else {
            panic!("only chunks are pumped");
        };
        let received = receiver.on_chunk(
            LEADER, shard, stream, header, index, offset, total, data, now,
        );
        acks.extend(received.ack);
        if received.message.is_some() {
            whole = received.message;
        }
    }
    (acks, whole)
}

/// Hands acknowledgements to the sender; returns the statuses reported.
fn acknowledge(
    sender: &mut SnapshotStreams,
    acks: Vec<PeerFrame>,
    now: u64,
) -> Vec<SnapshotStatus> {
    acks.into_iter()
        .filter_map(|frame| match frame {
            PeerFrame::SnapshotAck {
                shard,
                stream,
                index,
                received,
                done,
            } => sender.on_ack(FOLLOWER, shard, stream, index, received, done, now),
            _ => None,
        })
        .map(|(_, _, status)| status)
        .collect()
}

fn chunk_offsets(frames: &[(NodeId, PeerFrame)]) -> Vec<u64> {
    frames
        .iter()
        .map(|(_, f)| match f {
            PeerFrame::SnapshotChunk { offset, .. } => *offset,
            _ => u64::MAX,
        })
        .collect()
}

#[test]
fn a_snapshot_streams_in_windows_and_arrives_whole() {
    let bytes = data(95);
    let (_disk, store) = store_with_checkpoint(40, bytes.clone());
    let mut sender = SnapshotStreams::new(config(), 100);
    let mut receiver = SnapshotStreams::new(config(), 100);
    sender
        .start(GROUP, snapshot_message(40), || Ok(History::None), 0)
        .unwrap();
    assert!(sender.sending(GROUP, FOLLOWER));
    let mut now = 0;
    let mut whole = None;
    let mut reports = Vec::new();
    for _ in 0..20 {
        now += 10;
        let pumped = sender.pump(&store, now, |_| true).unwrap();
        assert!(
            pumped.frames.len() <= 3,
            "at most a window of chunks ahead of the acknowledgements"
        );
        let (acks, message) = deliver(&mut receiver, pumped.frames, now);
        whole = whole.or(message);
        reports.extend(acknowledge(&mut sender, acks, now));
        if !sender.sending(GROUP, FOLLOWER) {
            break;
        }
    }
    let message = whole.expect("the whole snapshot arrived");
    assert_eq!(message.get_msg_type(), MessageType::MsgSnapshot);
    assert_eq!(message.get_snapshot().get_metadata().index, 40);
    assert_eq!(&message.get_snapshot().data[..], &bytes[..]);
    assert_eq!(reports, vec![SnapshotStatus::Finish]);
    assert!(!sender.sending(GROUP, FOLLOWER));
}

#[test]
fn a_cut_stream_resumes_where_the_receiver_stopped() {
    let bytes = data(95);
    let (_disk, store) = store_with_checkpoint(40, bytes.clone());
    let mut sender = SnapshotStreams::new(config(), 100);
    let mut receiver = SnapshotStreams::new(config(), 100);
    sender
        .start(GROUP, snapshot_message(40), || Ok(History::None), 0)
        .unwrap();
    // The first window arrives and is acknowledged: 30 bytes held.
    let pumped = sender.pump(&store, 0, |_| true).unwrap();
    let (acks, _) = deliver(&mut receiver, pumped.frames, 0);
    acknowledge(&mut sender, acks, 0);
    // The connection drops: the next window is lost on the way.
    let lost = sender.pump(&store, 10, |_| true).unwrap();
    assert_eq!(chunk_offsets(&lost.frames), vec![30, 40, 50]);
    assert!(
        sender.pump(&store, 50, |_| true).unwrap().frames.is_empty(),
        "nothing more before the window is acknowledged"
    );
    // Quiet for the resend interval: it resends from byte 30, not from the start.
    let resent = sender.pump(&store, 120, |_| true).unwrap();
    assert_eq!(chunk_offsets(&resent.frames), vec![30, 40, 50]);
    let mut now = 120;
    let (mut acks, mut whole) = deliver(&mut receiver, resent.frames, now);
    while whole.is_none() {
        acknowledge(&mut sender, acks, now);
        now += 10;
        let pumped = sender.pump(&store, now, |_| true).unwrap();
        assert!(chunk_offsets(&pumped.frames).iter().all(|o| *o >= 60));
        (acks, whole) = deliver(&mut receiver, pumped.frames, now);
    }
    assert_eq!(&whole.unwrap().get_snapshot().data[..], &bytes[..]);
    assert_eq!(
        acknowledge(&mut sender, acks, now),
        vec![SnapshotStatus::Finish]
    );
}

#[test]
fn a_lost_done_is_answered_again_and_a_restarted_receiver_starts_over() {
    let bytes = data(25);
    let (_disk, store) = store_with_checkpoint(40, bytes);
    let mut sender = SnapshotStreams::new(config(), 100);
    let mut receiver = SnapshotStreams::new(config(), 100);
    sender
        .start(GROUP, snapshot_message(40), || Ok(History::None), 0)
        .unwrap();
    let pumped = sender.pump(&store, 0, |_| true).unwrap();
    let (_lost_acks, whole) = deliver(&mut receiver, pumped.frames, 0);
    assert!(whole.is_some());
    // Every acknowledgement was lost: the sender resends, the receiver says done again.
    let resent = sender.pump(&store, 200, |_| true).unwrap();
    let (acks, again) = deliver(&mut receiver, resent.frames, 200);
    assert!(again.is_none(), "the snapshot is handed to the group once");
    assert_eq!(
        acknowledge(&mut sender, acks, 200),
        vec![SnapshotStatus::Finish]
    );

    // raft-rs sends the same snapshot again (the follower could not install it the first
    // time): a new stream, which the receiver takes whole again rather than answering "done".
    sender
        .start(GROUP, snapshot_message(40), || Ok(History::None), 250)
        .unwrap();
    let again = sender.pump(&store, 250, |_| true).unwrap();
    let (acks, whole) = deliver(&mut receiver, again.frames, 250);
    assert!(
        whole.is_some(),
        "a new stream of the same index is delivered again"
    );
    assert_eq!(
        acknowledge(&mut sender, acks, 250),
        vec![SnapshotStatus::Finish]
    );

    // A receiver that lost its partial stream answers "nothing held"; the sender restarts.
    let bytes = data(95);
    write_checkpoint(&store, 60, bytes.clone());
    sender
        .start(GROUP, snapshot_message(60), || Ok(History::None), 300)
        .unwrap();
    let first = sender.pump(&store, 300, |_| true).unwrap();
    let mut restarted = SnapshotStreams::new(config(), 100);
    let (acks, _) = deliver(&mut restarted, first.frames[1..].to_vec(), 300);
    assert!(acks
        .iter()
        .all(|a| matches!(a, PeerFrame::SnapshotAck { received: 0, .. })));
    acknowledge(&mut sender, acks, 300);
    let mut now = 300;
    loop {
        now += 10;
        let pumped = sender.pump(&store, now, |_| true).unwrap();
        let (acks, whole) = deliver(&mut restarted, pumped.frames, now);
        let reports = acknowledge(&mut sender, acks, now);
        if let Some(message) = whole {
            assert_eq!(&message.get_snapshot().data[..], &bytes[..]);
            assert_eq!(reports, vec![SnapshotStatus::Finish]);
            break;
        }
        assert!(now < 2_000, "the restarted receiver never got the snapshot");
    }
}

#[test]
fn a_replaced_checkpoint_or_a_stalled_stream_is_reported_failed() {
    let (_disk, store) = store_with_checkpoint(40, data(95));
    let mut sender = SnapshotStreams::new(config(), 100);
    sender
        .start(GROUP, snapshot_message(40), || Ok(History::None), 0)
        .unwrap();
    sender.pump(&store, 0, |_| true).unwrap();
    write_checkpoint(&store, 80, data(50));
    let pumped = sender.pump(&store, 150, |_| true).unwrap();
    assert_eq!(
        pumped.reports,
        vec![(GROUP, FOLLOWER, SnapshotStatus::Failure)]
    );
    assert!(!sender.sending(GROUP, FOLLOWER));

    sender
        .start(GROUP, snapshot_message(80), || Ok(History::None), 200)
        .unwrap();
    for now in (200..1_200).step_by(100) {
        assert!(sender
            .pump(&store, now, |_| true)
            .unwrap()
            .reports
            .is_empty());
    }
    let pumped = sender.pump(&store, 1_200, |_| true).unwrap();
    assert_eq!(
        pumped.reports,
        vec![(GROUP, FOLLOWER, SnapshotStatus::Failure)],
        "no acknowledgement for the give-up time"
    );

    sender
        .start(GROUP, snapshot_message(80), || Ok(History::None), 2_000)
        .unwrap();
    let pumped = sender.pump(&store, 2_000, |_| false).unwrap();
    assert!(pumped.frames.is_empty() && pumped.reports.is_empty());
    assert!(
        !sender.sending(GROUP, FOLLOWER),
        "a node that stopped leading stops streaming"
    );
}

#[test]
fn a_receiver_refuses_oversized_snapshots_and_takes_chunks_only_in_order() {
    let mut receiver = SnapshotStreams::new(config(), 100);
    let header = snapshot_message(40).write_to_bytes().unwrap();
    let refused = receiver.on_chunk(
        LEADER,
        GROUP,
        7,
        header.clone(),
        40,
        0,
        5_000,
        vec![1; 10],
        0,
    );
    assert!(refused.ack.is_none() && refused.message.is_none());
    assert_eq!(receiver.receiving_bytes(), 0);

    let first = receiver.on_chunk(LEADER, GROUP, 7, header.clone(), 40, 0, 30, vec![1; 10], 0);
    assert!(matches!(
        first.ack,
        Some(PeerFrame::SnapshotAck {
            received: 10,
            done: false,
            ..
        })
    ));
    let gap = receiver.on_chunk(LEADER, GROUP, 7, header.clone(), 40, 20, 30, vec![3; 10], 1);
    assert!(
        matches!(gap.ack, Some(PeerFrame::SnapshotAck { received: 10, .. })),
        "a chunk after a gap is not taken"
    );
    let duplicate = receiver.on_chunk(LEADER, GROUP, 7, header.clone(), 40, 0, 30, vec![1; 10], 2);
    assert!(matches!(
        duplicate.ack,
        Some(PeerFrame::SnapshotAck { received: 10, .. })
    ));
    assert_eq!(receiver.receiving_bytes(), 10);
    receiver.expire(5_010);
    assert_eq!(
        receiver.receiving_bytes(),
        0,
        "an idle partial snapshot is dropped"
    );
    let (_, rejected) = {
        let r = receiver.on_chunk(
            LEADER,
            GROUP,
            8,
            b"not protobuf".to_vec(),
            40,
            0,
            3,
            vec![1; 3],
            6,
        );
        (r.ack, r.message)
    };
    assert!(
        rejected.is_none(),
        "a header that does not parse is dropped"
    );
}

#[test]
fn a_silent_receiver_gets_fewer_and_fewer_copies_and_progress_resets_the_wait() {
    let (_disk, store) = store_with_checkpoint(40, data(95));
    let mut sender = SnapshotStreams::new(config(), 100);
    let mut receiver = SnapshotStreams::new(config(), 100);
    sender
        .start(GROUP, snapshot_message(40), || Ok(History::None), 0)
        .unwrap();
    assert_eq!(sender.pump(&store, 0, |_| true).unwrap().frames.len(), 3);
    // Nothing is acknowledged: resends after 100 ms, then 200, then 400 more.
    let resent_at: Vec<u64> = (1..=69)
        .map(|step| step * 10)
        .filter(|now| {
            !sender
                .pump(&store, *now, |_| true)
                .unwrap()
                .frames
                .is_empty()
        })
        .collect();
    assert_eq!(resent_at, vec![100, 300]);
    let resent = sender.pump(&store, 700, |_| true).unwrap();
    assert_eq!(chunk_offsets(&resent.frames), vec![0, 10, 20]);
    // Progress: the next window goes at once, and the wait is back to 100 ms.
    let (acks, _) = deliver(&mut receiver, resent.frames, 700);
    acknowledge(&mut sender, acks, 700);
    let next = sender.pump(&store, 700, |_| true).unwrap();
    assert_eq!(chunk_offsets(&next.frames), vec![30, 40, 50]);
    assert!(sender
        .pump(&store, 790, |_| true)
        .unwrap()
        .frames
        .is_empty());
    assert_eq!(
        chunk_offsets(&sender.pump(&store, 800, |_| true).unwrap().frames),
        vec![30, 40, 50]
    );
}

/// The history is read once per checkpoint: a second follower's stream, or a stream started
/// again after one was given up, shares it; a new checkpoint reads again, and an export no
/// stream used for `give_up_ms` is dropped.
#[test]
fn streams_of_one_checkpoint_share_one_history_read() {
    let (_disk, store) = store_with_checkpoint(40, data(25));
    let mut streams = SnapshotStreams::new(config(), 1);
    let reads = std::cell::Cell::new(0);
    let history = || {
        reads.set(reads.get() + 1);
        Ok(History::Ready(Arc::new(data(15))))
    };
    streams
        .start(GROUP, snapshot_message(40), history, 0)
        .unwrap();
    let mut to_third = snapshot_message(40);
    to_third.to = 3;
    streams.start(GROUP, to_third, history, 10).unwrap();
    assert_eq!(reads.get(), 1, "a second follower shares the read");
    // Both streams carry checkpoint and history: 16 bytes of framing, 25, then 15.
    let pumped = streams.pump(&store, 20, |_| true).unwrap();
    for follower in [FOLLOWER, 3] {
        let total = pumped.frames.iter().find_map(|(to, frame)| match frame {
            PeerFrame::SnapshotChunk { total, .. } if *to == follower => Some(*total),
            _ => None,
        });
        assert_eq!(total, Some(16 + 25 + 15), "follower {follower}");
    }
    // Given up (no acknowledgement for give_up_ms), then asked for again: still one read.
    let pumped = streams.pump(&store, 1_020, |_| true).unwrap();
    assert_eq!(pumped.reports.len(), 2, "both streams given up");
    streams
        .start(GROUP, snapshot_message(40), history, 1_030)
        .unwrap();
    assert_eq!(reads.get(), 1, "started again: the same read");
    // A later checkpoint is read afresh.
    write_checkpoint(&store, 80, data(25));
    streams
        .start(GROUP, snapshot_message(80), history, 1_040)
        .unwrap();
    assert_eq!(reads.get(), 2);
    // Unused for give_up_ms once its streams are gone: dropped, so the next start reads.
    let _ = streams.pump(&store, 3_000, |_| false).unwrap();
    let _ = streams.pump(&store, 4_100, |_| false).unwrap();
    streams
        .start(GROUP, snapshot_message(80), history, 4_200)
        .unwrap();
    assert_eq!(reads.get(), 3, "the dropped export is read again");
}

//! Entry points for the fuzz targets (`fuzz/fuzz_targets/peer_frames.rs`): every parser of the
//! peer port, fed bytes from outside as a connection's reader feeds them. Not an API: it exists
//! so the fuzzer drives the transport's own private code rather than a copy of it.

use chacha20poly1305::Key;
use protobuf::Message as _;
use raft::prelude::Message;

use super::crypto::{Hello, Opener, Sealer, HELLO_LEN};
use super::frame::{self, LEN_PREFIX};
use crate::wire::PeerFrame;

/// A frame bound small enough that the fuzzer reaches it (production uses megabytes).
const FUZZ_FRAME_MAX: usize = 4_096;

/// Feeds `data` to every parser of the peer port: as what anyone who reaches the port can send
/// (a hello, then frames under a key they do not hold), and as the plaintext of a frame an
/// authenticated peer sealed (decoded into frames, and the Raft messages inside them).
pub fn peer_bytes(data: &[u8]) {
    unauthenticated(data);
    authenticated(data);
}

fn unauthenticated(data: &[u8]) {
    if let Some(hello) = data
        .get(..HELLO_LEN)
        .and_then(|bytes| <&[u8; HELLO_LEN]>::try_from(bytes).ok())
    {
        let _ = Hello::decode(hello);
    }
    let mut body = Vec::new();
    let read = block_on(frame::read_frame(&mut &data[..], FUZZ_FRAME_MAX, &mut body));
    if let Ok(true) = read {
        assert!(
            body.len() <= FUZZ_FRAME_MAX,
            "a frame over the bound was read"
        );
        let _ = Opener::new(&fuzz_key()).open(&mut body);
    }
}

fn authenticated(plain: &[u8]) {
    let key = fuzz_key();
    let mut wire = frame::start_frame(plain.len() + 32);
    wire.extend_from_slice(plain);
    Sealer::new(&key)
        .seal(&mut wire)
        .expect("a small frame seals");
    let opened = Opener::new(&key)
        .open(&mut wire[LEN_PREFIX..])
        .expect("a frame sealed under the session key opens");
    assert_eq!(
        opened, plain,
        "sealing and opening gives the plaintext back"
    );
    let Ok(frames) = frame::decode_batch::<PeerFrame>(plain) else {
        return;
    };
    for frame in frames {
        match frame {
            PeerFrame::Raft { message, .. } => {
                let _ = Message::parse_from_bytes(&message);
            }
            PeerFrame::SnapshotChunk { header, .. } => {
                let _ = Message::parse_from_bytes(&header);
            }
            _ => {}
        }
    }
}

fn fuzz_key() -> Key {
    Key::from([7u8; 32])
}

/// Runs a future that never waits (reading from a slice) to completion on this thread.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

/// Plaintexts of typical frames (a Raft append with an entry, a snapshot chunk, clock pings,
/// tombstones), the seeds of the fuzz corpus (`fuzz/corpus/peer_frames/`).
pub fn seed_plaintexts() -> Vec<(&'static str, Vec<u8>)> {
    let mut append = Message::default();
    append.set_msg_type(raft::prelude::MessageType::MsgAppend);
    append.to = 2;
    append.from = 1;
    append.term = 3;
    append.index = 7;
    append.log_term = 3;
    append.commit = 6;
    let entry = raft::prelude::Entry {
        index: 8,
        term: 3,
        data: b"a command".to_vec().into(),
        ..Default::default()
    };
    append.entries = vec![entry].into();
    let append = append.write_to_bytes().expect("a message encodes");
    let mut snapshot = Message::default();
    snapshot.set_msg_type(raft::prelude::MessageType::MsgSnapshot);
    snapshot.to = 3;
    let snapshot = snapshot.write_to_bytes().expect("a message encodes");
    let batch = |frames: Vec<PeerFrame>| {
        bincode::serde::encode_to_vec(frames, bincode::config::standard()).expect("frames encode")
    };
    vec![
        (
            "raft_append",
            batch(vec![PeerFrame::Raft {
                shard: 0,
                message: append,
            }]),
        ),
        (
            "snapshot_chunk",
            batch(vec![PeerFrame::SnapshotChunk {
                shard: 1,
                stream: 9,
                header: snapshot,
                index: 40,
                offset: 0,
                total: 8,
                data: vec![1, 2, 3, 4, 5, 6, 7, 8],
            }]),
        ),
        (
            "clock_and_tombstone",
            batch(vec![
                PeerFrame::ClockPing { mono_ms: 1_000 },
                PeerFrame::ClockPong {
                    echo_mono_ms: 1_000,
                    wall_ms: 1_764_590_000_000,
                },
                PeerFrame::Tombstone {
                    shard: 2,
                    conf_index: 5,
                    conf_term: 1,
                },
                PeerFrame::ReplicaQuery { shard: 2 },
            ]),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The corpus in the repository holds these seeds as they are encoded today (regenerate it
    /// with `TUMA_WRITE_FUZZ_CORPUS=1` after a change to the frames), and every file there
    /// goes through the parsers without a panic.
    #[test]
    fn the_fuzz_corpus_holds_todays_frames_and_parses() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/peer_frames");
        for (name, plain) in seed_plaintexts() {
            let path = dir.join(name);
            if std::env::var_os("TUMA_WRITE_FUZZ_CORPUS").is_some() {
                std::fs::write(&path, &plain).expect("corpus written");
            }
            let stored = std::fs::read(&path).expect("the seed is in the corpus");
            assert_eq!(
                stored, plain,
                "{name}: regenerate with TUMA_WRITE_FUZZ_CORPUS=1"
            );
            let frames = frame::decode_batch::<PeerFrame>(&stored).expect("a seed decodes");
            assert!(!frames.is_empty());
        }
        for file in std::fs::read_dir(&dir).expect("the corpus directory") {
            peer_bytes(&std::fs::read(file.expect("an entry").path()).expect("readable"));
        }
    }
}

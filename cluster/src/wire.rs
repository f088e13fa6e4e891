//! Frames between nodes: Raft messages, the money protocol between shard leaders, and client
//! requests forwarded to a shard's leader.

use serde::{Deserialize, Serialize};
use tuma_actors::protocol::Envelope;

use crate::engine::{ClientReply, ClientRequest};
use crate::membership::MetaCommand;

/// One message on the peer transport.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PeerFrame {
    /// A raft-rs message (protobuf bytes) for one shard's group.
    Raft {
        shard: u32,
        message: Vec<u8>,
    },
    /// A cross-shard protocol message for the leader of `envelope.to`.
    Protocol(Envelope),
    /// The same, passed on once by a replica that does not lead (never passed on again).
    ProtocolRelayed(Envelope),
    /// A client request for a shard the receiver leads.
    Forward {
        id: u64,
        request: ClientRequest,
    },
    ForwardReply {
        id: u64,
        reply: ClientReply,
    },
    /// A cluster change for the meta group's leader, sent without waiting for an answer (a
    /// shard leader reporting a finished move; it reports again if this one is lost).
    MetaProposal(MetaCommand),
    /// From a shard's leader to a node its applied configuration — set by the entry at
    /// `conf_index` of term `conf_term` (0 if the leader no longer knows it) — no longer holds.
    Tombstone {
        shard: u32,
        conf_index: u64,
        conf_term: u64,
    },
    /// From a replica that has not heard from its group's leader for long: any replica whose
    /// applied configuration no longer has the sender answers with a tombstone.
    ReplicaQuery {
        shard: u32,
    },
    /// A piece of a Raft snapshot, streamed from the leader's stored checkpoint: `header` is
    /// the raft-rs `MsgSnapshot` (protobuf) without its data; `data` holds bytes
    /// `offset..offset+data.len()` of the `total` bytes of the checkpoint at `index`.
    SnapshotChunk {
        shard: u32,
        /// The sender's id for this stream (a fresh snapshot of the same index is a new one).
        stream: u64,
        header: Vec<u8>,
        index: u64,
        offset: u64,
        total: u64,
        data: Vec<u8>,
    },
    /// The receiver holds the first `received` bytes of the snapshot at `index` (the sender
    /// resumes from there); `done` once it handed the whole snapshot to its group.
    SnapshotAck {
        shard: u32,
        stream: u64,
        index: u64,
        received: u64,
        done: bool,
    },
    /// Clock offset measurement: the sender's monotonic clock when it sent the ping…
    ClockPing {
        mono_ms: u64,
    },
    /// …echoed with the answerer's wall clock.
    ClockPong {
        echo_mono_ms: u64,
        wall_ms: u64,
    },
}

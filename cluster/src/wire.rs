//! Frames between nodes: Raft messages, the money protocol between shard leaders, and client
//! requests forwarded to a shard's leader.

use serde::{Deserialize, Serialize};
use tuma_actors::protocol::Envelope;

use crate::engine::{ClientReply, ClientRequest};

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
    /// A client request for a shard the receiver leads.
    Forward {
        id: u64,
        request: ClientRequest,
    },
    ForwardReply {
        id: u64,
        reply: ClientReply,
    },
}

//! [`NodeHandle`]: how the rest of the node (HTTP, the transport's receive task) talks to the
//! engine thread.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use tuma_actors::ShardMap;

use super::request::{ClientReply, ClientRequest, Input, Waiter};
use super::status::NodeStatus;
use crate::transport::NodeId;
use crate::wire::PeerFrame;

/// The handle the rest of the node uses to talk to the engine thread.
#[derive(Clone)]
pub struct NodeHandle {
    pub(super) inputs: SyncSender<Input>,
    pub(super) map: ShardMap,
    pub(super) node_id: NodeId,
}

impl NodeHandle {
    /// Hands a request to the engine without waiting; the receiver gets the answer. `Err` is
    /// the answer when the engine cannot take it (queue full, stopped).
    pub fn submit(
        &self,
        request: ClientRequest,
    ) -> Result<tokio::sync::oneshot::Receiver<ClientReply>, ClientReply> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.inputs.try_send(Input::Client {
            request,
            waiter: Waiter::Local(tx),
        }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(ClientReply::Unavailable("node overloaded".into())),
            Err(TrySendError::Disconnected(_)) => {
                Err(ClientReply::Unavailable("node stopping".into()))
            }
        }
    }

    /// Asks the engine; `Unavailable` if its queue is full or it stopped.
    pub async fn request(&self, request: ClientRequest, timeout: Duration) -> ClientReply {
        let rx = match self.submit(request) {
            Ok(rx) => rx,
            Err(reply) => return reply,
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => ClientReply::Ambiguous("the engine dropped the request".into()),
            Err(_) => ClientReply::Ambiguous("no answer in time".into()),
        }
    }

    /// The node's status.
    pub async fn status(&self) -> Option<NodeStatus> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inputs.try_send(Input::Status { reply: tx }).ok()?;
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .ok()?
            .ok()
    }

    /// Hands every leadership on this node to other nodes (before a stop); answers how many
    /// it still leads when done or when `within` is up.
    pub async fn leave(&self, within: Duration) -> Option<usize> {
        let rx = self.begin_leave(within)?;
        tokio::time::timeout(within + Duration::from_secs(1), rx)
            .await
            .ok()?
            .ok()
    }

    /// Starts handing leaderships away without waiting; the receiver gets how many this node
    /// still leads once done or out of time.
    pub fn begin_leave(&self, within: Duration) -> Option<tokio::sync::oneshot::Receiver<usize>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inputs
            .try_send(Input::Leave {
                within_ms: within.as_millis() as u64,
                reply: tx,
            })
            .ok()?;
        Some(rx)
    }

    /// Feeds a peer frame in (from the transport's receive task).
    pub fn peer(&self, from: NodeId, frame: PeerFrame) -> bool {
        self.inputs.try_send(Input::Peer { from, frame }).is_ok()
    }

    /// Asks the engine to stop after flushing.
    pub fn shutdown(&self) {
        let _ = self.inputs.send(Input::Shutdown);
    }

    pub fn shard_map(&self) -> ShardMap {
        self.map
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }
}

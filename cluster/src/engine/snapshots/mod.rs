//! Snapshots that always arrive: a leader streams a follower's snapshot in chunks read from its
//! stored checkpoint (never from a copy in memory), with a window of chunks in flight; the
//! follower acknowledges how much it holds, so a stream cut by a dropped connection resumes
//! where it stopped. raft-rs hears the outcome through `report_snapshot`: `Finish` once the
//! follower handed the whole snapshot to its group, `Failure` when the stream made no progress
//! for too long (raft-rs then sends a fresh one) or its checkpoint was replaced.
//!
//! raft-rs builds `MsgSnapshot` from [`ShardLog`](crate::storage::ShardLog)'s checkpoint
//! metadata, without data; [`SnapshotStreams::start`] takes that message instead of the
//! transport (a snapshot message never travels whole, so it has no size limit below the disk).
//! Both halves are plain state machines over the store and the caller's clock.

pub mod payload;

use std::collections::BTreeMap;
use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::Message;
use raft::SnapshotStatus;

use crate::storage::{LogStore, StorageError};
use crate::transport::NodeId;
use crate::wire::PeerFrame;

/// Timing and size limits of snapshot streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Bytes per chunk frame.
    pub chunk_bytes: usize,
    /// Chunks sent ahead of the receiver's acknowledgement.
    pub window_chunks: usize,
    /// With no acknowledgement for this long, resend from what the receiver holds.
    pub resend_ms: u64,
    /// With no progress for this long, give the stream up (raft-rs sends a fresh snapshot).
    pub give_up_ms: u64,
    /// Largest snapshot a receiver accepts; a partial one idle this long is dropped.
    pub receive_bytes_max: u64,
    pub receive_idle_ms: u64,
}

impl Default for StreamConfig {
    fn default() -> StreamConfig {
        StreamConfig {
            chunk_bytes: 1 << 20,
            window_chunks: 8,
            resend_ms: 2_000,
            give_up_ms: 60_000,
            receive_bytes_max: 64 << 30,
            receive_idle_ms: 300_000,
        }
    }
}

/// A snapshot being sent to one follower.
struct Outgoing {
    /// This stream's id (unique per sender and run).
    id: u64,
    /// The `MsgSnapshot` raft-rs made, without data (protobuf).
    header: Vec<u8>,
    index: u64,
    /// The shard's history rows below the checkpoint's sequence, encoded, sent after the
    /// checkpoint (see `payload.rs`).
    history: History,
    /// Bytes of the stream's data, once the first read told.
    total: Option<u64>,
    /// Next byte to send.
    next: u64,
    /// Bytes the receiver said it holds.
    acked: u64,
    /// Last acknowledgement that moved `acked` (or the start).
    progress_at: u64,
    /// Last progress or rewind: resend from `acked` when quiet for `resend_after`.
    quiet_since: u64,
    /// The wait before the next resend: `resend_ms`, doubled after each resend that brought
    /// no progress (a slow receiver is not buried under copies of what it is still reading).
    resend_after: u64,
}

/// The history a stream sends after its checkpoint.
#[derive(Clone)]
pub enum History {
    /// None: the meta group's snapshots.
    None,
    /// Encoded rows, ready to send.
    Ready(Arc<Vec<u8>>),
    /// Being read on another thread (reading millions of rows must not stall the engine): the
    /// stream waits, sending nothing, until the slot is filled.
    Pending(PendingHistory),
}

/// Where a background export leaves its encoded rows (or why it failed).
pub type PendingHistory = Arc<std::sync::Mutex<Option<Result<Arc<Vec<u8>>, String>>>>;

/// The history read for a group's checkpoint, shared by every stream of that checkpoint (to
/// several followers, or to one again after a stream was given up) so that millions of rows
/// are read and held once; dropped once no stream of the group has used it for `give_up_ms`.
struct Export {
    index: u64,
    history: History,
    used_at: u64,
}

/// A snapshot being received from a leader.
struct Incoming {
    from: NodeId,
    stream: u64,
    index: u64,
    total: u64,
    header: Vec<u8>,
    data: Vec<u8>,
    touched_at: u64,
}

/// What a pump of the outgoing streams produced.
#[derive(Default)]
pub struct Pumped {
    pub frames: Vec<(NodeId, PeerFrame)>,
    /// Outcomes to report to raft-rs: (group, follower, status).
    pub reports: Vec<(u32, NodeId, SnapshotStatus)>,
}

/// What a received chunk produced.
pub struct Received {
    /// The acknowledgement to send back (none for a chunk that was refused outright).
    pub ack: Option<PeerFrame>,
    /// The whole `MsgSnapshot`, data included, once the last chunk arrived.
    pub message: Option<Message>,
}

/// Every snapshot stream of one node, both directions.
#[derive(Default)]
pub struct SnapshotStreams {
    config: StreamConfig,
    outgoing: BTreeMap<(u32, NodeId), Outgoing>,
    incoming: BTreeMap<u32, Incoming>,
    /// The last stream each group received whole: (sender, stream). A chunk of it arriving
    /// again (its "done" was lost) is answered "done" again; a new stream is taken afresh.
    completed: BTreeMap<u32, (NodeId, u64)>,
    /// The history read for each group's latest streamed checkpoint.
    exports: BTreeMap<u32, Export>,
    /// The id of the next stream this node starts.
    next_stream: u64,
}

impl SnapshotStreams {
    /// `first_stream` should differ between runs of a node (a restarted leader's new streams
    /// must not look like its old ones): the engine draws it from its seed.
    pub fn new(config: StreamConfig, first_stream: u64) -> SnapshotStreams {
        SnapshotStreams {
            config,
            next_stream: first_stream,
            ..SnapshotStreams::default()
        }
    }

    /// Takes a `MsgSnapshot` raft-rs wants sent (its data is empty: it comes from the stored
    /// checkpoint). A stream of the same checkpoint to the same follower goes on from where
    /// it is; another replaces it.
    pub fn start(
        &mut self,
        group: u32,
        mut message: Message,
        history: impl FnOnce() -> Result<History, StorageError>,
        now: u64,
    ) -> Result<(), StorageError> {
        let to = message.to;
        let index = message.get_snapshot().get_metadata().index;
        if self
            .outgoing
            .get(&(group, to))
            .is_some_and(|s| s.index == index)
        {
            return Ok(());
        }
        let history = match self.exports.get_mut(&group) {
            Some(export) if export.index == index => {
                export.used_at = now;
                export.history.clone()
            }
            _ => {
                let history = history()?;
                if !matches!(history, History::None) {
                    let export = Export {
                        index,
                        history: history.clone(),
                        used_at: now,
                    };
                    self.exports.insert(group, export);
                }
                history
            }
        };
        message.mut_snapshot().clear_data();
        let header = message
            .write_to_bytes()
            .expect("encoding a raft message into memory cannot fail");
        let id = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(1);
        tracing::info!(group, to, index, stream = id, "streaming a snapshot");
        metrics::counter!("tuma_snapshots_started_total").increment(1);
        self.outgoing.insert(
            (group, to),
            Outgoing {
                id,
                header,
                index,
                history,
                total: None,
                next: 0,
                acked: 0,
                progress_at: now,
                quiet_since: now,
                resend_after: self.config.resend_ms,
            },
        );
        Ok(())
    }

    /// True while a snapshot of `group` is streaming to `to`.
    pub fn sending(&self, group: u32, to: NodeId) -> bool {
        self.outgoing.contains_key(&(group, to))
    }

    /// Sends what the windows allow, resends what went quiet, gives up streams that stalled
    /// or whose group this node no longer leads (`leads`).
    pub fn pump(
        &mut self,
        store: &dyn LogStore,
        now: u64,
        leads: impl Fn(u32) -> bool,
    ) -> Result<Pumped, StorageError> {
        let mut pumped = Pumped::default();
        for &(group, _) in self.outgoing.keys() {
            if let Some(export) = self.exports.get_mut(&group) {
                export.used_at = now;
            }
        }
        let config = &self.config;
        let mut finished = Vec::new();
        for (&(group, to), stream) in self.outgoing.iter_mut() {
            if !leads(group) {
                finished.push((group, to, None));
                continue;
            }
            if let History::Pending(slot) = &stream.history {
                // Cloned, not taken: other streams of the checkpoint share the slot.
                let filled = slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
                match filled {
                    None => {
                        // Still reading: nothing to send, and no stall to count.
                        stream.progress_at = now;
                        stream.quiet_since = now;
                        continue;
                    }
                    Some(Ok(rows)) => stream.history = History::Ready(rows),
                    Some(Err(error)) => {
                        tracing::error!(group, to, %error, "reading the history a snapshot needs failed");
                        finished.push((group, to, Some(SnapshotStatus::Failure)));
                        continue;
                    }
                }
            }
            if now >= stream.progress_at.saturating_add(config.give_up_ms) {
                tracing::warn!(
                    group,
                    to,
                    index = stream.index,
                    "a snapshot stream made no progress; giving it up"
                );
                finished.push((group, to, Some(SnapshotStatus::Failure)));
                continue;
            }
            if now >= stream.quiet_since.saturating_add(stream.resend_after) {
                tracing::debug!(
                    group,
                    to,
                    acked = stream.acked,
                    next = stream.next,
                    "snapshot stream quiet; resending from what the follower holds"
                );
                stream.next = stream.acked;
                stream.quiet_since = now;
                stream.resend_after = stream
                    .resend_after
                    .saturating_mul(2)
                    .min(config.give_up_ms / 2)
                    .max(config.resend_ms);
                metrics::counter!("tuma_snapshot_resumes_total").increment(1);
            }
            let window_end = stream
                .acked
                .saturating_add((config.chunk_bytes * config.window_chunks) as u64);
            while stream.next < window_end && stream.total.is_none_or(|t| stream.next < t) {
                let history = match &stream.history {
                    History::Ready(rows) => Some(rows.as_slice()),
                    _ => None,
                };
                let Some(slice) = payload::read(
                    store,
                    group,
                    stream.index,
                    history,
                    stream.next,
                    config.chunk_bytes,
                )?
                else {
                    tracing::info!(
                        group,
                        to,
                        index = stream.index,
                        "the checkpoint being streamed was replaced"
                    );
                    finished.push((group, to, Some(SnapshotStatus::Failure)));
                    break;
                };
                stream.total = Some(slice.total);
                let offset = stream.next;
                stream.next += slice.bytes.len() as u64;
                metrics::counter!("tuma_snapshot_bytes_sent_total")
                    .increment(slice.bytes.len() as u64);
                pumped.frames.push((
                    to,
                    PeerFrame::SnapshotChunk {
                        shard: group,
                        stream: stream.id,
                        header: stream.header.clone(),
                        index: stream.index,
                        offset,
                        total: slice.total,
                        data: slice.bytes,
                    },
                ));
                if slice.total == 0 {
                    break; // an empty checkpoint travels as one empty chunk
                }
            }
        }
        for (group, to, report) in finished {
            self.outgoing.remove(&(group, to));
            if let Some(status) = report {
                metrics::counter!("tuma_snapshots_failed_total").increment(1);
                pumped.reports.push((group, to, status));
            }
        }
        let keep_ms = self.config.give_up_ms;
        self.exports
            .retain(|_, export| now < export.used_at.saturating_add(keep_ms));
        Ok(pumped)
    }

    /// A follower's acknowledgement: the stream moves on, or is done (reported `Finish`).
    #[allow(clippy::too_many_arguments)]
    pub fn on_ack(
        &mut self,
        from: NodeId,
        group: u32,
        stream_id: u64,
        index: u64,
        received: u64,
        done: bool,
        now: u64,
    ) -> Option<(u32, NodeId, SnapshotStatus)> {
        let stream = self
            .outgoing
            .get_mut(&(group, from))
            .filter(|s| s.id == stream_id && s.index == index)?;
        if done {
            self.outgoing.remove(&(group, from));
            tracing::info!(group, to = from, index, "snapshot delivered");
            metrics::counter!("tuma_snapshots_delivered_total").increment(1);
            return Some((group, from, SnapshotStatus::Finish));
        }
        // Only progress counts: acknowledgements of chunks that arrived out of order (after a
        // lost one) repeat what is held, and the stream resends from there once it is quiet.
        let received = received.min(stream.total.unwrap_or(u64::MAX));
        tracing::trace!(group, from, received, acked = stream.acked, "snapshot ack");
        if received > stream.acked {
            stream.acked = received;
            stream.next = stream.next.max(received);
            stream.progress_at = now;
            stream.quiet_since = now;
            stream.resend_after = self.config.resend_ms;
        } else if received < stream.acked {
            // The receiver lost what it held (it restarted): start again from what it has.
            stream.acked = received;
            stream.next = received;
            stream.quiet_since = now;
        }
        None
    }

    /// A chunk from `from`. Chunks are taken in order; anything else is answered with what is
    /// held, so the sender resumes there.
    #[allow(clippy::too_many_arguments)]
    pub fn on_chunk(
        &mut self,
        from: NodeId,
        group: u32,
        stream_id: u64,
        header: Vec<u8>,
        index: u64,
        offset: u64,
        total: u64,
        data: Vec<u8>,
        now: u64,
    ) -> Received {
        let ack = |received, done| PeerFrame::SnapshotAck {
            shard: group,
            stream: stream_id,
            index,
            received,
            done,
        };
        if total > self.config.receive_bytes_max {
            tracing::warn!(
                group,
                from,
                total,
                "refused a snapshot larger than the limit"
            );
            return Received {
                ack: None,
                message: None,
            };
        }
        if self.completed.get(&group) == Some(&(from, stream_id)) {
            // Whole already: its "done" was lost on the way.
            return Received {
                ack: Some(ack(total, true)),
                message: None,
            };
        }
        let same = self.incoming.get(&group).is_some_and(|s| {
            s.from == from && s.stream == stream_id && s.index == index && s.total == total
        });
        if !same && offset == 0 {
            self.incoming.insert(
                group,
                Incoming {
                    from,
                    stream: stream_id,
                    index,
                    total,
                    header,
                    data: Vec::new(),
                    touched_at: now,
                },
            );
        } else if !same {
            // A stream this node does not hold (it restarted, or dropped it): from the start.
            tracing::debug!(
                group,
                from,
                stream = stream_id,
                offset,
                "snapshot chunk of a stream not held"
            );
            return Received {
                ack: Some(ack(0, false)),
                message: None,
            };
        }
        let stream = self.incoming.get_mut(&group).expect("present");
        stream.touched_at = now;
        let held = stream.data.len() as u64;
        tracing::trace!(group, from, offset, held, total, "snapshot chunk");
        if offset == held && held + data.len() as u64 <= total {
            stream.data.extend_from_slice(&data);
            metrics::counter!("tuma_snapshot_bytes_received_total").increment(data.len() as u64);
        }
        let held = stream.data.len() as u64;
        if held < total {
            return Received {
                ack: Some(ack(held, false)),
                message: None,
            };
        }
        let stream = self.incoming.remove(&group).expect("present");
        self.completed.insert(group, (from, stream_id));
        match Message::parse_from_bytes(&stream.header) {
            Ok(mut message) if message.get_snapshot().get_metadata().index == index => {
                message.mut_snapshot().data = stream.data.into();
                Received {
                    ack: Some(ack(held, true)),
                    message: Some(message),
                }
            }
            _ => {
                tracing::warn!(
                    group,
                    from,
                    "a snapshot's header does not parse or match; dropped"
                );
                Received {
                    ack: None,
                    message: None,
                }
            }
        }
    }

    /// Drops partial snapshots nobody sent to for long.
    pub fn expire(&mut self, now: u64) {
        let idle = self.config.receive_idle_ms;
        self.incoming
            .retain(|_, s| now < s.touched_at.saturating_add(idle));
    }

    /// Bytes held by partial incoming snapshots.
    pub fn receiving_bytes(&self) -> u64 {
        self.incoming.values().map(|s| s.data.len() as u64).sum()
    }
}

#[cfg(test)]
mod tests;

//! The transport's tasks: a writer per peer, the accept loop, and a reader per inbound connection.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{debug, info, warn, Instrument};

use super::admission::Admission;
use super::crypto::{self, HandshakeError, Sealer};
use super::frame::{self, FrameError};
use super::{
    NodeId, Shared, METRIC_AUTH_FAILURES, METRIC_FRAMES_RECEIVED, METRIC_FRAMES_REJECTED,
    METRIC_FRAMES_SENT, METRIC_HANDSHAKES_PUSHED_OUT,
};

/// Longest a TCP connect may take before it counts as a failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a handshake may take, either side: a silent client cannot hold a slot for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Most inbound connections served at once; more are closed at accept.
const MAX_INBOUND_CONNECTIONS: usize = 1024;
/// Most connections of the node, and of one source address, still in their handshake: beyond
/// them the oldest is pushed out ([`Admission`]).
const PENDING_HANDSHAKES_MAX: usize = 128;
const PENDING_HANDSHAKES_PER_SOURCE_MAX: usize = 32;
/// Read buffer of an inbound connection.
const READ_BUFFER: usize = 64 * 1024;

/// Writer task of one peer: connects (TCP, handshake), then drains the peer's queue into frames
/// of up to `batch_max` messages until the connection breaks, then backs off and reconnects.
///
/// The back-off starts at `reconnect_backoff_min_ms`, doubles after every failed attempt up to
/// `reconnect_backoff_max_ms`, and returns to the minimum once a handshake succeeds. While the
/// peer is unreachable the queue is not drained, so its bound (`queue_max`) caps what waits and
/// [`super::Transport::send`] reports `QueueFull` beyond it. Messages of a batch whose write fails
/// may be lost: delivery is at most once, and Raft and the money protocol retry.
pub(super) async fn run_writer<M: Serialize + Send + Sync + 'static>(
    shared: Arc<Shared>,
    peer: NodeId,
    addr: SocketAddr,
    mut queue: mpsc::Receiver<M>,
    connected: Arc<AtomicBool>,
) {
    let config = &shared.config;
    let min = Duration::from_millis(config.reconnect_backoff_min_ms);
    let max = Duration::from_millis(config.reconnect_backoff_max_ms);
    let mut backoff = min;
    let mut failures = 0u32;
    let mut batch = Vec::with_capacity(config.batch_max.min(4096));
    loop {
        match timeout(
            CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT,
            connect(&shared, peer, addr),
        )
        .await
        {
            Ok(Ok((stream, sealer))) => {
                info!("connected to peer");
                backoff = min;
                failures = 0;
                connected.store(true, Ordering::Release);
                let result = pump(&shared, &mut queue, stream, sealer, &mut batch).await;
                connected.store(false, Ordering::Release);
                match result {
                    Ok(()) => return, // the transport is gone
                    Err(e) => warn!(error = %e, "peer connection lost; reconnecting"),
                }
            }
            Ok(Err(HandshakeError::Refused)) => {
                warn!("peer refused our authentication (different cluster secret?)");
            }
            Ok(Err(e)) => {
                if failures == 0 {
                    warn!(error = %e, "cannot connect to peer; retrying with back-off");
                } else {
                    debug!(error = %e, failures, "cannot connect to peer");
                }
                failures = failures.saturating_add(1);
            }
            Err(_) => warn!("connecting to peer timed out"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max);
    }
}

/// Opens the TCP connection and performs the connector's side of the handshake.
async fn connect(
    shared: &Shared,
    peer: NodeId,
    addr: SocketAddr,
) -> Result<(TcpStream, Sealer), HandshakeError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let config = &shared.config;
    let sealer = crypto::connect(&mut stream, config.node_id, peer, &config.secret).await?;
    Ok((stream, sealer))
}

/// Drains the queue onto an established connection. Returns `Ok(())` when the queue is closed
/// (the transport was dropped) and an error when the connection broke. The read half is watched
/// as well: the acceptor never writes after the handshake, so anything there (normally end of
/// stream) means the peer went away, and the writer reconnects at once instead of losing the next
/// batch in a dead socket.
async fn pump<M: Serialize>(
    shared: &Shared,
    queue: &mut mpsc::Receiver<M>,
    stream: TcpStream,
    mut sealer: Sealer,
    batch: &mut Vec<M>,
) -> io::Result<()> {
    let (mut read_half, mut write_half) = stream.into_split();
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            message = queue.recv() => {
                let Some(message) = message else { return Ok(()) };
                batch.clear();
                batch.push(message);
                while batch.len() < shared.config.batch_max {
                    match queue.try_recv() {
                        Ok(message) => batch.push(message),
                        Err(_) => break,
                    }
                }
                let written = write_batch(shared, &mut write_half, &mut sealer, batch).await;
                batch.clear();
                written?;
            }
            read = read_half.read(&mut probe) => {
                use io::ErrorKind::{InvalidData, UnexpectedEof};
                return Err(match read {
                    Ok(0) => io::Error::new(UnexpectedEof, "peer closed the connection"),
                    Ok(_) => io::Error::new(InvalidData, "unexpected bytes from peer"),
                    Err(e) => e,
                });
            }
        }
    }
}

/// Seals one batch into frames and writes them.
async fn write_batch<M: Serialize>(
    shared: &Shared,
    out: &mut OwnedWriteHalf,
    sealer: &mut Sealer,
    batch: &[M],
) -> io::Result<()> {
    let mut frames = Vec::new();
    let dropped = frame::seal_batch(sealer, batch, shared.config.frame_bytes_max, &mut frames)
        .map_err(io::Error::other)?;
    if dropped > 0 {
        metrics::counter!(super::METRIC_DROPPED).increment(dropped as u64);
    }
    for bytes in &frames {
        out.write_all(bytes).await?;
    }
    out.flush().await?;
    let counters = &shared.counters;
    counters.add(
        &counters.frames_sent,
        METRIC_FRAMES_SENT,
        frames.len() as u64,
    );
    Ok(())
}

/// Accept loop: serves each inbound connection in its own task, at most
/// [`MAX_INBOUND_CONNECTIONS`] at once; of those still in their handshake, a new one pushes out
/// the oldest beyond [`PENDING_HANDSHAKES_PER_SOURCE_MAX`] of its address or
/// [`PENDING_HANDSHAKES_MAX`] overall, so silent sockets cannot lock real peers out. The readers
/// live in a `JoinSet` owned by this task, so aborting the accept loop (shutdown) also closes
/// every inbound connection.
pub(super) async fn run_acceptor<M: DeserializeOwned + Send + 'static>(
    shared: Arc<Shared>,
    listener: TcpListener,
    inbound: mpsc::Sender<(NodeId, M)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_INBOUND_CONNECTIONS));
    let mut readers = JoinSet::new();
    let mut admission = Admission::new(PENDING_HANDSHAKES_MAX, PENDING_HANDSHAKES_PER_SOURCE_MAX);
    let (handshake_ended, mut ended) = mpsc::unbounded_channel::<u64>();
    loop {
        while readers.try_join_next().is_some() {}
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while let Ok(id) = ended.try_recv() {
            admission.remove(id);
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            warn!(%addr, "too many inbound peer connections; closing this one");
            continue;
        };
        let (cancel, cancelled) = oneshot::channel::<()>();
        let (id, pushed_out) = admission.admit(addr.ip(), cancel);
        if !pushed_out.is_empty() {
            let counters = &shared.counters;
            counters.add(
                &counters.handshakes_pushed_out,
                METRIC_HANDSHAKES_PUSHED_OUT,
                pushed_out.len() as u64,
            );
            debug!(%addr, pending = admission.pending(), "unauthenticated connections pushed out");
        }
        for cancel in pushed_out {
            let _ = cancel.send(());
        }
        let handshake = Handshake {
            id,
            cancelled,
            ended: handshake_ended.clone(),
        };
        let span = tracing::info_span!(
            "peer_in",
            node = shared.config.node_id,
            peer = tracing::field::Empty,
            %addr
        );
        let reader = serve_inbound(shared.clone(), stream, handshake, inbound.clone());
        readers.spawn(
            async move {
                reader.await;
                drop(slot);
            }
            .instrument(span),
        );
    }
}

/// An inbound connection's place among the pending handshakes.
struct Handshake {
    id: u64,
    /// Resolves when the acceptor pushes this connection out (or forgets it).
    cancelled: oneshot::Receiver<()>,
    /// Where to report that the handshake ended.
    ended: mpsc::UnboundedSender<u64>,
}

/// Reader of one inbound connection: handshake, then frames until the connection ends. Each
/// message is forwarded with `send().await`, so a slow node pushes back on the socket.
async fn serve_inbound<M: DeserializeOwned>(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    handshake: Handshake,
    inbound: mpsc::Sender<(NodeId, M)>,
) {
    let config = &shared.config;
    let counters = &shared.counters;
    let _ = stream.set_nodelay(true);
    let accepting = crypto::accept(&mut stream, config.node_id, &config.secret);
    let outcome = tokio::select! {
        outcome = timeout(HANDSHAKE_TIMEOUT, accepting) => {
            outcome.unwrap_or(Err(HandshakeError::Timeout))
        }
        _ = handshake.cancelled => Err(HandshakeError::PushedOut),
    };
    let _ = handshake.ended.send(handshake.id);
    let (peer, mut opener) = match outcome {
        Ok(session) => session,
        // Counted by the acceptor.
        Err(HandshakeError::PushedOut) => return,
        Err(e) => {
            counters.add(&counters.auth_failures, METRIC_AUTH_FAILURES, 1);
            warn!(reason = %e, "peer authentication failed");
            return;
        }
    };
    tracing::Span::current().record("peer", peer);
    debug!("peer authenticated");
    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
    let mut body = Vec::new();
    loop {
        let rejected = match frame::read_frame(&mut reader, config.frame_bytes_max, &mut body).await
        {
            Ok(true) => match opener.open(&mut body).and_then(frame::decode_batch::<M>) {
                Ok(batch) => {
                    counters.add(&counters.frames_received, METRIC_FRAMES_RECEIVED, 1);
                    for message in batch {
                        if inbound.send((peer, message)).await.is_err() {
                            debug!("inbound channel closed; dropping connection");
                            return;
                        }
                    }
                    continue;
                }
                Err(e) => e,
            },
            Ok(false) => {
                debug!("peer closed the connection");
                return;
            }
            Err(FrameError::Io(e)) => {
                debug!(error = %e, "peer connection ended");
                return;
            }
            Err(e) => e,
        };
        counters.add(&counters.frames_rejected, METRIC_FRAMES_REJECTED, 1);
        warn!(reason = %rejected, "peer frame rejected; closing the connection");
        return;
    }
}

//! Wire frames of the peer transport and the encoding of message batches.
//!
//! ```text
//! frame = length u32 BE | counter u64 BE | ChaCha20-Poly1305(bincode-2(Vec<M>)) | tag [16]
//!         `length` counts everything after itself (counter + ciphertext + tag)
//! ```
//!
//! The counter doubles as the nonce (see [`super::crypto`]). A frame whose length exceeds the
//! configured bound is refused before anything is allocated for it, and during the handshake the
//! bound is a few dozen bytes, so an unauthenticated client cannot make a node allocate much.
//! Everything read from the network is checked; malformed input is an error, never a panic.

use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::crypto::Sealer;

/// Bytes of the length prefix.
pub(crate) const LEN_PREFIX: usize = 4;
/// Bytes of the frame counter.
pub(crate) const COUNTER_LEN: usize = 8;
/// Length prefix plus counter: what precedes the ciphertext.
pub(crate) const HEADER_LEN: usize = LEN_PREFIX + COUNTER_LEN;
/// Bytes of the Poly1305 tag.
pub(crate) const TAG_LEN: usize = 16;

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The connection failed or closed in the middle of a frame (not a protocol violation).
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("frame of {0} bytes is too short")]
    TooShort(usize),
    #[error("frame counter {got}, expected {expected} (replayed or reordered frame)")]
    Counter { expected: u64, got: u64 },
    #[error("frame failed authentication (forged or corrupted)")]
    Forged,
    #[error("frame counter exhausted")]
    CounterExhausted,
    #[error("undecodable batch: {0}")]
    Malformed(String),
}

/// A frame buffer with room reserved for the header, ready for the plaintext to be appended.
pub(crate) fn start_frame(capacity: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(capacity.max(HEADER_LEN));
    frame.resize(HEADER_LEN, 0);
    frame
}

/// Appends the bincode-2 (serde, standard config) encoding of `batch` as a `Vec<M>`.
fn encode_plain<M: Serialize>(batch: &[M]) -> Result<Vec<u8>, String> {
    let mut frame = start_frame(HEADER_LEN + 64 * batch.len() + TAG_LEN);
    bincode::serde::encode_into_std_write(batch, &mut frame, bincode::config::standard())
        .map_err(|e| e.to_string())?;
    Ok(frame)
}

/// Seals `batch` into frames of at most `frame_max` bytes (as counted by the length prefix),
/// appended to `out` in order. A batch too large for one frame is split in halves, recursively;
/// a single message that cannot fit, or that fails to encode, is dropped and counted in the
/// returned total (the caller logs it). Fails only if the session's counter is exhausted.
pub(crate) fn seal_batch<M: Serialize>(
    sealer: &mut Sealer,
    batch: &[M],
    frame_max: usize,
    out: &mut Vec<Vec<u8>>,
) -> Result<usize, FrameError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let oversized = |frame: &Vec<u8>| frame.len() - LEN_PREFIX + TAG_LEN > frame_max;
    match encode_plain(batch) {
        Ok(mut frame) if !oversized(&frame) => {
            sealer.seal(&mut frame)?;
            out.push(frame);
            Ok(0)
        }
        Ok(_) | Err(_) if batch.len() > 1 => {
            let (left, right) = batch.split_at(batch.len() / 2);
            Ok(seal_batch(sealer, left, frame_max, out)?
                + seal_batch(sealer, right, frame_max, out)?)
        }
        Ok(frame) => {
            tracing::error!(
                bytes = frame.len(),
                frame_max,
                "message too large for a frame; dropped"
            );
            Ok(1)
        }
        Err(e) => {
            tracing::error!(error = %e, "message failed to encode; dropped");
            Ok(1)
        }
    }
}

/// Decodes a verified plaintext into the batch it carries; trailing bytes are malformed.
///
/// The decoder may claim at most [`MAX_FRAME_BYTES`](super::MAX_FRAME_BYTES) in all: without a
/// bound, a string or byte field whose length prefix says 3 GB made bincode allocate (zeroed)
/// 3 GB before it found the frame held 13 bytes (found by the `peer_frames` fuzz target).
pub(crate) fn decode_batch<M: DeserializeOwned>(plain: &[u8]) -> Result<Vec<M>, FrameError> {
    const LIMIT: usize = super::MAX_FRAME_BYTES;
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let (batch, used): (Vec<M>, usize) = bincode::serde::decode_from_slice(plain, config)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    if used != plain.len() {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes",
            plain.len() - used
        )));
    }
    Ok(batch)
}

/// Reads one frame body (counter, ciphertext, tag) into `body`. Returns `Ok(false)` when the peer
/// closed the connection cleanly before a new frame, `Ok(true)` when a frame was read. A length
/// over `frame_max` is refused before anything is allocated for it.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    frame_max: usize,
    body: &mut Vec<u8>,
) -> Result<bool, FrameError> {
    let mut len = [0u8; LEN_PREFIX];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > frame_max {
        return Err(FrameError::TooLarge(len));
    }
    if len < COUNTER_LEN + TAG_LEN {
        return Err(FrameError::TooShort(len));
    }
    body.clear();
    body.resize(len, 0);
    reader.read_exact(body).await?;
    Ok(true)
}

//! The handshake and the per-connection session crypto of the peer transport.
//!
//! ## Handshake (one per TCP connection)
//!
//! ```text
//! connector → acceptor   hello  = "TUMA" | version u16 | connector id u64 | random [32]   (plaintext)
//! acceptor  → connector  reply  = "TUMA" | version u16 | acceptor id u64  | random [32]   (plaintext)
//!            both derive  key    = HKDF-SHA256(ikm  = cluster secret,
//!                                              salt = connector random || acceptor random,
//!                                              info = "tuma-peer-v1" || connector id (u64 BE))
//! connector → acceptor   frame 1 = seal(AUTH_TAG || connector id)                          (encrypted)
//! acceptor  → connector  ack     = one byte AUTH_ACK                                           (plaintext)
//! connector → acceptor   frames 2, 3, … carrying message batches                            (encrypted)
//! ```
//!
//! Why this shape:
//! - Only a holder of the cluster secret can produce frame 1 under the derived key, so the acceptor
//!   authenticates the connector before a single message is accepted; a node with the wrong secret
//!   is refused (and logged by the caller) and can neither join nor inject anything.
//! - Both randoms are fresh for every connection, so every connection has its own key: bytes
//!   recorded from an old connection never decrypt on a new one (no cross-connection replay), and
//!   within a connection the strictly increasing frame counter (see [`Opener`]) stops replays.
//! - Traffic flows one way per connection (connector → acceptor), so one key with a counter nonce
//!   is never used for two different plaintexts under the same nonce.
//! - The reply's node id and the ack are plaintext and unauthenticated: they only help the
//!   connector notice a misconfigured address and back off when it is refused; forging them gains
//!   an attacker nothing it could not get by simply not answering.

use std::io;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{self, FrameError, COUNTER_LEN, HEADER_LEN, LEN_PREFIX, TAG_LEN};
use super::NodeId;

/// Version of the wire protocol carried in the hello; a mismatch refuses the connection.
pub(crate) const PROTOCOL_VERSION: u16 = 1;
/// First bytes of every hello, so a stray client is told apart from a peer at once.
pub(crate) const MAGIC: [u8; 4] = *b"TUMA";
pub(crate) const RANDOM_LEN: usize = 32;
/// Size of the plaintext hello (and of the acceptor's reply, which has the same layout).
pub(crate) const HELLO_LEN: usize = MAGIC.len() + 2 + 8 + RANDOM_LEN;
/// HKDF `info` prefix; the connector's node id follows it.
pub(crate) const HKDF_INFO: &[u8] = b"tuma-peer-v1";
/// Fixed tag opening the authentication frame's plaintext.
pub(crate) const AUTH_TAG: &[u8; 16] = b"tuma-peer-auth-1";
/// The byte the acceptor answers once the connector has authenticated.
pub(crate) const AUTH_ACK: u8 = 0xA5;
/// Largest authentication frame accepted (it is `COUNTER + 24 + TAG` bytes): nothing larger is
/// allocated for an unauthenticated client.
pub(crate) const AUTH_FRAME_MAX: usize = 128;

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("not a tuma peer (bad magic)")]
    BadMagic,
    #[error("unsupported protocol version {0}")]
    Version(u16),
    #[error("invalid peer node id {0}")]
    BadNodeId(NodeId),
    #[error("address answers as node {got}, expected node {expected}")]
    WrongPeer { expected: NodeId, got: NodeId },
    #[error("authentication frame rejected: {0}")]
    Auth(String),
    #[error("peer refused our authentication (different cluster secret?)")]
    Refused,
    #[error("handshake timed out")]
    Timeout,
    #[error("pushed out by newer unauthenticated connections")]
    PushedOut,
}

/// The plaintext hello (connector) or reply (acceptor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hello {
    pub version: u16,
    pub node_id: NodeId,
    pub random: [u8; RANDOM_LEN],
}

impl Hello {
    /// A hello for this node with a fresh random from the OS.
    pub(crate) fn fresh(node_id: NodeId) -> io::Result<Hello> {
        let mut random = [0u8; RANDOM_LEN];
        OsRng
            .try_fill_bytes(&mut random)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Hello {
            version: PROTOCOL_VERSION,
            node_id,
            random,
        })
    }

    pub(crate) fn encode(&self) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&self.version.to_be_bytes());
        out[6..14].copy_from_slice(&self.node_id.to_be_bytes());
        out[14..].copy_from_slice(&self.random);
        out
    }

    /// Parses a hello; refuses a wrong magic or an unsupported version.
    pub(crate) fn decode(bytes: &[u8; HELLO_LEN]) -> Result<Hello, HandshakeError> {
        if bytes[..4] != MAGIC {
            return Err(HandshakeError::BadMagic);
        }
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        if version != PROTOCOL_VERSION {
            return Err(HandshakeError::Version(version));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[6..14]);
        let mut random = [0u8; RANDOM_LEN];
        random.copy_from_slice(&bytes[14..]);
        Ok(Hello {
            version,
            node_id: u64::from_be_bytes(id),
            random,
        })
    }
}

/// Derives the session key of one connection (see the module docs).
pub(crate) fn derive_key(
    secret: &[u8],
    connector_random: &[u8; RANDOM_LEN],
    acceptor_random: &[u8; RANDOM_LEN],
    connector: NodeId,
) -> Key {
    let mut salt = [0u8; 2 * RANDOM_LEN];
    salt[..RANDOM_LEN].copy_from_slice(connector_random);
    salt[RANDOM_LEN..].copy_from_slice(acceptor_random);
    let mut info = Vec::with_capacity(HKDF_INFO.len() + 8);
    info.extend_from_slice(HKDF_INFO);
    info.extend_from_slice(&connector.to_be_bytes());
    let mut okm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&salt), secret)
        .expand(&info, &mut okm)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Key::from(okm)
}

/// Plaintext of the authentication frame: the fixed tag, then the connector's id.
pub(crate) fn auth_payload(node_id: NodeId) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..16].copy_from_slice(AUTH_TAG);
    out[16..].copy_from_slice(&node_id.to_be_bytes());
    out
}

/// Nonce of frame `counter`: four zero bytes, then the counter big-endian.
fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::from(n)
}

/// Sending side of a session: seals frames with counters 1, 2, 3, …
pub(crate) struct Sealer {
    cipher: ChaCha20Poly1305,
    next: u64,
}

impl Sealer {
    pub(crate) fn new(key: &Key) -> Sealer {
        Sealer {
            cipher: ChaCha20Poly1305::new(key),
            next: 1,
        }
    }

    /// Seals a frame in place. `frame` holds [`HEADER_LEN`] placeholder bytes followed by the
    /// plaintext; afterwards it is the complete wire frame (length, counter, ciphertext, tag).
    pub(crate) fn seal(&mut self, frame: &mut Vec<u8>) -> Result<(), FrameError> {
        let body_len = frame.len() - LEN_PREFIX + TAG_LEN;
        let len = u32::try_from(body_len).map_err(|_| FrameError::TooLarge(body_len))?;
        let counter = self.next;
        self.next = counter.checked_add(1).ok_or(FrameError::CounterExhausted)?;
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce(counter), b"", &mut frame[HEADER_LEN..])
            .map_err(|_| FrameError::TooLarge(body_len))?;
        frame.extend_from_slice(&tag);
        frame[..LEN_PREFIX].copy_from_slice(&len.to_be_bytes());
        frame[LEN_PREFIX..HEADER_LEN].copy_from_slice(&counter.to_be_bytes());
        Ok(())
    }
}

/// Receiving side of a session: accepts exactly the counters 1, 2, 3, … in order, each once.
pub(crate) struct Opener {
    cipher: ChaCha20Poly1305,
    last: u64,
}

impl Opener {
    pub(crate) fn new(key: &Key) -> Opener {
        Opener {
            cipher: ChaCha20Poly1305::new(key),
            last: 0,
        }
    }

    /// Verifies and decrypts a frame body (counter, ciphertext, tag — everything after the length
    /// prefix) in place and returns the plaintext. A counter other than last + 1 (replayed,
    /// reordered or dropped frame) or a failed tag check (forged or corrupted frame) is an error,
    /// after which the caller closes the connection.
    pub(crate) fn open<'a>(&mut self, body: &'a mut [u8]) -> Result<&'a [u8], FrameError> {
        if body.len() < COUNTER_LEN + TAG_LEN {
            return Err(FrameError::TooShort(body.len()));
        }
        let (head, rest) = body.split_at_mut(COUNTER_LEN);
        let mut counter = [0u8; COUNTER_LEN];
        counter.copy_from_slice(head);
        let counter = u64::from_be_bytes(counter);
        let expected = self
            .last
            .checked_add(1)
            .ok_or(FrameError::CounterExhausted)?;
        if counter != expected {
            return Err(FrameError::Counter {
                expected,
                got: counter,
            });
        }
        let split = rest.len() - TAG_LEN;
        let (ciphertext, tag) = rest.split_at_mut(split);
        self.cipher
            .decrypt_in_place_detached(&nonce(counter), b"", ciphertext, Tag::from_slice(tag))
            .map_err(|_| FrameError::Forged)?;
        self.last = counter;
        Ok(ciphertext)
    }
}

/// Connector side of the handshake: hello, reply, authentication frame, ack. Returns the sealer
/// for the data frames, whose counters continue after the authentication frame's.
pub(crate) async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: NodeId,
    expected_peer: NodeId,
    secret: &[u8],
) -> Result<Sealer, HandshakeError> {
    let hello = Hello::fresh(me)?;
    stream.write_all(&hello.encode()).await?;
    let mut buf = [0u8; HELLO_LEN];
    stream.read_exact(&mut buf).await?;
    let reply = Hello::decode(&buf)?;
    if reply.node_id != expected_peer {
        return Err(HandshakeError::WrongPeer {
            expected: expected_peer,
            got: reply.node_id,
        });
    }
    let mut sealer = Sealer::new(&derive_key(secret, &hello.random, &reply.random, me));
    let mut auth = frame::start_frame(HEADER_LEN + 24 + TAG_LEN);
    auth.extend_from_slice(&auth_payload(me));
    sealer
        .seal(&mut auth)
        .map_err(|e| HandshakeError::Auth(e.to_string()))?;
    stream.write_all(&auth).await?;
    stream.flush().await?;
    let mut ack = [0u8; 1];
    match stream.read_exact(&mut ack).await {
        Ok(_) if ack[0] == AUTH_ACK => Ok(sealer),
        Ok(_) => Err(HandshakeError::Refused),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ) =>
        {
            Err(HandshakeError::Refused)
        }
        Err(e) => Err(e.into()),
    }
}

/// Acceptor side of the handshake. Returns the authenticated connector's id and the opener for
/// its data frames. Any node id other than 0 and our own is accepted if it authenticates: holding
/// the cluster secret is what makes a member (this lets a node being added talk to us before our
/// peer list knows its address).
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: NodeId,
    secret: &[u8],
) -> Result<(NodeId, Opener), HandshakeError> {
    let mut buf = [0u8; HELLO_LEN];
    stream.read_exact(&mut buf).await?;
    let hello = Hello::decode(&buf)?;
    if hello.node_id == 0 || hello.node_id == me {
        return Err(HandshakeError::BadNodeId(hello.node_id));
    }
    let reply = Hello::fresh(me)?;
    stream.write_all(&reply.encode()).await?;
    stream.flush().await?;
    let mut opener = Opener::new(&derive_key(
        secret,
        &hello.random,
        &reply.random,
        hello.node_id,
    ));
    let mut body = Vec::new();
    match frame::read_frame(stream, AUTH_FRAME_MAX, &mut body).await {
        Ok(true) => {}
        Ok(false) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
        Err(FrameError::Io(e)) => return Err(e.into()),
        Err(e) => return Err(HandshakeError::Auth(e.to_string())),
    }
    let plain = opener
        .open(&mut body)
        .map_err(|e| HandshakeError::Auth(e.to_string()))?;
    if plain != auth_payload(hello.node_id) {
        return Err(HandshakeError::Auth(
            "identity does not match the hello".into(),
        ));
    }
    stream.write_all(&[AUTH_ACK]).await?;
    stream.flush().await?;
    Ok((hello.node_id, opener))
}

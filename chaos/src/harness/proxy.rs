//! Link proxies: every node reaches every peer through a TCP proxy the harness controls, one
//! per direction, so the harness can cut a link (partitions, including one-way ones), delay it,
//! or make it lossy, without root or kernel modules.
//!
//! Loss on a TCP stream is modelled as the connection breaking (the bytes in flight are lost and
//! the transport reconnects); duplication and reordering cannot happen on TCP, so the money
//! protocol's tolerance of those is proven by the simulator instead.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the harness sets on a link.
#[derive(Default)]
pub struct LinkControl {
    cut: AtomicBool,
    delay_ms: AtomicU64,
    loss_per_mille: AtomicU32,
    /// Bumped when the link is cut, so open connections notice and close.
    generation: AtomicU64,
}

/// One direction of one link: accepts on `port`, forwards to `target`.
pub struct LinkProxy {
    pub port: u16,
    control: Arc<LinkControl>,
    task: tokio::task::JoinHandle<()>,
}

const CHUNK_BYTES: usize = 16 * 1024;

impl LinkProxy {
    pub async fn start(target: SocketAddr) -> std::io::Result<LinkProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let control = Arc::new(LinkControl::default());
        let shared = control.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if shared.cut.load(Ordering::Relaxed) {
                    continue; // dropped: the connection closes at once
                }
                let control = shared.clone();
                tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        pump_both(inbound, outbound, control).await;
                    }
                });
            }
        });
        Ok(LinkProxy {
            port,
            control,
            task,
        })
    }

    pub fn set_cut(&self, cut: bool) {
        self.control.cut.store(cut, Ordering::Relaxed);
        if cut {
            self.control.generation.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn set_delay(&self, delay_ms: u64) {
        self.control.delay_ms.store(delay_ms, Ordering::Relaxed);
    }

    pub fn set_loss(&self, per_mille: u32) {
        self.control
            .loss_per_mille
            .store(per_mille, Ordering::Relaxed);
    }

    pub fn heal(&self) {
        self.set_cut(false);
        self.set_delay(0);
        self.set_loss(0);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump_both(inbound: TcpStream, outbound: TcpStream, control: Arc<LinkControl>) {
    let generation = control.generation.load(Ordering::Relaxed);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let forward = pump(in_read, out_write, control.clone(), generation);
    let backward = pump(out_read, in_write, control, generation);
    tokio::select! {
        _ = forward => {}
        _ = backward => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    control: Arc<LinkControl>,
    generation: u64,
) {
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut seed = generation.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    loop {
        let n = match tokio::time::timeout(Duration::from_millis(200), from.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
            Err(_) => {
                if control.generation.load(Ordering::Relaxed) != generation {
                    return;
                }
                continue;
            }
        };
        if control.generation.load(Ordering::Relaxed) != generation
            || control.cut.load(Ordering::Relaxed)
        {
            return;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if (seed % 1000) < u64::from(control.loss_per_mille.load(Ordering::Relaxed)) {
            return; // the link drops what is in flight and the connection breaks
        }
        let delay = control.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

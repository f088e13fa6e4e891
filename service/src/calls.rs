//! Calling the engine: a request goes to whichever node leads its shard (the engine forwards),
//! and is retried on leader change until its deadline — blindly only when repeating it is
//! harmless.

use std::time::{Duration, Instant};

use tuma_cluster::engine::{ClientReply, ClientRequest, NodeHandle};

/// First pause between retries; doubles up to `RETRY_PAUSE_MAX`.
const RETRY_PAUSE_MIN: Duration = Duration::from_millis(20);
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(500);
/// One attempt waits at most this long for an answer; a retry with the same idempotency key is
/// safe and finds a leader that changed or a forward that was lost.
const ATTEMPT_TIMEOUT_MAX: Duration = Duration::from_secs(1);

/// Whether a request may be repeated when its outcome is unknown.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Repeating it cannot do it twice (transfers by id, reads, registrations with the same
    /// content, setting a state): retried on every retryable answer.
    Idempotent,
    /// Repeating it could count twice (a PIN attempt): retried only when nothing was done.
    AtMostOnce,
}

/// The engine, asked with retries.
#[derive(Clone)]
pub struct Calls {
    pub handle: NodeHandle,
}

impl Calls {
    pub fn new(handle: NodeHandle) -> Calls {
        Calls { handle }
    }

    /// Asks an idempotent request until an answer other than "not leader"/"unavailable"/
    /// "outcome unknown", or the deadline. Returns the last answer and the retries it took.
    pub async fn call(&self, request: ClientRequest, deadline: Instant) -> (ClientReply, u32) {
        self.call_with(request, deadline, Repeat::Idempotent).await
    }

    /// Asks a request, retrying as `repeat` allows.
    pub async fn call_with(
        &self,
        request: ClientRequest,
        deadline: Instant,
        repeat: Repeat,
    ) -> (ClientReply, u32) {
        let mut pause = RETRY_PAUSE_MIN;
        let mut retries = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let reply = self
                .handle
                .request(request.clone(), remaining.min(ATTEMPT_TIMEOUT_MAX))
                .await;
            let retryable = match reply {
                ClientReply::NotLeader { .. } | ClientReply::Unavailable(_) => true,
                ClientReply::Ambiguous(_) => repeat == Repeat::Idempotent,
                _ => false,
            };
            if !retryable || Instant::now() + pause >= deadline {
                if retries > 0 {
                    metrics::counter!("tuma_http_retries_total").increment(u64::from(retries));
                }
                return (reply, retries);
            }
            retries += 1;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_PAUSE_MAX);
        }
    }
}

//! PIN verification off the engine thread, with bounded concurrency.
//!
//! argon2id is slow and memory-hard on purpose (19 MiB per verification by default): unbounded,
//! a burst of transfers would spawn one verification per request and exhaust memory. A fixed
//! set of workers (one per core) takes jobs from a bounded queue; when the queue is full the
//! request is answered "unavailable" and the caller retries with the same idempotency key.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tuma_actors::pin::{Pin, PinHash, PinHasher};
use tuma_actors::transfer::{PinVerdict, TransferRequest};

use super::request::{Input, Waiter};

/// One verification to do; its verdict goes back to the engine as `Input::PinChecked`.
pub struct PinJob {
    pub hash: PinHash,
    pub pin: Pin,
    pub request: TransferRequest,
    pub waiter: Waiter,
}

/// The worker pool.
pub struct PinVerifier {
    jobs: SyncSender<PinJob>,
}

impl PinVerifier {
    /// Starts `workers` threads sharing a queue of at most `queue_max` jobs.
    pub fn start(workers: usize, queue_max: usize, engine: SyncSender<Input>) -> PinVerifier {
        let (jobs, queue) = sync_channel::<PinJob>(queue_max.max(1));
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..workers.max(1) {
            let (queue, engine) = (queue.clone(), engine.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("tuma-pin-{n}"))
                .spawn(move || work(&queue, &engine));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a PIN verification worker");
            }
        }
        PinVerifier { jobs }
    }

    /// Queues a job, or hands it back when the queue is full.
    pub fn submit(&self, job: PinJob) -> Result<(), Box<PinJob>> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) | TrySendError::Disconnected(job) => Box::new(job),
        })
    }
}

fn work(queue: &Mutex<Receiver<PinJob>>, engine: &SyncSender<Input>) {
    loop {
        let job = {
            let Ok(queue) = queue.lock() else { return };
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let verdict = if PinHasher::owasp().verify(&job.hash, &job.pin) {
            PinVerdict::Verified
        } else {
            PinVerdict::Wrong
        };
        metrics::counter!("tuma_pin_verifications_total").increment(1);
        if engine
            .send(Input::PinChecked {
                request: job.request,
                verdict,
                waiter: job.waiter,
            })
            .is_err()
        {
            return;
        }
    }
}

//! PIN verification off the engine thread, with bounded concurrency.
//!
//! Keyed digests verify in microseconds in the account actor itself (`clients.rs`); this pool is
//! for argon2id hashes (imported PHC strings, or `--pin-hash argon2`). argon2id is slow and
//! memory-hard on purpose (19 MiB per verification by default): unbounded,
//! a burst of transfers would spawn one verification per request and exhaust memory. A fixed
//! set of workers (one per core) takes jobs from a bounded queue; when the queue is full the
//! request is answered "unavailable" and the caller retries with the same idempotency key.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tuma_actors::pin::{Pin, PinHash, PinHasher};
use tuma_actors::transfer::{PinVerdict, TransferRequest};

use super::job_queue::{next_job, SharedQueue};
use super::request::{Input, Waiter};

/// One verification to do; its verdict goes back to the engine as `Input::PinChecked`.
pub struct PinJob {
    pub hash: PinHash,
    pub pin: Pin,
    pub request: TransferRequest,
    pub waiter: Waiter,
}

/// The worker pool, started on its first job (a node whose PINs are all keyed digests, and the
/// simulator, never start it).
pub struct PinVerifier {
    workers: usize,
    queue_max: usize,
    engine: SyncSender<Input>,
    hasher: PinHasher,
    jobs: Option<SyncSender<PinJob>>,
}

impl PinVerifier {
    /// A pool of `workers` threads sharing a queue of at most `queue_max` jobs, once started.
    pub fn new(
        workers: usize,
        queue_max: usize,
        engine: SyncSender<Input>,
        hasher: PinHasher,
    ) -> PinVerifier {
        PinVerifier {
            workers,
            queue_max,
            engine,
            hasher,
            jobs: None,
        }
    }

    fn start(&self) -> SyncSender<PinJob> {
        let (workers, queue_max, engine, hasher) = (
            self.workers,
            self.queue_max,
            self.engine.clone(),
            self.hasher.clone(),
        );
        let (jobs, queue) = sync_channel::<PinJob>(queue_max.max(1));
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..workers.max(1) {
            let (queue, engine, hasher) = (queue.clone(), engine.clone(), hasher.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("tuma-pin-{n}"))
                .spawn(move || work(&queue, &engine, &hasher));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a PIN verification worker");
            }
        }
        jobs
    }

    /// Queues a job, or hands it back when the queue is full.
    pub fn submit(&mut self, job: PinJob) -> Result<(), Box<PinJob>> {
        let jobs = match &self.jobs {
            Some(jobs) => jobs.clone(),
            None => {
                let jobs = self.start();
                self.jobs = Some(jobs.clone());
                jobs
            }
        };
        jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) | TrySendError::Disconnected(job) => Box::new(job),
        })
    }
}

fn work(queue: &SharedQueue<PinJob>, engine: &SyncSender<Input>, hasher: &PinHasher) {
    while let Some(job) = next_job(queue) {
        let input = match hasher.verify(&job.hash, &job.pin) {
            Ok(right) => {
                metrics::counter!("tuma_pin_verifications_total").increment(1);
                Input::PinChecked {
                    request: job.request,
                    verdict: if right {
                        PinVerdict::Verified
                    } else {
                        PinVerdict::Wrong
                    },
                    waiter: job.waiter,
                }
            }
            Err(error) => Input::Reply {
                waiter: job.waiter,
                reply: super::clients::pin_unverifiable(&error),
            },
        };
        if engine.send(input).is_err() {
            return;
        }
    }
}

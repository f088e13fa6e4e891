//! PIN work: hashing a new PIN and verifying a given one. Keyed digests take microseconds and
//! run where they are asked; argon2id hashes are slow on purpose (and 19 MiB each by default),
//! so they run on the blocking pool, at most one per core.

use std::sync::Arc;

use tuma_actors::pin::{Pin, PinError, PinHash, PinHasher};

#[derive(Clone)]
pub struct Pins {
    hasher: PinHasher,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Pins {
    pub fn new(hasher: PinHasher) -> Pins {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Pins {
            hasher,
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }

    pub fn hasher(&self) -> &PinHasher {
        &self.hasher
    }

    /// Does `pin` match `hash`?
    pub async fn verify(&self, hash: PinHash, pin: Pin) -> Result<bool, PinError> {
        if hash.key_id().is_some() {
            return self.hasher.verify(&hash, &pin);
        }
        let hasher = self.hasher.clone();
        self.blocking(move || hasher.verify(&hash, &pin))
            .await
            .unwrap_or(Ok(false))
    }

    /// The hash to store for a new PIN; `None` if the work could not run.
    pub async fn hash(&self, pin: Pin) -> Option<PinHash> {
        if self.hasher.makes_keyed() {
            return Some(self.hasher.hash(&pin));
        }
        let hasher = self.hasher.clone();
        self.blocking(move || hasher.hash(&pin)).await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self.permits.acquire().await.ok()?;
        tokio::task::spawn_blocking(work).await.ok()
    }
}

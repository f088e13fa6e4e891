//! Token buckets by key, bounded in how many keys they track.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

const MILLI: u64 = 1_000;
const MINUTE_MS: u64 = 60_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    milli_tokens: u64,
    at_ms: u64,
}

impl Bucket {
    /// Thousandths of a token at `now_ms`, refilled at `per_minute` up to a full bucket.
    fn tokens_at(&self, now_ms: u64, per_minute: u64) -> u64 {
        let refill = now_ms.saturating_sub(self.at_ms) * per_minute * MILLI / MINUTE_MS;
        (self.milli_tokens + refill).min(per_minute * MILLI)
    }
}

/// Token buckets by key (`per_minute` tokens a minute, as many at most; 0 = no limit), at most
/// `tracked_max` of them: the failed-attempt budgets here, the business API's call budgets.
#[derive(Debug)]
pub struct RateBuckets<K> {
    per_minute: u64,
    tracked_max: usize,
    by_key: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> RateBuckets<K> {
    pub fn new(per_minute: u32, tracked_max: usize) -> RateBuckets<K> {
        RateBuckets {
            per_minute: u64::from(per_minute),
            tracked_max,
            by_key: HashMap::new(),
        }
    }

    fn capacity(&self) -> u64 {
        self.per_minute * MILLI
    }

    /// The bucket's tokens at `now_ms` (a key not tracked has a full bucket).
    fn tokens(&self, bucket: Option<&Bucket>, now_ms: u64) -> u64 {
        bucket.map_or(self.capacity(), |b| b.tokens_at(now_ms, self.per_minute))
    }

    /// How long until `key` may fail again; `None` when it may now.
    pub fn wait(&self, key: &K, now_ms: u64) -> Option<Duration> {
        if self.per_minute == 0 {
            return None;
        }
        let tokens = self.tokens(self.by_key.get(key), now_ms);
        if tokens >= MILLI {
            return None;
        }
        let missing = MILLI - tokens;
        let ms = (missing * MINUTE_MS).div_ceil(self.per_minute * MILLI);
        Some(Duration::from_millis(ms.max(1)))
    }

    /// Takes one token from `key`'s bucket (down to zero).
    pub fn charge(&mut self, key: &K, now_ms: u64) {
        if self.per_minute == 0 {
            return;
        }
        let tokens = self.tokens(self.by_key.get(key), now_ms);
        if !self.by_key.contains_key(key) {
            self.make_room(now_ms);
        }
        self.by_key.insert(
            key.clone(),
            Bucket {
                milli_tokens: tokens.saturating_sub(MILLI),
                at_ms: now_ms,
            },
        );
    }

    /// Keeps the map under its bound: refilled buckets say nothing a missing one does not, so
    /// they go first; if none has refilled, an arbitrary one.
    fn make_room(&mut self, now_ms: u64) {
        if self.by_key.len() < self.tracked_max.max(1) {
            return;
        }
        let (capacity, per_minute) = (self.capacity(), self.per_minute);
        self.by_key
            .retain(|_, b| b.tokens_at(now_ms, per_minute) < capacity);
        if self.by_key.len() >= self.tracked_max.max(1) {
            if let Some(key) = self.by_key.keys().next().cloned() {
                self.by_key.remove(&key);
            }
        }
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

//! The SMS channel's own durable store on this node (an LSM database, fjall, beside the node's
//! data): the spool of texts taken from the shards' outboxes and not yet accepted by the
//! gateway, the log of texts sent, and the delivery reports received. Not replicated: the
//! shards' outboxes are, and a text leaves a shard's outbox only once it is spooled here and
//! synced. A directory written by an older build (sled) is moved here at open (`store_move.rs`).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
/// A text waiting for the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// Stable across retries and leader changes: `tuma-<shard>-<seq>`.
    pub id: String,
    /// Canonical MSISDN (`2547…`).
    pub to: String,
    pub text: String,
    pub queued_ms: u64,
    /// Sends the gateway refused for this text (not outages).
    pub refusals: u32,
}

/// A text the gateway accepted (or refused for good).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub id: String,
    pub to: String,
    pub text: String,
    pub gateway: String,
    /// The gateway's own id for it, when it gives one (Africa's Talking's `messageId`).
    pub gateway_ref: Option<String>,
    pub sent_ms: u64,
    /// `accepted` or `rejected: <why>`.
    pub outcome: String,
}

/// A delivery report as received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Our id or the gateway's, whichever the report names.
    pub reference: String,
    /// `delivered`, `failed`, `rejected`, `buffered`, `submitted`.
    pub status: String,
    pub detail: Option<String>,
    pub received_ms: u64,
}

/// Why the store failed (disk trouble; the caller retries later).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SMS store: {0}")]
    Lsm(#[from] fjall::Error),
    #[error("SMS store (moving an older sled store): {0}")]
    Sled(#[from] sled::Error),
    #[error("SMS store: {0}")]
    Io(#[from] std::io::Error),
    #[error("SMS store record: {0}")]
    Codec(#[from] serde_json::Error),
}

/// The store.
#[derive(Clone)]
pub struct SmsStore {
    /// The spool's keys, in send order. Reading the oldest texts from the LSM tree itself would
    /// step over the tombstone of every text sent since its last compaction, on every pass.
    spool_keys: Arc<Mutex<BTreeSet<SpoolKey>>>,
    /// Texts in the sent log (counting the keyspace scans it), and the oldest one's number
    /// (evictions seek to it rather than step over the tombstones of those evicted before).
    sent_count: Arc<AtomicUsize>,
    sent_oldest: Arc<AtomicU64>,
    ids: Arc<Mutex<IdRange>>,
    /// Serialises the sent log's appends and evictions (the count and the oldest key move
    /// together).
    sent_lock: Arc<Mutex<()>>,
    db: fjall::Database,
    pub(super) spool: fjall::Keyspace,
    pub(super) sent: fjall::Keyspace,
    pub(super) by_phone: fjall::Keyspace,
    pub(super) reports: fjall::Keyspace,
    /// `<shard>`: the last outbox sequence number spooled from each shard.
    pub(super) taken: fjall::Keyspace,
    /// `ids`: the ceiling of the numbers handed out (see [`IdRange`]).
    meta: fjall::Keyspace,
    sent_keep: usize,
}

/// The numbers [`SmsStore::next_id`] hands out: `next` up to `ceiling`, which is written to the
/// journal before any number under it is used, so a restart starts at the ceiling and never
/// hands a number out twice (gaps are fine).
struct IdRange {
    next: u64,
    ceiling: u64,
}

/// Numbers reserved per write of the ceiling.
const ID_BLOCK: u64 = 10_000;
const IDS_KEY: &[u8] = b"ids";

/// How final a delivery status is: delivered, failed and rejected end a text's story.
fn finality(status: &str) -> u8 {
    match status {
        "delivered" | "failed" | "rejected" => 2,
        "submitted" | "buffered" => 1,
        _ => 0,
    }
}

/// The spool's key space for texts that come from no shard (replies to incoming messages).
const DIRECT_SHARD: u32 = u32::MAX;

/// A spool key: the shard (or [`DIRECT_SHARD`]) and the sequence number, big-endian.
type SpoolKey = [u8; 12];

pub(super) fn spool_key(shard: u32, seq: u64) -> SpoolKey {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&shard.to_be_bytes());
    key[4..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The phone index's key: the number, a zero byte, the sent record's number.
fn phone_key(to: &str, number: &[u8]) -> Vec<u8> {
    let mut key = to.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(number);
    key
}

fn u64_of(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// The LSM database's cache: the spool is read in order, the rest rarely.
const CACHE_BYTES: u64 = 8 << 20;

impl SmsStore {
    /// Opens (creating) the store in `dir`, keeping the latest `sent_keep` sent texts; an
    /// older build's sled store in `dir` is moved into it first.
    pub fn open(dir: &Path, sent_keep: usize) -> Result<SmsStore, StoreError> {
        let older = super::store_move::set_aside_sled(dir)?;
        let db = fjall::Database::builder(dir)
            .cache_size(CACHE_BYTES)
            .worker_threads(1)
            .manual_journal_persist(true)
            .open()?;
        let keyspace = |name: &str| db.keyspace(name, fjall::KeyspaceCreateOptions::default);
        let mut store = SmsStore {
            spool_keys: Arc::default(),
            sent_count: Arc::default(),
            sent_oldest: Arc::default(),
            ids: Arc::new(Mutex::new(IdRange {
                next: 0,
                ceiling: 0,
            })),
            sent_lock: Arc::new(Mutex::new(())),
            spool: keyspace("spool")?,
            sent: keyspace("sent")?,
            by_phone: keyspace("sent_by_phone")?,
            reports: keyspace("reports")?,
            taken: keyspace("taken")?,
            meta: keyspace("meta")?,
            db,
            sent_keep,
        };
        if let Some(older) = older {
            super::store_move::move_from_sled(&store, dir, &older)?;
        }
        let mut spool_keys = BTreeSet::new();
        for item in store.spool.iter() {
            let key = item.key()?;
            match SpoolKey::try_from(key.as_ref()) {
                Ok(key) => spool_keys.insert(key),
                Err(_) => {
                    tracing::warn!(key = ?key, "not a spool key; left alone");
                    continue;
                }
            };
        }
        store.spool_keys = Arc::new(Mutex::new(spool_keys));
        store.sent_count = Arc::new(AtomicUsize::new(store.sent.len()?));
        let oldest = match store.sent.first_key_value() {
            Some(item) => u64_of(&item.key()?).unwrap_or(0),
            None => 0,
        };
        store.sent_oldest = Arc::new(AtomicU64::new(oldest));
        let first_free = [
            store.meta.get(IDS_KEY)?.and_then(|v| u64_of(&v)),
            store.last_key(&store.sent)?.map(|n| n + 1),
            store
                .spool
                .prefix(DIRECT_SHARD.to_be_bytes())
                .next_back()
                .map(|item| item.key())
                .transpose()?
                .and_then(|key| u64_of(&key[4..]))
                .map(|n| n + 1),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
        store.ids = Arc::new(Mutex::new(IdRange {
            next: first_free,
            ceiling: first_free,
        }));
        Ok(store)
    }

    fn last_key(&self, keyspace: &fjall::Keyspace) -> Result<Option<u64>, StoreError> {
        match keyspace.last_key_value() {
            Some(item) => Ok(u64_of(&item.key()?)),
            None => Ok(None),
        }
    }

    /// Records that numbers below `ceiling` may be in use (before they are).
    pub(super) fn reserve_ids(&self, ceiling: u64) -> Result<(), StoreError> {
        self.meta.insert(IDS_KEY, ceiling.to_be_bytes())?;
        Ok(())
    }

    /// The last outbox sequence number spooled from `shard` (`None`: nothing yet).
    pub fn taken(&self, shard: u32) -> Result<Option<u64>, StoreError> {
        Ok(self
            .taken
            .get(shard.to_be_bytes())?
            .and_then(|v| u64_of(&v)))
    }

    /// Spools `texts` of `shard` (sequence number, text) and records the last as taken, then
    /// syncs: once this returns, the shard may forget them.
    pub fn spool(&self, shard: u32, texts: &[(u64, Queued)]) -> Result<(), StoreError> {
        self.spool_unflushed(shard, texts)?;
        self.flush()
    }

    /// Makes everything written so far durable (one fsync of the journal).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }

    /// [`SmsStore::spool`] without the sync: several shards' texts then share one.
    pub fn spool_unflushed(&self, shard: u32, texts: &[(u64, Queued)]) -> Result<(), StoreError> {
        let Some((last, _)) = texts.last() else {
            return Ok(());
        };
        let mut batch = self.db.batch();
        for (seq, queued) in texts {
            batch.insert(
                &self.spool,
                spool_key(shard, *seq),
                serde_json::to_vec(queued)?,
            );
        }
        batch.insert(&self.taken, shard.to_be_bytes(), last.to_be_bytes());
        batch.commit()?;
        // Texts taken again after a leader change come under the same keys.
        self.keys()
            .extend(texts.iter().map(|(seq, _)| spool_key(shard, *seq)));
        Ok(())
    }

    /// Spools a text of this node's own (a reply to an incoming message), after every shard's
    /// texts in send order, and syncs.
    pub fn queue_direct(&self, queued: &Queued) -> Result<(), StoreError> {
        let key = spool_key(DIRECT_SHARD, self.next_id()?);
        self.spool.insert(key, serde_json::to_vec(queued)?)?;
        self.keys().insert(key);
        self.flush()
    }

    /// A number never given before in this store (across restarts).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        let mut ids = self.ids.lock().expect("no panics hold this lock");
        if ids.next >= ids.ceiling {
            let ceiling = ids.next + ID_BLOCK;
            self.reserve_ids(ceiling)?;
            ids.ceiling = ceiling;
        }
        ids.next += 1;
        Ok(ids.next - 1)
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, BTreeSet<SpoolKey>> {
        self.spool_keys.lock().expect("no panics hold this lock")
    }

    /// Texts in the spool.
    pub fn spooled(&self) -> usize {
        self.keys().len()
    }

    /// The oldest `limit` spooled texts, with their keys.
    pub fn next_queued(&self, limit: usize) -> Result<Vec<(Vec<u8>, Queued)>, StoreError> {
        let oldest: Vec<SpoolKey> = self.keys().iter().take(limit).copied().collect();
        let mut texts = Vec::with_capacity(oldest.len());
        for key in oldest {
            // Gone if finished meanwhile by another pass.
            if let Some(value) = self.spool.get(key)? {
                texts.push((key.to_vec(), serde_json::from_slice(&value)?));
            }
        }
        Ok(texts)
    }

    /// Every spooled text to `to` (an admin's question; scans the spool).
    pub fn queued_to(&self, to: &str) -> Result<Vec<Queued>, StoreError> {
        let mut found = Vec::new();
        for item in self.spool.iter() {
            let queued: Queued = serde_json::from_slice(&item.value()?)?;
            if queued.to == to {
                found.push(queued);
            }
        }
        Ok(found)
    }

    /// The gateway refused a text once more: count it.
    pub fn refused(&self, key: &[u8], queued: &Queued) -> Result<(), StoreError> {
        let mut again = queued.clone();
        again.refusals += 1;
        self.spool.insert(key, serde_json::to_vec(&again)?)?;
        Ok(())
    }

    /// A pass's spooled texts done with (accepted, or refused for good): they leave the spool
    /// and join the sent log (the oldest sent records beyond the bound are dropped; a pass may
    /// overshoot it until the next). One commit, written through to the operating system (a
    /// crash of the machine before its next sync may send a text again, under the same id; a
    /// crash of the process does not).
    pub fn finish_all(&self, done: &[(Vec<u8>, Sent)]) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let _appending = self.sent_lock.lock().expect("no panics hold this lock");
        let mut batch = self.db.batch();
        for (key, sent) in done {
            let number = self.next_id()?.to_be_bytes();
            batch.insert(&self.sent, number, serde_json::to_vec(sent)?);
            batch.insert(&self.by_phone, phone_key(&sent.to, &number), number);
            batch.remove(&self.spool, key.as_slice());
        }
        let count = self.sent_count.load(Ordering::Relaxed) + done.len();
        let over = count.saturating_sub(self.sent_keep);
        let mut dropped = 0;
        let mut oldest = self.sent_oldest.load(Ordering::Relaxed);
        for item in self.sent.range(oldest.to_be_bytes()..).take(over) {
            let (number, value) = item.into_inner()?;
            batch.remove(&self.sent, number.clone());
            if let Ok(old) = serde_json::from_slice::<Sent>(&value) {
                batch.remove(&self.by_phone, phone_key(&old.to, &number));
            }
            oldest = u64_of(&number).map_or(oldest, |n| n + 1);
            dropped += 1;
        }
        batch.commit()?;
        self.db.persist(fjall::PersistMode::Buffer)?;
        self.sent_count.store(count - dropped, Ordering::Relaxed);
        self.sent_oldest.store(oldest, Ordering::Relaxed);
        let mut keys = self.keys();
        for (key, _) in done {
            if let Ok(key) = SpoolKey::try_from(key.as_slice()) {
                keys.remove(&key);
            }
        }
        Ok(())
    }

    /// Texts sent to `to`, oldest first.
    pub fn sent_to(&self, to: &str) -> Result<Vec<Sent>, StoreError> {
        let mut prefix = to.as_bytes().to_vec();
        prefix.push(0);
        let mut found = Vec::new();
        for item in self.by_phone.prefix(&prefix) {
            if let Some(value) = self.sent.get(item.value()?)? {
                found.push(serde_json::from_slice(&value)?);
            }
        }
        Ok(found)
    }

    /// Records a delivery report. A gateway's reports can arrive out of order (Kannel calls
    /// back "submitted" and then "delivered" on separate connections), so a final status is
    /// never replaced by an intermediate one.
    pub fn report(&self, report: &Report) -> Result<(), StoreError> {
        if let Some(known) = self.report_for(&report.reference)? {
            if finality(&known.status) > finality(&report.status) {
                return Ok(());
            }
        }
        self.reports
            .insert(report.reference.as_bytes(), serde_json::to_vec(report)?)?;
        self.db.persist(fjall::PersistMode::Buffer)?;
        Ok(())
    }

    /// The report received for a reference, if any.
    pub fn report_for(&self, reference: &str) -> Result<Option<Report>, StoreError> {
        match self.reports.get(reference.as_bytes())? {
            Some(value) => Ok(Some(serde_json::from_slice(&value)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str, keep: usize) -> (SmsStore, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("tuma-sms-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (SmsStore::open(&dir, keep).unwrap(), dir)
    }

    fn queued(id: &str, to: &str) -> Queued {
        Queued {
            id: id.into(),
            to: to.into(),
            text: format!("text of {id}"),
            queued_ms: 1,
            refusals: 0,
        }
    }

    #[test]
    fn texts_are_spooled_in_order_taken_recorded_and_finished_into_the_sent_log() {
        let (store, dir) = store("order", 2);
        assert_eq!(store.taken(3).unwrap(), None);
        store
            .spool(
                3,
                &[
                    (7, queued("tuma-3-7", "254711")),
                    (8, queued("tuma-3-8", "254722")),
                ],
            )
            .unwrap();
        store
            .spool(1, &[(2, queued("tuma-1-2", "254711"))])
            .unwrap();
        assert_eq!(store.taken(3).unwrap(), Some(8));
        let next = store.next_queued(10).unwrap();
        let ids: Vec<&str> = next.iter().map(|(_, q)| q.id.as_str()).collect();
        assert_eq!(ids, ["tuma-1-2", "tuma-3-7", "tuma-3-8"]);
        assert_eq!(store.queued_to("254711").unwrap().len(), 2);
        for (key, q) in &next {
            store.finish_all(&[(key.clone(), sent(q))]).unwrap();
        }
        assert_eq!(store.spooled(), 0);
        // Only the latest two sent records are kept, and the phone index follows.
        let to_711: Vec<String> = store
            .sent_to("254711")
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(to_711, ["tuma-3-7"]);
        assert_eq!(store.sent_to("254722").unwrap().len(), 1);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_spool_and_reports_survive_a_reopen() {
        let (store, dir) = store("reopen", 10);
        store
            .spool(0, &[(1, queued("tuma-0-1", "254711"))])
            .unwrap();
        let report = Report {
            reference: "tuma-0-0".into(),
            status: "delivered".into(),
            detail: None,
            received_ms: 5,
        };
        store.report(&report).unwrap();
        // A late intermediate report does not undo the final one; another final one replaces it.
        let late = Report {
            status: "submitted".into(),
            ..report.clone()
        };
        store.report(&late).unwrap();
        assert_eq!(store.report_for("tuma-0-0").unwrap(), Some(report.clone()));
        drop(store);
        let store = reopen(&dir);
        assert_eq!(store.spooled(), 1);
        assert_eq!(store.taken(0).unwrap(), Some(1));
        assert_eq!(store.report_for("tuma-0-0").unwrap(), Some(report));
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Reopens a store this process just dropped (its worker lets go of the files a moment
    /// later).
    fn reopen(dir: &Path) -> SmsStore {
        let started = std::time::Instant::now();
        loop {
            match SmsStore::open(dir, 10) {
                Ok(store) => return store,
                Err(_) if started.elapsed() < std::time::Duration::from_secs(5) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(error) => panic!("the store never reopened: {error}"),
            }
        }
    }

    /// The ids of the spooled texts, in send order.
    fn queued_ids(store: &SmsStore) -> Vec<String> {
        store
            .next_queued(100)
            .unwrap()
            .into_iter()
            .map(|(_, q)| q.id)
            .collect()
    }

    fn sent(q: &Queued) -> Sent {
        Sent {
            id: q.id.clone(),
            to: q.to.clone(),
            text: q.text.clone(),
            gateway: "log".into(),
            gateway_ref: None,
            sent_ms: 2,
            outcome: "accepted".into(),
        }
    }

    #[test]
    fn a_pass_finished_at_once_leaves_the_spool_and_the_bound_holds_after_the_next() {
        let (store, dir) = store("pass", 2);
        let texts: Vec<(u64, Queued)> = (1..=3)
            .map(|seq| (seq, queued(&format!("tuma-0-{seq}"), "254711")))
            .collect();
        store.spool(0, &texts).unwrap();
        // Taken again after a leader change: the same keys, not counted twice.
        store.spool(0, &texts).unwrap();
        assert_eq!(store.spooled(), 3);
        let done: Vec<(Vec<u8>, Sent)> = store
            .next_queued(10)
            .unwrap()
            .into_iter()
            .map(|(key, q)| (key, sent(&q)))
            .collect();
        store.finish_all(&done).unwrap();
        assert_eq!(store.spooled(), 0);
        assert!(store.next_queued(10).unwrap().is_empty());
        // One pass may overshoot the bound; the next finish brings it back.
        assert_eq!(store.sent_to("254711").unwrap().len(), 3);
        store
            .spool(0, &[(4, queued("tuma-0-4", "254722"))])
            .unwrap();
        let (key, q) = store.next_queued(1).unwrap().remove(0);
        store.finish_all(&[(key, sent(&q))]).unwrap();
        let kept: Vec<String> = ["254711", "254722"]
            .iter()
            .flat_map(|to| store.sent_to(to).unwrap())
            .map(|s| s.id)
            .collect();
        assert_eq!(kept, ["tuma-0-3", "tuma-0-4"]);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn numbers_are_never_handed_out_twice_across_reopens() {
        let (store, dir) = store("ids", 10);
        let mut seen = std::collections::BTreeSet::new();
        let mut first = Some(store);
        for round in 0..3 {
            let store = first.take().unwrap_or_else(|| reopen(&dir));
            for _ in 0..5 {
                assert!(seen.insert(store.next_id().unwrap()), "a number came twice");
            }
            store
                .queue_direct(&queued(&format!("tuma-n1-{round}"), "254711"))
                .unwrap();
            drop(store);
        }
        // Direct texts stay in the order they were queued, after a reopen too.
        let store = reopen(&dir);
        let ids = queued_ids(&store);
        assert_eq!(ids, ["tuma-n1-0", "tuma-n1-1", "tuma-n1-2"]);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Writes what an older build's sled store held: two spooled texts, a direct one, a sent
    /// record with its phone index, a report and a taken mark.
    fn older_sled_store(dir: &Path) -> u64 {
        let db = sled::open(dir).unwrap();
        let spool = db.open_tree("spool").unwrap();
        for seq in [5u64, 6] {
            let q = queued(&format!("tuma-2-{seq}"), "254733");
            spool
                .insert(spool_key(2, seq), serde_json::to_vec(&q).unwrap())
                .unwrap();
        }
        let direct = db.generate_id().unwrap();
        let q = queued("tuma-n1-0", "254733");
        spool
            .insert(
                spool_key(DIRECT_SHARD, direct),
                serde_json::to_vec(&q).unwrap(),
            )
            .unwrap();
        let number = db.generate_id().unwrap().to_be_bytes();
        let record = sent(&queued("tuma-2-4", "254733"));
        db.open_tree("sent")
            .unwrap()
            .insert(number, serde_json::to_vec(&record).unwrap())
            .unwrap();
        db.open_tree("sent_by_phone")
            .unwrap()
            .insert(phone_key("254733", &number), &number)
            .unwrap();
        let report = Report {
            reference: "tuma-2-4".into(),
            status: "delivered".into(),
            detail: None,
            received_ms: 3,
        };
        db.open_tree("reports")
            .unwrap()
            .insert("tuma-2-4", serde_json::to_vec(&report).unwrap())
            .unwrap();
        db.open_tree("taken")
            .unwrap()
            .insert(2u32.to_be_bytes(), &6u64.to_be_bytes())
            .unwrap();
        let last = db.generate_id().unwrap();
        db.flush().unwrap();
        last
    }

    fn assert_moved(store: &SmsStore, sled_last_id: u64) {
        assert_eq!(store.spooled(), 3);
        assert_eq!(store.taken(2).unwrap(), Some(6));
        let ids = queued_ids(store);
        assert_eq!(ids, ["tuma-2-5", "tuma-2-6", "tuma-n1-0"]);
        let sent: Vec<String> = store
            .sent_to("254733")
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(sent, ["tuma-2-4"]);
        assert_eq!(
            store.report_for("tuma-2-4").unwrap().map(|r| r.status),
            Some("delivered".to_string())
        );
        assert!(store.next_id().unwrap() > sled_last_id);
    }

    #[test]
    fn an_older_sled_store_is_moved_in_and_its_directory_removed() {
        let (store, dir) = store("move", 10);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
        let sled_last_id = older_sled_store(&dir);
        let store = reopen(&dir);
        assert_moved(&store, sled_last_id);
        let moving = dir.with_file_name(format!(
            "{}.sled-moving",
            dir.file_name().unwrap().to_string_lossy()
        ));
        assert!(!moving.exists() && !dir.join("conf").exists());
        drop(store);
        // Once moved, a reopen finds the same (nothing is moved twice).
        let store = reopen(&dir);
        assert_moved(&store, sled_last_id);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_move_cut_short_is_done_again_at_the_next_open() {
        let (store, dir) = store("move-again", 10);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let moving = dir.with_file_name(format!("{name}.sled-moving"));
        let _ = std::fs::remove_dir_all(&moving);
        let sled_last_id = older_sled_store(&moving);
        // A crash after the sled store was set aside and part of it copied: the new store
        // holds one of its texts already.
        {
            let partial = fjall::Database::builder(&dir).open().unwrap();
            let spool = partial
                .keyspace("spool", fjall::KeyspaceCreateOptions::default)
                .unwrap();
            let q = queued("tuma-2-5", "254733");
            spool
                .insert(spool_key(2, 5), serde_json::to_vec(&q).unwrap())
                .unwrap();
            partial.persist(fjall::PersistMode::SyncAll).unwrap();
        }
        let store = reopen(&dir);
        assert_moved(&store, sled_last_id);
        assert!(!moving.exists());
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}

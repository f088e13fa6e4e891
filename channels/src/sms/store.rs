//! The SMS channel's own durable store on this node (a sled database beside the node's data):
//! the spool of texts taken from the shards' outboxes and not yet accepted by the gateway, the
//! log of texts sent, and the delivery reports received. Not replicated: the shards' outboxes
//! are, and a text leaves a shard's outbox only once it is spooled here and flushed.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
    Sled(#[from] sled::Error),
    #[error("SMS store record: {0}")]
    Codec(#[from] serde_json::Error),
}

/// The store.
#[derive(Clone)]
pub struct SmsStore {
    /// Texts in the spool and in the sent log, counted here: sled's `len` scans the tree.
    spooled: Arc<AtomicUsize>,
    sent_count: Arc<AtomicUsize>,
    db: sled::Db,
    spool: sled::Tree,
    sent: sled::Tree,
    by_phone: sled::Tree,
    reports: sled::Tree,
    /// `taken/<shard>`: the last outbox sequence number spooled from each shard.
    taken: sled::Tree,
    sent_keep: usize,
}

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

fn spool_key(shard: u32, seq: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&shard.to_be_bytes());
    key[4..].copy_from_slice(&seq.to_be_bytes());
    key
}

impl SmsStore {
    /// Opens (creating) the store in `dir`, keeping the latest `sent_keep` sent texts.
    pub fn open(dir: &Path, sent_keep: usize) -> Result<SmsStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(8 << 20)
            .open()?;
        let spool = db.open_tree("spool")?;
        let sent = db.open_tree("sent")?;
        Ok(SmsStore {
            spooled: Arc::new(AtomicUsize::new(spool.len())),
            sent_count: Arc::new(AtomicUsize::new(sent.len())),
            spool,
            sent,
            by_phone: db.open_tree("sent_by_phone")?,
            reports: db.open_tree("reports")?,
            taken: db.open_tree("taken")?,
            db,
            sent_keep,
        })
    }

    /// The last outbox sequence number spooled from `shard` (`None`: nothing yet).
    pub fn taken(&self, shard: u32) -> Result<Option<u64>, StoreError> {
        Ok(self.taken.get(shard.to_be_bytes())?.map(|v| {
            let bytes: [u8; 8] = v.as_ref().try_into().unwrap_or([0; 8]);
            u64::from_be_bytes(bytes)
        }))
    }

    /// Spools `texts` of `shard` (sequence number, text) and records the last as taken, then
    /// flushes: once this returns, the shard may forget them.
    pub fn spool(&self, shard: u32, texts: &[(u64, Queued)]) -> Result<(), StoreError> {
        self.spool_unflushed(shard, texts)?;
        self.flush()
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// [`SmsStore::spool`] without the flush: several shards' texts then share one.
    pub fn spool_unflushed(&self, shard: u32, texts: &[(u64, Queued)]) -> Result<(), StoreError> {
        let Some((last, _)) = texts.last() else {
            return Ok(());
        };
        for (seq, queued) in texts {
            let key = spool_key(shard, *seq);
            if self
                .spool
                .insert(key, serde_json::to_vec(queued)?)?
                .is_none()
            {
                self.spooled.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.taken
            .insert(shard.to_be_bytes(), &last.to_be_bytes())?;
        Ok(())
    }

    /// Spools a text of this node's own (a reply to an incoming message), after every shard's
    /// texts in send order.
    pub fn queue_direct(&self, queued: &Queued) -> Result<(), StoreError> {
        let key = spool_key(DIRECT_SHARD, self.db.generate_id()?);
        if self
            .spool
            .insert(key, serde_json::to_vec(queued)?)?
            .is_none()
        {
            self.spooled.fetch_add(1, Ordering::Relaxed);
        }
        self.db.flush()?;
        Ok(())
    }

    /// A number never given before in this store.
    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Texts in the spool.
    pub fn spooled(&self) -> usize {
        self.spooled.load(Ordering::Relaxed)
    }

    /// The oldest `limit` spooled texts, with their keys.
    pub fn next_queued(&self, limit: usize) -> Result<Vec<(Vec<u8>, Queued)>, StoreError> {
        self.spool
            .iter()
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((key.to_vec(), serde_json::from_slice(&value)?))
            })
            .collect()
    }

    /// Every spooled text to `to` (an admin's question; scans the spool).
    pub fn queued_to(&self, to: &str) -> Result<Vec<Queued>, StoreError> {
        let mut found = Vec::new();
        for item in self.spool.iter() {
            let (_, value) = item?;
            let queued: Queued = serde_json::from_slice(&value)?;
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

    /// A spooled text is done with (accepted, or refused for good): it leaves the spool and
    /// joins the sent log (the oldest sent records beyond the bound are dropped).
    pub fn finish(&self, key: &[u8], sent: &Sent) -> Result<(), StoreError> {
        let number = self.db.generate_id()?.to_be_bytes();
        let mut phone_key = sent.to.as_bytes().to_vec();
        phone_key.push(0);
        phone_key.extend_from_slice(&number);
        if self
            .sent
            .insert(number, serde_json::to_vec(sent)?)?
            .is_none()
        {
            self.sent_count.fetch_add(1, Ordering::Relaxed);
        }
        self.by_phone.insert(phone_key, &number)?;
        if self.spool.remove(key)?.is_some() {
            self.spooled.fetch_sub(1, Ordering::Relaxed);
        }
        while self.sent_count.load(Ordering::Relaxed) > self.sent_keep {
            let Some((oldest, value)) = self.sent.pop_min()? else {
                break;
            };
            self.sent_count.fetch_sub(1, Ordering::Relaxed);
            if let Ok(old) = serde_json::from_slice::<Sent>(&value) {
                let mut old_key = old.to.as_bytes().to_vec();
                old_key.push(0);
                old_key.extend_from_slice(&oldest);
                self.by_phone.remove(old_key)?;
            }
        }
        Ok(())
    }

    /// Texts sent to `to`, oldest first.
    pub fn sent_to(&self, to: &str) -> Result<Vec<Sent>, StoreError> {
        let mut prefix = to.as_bytes().to_vec();
        prefix.push(0);
        let mut found = Vec::new();
        for item in self.by_phone.scan_prefix(&prefix) {
            let (_, number) = item?;
            if let Some(value) = self.sent.get(number)? {
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
            let sent = Sent {
                id: q.id.clone(),
                to: q.to.clone(),
                text: q.text.clone(),
                gateway: "log".into(),
                gateway_ref: None,
                sent_ms: 2,
                outcome: "accepted".into(),
            };
            store.finish(key, &sent).unwrap();
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
        store.db.flush().unwrap();
        drop(store);
        // sled's flusher thread lets go of the directory's lock a moment after the drop.
        let started = std::time::Instant::now();
        let store = loop {
            match SmsStore::open(&dir, 10) {
                Ok(store) => break store,
                Err(_) if started.elapsed() < std::time::Duration::from_secs(5) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(error) => panic!("the store never reopened: {error}"),
            }
        };
        assert_eq!(store.spooled(), 1);
        assert_eq!(store.taken(0).unwrap(), Some(1));
        assert_eq!(store.report_for("tuma-0-0").unwrap(), Some(report));
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}

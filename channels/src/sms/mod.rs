//! SMS out: every confirmation text a shard's ledger writes is taken by the node that leads the
//! shard into this node's spool (`store.rs`, flushed before the shard forgets it), then sent
//! through the configured gateway (`gateway.rs`) — retried with back-off while the gateway is
//! down, so an outage never holds up money until the spool's bound. Delivery reports come back
//! on `/sms/v1/dlr` (`http.rs`).
//!
//! | file | holds |
//! |---|---|
//! | `store.rs` | the spool, the sent log, the delivery reports (an LSM database, fjall, on this node) |
//! | `store_move.rs` | moving an older build's sled store into it, once, at open |
//! | `gateway.rs` | the gateways: log, Kannel `sendsms`, Africa's Talking |
//! | `reversals.rs` | reversal requests by SMS (forward a confirmation to 456) and care's decision |
//! | `http.rs` | `/sms/v1/dlr`: delivery reports in both gateways' formats; `/sms/v1/inbound`: incoming texts |

mod gateway;
mod http;
pub mod reversals;
pub mod store;
mod store_move;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tuma_service::{unix_ms, Service};

pub use gateway::{africastalking_answer, kannel_answer, Gateway};
pub use http::router;
pub use store::{Queued, Report, Sent, SmsStore, StoreError};

/// Outbox texts taken from a shard per read.
const TAKE_PER_READ: usize = 500;
/// How often the node looks for new texts in the shards it leads.
const TAKE_EVERY: Duration = Duration::from_millis(200);
/// Texts sent per pass, and at once.
const SEND_PER_PASS: usize = 64;
const SENDS_AT_ONCE: usize = 8;
/// A text the gateway refused this many times is given up (recorded as rejected).
const REFUSALS_MAX: u32 = 3;
/// Back-off after a gateway outage: doubling from the first to the last.
const OUTAGE_BACKOFF_FIRST: Duration = Duration::from_secs(1);
const OUTAGE_BACKOFF_LAST: Duration = Duration::from_secs(60);

/// The SMS channel's settings.
#[derive(Clone, Debug)]
pub struct SmsConfig {
    pub gateway: Gateway,
    /// Most texts waiting in the spool; past it the node stops taking texts from the shards
    /// (whose outboxes then hold them, up to their own bound) and raises `tuma_sms_spool_full`.
    pub spool_max: usize,
    /// Sent texts remembered for `GET /admin/v1/sms`.
    pub sent_keep: usize,
}

impl Default for SmsConfig {
    fn default() -> SmsConfig {
        SmsConfig {
            gateway: Gateway::Log,
            spool_max: 1_000_000,
            sent_keep: 200_000,
        }
    }
}

/// One text as `GET /admin/v1/sms` shows it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TextView {
    pub id: String,
    pub to: String,
    pub text: String,
    /// `queued`, `accepted`, `rejected: …`, or the delivery report's status (`delivered`…).
    pub status: String,
    pub gateway: Option<String>,
    /// The gateway's own id for it (its delivery reports name it).
    pub gateway_ref: Option<String>,
    pub queued_ms: Option<u64>,
    pub sent_ms: Option<u64>,
}

/// The SMS channel of one node. Cheap to clone.
#[derive(Clone)]
pub struct Sms {
    inner: Arc<Inner>,
}

struct Inner {
    service: Service,
    store: SmsStore,
    config: SmsConfig,
    client: reqwest::Client,
}

impl Sms {
    /// Opens the channel's store in `dir`.
    pub fn open(service: Service, dir: &Path, config: SmsConfig) -> Result<Sms, StoreError> {
        let store = SmsStore::open(dir, config.sent_keep)?;
        let inner = Inner {
            service,
            store,
            config,
            client: reqwest::Client::new(),
        };
        Ok(Sms {
            inner: Arc::new(inner),
        })
    }

    pub fn gateway(&self) -> &Gateway {
        &self.inner.config.gateway
    }

    /// Starts taking texts from the shards this node leads and sending them, for as long as
    /// the runtime runs.
    pub fn spawn(&self) {
        let taker = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TAKE_EVERY);
            loop {
                tick.tick().await;
                taker.take_texts().await;
            }
        });
        let sender = self.clone();
        tokio::spawn(async move { sender.send_forever().await });
    }

    /// One pass over the led shards: their new texts into the spool (one flush for all), then
    /// acknowledged to each shard.
    pub async fn take_texts(&self) {
        let inner = &self.inner;
        let Ok(shards) = inner.service.led_shards().await else {
            return;
        };
        let mut taken = Vec::new();
        for shard in shards {
            let spooled = inner.store.spooled();
            let full = spooled + TAKE_PER_READ > inner.config.spool_max;
            metrics::gauge!("tuma_sms_spool_messages").set(spooled as f64);
            metrics::gauge!("tuma_sms_spool_full").set(if full { 1.0 } else { 0.0 });
            if full {
                break;
            }
            let from = match inner.store.taken(shard) {
                Ok(taken) => taken.map_or(0, |t| t + 1),
                Err(error) => {
                    tracing::error!(%error, "cannot read the SMS spool");
                    return;
                }
            };
            let Ok(records) = inner.service.sms_outbox(shard, from, TAKE_PER_READ).await else {
                continue;
            };
            let Some(last) = records.last().map(|r| r.seq) else {
                continue;
            };
            let now = unix_ms();
            let queued: Vec<(u64, Queued)> = records
                .into_iter()
                .map(|r| {
                    let text = Queued {
                        id: format!("tuma-{shard}-{}", r.seq),
                        to: r.to.as_str().to_string(),
                        text: r.text,
                        queued_ms: now,
                        refusals: 0,
                    };
                    (r.seq, text)
                })
                .collect();
            if let Err(error) = inner.store.spool_unflushed(shard, &queued) {
                tracing::error!(%error, shard, "cannot spool texts; the shard keeps them");
                return;
            }
            metrics::counter!("tuma_sms_taken_total").increment(queued.len() as u64);
            taken.push((shard, last));
        }
        if taken.is_empty() {
            return;
        }
        if let Err(error) = inner.store.flush() {
            tracing::error!(%error, "cannot flush the SMS spool; the shards keep the texts");
            return;
        }
        for (shard, last) in taken {
            // Not acknowledged (leadership moved): the next leader sends them again, under the
            // same ids.
            let _ = inner.service.sms_taken(shard, last).await;
        }
    }

    async fn send_forever(&self) {
        let mut backoff = OUTAGE_BACKOFF_FIRST;
        loop {
            match self.send_pass().await {
                Pass::Idle => tokio::time::sleep(TAKE_EVERY).await,
                Pass::Sent => backoff = OUTAGE_BACKOFF_FIRST,
                Pass::Outage(why) => {
                    metrics::gauge!("tuma_sms_gateway_up").set(0.0);
                    tracing::warn!(gateway = self.gateway().name(), %why, retry_in_s = backoff.as_secs(), "SMS gateway not taking texts; they wait in the spool");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(OUTAGE_BACKOFF_LAST);
                }
            }
        }
    }

    /// Sends the oldest spooled texts once.
    async fn send_pass(&self) -> Pass {
        let inner = &self.inner;
        let batch = match inner.store.next_queued(SEND_PER_PASS) {
            Ok(batch) if batch.is_empty() => return Pass::Idle,
            Ok(batch) => batch,
            Err(error) => return Pass::Outage(error.to_string()),
        };
        let gateway = &inner.config.gateway;
        let results: Vec<_> = futures::stream::iter(batch)
            .map(|(key, text)| async move {
                let sent = gateway.send(&inner.client, &text).await;
                (key, text, sent)
            })
            .buffer_unordered(SENDS_AT_ONCE)
            .collect()
            .await;
        let mut outage = None;
        let mut done = Vec::with_capacity(results.len());
        for (key, text, sent) in results {
            let outcome = match sent {
                gateway::SendResult::Accepted { gateway_ref } => {
                    metrics::counter!("tuma_sms_sent_total", "gateway" => gateway.name())
                        .increment(1);
                    Some(("accepted".to_string(), gateway_ref))
                }
                gateway::SendResult::Refused(why) if text.refusals + 1 >= REFUSALS_MAX => {
                    metrics::counter!("tuma_sms_rejected_total", "gateway" => gateway.name())
                        .increment(1);
                    tracing::warn!(id = %text.id, %why, "SMS refused for good");
                    Some((format!("rejected: {why}"), None))
                }
                gateway::SendResult::Refused(_) => {
                    let _ = inner.store.refused(&key, &text);
                    None
                }
                gateway::SendResult::Outage(why) => {
                    outage = Some(why);
                    None
                }
            };
            if let Some((outcome, gateway_ref)) = outcome {
                let sent = Sent {
                    id: text.id.clone(),
                    to: text.to.clone(),
                    text: text.text.clone(),
                    gateway: gateway.name().to_string(),
                    gateway_ref,
                    sent_ms: unix_ms(),
                    outcome,
                };
                done.push((key, sent));
            }
        }
        if let Err(error) = inner.store.finish_all(&done) {
            tracing::error!(%error, "cannot record sent SMS; they will be sent again");
        }
        metrics::gauge!("tuma_sms_spool_messages").set(inner.store.spooled() as f64);
        match outage {
            Some(why) => Pass::Outage(why),
            None => {
                metrics::gauge!("tuma_sms_gateway_up").set(1.0);
                Pass::Sent
            }
        }
    }

    /// Texts `to` from this node (a reply, a decision on a request): spooled and sent like
    /// the shards' texts.
    pub fn notify(&self, to: &tuma_actors::msisdn::Msisdn, text: String) -> Result<(), StoreError> {
        let queued = Queued {
            id: format!(
                "tuma-n{}-{}",
                self.inner.service.node_id(),
                self.inner.store.next_id()?
            ),
            to: to.as_str().to_string(),
            text,
            queued_ms: unix_ms(),
            refusals: 0,
        };
        self.inner.store.queue_direct(&queued)
    }

    /// Answers an incoming text from `from` to `to` (a reversal request to 456, or help) by SMS.
    pub async fn incoming(
        &self,
        from: &tuma_actors::msisdn::Msisdn,
        to: &str,
        text: &str,
    ) -> Result<String, StoreError> {
        metrics::counter!("tuma_sms_incoming_total").increment(1);
        let reply = reversals::answer_incoming(&self.inner.service, *from, to, text).await;
        self.notify(from, reply.clone())?;
        Ok(reply)
    }

    /// Records a delivery report.
    pub fn record_report(&self, report: Report) -> Result<(), StoreError> {
        metrics::counter!("tuma_sms_reports_total", "status" => report.status.clone()).increment(1);
        self.inner.store.report(&report)
    }

    /// What this node queued and sent to `msisdn`, with the latest delivery report of each.
    pub fn texts_to(&self, msisdn: &str) -> Result<Vec<TextView>, StoreError> {
        let store = &self.inner.store;
        let mut views = Vec::new();
        for queued in store.queued_to(msisdn)? {
            views.push(TextView {
                id: queued.id,
                to: queued.to,
                text: queued.text,
                status: "queued".into(),
                gateway: None,
                gateway_ref: None,
                queued_ms: Some(queued.queued_ms),
                sent_ms: None,
            });
        }
        for sent in store.sent_to(msisdn)? {
            let reported = [Some(&sent.id), sent.gateway_ref.as_ref()]
                .into_iter()
                .flatten()
                .find_map(|reference| store.report_for(reference).ok().flatten());
            views.push(TextView {
                status: reported.map_or(sent.outcome.clone(), |r| r.status),
                id: sent.id,
                to: sent.to,
                text: sent.text,
                gateway: Some(sent.gateway),
                gateway_ref: sent.gateway_ref,
                queued_ms: None,
                sent_ms: Some(sent.sent_ms),
            });
        }
        Ok(views)
    }

    /// The delivery report this node received for a reference (our id or the gateway's),
    /// wherever the text was sent from: views gathered across nodes join them.
    pub fn report_for(&self, reference: &str) -> Option<Report> {
        self.inner.store.report_for(reference).ok().flatten()
    }
}

/// How a send pass went.
enum Pass {
    Idle,
    Sent,
    Outage(String),
}

/// Maps a gateway's delivery status to ours.
pub fn report_status(gateway: &str, status: &str) -> String {
    let ours = match (gateway, status) {
        ("kannel", "1") => "delivered",
        ("kannel", "2") => "failed",
        ("kannel", "4") => "buffered",
        ("kannel", "8") => "submitted",
        ("kannel", "16") => "rejected",
        (_, "Success") => "delivered",
        (_, "Failed") => "failed",
        (_, "Rejected") => "rejected",
        (_, "Buffered") => "buffered",
        (_, "Sent") | (_, "Submitted") => "submitted",
        (_, other) => return format!("unknown: {}", other.chars().take(32).collect::<String>()),
    };
    ours.to_string()
}

/// The fields of a report, whichever way they came.
pub type Fields = BTreeMap<String, String>;

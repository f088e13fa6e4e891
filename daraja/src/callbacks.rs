//! Delivering the callback outboxes of the shards this node leads: each pass reads the oldest
//! undelivered callbacks of every led shard, posts those that are due to their URLs (a few at
//! a time, each with a timeout), and acknowledges the delivered ones to the shard
//! (`CallbacksDelivered`), which forgets them. A failed post is retried with back-off,
//! doubling per callback from `retry_first` to `retry_last`, for as long as it takes: a
//! receiver down for an hour gets everything when it returns. Delivery is at least once (a
//! leader change or a lost acknowledgement repeats a post); every post carries the header
//! `X-Tuma-Callback-Id: <shard>-<seq>`, stable across repeats, to deduplicate by.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tuma_actors::ledger::{Callback, CallbackEvent};

use crate::{daraja_result, ids, Daraja};

/// How often a pass runs.
const PASS_EVERY: Duration = Duration::from_millis(200);
/// Pages of a shard's outbox read per pass, looking for callbacks that are due.
const PAGES_PER_PASS: usize = 5;
/// Callbacks per page.
const PAGE: usize = 500;

/// Callback delivery settings.
#[derive(Clone, Debug)]
pub struct CallbackConfig {
    /// A receiver has this long to answer a post.
    pub timeout: Duration,
    /// Wait before the first retry of a failed post, doubling up to `retry_last`.
    pub retry_first: Duration,
    pub retry_last: Duration,
    /// Most posts under way at once.
    pub at_once: usize,
    /// Most posts per shard per pass.
    pub per_pass: usize,
}

impl Default for CallbackConfig {
    fn default() -> CallbackConfig {
        CallbackConfig {
            timeout: Duration::from_secs(10),
            retry_first: Duration::from_secs(1),
            retry_last: Duration::from_secs(60),
            at_once: 16,
            per_pass: 200,
        }
    }
}

/// The JSON posted to a prompt's `CallBackURL`, in Daraja's `stkCallback` form: with
/// `CallbackMetadata` (Amount, MpesaReceiptNumber, TransactionDate, PhoneNumber) when paid.
pub fn stk_callback_body(event: &CallbackEvent) -> Value {
    let CallbackEvent::PromptClosed {
        checkout_id,
        merchant_request_id,
        result,
        txn_id,
        amount,
        phone,
        closed_ms,
    } = event
    else {
        return Value::Null;
    };
    let (code, description) = daraja_result(*result);
    let mut callback = json!({
        "MerchantRequestID": merchant_request_id,
        "CheckoutRequestID": checkout_id,
        "ResultCode": code,
        "ResultDesc": description,
    });
    if let (true, Some(receipt)) = (result.is_success(), txn_id) {
        let shillings = amount.cents() / 100;
        let date: u64 = ids::timestamp(*closed_ms).parse().unwrap_or(0);
        let phone: u64 = phone.as_str().parse().unwrap_or(0);
        callback["CallbackMetadata"] = json!({"Item": [
            {"Name": "Amount", "Value": shillings},
            {"Name": "MpesaReceiptNumber", "Value": receipt.to_string()},
            {"Name": "TransactionDate", "Value": date},
            {"Name": "PhoneNumber", "Value": phone},
        ]});
    }
    json!({"Body": {"stkCallback": callback}})
}

fn body_of(callback: &Callback) -> Value {
    match &callback.event {
        event @ CallbackEvent::PromptClosed { .. } => stk_callback_body(event),
        event @ CallbackEvent::C2bConfirmation { .. } => {
            crate::c2b::c2b_confirmation_body(event).unwrap_or_default()
        }
        event @ CallbackEvent::PayoutClosed { .. } => {
            // The queue-timeout URL is where a timed-out order's body goes; a result names it.
            crate::results::payout_body(event, &callback.url).unwrap_or_default()
        }
        CallbackEvent::Rendered { body } => {
            serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.clone()))
        }
    }
}

/// When a failed callback is next tried, and the wait after that.
struct Backoff {
    next: Instant,
    wait: Duration,
}

enum Posted {
    Delivered,
    /// Never to be sent: this node's policy refuses its URL.
    Refused,
    Failed,
}

pub(crate) async fn deliver(daraja: Daraja) {
    let config = daraja.config().callbacks.clone();
    let client = match reqwest::Client::builder()
        .timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the callback client; callbacks stay queued");
            return;
        }
    };
    let mut backoff: HashMap<(u32, u64), Backoff> = HashMap::new();
    loop {
        tokio::time::sleep(PASS_EVERY).await;
        let Ok(shards) = daraja.service().led_shards().await else {
            continue;
        };
        // A shard led elsewhere now is that node's to deliver; forget its retry state.
        backoff.retain(|(shard, _), _| shards.contains(shard));
        let mut due = Vec::new();
        for shard in shards {
            let callbacks = due_callbacks(&daraja, shard, &backoff, config.per_pass).await;
            due.extend(callbacks.into_iter().map(|callback| (shard, callback)));
        }
        if due.is_empty() {
            continue;
        }
        // Every shard's due callbacks in one stream: a receiver that hangs holds up only its
        // own posts (each within the timeout), not other shards' or other businesses'.
        let posts = futures::stream::iter(due)
            .map(|(shard, callback)| {
                let client = &client;
                let daraja = &daraja;
                async move {
                    let posted = post(client, daraja, shard, &callback).await;
                    (shard, callback.seq, posted)
                }
            })
            .buffer_unordered(config.at_once.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut done: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for (shard, seq, posted) in posts {
            match posted {
                Posted::Delivered | Posted::Refused => {
                    backoff.remove(&(shard, seq));
                    done.entry(shard).or_default().push(seq);
                }
                Posted::Failed => {
                    let entry = backoff.entry((shard, seq)).or_insert(Backoff {
                        next: Instant::now(),
                        wait: config.retry_first / 2,
                    });
                    entry.wait = (entry.wait * 2).clamp(config.retry_first, config.retry_last);
                    entry.next = Instant::now() + entry.wait;
                }
            }
        }
        for (shard, seqs) in done {
            // Lost acknowledgements are posted again next pass: at least once.
            if let Err(error) = daraja.service().callbacks_delivered(shard, seqs).await {
                tracing::debug!(shard, %error, "callback acknowledgement not recorded");
            }
        }
    }
}

/// Up to `limit` undelivered callbacks of `shard` that are not waiting out a back-off.
async fn due_callbacks(
    daraja: &Daraja,
    shard: u32,
    backoff: &HashMap<(u32, u64), Backoff>,
    limit: usize,
) -> Vec<Callback> {
    let now = Instant::now();
    let mut due = Vec::new();
    let mut from_seq = 0;
    for _ in 0..PAGES_PER_PASS {
        let Ok(page) = daraja.service().callbacks(shard, from_seq, PAGE).await else {
            break;
        };
        let Some(last) = page.last().map(|c| c.seq) else {
            break;
        };
        let full = page.len() == PAGE;
        due.extend(
            page.into_iter()
                .filter(|c| backoff.get(&(shard, c.seq)).is_none_or(|b| b.next <= now)),
        );
        if due.len() >= limit || !full {
            break;
        }
        from_seq = last + 1;
    }
    due.truncate(limit);
    due
}

async fn post(
    client: &reqwest::Client,
    daraja: &Daraja,
    shard: u32,
    callback: &Callback,
) -> Posted {
    if let Err(refused) = daraja.config().urls.check("CallBackURL", &callback.url) {
        tracing::warn!(shard, seq = callback.seq, url = %callback.url, error = %refused.message,
            "a callback URL this node refuses; the callback is dropped");
        metrics::counter!("tuma_daraja_callbacks_refused_total").increment(1);
        return Posted::Refused;
    }
    let sent = client
        .post(&callback.url)
        .header("X-Tuma-Callback-Id", format!("{shard}-{}", callback.seq))
        .json(&body_of(callback))
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => {
            metrics::counter!("tuma_daraja_callbacks_delivered_total").increment(1);
            Posted::Delivered
        }
        Ok(response) => {
            tracing::debug!(shard, seq = callback.seq, status = %response.status(), "callback refused by its receiver; retrying later");
            metrics::counter!("tuma_daraja_callbacks_failed_total").increment(1);
            Posted::Failed
        }
        Err(error) => {
            tracing::debug!(shard, seq = callback.seq, %error, "callback not delivered; retrying later");
            metrics::counter!("tuma_daraja_callbacks_failed_total").increment(1);
            Posted::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use tuma_actors::money::Money;
    use tuma_actors::msisdn::Msisdn;
    use tuma_actors::outcome::ResultCode;

    use super::*;

    fn closed(result: ResultCode, receipt: Option<&str>) -> CallbackEvent {
        CallbackEvent::PromptClosed {
            checkout_id: "ws_CO_191220191020363925".into(),
            merchant_request_id: "29115-34620561-1".into(),
            result,
            txn_id: receipt.map(|r| r.parse().unwrap()),
            amount: Money::from_cents(100),
            phone: Msisdn::parse("254708374149").unwrap(),
            closed_ms: 1_576_740_075_000,
        }
    }

    #[test]
    fn a_paid_prompt_posts_darajas_success_callback_with_its_metadata() {
        let body = stk_callback_body(&closed(ResultCode::Success, Some("NLJ7RT61SV")));
        assert_eq!(
            body,
            json!({"Body": {"stkCallback": {
                "MerchantRequestID": "29115-34620561-1",
                "CheckoutRequestID": "ws_CO_191220191020363925",
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "CallbackMetadata": {"Item": [
                    {"Name": "Amount", "Value": 1},
                    {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
                    {"Name": "TransactionDate", "Value": 20191219102115u64},
                    {"Name": "PhoneNumber", "Value": 254708374149u64},
                ]},
            }}})
        );
    }

    #[test]
    fn a_declined_prompt_posts_no_metadata() {
        let body = stk_callback_body(&closed(ResultCode::Declined, None));
        let callback = &body["Body"]["stkCallback"];
        assert_eq!(callback["ResultCode"], 1032);
        assert_eq!(callback["ResultDesc"], "Request cancelled by user");
        assert!(callback.get("CallbackMetadata").is_none());
    }
}

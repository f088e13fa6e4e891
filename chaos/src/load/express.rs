//! M-Pesa Express as a business and its customer use it: the business's token (fetched with
//! its consumer key and secret, cached until shortly before it expires), the push, then the
//! customer's answer in the app channel (`POST /v1/prompts/{CheckoutRequestID}`), sent until
//! final like any transfer (the payment's id names the prompt, so a repeat is harmless). A
//! push is repeated only when it never reached a node (a refused connection): Daraja has no
//! idempotency key for it, so a push whose answer was lost is given up — its prompt waits,
//! unanswered, and expires.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::gateway::{Answer, Gateway};
use super::order::{Order, Outcome};
use crate::sim::SimRng;

/// A token is fetched again this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// The `Timestamp` pushes carry (the password is built from it).
const TIMESTAMP: &str = "20250101120000";

/// A business that collects through M-Pesa Express.
#[derive(Clone, Debug)]
pub struct Business {
    pub shortcode: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub passkey: String,
    /// Where its prompts' outcomes are posted.
    pub callback_url: String,
    /// The initiator its payouts are ordered by, and its password encrypted under the
    /// cluster's certificate (Daraja's `SecurityCredential`).
    pub initiator: String,
    pub security_credential: String,
    /// Where its payouts' results, and its orders that time out in the queue, are posted.
    pub result_url: String,
    pub queue_timeout_url: String,
}

/// The business's current token and when to fetch another.
#[derive(Clone, Debug, Default)]
pub(super) struct TokenCache(Arc<Mutex<Option<(String, Instant)>>>);

impl Gateway {
    /// A push for `order` (a customer paying the business's paybill, whole shillings), then the
    /// customer's answer: the PIN, or a decline. The answer's id is the payment's transfer id
    /// (`stk:<CheckoutRequestID>`), empty when no prompt was opened.
    pub async fn stk_push(&self, order: &Order, decline: bool, rng: &mut SimRng) -> Answer {
        let Some(business) = &self.business else {
            return Answer::not_sent("no business to push for");
        };
        let Some(token) = self.token(business, rng).await else {
            return Answer {
                last_error: Some("no access token".into()),
                ..Answer::new("", Outcome::Failed("no_token".into()))
            };
        };
        let checkout = match self.push(business, &token, order, rng).await {
            Ok(checkout) => checkout,
            Err(answer) => return answer,
        };
        let id = format!("stk:{checkout}");
        let path = format!("/v1/prompts/{checkout}");
        let body = if decline {
            json!({"decline": true, "msisdn": order.from})
        } else {
            json!({"pin": self.pin(), "msisdn": order.from})
        };
        let mut answer = self.post_until_final(&id, &path, &body, false, rng).await;
        if decline && !matches!(answer.outcome, Outcome::Ambiguous) {
            answer.outcome = Outcome::Failed("declined".into());
        }
        answer
    }

    /// The business's token, fetched (on any node, until the retry policy gives up) when
    /// there is none or it is about to expire.
    pub(super) async fn token(&self, business: &Business, rng: &mut SimRng) -> Option<String> {
        if let Some((token, fresh_until)) = self.tokens.0.lock().expect("no panics").clone() {
            if Instant::now() < fresh_until {
                return Some(token);
            }
        }
        let since = Instant::now();
        let mut attempts = 0;
        while let Some(url) = self.next_attempt(&mut attempts, since, rng).await {
            let sent = self
                .client
                .get(format!(
                    "{url}/oauth/v1/generate?grant_type=client_credentials"
                ))
                .basic_auth(&business.consumer_key, Some(&business.consumer_secret))
                .send()
                .await;
            let Ok(response) = sent else { continue };
            if !response.status().is_success() {
                continue;
            }
            let Ok(json) = response.json::<Value>().await else {
                continue;
            };
            let token = json["access_token"].as_str()?.to_string();
            let lifetime: u64 = json["expires_in"].as_str()?.parse().ok()?;
            let fresh_until =
                Instant::now() + Duration::from_secs(lifetime).saturating_sub(TOKEN_MARGIN);
            *self.tokens.0.lock().expect("no panics") = Some((token.clone(), fresh_until));
            return Some(token);
        }
        None
    }

    /// The push: its CheckoutRequestID, or the answer that ends the request (a refusal, or
    /// ambiguous when the node's answer was lost).
    async fn push(
        &self,
        business: &Business,
        token: &str,
        order: &Order,
        rng: &mut SimRng,
    ) -> Result<String, Answer> {
        let password = STANDARD.encode(format!(
            "{}{}{TIMESTAMP}",
            business.shortcode, business.passkey
        ));
        let body = json!({
            "BusinessShortCode": business.shortcode, "Password": password, "Timestamp": TIMESTAMP,
            "TransactionType": "CustomerPayBillOnline", "Amount": order.amount_cents / 100,
            "PartyA": order.from, "PartyB": business.shortcode, "PhoneNumber": order.from,
            "CallBackURL": business.callback_url, "AccountReference": "ACC-1",
            "TransactionDesc": "chaos",
        });
        let since = Instant::now();
        let mut answer = Answer::new("", Outcome::Ambiguous);
        while let Some(url) = self.next_attempt(&mut answer.attempts, since, rng).await {
            let sent = self
                .client
                .post(format!("{url}/mpesa/stkpush/v1/processrequest"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                // Never reached a node: safe to try another.
                Err(error) if error.is_connect() => {
                    answer.last_error = Some(format!("{url}: {error}"));
                    continue;
                }
                Err(error) => {
                    answer.last_error = Some(format!("{url}: {error}"));
                    return Err(answer);
                }
            };
            let status = response.status().as_u16();
            let json: Value = response.json().await.unwrap_or(Value::Null);
            if let Some(checkout) = json["CheckoutRequestID"].as_str() {
                return Ok(checkout.to_string());
            }
            answer.last_error = Some(format!("{url}: HTTP {status} {json}"));
            // Busy customer, bad request, bad credentials: final. 503 (no leader): unknown.
            if status != 503 {
                let code = json["errorCode"].as_str().unwrap_or("unknown");
                answer.outcome = Outcome::Failed(format!("push refused {code}"));
            }
            return Err(answer);
        }
        Err(answer)
    }
}

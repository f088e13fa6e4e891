//! B2C payouts as a business makes them: the business's token, the order
//! (`POST /mpesa/b2c/v3/paymentrequest`) under its own `OriginatorConversationID`, sent again
//! after a lost answer (the key makes a repeat harmless: a recorded order answers Daraja's
//! duplicate error, and the node is asked which order holds the key), then the payment's
//! outcome read until final (`GET /v1/transfers/pay:<ConversationID>`). The answer's id is the
//! payment's transfer id, or `b2c:<OriginatorConversationID>` when no node told which order
//! the key names (the checker resolves it after healing).

use std::time::Instant;

use serde_json::{json, Value};

use super::gateway::{Answer, Gateway};
use super::order::{Order, Outcome};
use crate::sim::SimRng;

/// The id a payout is known by before its order's conversation id is.
pub fn unresolved_id(originator: &str) -> String {
    format!("b2c:{originator}")
}

impl Gateway {
    /// A B2C payout of `order` (the business → a customer, whole shillings) under the key
    /// `originator`, and the payment's outcome.
    pub async fn b2c(&self, order: &Order, originator: &str, rng: &mut SimRng) -> Answer {
        let Some(business) = self.business.clone() else {
            return Answer::not_sent("no business to pay out for");
        };
        let Some(token) = self.token(&business, rng).await else {
            return Answer {
                last_error: Some("no access token".into()),
                ..Answer::new(
                    &unresolved_id(originator),
                    Outcome::Failed("no_token".into()),
                )
            };
        };
        let body = json!({
            "OriginatorConversationID": originator, "InitiatorName": business.initiator,
            "SecurityCredential": business.security_credential, "CommandID": "BusinessPayment",
            "Amount": order.amount_cents / 100, "PartyA": business.shortcode,
            "PartyB": order.to, "Remarks": "chaos payout",
            "QueueTimeOutURL": business.queue_timeout_url, "ResultURL": business.result_url,
            "Occassion": "",
        });
        let mut answer = Answer::new(&unresolved_id(originator), Outcome::Ambiguous);
        let since = Instant::now();
        let mut conversation = None;
        while conversation.is_none() {
            let Some(url) = self.next_attempt(&mut answer.attempts, since, rng).await else {
                break;
            };
            let sent = self
                .client
                .post(format!("{url}/mpesa/b2c/v3/paymentrequest"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(error) => {
                    answer.last_error = Some(format!("{url}: {error}"));
                    continue;
                }
            };
            let status = response.status().as_u16();
            let json: Value = response.json().await.unwrap_or(Value::Null);
            if let Some(id) = json["ConversationID"].as_str() {
                conversation = Some(id.to_string());
            } else if json["errorCode"] == "500.002.1001" {
                // An earlier attempt was recorded: which order holds the key?
                conversation = self
                    .payout_conversation(&business.shortcode, originator, rng)
                    .await;
            } else if matches!(status, 400 | 401 | 404 | 405) {
                answer.outcome = Outcome::Failed(format!("order refused {}", json["errorCode"]));
                answer.last_error = Some(format!("{url}: HTTP {status} {json}"));
                return answer;
            } else {
                answer.last_error = Some(format!("{url}: HTTP {status} {json}"));
            }
        }
        let Some(conversation) = conversation else {
            return answer;
        };
        answer.id = format!("pay:{conversation}");
        let from = format!("business:{}", business.shortcode);
        let paid = self.status_until_final(&answer.id, &from, rng).await;
        answer.outcome = paid.outcome;
        answer.last_error = paid.last_error;
        answer
    }

    /// Which order holds a business's key (the admin API), if a node says.
    async fn payout_conversation(
        &self,
        shortcode: &str,
        originator: &str,
        rng: &mut SimRng,
    ) -> Option<String> {
        let url = self.targets.pick(rng);
        let response = self
            .client
            .get(format!(
                "{url}/admin/v1/businesses/{shortcode}/payouts/{originator}"
            ))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .ok()?;
        let json: Value = response.json().await.ok()?;
        json["conversation_id"].as_str().map(str::to_string)
    }

    /// A transfer's status read from random nodes until it is final (confirmed or failed),
    /// for as long as the retry policy allows.
    async fn status_until_final(&self, id: &str, from: &str, rng: &mut SimRng) -> Answer {
        let mut answer = Answer::new(id, Outcome::Ambiguous);
        let since = Instant::now();
        while let Some(url) = self.next_attempt(&mut answer.attempts, since, rng).await {
            let sent = self
                .client
                .get(format!("{url}/v1/transfers/{id}?from={from}"))
                .bearer_auth(&self.admin_token)
                .send()
                .await;
            let Ok(response) = sent else { continue };
            if response.status() != 200 {
                continue;
            }
            let json: Value = response.json().await.unwrap_or(Value::Null);
            if matches!(json["status"].as_str(), Some("confirmed" | "failed")) {
                answer.outcome = Outcome::of_answer(&json);
                return answer;
            }
        }
        answer
    }
}

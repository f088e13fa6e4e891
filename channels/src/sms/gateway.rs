//! The gateways a text leaves through: the node log (`log`, the default), Kannel's `sendsms`
//! HTTP interface (`kannel`), and Africa's Talking's messaging API (`africastalking`). Each
//! send is accepted, refused (this text: it will not go as it is), or meets an outage (the
//! gateway: try everything again later).

use std::time::Duration;

use serde_json::Value;

use super::store::Queued;

/// How long one send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A configured gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gateway {
    /// Texts are written to the node log (target `tuma::sms`).
    Log,
    /// Kannel's smsbox: `GET <url>/cgi-bin/sendsms?username=&password=&to=&text=…`, with a
    /// `dlr-url` back to this node.
    Kannel {
        url: String,
        username: String,
        password: String,
        from: Option<String>,
        /// Where Kannel sends delivery reports: this node's `/sms/v1/dlr`.
        dlr_url: Option<String>,
    },
    /// Africa's Talking: `POST <url>/version1/messaging`, form `username, to, message, from`,
    /// header `apiKey`.
    AfricasTalking {
        url: String,
        username: String,
        api_key: String,
        from: Option<String>,
    },
}

/// What became of one send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendResult {
    Accepted {
        gateway_ref: Option<String>,
    },
    /// The gateway will not take this text (a bad number…).
    Refused(String),
    /// The gateway is not taking anything now.
    Outage(String),
}

impl Gateway {
    pub fn name(&self) -> &'static str {
        match self {
            Gateway::Log => "log",
            Gateway::Kannel { .. } => "kannel",
            Gateway::AfricasTalking { .. } => "africastalking",
        }
    }

    /// Sends one text.
    pub async fn send(&self, client: &reqwest::Client, text: &Queued) -> SendResult {
        match self {
            Gateway::Log => {
                tracing::info!(target: "tuma::sms", to = %text.to, id = %text.id, "{}", text.text);
                SendResult::Accepted { gateway_ref: None }
            }
            Gateway::Kannel { url, .. } => {
                let request = client
                    .get(format!("{}/cgi-bin/sendsms", url.trim_end_matches('/')))
                    .query(&self.kannel_query(text))
                    .timeout(SEND_TIMEOUT);
                match request.send().await {
                    Err(error) => SendResult::Outage(format!("kannel unreachable: {error}")),
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.text().await.unwrap_or_default();
                        kannel_answer(status, &body)
                    }
                }
            }
            Gateway::AfricasTalking {
                url,
                username,
                api_key,
                from,
            } => {
                let mut form = vec![
                    ("username", username.clone()),
                    ("to", format!("+{}", text.to)),
                    ("message", text.text.clone()),
                ];
                if let Some(from) = from {
                    form.push(("from", from.clone()));
                }
                let request = client
                    .post(format!("{}/version1/messaging", url.trim_end_matches('/')))
                    .header("apiKey", api_key)
                    .header("Accept", "application/json")
                    .form(&form)
                    .timeout(SEND_TIMEOUT);
                match request.send().await {
                    Err(error) => {
                        SendResult::Outage(format!("africastalking unreachable: {error}"))
                    }
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.text().await.unwrap_or_default();
                        africastalking_answer(status, &body)
                    }
                }
            }
        }
    }

    /// The `sendsms` query for a text: our id rides in the `dlr-url`, so the report names it.
    pub fn kannel_query(&self, text: &Queued) -> Vec<(&'static str, String)> {
        let Gateway::Kannel {
            username,
            password,
            from,
            dlr_url,
            ..
        } = self
        else {
            return Vec::new();
        };
        let mut query = vec![
            ("username", username.clone()),
            ("password", password.clone()),
            ("to", text.to.clone()),
            ("text", text.text.clone()),
            ("charset", "UTF-8".into()),
            ("coding", "0".into()),
        ];
        if let Some(from) = from {
            query.push(("from", from.clone()));
        }
        if let Some(dlr_url) = dlr_url {
            // Kannel fills %d (the report's type) when it calls back.
            let separator = if dlr_url.contains('?') { '&' } else { '?' };
            query.push(("dlr-mask", "31".into()));
            query.push((
                "dlr-url",
                format!(
                    "{dlr_url}{separator}gateway=kannel&id={}&status=%d",
                    text.id
                ),
            ));
        }
        query
    }
}

/// Kannel answers `202 0: Accepted for delivery` (or `3: Queued for later delivery`); 4xx
/// refuses the message; anything else is an outage.
pub fn kannel_answer(status: u16, body: &str) -> SendResult {
    match status {
        200..=299 => SendResult::Accepted { gateway_ref: None },
        400..=499 => SendResult::Refused(format!("kannel {status}: {}", body.trim())),
        _ => SendResult::Outage(format!("kannel {status}: {}", body.trim())),
    }
}

/// Africa's Talking answers `201 {"SMSMessageData":{"Recipients":[{"statusCode":101,
/// "messageId":…}]}}`; status codes 100–102 are accepted (processed, sent, queued).
pub fn africastalking_answer(status: u16, body: &str) -> SendResult {
    match status {
        200..=299 => {
            let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let recipient = &parsed["SMSMessageData"]["Recipients"][0];
            match recipient["statusCode"].as_u64() {
                Some(100..=102) => SendResult::Accepted {
                    gateway_ref: recipient["messageId"].as_str().map(str::to_string),
                },
                Some(code) => SendResult::Refused(format!(
                    "africastalking {code}: {}",
                    recipient["status"].as_str().unwrap_or("?")
                )),
                None => SendResult::Refused(format!("africastalking: no recipient in {body:?}")),
            }
        }
        // A wrong key or an exhausted account stops every send until someone acts.
        401 | 403 => SendResult::Outage(format!("africastalking {status}: {}", body.trim())),
        400..=499 => SendResult::Refused(format!("africastalking {status}: {}", body.trim())),
        _ => SendResult::Outage(format!("africastalking {status}: {}", body.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kannel_answers_are_read() {
        assert_eq!(
            kannel_answer(202, "0: Accepted for delivery"),
            SendResult::Accepted { gateway_ref: None }
        );
        assert!(matches!(
            kannel_answer(403, "Authorization failed"),
            SendResult::Refused(_)
        ));
        assert!(matches!(kannel_answer(503, ""), SendResult::Outage(_)));
    }

    #[test]
    fn africastalking_answers_are_read() {
        let ok = r#"{"SMSMessageData":{"Message":"Sent to 1/1 Total Cost: KES 0.8000","Recipients":[{"statusCode":101,"number":"+254711000000","status":"Success","cost":"KES 0.8000","messageId":"ATXid_abc123"}]}}"#;
        assert_eq!(
            africastalking_answer(201, ok),
            SendResult::Accepted {
                gateway_ref: Some("ATXid_abc123".into())
            }
        );
        let bad = r#"{"SMSMessageData":{"Recipients":[{"statusCode":403,"status":"InvalidPhoneNumber"}]}}"#;
        assert!(
            matches!(africastalking_answer(201, bad), SendResult::Refused(r) if r.contains("InvalidPhoneNumber"))
        );
        assert!(matches!(
            africastalking_answer(401, "bad key"),
            SendResult::Outage(_)
        ));
        assert!(matches!(
            africastalking_answer(500, ""),
            SendResult::Outage(_)
        ));
    }

    #[test]
    fn the_kannel_query_carries_our_id_in_the_report_url() {
        let gateway = Gateway::Kannel {
            url: "http://k".into(),
            username: "u".into(),
            password: "p".into(),
            from: Some("MPESA".into()),
            dlr_url: Some("http://node/sms/v1/dlr".into()),
        };
        let text = Queued {
            id: "tuma-3-9".into(),
            to: "254711000001".into(),
            text: "hello".into(),
            queued_ms: 0,
            refusals: 0,
        };
        let query = gateway.kannel_query(&text);
        let dlr = query.iter().find(|(k, _)| *k == "dlr-url").unwrap();
        assert_eq!(
            dlr.1,
            "http://node/sms/v1/dlr?gateway=kannel&id=tuma-3-9&status=%d"
        );
        assert!(query.contains(&("from", "MPESA".into())));
        assert!(query.contains(&("to", "254711000001".into())));
    }
}

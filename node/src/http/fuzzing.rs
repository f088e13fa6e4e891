//! What the `http_requests` fuzz target (`fuzz/fuzz_targets/http_requests.rs`) drives with
//! arbitrary bytes: every request body and query string type of the HTTP API as the router
//! reads them (serde, with their limits), the transfer's whole validation, the field
//! validators every handler uses, and the middleware that reads every request and answer
//! (the audit trail's target and outcome, the request budgets' phone number) and the cursors
//! callers send back. None of it may panic, whatever the bytes.

use axum::extract::Query;
use axum::http::{StatusCode, Uri};
use serde::de::DeserializeOwned;

/// One fuzz input: the first byte picks what reads the rest.
pub fn request(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 8 {
        0 => bodies(rest),
        1 => {
            if let Ok(body) = serde_json::from_slice::<super::app::TransferIn>(rest) {
                let _ = super::app::parse_transfer(&body);
            }
        }
        2 => queries(&text),
        3 => {
            let _ = super::admin::text_field("name", &text, 64);
            let _ = super::admin::digits_field("id_number", &text, 20);
            let _ = super::admin::pin_field(&text);
            let _ = super::app::amount_field(&text);
        }
        4 => {
            let (path, body) = split(&text);
            let _ = super::audit_log::target_of(path, body.as_bytes());
            let status = StatusCode::from_u16(400 + u16::from(which % 100)).unwrap_or_default();
            let _ = super::audit_log::outcome_of(status, Some(rest));
        }
        5 => {
            let (path, body) = split(&text);
            let (path, query) = path.split_once('?').unwrap_or((path, ""));
            let _ = super::request_limits::msisdn_named(path, Some(query), body.as_bytes());
        }
        6 => {
            let _ = super::backup::unhex(&text);
            let _ = tuma_service::audit_log::AuditCursor::parse(&text);
        }
        _ => {
            let _ = serde_json::from_slice::<super::bulk::BulkIn>(rest);
        }
    }
}

/// `path` then a newline then the body.
fn split(text: &str) -> (&str, &str) {
    text.split_once('\n').unwrap_or((text, ""))
}

fn body<T: DeserializeOwned>(bytes: &[u8]) {
    let _ = serde_json::from_slice::<T>(bytes);
}

/// Every JSON body type an endpoint takes.
fn bodies(bytes: &[u8]) {
    use super::*;
    body::<admin::CustomerIn>(bytes);
    body::<admin::AgentIn>(bytes);
    body::<admin::BusinessIn>(bytes);
    body::<admin::FloatIn>(bytes);
    body::<admin::PinIn>(bytes);
    body::<admin::PanicIn>(bytes);
    body::<admin::ClockIn>(bytes);
    body::<backup::PauseBody>(bytes);
    body::<businesses::InitiatorIn>(bytes);
    body::<businesses::MoveIn>(bytes);
    body::<care::ReversalIn>(bytes);
    body::<keys::CreateBody>(bytes);
    body::<members::JoinBody>(bytes);
    body::<prompts::AnswerIn>(bytes);
}

fn query<T: DeserializeOwned>(uri: &Uri) {
    let _ = Query::<T>::try_from_uri(uri);
}

/// Every query string type an endpoint takes.
fn queries(text: &str) {
    use super::*;
    let Ok(uri) = format!("/x?{text}").parse::<Uri>() else {
        return;
    };
    query::<app::StatusQuery>(&uri);
    query::<audit_log::LogQuery>(&uri);
    query::<backup::RowsQuery>(&uri);
    query::<history::PageIn>(&uri);
    query::<prompts::WaitingQuery>(&uri);
    query::<sms::TextsQuery>(&uri);
    query::<sms::ReportsQuery>(&uri);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reader_takes_arbitrary_bytes() {
        let samples: [&[u8]; 6] = [
            b"",
            b"{}",
            br#"{"request_id":"a","kind":"send_money","from":"254700000001","to":"254700000002","amount":"1.00","pin":"1234"}"#,
            b"/v1/accounts/254700000001/balance?from=1\n{\"from\":\"x\"}",
            b"\xff\xfe{[\"",
            b"after=1.2.3&limit=0&format=jsonl",
        ];
        for sample in samples {
            for which in 0..8u8 {
                let mut data = vec![which];
                data.extend_from_slice(sample);
                request(&data);
            }
        }
    }
}

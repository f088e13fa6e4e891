//! `/sms/v1/inbound`: incoming texts, from Kannel's `get-url` (`GET ?from=%p&to=%P&text=%b`)
//! or Africa's Talking's callback (form POST `from, to, text, date, id`).
//!
//! `/sms/v1/dlr`: delivery reports, from Kannel (`GET` with the query our `dlr-url` asked
//! for: `gateway=kannel&id=<ours>&status=<%d>`) or Africa's Talking (form POST `id` — its
//! `messageId` —, `status`, `phoneNumber`, `failureReason`).

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};

use super::{report_status, Fields, Report, Sms};

/// The SMS routes, to merge into the node's router.
pub fn router(sms: Sms) -> Router {
    Router::new()
        .route("/sms/v1/dlr", get(dlr_query).post(dlr_form))
        .route("/sms/v1/inbound", get(inbound_query).post(inbound_form))
        .with_state(sms)
}

fn plain(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

async fn dlr_query(State(sms): State<Sms>, Query(fields): Query<Fields>) -> Response {
    record(&sms, fields)
}

async fn dlr_form(
    State(sms): State<Sms>,
    Query(query): Query<Fields>,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let Ok(Form(mut fields)) = form else {
        return plain(StatusCode::BAD_REQUEST, "expected a form");
    };
    fields.extend(query);
    record(&sms, fields)
}

/// Kannel's `get-url` (`?from=%p&to=%P&text=%b`).
async fn inbound_query(State(sms): State<Sms>, Query(fields): Query<Fields>) -> Response {
    incoming(&sms, fields).await
}

/// Africa's Talking's incoming-message callback (form `from`, `to`, `text`, `date`, `id`).
async fn inbound_form(
    State(sms): State<Sms>,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let Ok(Form(fields)) = form else {
        return plain(StatusCode::BAD_REQUEST, "expected a form");
    };
    incoming(&sms, fields).await
}

/// The reply goes out as its own SMS through the gateway; the HTTP answer is empty (Kannel's
/// service is configured with `max-messages = 0`, so it sends nothing itself).
async fn incoming(sms: &Sms, fields: Fields) -> Response {
    let (Some(from), Some(to), Some(text)) =
        (fields.get("from"), fields.get("to"), fields.get("text"))
    else {
        return plain(
            StatusCode::BAD_REQUEST,
            "an incoming text needs from, to and text",
        );
    };
    let Ok(from) = tuma_actors::msisdn::Msisdn::parse(from) else {
        return plain(StatusCode::OK, "");
    };
    let text: String = text.chars().take(INCOMING_TEXT_MAX).collect();
    match sms.incoming(&from, to, &text).await {
        Ok(_) => plain(StatusCode::OK, ""),
        Err(error) => {
            tracing::error!(%error, "cannot answer an incoming text");
            plain(StatusCode::SERVICE_UNAVAILABLE, "")
        }
    }
}

/// Longest incoming text read (a forwarded confirmation is under 320).
const INCOMING_TEXT_MAX: usize = 1_000;

fn record(sms: &Sms, fields: Fields) -> Response {
    let gateway = fields
        .get("gateway")
        .map_or("africastalking", String::as_str);
    let (Some(reference), Some(status)) = (fields.get("id"), fields.get("status")) else {
        return plain(StatusCode::BAD_REQUEST, "a report needs id and status");
    };
    if reference.len() > 128 {
        return plain(StatusCode::BAD_REQUEST, "id too long");
    }
    let report = Report {
        reference: reference.clone(),
        status: report_status(gateway, status),
        detail: fields
            .get("failureReason")
            .map(|d| d.chars().take(128).collect()),
        received_ms: tuma_service::unix_ms(),
    };
    match sms.record_report(report) {
        Ok(()) => plain(StatusCode::OK, "OK"),
        Err(error) => {
            tracing::error!(%error, "cannot record a delivery report");
            plain(StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}

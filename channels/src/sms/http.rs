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

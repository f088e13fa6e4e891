//! The gateway endpoints: `POST /ussd/v1/callback` (each step of a session) and
//! `POST /ussd/v1/events` (the gateway's end-of-session report). Form-encoded in, `text/plain`
//! out, as Africa's Talking sends and reads them.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;

use super::{SessionEnd, Ussd, UssdRequest};

/// The USSD routes, to merge into the node's router.
pub fn router(ussd: Ussd) -> Router {
    Router::new()
        .route("/ussd/v1/callback", post(callback))
        .route("/ussd/v1/events", post(events))
        .with_state(ussd)
}

#[derive(Deserialize)]
struct CallbackForm {
    #[serde(rename = "sessionId")]
    session_id: String,
    #[serde(rename = "serviceCode")]
    service_code: String,
    #[serde(rename = "phoneNumber")]
    phone_number: String,
    #[serde(rename = "networkCode", default)]
    network_code: String,
    #[serde(default)]
    text: String,
}

fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn callback(
    State(ussd): State<Ussd>,
    caller: Option<ConnectInfo<SocketAddr>>,
    form: Result<Form<CallbackForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!(
                    "END Bad request: {rejection} (expected form fields sessionId, serviceCode, phoneNumber, networkCode, text)"
                ),
            )
        }
    };
    let request = UssdRequest {
        session_id: form.session_id,
        service_code: form.service_code,
        phone_number: form.phone_number,
        network_code: form.network_code,
        text: form.text,
    };
    let source = caller.map(|ConnectInfo(address)| address.ip());
    let reply = ussd.step(&request, source).await;
    plain(StatusCode::OK, reply.body())
}

async fn events(
    State(ussd): State<Ussd>,
    form: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Response {
    let Ok(Form(fields)) = form else {
        return plain(StatusCode::BAD_REQUEST, "expected a form".into());
    };
    // Bounded: a report is a handful of short fields.
    let fields = fields
        .into_iter()
        .take(32)
        .map(|(k, v)| (k.chars().take(64).collect(), v.chars().take(512).collect()))
        .collect();
    ussd.record_end(SessionEnd {
        received_unix_ms: tuma_service::unix_ms(),
        fields,
    });
    plain(StatusCode::OK, "OK".into())
}

//! JSON errors: `{"error": "...", "field": "..."}` with a status that says who must act.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tuma_actors::outcome::ResultCode;
use tuma_service::ServiceError;

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<&'static str>,
    pub code: Option<ResultCode>,
    /// Seconds for a `Retry-After` header (429 answers).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// Bad input, naming the field.
    pub fn field(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field),
            code: None,
            retry_after_s: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: None,
            code: None,
            retry_after_s: None,
        }
    }
    /// 413: a body over the endpoint's limit, refused before it is read.
    pub fn too_large() -> ApiError {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: "the request body is larger than this endpoint takes".into(),
            field: None,
            code: None,
            retry_after_s: None,
        }
    }
    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or wrong bearer token".into(),
            field: None,
            code: None,
            retry_after_s: None,
        }
    }
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            field: None,
            code: None,
            retry_after_s: None,
        }
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            field: None,
            code: None,
            retry_after_s: None,
        }
    }
    /// A ledger refusal of an admin command.
    pub fn from_code(code: ResultCode) -> ApiError {
        let status = match code {
            ResultCode::AccountExists
            | ResultCode::IdempotencyConflict
            | ResultCode::RequestIdExpired => StatusCode::CONFLICT,
            ResultCode::UnknownAccount | ResultCode::UnknownPayee => StatusCode::NOT_FOUND,
            ResultCode::WrongPin | ResultCode::PinLocked => StatusCode::UNAUTHORIZED,
            ResultCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError {
            status,
            message: code.description().to_string(),
            field: None,
            code: Some(code),
            retry_after_s: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        if let Some(code) = self.code {
            body["result_code"] = json!(code.code());
            body["result"] = json!(code.name());
        }
        if let Some(seconds) = self.retry_after_s {
            body["result"] = json!("too_many_attempts");
            body["retry_after_s"] = json!(seconds);
            let retry_after = [(axum::http::header::RETRY_AFTER, seconds.to_string())];
            return (self.status, retry_after, Json(body)).into_response();
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> ApiError {
        match error {
            ServiceError::Refused(code) => ApiError::from_code(code),
            ServiceError::Invalid { field, message } => ApiError::field(field, message),
            ServiceError::NotFound(message) => ApiError::not_found(message),
            ServiceError::Conflict(message) => ApiError {
                status: StatusCode::CONFLICT,
                message,
                field: None,
                code: None,
                retry_after_s: None,
            },
            ServiceError::Unavailable(message) => ApiError::unavailable(message),
            ServiceError::TooManyAttempts { retry_after } => {
                let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                ApiError {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    message: format!(
                        "too many failed attempts for this payer or from this address; try again in {seconds} s"
                    ),
                    field: None,
                    code: None,
                    retry_after_s: Some(seconds),
                }
            }
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::too_large();
        }
        ApiError::bad_request(format!("malformed JSON: {}", rejection.body_text()))
    }
}

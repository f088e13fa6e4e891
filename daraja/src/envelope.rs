//! Daraja's synchronous error envelope (`{"requestId","errorCode","errorMessage"}`) with its
//! codes, and the lenient field readers Daraja's clients rely on (numbers sent as numbers or
//! strings).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::ids;

/// A refused call, as Daraja answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DarajaError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (a 429).
    pub retry_after_s: Option<u64>,
}

impl DarajaError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> DarajaError {
        DarajaError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// `400.002.02 Bad Request - Invalid <field>`.
    pub fn invalid(field: &str) -> DarajaError {
        DarajaError::new(
            StatusCode::BAD_REQUEST,
            "400.002.02",
            format!("Bad Request - Invalid {field}"),
        )
    }

    /// `404.001.03 Invalid Access Token`: missing, malformed, forged or expired.
    pub fn bad_token() -> DarajaError {
        DarajaError::new(
            StatusCode::UNAUTHORIZED,
            "404.001.03",
            "Invalid Access Token",
        )
    }

    /// `400.008.01 Invalid Authentication passed` (OAuth without Basic credentials that match).
    pub fn bad_authentication() -> DarajaError {
        DarajaError::new(
            StatusCode::BAD_REQUEST,
            "400.008.01",
            "Invalid Authentication passed",
        )
    }

    /// `400.008.02 Invalid grant type passed`.
    pub fn bad_grant_type() -> DarajaError {
        DarajaError::new(
            StatusCode::BAD_REQUEST,
            "400.008.02",
            "Invalid grant type passed",
        )
    }

    /// `500.001.1001` with Daraja's wording for the case (wrong credentials, a subscriber
    /// already in a transaction, a prompt still being processed).
    pub fn merchant(message: &str) -> DarajaError {
        DarajaError::new(StatusCode::INTERNAL_SERVER_ERROR, "500.001.1001", message)
    }

    /// `404.001.01 Resource not found`.
    pub fn not_found() -> DarajaError {
        DarajaError::new(StatusCode::NOT_FOUND, "404.001.01", "Resource not found")
    }

    /// `405.001 Method Not Allowed`.
    pub fn method_not_allowed() -> DarajaError {
        DarajaError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "405.001",
            "Method Not Allowed",
        )
    }

    /// `500.003.02 Spike Arrest Violation`: too many calls, or the system is busy (try again
    /// in a second).
    pub fn throttled() -> DarajaError {
        DarajaError::throttled_for(std::time::Duration::from_secs(1))
    }

    /// As [`DarajaError::throttled`], with the wait until a call is admitted again.
    pub fn throttled_for(wait: std::time::Duration) -> DarajaError {
        let mut error = DarajaError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "500.003.02",
            "Spike Arrest Violation",
        );
        error.retry_after_s = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        error
    }

    /// The cluster could not answer in time; nothing is known to have been done.
    pub fn unavailable() -> DarajaError {
        DarajaError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "503.001",
            "Service Unavailable - try again",
        )
    }
}

impl IntoResponse for DarajaError {
    fn into_response(self) -> Response {
        let body = json!({
            "requestId": ids::request_id(),
            "errorCode": self.code,
            "errorMessage": self.message,
        });
        match self.retry_after_s {
            Some(seconds) => {
                let retry_after = [(axum::http::header::RETRY_AFTER, seconds.to_string())];
                (self.status, retry_after, Json(body)).into_response()
            }
            None => (self.status, Json(body)).into_response(),
        }
    }
}

/// A field that Daraja's clients send as a string or a number (`"174379"` or `174379`), as
/// text; `None` when absent, null, or of another type.
pub fn text(body: &Value, field: &str) -> Option<String> {
    match body.get(field)? {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A required text field; missing or empty is `400.002.02 Invalid <field>`.
pub fn required(body: &Value, field: &str) -> Result<String, DarajaError> {
    text(body, field)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| DarajaError::invalid(field))
}

/// A whole, positive number of shillings ("Only whole numbers are supported"), as a number
/// or a string (`1`, `"1"`, `1.0`, `"1.00"`).
pub fn whole_shillings(body: &Value, field: &str) -> Result<i64, DarajaError> {
    let text = required(body, field)?;
    let whole = text
        .strip_suffix(".00")
        .or_else(|| text.strip_suffix(".0"))
        .unwrap_or(&text);
    match whole.parse::<i64>() {
        Ok(n) if n > 0 && n <= 1_000_000_000 => Ok(n),
        _ => Err(DarajaError::invalid(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_come_as_numbers_or_strings_and_amounts_are_whole() {
        let body = json!({"A": 174379, "B": "174379", "C": null, "D": [1], "Amount": "1.00",
            "Two": 2.0, "Half": "1.5", "Zero": 0, "Neg": "-3"});
        assert_eq!(text(&body, "A").as_deref(), Some("174379"));
        assert_eq!(text(&body, "B").as_deref(), Some("174379"));
        assert_eq!(text(&body, "C"), None);
        assert_eq!(text(&body, "D"), None);
        assert_eq!(
            required(&body, "Missing"),
            Err(DarajaError::invalid("Missing"))
        );
        assert_eq!(whole_shillings(&body, "Amount"), Ok(1));
        assert_eq!(whole_shillings(&body, "Two"), Ok(2));
        for refused in ["Half", "Zero", "Neg", "Missing"] {
            assert_eq!(
                whole_shillings(&body, refused),
                Err(DarajaError::invalid(refused))
            );
        }
    }
}

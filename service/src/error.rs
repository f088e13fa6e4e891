//! Why a call to the node did not give what was asked. Channels map these to their own
//! answers (an HTTP status, a USSD `END` screen, a Daraja result code).

use tuma_actors::outcome::ResultCode;

/// A failed call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The ledger refused it (unknown account, wrong PIN, limits…); nothing was done.
    #[error("{}", .0.description())]
    Refused(ResultCode),
    /// A value is malformed or names something this cluster never issued.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// What was asked about does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The cluster refused a change to itself (a join or drain it cannot take now).
    #[error("{0}")]
    Conflict(String),
    /// No leader answered in time, or the node is overloaded or stopping. For a change, it may
    /// or may not have happened; a transfer retried with the same id learns which.
    #[error("{0}")]
    Unavailable(String),
    /// Too many failed attempts for this payer or from this source: nothing was submitted;
    /// try again after `retry_after` (see [`crate::AttemptLimits`]).
    #[error("too many failed attempts; try again in {} s", .retry_after.as_secs().max(1))]
    TooManyAttempts { retry_after: std::time::Duration },
}

impl ServiceError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> ServiceError {
        ServiceError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// An engine answer that was not the one expected.
    pub(crate) fn no_answer(what: &str, reply: &tuma_cluster::engine::ClientReply) -> ServiceError {
        ServiceError::Unavailable(format!("{what}: {}", reply.describe()))
    }
}

//! Business outcomes as a stable numbered enum.
//!
//! A code, once published, never changes meaning: clients and operators' scripts branch on it, and
//! a duplicate request must get the same answer it got the first time.

use serde::{Deserialize, Serialize};

/// The result of a ledger command. `Success` is 0; every other value is a refusal or an abort.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u16)]
pub enum ResultCode {
    Success = 0,
    InsufficientFunds = 1,
    /// Above the per-transaction maximum.
    LimitExceeded = 2,
    /// Would take the payer past the daily limit.
    DailyLimitExceeded = 3,
    /// Would take the payee past the maximum balance.
    BalanceLimitExceeded = 4,
    WrongPin = 5,
    PinLocked = 6,
    /// The payer (or the account named by an admin command) does not exist.
    UnknownAccount = 7,
    /// The payee is not registered.
    UnknownPayee = 8,
    /// The same request id was used before for a different request (another payer, payee,
    /// kind, amount or reference); nothing was done.
    IdempotencyConflict = 9,
    /// The deadline passed before the transfer could be decided; safe to retry with a new id.
    DeadlinePassed = 10,
    /// Below the minimum for this kind (for example a withdrawal under KES 50).
    AmountBelowMinimum = 11,
    /// The party's role may not do this.
    NotPermitted = 12,
    /// The account is frozen or closed.
    AccountInactive = 13,
    /// An account with this reference is already registered.
    AccountExists = 14,
    /// Zero, negative or otherwise unusable amount.
    InvalidAmount = 15,
    /// Pay bill needs an account reference (at most 20 characters).
    InvalidAccountReference = 16,
    /// Payer and payee are the same account.
    SameAccount = 17,
    /// The receiver of the original transfer no longer holds the funds.
    ReversalRefused = 18,
    /// No committed transfer with that receipt here, or it is already reversed.
    NotReversible = 19,
    /// Too many transfers in flight on this shard; retry later.
    Overloaded = 20,
    /// No tariff band covers the amount.
    AmountOutsideTariff = 21,
    /// A care or admin command on an account without a PIN, or a PIN operation that does not apply.
    NoPin = 22,
    /// The request id was used longer ago than the idempotency window: its answer is no longer
    /// kept, and it is not taken as a new request.
    RequestIdExpired = 23,
    /// The customer declined a payment prompt.
    Declined = 24,
    /// The customer did not answer a payment prompt in time.
    NoAnswer = 25,
    /// A payment prompt already waits for this customer's answer.
    CustomerBusy = 26,
    /// The business's validation refused the payment (C2B validation).
    RejectedByPayee = 27,
}

impl ResultCode {
    /// Every code, in numeric order.
    pub const ALL: [ResultCode; 28] = [
        ResultCode::Success,
        ResultCode::InsufficientFunds,
        ResultCode::LimitExceeded,
        ResultCode::DailyLimitExceeded,
        ResultCode::BalanceLimitExceeded,
        ResultCode::WrongPin,
        ResultCode::PinLocked,
        ResultCode::UnknownAccount,
        ResultCode::UnknownPayee,
        ResultCode::IdempotencyConflict,
        ResultCode::DeadlinePassed,
        ResultCode::AmountBelowMinimum,
        ResultCode::NotPermitted,
        ResultCode::AccountInactive,
        ResultCode::AccountExists,
        ResultCode::InvalidAmount,
        ResultCode::InvalidAccountReference,
        ResultCode::SameAccount,
        ResultCode::ReversalRefused,
        ResultCode::NotReversible,
        ResultCode::Overloaded,
        ResultCode::AmountOutsideTariff,
        ResultCode::NoPin,
        ResultCode::RequestIdExpired,
        ResultCode::Declined,
        ResultCode::NoAnswer,
        ResultCode::CustomerBusy,
        ResultCode::RejectedByPayee,
    ];

    /// The stable number.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The code for a number, if it is one.
    pub fn from_code(code: u16) -> Option<ResultCode> {
        ResultCode::ALL.get(usize::from(code)).copied()
    }

    /// The stable snake_case name (as serialised in JSON).
    pub fn name(self) -> &'static str {
        match self {
            ResultCode::Success => "success",
            ResultCode::InsufficientFunds => "insufficient_funds",
            ResultCode::LimitExceeded => "limit_exceeded",
            ResultCode::DailyLimitExceeded => "daily_limit_exceeded",
            ResultCode::BalanceLimitExceeded => "balance_limit_exceeded",
            ResultCode::WrongPin => "wrong_pin",
            ResultCode::PinLocked => "pin_locked",
            ResultCode::UnknownAccount => "unknown_account",
            ResultCode::UnknownPayee => "unknown_payee",
            ResultCode::IdempotencyConflict => "idempotency_conflict",
            ResultCode::DeadlinePassed => "deadline_passed",
            ResultCode::AmountBelowMinimum => "amount_below_minimum",
            ResultCode::NotPermitted => "not_permitted",
            ResultCode::AccountInactive => "account_inactive",
            ResultCode::AccountExists => "account_exists",
            ResultCode::InvalidAmount => "invalid_amount",
            ResultCode::InvalidAccountReference => "invalid_account_reference",
            ResultCode::SameAccount => "same_account",
            ResultCode::ReversalRefused => "reversal_refused",
            ResultCode::NotReversible => "not_reversible",
            ResultCode::Overloaded => "overloaded",
            ResultCode::AmountOutsideTariff => "amount_outside_tariff",
            ResultCode::NoPin => "no_pin",
            ResultCode::RequestIdExpired => "request_id_expired",
            ResultCode::Declined => "declined",
            ResultCode::NoAnswer => "no_answer",
            ResultCode::CustomerBusy => "customer_busy",
            ResultCode::RejectedByPayee => "rejected_by_payee",
        }
    }

    /// A sentence for a person.
    pub fn description(self) -> &'static str {
        match self {
            ResultCode::Success => "The request was processed successfully.",
            ResultCode::InsufficientFunds => "Insufficient funds to complete the transaction.",
            ResultCode::LimitExceeded => "The amount is above the maximum per transaction.",
            ResultCode::DailyLimitExceeded => "The transaction would exceed the daily limit.",
            ResultCode::BalanceLimitExceeded => "The recipient's balance would exceed the maximum.",
            ResultCode::WrongPin => "Wrong PIN.",
            ResultCode::PinLocked => "The PIN is locked after too many wrong tries; call care.",
            ResultCode::UnknownAccount => "The account is not registered.",
            ResultCode::UnknownPayee => "The recipient is not registered.",
            ResultCode::IdempotencyConflict => "request_id reused for a different request",
            ResultCode::DeadlinePassed => {
                "The transaction timed out and was not completed; safe to retry."
            }
            ResultCode::AmountBelowMinimum => {
                "The amount is below the minimum for this transaction."
            }
            ResultCode::NotPermitted => "This account may not perform this transaction.",
            ResultCode::AccountInactive => "The account is frozen or closed.",
            ResultCode::AccountExists => "The account is already registered.",
            ResultCode::InvalidAmount => "The amount is not valid.",
            ResultCode::InvalidAccountReference => "The account reference is missing or too long.",
            ResultCode::SameAccount => "Sender and recipient are the same account.",
            ResultCode::ReversalRefused => "The recipient no longer holds the funds to reverse.",
            ResultCode::NotReversible => "No reversible transaction with that receipt.",
            ResultCode::Overloaded => "The system is busy; retry shortly.",
            ResultCode::AmountOutsideTariff => "No tariff covers this amount.",
            ResultCode::NoPin => "The account has no PIN to change.",
            ResultCode::RequestIdExpired => {
                "request_id expired: it was used longer ago than the idempotency window; use a new request_id"
            }
            ResultCode::Declined => "The customer declined the request.",
            ResultCode::NoAnswer => "The customer did not answer in time.",
            ResultCode::CustomerBusy => {
                "A request is already waiting for this customer's answer; try again later."
            }
            ResultCode::RejectedByPayee => "The business declined the payment.",
        }
    }

    /// True only for `Success`.
    pub fn is_success(self) -> bool {
        self == ResultCode::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_stable_and_named_uniquely() {
        for (index, code) in ResultCode::ALL.iter().enumerate() {
            assert_eq!(usize::from(code.code()), index);
            assert_eq!(ResultCode::from_code(code.code()), Some(*code));
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.name()));
            assert!(!code.description().is_empty());
        }
        let mut names: Vec<_> = ResultCode::ALL.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ResultCode::ALL.len());
        assert_eq!(ResultCode::from_code(ResultCode::ALL.len() as u16), None);
    }

    #[test]
    fn published_numbers_never_move() {
        assert_eq!(ResultCode::InsufficientFunds.code(), 1);
        assert_eq!(ResultCode::DeadlinePassed.code(), 10);
        assert_eq!(ResultCode::NoPin.code(), 22);
    }
}

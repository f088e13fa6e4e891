//! Transfers as a channel submits them: the idempotency key, the kind, the parties.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::account::AccountRef;
use crate::money::Money;
use crate::roles::Role;
use crate::txn_id::TransactionId;

/// Longest idempotency key we store.
pub const TRANSFER_ID_LEN_MAX: usize = 64;
/// Longest pay-bill account reference (Daraja's `BillRefNumber` limit).
pub const ACCOUNT_REFERENCE_LEN_MAX: usize = 20;

/// The client's idempotency key (`request_id`). Unique by contract across the cluster; a second,
/// different request under the same key is refused, never merged.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TransferId(String);

/// Why a transfer id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request id must be 1 to {TRANSFER_ID_LEN_MAX} characters of A-Z a-z 0-9 . _ : -")]
pub struct TransferIdError;

impl TransferId {
    /// Validates length and alphabet.
    pub fn parse(text: &str) -> Result<TransferId, TransferIdError> {
        let ok = (1..=TRANSFER_ID_LEN_MAX).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(TransferId(text.to_string()))
        } else {
            Err(TransferIdError)
        }
    }
    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TransferId {
    type Error = TransferIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TransferId::parse(&s)
    }
}

impl From<TransferId> for String {
    fn from(t: TransferId) -> String {
        t.0
    }
}

/// What a transfer is, which decides its fee, commission, limits and who may make it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferKind {
    SendMoney,
    /// Deposit: the agent's float moves to the customer, who hands over cash.
    CashIn,
    /// Withdrawal: the customer's e-money moves to the agent, who hands over cash.
    CashOut,
    PayBill,
    BuyGoods,
    /// The payee named is the phone to top up; the money goes to the shard's airtime account.
    BuyAirtime,
    BusinessToCustomer,
    BusinessToBusiness,
    /// A new transfer back from the original payee, approved by care.
    Reversal,
    /// The operator issues e-money from the trust account.
    FloatIssue,
}

impl TransferKind {
    /// Every kind, in a fixed order.
    pub const ALL: [TransferKind; 10] = [
        TransferKind::SendMoney,
        TransferKind::CashIn,
        TransferKind::CashOut,
        TransferKind::PayBill,
        TransferKind::BuyGoods,
        TransferKind::BuyAirtime,
        TransferKind::BusinessToCustomer,
        TransferKind::BusinessToBusiness,
        TransferKind::Reversal,
        TransferKind::FloatIssue,
    ];

    /// The snake_case name used in the API.
    pub fn name(self) -> &'static str {
        match self {
            TransferKind::SendMoney => "send_money",
            TransferKind::CashIn => "cash_in",
            TransferKind::CashOut => "cash_out",
            TransferKind::PayBill => "pay_bill",
            TransferKind::BuyGoods => "buy_goods",
            TransferKind::BuyAirtime => "buy_airtime",
            TransferKind::BusinessToCustomer => "business_to_customer",
            TransferKind::BusinessToBusiness => "business_to_business",
            TransferKind::Reversal => "reversal",
            TransferKind::FloatIssue => "float_issue",
        }
    }

    /// The kind for an API name.
    pub fn from_name(name: &str) -> Option<TransferKind> {
        TransferKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// The PIN check's result, computed at the edge (hashing is slow and salted; apply must be
/// deterministic), recorded by apply so lockout is replicated.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PinVerdict {
    Verified,
    Wrong,
    /// Staff-initiated (reversal by care, float by the operator): no customer PIN involved.
    NotRequired,
}

/// One transfer as submitted. Its `id` makes it idempotent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRequest {
    pub id: TransferId,
    pub kind: TransferKind,
    pub from: AccountRef,
    /// The payee; for airtime the phone being topped up.
    pub to: AccountRef,
    pub amount: Money,
    /// Pay bill's account number (required there, at most 20 characters).
    pub account_reference: Option<String>,
    pub pin: PinVerdict,
    /// Unix milliseconds after which the transfer must abort rather than commit.
    pub deadline_ms: u64,
    /// Who asked: the payer's own role, or staff for reversals and float.
    pub initiator: Role,
    /// For reversals: the receipt of the transfer being reversed.
    pub reverses: Option<TransactionId>,
}

impl TransferRequest {
    /// True when `other` is the same request (a retry), ignoring the PIN verdict and the
    /// deadline, which a retry may legitimately recompute.
    pub fn same_request(&self, other: &TransferRequest) -> bool {
        self.id == other.id
            && self.kind == other.kind
            && self.from == other.from
            && self.to == other.to
            && self.amount == other.amount
            && self.account_reference == other.account_reference
            && self.reverses == other.reverses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_ids_validate() {
        assert!(TransferId::parse("abc-123_x:y.z").is_ok());
        assert!(TransferId::parse("").is_err());
        assert!(TransferId::parse("has space").is_err());
        assert!(TransferId::parse(&"a".repeat(TRANSFER_ID_LEN_MAX)).is_ok());
        assert!(TransferId::parse(&"a".repeat(TRANSFER_ID_LEN_MAX + 1)).is_err());
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in TransferKind::ALL {
            assert_eq!(TransferKind::from_name(kind.name()), Some(kind));
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.name())
            );
        }
        assert_eq!(TransferKind::from_name("teleport"), None);
    }
}

//! Entry points for the fuzz targets (`fuzz/fuzz_targets/daraja_payloads.rs`): what a business
//! sends — JSON bodies read field by field as the endpoints read them, `Authorization` headers,
//! tokens, M-Pesa Express passwords and initiators' `SecurityCredential`s. Not an API.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::credentials::Keys;
use crate::envelope::{required, text, whole_shillings};
use crate::express::{msisdn, short_text};
use crate::initiator::InitiatorKey;
use crate::payouts::occasion;

/// Every field name an endpoint reads.
const FIELDS: [&str; 24] = [
    "BusinessShortCode",
    "Password",
    "Timestamp",
    "TransactionType",
    "Amount",
    "PartyA",
    "PartyB",
    "PhoneNumber",
    "CallBackURL",
    "AccountReference",
    "TransactionDesc",
    "OriginatorConversationID",
    "InitiatorName",
    "SecurityCredential",
    "CommandID",
    "Remarks",
    "QueueTimeOutURL",
    "ResultURL",
    "SenderIdentifierType",
    "RecieverIdentifierType",
    "ReceiverIdentifierType",
    "TransactionID",
    "IdentifierType",
    "BillRefNumber",
];

/// Reads `data` as a request body, every field in every way an endpoint reads one.
pub fn request_body(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for field in FIELDS {
        let _ = text(&body, field);
        let _ = required(&body, field);
        if let Ok(amount) = whole_shillings(&body, field) {
            assert!(amount > 0, "an amount read is positive");
        }
        let _ = msisdn(&body, field);
        if let Ok(short) = short_text(&body, field, 100, false) {
            assert!(short.chars().count() <= 100 && !short.chars().any(char::is_control));
        }
    }
    let _ = occasion(&body);
}

/// Reads `data` as the secrets a caller presents: a Basic `Authorization` header, a Bearer
/// token, an Express password, and an initiator's security credential.
pub fn credentials(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let keys = fuzz_keys();
    if let Some(basic) = text.strip_prefix("Basic ") {
        let _ = STANDARD.decode(basic.trim());
    }
    if let Some(shortcode) = keys.verify_token(&text, 1_800_000_000) {
        assert!(!shortcode.as_str().is_empty());
    }
    let _ = keys.password_matches(&text, "174379", "20261201120000", &keys.digest("passkey"));
    if let Some(password) = initiator_key().password(&text) {
        assert!(
            !password.is_empty(),
            "an initiator's password is never empty"
        );
    }
}

fn fuzz_keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys::derive(b"tuma fuzzing cluster secret, not a secret"))
}

fn initiator_key() -> &'static InitiatorKey {
    static KEY: OnceLock<InitiatorKey> = OnceLock::new();
    KEY.get_or_init(|| {
        InitiatorKey::derive(fuzz_keys().initiator_seed()).expect("a key from a fixed seed")
    })
}

//! Ids and times in Daraja's formats: `requestId`, `MerchantRequestID`, `CheckoutRequestID`
//! (`ws_CO_` + the EAT time + random digits) and `YYYYMMDDHHmmss` timestamps in EAT.

use rand_core::{OsRng, RngCore};
use tuma_actors::calendar::CivilTime;

/// Random lowercase hex of `bytes` bytes.
fn hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Random decimal digits.
fn digits(count: usize) -> String {
    (0..count)
        .map(|_| char::from(b'0' + (OsRng.next_u32() % 10) as u8))
        .collect()
}

/// A synchronous answer's `requestId`, e.g. `1c5b-4ba8-815c-ac45c57a3db0`.
pub fn request_id() -> String {
    format!("{}-{}-{}-{}", hex(2), hex(2), hex(2), hex(6))
}

/// A `MerchantRequestID`, e.g. `2654-4b64-97ff-b827b542881d3130`.
pub fn merchant_request_id() -> String {
    format!("{}-{}-{}-{}{}", hex(2), hex(2), hex(2), hex(6), digits(4))
}

/// A `CheckoutRequestID` for a prompt opened at `unix_ms`: `ws_CO_` + `DDMMYYYYHHMMSS` (EAT)
/// + 12 random digits (unguessable: it is all a customer's app needs to answer the prompt).
pub fn checkout_request_id(unix_ms: u64) -> String {
    let t = CivilTime::from_unix_ms(unix_ms);
    let seconds = (unix_ms / 1_000) % 60;
    format!(
        "ws_CO_{:02}{:02}{:04}{:02}{:02}{seconds:02}{}",
        t.day,
        t.month,
        t.year,
        t.hour,
        t.minute,
        digits(12)
    )
}

/// `YYYYMMDDHHmmss` in EAT, as Daraja's `TransactionDate` and `Timestamp`.
pub fn timestamp(unix_ms: u64) -> String {
    let t = CivilTime::from_unix_ms(unix_ms);
    let seconds = (unix_ms / 1_000) % 60;
    format!(
        "{:04}{:02}{:02}{:02}{:02}{seconds:02}",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// A `ConversationID` for a request taken at `unix_ms`: `AG_YYYYMMDD_` (EAT) + 20 random hex.
pub fn conversation_id(unix_ms: u64) -> String {
    let t = CivilTime::from_unix_ms(unix_ms);
    format!("AG_{:04}{:02}{:02}_{}", t.year, t.month, t.day, hex(10))
}

/// An `OriginatorConversationID` for a request that did not bring one (balance, status).
pub fn originator_conversation_id() -> String {
    format!("{}-{}-{}", hex(2), hex(4), digits(2))
}

/// `DD.MM.YYYY HH:mm:ss` in EAT, as B2C's `TransactionCompletedDateTime`.
pub fn dotted_time(unix_ms: u64) -> String {
    let t = CivilTime::from_unix_ms(unix_ms);
    let seconds = (unix_ms / 1_000) % 60;
    format!(
        "{:02}.{:02}.{:04} {:02}:{:02}:{seconds:02}",
        t.day, t.month, t.year, t.hour, t.minute
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_darajas_shapes() {
        // 2019-12-19 10:21:15 EAT is 07:21:15 UTC.
        let unix_ms = 1_576_740_075_000;
        assert_eq!(timestamp(unix_ms), "20191219102115");
        let checkout = checkout_request_id(unix_ms);
        assert!(checkout.starts_with("ws_CO_19122019102115"), "{checkout}");
        assert_eq!(checkout.len(), "ws_CO_".len() + 14 + 12);
        assert!(tuma_actors::ledger::valid_checkout_id(&checkout));
        assert_ne!(checkout, checkout_request_id(unix_ms), "random digits");
        let request = request_id();
        assert_eq!(request.split('-').count(), 4, "{request}");
        assert_ne!(merchant_request_id(), merchant_request_id());
        assert_eq!(dotted_time(unix_ms), "19.12.2019 10:21:15");
        let conversation = conversation_id(unix_ms);
        assert!(conversation.starts_with("AG_20191219_"), "{conversation}");
        assert_eq!(conversation.len(), "AG_20191219_".len() + 20);
        assert!(tuma_actors::ledger::valid_conversation_id(&conversation));
        assert!(tuma_actors::ledger::valid_conversation_id(
            &originator_conversation_id()
        ));
    }
}

//! The values every API, menu and file carries — amounts, phone numbers, account numbers,
//! transfer ids, receipts, PINs, languages: refused, or parsed into a value whose text parses
//! back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tuma_actors::account::{AccountRef, AgentNumber, Shortcode};
use tuma_actors::language::Language;
use tuma_actors::money::Money;
use tuma_actors::msisdn::Msisdn;
use tuma_actors::pin::Pin;
use tuma_actors::transfer::TransferId;
use tuma_actors::txn_id::TransactionId;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(money) = Money::parse(text) {
        assert!(money >= Money::ZERO && money <= Money::MAX);
        assert_eq!(Money::parse(&money.to_string()), Ok(money), "{text:?}");
    }
    if let Ok(msisdn) = Msisdn::parse(text) {
        assert_eq!(
            Msisdn::parse(msisdn.as_str()).as_ref(),
            Ok(&msisdn),
            "{text:?}"
        );
    }
    if let Ok(account) = AccountRef::parse(text) {
        assert_eq!(
            AccountRef::parse(&account.to_string()).as_ref(),
            Ok(&account),
            "{text:?}"
        );
    }
    if let Ok(id) = TransferId::parse(text) {
        assert_eq!(TransferId::parse(id.as_str()).as_ref(), Ok(&id), "{text:?}");
    }
    if let Ok(receipt) = TransactionId::parse(text) {
        assert_eq!(
            TransactionId::parse(&receipt.to_string()),
            Ok(receipt),
            "{text:?}"
        );
        let _ = receipt.decode();
    }
    let _ = Shortcode::parse(text);
    let _ = AgentNumber::parse(text);
    let _ = Pin::parse(text);
    let _ = Language::parse(text);
});

//! SMS from outside: a customer's text (a forwarded confirmation asking for a reversal) and
//! the answers SMS gateways give to a send (Kannel, Africa's Talking).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tuma_channels::sms::reversals::receipt_in;
use tuma_channels::sms::{africastalking_answer, kannel_answer};

fuzz_target!(|data: &[u8]| {
    let Some((&status, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if let Some(receipt) = receipt_in(&text) {
        assert!(
            text.to_uppercase().contains(&receipt.to_string()),
            "a receipt found is in the text"
        );
    }
    let status = 100 + u16::from(status) * 2;
    let _ = kannel_answer(status, &text);
    let _ = africastalking_answer(status, &text);
});

//! The node's HTTP API as it reads requests: every JSON body and query string type (with its
//! limits), the transfer's whole validation, the field validators every handler uses, and the
//! middleware that reads every request and answer (the audit trail's target and outcome, the
//! request budgets' phone number) — see `tuma_node::http::fuzzing`. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tuma_node::http::fuzzing::request(data);
});

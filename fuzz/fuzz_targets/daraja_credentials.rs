//! What a business presents as a secret: Basic authorization, a Bearer token, an M-Pesa
//! Express password, an initiator's SecurityCredential.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tuma_daraja::fuzzing::credentials(data);
});

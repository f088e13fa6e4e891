//! A Daraja request body, read field by field as the endpoints read it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tuma_daraja::fuzzing::request_body(data);
});

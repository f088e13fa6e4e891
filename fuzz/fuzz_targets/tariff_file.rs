//! A tariff file (`--tariffs`): refused with an error or parsed into tariffs that price every
//! amount without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tuma_actors::tariff::Tariffs;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Tariffs::parse(text);
});

//! A USSD menu file (`tuma menus put`): refused with its errors, or a menu every walk of which
//! ends on a screen.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tuma_channels::ussd::parse_menu;
use tuma_channels::ussd::walk::walk;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(menu) = parse_menu(text) {
        for inputs in [
            &[][..],
            &["1"],
            &["1", "0712345678", "500", "1", "1234"],
            &["9", "0"],
        ] {
            let _ = walk(&menu, inputs);
        }
    }
});

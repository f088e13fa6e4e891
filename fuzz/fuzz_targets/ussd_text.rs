//! A USSD gateway's `text` (every input of the session so far, `*`-separated), walked through
//! each shipped menu as a session step walks it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tuma_channels::ussd::menu::DEFAULT_MENUS;
use tuma_channels::ussd::walk::walk;
use tuma_channels::ussd::{parse_menu, Menu};

/// As many inputs as a session step takes (more end the session).
const INPUTS_MAX: usize = 32;

fn menus() -> &'static [Menu] {
    static MENUS: OnceLock<Vec<Menu>> = OnceLock::new();
    MENUS.get_or_init(|| {
        DEFAULT_MENUS
            .iter()
            .map(|(name, text)| parse_menu(text).unwrap_or_else(|e| panic!("{name}: {e}")))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let inputs: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('*').collect()
    };
    if inputs.len() > INPUTS_MAX {
        return;
    }
    for menu in menus() {
        let _ = walk(menu, &inputs);
    }
});

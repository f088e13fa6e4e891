//! The language an account holder reads menus in: a 2- or 3-letter lowercase code (`en`, `sw`).
//! Three bytes, so every account can carry one.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A language code.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Language([u8; 3]);

/// Not a 2- or 3-letter lowercase code.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a language is a 2- or 3-letter lowercase code, like en or sw")]
pub struct LanguageError;

impl Language {
    pub fn parse(text: &str) -> Result<Language, LanguageError> {
        let bytes = text.as_bytes();
        if !(2..=3).contains(&bytes.len()) || !bytes.iter().all(u8::is_ascii_lowercase) {
            return Err(LanguageError);
        }
        let mut code = [0u8; 3];
        code[..bytes.len()].copy_from_slice(bytes);
        Ok(Language(code))
    }

    pub fn as_str(&self) -> &str {
        let len = if self.0[2] == 0 { 2 } else { 3 };
        std::str::from_utf8(&self.0[..len]).expect("parse keeps only ASCII letters")
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_bad_ones_are_refused() {
        for code in ["en", "sw", "kik"] {
            assert_eq!(Language::parse(code).unwrap().as_str(), code);
        }
        for bad in ["", "e", "EN", "engl", "e1", "sw "] {
            assert_eq!(Language::parse(bad), Err(LanguageError), "{bad:?}");
        }
    }
}

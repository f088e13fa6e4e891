//! Kenyan mobile numbers (MSISDNs) in one canonical form.
//!
//! Customers type numbers as `0712345678`, `+254712345678` or
//! `254712345678`; the ledger must see one spelling per subscriber or the same
//! person would get two wallets. [`Msisdn::parse`] is the only way in, and the
//! canonical form is the twelve-digit international number without `+`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Kenya's country calling code.
const COUNTRY_CODE: &str = "254";
/// Digits in a canonical number: `254` and a nine-digit subscriber number.
const CANONICAL_LEN: usize = 12;
/// Digits in the local form: `0` and the nine-digit subscriber number.
const LOCAL_LEN: usize = 10;

/// A Kenyan mobile number in canonical international form without `+`:
/// `"254712345678"` (`2547…` or `2541…`, twelve digits).
///
/// Serialized as that string; deserializing runs [`Msisdn::parse`], so a
/// stored or received value can never bypass validation.
///
/// Held as its twelve ASCII digits inline (12 bytes, no heap string): a million accounts keep
/// one in their key and one as their phone.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Msisdn([u8; CANONICAL_LEN]);

impl fmt::Debug for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Msisdn({:?})", self.as_str())
    }
}

/// Why a typed phone number is not a Kenyan mobile number.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MsisdnError {
    /// Nothing but whitespace.
    #[error("phone number is empty")]
    Empty,
    /// Letters, inner spaces, dashes or a `+` anywhere but the start.
    #[error("phone number must contain only digits, after an optional leading +")]
    NotDigits,
    /// The right prefix but the wrong number of digits.
    #[error("phone number has {len} digits; expected 07XXXXXXXX, 01XXXXXXXX or 2547XXXXXXXX")]
    WrongLength {
        /// Digits given, including any `0` or `254` prefix.
        len: usize,
    },
    /// Another country's code, or a Kenyan number that is not a mobile line
    /// (`07…` and `01…` are the mobile ranges).
    #[error("not a Kenyan mobile number; expected 07XXXXXXXX, 01XXXXXXXX or 2547XXXXXXXX")]
    NotKenyan,
}

impl Msisdn {
    /// Accepts `"0712345678"`, `"+254712345678"` and `"254712345678"`, and the
    /// same with the newer `01…` prefix (`"0110123456"` becomes
    /// `"254110123456"`). Surrounding whitespace is trimmed.
    ///
    /// Anything else (wrong length, letters, inner spaces, other country
    /// codes, non-mobile ranges) is an [`MsisdnError`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Msisdn, MsisdnError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(MsisdnError::Empty);
        }
        let (international, digits) = match text.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MsisdnError::NotDigits);
        }
        let subscriber = if let Some(rest) = digits.strip_prefix(COUNTRY_CODE) {
            if digits.len() != CANONICAL_LEN {
                return Err(MsisdnError::WrongLength { len: digits.len() });
            }
            rest
        } else if let (false, Some(rest)) = (international, digits.strip_prefix('0')) {
            if digits.len() != LOCAL_LEN {
                return Err(MsisdnError::WrongLength { len: digits.len() });
            }
            rest
        } else {
            return Err(MsisdnError::NotKenyan);
        };
        if !(subscriber.starts_with('7') || subscriber.starts_with('1')) {
            return Err(MsisdnError::NotKenyan);
        }
        let canonical = format!("{COUNTRY_CODE}{subscriber}");
        let digits: [u8; CANONICAL_LEN] = canonical
            .as_bytes()
            .try_into()
            .map_err(|_| MsisdnError::WrongLength { len: digits.len() })?;
        Ok(Msisdn(digits))
    }

    /// The canonical form, `"254712345678"`: the key under which a wallet is
    /// stored and the form used on the API.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("parse keeps only ASCII digits")
    }

    /// The local form, `"0712345678"`, as printed in SMS ("sent to JOHN DOE
    /// 0712345678").
    pub fn local(&self) -> String {
        let canonical = self.as_str();
        let subscriber = canonical.strip_prefix(COUNTRY_CODE).unwrap_or(canonical);
        format!("0{subscriber}")
    }
}

impl fmt::Display for Msisdn {
    /// The canonical form, so logs and keys agree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Msisdn {
    type Err = MsisdnError;

    /// Same as [`Msisdn::parse`].
    fn from_str(text: &str) -> Result<Msisdn, MsisdnError> {
        Msisdn::parse(text)
    }
}

impl TryFrom<String> for Msisdn {
    type Error = MsisdnError;

    /// Validates through [`Msisdn::parse`]; used by serde on deserialize.
    fn try_from(text: String) -> Result<Msisdn, MsisdnError> {
        Msisdn::parse(&text)
    }
}

impl From<Msisdn> for String {
    /// The canonical form; used by serde on serialize.
    fn from(msisdn: Msisdn) -> String {
        msisdn.as_str().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canonical(text: &str) -> Result<String, MsisdnError> {
        Msisdn::parse(text).map(|m| m.as_str().to_string())
    }

    #[test]
    fn accepts_the_three_spellings() {
        for text in [
            "0712345678",
            "+254712345678",
            "254712345678",
            "  0712345678\n",
        ] {
            assert_eq!(canonical(text), Ok("254712345678".to_string()), "{text:?}");
        }
        assert_eq!(canonical("0110123456"), Ok("254110123456".to_string()));
        assert_eq!(canonical("+254110123456"), Ok("254110123456".to_string()));
        assert_eq!(canonical("254110123456"), Ok("254110123456".to_string()));
    }

    #[test]
    fn local_and_display() {
        let m = Msisdn::parse("+254712345678").unwrap();
        assert_eq!(m.local(), "0712345678");
        assert_eq!(m.to_string(), "254712345678");
        assert_eq!(
            "0110123456".parse::<Msisdn>().unwrap().local(),
            "0110123456"
        );
    }

    #[test]
    fn rejects_with_a_reason() {
        assert_eq!(canonical(""), Err(MsisdnError::Empty));
        assert_eq!(canonical("  "), Err(MsisdnError::Empty));
        assert_eq!(canonical("+"), Err(MsisdnError::NotDigits));
        assert_eq!(canonical("07123a5678"), Err(MsisdnError::NotDigits));
        assert_eq!(canonical("0712 345678"), Err(MsisdnError::NotDigits));
        assert_eq!(canonical("0712-345-678"), Err(MsisdnError::NotDigits));
        assert_eq!(canonical("++254712345678"), Err(MsisdnError::NotDigits));
        assert_eq!(canonical("254+712345678"), Err(MsisdnError::NotDigits));
        assert_eq!(
            canonical("071234567"),
            Err(MsisdnError::WrongLength { len: 9 })
        );
        assert_eq!(
            canonical("07123456789"),
            Err(MsisdnError::WrongLength { len: 11 })
        );
        assert_eq!(
            canonical("25471234567"),
            Err(MsisdnError::WrongLength { len: 11 })
        );
        assert_eq!(
            canonical("2540712345678"),
            Err(MsisdnError::WrongLength { len: 13 })
        );
        assert_eq!(
            canonical("+25471234567"),
            Err(MsisdnError::WrongLength { len: 11 })
        );
        assert_eq!(canonical("+255712345678"), Err(MsisdnError::NotKenyan));
        assert_eq!(canonical("+14155550123"), Err(MsisdnError::NotKenyan));
        assert_eq!(canonical("255712345678"), Err(MsisdnError::NotKenyan));
        assert_eq!(canonical("712345678"), Err(MsisdnError::NotKenyan));
        assert_eq!(canonical("+0712345678"), Err(MsisdnError::NotKenyan));
        assert_eq!(canonical("0201234567"), Err(MsisdnError::NotKenyan));
        assert_eq!(canonical("254201234567"), Err(MsisdnError::NotKenyan));
        assert!(MsisdnError::WrongLength { len: 9 }
            .to_string()
            .contains("9 digits"));
    }

    #[test]
    fn serde_is_the_canonical_string_and_validates() {
        let m = Msisdn::parse("0712345678").unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, "\"254712345678\"");
        assert_eq!(serde_json::from_str::<Msisdn>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Msisdn>("\"25471234567x\"").is_err());
        assert!(serde_json::from_str::<Msisdn>("\"\"").is_err());
    }

    proptest! {
        #[test]
        fn every_spelling_of_a_valid_number_is_one_msisdn(
            first in prop::sample::select(vec!['7', '1']),
            rest in "[0-9]{8}",
        ) {
            let subscriber = format!("{first}{rest}");
            let m = Msisdn::parse(&format!("0{subscriber}")).unwrap();
            prop_assert_eq!(Msisdn::parse(&format!("+254{subscriber}")), Ok(m));
            prop_assert_eq!(Msisdn::parse(&format!("254{subscriber}")), Ok(m));
            prop_assert_eq!(Msisdn::parse(&m.local()), Ok(m));
            prop_assert_eq!(Msisdn::parse(m.as_str()), Ok(m));
        }

        #[test]
        fn never_panics_and_output_is_canonical(text in ".{0,20}") {
            if let Ok(m) = Msisdn::parse(&text) {
                prop_assert_eq!(m.as_str().len(), CANONICAL_LEN);
                prop_assert!(m.as_str().starts_with("2547") || m.as_str().starts_with("2541"));
            }
        }
    }
}

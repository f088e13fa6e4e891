//! Transaction receipts: ten uppercase alphanumerics, unique across the
//! cluster without coordination.
//!
//! A receipt such as `QC3K7T2M9A` is what a customer quotes to care or types
//! in a reversal request, so it must be short, unambiguous to read aloud, and
//! unique across every shard without a central counter. It is built from
//! values each shard already owns deterministically: the EAT date of the
//! transaction, the shard number and the shard's per-day sequence number.
//!
//! Layout (the real M-Pesa date encoding in the first three characters):
//!
//! | chars | meaning                                                         |
//! |-------|-----------------------------------------------------------------|
//! | 1     | year: `'A' + (year - 2006)` modulo 26 (2017 `L`, 2022 `Q`, 2026 `U`) |
//! | 2     | month: `A` (January) ..= `L` (December)                         |
//! | 3     | day: `1`..=`9`, then `A` = 10 ..= `V` = 31                      |
//! | 4..10 | seven base-36 digits of `scramble(seq * 1296 + shard)`          |
//!
//! `scramble(v) = (v * K + C) mod 36^7` is an affine map on `Z / 36^7`; it is
//! a bijection because `K` is coprime to `36^7` (odd and not a multiple of
//! three), so its inverse is `v = (v' - C) * K^-1 mod 36^7`. Hence two ids on
//! the same date differ whenever their `(shard, seq)` differ, and consecutive
//! sequence numbers produce tails that do not look consecutive. Ids from
//! different dates differ in their first three characters, except dates 26
//! years apart, which is beyond any receipt's retention.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::calendar::CivilTime;

/// Shards distinguishable in an id: two base-36 digits' worth (36^2).
pub const MAX_SHARDS_IN_ID: u32 = 1296;
/// Sequence numbers per shard per EAT day: five base-36 digits' worth (36^5).
pub const MAX_SEQ_PER_DAY: u64 = 60_466_176;

/// Characters of an id.
const LEN: usize = 10;
/// Base-36 digits, in value order.
const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Year lettered `A`.
const BASE_YEAR: i32 = 2006;
/// Size of the scrambled space: 36^7, i.e. seven base-36 digits.
const MODULUS: u64 = MAX_SEQ_PER_DAY * MAX_SHARDS_IN_ID as u64;
/// Multiplier of the scramble: Knuth's golden-ratio constant, odd and with
/// digit sum 43 (not a multiple of three), hence coprime to 36^7.
const K: u64 = 2_654_435_761;
/// Offset of the scramble, so that `(shard 0, seq 0)` is not `0000000`.
const C: u64 = 31_415_926_535;
// Both scramble constants are residues modulo 36^7.
const _: () = assert!(K < MODULUS && C < MODULUS);
/// `K^-1 mod 36^7`, computed at compile time.
const K_INV: u64 = match mod_inverse(K, MODULUS) {
    Some(inverse) => inverse,
    None => panic!("the scramble multiplier must be coprime to 36"),
};

/// A transaction receipt: ten characters of `[0-9A-Z]`.
///
/// Serialized as the ten-character string; deserializing validates it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TransactionId([u8; LEN]);

/// Why a string is not a receipt.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxnIdError {
    /// Receipts are exactly ten characters.
    #[error("transaction id has {len} characters; expected 10")]
    WrongLength {
        /// Characters given.
        len: usize,
    },
    /// Only digits and uppercase ASCII letters appear in receipts.
    #[error("transaction id character {position} is {found:?}; expected 0-9 or A-Z")]
    InvalidChar {
        /// 1-based position of the first bad character.
        position: usize,
        /// The character found there.
        found: char,
    },
}

impl TransactionId {
    /// The receipt of transaction `seq` of `shard` on EAT date `date` (see the
    /// module docs for the layout). Unique as long as `(date, shard, seq)` is.
    ///
    /// `None` if `shard >= MAX_SHARDS_IN_ID`, `seq >= MAX_SEQ_PER_DAY`
    /// (60,466,176 per shard per day) or `date` has an impossible month or
    /// day, so the caller decides what running out means.
    pub fn generate(date: CivilTime, shard: u32, seq: u64) -> Option<TransactionId> {
        if shard >= MAX_SHARDS_IN_ID || seq >= MAX_SEQ_PER_DAY {
            return None;
        }
        if !(1..=12).contains(&date.month) || !(1..=31).contains(&date.day) {
            return None;
        }
        let year_index = (date.year - BASE_YEAR).rem_euclid(26) as u8;
        let mut bytes = [0u8; LEN];
        bytes[0] = b'A' + year_index;
        bytes[1] = b'A' + (date.month - 1);
        bytes[2] = DIGITS[usize::from(date.day)];
        let mut tail = scramble(seq * u64::from(MAX_SHARDS_IN_ID) + u64::from(shard));
        for slot in bytes[3..].iter_mut().rev() {
            *slot = DIGITS[(tail % 36) as usize];
            tail /= 36;
        }
        Some(TransactionId(bytes))
    }

    /// The `(shard, seq)` this id was generated from: the inverse of the
    /// scramble. Lets care and audit find the shard that owns a receipt.
    /// `None` if the first three characters are not a date encoding, i.e.
    /// the id was not produced by [`TransactionId::generate`].
    pub fn decode(&self) -> Option<(u32, u64)> {
        let [year, month, day, ..] = self.0;
        let day_ok = matches!(day, b'1'..=b'9' | b'A'..=b'V');
        if !year.is_ascii_uppercase() || !matches!(month, b'A'..=b'L') || !day_ok {
            return None;
        }
        let mut tail: u64 = 0;
        for &byte in &self.0[3..] {
            tail = tail * 36 + u64::from(digit_value(byte)?);
        }
        let value = unscramble(tail);
        let shard = (value % u64::from(MAX_SHARDS_IN_ID)) as u32;
        Some((shard, value / u64::from(MAX_SHARDS_IN_ID)))
    }

    /// Parses a receipt as quoted: exactly ten characters of `[0-9A-Z]`.
    /// Case matters; callers that accept lowercase should uppercase first.
    pub fn parse(text: &str) -> Result<TransactionId, TxnIdError> {
        let len = text.chars().count();
        if len != LEN {
            return Err(TxnIdError::WrongLength { len });
        }
        let mut bytes = [0u8; LEN];
        for (index, (slot, found)) in bytes.iter_mut().zip(text.chars()).enumerate() {
            if !(found.is_ascii_digit() || found.is_ascii_uppercase()) {
                return Err(TxnIdError::InvalidChar {
                    position: index + 1,
                    found,
                });
            }
            *slot = found as u8;
        }
        Ok(TransactionId(bytes))
    }

    /// The receipt as text.
    pub fn as_str(&self) -> &str {
        // Every constructor admits only ASCII digits and uppercase letters.
        std::str::from_utf8(&self.0).expect("transaction ids are ASCII by construction")
    }
}

/// The affine bijection `v -> (v * K + C) mod 36^7`, for `v < 36^7`.
fn scramble(value: u64) -> u64 {
    let product = u128::from(value) * u128::from(K) + u128::from(C);
    (product % u128::from(MODULUS)) as u64
}

/// The inverse of [`scramble`]: `v' -> (v' - C) * K^-1 mod 36^7`.
fn unscramble(value: u64) -> u64 {
    let shifted = (value % MODULUS + MODULUS - C % MODULUS) % MODULUS;
    ((u128::from(shifted) * u128::from(K_INV)) % u128::from(MODULUS)) as u64
}

/// The value of one base-36 digit.
fn digit_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'A'..=b'Z' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// `a^-1 mod m` by the extended Euclidean algorithm, or `None` if `a` and `m`
/// are not coprime. `const` so [`K_INV`] is fixed at compile time.
const fn mod_inverse(a: u64, m: u64) -> Option<u64> {
    let (mut old_r, mut r) = (a as i128, m as i128);
    let (mut old_s, mut s) = (1i128, 0i128);
    while r != 0 {
        let quotient = old_r / r;
        (old_r, r) = (r, old_r - quotient * r);
        (old_s, s) = (s, old_s - quotient * s);
    }
    if old_r != 1 {
        return None;
    }
    Some(old_s.rem_euclid(m as i128) as u64)
}

impl fmt::Display for TransactionId {
    /// The ten characters, as printed in SMS.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TransactionId {
    type Err = TxnIdError;

    /// Same as [`TransactionId::parse`].
    fn from_str(text: &str) -> Result<TransactionId, TxnIdError> {
        TransactionId::parse(text)
    }
}

impl TryFrom<String> for TransactionId {
    type Error = TxnIdError;

    /// Validates through [`TransactionId::parse`]; used by serde.
    fn try_from(text: String) -> Result<TransactionId, TxnIdError> {
        TransactionId::parse(&text)
    }
}

impl From<TransactionId> for String {
    /// The ten characters; used by serde.
    fn from(id: TransactionId) -> String {
        id.as_str().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn date(year: i32, month: u8, day: u8) -> CivilTime {
        CivilTime {
            year,
            month,
            day,
            hour: 12,
            minute: 0,
        }
    }

    #[test]
    fn constants_are_consistent() {
        assert_eq!(MAX_SHARDS_IN_ID, 36 * 36);
        assert_eq!(MAX_SEQ_PER_DAY, 36u64.pow(5));
        assert_eq!(MODULUS, 36u64.pow(7));
        assert_eq!(K % 2, 1);
        assert_ne!(K % 3, 0);
        assert_eq!(u128::from(K) * u128::from(K_INV) % u128::from(MODULUS), 1);
        assert_eq!(mod_inverse(6, 36), None);
    }

    #[test]
    fn date_prefix_is_the_m_pesa_encoding() {
        let id = TransactionId::generate(date(2022, 3, 3), 0, 0).unwrap();
        assert!(id.as_str().starts_with("QC3"), "{id}");
        let id = TransactionId::generate(date(2026, 2, 16), 7, 42).unwrap();
        assert!(id.as_str().starts_with("UBG"), "{id}");
        let id = TransactionId::generate(date(2017, 12, 31), 1, 1).unwrap();
        assert!(id.as_str().starts_with("LLV"), "{id}");
        let id = TransactionId::generate(date(2006, 1, 10), 1, 1).unwrap();
        assert!(id.as_str().starts_with("AAA"), "{id}");
        // Years outside 2006..=2031 wrap modulo 26.
        let id = TransactionId::generate(date(2032, 1, 9), 1, 1).unwrap();
        assert!(id.as_str().starts_with("AA9"), "{id}");
        let id = TransactionId::generate(date(2005, 1, 1), 1, 1).unwrap();
        assert!(id.as_str().starts_with("ZA1"), "{id}");
    }

    #[test]
    fn bounds() {
        let d = date(2022, 3, 3);
        assert!(TransactionId::generate(d, MAX_SHARDS_IN_ID - 1, MAX_SEQ_PER_DAY - 1).is_some());
        assert_eq!(TransactionId::generate(d, 0, MAX_SEQ_PER_DAY), None);
        assert_eq!(TransactionId::generate(d, MAX_SHARDS_IN_ID, 0), None);
        assert_eq!(TransactionId::generate(d, u32::MAX, u64::MAX), None);
        assert_eq!(TransactionId::generate(date(2022, 0, 3), 0, 0), None);
        assert_eq!(TransactionId::generate(date(2022, 13, 3), 0, 0), None);
        assert_eq!(TransactionId::generate(date(2022, 3, 0), 0, 0), None);
        assert_eq!(TransactionId::generate(date(2022, 3, 32), 0, 0), None);
        let last = TransactionId::generate(d, MAX_SHARDS_IN_ID - 1, MAX_SEQ_PER_DAY - 1).unwrap();
        assert_eq!(
            last.decode(),
            Some((MAX_SHARDS_IN_ID - 1, MAX_SEQ_PER_DAY - 1))
        );
    }

    #[test]
    fn many_pairs_are_unique_and_decode() {
        let d = date(2022, 3, 3);
        let mut seen = HashSet::new();
        for shard in [0, 1, 2, 35, 36, 500, 1295] {
            for seq in (0..2_000).chain(MAX_SEQ_PER_DAY - 500..MAX_SEQ_PER_DAY) {
                let id = TransactionId::generate(d, shard, seq).unwrap();
                assert_eq!(id.decode(), Some((shard, seq)));
                assert!(
                    seen.insert(id),
                    "duplicate {id} for shard {shard} seq {seq}"
                );
            }
        }
    }

    #[test]
    fn consecutive_ids_do_not_look_sequential() {
        let d = date(2022, 3, 3);
        let a = TransactionId::generate(d, 3, 100).unwrap();
        let b = TransactionId::generate(d, 3, 101).unwrap();
        let differing = a.0[3..8]
            .iter()
            .zip(&b.0[3..8])
            .filter(|(x, y)| x != y)
            .count();
        assert!(differing >= 3, "{a} vs {b}");
    }

    #[test]
    fn parse_and_text_forms() {
        let id = TransactionId::parse("QC3K7T2M9A").unwrap();
        assert_eq!(id.as_str(), "QC3K7T2M9A");
        assert_eq!(id.to_string(), "QC3K7T2M9A");
        assert_eq!("QC3K7T2M9A".parse::<TransactionId>(), Ok(id));
        assert_eq!(
            TransactionId::parse(""),
            Err(TxnIdError::WrongLength { len: 0 })
        );
        assert_eq!(
            TransactionId::parse("QC3K7T2M9"),
            Err(TxnIdError::WrongLength { len: 9 })
        );
        assert_eq!(
            TransactionId::parse("QC3K7T2M9AB"),
            Err(TxnIdError::WrongLength { len: 11 })
        );
        assert_eq!(
            TransactionId::parse("QC3k7T2M9A"),
            Err(TxnIdError::InvalidChar {
                position: 4,
                found: 'k'
            })
        );
        assert_eq!(
            TransactionId::parse("QC3K7T2M9é"),
            Err(TxnIdError::InvalidChar {
                position: 10,
                found: 'é'
            })
        );
        assert_eq!(
            TransactionId::parse(" C3K7T2M9A"),
            Err(TxnIdError::InvalidChar {
                position: 1,
                found: ' '
            })
        );
    }

    #[test]
    fn decode_refuses_foreign_prefixes() {
        assert_eq!(TransactionId::parse("0C3K7T2M9A").unwrap().decode(), None);
        assert_eq!(TransactionId::parse("QM3K7T2M9A").unwrap().decode(), None);
        assert_eq!(TransactionId::parse("QC0K7T2M9A").unwrap().decode(), None);
        assert_eq!(TransactionId::parse("QCWK7T2M9A").unwrap().decode(), None);
        assert!(TransactionId::parse("QCVK7T2M9A")
            .unwrap()
            .decode()
            .is_some());
    }

    #[test]
    fn serde_is_the_string_and_validates() {
        let id = TransactionId::generate(date(2022, 3, 3), 9, 9).unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<TransactionId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<TransactionId>("\"qc3k7t2m9a\"").is_err());
        assert!(serde_json::from_str::<TransactionId>("[81,67,51,75,55,84,50,77,57,65]").is_err());
    }

    proptest! {
        #[test]
        fn scramble_is_a_bijection(a in 0..MODULUS, b in 0..MODULUS) {
            prop_assert_eq!(unscramble(scramble(a)), a);
            prop_assert_eq!(scramble(unscramble(a)), a);
            prop_assert!(scramble(a) < MODULUS);
            if a != b {
                prop_assert_ne!(scramble(a), scramble(b));
            }
        }

        #[test]
        fn distinct_inputs_give_distinct_ids(
            s1 in 0..MAX_SHARDS_IN_ID, q1 in 0..MAX_SEQ_PER_DAY,
            s2 in 0..MAX_SHARDS_IN_ID, q2 in 0..MAX_SEQ_PER_DAY,
        ) {
            let d = date(2022, 3, 3);
            let a = TransactionId::generate(d, s1, q1).unwrap();
            let b = TransactionId::generate(d, s2, q2).unwrap();
            prop_assert_eq!(a == b, (s1, q1) == (s2, q2));
            prop_assert_eq!(a.decode(), Some((s1, q1)));
            prop_assert_eq!(TransactionId::parse(a.as_str()), Ok(a));
        }

        #[test]
        fn parse_never_panics(text in ".{0,12}") {
            if let Ok(id) = TransactionId::parse(&text) {
                prop_assert_eq!(id.as_str(), text);
            }
        }
    }
}

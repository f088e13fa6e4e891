//! Amounts of Kenyan shillings as integer cents.
//!
//! Money is never a float: every balance, fee and limit is an `i64` count of
//! cents, so sums are exact and replicas that apply the same commands reach
//! bit-identical balances. The value is signed because system accounts (the
//! e-money issuer, clearing) legitimately go negative; customer-facing input
//! is parsed by [`Money::parse`], which only ever yields non-negative amounts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Cents in one shilling.
const CENTS_PER_SHILLING: i64 = 100;

/// An amount in minor units (cents).
///
/// Signed because system accounts (issuer, clearing) go negative; a customer
/// wallet never does, and that rule is enforced by the ledger, not here.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Money(i64);

/// Why a client-written amount was refused by [`Money::parse`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Nothing was written.
    #[error("amount is empty")]
    Empty,
    /// A leading `+` or `-`: amounts a client writes are always positive, the
    /// direction of a transfer is given by the command, never by a sign.
    #[error("amount must not carry a sign")]
    Signed,
    /// Anything that is not digits with an optional decimal point and
    /// correctly grouped thousands commas.
    #[error("amount is not a number (digits, optional commas in groups of three, optional decimal point)")]
    NotANumber,
    /// Three or more decimals: cents are the smallest unit.
    #[error("amount has more than two decimal places")]
    OverPrecise,
    /// More than [`Money::MAX`].
    #[error("amount is larger than the maximum of 10,000,000,000,000.00")]
    TooLarge,
}

impl Money {
    /// Zero shillings.
    pub const ZERO: Money = Money(0);

    /// The largest amount [`Money::parse`] accepts: 10^15 cents (ten trillion
    /// shillings). Far above any real limit, and far enough below `i64::MAX`
    /// that sums of a few parsed amounts cannot overflow.
    pub const MAX: Money = Money(1_000_000_000_000_000);

    /// An amount of `cents` minor units.
    pub const fn from_cents(cents: i64) -> Money {
        Money(cents)
    }

    /// An amount of whole shillings, for constants in code and tests.
    /// Saturates instead of overflowing, so it can never panic.
    pub const fn from_shillings(shillings: i64) -> Money {
        Money(shillings.saturating_mul(CENTS_PER_SHILLING))
    }

    /// The amount in cents.
    pub const fn cents(self) -> i64 {
        self.0
    }

    /// `self + other`, or `None` on `i64` overflow: the ledger turns `None`
    /// into a rejected command rather than a wrapped balance.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// `self - other`, or `None` on `i64` overflow.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// Below zero: only system accounts may be.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Exactly zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Above zero: the only amounts a transfer may move.
    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// Parses a decimal amount as a client writes it: `"500"`, `"500.5"`,
    /// `"500.50"`, optionally with thousands commas `"1,000.00"` (commas only
    /// in correct groups of three). Surrounding whitespace is ignored.
    ///
    /// Rejects an empty string, a sign (`+` or `-`), whitespace inside,
    /// exponents, a leading or trailing decimal point, more than two decimals
    /// ([`MoneyError::OverPrecise`]), any other character, and amounts above
    /// [`Money::MAX`]. Syntax is judged before size, so `"1e99"` is
    /// `NotANumber`, not `TooLarge`.
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(MoneyError::Empty);
        }
        if text.starts_with('+') || text.starts_with('-') {
            return Err(MoneyError::Signed);
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let whole_digits = whole_digits(whole)?;
        let fraction_cents = match fraction {
            None => 0,
            Some(fraction) => fraction_cents(fraction)?,
        };
        // Accumulate in i128 so that no length of digit string can overflow
        // before the comparison with MAX.
        let mut shillings: i128 = 0;
        for digit in whole_digits.bytes() {
            shillings = shillings * 10 + i128::from(digit - b'0');
            if shillings > i128::from(Money::MAX.0) {
                return Err(MoneyError::TooLarge);
            }
        }
        let cents = shillings * i128::from(CENTS_PER_SHILLING) + i128::from(fraction_cents);
        if cents > i128::from(Money::MAX.0) {
            return Err(MoneyError::TooLarge);
        }
        i64::try_from(cents)
            .map(Money)
            .map_err(|_| MoneyError::TooLarge)
    }

    /// `"1000.00"`, `"-3.05"`, `"0.00"`: the JSON/API form, two places and no
    /// separators, so it round-trips through [`Money::parse`] for
    /// non-negative amounts.
    pub fn to_decimal_string(self) -> String {
        let (sign, shillings, cents) = self.parts();
        format!("{sign}{shillings}.{cents:02}")
    }

    /// `"1,000.00"`: thousands separators and two places, as in "Amount you
    /// can transact within the day is 292,600.00".
    pub fn grouped(self) -> String {
        let (sign, _, _) = self.parts();
        format!("{sign}{}", self.grouped_magnitude())
    }

    /// `"Ksh1,000.00"`: the form used in SMS notifications. A negative amount
    /// (never sent to a customer, but possible for system accounts) reads
    /// `"-Ksh3.05"`.
    pub fn sms(self) -> String {
        let (sign, _, _) = self.parts();
        format!("{sign}Ksh{}", self.grouped_magnitude())
    }

    /// The magnitude with thousands separators and two places, no sign.
    fn grouped_magnitude(self) -> String {
        let (_, shillings, cents) = self.parts();
        let digits = shillings.to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 3);
        for (index, digit) in digits.chars().enumerate() {
            if index > 0 && (digits.len() - index) % 3 == 0 {
                out.push(',');
            }
            out.push(digit);
        }
        out.push_str(&format!(".{cents:02}"));
        out
    }

    /// Sign, whole shillings and remaining cents of the magnitude. Uses
    /// `unsigned_abs` so that even `i64::MIN` cents formats without overflow.
    fn parts(self) -> (&'static str, u64, u64) {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let per = CENTS_PER_SHILLING.unsigned_abs();
        (sign, magnitude / per, magnitude % per)
    }
}

/// The integer part with thousands commas removed, after checking that it is
/// non-empty and that commas, if any, separate correct groups of three.
fn whole_digits(whole: &str) -> Result<String, MoneyError> {
    if whole.is_empty() {
        return Err(MoneyError::NotANumber);
    }
    let mut digits = String::with_capacity(whole.len());
    for (index, group) in whole.split(',').enumerate() {
        if !group.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MoneyError::NotANumber);
        }
        let group_ok = if index == 0 {
            !group.is_empty() && (!whole.contains(',') || group.len() <= 3)
        } else {
            group.len() == 3
        };
        if !group_ok {
            return Err(MoneyError::NotANumber);
        }
        digits.push_str(group);
    }
    Ok(digits)
}

/// Cents from the text after the decimal point: one or two digits (`"5"` is
/// 50 cents). More digits are `OverPrecise` only if they are digits at all.
fn fraction_cents(fraction: &str) -> Result<u8, MoneyError> {
    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MoneyError::NotANumber);
    }
    let bytes = fraction.as_bytes();
    match bytes {
        [tenths] => Ok((tenths - b'0') * 10),
        [tenths, hundredths] => Ok((tenths - b'0') * 10 + (hundredths - b'0')),
        _ => Err(MoneyError::OverPrecise),
    }
}

impl fmt::Display for Money {
    /// Same as [`Money::to_decimal_string`], so logs and JSON agree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal_string())
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    /// Same as [`Money::parse`].
    fn from_str(text: &str) -> Result<Money, MoneyError> {
        Money::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cents(text: &str) -> Result<i64, MoneyError> {
        Money::parse(text).map(Money::cents)
    }

    #[test]
    fn parses_client_forms() {
        assert_eq!(cents("500"), Ok(50_000));
        assert_eq!(cents("500.5"), Ok(50_050));
        assert_eq!(cents("500.50"), Ok(50_050));
        assert_eq!(cents("500.05"), Ok(50_005));
        assert_eq!(cents("0"), Ok(0));
        assert_eq!(cents("0.01"), Ok(1));
        assert_eq!(cents("007"), Ok(700));
        assert_eq!(cents("1,000.00"), Ok(100_000));
        assert_eq!(cents("1,000"), Ok(100_000));
        assert_eq!(cents("12,345,678.90"), Ok(1_234_567_890));
        assert_eq!(cents("999,999"), Ok(99_999_900));
        assert_eq!(cents("  250000 "), Ok(25_000_000));
    }

    #[test]
    fn rejects_malformed_amounts() {
        assert_eq!(cents(""), Err(MoneyError::Empty));
        assert_eq!(cents("   "), Err(MoneyError::Empty));
        assert_eq!(cents("-5"), Err(MoneyError::Signed));
        assert_eq!(cents("+5"), Err(MoneyError::Signed));
        assert_eq!(cents("-"), Err(MoneyError::Signed));
        for bad in [
            "5-", "1 000", "1e5", "1E5", "12a", "abc", ".5", "5.", ".", "1.2.3", "1,00", ",100",
            "1000,000", "1,0000", "1,,000", "1,000,", "1.000,00", "0x10", "١٢", "5 .00", "Ksh5",
            "NaN", "inf",
        ] {
            assert_eq!(cents(bad), Err(MoneyError::NotANumber), "{bad:?}");
        }
        assert_eq!(cents("1.001"), Err(MoneyError::OverPrecise));
        assert_eq!(cents("1.000"), Err(MoneyError::OverPrecise));
        assert_eq!(cents("1.00a"), Err(MoneyError::NotANumber));
    }

    #[test]
    fn max_is_inclusive_and_anything_larger_is_too_large() {
        assert_eq!(Money::parse("10000000000000"), Ok(Money::MAX));
        assert_eq!(Money::parse("10,000,000,000,000.00"), Ok(Money::MAX));
        assert_eq!(cents("10000000000000.01"), Err(MoneyError::TooLarge));
        assert_eq!(cents("10000000000001"), Err(MoneyError::TooLarge));
        assert_eq!(
            cents("99999999999999999999999999999999999999999999999"),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            MoneyError::OverPrecise.to_string(),
            "amount has more than two decimal places"
        );
        assert!(MoneyError::Signed.to_string().contains("sign"));
        assert!(MoneyError::Empty.to_string().contains("empty"));
    }

    #[test]
    fn formats() {
        let m = Money::from_cents(100_000);
        assert_eq!(m.to_decimal_string(), "1000.00");
        assert_eq!(m.to_string(), "1000.00");
        assert_eq!(m.grouped(), "1,000.00");
        assert_eq!(m.sms(), "Ksh1,000.00");
        assert_eq!(Money::from_cents(-305).to_decimal_string(), "-3.05");
        assert_eq!(Money::from_cents(-305).sms(), "-Ksh3.05");
        assert_eq!(Money::ZERO.to_decimal_string(), "0.00");
        assert_eq!(Money::ZERO.grouped(), "0.00");
        assert_eq!(Money::from_cents(5).grouped(), "0.05");
        assert_eq!(Money::from_shillings(999).grouped(), "999.00");
        assert_eq!(Money::from_shillings(292_600).grouped(), "292,600.00");
        assert_eq!(Money::from_cents(-123_456_789).grouped(), "-1,234,567.89");
        assert_eq!(
            Money::from_cents(i64::MIN).grouped(),
            "-92,233,720,368,547,758.08"
        );
        assert_eq!(
            Money::from_cents(i64::MAX).to_decimal_string(),
            "92233720368547758.07"
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::from_shillings(10);
        assert_eq!(a.checked_add(a), Some(Money::from_shillings(20)));
        assert_eq!(
            a.checked_sub(Money::from_shillings(15)),
            Some(Money::from_shillings(-5))
        );
        assert_eq!(
            Money::from_cents(i64::MAX).checked_add(Money::from_cents(1)),
            None
        );
        assert_eq!(
            Money::from_cents(i64::MIN).checked_sub(Money::from_cents(1)),
            None
        );
        assert_eq!(Money::from_shillings(i64::MAX), Money::from_cents(i64::MAX));
        assert!(Money::from_cents(-1).is_negative());
        assert!(Money::ZERO.is_zero() && !Money::ZERO.is_positive() && !Money::ZERO.is_negative());
        assert!(Money::from_cents(1).is_positive());
        assert!(Money::from_cents(1) < Money::from_cents(2));
    }

    #[test]
    fn from_str_and_serde() {
        assert_eq!("1,000.50".parse::<Money>(), Ok(Money::from_cents(100_050)));
        let json = serde_json::to_string(&Money::from_cents(12_345)).unwrap();
        assert_eq!(json, "12345");
        assert_eq!(
            serde_json::from_str::<Money>(&json).unwrap(),
            Money::from_cents(12_345)
        );
    }

    proptest! {
        #[test]
        fn decimal_string_round_trips(c in 0..=Money::MAX.cents()) {
            let m = Money::from_cents(c);
            prop_assert_eq!(Money::parse(&m.to_decimal_string()), Ok(m));
            prop_assert_eq!(Money::parse(&m.grouped()), Ok(m));
        }

        #[test]
        fn never_panics_on_arbitrary_text(text in ".{0,40}") {
            let _ = Money::parse(&text);
        }

        #[test]
        fn never_panics_on_numberish_text(text in "[0-9,.+ -]{0,30}") {
            if let Ok(m) = Money::parse(&text) {
                prop_assert!(!m.is_negative() && m <= Money::MAX);
            }
        }
    }
}

//! Band tables: amounts mapped to fees or commissions by whole-shilling
//! ranges, validated so that every amount in range has exactly one value.

use serde::{Deserialize, Serialize};

use super::TariffError;
use crate::money::Money;

/// Cents in one shilling.
const SHILLING: i64 = 100;

/// One row of a band table: amounts from `from` to `to` shillings
/// (inclusive, through `to.99`) carry `value` (a fee or a commission).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Band {
    /// Lowest amount covered; whole shillings.
    pub from: Money,
    /// Highest whole shilling covered, as written; the band reaches `to.99`.
    pub to: Money,
    /// Fee or commission for any amount in the band.
    pub value: Money,
}

impl Band {
    /// The last cent the band covers: `to + 0.99`.
    pub fn upper(&self) -> Money {
        Money::from_cents(self.to.cents().saturating_add(SHILLING - 1))
    }

    /// Whether `amount` falls in this band.
    pub fn contains(&self, amount: Money) -> bool {
        self.from <= amount && amount <= self.upper()
    }
}

/// A validated band table: ascending, contiguous, non-overlapping bands with
/// non-negative values, so any amount between [`BandTable::min`] and
/// [`BandTable::max`] matches exactly one band.
///
/// Deserializing validates like [`BandTable::new`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawBandTable")]
pub struct BandTable {
    bands: Vec<Band>,
}

/// The unvalidated serde shape of a [`BandTable`].
#[derive(Deserialize)]
struct RawBandTable {
    bands: Vec<Band>,
}

impl TryFrom<RawBandTable> for BandTable {
    type Error = TariffError;

    fn try_from(raw: RawBandTable) -> Result<BandTable, TariffError> {
        BandTable::new(raw.bands)
    }
}

impl BandTable {
    /// Validates `bands` (see [`BandTable`]) for tables built in code; files
    /// go through [`Tariffs::parse`](super::Tariffs::parse), whose errors name
    /// lines instead.
    pub fn new(bands: Vec<Band>) -> Result<BandTable, TariffError> {
        for (index, band) in bands.iter().enumerate() {
            let prev = index.checked_sub(1).and_then(|i| bands.get(i));
            if let Err(problem) = check_band(band, prev) {
                let prev_where = prev.map(|p| format!("band {index} ({})", range(p)));
                let described = problem.describe(band, prev_where.as_deref().unwrap_or(""));
                return Err(TariffError::Invalid {
                    message: format!("band {}: {described}", index + 1),
                });
            }
        }
        Ok(BandTable { bands })
    }

    /// Wraps bands the parser has already checked line by line.
    pub(super) fn from_checked(bands: Vec<Band>) -> BandTable {
        BandTable { bands }
    }

    /// The value of the band containing `amount`, or `None` if no band does.
    pub fn lookup(&self, amount: Money) -> Option<Money> {
        self.band_index(amount).map(|i| self.bands[i].value)
    }

    /// The bands, ascending.
    pub fn bands(&self) -> &[Band] {
        &self.bands
    }

    /// The smallest amount any band covers.
    pub fn min(&self) -> Option<Money> {
        self.bands.first().map(|band| band.from)
    }

    /// The largest amount any band covers: the last band's `to + 0.99`.
    pub fn max(&self) -> Option<Money> {
        self.bands.last().map(Band::upper)
    }

    /// Index of the band containing `amount`: a binary search, valid because
    /// bands are ascending and disjoint.
    pub(super) fn band_index(&self, amount: Money) -> Option<usize> {
        let index = self.bands.partition_point(|band| band.upper() < amount);
        let band = self.bands.get(index)?;
        band.contains(amount).then_some(index)
    }
}

/// What is wrong with a band, alone or after its predecessor in the table.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BandProblem {
    /// A bound has cents; bands are in whole shillings.
    Fractional,
    /// A bound or the value is below zero.
    Negative,
    /// `from > to`.
    Inverted,
    /// Starts before the previous band starts.
    OutOfOrder,
    /// Starts inside the previous band.
    Overlap,
    /// Starts more than one shilling after the previous band ends.
    Gap,
}

impl BandProblem {
    /// A sentence naming `band` and, for sequence problems, the previous
    /// band as located by `prev_where` (e.g. "the band on line 4").
    pub(super) fn describe(&self, band: &Band, prev_where: &str) -> String {
        let this = format!("band {}", range(band));
        match self {
            BandProblem::Fractional => format!("{this}: bounds must be whole shillings"),
            BandProblem::Negative => format!("{this}: amounts must not be negative"),
            BandProblem::Inverted => format!("{this}: from is greater than to"),
            BandProblem::OutOfOrder => {
                format!("{this} starts before {prev_where}; list bands in ascending order")
            }
            BandProblem::Overlap => format!("{this} overlaps {prev_where}"),
            BandProblem::Gap => format!("{this} leaves a gap after {prev_where}"),
        }
    }
}

/// Checks one band and, if it has one, its predecessor in the same table.
pub(super) fn check_band(band: &Band, prev: Option<&Band>) -> Result<(), BandProblem> {
    if band.from.is_negative() || band.to.is_negative() || band.value.is_negative() {
        return Err(BandProblem::Negative);
    }
    if band.from.cents() % SHILLING != 0 || band.to.cents() % SHILLING != 0 {
        return Err(BandProblem::Fractional);
    }
    if band.from > band.to {
        return Err(BandProblem::Inverted);
    }
    let Some(prev) = prev else {
        return Ok(());
    };
    let next_from = prev.to.cents().saturating_add(SHILLING);
    if band.from < prev.from {
        Err(BandProblem::OutOfOrder)
    } else if band.from.cents() < next_from {
        Err(BandProblem::Overlap)
    } else if band.from.cents() > next_from {
        Err(BandProblem::Gap)
    } else {
        Ok(())
    }
}

/// A band's bounds as written in the file: "50–100".
pub(super) fn range(band: &Band) -> String {
    format!("{}–{}", kes(band.from), kes(band.to))
}

/// A bound as written in the file: whole shillings without decimals.
fn kes(amount: Money) -> String {
    if amount.cents() % SHILLING == 0 {
        (amount.cents() / SHILLING).to_string()
    } else {
        amount.to_decimal_string()
    }
}

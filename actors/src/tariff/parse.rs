//! The tariff file parser: one rule per line, every error naming its line.
//!
//! ```text
//! # comment
//! band  TABLE  FROM_KES  TO_KES  VALUE_KES
//! limit NAME   VALUE_KES
//! ```

use super::band::{check_band, range};
use super::{Band, BandTable, Limits, TariffError, Tariffs};
use crate::money::Money;

/// Table name of the send-money fee.
pub(super) const SEND_MONEY: &str = "send_money";
/// Table name of the withdrawal fee.
pub(super) const WITHDRAWAL: &str = "withdrawal";
/// Table name of the cash-in commission.
pub(super) const COMMISSION_CASH_IN: &str = "commission_cash_in";
/// Table name of the cash-out commission.
pub(super) const COMMISSION_CASH_OUT: &str = "commission_cash_out";

/// Table names in storage order of [`Parser::tables`].
const TABLES: [&str; 4] = [
    SEND_MONEY,
    WITHDRAWAL,
    COMMISSION_CASH_IN,
    COMMISSION_CASH_OUT,
];
/// Limit names in storage order of [`Parser::limits`].
const LIMITS: [&str; 7] = [
    "per_transaction",
    "daily",
    "max_balance",
    "min_withdrawal",
    "min_transfer",
    "float_per_transaction",
    "max_float_balance",
];
/// Values of the limits a file may leave out (the newer ones), indexed like [`LIMITS`].
const LIMIT_DEFAULTS_KES: [Option<i64>; 7] = [
    None,
    None,
    None,
    None,
    None,
    Some(10_000_000),
    Some(1_000_000_000),
];

/// Bands of one table with the line each came from.
type LinedBands = Vec<(Band, usize)>;

/// Parses and validates a whole tariff file.
pub(super) fn parse(text: &str) -> Result<Tariffs, TariffError> {
    let mut parser = Parser::default();
    for (index, raw_line) in text.lines().enumerate() {
        let line = index + 1;
        let content = match raw_line.split_once('#') {
            Some((before, _comment)) => before,
            None => raw_line,
        };
        let fields: Vec<&str> = content.split_whitespace().collect();
        parser
            .rule(line, &fields)
            .map_err(|message| TariffError::Line { line, message })?;
    }
    parser.finish()
}

/// Tables and limits read so far.
#[derive(Default)]
struct Parser {
    /// Indexed like [`TABLES`].
    tables: [LinedBands; 4],
    /// Indexed like [`LIMITS`]: value and line.
    limits: [Option<(Money, usize)>; 7],
}

impl Parser {
    /// Applies the fields of line `line`; `Err` is the message for it.
    fn rule(&mut self, line: usize, fields: &[&str]) -> Result<(), String> {
        match fields.first().copied() {
            None => Ok(()),
            Some("band") => self.band(line, fields),
            Some("limit") => self.limit(line, fields),
            Some(other) => Err(format!(
                "unknown rule {other:?}; expected \"band\" or \"limit\""
            )),
        }
    }

    /// `band TABLE FROM TO VALUE`.
    fn band(&mut self, line: usize, fields: &[&str]) -> Result<(), String> {
        let [_, table, from, to, value] = fields else {
            return Err(format!(
                "a band line has 5 fields (band TABLE FROM_KES TO_KES VALUE_KES), found {}",
                fields.len()
            ));
        };
        let Some(table_index) = TABLES.iter().position(|name| name == table) else {
            return Err(format!(
                "unknown table {table:?}; expected one of {}",
                TABLES.join(", ")
            ));
        };
        let band = Band {
            from: amount("from", from)?,
            to: amount("to", to)?,
            value: amount("value", value)?,
        };
        let bands = &mut self.tables[table_index];
        let prev = bands.last();
        if let Err(problem) = check_band(&band, prev.map(|(prev, _)| prev)) {
            let prev_where = prev
                .map(|(prev, prev_line)| format!("the band on line {prev_line} ({})", range(prev)))
                .unwrap_or_default();
            return Err(problem.describe(&band, &prev_where));
        }
        bands.push((band, line));
        Ok(())
    }

    /// `limit NAME VALUE`.
    fn limit(&mut self, line: usize, fields: &[&str]) -> Result<(), String> {
        let [_, name, value] = fields else {
            return Err(format!(
                "a limit line has 3 fields (limit NAME VALUE_KES), found {}",
                fields.len()
            ));
        };
        let Some(limit_index) = LIMITS.iter().position(|known| known == name) else {
            return Err(format!(
                "unknown limit {name:?}; expected one of {}",
                LIMITS.join(", ")
            ));
        };
        let value = amount("limit", value)?;
        let slot = &mut self.limits[limit_index];
        if let Some((_, first_line)) = slot {
            return Err(format!(
                "duplicate limit {name}: already set on line {first_line}"
            ));
        }
        *slot = Some((value, line));
        Ok(())
    }

    /// Checks completeness and the cross-table rule, then builds.
    fn finish(self) -> Result<Tariffs, TariffError> {
        let missing = |what: String| TariffError::Missing { what };
        for (name, bands) in TABLES.iter().zip(&self.tables) {
            if bands.is_empty() {
                return Err(missing(format!("band table {name}")));
            }
        }
        let mut values = [Money::ZERO; 7];
        for (((name, slot), default), value) in LIMITS
            .iter()
            .zip(&self.limits)
            .zip(LIMIT_DEFAULTS_KES)
            .zip(&mut values)
        {
            *value = match (slot, default) {
                (Some((value, _)), _) => *value,
                (None, Some(kes)) => Money::from_shillings(kes),
                (None, None) => return Err(missing(format!("limit {name}"))),
            };
        }
        let [per_transaction, daily, max_balance, min_withdrawal, min_transfer, float_per_transaction, max_float_balance] =
            values;
        let [_, withdrawal_lines, _, cash_out_lines]: [Vec<usize>; 4] = self
            .tables
            .each_ref()
            .map(|bands| bands.iter().map(|(_, line)| *line).collect());
        let [send_money, withdrawal, commission_cash_in, commission_cash_out] =
            self.tables.map(|bands| {
                BandTable::from_checked(bands.into_iter().map(|(band, _)| band).collect())
            });
        let tariffs = Tariffs {
            send_money,
            withdrawal,
            commission_cash_in,
            commission_cash_out,
            limits: Limits {
                per_transaction,
                daily,
                max_balance,
                min_withdrawal,
                min_transfer,
                float_per_transaction,
                max_float_balance,
            },
        };
        if let Some(excess) = tariffs.commission_excess() {
            let commission_line = cash_out_lines[excess.commission_band];
            let withdrawal_line = withdrawal_lines[excess.withdrawal_band];
            return Err(TariffError::Line {
                line: commission_line,
                message: excess.describe(&format!(" (line {withdrawal_line})")),
            });
        }
        Ok(tariffs)
    }
}

/// Parses one amount field, naming the field in the error.
fn amount(field: &str, text: &str) -> Result<Money, String> {
    Money::parse(text).map_err(|e| format!("bad {field} amount {text:?}: {e}"))
}

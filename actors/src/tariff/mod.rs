//! Tariffs and limits as data.
//!
//! Fees, agent commissions and limits change by regulation and by commercial
//! decision, never by a code release, so they live in a small line-oriented
//! text file (the Kenyan default ships in `data/tariffs.txt`). The file is
//! validated strictly when loaded: a band table with a hole would make an
//! amount untransactable, an overlap would make the fee ambiguous, and a
//! cash-out commission above the withdrawal fee would make the fees account
//! pay out more than it took. Every error names the line at fault.
//!
//! A band `[from, to]` is in whole shillings and covers `from.00` up to and
//! including `to.99`, so `100.50` falls in the 50–100 band and no amount
//! falls between two contiguous bands.

mod band;
mod parse;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::money::Money;
pub use band::{Band, BandTable};

/// The Kenyan default file, compiled in so a node always has valid tariffs.
const KENYA_DEFAULT: &str = include_str!("../../data/tariffs.txt");

/// Transaction limits, applied by the ledger before any fee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest single transaction.
    pub per_transaction: Money,
    /// Most a customer may move per EAT day.
    pub daily: Money,
    /// Largest wallet balance.
    pub max_balance: Money,
    /// Smallest cash withdrawal at an agent.
    pub min_withdrawal: Money,
    /// Smallest send-money amount.
    pub min_transfer: Money,
    /// Largest single float issue (e-money the operator sells to an agent or business).
    pub float_per_transaction: Money,
    /// Largest balance of an agent's or a business's account.
    pub max_float_balance: Money,
}

/// The full tariff: customer fees, agent commissions and limits.
///
/// Deserializing validates like [`Tariffs::validate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawTariffs")]
pub struct Tariffs {
    /// Customer fee for sending to another customer.
    pub send_money: BandTable,
    /// Customer fee for cash-out at an agent.
    pub withdrawal: BandTable,
    /// Commission paid to an agent for a cash-in (deposit).
    pub commission_cash_in: BandTable,
    /// Commission paid to an agent for a cash-out; never above the
    /// withdrawal fee for the same amount.
    pub commission_cash_out: BandTable,
    /// Transaction limits.
    pub limits: Limits,
}

/// The unvalidated serde shape of [`Tariffs`].
#[derive(Deserialize)]
struct RawTariffs {
    send_money: BandTable,
    withdrawal: BandTable,
    commission_cash_in: BandTable,
    commission_cash_out: BandTable,
    limits: Limits,
}

impl TryFrom<RawTariffs> for Tariffs {
    type Error = TariffError;

    fn try_from(raw: RawTariffs) -> Result<Tariffs, TariffError> {
        let tariffs = Tariffs {
            send_money: raw.send_money,
            withdrawal: raw.withdrawal,
            commission_cash_in: raw.commission_cash_in,
            commission_cash_out: raw.commission_cash_out,
            limits: raw.limits,
        };
        tariffs.validate()?;
        Ok(tariffs)
    }
}

/// Why a tariff file or value was refused.
#[derive(Debug, thiserror::Error)]
pub enum TariffError {
    /// A line of the file is wrong; `line` is 1-based.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A table or limit the platform needs is absent.
    #[error("missing {what}")]
    Missing {
        /// E.g. "band table withdrawal" or "limit daily".
        what: String,
    },
    /// The file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Tables built in code or deserialized are inconsistent; there is no
    /// line to name.
    #[error("invalid tariffs: {message}")]
    Invalid {
        /// What is wrong.
        message: String,
    },
}

impl Tariffs {
    /// Parses and validates a tariff file's text (format in the module docs
    /// and in `data/tariffs.txt`).
    pub fn parse(text: &str) -> Result<Tariffs, TariffError> {
        parse::parse(text)
    }

    /// Reads and parses a tariff file.
    pub fn load(path: &Path) -> Result<Tariffs, TariffError> {
        let text = std::fs::read_to_string(path).map_err(|source| TariffError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Tariffs::parse(&text)
    }

    /// The text of the shipped Kenyan default (`data/tariffs.txt`).
    pub fn kenya_default_text() -> &'static str {
        KENYA_DEFAULT
    }

    /// The shipped Kenyan tariffs.
    pub fn kenya_default() -> Tariffs {
        // The shipped file is compiled in and a unit test parses it, so this
        // cannot fail in a tested build.
        Tariffs::parse(KENYA_DEFAULT).expect("the shipped data/tariffs.txt is valid")
    }

    /// Checks the rules that span tables (each [`BandTable`] is valid by
    /// construction): every table has a band, and the cash-out commission
    /// never exceeds the withdrawal fee.
    pub fn validate(&self) -> Result<(), TariffError> {
        for (name, table) in self.tables() {
            if table.bands().is_empty() {
                return Err(TariffError::Missing {
                    what: format!("band table {name}"),
                });
            }
        }
        match self.commission_excess() {
            None => Ok(()),
            Some(excess) => Err(TariffError::Invalid {
                message: excess.describe(""),
            }),
        }
    }

    /// Customer fee to send `amount`; `None` if no band covers it (below the
    /// minimum or above the maximum transfer).
    pub fn send_fee(&self, amount: Money) -> Option<Money> {
        self.send_money.lookup(amount)
    }

    /// Customer fee to withdraw `amount` at an agent; `None` if no band
    /// covers it.
    pub fn withdrawal_fee(&self, amount: Money) -> Option<Money> {
        self.withdrawal.lookup(amount)
    }

    /// Agent commission for a deposit of `amount`; zero outside the bands.
    pub fn cash_in_commission(&self, amount: Money) -> Money {
        self.commission_cash_in
            .lookup(amount)
            .unwrap_or(Money::ZERO)
    }

    /// Agent commission for a withdrawal of `amount`; zero outside the bands.
    pub fn cash_out_commission(&self, amount: Money) -> Money {
        self.commission_cash_out
            .lookup(amount)
            .unwrap_or(Money::ZERO)
    }

    /// The tables by their file names, in file-format order.
    fn tables(&self) -> [(&'static str, &BandTable); 4] {
        [
            (parse::SEND_MONEY, &self.send_money),
            (parse::WITHDRAWAL, &self.withdrawal),
            (parse::COMMISSION_CASH_IN, &self.commission_cash_in),
            (parse::COMMISSION_CASH_OUT, &self.commission_cash_out),
        ]
    }

    /// The smallest amount at which the cash-out commission exceeds the
    /// withdrawal fee. Both are step functions that change only where some
    /// band of either table starts or ends, so checking every band boundary
    /// of both tables checks every amount. Amounts no withdrawal band covers
    /// are skipped: no withdrawal happens there, so no commission is paid.
    fn commission_excess(&self) -> Option<CommissionExcess> {
        let mut boundaries: Vec<Money> = self
            .withdrawal
            .bands()
            .iter()
            .chain(self.commission_cash_out.bands())
            .flat_map(|band| [band.from, band.upper()])
            .collect();
        boundaries.sort_unstable();
        boundaries.dedup();
        for amount in boundaries {
            let Some(commission_band) = self.commission_cash_out.band_index(amount) else {
                continue;
            };
            let Some(withdrawal_band) = self.withdrawal.band_index(amount) else {
                continue;
            };
            let commission = self.commission_cash_out.bands()[commission_band].value;
            let fee = self.withdrawal.bands()[withdrawal_band].value;
            if commission > fee {
                return Some(CommissionExcess {
                    amount,
                    commission,
                    fee,
                    commission_band,
                    withdrawal_band,
                });
            }
        }
        None
    }
}

/// Where a cash-out commission exceeds the withdrawal fee.
struct CommissionExcess {
    amount: Money,
    commission: Money,
    fee: Money,
    /// Index into `commission_cash_out`.
    commission_band: usize,
    /// Index into `withdrawal`.
    withdrawal_band: usize,
}

impl CommissionExcess {
    /// The message; `fee_where` locates the withdrawal band (e.g.
    /// " (line 12)") or is empty.
    fn describe(&self, fee_where: &str) -> String {
        format!(
            "cash-out commission {} exceeds the withdrawal fee {}{fee_where} at amount {}; \
             the fees account would pay out more than it took",
            self.commission, self.fee, self.amount,
        )
    }
}

#[cfg(test)]
mod tests;

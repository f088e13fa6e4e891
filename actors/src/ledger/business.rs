//! What a business has beyond a balance: the accounts Daraja reports ("wallets") and the
//! initiators allowed to order its payouts.
//!
//! A business's money is one ledger balance, split into accounts: its Working and
//! Organization Settlement accounts are parts of it set aside (moved there by care or the
//! business, `MoveBetweenWallets`), and the rest is its Utility account (a till's Merchant
//! account), where customer payments land and which payouts spend — a payout never touches
//! money set aside. Moving between them changes no books: the total is the account's balance.
//! Charges Paid counts the fees its payouts paid (shown negative, as M-Pesa does).

use serde::{Deserialize, Serialize};

use crate::account::{AccountRef, Shortcode};
use crate::money::Money;
use crate::outcome::ResultCode;

use super::records::{Account, AccountExtras};
use super::ShardLedger;

/// Most initiators per business.
pub const INITIATORS_MAX: usize = 8;
/// Longest initiator name.
pub const INITIATOR_NAME_LEN_MAX: usize = 40;

/// A person or system allowed to order a business's payouts (Daraja's `InitiatorName`).
/// The password is kept only as a keyed digest (see the business API's `credentials.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initiator {
    pub name: String,
    pub password_digest: String,
}

/// A business's accounts as Daraja reports them.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallets {
    /// Spendable: the posted balance less outgoing holds.
    pub utility: Money,
    pub working: Money,
    /// Fees paid so far, as a negative amount.
    pub charges_paid: Money,
    pub settlement: Money,
}

/// A business's accounts that hold money.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wallet {
    Utility,
    Working,
    Settlement,
}

impl Wallet {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            Wallet::Utility => "utility",
            Wallet::Working => "working",
            Wallet::Settlement => "settlement",
        }
    }

    /// The wallet for an API name.
    pub fn from_name(name: &str) -> Option<Wallet> {
        [Wallet::Utility, Wallet::Working, Wallet::Settlement]
            .into_iter()
            .find(|w| w.name() == name)
    }
}

/// Whether `name` can name an initiator.
pub fn valid_initiator_name(name: &str) -> bool {
    (1..=INITIATOR_NAME_LEN_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
}

impl Wallets {
    /// A business account's wallets.
    pub fn of(account: &Account) -> Wallets {
        let charges = account
            .extras
            .as_ref()
            .map_or(0, |e| e.charges_paid.cents());
        let (working, settlement) = account
            .extras
            .as_ref()
            .map_or((Money::ZERO, Money::ZERO), |e| (e.working, e.settlement));
        Wallets {
            utility: account.spendable(),
            working,
            charges_paid: Money::from_cents(-charges),
            settlement,
        }
    }
}

impl ShardLedger {
    /// The accounts of a business of this shard (zero for an unknown one).
    pub fn wallets(&self, business: &AccountRef) -> Wallets {
        self.state
            .accounts
            .get(business)
            .map_or_else(Wallets::default, Wallets::of)
    }

    /// Adds or replaces (by name) an initiator of a business of this shard.
    pub(super) fn set_initiator(
        &mut self,
        business: &Shortcode,
        initiator: &Initiator,
    ) -> ResultCode {
        if !valid_initiator_name(&initiator.name) || initiator.password_digest.len() > 128 {
            return ResultCode::NotPermitted;
        }
        let Some(account) = self
            .state
            .accounts
            .get_mut(&AccountRef::Business(business.clone()))
        else {
            return ResultCode::UnknownAccount;
        };
        let extras = account
            .extras
            .get_or_insert_with(Box::<AccountExtras>::default);
        if let Some(existing) = extras
            .initiators
            .iter_mut()
            .find(|i| i.name == initiator.name)
        {
            existing.password_digest = initiator.password_digest.clone();
            return ResultCode::Success;
        }
        if extras.initiators.len() >= INITIATORS_MAX {
            return ResultCode::Overloaded;
        }
        extras.initiators.push(initiator.clone());
        ResultCode::Success
    }

    /// Moves `amount` between two of a business's accounts (its balance is unchanged).
    pub(super) fn move_between_wallets(
        &mut self,
        business: &Shortcode,
        from: Wallet,
        to: Wallet,
        amount: Money,
    ) -> ResultCode {
        if from == to {
            return ResultCode::SameAccount;
        }
        if !amount.is_positive() {
            return ResultCode::InvalidAmount;
        }
        let reference = AccountRef::Business(business.clone());
        let Some(account) = self.state.accounts.get_mut(&reference) else {
            return ResultCode::UnknownAccount;
        };
        let held = Wallets::of(account);
        let source = match from {
            Wallet::Utility => held.utility,
            Wallet::Working => held.working,
            Wallet::Settlement => held.settlement,
        };
        if source < amount {
            return ResultCode::InsufficientFunds;
        }
        let extras = account
            .extras
            .get_or_insert_with(Box::<AccountExtras>::default);
        let delta = |wallet: Wallet| match wallet {
            _ if wallet == from => -amount.cents(),
            _ if wallet == to => amount.cents(),
            _ => 0,
        };
        extras.working = Money::from_cents(extras.working.cents() + delta(Wallet::Working));
        extras.settlement =
            Money::from_cents(extras.settlement.cents() + delta(Wallet::Settlement));
        self.touched.push(reference);
        ResultCode::Success
    }

    /// A committed transfer's fee, paid by a business: counted in its Charges Paid account.
    pub(super) fn count_charges(&mut self, payer: &AccountRef, fee: Money) {
        if !matches!(payer, AccountRef::Business(_)) || !fee.is_positive() {
            return;
        }
        if let Some(account) = self.state.accounts.get_mut(payer) {
            let extras = account
                .extras
                .get_or_insert_with(Box::<AccountExtras>::default);
            extras.charges_paid = extras
                .charges_paid
                .checked_add(fee)
                .unwrap_or(extras.charges_paid);
        }
    }
}

//! What a shard stores: accounts, the records of transfers on either side, and the SMS outbox.

use serde::{Deserialize, Serialize};

use crate::account::{AccountRef, ShardId};
use crate::money::Money;
use crate::msisdn::Msisdn;
use crate::outcome::ResultCode;
use crate::pin::PinState;
use crate::roles::AccountKind;
use crate::transfer::{TransferId, TransferRequest};
use crate::txn_id::TransactionId;

use super::command::CreditOffer;

/// The four double-entry counters of one account (after TigerBeetle).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balances {
    pub debits_pending: Money,
    pub debits_posted: Money,
    pub credits_pending: Money,
    pub credits_posted: Money,
}

impl Balances {
    /// Posted balance: credits minus debits.
    pub fn balance(&self) -> Money {
        money(self.credits_posted.cents() - self.debits_posted.cents())
    }
    /// What may be spent: posted balance less outgoing holds. Incoming pending credits are not
    /// spendable until settled.
    pub fn available(&self) -> Money {
        money(self.balance().cents() - self.debits_pending.cents())
    }
}

fn money(cents: i64) -> Money {
    Money::from_cents(cents)
}

/// Frozen and closed accounts may neither pay nor be paid.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Frozen,
    Closed,
}

impl AccountStatus {
    /// The API name.
    pub fn name(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Frozen => "frozen",
            AccountStatus::Closed => "closed",
        }
    }
}

/// Money sent on one EAT day, for the daily limit.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyUsage {
    pub day: u32,
    pub sent: Money,
}

/// One account of this shard. Kept small — a node holds a million of them per shard group:
/// the phone inline, and what only agents and businesses have out of line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub kind: AccountKind,
    pub status: AccountStatus,
    pub name: String,
    pub id_number: Option<String>,
    /// Where confirmations go (customers and agents).
    pub phone: Option<Msisdn>,
    pub pin: Option<PinState>,
    pub balances: Balances,
    pub daily: DailyUsage,
    /// The language the holder chose for menus (`None`: the channel's default).
    pub language: Option<crate::language::Language>,
    /// Agents' and businesses' fields; `None` for customers and system accounts.
    pub extras: Option<Box<AccountExtras>>,
}

/// What only agents and businesses have.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountExtras {
    /// Agents: the store this account serves from.
    pub store_number: Option<String>,
    /// Agents: commission earned, held in the shard's commissions account until paid out.
    pub commission_earned: Money,
    /// Businesses: API credentials.
    pub api_credentials: Option<super::command::ApiCredentials>,
    /// Businesses: where their customers' payments are validated and confirmed (C2B).
    pub c2b_urls: Option<super::c2b::C2bUrls>,
    /// Businesses: who may order their payouts (B2C, B2B).
    pub initiators: Vec<super::business::Initiator>,
    /// Businesses: fees their payouts paid so far (the Charges Paid account, shown negative).
    pub charges_paid: Money,
    /// Businesses: the parts of their balance set aside in their Working and Organization
    /// Settlement accounts (the rest is their Utility account, which payouts spend).
    pub working: Money,
    pub settlement: Money,
}

impl Account {
    /// A system account: no owner, no PIN, may go negative.
    pub fn system(name: String) -> Account {
        Account {
            kind: AccountKind::System,
            status: AccountStatus::Active,
            name,
            id_number: None,
            phone: None,
            pin: None,
            balances: Balances::default(),
            daily: DailyUsage::default(),
            language: None,
            extras: None,
        }
    }

    /// Sent so far on `day`.
    pub fn sent_on(&self, day: u32) -> Money {
        if self.daily.day == day {
            self.daily.sent
        } else {
            Money::ZERO
        }
    }

    /// Businesses: the part of the balance set aside in other accounts than Utility, which
    /// payouts may not spend.
    pub fn earmarked(&self) -> Money {
        self.extras.as_ref().map_or(Money::ZERO, |e| {
            Money::from_cents(e.working.cents() + e.settlement.cents())
        })
    }

    /// What may be spent: available less what is set aside ([`Account::earmarked`]).
    pub fn spendable(&self) -> Money {
        Money::from_cents(self.balances.available().cents() - self.earmarked().cents())
    }

    /// Agents: the store this account serves from.
    pub fn store_number(&self) -> Option<&str> {
        self.extras.as_ref()?.store_number.as_deref()
    }

    /// Agents: commission earned so far.
    pub fn commission_earned(&self) -> Money {
        self.extras
            .as_ref()
            .map_or(Money::ZERO, |e| e.commission_earned)
    }

    /// Businesses: their API credentials.
    pub fn api_credentials(&self) -> Option<&super::command::ApiCredentials> {
        self.extras.as_ref()?.api_credentials.as_ref()
    }

    /// Businesses: their registered C2B URLs.
    pub fn c2b_urls(&self) -> Option<&super::c2b::C2bUrls> {
        self.extras.as_ref()?.c2b_urls.as_ref()
    }

    /// Adds to the commission earned (a statistic: it saturates rather than stop the shard).
    pub fn add_commission(&mut self, amount: Money) {
        let extras = self.extras.get_or_insert_with(Box::default);
        extras.commission_earned = extras
            .commission_earned
            .checked_add(amount)
            .unwrap_or(Money::MAX);
    }
}

/// Whether a received transfer has been reversed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReversalMark {
    #[default]
    None,
    /// A reversal transfer is in flight; a second is refused.
    InProgress(TransferId),
    /// Reversed by this transfer.
    Done(TransferId),
}

/// Payer-side state of a transfer (also the only record of a same-shard transfer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutgoingState {
    /// Refused before any money moved.
    Refused(ResultCode),
    /// Funds held; waiting for the payee shard's answer or the deadline.
    Prepared,
    Committed,
    Aborted(ResultCode),
}

/// The payer shard's record of a transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingTransfer {
    pub request: TransferRequest,
    pub state: OutgoingState,
    pub txn_id: Option<TransactionId>,
    /// The account credited in the ledger (differs from `request.to` for airtime).
    pub ledger_payee: AccountRef,
    pub payee_shard: ShardId,
    pub fee: Money,
    /// Commission earned by an agent payer (cash-in), posted on commit.
    pub commission: Money,
    pub payee_name: Option<String>,
    /// The payer's posted balance when the transfer became final (stable for duplicates).
    pub balance_after: Money,
    /// Leader timestamp of the entry that created the record.
    pub created_ms: u64,
    /// Leader timestamp of the entry that committed or aborted it.
    pub decided_ms: Option<u64>,
    /// Same-shard transfers can be reversed from this record.
    pub reversal: ReversalMark,
}

impl OutgoingTransfer {
    /// True once committed, aborted or refused.
    pub fn is_final(&self) -> bool {
        !matches!(self.state, OutgoingState::Prepared)
    }

    /// The result code a client sees, if final.
    pub fn result(&self) -> Option<ResultCode> {
        match self.state {
            OutgoingState::Prepared => None,
            OutgoingState::Committed => Some(ResultCode::Success),
            OutgoingState::Refused(code) | OutgoingState::Aborted(code) => Some(code),
        }
    }
}

/// Payee-side state of a cross-shard transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IncomingState {
    /// Pending credit held for the payee, invisible until settled.
    Accepted,
    /// Refused; recorded so a duplicate offer gets the same answer.
    Rejected(ResultCode),
    Committed,
    /// Voided (or a tombstone when the abort arrived before the offer).
    Aborted,
}

/// The payee shard's record of a cross-shard transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingTransfer {
    /// `None` for a tombstone written when the payer's abort overtook its offer.
    pub offer: Option<CreditOffer>,
    pub payer_shard: ShardId,
    pub state: IncomingState,
    /// Commission earned by an agent payee (cash-out), posted on commit.
    pub commission: Money,
    pub accepted_ms: u64,
    pub settled_ms: Option<u64>,
    pub reversal: ReversalMark,
}

/// A confirmation text waiting for the SMS channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsRecord {
    /// Position in the outbox; the channel acknowledges delivery up to a sequence number.
    pub seq: u64,
    pub to: Msisdn,
    pub text: String,
}

//! Account references and the shard map.
//!
//! An account is named by a customer's MSISDN, `agent:<agent number>`, `business:<shortcode>` or a
//! system account (`system:<name>:<shard>`). Its key hashes to one of `shard_count` shards with a
//! hand-written FNV-1a: the function must never change once a cluster holds data, so it may not
//! depend on a library's hasher.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::msisdn::{Msisdn, MsisdnError};

/// Index of a shard, `0..shard_count`.
pub type ShardId = u32;

/// Longest agent number or shortcode we accept (real ones are 5–7 digits).
const NUMBER_DIGITS_MAX: usize = 8;
/// Shortest agent number or shortcode we accept.
const NUMBER_DIGITS_MIN: usize = 3;

/// Why an account reference did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountRefError {
    #[error("invalid phone number: {0}")]
    Msisdn(#[from] MsisdnError),
    #[error("{what} must be {NUMBER_DIGITS_MIN} to {NUMBER_DIGITS_MAX} digits")]
    BadNumber { what: &'static str },
    #[error("unknown account kind {0:?} (expected an MSISDN, agent:<n>, business:<shortcode>)")]
    UnknownKind(String),
}

fn parse_number(text: &str, what: &'static str) -> Result<String, AccountRefError> {
    let ok = (NUMBER_DIGITS_MIN..=NUMBER_DIGITS_MAX).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(text.to_string())
    } else {
        Err(AccountRefError::BadNumber { what })
    }
}

/// An agent's till-like number, the one customers type when withdrawing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AgentNumber(String);

impl AgentNumber {
    /// Validates 3–8 digits.
    pub fn parse(text: &str) -> Result<AgentNumber, AccountRefError> {
        parse_number(text, "agent number").map(AgentNumber)
    }
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A business's paybill or till number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shortcode(String);

impl Shortcode {
    /// Validates 3–8 digits.
    pub fn parse(text: &str) -> Result<Shortcode, AccountRefError> {
        parse_number(text, "shortcode").map(Shortcode)
    }
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The per-shard system accounts. Each lives on the shard it names.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SystemAccount {
    /// The trust/float issuer: one logical account kept as one row per shard, so issuing float
    /// is a same-shard entry. Its negative balance, summed over shards, is all e-money in circulation.
    Issuer(ShardId),
    /// Fee revenue.
    Fees(ShardId),
    /// Commissions owed to agents.
    Commissions(ShardId),
    /// Money in flight to (positive) or from (negative) other shards. Σ over shards = 0 at quiescence.
    Clearing(ShardId),
    /// Airtime sold, owed to the airtime platform.
    Airtime(ShardId),
}

impl SystemAccount {
    /// The shard this row lives on.
    pub fn shard(self) -> ShardId {
        match self {
            SystemAccount::Issuer(s)
            | SystemAccount::Fees(s)
            | SystemAccount::Commissions(s)
            | SystemAccount::Clearing(s)
            | SystemAccount::Airtime(s) => s,
        }
    }

    /// Every system account of one shard, in a fixed order.
    pub fn all(shard: ShardId) -> [SystemAccount; 5] {
        [
            SystemAccount::Issuer(shard),
            SystemAccount::Fees(shard),
            SystemAccount::Commissions(shard),
            SystemAccount::Clearing(shard),
            SystemAccount::Airtime(shard),
        ]
    }

    fn name(self) -> &'static str {
        match self {
            SystemAccount::Issuer(_) => "issuer",
            SystemAccount::Fees(_) => "fees",
            SystemAccount::Commissions(_) => "commissions",
            SystemAccount::Clearing(_) => "clearing",
            SystemAccount::Airtime(_) => "airtime",
        }
    }
}

/// Names one account anywhere in the cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AccountRef {
    Customer(Msisdn),
    Agent(AgentNumber),
    Business(Shortcode),
    System(SystemAccount),
}

impl AccountRef {
    /// Parses `2547…`/`07…`/`+2547…`, `agent:<n>`, `business:<shortcode>` or `system:<name>:<shard>`.
    pub fn parse(text: &str) -> Result<AccountRef, AccountRefError> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("agent:") {
            return AgentNumber::parse(rest).map(AccountRef::Agent);
        }
        if let Some(rest) = text.strip_prefix("business:") {
            return Shortcode::parse(rest).map(AccountRef::Business);
        }
        if let Some(rest) = text.strip_prefix("system:") {
            return parse_system(rest)
                .ok_or_else(|| AccountRefError::UnknownKind(text.to_string()));
        }
        if text.contains(':') {
            return Err(AccountRefError::UnknownKind(text.to_string()));
        }
        Ok(AccountRef::Customer(Msisdn::parse(text)?))
    }

    /// The customer's MSISDN, if this is a customer.
    pub fn msisdn(&self) -> Option<&Msisdn> {
        match self {
            AccountRef::Customer(m) => Some(m),
            _ => None,
        }
    }

    /// True for system accounts, which may go negative.
    pub fn is_system(&self) -> bool {
        matches!(self, AccountRef::System(_))
    }
}

fn parse_system(rest: &str) -> Option<AccountRef> {
    let (name, shard) = rest.split_once(':')?;
    let shard: ShardId = shard.parse().ok()?;
    let account = match name {
        "issuer" => SystemAccount::Issuer(shard),
        "fees" => SystemAccount::Fees(shard),
        "commissions" => SystemAccount::Commissions(shard),
        "clearing" => SystemAccount::Clearing(shard),
        "airtime" => SystemAccount::Airtime(shard),
        _ => return None,
    };
    Some(AccountRef::System(account))
}

impl fmt::Display for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountRef::Customer(m) => write!(f, "{m}"),
            AccountRef::Agent(a) => write!(f, "agent:{}", a.0),
            AccountRef::Business(b) => write!(f, "business:{}", b.0),
            AccountRef::System(s) => write!(f, "system:{}:{}", s.name(), s.shard()),
        }
    }
}

impl FromStr for AccountRef {
    type Err = AccountRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AccountRef::parse(s)
    }
}

impl TryFrom<String> for AccountRef {
    type Error = AccountRefError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AccountRef::parse(&s)
    }
}

impl From<AccountRef> for String {
    fn from(a: AccountRef) -> String {
        a.to_string()
    }
}

/// Maps account keys to shards. Fixed at cluster creation.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    shard_count: u32,
}

/// Most shards a cluster may have (transaction ids encode the shard in two base-36 digits).
pub const SHARD_COUNT_MAX: u32 = crate::txn_id::MAX_SHARDS_IN_ID;

impl ShardMap {
    /// A map over `shard_count` shards; `None` unless `1..=SHARD_COUNT_MAX`.
    pub fn new(shard_count: u32) -> Option<ShardMap> {
        (1..=SHARD_COUNT_MAX)
            .contains(&shard_count)
            .then_some(ShardMap { shard_count })
    }

    /// Number of shards.
    pub fn shard_count(&self) -> u32 {
        self.shard_count
    }

    /// The shard that owns `account`.
    pub fn shard_of(&self, account: &AccountRef) -> ShardId {
        match account {
            AccountRef::System(s) => s.shard(),
            AccountRef::Customer(m) => self.shard_of_key(m.as_str().as_bytes()),
            AccountRef::Agent(a) => self.shard_of_key(format!("agent:{}", a.0).as_bytes()),
            AccountRef::Business(b) => self.shard_of_key(format!("business:{}", b.0).as_bytes()),
        }
    }

    /// The shard that indexes a business API consumer key (see `ledger/api_keys.rs`).
    pub fn shard_of_api_key(&self, consumer_key: &str) -> ShardId {
        self.shard_of_key(format!("apikey:{consumer_key}").as_bytes())
    }

    /// The shard whose audit log records an actor's actions (see `ledger/audit_log.rs`).
    pub fn shard_of_actor(&self, actor: &str) -> ShardId {
        self.shard_of_key(format!("actor:{actor}").as_bytes())
    }

    fn shard_of_key(&self, key: &[u8]) -> ShardId {
        (fnv1a64(key) % u64::from(self.shard_count)) as ShardId
    }
}

/// FNV-1a, 64 bit. Frozen: changing it would move every account to another shard.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_round_trips() {
        for text in [
            "254712345678",
            "agent:123456",
            "business:888880",
            "system:clearing:7",
        ] {
            let account = AccountRef::parse(text).unwrap();
            assert_eq!(account.to_string(), text);
        }
        assert_eq!(
            AccountRef::parse("0712345678").unwrap().to_string(),
            "254712345678"
        );
    }

    #[test]
    fn rejects_malformed_references() {
        for text in [
            "agent:12",
            "agent:12a456",
            "business:",
            "teller:1234",
            "system:fees:x",
            "07123",
        ] {
            assert!(AccountRef::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn shard_hash_is_frozen() {
        // If this fails, the hash changed and every existing cluster would lose its accounts.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let map = ShardMap::new(64).unwrap();
        let shard = map.shard_of(&AccountRef::parse("254712345678").unwrap());
        assert!(shard < 64);
        assert_eq!(map.shard_of(&AccountRef::System(SystemAccount::Fees(9))), 9);
    }

    #[test]
    fn shard_map_refuses_out_of_range_counts() {
        assert!(ShardMap::new(0).is_none());
        assert!(ShardMap::new(SHARD_COUNT_MAX + 1).is_none());
        assert!(ShardMap::new(1).is_some());
    }
}

//! # tuma-actors — the money core
//!
//! Everything here is pure and deterministic: no clocks, no sockets, no disks. The cluster crate
//! feeds it timestamped entries and carries its messages; the simulator in `tuma-chaos` does the
//! same over a simulated network.
//!
//! | module | holds |
//! |---|---|
//! | [`money`] | the `Money` newtype (integer cents), parsing and SMS formatting |
//! | [`msisdn`] | phone-number normalisation |
//! | [`account`] | account references (customer, `agent:`, `business:`, system) and the shard map |
//! | [`rng`] | a seeded generator whose stream never changes (simulator seeds, engine randomness) |
//! | [`roles`] | who may do what, as one table |
//! | [`tariff`] | fee, commission and limit tables loaded from data |
//! | [`pin`] | PIN format, salted slow hash, lockout state |
//! | [`calendar`] | civil time in EAT from a timestamp (apply never reads a clock) |
//! | [`language`] | the language an account holder reads menus in |
//! | [`txn_id`] | 10-character transaction receipts, unique without coordination |
//! | [`outcome`] | the stable numbered result codes |
//! | [`transfer`] | transfer ids, kinds and requests as a channel submits them |
//! | [`sms`] | confirmation texts in the real M-Pesa format |
//! | [`ledger`] | the per-shard double-entry state machine (DESIGN §3) |
//! | [`protocol`] | the cross-shard transfer protocol's leader-side driver (DESIGN §4) |

pub mod account;
pub mod calendar;
pub mod language;
pub mod ledger;
pub mod money;
pub mod msisdn;
pub mod outcome;
pub mod pin;
pub mod protocol;
pub mod rng;
pub mod roles;
pub mod sms;
pub mod tariff;
#[cfg(test)]
mod testkit;
pub mod transfer;
pub mod txn_id;

pub use account::{AccountRef, ShardId, ShardMap};
pub use money::Money;
pub use msisdn::Msisdn;
pub use outcome::ResultCode;

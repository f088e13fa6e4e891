//! The one load driver: how every client of a real cluster — `tuma bench`, `tuma chaos` (API and
//! USSD) and the integration tests' steady load — sends money through the nodes.
//!
//! | file | holds |
//! |---|---|
//! | `order.rs` | what a client asks for ([`Request`], [`Order`]) and what it learned ([`Outcome`]) |
//! | `targets.rs` | the nodes requests go to, changeable while clients run |
//! | `gateway.rs` | how one request is sent: a random node, the same id on every retry, which answers are final |
//! | `ussd.rs` | the same transfers as whole USSD sessions through the gateway callback |
//! | `express.rs` | M-Pesa Express: a business's token and push, the customer's answer |
//! | `payouts.rs` | B2C: a business's payout order under its key, the payment's outcome |
//! | `drive.rs` | closed loop (N clients, each waiting for its answer) and open loop (a rate) |
//!
//! Callers bring what differs: a [`Script`] per client (the mix of requests: the bench's
//! workloads, the chaos bank, the tests' pairs of customers) and a sink for what completed (a
//! latency recorder, the checker's list of operations, a tally).

mod drive;
mod express;
mod gateway;
mod order;
mod payouts;
#[cfg(test)]
mod stub_node;
mod targets;
pub mod ussd;

pub use drive::{drive, send_timed, Completed, Pace, Script, Sender, Stop};
pub use express::Business;
pub use gateway::{Answer, Channel, Gateway, Retry};
pub use order::{format_cents, parse_cents, Order, Outcome, Request};
pub use payouts::unresolved_id;
pub use targets::Targets;

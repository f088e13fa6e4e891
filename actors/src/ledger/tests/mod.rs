//! Ledger tests: every outcome code, tariff edges through the books, PIN lockout, idempotency,
//! receipts and texts, reversals, cross-shard flows, and a property test against a model.

mod audit_log;
mod batches;
mod c2b;
mod cross_shard;
mod history;
mod intake_pause;
mod model;
mod outcomes;
mod payouts;
mod pins;
mod prompts;
mod reversal_requests;
mod tariffs_and_limits;

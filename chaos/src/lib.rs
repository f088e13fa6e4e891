//! # tuma-chaos — proving the money core
//!
//! | module | holds |
//! |---|---|
//! | [`sim`] | `tuma sim`: a deterministic simulator of many shards over a faulty network, with a checker |
//! | [`harness`] | `tuma chaos`: real faults against real `tuma node` processes, and the bank checker |

pub mod harness;
pub mod sim;

//! # tuma-chaos — proving the money core
//!
//! | module | holds |
//! |---|---|
//! | [`sim`] | `tuma sim`: a deterministic simulator of many shards over a faulty network, with a checker |
//! | [`harness`] | `tuma chaos`: real faults against real `tuma node` processes, and the bank checker |
//! | [`load`] | the one load driver: how `tuma bench`, `tuma chaos` and the integration tests send money through real nodes |

pub mod harness;
pub mod load;
pub mod sim;

//! USSD: the menu a feature phone walks after dialling a short code.
//!
//! | file | holds |
//! |---|---|
//! | `menu/` | a menu as data: the file format, its checks, placeholders |
//! | `walk.rs` | where a session is, replayed from its inputs (pure) |

pub mod menu;
pub mod walk;

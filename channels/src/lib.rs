//! The phone channels, on the typed node API ([`tuma_service::Service`]): the USSD menu in the
//! Africa's Talking callback convention, and SMS through Kannel or Africa's Talking. The
//! cluster knows nothing of them.
//!
//! | folder | holds |
//! |---|---|
//! | `ussd/` | the USSD gateway endpoint, its sessions and its menus as data |
//! | `sms/` | confirmation texts out through a gateway, with a spool and delivery reports |

pub mod sms;
pub mod ussd;

//! The phone channels, on the typed node API ([`tuma_service::Service`]): the USSD menu in the
//! Africa's Talking callback convention. The cluster knows nothing of them.
//!
//! | folder | holds |
//! |---|---|
//! | `ussd/` | the USSD gateway endpoint, its sessions and its menus as data |

pub mod ussd;

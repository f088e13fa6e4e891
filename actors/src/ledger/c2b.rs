//! Customer-to-business notifications (Daraja's C2B): a business registers a confirmation URL
//! (and optionally a validation URL, which the business API calls before a payment is
//! submitted); every bill payment or purchase credited to it afterwards — from any channel —
//! queues one confirmation in the business's shard's callback outbox, in the entry that
//! credited it. The URLs live in the business's own record; registering twice is refused, as
//! Daraja refuses it.

use serde::{Deserialize, Serialize};

use crate::account::{AccountRef, Shortcode};
use crate::outcome::ResultCode;
use crate::roles::AccountKind;
use crate::transfer::TransferKind;

use super::callbacks::CallbackEvent;
use super::history::{HistoryRow, HistorySide};
use super::ShardLedger;

/// Where a business is told of its customers' payments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct C2bUrls {
    pub confirmation_url: String,
    /// Asked before each payment, when set.
    pub validation_url: Option<String>,
    /// What applies when the validation URL does not answer in time: complete the payment
    /// (`Completed`) or cancel it (`Cancelled`).
    pub completes_by_default: bool,
    /// Registered through `/v2/registerurl`: confirmations carry a masked MSISDN.
    pub masked_msisdn: bool,
}

impl ShardLedger {
    /// Records a business's C2B URLs (once: a second registration is `AccountExists`).
    pub(super) fn register_c2b_urls(&mut self, business: &Shortcode, urls: &C2bUrls) -> ResultCode {
        let account = AccountRef::Business(business.clone());
        if self.config.shard_map.shard_of(&account) != self.config.shard {
            return ResultCode::NotPermitted;
        }
        let Some(record) = self.state.accounts.get_mut(&account) else {
            return ResultCode::UnknownAccount;
        };
        if !matches!(record.kind, AccountKind::Paybill | AccountKind::Till) {
            return ResultCode::NotPermitted;
        }
        let extras = record.extras.get_or_insert_with(Box::default);
        match &extras.c2b_urls {
            Some(existing) if existing == urls => ResultCode::Success,
            Some(_) => ResultCode::AccountExists,
            None => {
                extras.c2b_urls = Some(urls.clone());
                ResultCode::Success
            }
        }
    }

    /// Queues a confirmation for every bill payment or purchase credited, in the entry just
    /// applied, to a business with C2B URLs (history rows from `first_row` on are this
    /// entry's).
    pub(super) fn queue_c2b_confirmations(&mut self, first_row: usize, now: u64) {
        let credited: Vec<HistoryRow> = self.history[first_row..]
            .iter()
            .filter(|row| {
                row.side == HistorySide::Payee
                    && row.result.is_success()
                    && matches!(row.kind, TransferKind::PayBill | TransferKind::BuyGoods)
            })
            .cloned()
            .collect();
        for row in credited {
            let AccountRef::Business(business) = &row.account else {
                continue;
            };
            let Some(urls) = self
                .state
                .accounts
                .get(&row.account)
                .and_then(|a| a.c2b_urls())
                .cloned()
            else {
                continue;
            };
            let AccountRef::Customer(msisdn) = row.counterparty else {
                continue;
            };
            let (bill_ref, payer_name) = self.payment_details(&row);
            let Some(receipt) = row.receipt else {
                continue;
            };
            let event = CallbackEvent::C2bConfirmation {
                receipt,
                kind: row.kind,
                amount: crate::money::Money::from_cents(row.amount_cents),
                business: business.clone(),
                bill_ref,
                msisdn,
                first_name: payer_name,
                org_balance: row.balance_after,
                completed_ms: row.completed_ms,
                masked_msisdn: urls.masked_msisdn,
            };
            self.push_callback(business.clone(), urls.confirmation_url, event, now);
        }
    }

    /// The reference a payment carried and its payer's name, from its record here.
    fn payment_details(&self, row: &HistoryRow) -> (String, String) {
        if let Some(incoming) = self.state.incoming.get(&row.transfer) {
            if let Some(offer) = &incoming.offer {
                return (
                    offer.account_reference.clone().unwrap_or_default(),
                    offer.payer_name.clone(),
                );
            }
        }
        let reference = self
            .state
            .outgoing
            .get(&row.transfer)
            .and_then(|o| o.request.account_reference.clone())
            .unwrap_or_default();
        let name = self
            .state
            .accounts
            .get(&row.counterparty)
            .map(|a| a.name.clone())
            .unwrap_or_default();
        (reference, name)
    }
}

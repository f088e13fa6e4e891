//! A hook before bill payments and purchases, whatever the channel: the business API installs
//! one that asks a business's validation URL (Daraja's C2B validation) before the payment is
//! submitted. The service knows nothing of what a check does; it only asks it, and answers a
//! refusal as the ledger's refusals are answered.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tuma_actors::ledger::Account;
use tuma_actors::outcome::ResultCode;
use tuma_actors::transfer::TransferKind;

use crate::{Service, ServiceError, TransferOrder, TransferStatus};

/// What a check answers: go ahead, or refuse with this code.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ResultCode>> + Send + 'a>>;

/// Asked before a bill payment or purchase to a business is submitted.
pub trait PayeeCheck: Send + Sync {
    /// Whether this payee is checked at all (cheap, from its record).
    fn applies(&self, payee: &Account) -> bool;
    /// The check itself, once the payer proved their PIN.
    fn check<'a>(&'a self, order: &'a TransferOrder, payee: &'a Account) -> CheckFuture<'a>;
}

impl Service {
    /// Installs the check every node-wide bill payment and purchase goes through (once: the
    /// first installed stays).
    pub fn set_payee_check(&self, check: Arc<dyn PayeeCheck>) {
        let _ = self.payee_check.set(check);
    }

    /// Runs the installed check on a bill payment or purchase (not on a prompt's payment: the
    /// business asked for that one). The payer proves their PIN first (recorded like any PIN
    /// attempt), so nobody's payment reaches a business before its payer is known. A refusal
    /// of a transfer that already exists (a retry of one submitted before) is not a refusal:
    /// the record answers.
    pub(crate) async fn check_payee(&self, order: &TransferOrder) -> Result<(), ServiceError> {
        let Some(check) = self.payee_check.get() else {
            return Ok(());
        };
        if !matches!(order.kind, TransferKind::PayBill | TransferKind::BuyGoods)
            || tuma_actors::ledger::pays_prompt(&order.id)
        {
            return Ok(());
        }
        let Some(payee) = self.account(&order.to).await? else {
            return Ok(()); // the ledger refuses an unknown payee
        };
        if !check.applies(&payee) {
            return Ok(());
        }
        if let Some(pin) = order.pin.clone() {
            self.authenticate(&order.from, pin).await?;
        }
        let Err(code) = check.check(order, &payee).await else {
            return Ok(());
        };
        match self.transfer_status(&order.id, Some(&order.from)).await? {
            TransferStatus::Unknown => Err(ServiceError::Refused(code)),
            _ => Ok(()),
        }
    }
}

//! Confirmation texts in the real M-Pesa format (reference: mpesa-product.md §4.3).
//!
//! The ledger writes these into its SMS outbox when a transfer commits; channels only deliver
//! them. Pattern: `<ID> Confirmed. Ksh<amount> <verb phrase> on <d/m/yy> at <h:mm AM/PM>.
//! New M-PESA balance is Ksh<bal>. Transaction cost, Ksh<fee>. Amount you can transact within
//! the day is <remaining>.` Businesses get callbacks, not texts; system accounts get nothing.

use crate::calendar::CivilTime;
use crate::money::Money;
use crate::transfer::TransferKind;
use crate::txn_id::TransactionId;

/// The facts one confirmation needs, from the point of view of its recipient.
#[derive(Clone, Debug)]
pub struct Confirmation<'a> {
    pub txn_id: TransactionId,
    pub when: CivilTime,
    pub kind: TransferKind,
    pub amount: Money,
    /// Charged to the payer (0 on the payee's text).
    pub fee: Money,
    /// The recipient's posted balance after the transfer.
    pub balance: Money,
    /// The payer's remaining daily allowance, for customers.
    pub daily_remaining: Option<Money>,
    /// The other party's display name.
    pub counterparty_name: &'a str,
    /// The other party's number as customers know it: phone, agent number or shortcode.
    pub counterparty_number: &'a str,
    pub account_reference: Option<&'a str>,
    /// For reversals: the receipt reversed.
    pub reverses: Option<TransactionId>,
}

impl Confirmation<'_> {
    fn on(&self) -> String {
        format!("on {} at {}", self.when.sms_date(), self.when.sms_time())
    }

    fn name(&self) -> String {
        self.counterparty_name.to_uppercase()
    }

    /// "New M-PESA balance is Ksh…. Transaction cost, Ksh…. Amount you can transact …"
    fn tail(&self) -> String {
        let mut tail = format!(
            "New M-PESA balance is {}. Transaction cost, {}.",
            self.balance.sms(),
            self.fee.sms()
        );
        if let Some(remaining) = self.daily_remaining {
            tail.push_str(&format!(
                " Amount you can transact within the day is {}.",
                remaining.grouped()
            ));
        }
        tail
    }

    fn reversed(&self) -> String {
        self.reverses.map(|t| t.to_string()).unwrap_or_default()
    }
}

/// The payer's text, or `None` where the payer gets none (businesses, the issuer).
pub fn payer_text(c: &Confirmation) -> Option<String> {
    let id = c.txn_id;
    let amount = c.amount.sms();
    let text = match c.kind {
        TransferKind::SendMoney => format!(
            "{id} Confirmed. {amount} sent to {} {} {}. {}",
            c.name(),
            c.counterparty_number,
            c.on(),
            c.tail()
        ),
        TransferKind::PayBill => format!(
            "{id} Confirmed. {amount} sent to {} for account {} {}. {}",
            c.name(),
            c.account_reference.unwrap_or_default(),
            c.on(),
            c.tail()
        ),
        TransferKind::BuyGoods => {
            format!(
                "{id} Confirmed. {amount} paid to {} {}. {}",
                c.name(),
                c.on(),
                c.tail()
            )
        }
        TransferKind::CashOut => format!(
            "{id} Confirmed. {} Withdraw {amount} from {} - {}. {}",
            c.on(),
            c.counterparty_number,
            c.name(),
            c.tail()
        ),
        TransferKind::CashIn => format!(
            "{id} Confirmed. {amount} deposited to {} {} {}. New float balance is {}.",
            c.name(),
            c.counterparty_number,
            c.on(),
            c.balance.sms()
        ),
        TransferKind::BuyAirtime => format!(
            "{id} confirmed.You bought {amount} of airtime for {} {}.New M-PESA balance is {}, \
             Transaction cost, {}.Amount you can transact within the day is {}.",
            c.counterparty_number,
            c.on(),
            c.balance.sms(),
            c.fee.sms(),
            c.daily_remaining.unwrap_or(Money::ZERO).grouped()
        ),
        TransferKind::Reversal => format!(
            "{id} Confirmed. Reversal of transaction {}: {amount} returned to {} {} {}. \
             New M-PESA balance is {}.",
            c.reversed(),
            c.name(),
            c.counterparty_number,
            c.on(),
            c.balance.sms()
        ),
        TransferKind::BusinessToCustomer
        | TransferKind::BusinessToBusiness
        | TransferKind::FloatIssue => return None,
    };
    Some(text)
}

/// The payer's text when a transfer that was under way fails after all (the payee's shard
/// refused the credit, or the deadline passed): the channel may have told the customer only
/// that the request was received. `None` where the payer gets no texts.
pub fn payer_failure_text(c: &Confirmation, why: crate::outcome::ResultCode) -> Option<String> {
    if matches!(
        c.kind,
        TransferKind::BusinessToCustomer
            | TransferKind::BusinessToBusiness
            | TransferKind::FloatIssue
    ) {
        return None;
    }
    Some(format!(
        "{} Failed. {} to {} {} was not completed: {} New M-PESA balance is {}.",
        c.txn_id,
        c.amount.sms(),
        c.counterparty_number,
        c.on(),
        why.description(),
        c.balance.sms()
    ))
}

/// The payee's text, or `None` where the payee gets none (businesses, system accounts).
pub fn payee_text(c: &Confirmation) -> Option<String> {
    let id = c.txn_id;
    let amount = c.amount.sms();
    let text = match c.kind {
        TransferKind::SendMoney | TransferKind::BusinessToCustomer => format!(
            "{id} Confirmed. You have received {amount} from {} {} {}. New M-PESA balance is {}.",
            c.name(),
            c.counterparty_number,
            c.on(),
            c.balance.sms()
        ),
        TransferKind::CashIn => format!(
            "{id} Confirmed. {} Give {amount} cash to {}. New M-PESA balance is {}.",
            c.on(),
            c.name(),
            c.balance.sms()
        ),
        TransferKind::CashOut => format!(
            "{id} Confirmed. {} Give {amount} cash to {} {}. New float balance is {}.",
            c.on(),
            c.name(),
            c.counterparty_number,
            c.balance.sms()
        ),
        TransferKind::Reversal => format!(
            "{id} confirmed. Reversal of transaction {} has been successfully reversed {} and \
             {amount} is credited to your M-PESA account. New M-PESA account balance is {}.",
            c.reversed(),
            c.on(),
            c.balance.sms()
        ),
        TransferKind::FloatIssue => format!(
            "{id} Confirmed. You have received {amount} float {}. New float balance is {}.",
            c.on(),
            c.balance.sms()
        ),
        TransferKind::PayBill
        | TransferKind::BuyGoods
        | TransferKind::BuyAirtime
        | TransferKind::BusinessToBusiness => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: TransferKind) -> Confirmation<'static> {
        Confirmation {
            txn_id: TransactionId::parse("QC352PDIVL").unwrap(),
            when: CivilTime {
                year: 2022,
                month: 3,
                day: 3,
                hour: 17,
                minute: 28,
            },
            kind,
            amount: Money::from_shillings(1_000),
            fee: Money::from_shillings(13),
            balance: Money::from_cents(2_520_319),
            daily_remaining: Some(Money::from_shillings(292_600)),
            counterparty_name: "Sophia Mweni",
            counterparty_number: "0702972812",
            account_reference: Some("EasyTalk"),
            reverses: TransactionId::parse("UBB7G6CRBZ").ok(),
        }
    }

    #[test]
    fn send_money_matches_the_real_format() {
        assert_eq!(
            payer_text(&sample(TransferKind::SendMoney)).unwrap(),
            "QC352PDIVL Confirmed. Ksh1,000.00 sent to SOPHIA MWENI 0702972812 on 3/3/22 at 5:28 PM. \
             New M-PESA balance is Ksh25,203.19. Transaction cost, Ksh13.00. \
             Amount you can transact within the day is 292,600.00."
        );
    }

    #[test]
    fn received_and_paybill_formats() {
        let received = payee_text(&sample(TransferKind::SendMoney)).unwrap();
        assert_eq!(
            received,
            "QC352PDIVL Confirmed. You have received Ksh1,000.00 from SOPHIA MWENI 0702972812 \
             on 3/3/22 at 5:28 PM. New M-PESA balance is Ksh25,203.19."
        );
        let bill = payer_text(&sample(TransferKind::PayBill)).unwrap();
        assert!(bill.starts_with("QC352PDIVL Confirmed. Ksh1,000.00 sent to SOPHIA MWENI for account EasyTalk on 3/3/22 at 5:28 PM."));
    }

    #[test]
    fn every_kind_has_a_defined_text_policy() {
        for kind in TransferKind::ALL {
            let c = sample(kind);
            for text in [payer_text(&c), payee_text(&c)].into_iter().flatten() {
                assert!(text.starts_with("QC352PDIVL "), "{kind:?}: {text}");
                assert!(text.contains("Ksh1,000.00"), "{kind:?}: {text}");
                assert!(text.contains("3/3/22"), "{kind:?}: {text}");
            }
        }
        assert!(payer_text(&sample(TransferKind::BusinessToCustomer)).is_none());
        assert!(payee_text(&sample(TransferKind::PayBill)).is_none());
        let reversal = payee_text(&sample(TransferKind::Reversal)).unwrap();
        assert!(
            reversal.contains("Reversal of transaction UBB7G6CRBZ has been successfully reversed")
        );
    }
}

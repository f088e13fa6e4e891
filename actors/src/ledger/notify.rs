//! Confirmation SMS records, written into the shard's outbox when money lands.

use crate::account::AccountRef;
use crate::calendar::{eat_day, CivilTime};
use crate::money::Money;
use crate::msisdn::Msisdn;
use crate::sms::{payee_text, payer_failure_text, payer_text, Confirmation};

use super::command::CreditOffer;
use super::records::{OutgoingTransfer, SmsRecord};
use super::ShardLedger;

/// How customers know an account: a local phone number, an agent number or a shortcode.
fn display_number(account: &AccountRef) -> String {
    match account {
        AccountRef::Customer(m) => m.local(),
        AccountRef::Agent(a) => a.as_str().to_string(),
        AccountRef::Business(b) => b.as_str().to_string(),
        AccountRef::System(_) => String::new(),
    }
}

impl ShardLedger {
    fn push_sms(&mut self, to: Msisdn, text: String) {
        let seq = self.state.sms_next_seq;
        self.state.sms_next_seq += 1;
        self.state.sms.push_back(SmsRecord { seq, to, text });
    }

    /// The phone, name, posted balance and (customers) remaining daily allowance of an account.
    fn recipient(
        &self,
        account: &AccountRef,
        now: u64,
    ) -> Option<(Msisdn, String, Money, Option<Money>)> {
        let record = self.state.accounts.get(account)?;
        let phone = record.phone?;
        let remaining = record.kind.has_customer_limits().then(|| {
            let daily = self.config.tariffs.limits.daily;
            daily
                .checked_sub(record.sent_on(eat_day(now)))
                .unwrap_or_default()
        });
        Some((
            phone,
            record.name.clone(),
            record.balances.balance(),
            remaining,
        ))
    }

    /// The payer's text, when its transfer commits.
    pub(super) fn notify_payer(&mut self, record: &OutgoingTransfer, now: u64) {
        let request = &record.request;
        let Some((phone, _, balance, remaining)) = self.recipient(&request.from, now) else {
            return;
        };
        let payee_name = record.payee_name.clone().unwrap_or_default();
        let number = display_number(&request.to);
        let confirmation = Confirmation {
            txn_id: record.txn_id.expect("a committed transfer has a receipt"),
            when: CivilTime::from_unix_ms(now),
            kind: request.kind,
            amount: request.amount,
            fee: record.fee,
            balance,
            daily_remaining: remaining,
            counterparty_name: &payee_name,
            counterparty_number: &number,
            account_reference: request.account_reference.as_deref(),
            reverses: request.reverses,
        };
        if let Some(text) = payer_text(&confirmation) {
            self.push_sms(phone, text);
        }
    }

    /// The payer's text when a transfer under way fails (aborted at its decision).
    pub(super) fn notify_payer_failed(
        &mut self,
        record: &OutgoingTransfer,
        why: crate::outcome::ResultCode,
        now: u64,
    ) {
        let request = &record.request;
        let Some(txn_id) = record.txn_id else {
            return;
        };
        let Some((phone, _, balance, _)) = self.recipient(&request.from, now) else {
            return;
        };
        let number = display_number(&request.to);
        let confirmation = Confirmation {
            txn_id,
            when: CivilTime::from_unix_ms(now),
            kind: request.kind,
            amount: request.amount,
            fee: Money::ZERO,
            balance,
            daily_remaining: None,
            counterparty_name: "",
            counterparty_number: &number,
            account_reference: request.account_reference.as_deref(),
            reverses: request.reverses,
        };
        if let Some(text) = payer_failure_text(&confirmation, why) {
            self.push_sms(phone, text);
        }
    }

    /// The payee's text for a same-shard transfer.
    pub(super) fn notify_local_payee(&mut self, record: &OutgoingTransfer, now: u64) {
        let request = &record.request;
        let payer_name = self
            .state
            .accounts
            .get(&request.from)
            .map(|a| a.name.clone())
            .unwrap_or_default();
        let facts = PayeeFacts {
            payee: &record.ledger_payee,
            txn_id: record.txn_id.expect("a committed transfer has a receipt"),
            kind: request.kind,
            amount: request.amount,
            payer_name: &payer_name,
            payer: &request.from,
            account_reference: request.account_reference.as_deref(),
            reverses: request.reverses,
        };
        self.notify_payee(&facts, now);
    }

    /// The payee's text when a cross-shard credit settles here.
    pub(super) fn notify_remote_payee(&mut self, offer: &CreditOffer, now: u64) {
        let facts = PayeeFacts {
            payee: &offer.to,
            txn_id: offer.txn_id,
            kind: offer.kind,
            amount: offer.amount,
            payer_name: &offer.payer_name,
            payer: &offer.from,
            account_reference: offer.account_reference.as_deref(),
            reverses: offer.reverses,
        };
        self.notify_payee(&facts, now);
    }

    fn notify_payee(&mut self, facts: &PayeeFacts, now: u64) {
        let Some((phone, _, balance, _)) = self.recipient(facts.payee, now) else {
            return;
        };
        let number = display_number(facts.payer);
        let confirmation = Confirmation {
            txn_id: facts.txn_id,
            when: CivilTime::from_unix_ms(now),
            kind: facts.kind,
            amount: facts.amount,
            fee: Money::ZERO,
            balance,
            daily_remaining: None,
            counterparty_name: facts.payer_name,
            counterparty_number: &number,
            account_reference: facts.account_reference,
            reverses: facts.reverses,
        };
        if let Some(text) = payee_text(&confirmation) {
            self.push_sms(phone, text);
        }
    }
}

/// What a payee's confirmation says, wherever the transfer came from.
struct PayeeFacts<'a> {
    payee: &'a AccountRef,
    txn_id: crate::txn_id::TransactionId,
    kind: crate::transfer::TransferKind,
    amount: Money,
    payer_name: &'a str,
    payer: &'a AccountRef,
    account_reference: Option<&'a str>,
    reverses: Option<crate::txn_id::TransactionId>,
}

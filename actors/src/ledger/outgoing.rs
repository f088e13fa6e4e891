//! Payer side: a same-shard transfer (one entry), the Prepare of a cross-shard one, the
//! Decide that commits or aborts it, and the end of decision delivery.

use crate::account::{AccountRef, SystemAccount};
use crate::calendar::{eat_day, CivilTime};
use crate::outcome::ResultCode;
use crate::roles::transfer_rule;
use crate::transfer::{PinVerdict, TransferId, TransferKind, TransferRequest};
use crate::txn_id::TransactionId;

use super::checks::{self, Pricing};
use super::command::{Applied, CreditAnswer, CreditOffer, Decision, Receipt};
use super::records::{OutgoingState, OutgoingTransfer, ReversalMark};
use super::{PlantedFault, ShardLedger};

/// What validation settled about a transfer that may go ahead.
struct Plan {
    pricing: Pricing,
    ledger_payee: AccountRef,
    payee_shard: u32,
    /// Known only for same-shard payees; a remote payee names itself in its answer.
    payee_name: Option<String>,
}

impl ShardLedger {
    fn system(&self, account: fn(u32) -> SystemAccount) -> AccountRef {
        AccountRef::System(account(self.config.shard))
    }

    fn in_flight(&self) -> usize {
        self.state.prepared.len() + self.state.accepted.len()
    }

    pub(super) fn transfer(&mut self, request: &TransferRequest, now: u64) -> Applied {
        let id = request.id.clone();
        if let Some(existing) = self.state.outgoing.get(&id) {
            return if !existing.request.same_request(request) {
                Applied::TransferRefused {
                    id,
                    result: ResultCode::IdempotencyConflict,
                }
            } else if existing.is_final() {
                Applied::TransferFinished(self.receipt_of(existing))
            } else {
                Applied::TransferInProgress { id }
            };
        }
        if let Err(result) = self
            .check_prompt_payment(request)
            .and_then(|()| self.check_payout_payment(request))
        {
            return Applied::TransferRefused { id, result };
        }
        if self.in_flight() >= self.config.in_flight_max
            || self.state.sms.len() >= self.config.sms_outbox_max
            || self.intake_paused(now)
        {
            return Applied::TransferRefused {
                id,
                result: ResultCode::Overloaded,
            };
        }
        // A refusal that anyone could provoke without the payer's PIN (a malformed request, an
        // unknown payer, a wrong or locked PIN) leaves no record: it is answered and forgotten,
        // so it cannot fill the shard (the PIN counter still counts it). A retry is judged
        // again.
        let pricing = match self.authenticate(request) {
            Ok(pricing) => pricing,
            Err(code) => {
                let record = self.record(request, OutgoingState::Refused(code), now);
                self.prompt_payment_finished(&request.id, code, None, now);
                self.payout_payment_finished(&record, now);
                return Applied::TransferFinished(self.receipt_of(&record));
            }
        };
        let plan = match self.validate(request, pricing, now) {
            Ok(plan) => plan,
            Err(code) => return self.refuse(request, code, now),
        };
        let Some(txn_id) = self.next_txn_id(now) else {
            return Applied::TransferRefused {
                id,
                result: ResultCode::Overloaded,
            };
        };
        if plan.payee_shard == self.config.shard {
            self.execute_local(request, plan, txn_id, now)
        } else {
            self.prompt_payment_started(&request.id);
            self.payout_payment_started(&request.id);
            self.prepare(request, plan, txn_id, now)
        }
    }

    /// The rules checked before the payer is known to have asked: the request's form, the
    /// payer, and the PIN. Mutates only the payer's PIN counter.
    fn authenticate(&mut self, request: &TransferRequest) -> Result<Pricing, ResultCode> {
        let pricing = checks::check_request(request, &self.config.tariffs)?;
        if self.config.shard_map.shard_of(&request.from) != self.config.shard {
            return Err(ResultCode::UnknownAccount);
        }
        let issuer = self.system(SystemAccount::Issuer);
        checks::check_payer(request, self.state.accounts.get(&request.from), &issuer)?;
        self.check_pin(request)?;
        Ok(pricing)
    }

    /// Every other refusal rule, in order, for a request its payer made.
    fn validate(
        &mut self,
        request: &TransferRequest,
        pricing: Pricing,
        now: u64,
    ) -> Result<Plan, ResultCode> {
        if now > request.deadline_ms {
            return Err(ResultCode::DeadlinePassed);
        }
        if let Some(original) = &request.reverses {
            self.check_reversal(request, original)?;
        }
        let moving = request
            .amount
            .checked_add(pricing.fee)
            .ok_or(ResultCode::InvalidAmount)?;
        checks::check_capacity(&self.state.totals, moving)?;
        let payer = &self.state.accounts[&request.from];
        let limits = &self.config.tariffs.limits;
        let planted_spendable = if self.config.planted(PlantedFault::PendingCreditSpendable) {
            payer.balances.credits_pending
        } else {
            crate::money::Money::ZERO
        };
        checks::check_payer_funds(
            request,
            payer,
            pricing.fee,
            eat_day(now),
            limits.daily,
            planted_spendable,
        )?;
        let ledger_payee = match request.kind {
            TransferKind::BuyAirtime => self.system(SystemAccount::Airtime),
            _ => request.to.clone(),
        };
        let payee_shard = self.config.shard_map.shard_of(&ledger_payee);
        let payee_name = if request.kind == TransferKind::BuyAirtime {
            Some("airtime".to_string())
        } else if payee_shard == self.config.shard {
            let payee = self.state.accounts.get(&ledger_payee);
            Some(checks::check_payee(
                request.kind,
                payee,
                request.amount,
                limits,
            )?)
        } else {
            None
        };
        Ok(Plan {
            pricing,
            ledger_payee,
            payee_shard,
            payee_name,
        })
    }

    fn check_pin(&mut self, request: &TransferRequest) -> Result<(), ResultCode> {
        if !transfer_rule(request.kind).needs_pin {
            return Ok(());
        }
        let payer = self
            .state
            .accounts
            .get_mut(&request.from)
            .ok_or(ResultCode::UnknownAccount)?;
        let pin = payer.pin.as_mut().ok_or(ResultCode::NoPin)?;
        if pin.locked {
            return Err(ResultCode::PinLocked);
        }
        match request.pin {
            PinVerdict::Verified => {
                pin.record_success();
                Ok(())
            }
            PinVerdict::Wrong => Err(if pin.record_failure() {
                ResultCode::PinLocked
            } else {
                ResultCode::WrongPin
            }),
            PinVerdict::NotRequired => Err(ResultCode::NotPermitted),
        }
    }

    /// A reversal must name a committed, unreversed transfer whose payee is the reversal's
    /// payer, whose payer is its payee, for the same amount.
    fn check_reversal(
        &self,
        request: &TransferRequest,
        original: &TransactionId,
    ) -> Result<(), ResultCode> {
        let id = self
            .state
            .by_txn_id
            .get(original)
            .ok_or(ResultCode::NotReversible)?;
        let matches = if let Some(incoming) = self.state.incoming.get(id) {
            let offer = incoming.offer.as_ref().ok_or(ResultCode::NotReversible)?;
            incoming.state == super::IncomingState::Committed
                && incoming.reversal == ReversalMark::None
                && offer.to == request.from
                && offer.from == request.to
                && offer.amount == request.amount
        } else if let Some(outgoing) = self.state.outgoing.get(id) {
            outgoing.state == OutgoingState::Committed
                && outgoing.reversal == ReversalMark::None
                && outgoing.payee_shard == self.config.shard
                && outgoing.ledger_payee == request.from
                && outgoing.request.from == request.to
                && outgoing.request.amount == request.amount
                && outgoing.request.kind != TransferKind::BuyAirtime
        } else {
            false
        };
        if matches {
            Ok(())
        } else {
            Err(ResultCode::NotReversible)
        }
    }

    /// Marks the original of a reversal, wherever this shard keeps it.
    fn mark_reversed(&mut self, original: &TransactionId, mark: ReversalMark) {
        let Some(id) = self.state.by_txn_id.get(original) else {
            return;
        };
        if let Some(incoming) = self.state.incoming.get_mut(id) {
            incoming.reversal = mark;
        } else if let Some(outgoing) = self.state.outgoing.get_mut(id) {
            outgoing.reversal = mark;
        }
    }

    fn next_txn_id(&mut self, now: u64) -> Option<TransactionId> {
        let day = eat_day(now);
        if day != self.state.txn_day {
            self.state.txn_day = day;
            self.state.txn_seq = 0;
        }
        let id = TransactionId::generate(
            CivilTime::from_unix_ms(now),
            self.config.shard,
            self.state.txn_seq,
        )?;
        self.state.txn_seq += 1;
        Some(id)
    }

    fn record(
        &self,
        request: &TransferRequest,
        state: OutgoingState,
        now: u64,
    ) -> OutgoingTransfer {
        OutgoingTransfer {
            request: request.clone(),
            state,
            txn_id: None,
            ledger_payee: request.to.clone(),
            payee_shard: self.config.shard_map.shard_of(&request.to),
            fee: crate::money::Money::ZERO,
            commission: crate::money::Money::ZERO,
            payee_name: None,
            balance_after: self.balance_of(&request.from),
            created_ms: now,
            decided_ms: Some(now),
            reversal: ReversalMark::None,
        }
    }

    fn balance_of(&self, account: &AccountRef) -> crate::money::Money {
        self.state
            .accounts
            .get(account)
            .map(|a| a.balances.balance())
            .unwrap_or_default()
    }

    /// A refusal of a request its payer made: recorded, so a retry within the idempotency
    /// window gets the same answer.
    fn refuse(&mut self, request: &TransferRequest, code: ResultCode, now: u64) -> Applied {
        let record = self.record(request, OutgoingState::Refused(code), now);
        let receipt = self.receipt_of(&record);
        self.finished_outgoing(&record, now);
        self.state.outgoing.insert(request.id.clone(), record);
        Applied::TransferFinished(receipt)
    }

    /// Adds `amount` to the payer's usage for the EAT day of `now`, or takes it back from that
    /// day's usage (an abort). Usage recorded for another day is left alone: aborting a
    /// transfer held yesterday must not erase today's usage.
    fn add_daily(
        &mut self,
        account: &AccountRef,
        amount: crate::money::Money,
        now: u64,
        add: bool,
    ) {
        let day = eat_day(now);
        let Some(payer) = self.state.accounts.get_mut(account) else {
            return;
        };
        if !payer.kind.has_customer_limits() {
            return;
        }
        if !add && payer.daily.day != day {
            return; // that day's usage is gone already; today's is not this transfer's
        }
        let sent = payer.sent_on(day);
        let sent = if add {
            sent.checked_add(amount)
        } else {
            sent.checked_sub(amount)
        };
        payer.daily.day = day;
        // The limit check bounds usage far below overflow; saturate rather than panic.
        payer.daily.sent = sent
            .unwrap_or(crate::money::Money::MAX)
            .max(crate::money::Money::ZERO);
    }

    fn execute_local(
        &mut self,
        request: &TransferRequest,
        plan: Plan,
        txn_id: TransactionId,
        now: u64,
    ) -> Applied {
        let fees = self.system(SystemAccount::Fees);
        self.post(&request.from, &plan.ledger_payee, request.amount);
        self.post(&request.from, &fees, plan.pricing.fee);
        self.add_daily(&request.from, request.amount, now, true);
        self.post_commission(&request.from, plan.pricing.commission);
        let payee_commission = self.payee_commission(request.kind, request.amount);
        self.post_commission(&plan.ledger_payee, payee_commission);
        if let Some(original) = &request.reverses {
            self.mark_reversed(original, ReversalMark::Done(request.id.clone()));
        }
        let mut record = self.record(request, OutgoingState::Committed, now);
        record.txn_id = Some(txn_id);
        record.ledger_payee = plan.ledger_payee;
        record.payee_shard = plan.payee_shard;
        record.fee = plan.pricing.fee;
        record.commission = plan.pricing.commission;
        record.payee_name = plan.payee_name;
        record.balance_after = self.balance_of(&request.from);
        self.state.by_txn_id.insert(txn_id, request.id.clone());
        self.notify_payer(&record, now);
        self.notify_local_payee(&record, now);
        self.finished_outgoing(&record, now);
        self.credited_locally(&record, now);
        let receipt = self.receipt_of(&record);
        self.state.outgoing.insert(request.id.clone(), record);
        Applied::TransferFinished(receipt)
    }

    fn prepare(
        &mut self,
        request: &TransferRequest,
        plan: Plan,
        txn_id: TransactionId,
        now: u64,
    ) -> Applied {
        let clearing = self.system(SystemAccount::Clearing);
        let fees = self.system(SystemAccount::Fees);
        self.hold(&request.from, &clearing, request.amount);
        self.hold(&request.from, &fees, plan.pricing.fee);
        self.add_daily(&request.from, request.amount, now, true);
        if let Some(original) = &request.reverses {
            self.mark_reversed(original, ReversalMark::InProgress(request.id.clone()));
        }
        let mut record = self.record(request, OutgoingState::Prepared, now);
        record.txn_id = Some(txn_id);
        record.ledger_payee = plan.ledger_payee.clone();
        record.payee_shard = plan.payee_shard;
        record.fee = plan.pricing.fee;
        record.commission = plan.pricing.commission;
        record.decided_ms = None;
        let offer = self.offer_of(&record);
        self.state.by_txn_id.insert(txn_id, request.id.clone());
        self.state.outgoing.insert(request.id.clone(), record);
        self.state.prepared.insert(request.id.clone());
        Applied::TransferPrepared(offer)
    }

    /// The offer for a prepared transfer (also rebuilt by a new leader to resend it).
    pub fn offer_of(&self, record: &OutgoingTransfer) -> CreditOffer {
        let request = &record.request;
        CreditOffer {
            id: request.id.clone(),
            txn_id: record.txn_id.expect("a prepared transfer has a receipt"),
            kind: request.kind,
            from: request.from.clone(),
            payer_name: self
                .state
                .accounts
                .get(&request.from)
                .map(|a| a.name.clone())
                .unwrap_or_default(),
            payer_shard: self.config.shard,
            to: record.ledger_payee.clone(),
            amount: request.amount,
            deadline_ms: request.deadline_ms,
            account_reference: request.account_reference.clone(),
            reverses: request.reverses,
        }
    }

    pub(super) fn decide(
        &mut self,
        id: &TransferId,
        answer: Option<&CreditAnswer>,
        now: u64,
    ) -> Applied {
        let Some(record) = self.state.outgoing.get(id) else {
            return Applied::Unchanged;
        };
        if record.state != OutgoingState::Prepared {
            return Applied::Unchanged;
        }
        let deadline = record.request.deadline_ms;
        let (state, payee_name, deliver) = match answer {
            Some(CreditAnswer::Accepted { payee_name })
                if now <= deadline || self.config.planted(PlantedFault::CommitAfterDeadline) =>
            {
                (OutgoingState::Committed, Some(payee_name.clone()), true)
            }
            Some(CreditAnswer::Accepted { .. }) => (
                OutgoingState::Aborted(ResultCode::DeadlinePassed),
                None,
                true,
            ),
            // The payee recorded its refusal and holds nothing: no decision to deliver.
            Some(CreditAnswer::Rejected(code)) => (OutgoingState::Aborted(*code), None, false),
            None if now > deadline => (
                OutgoingState::Aborted(ResultCode::DeadlinePassed),
                None,
                true,
            ),
            None => return Applied::Unchanged,
        };
        let record = self.state.outgoing.get(id).expect("checked above").clone();
        let request = &record.request;
        let clearing = self.system(SystemAccount::Clearing);
        let fees = self.system(SystemAccount::Fees);
        let decision = if state == OutgoingState::Committed {
            self.post_pending(&request.from, &clearing, request.amount);
            self.post_pending(&request.from, &fees, record.fee);
            self.post_commission(&request.from, record.commission);
            if let Some(original) = &request.reverses {
                self.mark_reversed(original, ReversalMark::Done(id.clone()));
            }
            Decision::Commit
        } else {
            self.void_pending(&request.from, &clearing, request.amount);
            self.void_pending(&request.from, &fees, record.fee);
            self.add_daily(&request.from, request.amount, record.created_ms, false);
            if let Some(original) = &request.reverses {
                self.mark_reversed(original, ReversalMark::None);
            }
            Decision::Abort
        };
        self.state.prepared.remove(id);
        if deliver {
            self.state
                .outbox
                .insert(id.clone(), (record.payee_shard, decision));
        }
        let balance_after = self.balance_of(&request.from);
        let record = self.state.outgoing.get_mut(id).expect("checked above");
        record.state = state;
        record.payee_name = payee_name;
        record.decided_ms = Some(now);
        record.balance_after = balance_after;
        let record = record.clone();
        match record.state {
            OutgoingState::Committed => self.notify_payer(&record, now),
            OutgoingState::Aborted(why) => self.notify_payer_failed(&record, why, now),
            _ => {}
        }
        self.finished_outgoing(&record, now);
        Applied::TransferFinished(self.receipt_of(&record))
    }

    pub(super) fn decision_delivered(&mut self, id: &TransferId) -> Applied {
        match self.state.outbox.remove(id) {
            Some(_) => Applied::DecisionDelivered { id: id.clone() },
            None => Applied::Unchanged,
        }
    }

    pub(super) fn receipt_of(&self, record: &OutgoingTransfer) -> Receipt {
        let committed = record.state == OutgoingState::Committed;
        Receipt {
            id: record.request.id.clone(),
            result: record.result().unwrap_or(ResultCode::Success),
            txn_id: record.txn_id.filter(|_| committed),
            fee: if committed {
                record.fee
            } else {
                crate::money::Money::ZERO
            },
            balance: record.balance_after,
            payee_name: record.payee_name.clone(),
        }
    }
}

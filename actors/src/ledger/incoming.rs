//! Payee side of a cross-shard transfer: Accept or Reject the offer, then Settle the decision.

use crate::account::{AccountRef, ShardId, SystemAccount};
use crate::money::Money;
use crate::outcome::ResultCode;
use crate::transfer::{TransferId, TransferKind};

use super::checks;
use super::command::{Applied, CreditAnswer, CreditOffer, Decision};
use super::records::{IncomingState, IncomingTransfer, ReversalMark};
use super::ShardLedger;

impl ShardLedger {
    /// Commission an agent payee earns (cash-out), posted when the money lands.
    pub(super) fn payee_commission(&self, kind: TransferKind, amount: Money) -> Money {
        match kind {
            TransferKind::CashOut => self.config.tariffs.cash_out_commission(amount),
            _ => Money::ZERO,
        }
    }

    /// Moves `amount` from fee revenue to commissions owed, earmarked for `agent`.
    pub(super) fn post_commission(&mut self, agent: &AccountRef, amount: Money) {
        if amount.is_zero() {
            return;
        }
        let fees = AccountRef::System(SystemAccount::Fees(self.config.shard));
        let commissions = AccountRef::System(SystemAccount::Commissions(self.config.shard));
        self.post(&fees, &commissions, amount);
        self.state
            .accounts
            .get_mut(agent)
            .expect("commission to a known agent")
            .add_commission(amount);
    }

    fn answer_of(record: &IncomingTransfer, payee_name: String) -> CreditAnswer {
        match record.state {
            IncomingState::Accepted | IncomingState::Committed => {
                CreditAnswer::Accepted { payee_name }
            }
            IncomingState::Rejected(code) => CreditAnswer::Rejected(code),
            IncomingState::Aborted => CreditAnswer::Rejected(ResultCode::DeadlinePassed),
        }
    }

    pub(super) fn receive_credit(&mut self, offer: &CreditOffer, now: u64) -> Applied {
        let answered = |answer| Applied::CreditAnswered {
            id: offer.id.clone(),
            payer_shard: offer.payer_shard,
            answer,
        };
        if let Some(existing) = self.state.incoming.get(&offer.id) {
            let same = existing.payer_shard == offer.payer_shard
                && existing.offer.as_ref().is_none_or(|o| o == offer);
            if !same {
                return answered(CreditAnswer::Rejected(ResultCode::IdempotencyConflict));
            }
            let name = self
                .state
                .accounts
                .get(&offer.to)
                .map(|a| a.name.clone())
                .unwrap_or_default();
            return answered(Self::answer_of(existing, name));
        }
        let verdict = self.check_offer(offer, now);
        let (state, answer) = match verdict {
            Ok(payee_name) => (
                IncomingState::Accepted,
                CreditAnswer::Accepted { payee_name },
            ),
            Err(code) => (IncomingState::Rejected(code), CreditAnswer::Rejected(code)),
        };
        let commission = if state == IncomingState::Accepted {
            let clearing = AccountRef::System(SystemAccount::Clearing(self.config.shard));
            self.hold(&clearing, &offer.to, offer.amount);
            self.state.accepted.insert(offer.id.clone());
            self.state.by_txn_id.insert(offer.txn_id, offer.id.clone());
            self.payee_commission(offer.kind, offer.amount)
        } else {
            Money::ZERO
        };
        if let IncomingState::Rejected(_) = state {
            self.finished_incoming(&offer.id, offer.deadline_ms, now);
        }
        let record = IncomingTransfer {
            offer: Some(offer.clone()),
            payer_shard: offer.payer_shard,
            state,
            commission,
            accepted_ms: now,
            settled_ms: None,
            reversal: ReversalMark::None,
        };
        self.state.incoming.insert(offer.id.clone(), record);
        answered(answer)
    }

    fn check_offer(&self, offer: &CreditOffer, now: u64) -> Result<String, ResultCode> {
        if self.config.shard_map.shard_of(&offer.to) != self.config.shard || offer.to.is_system() {
            return Err(ResultCode::UnknownPayee);
        }
        if self.state.prepared.len() + self.state.accepted.len() >= self.config.in_flight_max {
            return Err(ResultCode::Overloaded);
        }
        if now > offer.deadline_ms {
            return Err(ResultCode::DeadlinePassed);
        }
        if !offer.amount.is_positive() {
            return Err(ResultCode::InvalidAmount);
        }
        checks::check_capacity(&self.state.totals, offer.amount)?;
        let payee = self.state.accounts.get(&offer.to);
        checks::check_payee(offer.kind, payee, offer.amount, &self.config.tariffs.limits)
    }

    pub(super) fn settle(
        &mut self,
        id: &TransferId,
        payer_shard: ShardId,
        decision: Decision,
        now: u64,
    ) -> Applied {
        let settled = Applied::Settled {
            id: id.clone(),
            payer_shard,
        };
        let Some(record) = self.state.incoming.get(id) else {
            if decision == Decision::Commit {
                // Once records retire, a commit for an unknown transfer may be a late copy of
                // one settled and retired long ago; before that it cannot be right.
                if !self.has_retired() {
                    self.protocol_error =
                        Some(format!("commit of {id} that this shard never accepted"));
                }
            } else {
                // The abort overtook the offer: leave a tombstone so a late offer is refused.
                let tombstone = IncomingTransfer {
                    offer: None,
                    payer_shard,
                    state: IncomingState::Aborted,
                    commission: Money::ZERO,
                    accepted_ms: now,
                    settled_ms: Some(now),
                    reversal: ReversalMark::None,
                };
                self.state.incoming.insert(id.clone(), tombstone);
                self.finished_incoming(id, now, now);
            }
            return settled;
        };
        if record.payer_shard != payer_shard {
            // Another payer shard's transfer under a colliding id: never applied here.
            return settled;
        }
        match (&record.state, decision) {
            (IncomingState::Accepted, _) => {
                let record = record.clone();
                let offer = record
                    .offer
                    .as_ref()
                    .expect("an accepted record has its offer");
                let clearing = AccountRef::System(SystemAccount::Clearing(self.config.shard));
                let state = if decision == Decision::Commit {
                    self.post_pending(&clearing, &offer.to, offer.amount);
                    self.post_commission(&offer.to, record.commission);
                    IncomingState::Committed
                } else {
                    self.void_pending(&clearing, &offer.to, offer.amount);
                    IncomingState::Aborted
                };
                self.state.accepted.remove(id);
                let stored = self.state.incoming.get_mut(id).expect("present");
                stored.state = state.clone();
                stored.settled_ms = Some(now);
                if state == IncomingState::Committed {
                    self.notify_remote_payee(offer, now);
                    self.credited_remotely(offer, now);
                }
                debug_assert!(Self::incoming_final(&state));
                self.finished_incoming(id, offer.deadline_ms, now);
            }
            (IncomingState::Committed, Decision::Commit)
            | (IncomingState::Aborted, Decision::Abort)
            | (IncomingState::Rejected(_), Decision::Abort) => {}
            (state, decision) => {
                self.protocol_error = Some(format!("{decision:?} of {id} which is {state:?} here"));
            }
        }
        settled
    }
}

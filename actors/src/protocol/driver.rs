//! The leader-side driver: (ledger state, event, now) → effects.

use std::collections::BTreeMap;

use crate::account::ShardId;
use crate::ledger::{
    Applied, Command, CreditAnswer, Decision, IncomingState, OutgoingState, ShardLedger,
};
use crate::transfer::TransferId;

use super::{DriverConfig, Effects, Envelope, PeerMessage};

/// One kind of repeated work about one transfer, paced independently.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Duty {
    SendOffer,
    ProposeDecide,
    SendDecision,
    ProposeDelivered,
    ProposeAccept,
    ProposeSettle,
    SendInquiry,
}

/// Volatile protocol state of one shard leader: only when each duty was last done.
#[derive(Debug)]
pub struct ShardDriver {
    shard: ShardId,
    config: DriverConfig,
    last_done: BTreeMap<(TransferId, Duty), u64>,
}

impl ShardDriver {
    /// A driver for a shard whose leadership this node just took. Its first tick resends
    /// everything the state says is unfinished.
    pub fn new(shard: ShardId, config: DriverConfig) -> ShardDriver {
        ShardDriver {
            shard,
            config,
            last_done: BTreeMap::new(),
        }
    }

    /// How many duties are being paced (bounded by transfers in flight).
    pub fn paced(&self) -> usize {
        self.last_done.len()
    }

    /// True (and recorded) if `duty` for `id` is due: never done, or last done `interval` ago.
    fn due(&mut self, id: &TransferId, duty: Duty, interval: u64, now: u64) -> bool {
        let key = (id.clone(), duty);
        match self.last_done.get(&key) {
            Some(&at) if now < at.saturating_add(interval) => false,
            _ => {
                self.last_done.insert(key, now);
                true
            }
        }
    }

    fn forget(&mut self, id: &TransferId) {
        let keys: Vec<_> = self
            .last_done
            .range((id.clone(), Duty::SendOffer)..=(id.clone(), Duty::SendInquiry))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.last_done.remove(&key);
        }
    }

    fn envelope(&self, to: ShardId, message: PeerMessage) -> Envelope {
        Envelope {
            from: self.shard,
            to,
            message,
        }
    }

    /// React to an entry this shard just applied.
    pub fn on_applied(&mut self, ledger: &ShardLedger, applied: &Applied, now: u64) -> Effects {
        let mut effects = Effects::default();
        match applied {
            Applied::TransferPrepared(offer) => {
                self.due(&offer.id, Duty::SendOffer, 0, now);
                effects.send.push(self.envelope(
                    ledger.config().shard_map.shard_of(&offer.to),
                    PeerMessage::Credit(offer.clone()),
                ));
            }
            Applied::TransferFinished(receipt) => {
                self.forget(&receipt.id);
                if let Some((to, decision)) = ledger.pending_decision(&receipt.id) {
                    self.due(&receipt.id, Duty::SendDecision, 0, now);
                    effects.send.push(self.envelope(
                        to,
                        PeerMessage::Decision {
                            id: receipt.id.clone(),
                            decision,
                        },
                    ));
                }
            }
            Applied::CreditAnswered {
                id,
                payer_shard,
                answer,
            } => {
                self.forget(id);
                effects.send.push(self.envelope(
                    *payer_shard,
                    PeerMessage::CreditAnswer {
                        id: id.clone(),
                        answer: answer.clone(),
                    },
                ));
            }
            // The last duty of a payer-side transfer: its decision is delivered.
            Applied::DecisionDelivered { id } => self.forget(id),
            Applied::Settled { id, payer_shard } => {
                self.forget(id);
                effects
                    .send
                    .push(self.envelope(*payer_shard, PeerMessage::DecisionAck { id: id.clone() }));
            }
            // Each command of a batch in order (the ledger is the batch's end state: a later
            // command of the same entry never undoes what an earlier one's reaction reads).
            Applied::Batch(each) => {
                for applied in each {
                    effects.extend(self.on_applied(ledger, applied, now));
                }
            }
            Applied::Admin(_)
            | Applied::AdminMany(_)
            | Applied::TransferInProgress { .. }
            | Applied::TransferRefused { .. }
            | Applied::Unchanged => {}
        }
        effects
    }

    /// React to a message from another shard.
    pub fn on_message(&mut self, ledger: &ShardLedger, envelope: &Envelope, now: u64) -> Effects {
        let mut effects = Effects::default();
        let retry = self.config.propose_retry_ms;
        let from = envelope.from;
        match &envelope.message {
            PeerMessage::Credit(offer) => match ledger.incoming(&offer.id) {
                // Already recorded: answer from durable state without a new entry.
                Some(record) if record.payer_shard == from => {
                    let answer = match &record.state {
                        IncomingState::Accepted | IncomingState::Committed => {
                            CreditAnswer::Accepted {
                                payee_name: ledger
                                    .account(&offer.to)
                                    .map(|a| a.name.clone())
                                    .unwrap_or_default(),
                            }
                        }
                        IncomingState::Rejected(code) => CreditAnswer::Rejected(*code),
                        IncomingState::Aborted => {
                            CreditAnswer::Rejected(crate::outcome::ResultCode::DeadlinePassed)
                        }
                    };
                    effects.send.push(self.envelope(
                        from,
                        PeerMessage::CreditAnswer {
                            id: offer.id.clone(),
                            answer,
                        },
                    ));
                }
                _ => {
                    if self.due(&offer.id, Duty::ProposeAccept, retry, now) {
                        effects.propose.push(Command::ReceiveCredit(offer.clone()));
                    }
                }
            },
            PeerMessage::CreditAnswer { id, answer } => {
                // Only the transfer's payee shard answers for it.
                let prepared = ledger
                    .outgoing(id)
                    .is_some_and(|r| r.state == OutgoingState::Prepared && r.payee_shard == from);
                if prepared && self.due(id, Duty::ProposeDecide, retry, now) {
                    effects.propose.push(Command::Decide {
                        id: id.clone(),
                        answer: Some(answer.clone()),
                    });
                }
            }
            PeerMessage::Decision { id, decision } => {
                // Ack straight from durable state when it already agrees (or the id belongs to
                // another payer shard and was never applied here); otherwise settle through the log,
                // which also flags a decision that contradicts the recorded state.
                let settled = ledger.incoming(id).is_some_and(|r| {
                    r.payer_shard != from
                        || matches!(
                            (&r.state, decision),
                            (IncomingState::Committed, Decision::Commit)
                                | (IncomingState::Aborted, Decision::Abort)
                                | (IncomingState::Rejected(_), Decision::Abort)
                        )
                });
                if settled {
                    effects
                        .send
                        .push(self.envelope(from, PeerMessage::DecisionAck { id: id.clone() }));
                } else if self.due(id, Duty::ProposeSettle, retry, now) {
                    effects.propose.push(Command::Settle {
                        id: id.clone(),
                        payer_shard: from,
                        decision: *decision,
                    });
                }
            }
            PeerMessage::DecisionAck { id } => {
                let pending = ledger
                    .pending_decision(id)
                    .is_some_and(|(payee_shard, _)| payee_shard == from);
                if pending && self.due(id, Duty::ProposeDelivered, retry, now) {
                    effects
                        .propose
                        .push(Command::DecisionDelivered { id: id.clone() });
                }
            }
            PeerMessage::Inquiry { id } => {
                self.answer_inquiry(ledger, id, from, now, false, &mut effects)
            }
        }
        effects
    }

    /// Answers an inquiry about a transfer this shard had no record of, now that this leader
    /// confirmed its leadership and applied everything committed when it asked
    /// ([`Effects::confirm_absent`]): still no record means it was never prepared here.
    pub fn answer_confirmed_inquiry(
        &mut self,
        ledger: &ShardLedger,
        id: &TransferId,
        from: ShardId,
        now: u64,
    ) -> Effects {
        let mut effects = Effects::default();
        self.answer_inquiry(ledger, id, from, now, true, &mut effects);
        effects
    }

    fn answer_inquiry(
        &mut self,
        ledger: &ShardLedger,
        id: &TransferId,
        from: ShardId,
        now: u64,
        absence_confirmed: bool,
        effects: &mut Effects,
    ) {
        let decision = match ledger.outgoing(id) {
            // Presumed abort: this shard never prepared it.
            None if absence_confirmed => Some(Decision::Abort),
            None => {
                effects.confirm_absent.push((id.clone(), from));
                None
            }
            // Only the transfer's payee shard may ask about it.
            Some(record) if record.payee_shard != from => None,
            Some(record) => match record.state {
                OutgoingState::Committed => Some(Decision::Commit),
                OutgoingState::Aborted(_) | OutgoingState::Refused(_) => Some(Decision::Abort),
                OutgoingState::Prepared => {
                    if now > record.request.deadline_ms
                        && self.due(id, Duty::ProposeDecide, self.config.propose_retry_ms, now)
                    {
                        effects.propose.push(Command::Decide {
                            id: id.clone(),
                            answer: None,
                        });
                    }
                    None
                }
            },
        };
        if let Some(decision) = decision {
            effects.send.push(self.envelope(
                from,
                PeerMessage::Decision {
                    id: id.clone(),
                    decision,
                },
            ));
        }
    }

    /// Periodic work: resend, sweep, inquire. Bounded by `duties_per_tick_max`.
    pub fn on_tick(&mut self, ledger: &ShardLedger, now: u64) -> Effects {
        let mut effects = Effects::default();
        let resend = self.config.resend_interval_ms;
        let retry = self.config.propose_retry_ms;
        let budget = self.config.duties_per_tick_max;
        for record in ledger.prepared().take(budget) {
            let id = &record.request.id;
            if now > record.request.deadline_ms {
                if self.due(id, Duty::ProposeDecide, retry, now) {
                    effects.propose.push(Command::Decide {
                        id: id.clone(),
                        answer: None,
                    });
                }
            } else if self.due(id, Duty::SendOffer, resend, now) {
                let offer = ledger.offer_of(record);
                effects
                    .send
                    .push(self.envelope(record.payee_shard, PeerMessage::Credit(offer)));
            }
        }
        for (id, to, decision) in ledger.outbox().take(budget) {
            if self.due(id, Duty::SendDecision, resend, now) {
                effects.send.push(self.envelope(
                    to,
                    PeerMessage::Decision {
                        id: id.clone(),
                        decision,
                    },
                ));
            }
        }
        let grace = self.config.inquiry_grace_ms;
        for (id, record) in ledger.accepted().take(budget) {
            let deadline = record.offer.as_ref().map_or(0, |o| o.deadline_ms);
            if now > deadline.saturating_add(grace) && self.due(id, Duty::SendInquiry, resend, now)
            {
                effects.send.push(
                    self.envelope(record.payer_shard, PeerMessage::Inquiry { id: id.clone() }),
                );
            }
        }
        effects
    }
}

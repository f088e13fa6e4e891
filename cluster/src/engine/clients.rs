//! Serving client requests: the shard's leader answers (transfers through the payer's account
//! actor); any other node forwards to the leader it knows, once.

use std::time::Instant;

use tuma_actors::ledger::{IncomingState, OutgoingState};
use tuma_actors::pin::Pin;
use tuma_actors::roles::transfer_rule;
use tuma_actors::transfer::{PinVerdict, TransferRequest};

use super::pins::PinJob;
use super::request::{ClientReply, ClientRequest, Input, StatementLine, Waiter};
use super::Engine;

/// Most statement lines returned.
const STATEMENT_LINES_MAX: usize = 100;

impl Engine {
    /// Answers or forwards a request.
    pub(super) fn serve(&mut self, request: ClientRequest, waiter: Waiter) {
        if let ClientRequest::Meta { command } = request {
            return self.serve_meta(command, waiter);
        }
        let shard = request.shard(&self.map);
        let leading = self.replicas.get(&shard).is_some_and(|r| r.is_leader());
        if !leading {
            let hint = self.leader_guess(shard);
            match (hint, &waiter) {
                (Some(leader), Waiter::Local(_)) => self.forward(leader, request, waiter),
                _ => self.reply(
                    waiter,
                    ClientReply::NotLeader {
                        shard,
                        leader: hint,
                    },
                ),
            }
            return;
        }
        let now_ms = self.now_ms();
        let replica = self.replicas.get_mut(&shard).expect("leading");
        let reply = match request {
            ClientRequest::Command { command, .. } => {
                let tag = self.next_proposal_tag;
                self.next_proposal_tag += 1;
                match replica.propose(command, Some(tag), now_ms) {
                    Ok(()) => {
                        replica.tagged.insert(tag, waiter);
                        return;
                    }
                    Err(_) => ClientReply::NotLeader {
                        shard,
                        leader: replica.leader(),
                    },
                }
            }
            ClientRequest::Transfer { request, pin } => return self.transfer(request, pin, waiter),
            ClientRequest::Account { account } => {
                ClientReply::Account(replica.ledger.account(&account).cloned().map(Box::new))
            }
            ClientRequest::TransferStatus { id, .. } => match replica.ledger.outgoing(&id) {
                None => ClientReply::UnknownTransfer,
                Some(record) if record.is_final() => {
                    ClientReply::Receipt(replica.ledger.receipt(&id).expect("final"))
                }
                Some(_) => ClientReply::InProgress,
            },
            ClientRequest::TransferByReceipt { txn_id, .. } => ClientReply::Transfer(
                replica
                    .ledger
                    .outgoing_by_receipt(&txn_id)
                    .cloned()
                    .map(Box::new),
            ),
            ClientRequest::Audit { .. } => match replica.ledger.audit() {
                Ok(audit) => ClientReply::Audit(Box::new(audit)),
                Err(violation) => ClientReply::Unavailable(format!("audit failed: {violation}")),
            },
            ClientRequest::Statement { account, limit } => {
                ClientReply::Statement(statement(&replica.ledger, &account, limit))
            }
            ClientRequest::PlantPanic { account } => {
                self.actors.plant_panic(account);
                ClientReply::Done(tuma_actors::ResultCode::Success)
            }
            ClientRequest::Meta { .. } => {
                ClientReply::Unavailable("cluster changes go to the meta group".into())
            }
        };
        self.reply(waiter, reply);
    }

    pub(super) fn forward(&mut self, leader: u64, request: ClientRequest, waiter: Waiter) {
        let id = self.next_forward_id;
        self.next_forward_id += 1;
        self.forwarded.insert(id, (waiter, Instant::now()));
        self.send_frame(leader, crate::wire::PeerFrame::Forward { id, request });
    }

    /// The payer's account actor: answer a known transfer from the ledger, else verify the PIN
    /// off this thread and propose.
    fn transfer(&mut self, request: TransferRequest, pin: Option<String>, waiter: Waiter) {
        let shard = self.map.shard_of(&request.from);
        let inputs = self.inputs_tx.clone();
        let verifier = &self.pin_verifier;
        let hasher = &self.config.pin_hasher;
        let Some(replica) = self.replicas.get_mut(&shard) else {
            return;
        };
        let account = request.from.clone();
        let handled = self.actors.dispatch(&account, Instant::now(), || {
            if let Some(receipt) = replica.ledger.receipt(&request.id) {
                return Some((waiter, ClientReply::Receipt(receipt)));
            }
            if replica
                .ledger
                .outgoing(&request.id)
                .is_some_and(|r| r.state == OutgoingState::Prepared)
            {
                replica
                    .transfer_waiters
                    .entry(request.id.clone())
                    .or_default()
                    .push(waiter);
                return None;
            }
            let hash = replica
                .ledger
                .account(&request.from)
                .and_then(|a| a.pin.as_ref())
                .map(|p| p.hash.clone());
            match (
                transfer_rule(request.kind).needs_pin,
                pin.and_then(|p| Pin::parse(&p).ok()),
                hash,
            ) {
                (true, Some(pin), Some(hash)) if hash.key_id().is_some() => {
                    // A keyed digest verifies in microseconds: here, in the actor.
                    match hasher.verify(&hash, &pin) {
                        Ok(right) => {
                            metrics::counter!("tuma_pin_verifications_total").increment(1);
                            let verdict = if right {
                                PinVerdict::Verified
                            } else {
                                PinVerdict::Wrong
                            };
                            let _ = inputs.try_send(Input::PinChecked {
                                request,
                                verdict,
                                waiter,
                            });
                            None
                        }
                        Err(error) => Some((waiter, pin_unverifiable(&error))),
                    }
                }
                (true, Some(pin), Some(hash)) => {
                    // argon2 is slow on purpose: verify on the bounded worker pool, propose when done.
                    match verifier.submit(PinJob {
                        hash,
                        pin,
                        request,
                        waiter,
                    }) {
                        Ok(()) => None,
                        Err(job) => Some((
                            job.waiter,
                            ClientReply::Unavailable("PIN verification queue is full".into()),
                        )),
                    }
                }
                (true, _, _) => {
                    let _ = inputs.try_send(Input::PinChecked {
                        request,
                        verdict: PinVerdict::Wrong,
                        waiter,
                    });
                    None
                }
                (false, _, _) => {
                    let _ = inputs.try_send(Input::PinChecked {
                        request,
                        verdict: PinVerdict::NotRequired,
                        waiter,
                    });
                    None
                }
            }
        });
        match handled {
            Ok(Some((waiter, reply))) => self.reply(waiter, reply),
            Ok(None) => {}
            Err(_) => {
                // The waiter went down with the actor; its caller times out and retries with the
                // same idempotency key.
                metrics::counter!("tuma_actor_failed_requests_total").increment(1);
            }
        }
    }

    /// Proposes a transfer whose PIN verdict is known.
    pub(super) fn propose_transfer(
        &mut self,
        mut request: TransferRequest,
        verdict: tuma_actors::transfer::PinVerdict,
        waiter: Waiter,
    ) {
        let shard = self.map.shard_of(&request.from);
        let now_ms = self.now_ms();
        let Some(replica) = self.replicas.get_mut(&shard).filter(|r| r.is_leader()) else {
            let leader = self.replicas.get(&shard).and_then(|r| r.leader());
            return self.reply(waiter, ClientReply::NotLeader { shard, leader });
        };
        if let Some(receipt) = replica.ledger.receipt(&request.id) {
            return self.reply(waiter, ClientReply::Receipt(receipt));
        }
        request.pin = verdict;
        let id = request.id.clone();
        match replica.propose(
            tuma_actors::ledger::Command::Transfer(request),
            None,
            now_ms,
        ) {
            Ok(()) => replica.transfer_waiters.entry(id).or_default().push(waiter),
            Err(_) => {
                let leader = replica.leader();
                self.reply(waiter, ClientReply::NotLeader { shard, leader });
            }
        }
    }
}

/// The answer when this node cannot judge a PIN (its PIN key differs from the digest's): not a
/// wrong PIN — nothing is counted against the customer — but a configuration fault to fix.
pub(super) fn pin_unverifiable(error: &tuma_actors::pin::PinError) -> ClientReply {
    tracing::error!(%error, "cannot verify a PIN: check --pin-key-file on every node");
    metrics::counter!("tuma_pin_key_mismatch_total").increment(1);
    ClientReply::Unavailable(format!("this node cannot verify the PIN: {error}"))
}

/// Committed transfers touching `account` on its shard, newest first.
fn statement(
    ledger: &tuma_actors::ledger::ShardLedger,
    account: &tuma_actors::AccountRef,
    limit: usize,
) -> Vec<StatementLine> {
    let mut lines = Vec::new();
    for (id, record) in ledger.outgoing_records() {
        if record.state != OutgoingState::Committed {
            continue;
        }
        let request = &record.request;
        let (amount, counterparty) = if &request.from == account {
            (
                -(request.amount.cents() + record.fee.cents()),
                request.to.to_string(),
            )
        } else if &record.ledger_payee == account {
            (request.amount.cents(), request.from.to_string())
        } else {
            continue;
        };
        lines.push(StatementLine {
            transfer: id.clone(),
            receipt: record.txn_id.map(|t| t.to_string()),
            kind: request.kind.name().to_string(),
            counterparty,
            amount_cents: amount,
            completed_ms: record.decided_ms.unwrap_or(record.created_ms),
        });
    }
    for (id, record) in ledger.incoming_records() {
        let (IncomingState::Committed, Some(offer)) = (&record.state, &record.offer) else {
            continue;
        };
        if &offer.to != account {
            continue;
        }
        lines.push(StatementLine {
            transfer: id.clone(),
            receipt: Some(offer.txn_id.to_string()),
            kind: offer.kind.name().to_string(),
            counterparty: offer.from.to_string(),
            amount_cents: offer.amount.cents(),
            completed_ms: record.settled_ms.unwrap_or(record.accepted_ms),
        });
    }
    lines.sort_by(|a, b| {
        b.completed_ms
            .cmp(&a.completed_ms)
            .then_with(|| a.transfer.cmp(&b.transfer))
    });
    lines.truncate(limit.min(STATEMENT_LINES_MAX));
    lines
}

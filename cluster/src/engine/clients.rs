//! Serving client requests: the shard's leader answers (transfers through the payer's account
//! actor, reads once its leadership is confirmed); any other node forwards to the leader it
//! knows, once.

use tuma_actors::ledger::OutgoingTransfer;
use tuma_actors::outcome::ResultCode;
use tuma_actors::pin::Pin;
use tuma_actors::roles::transfer_rule;
use tuma_actors::transfer::{PinVerdict, TransferRequest};

use super::pins::PinJob;
use super::replica::Replica;
use super::request::{ClientReply, ClientRequest, Input, Waiter};
use super::Engine;
use crate::storage::LogStore;

/// What a transfer's payer shard already knows of its id.
enum Known {
    /// Never seen: go ahead.
    New,
    /// Answered (a final answer, or a reuse of the id for another request).
    Answer(ClientReply),
    /// The same request is in flight: wait for its answer.
    InFlight,
}

/// Looks a transfer's id up on its payer shard. The same id with the same content gets the
/// first answer; with another payer, payee, kind, amount or reference it is refused as a
/// conflict — never answered with another request's receipt. An id whose transfer finished
/// longer ago than the idempotency window (its record retired, or about to be) is refused as
/// expired — never taken as a new transfer. A retry let through just before the window closed
/// applies before its record retires (the grace is longer than any wait) or past its own
/// deadline (refused).
fn known(
    replica: &Replica,
    store: &dyn LogStore,
    request: &TransferRequest,
    now_ms: u64,
    window_ms: u64,
) -> Known {
    let expired = Known::Answer(ClientReply::Refused(ResultCode::RequestIdExpired));
    let Some(record): Option<&OutgoingTransfer> = replica.ledger().outgoing(&request.id) else {
        return match store.history_by_transfer(replica.shard(), &request.id) {
            Ok(Some(_)) => expired,
            Ok(None) => Known::New,
            Err(error) => Known::Answer(ClientReply::Unavailable(format!(
                "history unreadable: {error}"
            ))),
        };
    };
    if !record.request.same_request(request) {
        return Known::Answer(ClientReply::Refused(ResultCode::IdempotencyConflict));
    }
    if record
        .decided_ms
        .is_some_and(|decided| decided.saturating_add(window_ms) < now_ms)
    {
        return expired;
    }
    match replica.ledger().receipt(&request.id) {
        Some(receipt) => Known::Answer(ClientReply::Receipt(receipt)),
        None => Known::InFlight,
    }
}

impl Engine {
    /// Answers or forwards a request.
    pub(super) fn serve(&mut self, request: ClientRequest, waiter: Waiter) {
        if let ClientRequest::Meta { command } = request {
            return self.serve_meta(command, waiter);
        }
        if let ClientRequest::PlantEnginePanic = request {
            if self.config.test_hooks {
                panic!("planted engine panic (test hook)");
            }
            tracing::warn!("a test hook was asked of a node started without test hooks");
            return self.reply(waiter, ClientReply::Refused(ResultCode::NotPermitted));
        }
        let shard = request.shard(&self.map);
        let may_lead = self.may_lead();
        let (leading, serving) = match self.replicas.get(&shard) {
            Some(r) => (r.is_leader(), r.is_serving() && may_lead),
            None => (false, false),
        };
        if leading && !serving {
            // Elected but not yet caught up with its own term (or its clock is out of
            // bounds): nothing is done; the caller retries.
            return self.reply(
                waiter,
                ClientReply::Unavailable(format!(
                    "the leader of shard {shard} is not ready to serve yet"
                )),
            );
        }
        if !leading {
            let hint = self.leader_guess(shard);
            return match (hint, &waiter) {
                (Some(leader), Waiter::Local(_)) => self.forward(leader, request, waiter),
                _ => self.reply(
                    waiter,
                    ClientReply::NotLeader {
                        shard,
                        leader: hint,
                    },
                ),
            };
        }
        if request.is_read() {
            let replica = self.replicas.get_mut(&shard).expect("leading");
            if let Some((waiter, reply)) = replica.read(request, waiter) {
                self.reply(waiter, reply);
            }
            return;
        }
        match request {
            ClientRequest::Command { command, .. } => {
                let tag = self.next_tag();
                let now_ms = self.now_ms();
                let replica = self.replicas.get_mut(&shard).expect("leading");
                if let Some((waiter, reply)) = replica.propose_for(command, tag, waiter, now_ms) {
                    self.reply(waiter, reply);
                }
            }
            ClientRequest::Transfer { request, pin } => self.transfer(request, pin, waiter),
            ClientRequest::PlantPanic { account } if self.config.test_hooks => {
                self.actors.plant_panic(account);
                self.reply(waiter, ClientReply::Done(ResultCode::Success));
            }
            ClientRequest::PlantPanic { .. } => {
                tracing::warn!("a test hook was asked of a node started without test hooks");
                self.reply(waiter, ClientReply::Refused(ResultCode::NotPermitted));
            }
            _ => self.reply(
                waiter,
                ClientReply::Unavailable("unexpected request kind".into()),
            ),
        }
    }

    pub(super) fn forward(&mut self, leader: u64, request: ClientRequest, waiter: Waiter) {
        let now = self.clock.monotonic_ms();
        let id = self.router.forwarding(waiter, leader, &request, now);
        metrics::counter!("tuma_requests_forwarded_total").increment(1);
        self.send_frame(leader, crate::wire::PeerFrame::Forward { id, request });
    }

    /// The payer's account actor: answer a known transfer from the ledger, else verify the PIN
    /// off this thread and propose.
    fn transfer(&mut self, request: TransferRequest, pin: Option<String>, waiter: Waiter) {
        let shard = self.map.shard_of(&request.from);
        let inputs = self.inputs_tx.clone();
        let wall_ms = self.now_ms();
        let verifier = &mut self.pin_verifier;
        let hasher = &self.config.pin_hasher;
        let Some(replica) = self.replicas.get_mut(&shard) else {
            return;
        };
        let account = request.from.clone();
        let now = self.clock.monotonic_ms();
        let window_ms = self.config.idempotency_window_ms;
        let store = self.store.as_ref();
        let handled = self.actors.dispatch(&account, now, || {
            match known(replica, store, &request, wall_ms, window_ms) {
                Known::Answer(reply) => return Some((waiter, reply)),
                Known::InFlight => return replica.wait_transfer(request, waiter),
                Known::New => {}
            }
            let hash = replica
                .ledger()
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

    /// Proposes a transfer whose PIN verdict is known (the state may have moved on while the
    /// PIN was checked: the id is looked up again).
    pub(super) fn propose_transfer(
        &mut self,
        mut request: TransferRequest,
        verdict: PinVerdict,
        waiter: Waiter,
    ) {
        let shard = self.map.shard_of(&request.from);
        let now_ms = self.now_ms();
        let may_lead = self.may_lead();
        let Some(replica) = self
            .replicas
            .get_mut(&shard)
            .filter(|r| r.is_serving() && may_lead)
        else {
            let leader = self.replicas.get(&shard).and_then(|r| r.leader());
            return self.reply(waiter, ClientReply::NotLeader { shard, leader });
        };
        let window_ms = self.config.idempotency_window_ms;
        let answer = match known(replica, self.store.as_ref(), &request, now_ms, window_ms) {
            Known::Answer(reply) => Some((waiter, reply)),
            Known::InFlight => replica.wait_transfer(request, waiter),
            Known::New => {
                request.pin = verdict;
                replica.propose_transfer(request, waiter, now_ms)
            }
        };
        if let Some((waiter, reply)) = answer {
            self.reply(waiter, reply);
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

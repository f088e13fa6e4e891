//! Shard leaders: client requests, the log, peer messages, ticks, crashes.

use tuma_actors::account::ShardId;
use tuma_actors::ledger::{Applied, Command, Entry, OutgoingState};
use tuma_actors::protocol::{Effects, Envelope, ShardDriver};

use super::{ClientReply, Event, World};

impl World<'_> {
    /// A client's request reaches the payer shard's leader.
    pub(super) fn request(&mut self, n: usize) {
        let shard = self.clients[n].payer_shard;
        let id = self.clients[n].request.id.clone();
        let sh = &mut self.shards[shard as usize];
        if sh.driver.is_none() {
            self.note(|| format!("[{id}] request lost: shard {shard} has no leader"));
            return;
        }
        if let Some(receipt) = sh.ledger.receipt(&id) {
            self.send_reply(n, ClientReply::Final(receipt));
            return;
        }
        let prepared = sh
            .ledger
            .outgoing(&id)
            .is_some_and(|r| r.state == OutgoingState::Prepared);
        sh.waiting.insert(id.clone());
        if !prepared {
            let request = self.clients[n].request.clone();
            self.propose(shard, Command::Transfer(request));
        }
    }

    /// Appends to a shard's log; it applies after a short replication delay, in order.
    pub(super) fn propose(&mut self, shard: ShardId, command: Command) {
        if self.shards[shard as usize].driver.is_none() {
            return;
        }
        let latency = self.rng.range(1, 4);
        let timestamp_ms = self.leader_now(shard);
        let sh = &mut self.shards[shard as usize];
        let at = (self.now + latency).max(sh.last_apply_at);
        sh.last_apply_at = at;
        let epoch = sh.epoch;
        self.schedule(
            at,
            Event::Apply {
                shard,
                epoch,
                entry: Entry {
                    timestamp_ms,
                    command,
                },
            },
        );
    }

    pub(super) fn apply(&mut self, shard: ShardId, epoch: u64, entry: Entry) {
        let current = {
            let sh = &self.shards[shard as usize];
            sh.driver.is_some() && sh.epoch == epoch
        };
        // An entry proposed by a leader that crashed may or may not have reached a quorum.
        if !current && self.rng.chance(500) {
            self.stats.lost_entries += 1;
            self.note(|| format!("shard {shard} lost entry {:?}", short(&entry.command)));
            return;
        }
        self.stats.entries += 1;
        let now = self.now;
        let sh = &mut self.shards[shard as usize];
        let before = self.checker.before(&sh.ledger, &entry);
        let applied = match sh.ledger.try_apply(&entry) {
            Ok(applied) => applied,
            Err(violation) => {
                let id = command_id(&entry.command);
                self.checker
                    .fail(id.as_ref(), format!("shard {shard} invariant: {violation}"));
                return;
            }
        };
        self.checker.after(&sh.ledger, before);
        if let Some(id) = command_id(&entry.command) {
            if let Some(&n) = self.client_index.get(&id) {
                let client = &mut self.clients[n];
                if client.payer_resolved_at.is_none()
                    && sh.ledger.outgoing(&id).is_some_and(|r| r.is_final())
                {
                    client.payer_resolved_at = Some(now);
                }
                let payee_final = sh
                    .ledger
                    .incoming(&id)
                    .is_some_and(|r| r.state != tuma_actors::ledger::IncomingState::Accepted);
                if client.payee_resolved_at.is_none() && payee_final {
                    client.payee_resolved_at = Some(now);
                }
            }
        }
        self.note(|| {
            format!(
                "shard {shard} applied {} -> {}",
                short(&entry.command),
                short_applied(&applied)
            )
        });
        if current {
            let leader_now = self.leader_now(shard);
            let sh = &mut self.shards[shard as usize];
            let effects = sh
                .driver
                .as_mut()
                .expect("current")
                .on_applied(&sh.ledger, &applied, leader_now);
            self.execute(shard, effects);
            self.answer_waiting(shard, &applied);
        }
    }

    fn answer_waiting(&mut self, shard: ShardId, applied: &Applied) {
        let (id, reply) = match applied {
            Applied::TransferFinished(receipt) => {
                (receipt.id.clone(), ClientReply::Final(receipt.clone()))
            }
            Applied::TransferRefused { id, result } => (id.clone(), ClientReply::Refused(*result)),
            _ => return,
        };
        if self.shards[shard as usize].waiting.remove(&id) {
            if let Some(&n) = self.client_index.get(&id) {
                self.send_reply(n, reply);
            }
        }
    }

    pub(super) fn execute(&mut self, shard: ShardId, effects: Effects) {
        for command in effects.propose {
            self.propose(shard, command);
        }
        for envelope in effects.send {
            self.send_peer(envelope);
        }
        // An absence is confirmed once everything proposed before it has applied.
        for (id, from) in effects.confirm_absent {
            let sh = &self.shards[shard as usize];
            let at = (self.now + 1).max(sh.last_apply_at);
            let epoch = sh.epoch;
            self.schedule(
                at,
                Event::ConfirmedInquiry {
                    shard,
                    epoch,
                    id,
                    from,
                },
            );
        }
    }

    pub(super) fn answer_confirmed_inquiry(
        &mut self,
        shard: ShardId,
        epoch: u64,
        id: tuma_actors::transfer::TransferId,
        from: ShardId,
    ) {
        let now = self.leader_now(shard);
        let sh = &mut self.shards[shard as usize];
        if sh.epoch != epoch {
            return;
        }
        let Some(driver) = sh.driver.as_mut() else {
            return;
        };
        let effects = driver.answer_confirmed_inquiry(&sh.ledger, &id, from, now);
        self.execute(shard, effects);
    }

    fn send_peer(&mut self, envelope: Envelope) {
        self.stats.messages += 1;
        if self.rng.chance(self.drop_per_mille) {
            self.stats.dropped += 1;
            return;
        }
        if self.rng.chance(self.duplicate_per_mille) {
            let at = self.now + self.delay();
            self.schedule(at, Event::Peer(envelope.clone()));
        }
        let at = self.now + self.delay();
        self.schedule(at, Event::Peer(envelope));
    }

    pub(super) fn deliver(&mut self, envelope: Envelope) {
        let id = envelope.message.transfer_id().clone();
        if self.cut.contains_key(&(envelope.from, envelope.to)) {
            self.note(|| {
                format!(
                    "[{id}] {} -> {} cut by partition",
                    envelope.from, envelope.to
                )
            });
            return;
        }
        let to = envelope.to;
        if self.shards[to as usize].driver.is_none() {
            return;
        }
        self.note(|| {
            format!(
                "[{id}] {} -> {}: {:?}",
                envelope.from,
                to,
                kind_of(&envelope)
            )
        });
        let leader_now = self.leader_now(to);
        let sh = &mut self.shards[to as usize];
        let effects = sh
            .driver
            .as_mut()
            .expect("checked")
            .on_message(&sh.ledger, &envelope, leader_now);
        self.execute(to, effects);
    }

    pub(super) fn tick(&mut self, shard: ShardId) {
        let next = self.now + self.cfg.tick_ms;
        self.schedule(next, Event::Tick(shard));
        if self.shards[shard as usize].driver.is_none() {
            return;
        }
        let leader_now = self.leader_now(shard);
        let sh = &mut self.shards[shard as usize];
        let effects = sh
            .driver
            .as_mut()
            .expect("checked")
            .on_tick(&sh.ledger, leader_now);
        let last_sms = sh.ledger.sms_outbox().last().map(|r| r.seq);
        self.execute(shard, effects);
        if let Some(up_to_seq) = last_sms {
            if self.rng.chance(100) {
                self.propose(shard, Command::SmsDelivered { up_to_seq });
            }
        }
        if shard == 0 && self.now > self.quiet_after && self.quiescent() {
            self.done = true;
        }
    }

    fn quiescent(&self) -> bool {
        self.cut.is_empty()
            && self.shards.iter().all(|s| {
                s.driver.is_some()
                    && s.ledger.prepared().next().is_none()
                    && s.ledger.accepted().next().is_none()
                    && s.ledger.outbox().next().is_none()
            })
    }

    pub(super) fn crash(&mut self, shard: ShardId) {
        let sh = &mut self.shards[shard as usize];
        if sh.driver.is_none() {
            return;
        }
        sh.driver = None;
        sh.epoch += 1;
        sh.waiting.clear();
        self.stats.crashes += 1;
        let downtime = self.rng.range(50, self.cfg.downtime_ms_max.max(50));
        self.note(|| format!("shard {shard} leader crashed for {downtime} ms"));
        self.fault_windows.push((self.now, self.now + downtime));
        self.schedule(self.now + downtime, Event::Restart(shard));
    }

    pub(super) fn restart(&mut self, shard: ShardId) {
        let skew = self.cfg.skew_ms_max as i64;
        let offset = self.rng.range(0, 2 * skew as u64) as i64 - skew;
        let sh = &mut self.shards[shard as usize];
        sh.driver = Some(ShardDriver::new(shard, self.cfg.driver.clone()));
        sh.clock_offset_ms = offset;
        self.note(|| format!("shard {shard} has a new leader (clock {offset:+} ms)"));
    }
}

fn command_id(command: &Command) -> Option<tuma_actors::transfer::TransferId> {
    match command {
        Command::Transfer(r) => Some(r.id.clone()),
        Command::ReceiveCredit(o) => Some(o.id.clone()),
        Command::Decide { id, .. }
        | Command::Settle { id, .. }
        | Command::DecisionDelivered { id } => Some(id.clone()),
        _ => None,
    }
}

fn short(command: &Command) -> String {
    match command {
        Command::Transfer(r) => format!(
            "[{}] Transfer {} {}→{} {}",
            r.id,
            r.kind.name(),
            r.from,
            r.to,
            r.amount
        ),
        Command::ReceiveCredit(o) => {
            format!("[{}] ReceiveCredit from shard {}", o.id, o.payer_shard)
        }
        Command::Decide { id, answer } => format!("[{id}] Decide {answer:?}"),
        Command::Settle { id, decision, .. } => format!("[{id}] Settle {decision:?}"),
        Command::DecisionDelivered { id } => format!("[{id}] DecisionDelivered"),
        other => format!("{other:?}"),
    }
}

fn short_applied(applied: &Applied) -> String {
    match applied {
        Applied::TransferFinished(r) => format!("finished {:?}", r.result),
        Applied::TransferPrepared(_) => "prepared".to_string(),
        Applied::CreditAnswered { answer, .. } => format!("answered {answer:?}"),
        other => format!("{other:?}"),
    }
}

fn kind_of(envelope: &Envelope) -> String {
    use tuma_actors::protocol::PeerMessage;
    match &envelope.message {
        PeerMessage::Credit(_) => "Credit".to_string(),
        PeerMessage::CreditAnswer { answer, .. } => format!("CreditAnswer {answer:?}"),
        PeerMessage::Decision { decision, .. } => format!("Decision {decision:?}"),
        PeerMessage::DecisionAck { .. } => "DecisionAck".to_string(),
        PeerMessage::Inquiry { .. } => "Inquiry".to_string(),
    }
}

//! Clients: sending and retrying with the same key, hearing answers, asking for reversals,
//! and the final check of what each client was told against what happened.

use tuma_actors::ledger::{IncomingState, OutgoingState};
use tuma_actors::outcome::ResultCode;
use tuma_actors::roles::Role;
use tuma_actors::transfer::{PinVerdict, TransferId, TransferKind, TransferRequest};

use super::{ClientReply, Event, World};

/// Kinds care may reverse in the workload.
const REVERSIBLE: [TransferKind; 7] = [
    TransferKind::SendMoney,
    TransferKind::CashIn,
    TransferKind::CashOut,
    TransferKind::PayBill,
    TransferKind::BuyGoods,
    TransferKind::BusinessToCustomer,
    TransferKind::BusinessToBusiness,
];

impl World<'_> {
    pub(super) fn submit(&mut self, n: usize) {
        let client = &self.clients[n];
        if client.answer.is_some() || self.now > client.give_up_at {
            return;
        }
        let id = client.request.id.clone();
        self.note(|| format!("[{id}] client sends"));
        let copies = if self.rng.chance(self.duplicate_per_mille.max(30)) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if !self.rng.chance(self.drop_per_mille) {
                let at = self.now + self.delay();
                self.schedule(at, Event::Request(n));
            }
        }
        let retry = self.now + self.cfg.client_retry_ms;
        self.schedule(retry, Event::Submit(n));
    }

    pub(super) fn send_reply(&mut self, n: usize, reply: ClientReply) {
        if self.rng.chance(self.drop_per_mille) {
            return;
        }
        let at = self.now + self.delay();
        self.schedule(at, Event::Reply(n, reply));
    }

    pub(super) fn reply(&mut self, n: usize, reply: ClientReply) {
        let id = self.clients[n].request.id.clone();
        match reply {
            ClientReply::Refused(ResultCode::Overloaded) => {}
            ClientReply::Refused(code) => {
                self.checker.fail(
                    Some(&id),
                    format!("refused without a record: {code:?} (ids are never reused)"),
                );
            }
            ClientReply::Final(receipt) => {
                let client = &mut self.clients[n];
                match client.answer {
                    None => {
                        self.note(|| format!("[{id}] client told {:?}", receipt.result));
                        let client = &mut self.clients[n];
                        client.answer = Some(receipt.result);
                        client.receipt = Some(receipt.clone());
                        if receipt.result.is_success() {
                            self.maybe_reverse(n);
                        }
                    }
                    Some(previous) if previous != receipt.result => {
                        self.checker.fail(
                            Some(&id),
                            format!("told {previous:?} and later {:?}", receipt.result),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
    }

    /// Sometimes care reverses a confirmed transfer: a new transfer from its payee back.
    fn maybe_reverse(&mut self, n: usize) {
        let original = &self.clients[n];
        let Some(txn_id) = original.receipt.as_ref().and_then(|r| r.txn_id) else {
            return;
        };
        if !REVERSIBLE.contains(&original.request.kind)
            || self.now > self.workload_end
            || !self.rng.chance(60)
        {
            return;
        }
        let deadline_ms = self.now + self.rng.range(1_000, 5_000);
        let request = TransferRequest {
            id: TransferId::parse(&format!("r{n}")).expect("id"),
            kind: TransferKind::Reversal,
            from: original.request.to.clone(),
            to: original.request.from.clone(),
            amount: original.request.amount,
            account_reference: None,
            pin: PinVerdict::NotRequired,
            deadline_ms,
            initiator: Role::Care,
            reverses: Some(txn_id),
        };
        let client = self.add_client(request);
        let at = self.now + self.rng.range(10, 500);
        self.schedule(at, Event::Submit(client));
    }

    /// What each client was told matches its payer record; each side resolved in time.
    pub(super) fn check_clients(&mut self) {
        let skew = self.cfg.skew_ms_max;
        let grace = self.cfg.grace_ms;
        for n in 0..self.clients.len() {
            let client = &self.clients[n];
            let id = client.request.id.clone();
            let ledger = &self.shards[client.payer_shard as usize].ledger;
            let state = ledger.outgoing(&id).map(|r| r.state.clone());
            let told = client.answer;
            let deadline = client.request.deadline_ms;
            let bound = self.liveness_bound(deadline + skew, grace);
            let late = |side: &str, at: Option<u64>| {
                at.filter(|&at| at > bound).map(|at| {
                    format!(
                        "{side} resolved {} ms after its deadline; the bound (a fault-free {grace} ms after it) was {} ms",
                        at - deadline,
                        bound - deadline
                    )
                })
            };
            let mut failures = Vec::new();
            match (told, &state) {
                (Some(code), Some(OutgoingState::Committed)) if !code.is_success() => {
                    failures.push(format!("told {code:?} but committed"))
                }
                (Some(ResultCode::Success), Some(s)) if *s != OutgoingState::Committed => {
                    failures.push(format!("told success but {s:?}"))
                }
                // A refusal before the payer's PIN checked out leaves no record by design.
                (Some(ResultCode::Success), None) => {
                    failures.push("told success but there is no record".to_string())
                }
                _ => {}
            }
            failures.extend(late("payer", client.payer_resolved_at));
            failures.extend(late("payee", client.payee_resolved_at));
            if let Some(record) = ledger.outgoing(&id) {
                let payee = &self.shards[record.payee_shard as usize].ledger;
                let accepted_forever = payee
                    .incoming(&id)
                    .is_some_and(|r| r.state == IncomingState::Accepted);
                if accepted_forever {
                    failures.push("payee still holds a pending credit".to_string());
                }
            }
            for failure in failures {
                self.checker.fail(Some(&id), failure);
            }
        }
    }
}

//! Callers waiting on a replica's log: for a transfer's final answer (by id, with the request
//! they sent, so a reuse of the id for another request never answers the genuine caller and
//! vice versa) and for an admin command (by proposal tag).

use std::collections::BTreeMap;

use tuma_actors::ledger::Receipt;
use tuma_actors::outcome::ResultCode;
use tuma_actors::transfer::{TransferId, TransferRequest};

use super::request::{ClientReply, Waiter};

/// Most callers waiting on one transfer id (retries pile up here while it is in flight).
const WAITERS_PER_TRANSFER_MAX: usize = 64;

#[derive(Default)]
pub(super) struct Waiters {
    transfers: BTreeMap<TransferId, Vec<(TransferRequest, Waiter)>>,
    tagged: BTreeMap<u64, Waiter>,
}

impl Waiters {
    /// Waits for the final answer to `request`; hands the waiter back when too many wait.
    pub fn wait_transfer(
        &mut self,
        request: TransferRequest,
        waiter: Waiter,
    ) -> Result<(), Waiter> {
        let waiting = self.transfers.entry(request.id.clone()).or_default();
        if waiting.len() >= WAITERS_PER_TRANSFER_MAX {
            return Err(waiter);
        }
        waiting.push((request, waiter));
        Ok(())
    }

    pub fn wait_tag(&mut self, tag: u64, waiter: Waiter) {
        self.tagged.insert(tag, waiter);
    }

    pub fn take_tag(&mut self, tag: u64) -> Option<Waiter> {
        self.tagged.remove(&tag)
    }

    /// The waiters of exactly `request` (same id and the same content) get `reply`; waiters
    /// of another request under the same id keep waiting for their own entry.
    pub fn answer_request(
        &mut self,
        request: &TransferRequest,
        reply: &ClientReply,
        out: &mut Vec<(Waiter, ClientReply)>,
    ) {
        let Some(waiting) = self.transfers.remove(&request.id) else {
            return;
        };
        let (matching, others): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|(asked, _)| asked.same_request(request));
        out.extend(matching.into_iter().map(|(_, w)| (w, reply.clone())));
        if !others.is_empty() {
            self.transfers.insert(request.id.clone(), others);
        }
    }

    /// A transfer became final with `receipt` for `request`: its own waiters get the receipt,
    /// and — when it is `recorded` under its id — anyone who asked for a different request
    /// under the same id is told the id is taken. A refusal left without a record takes no
    /// id: the others keep waiting for their own entries.
    pub fn finished(
        &mut self,
        request: &TransferRequest,
        receipt: &Receipt,
        recorded: bool,
        out: &mut Vec<(Waiter, ClientReply)>,
    ) {
        self.answer_request(request, &ClientReply::Receipt(receipt.clone()), out);
        if !recorded {
            return;
        }
        if let Some(others) = self.transfers.remove(&request.id) {
            let conflict = ClientReply::Refused(ResultCode::IdempotencyConflict);
            out.extend(others.into_iter().map(|(_, w)| (w, conflict.clone())));
        }
    }

    /// Every waiter (leadership lost or replica removed).
    pub fn drain(&mut self) -> Vec<Waiter> {
        let transfers = std::mem::take(&mut self.transfers)
            .into_values()
            .flatten()
            .map(|(_, w)| w);
        let tagged = std::mem::take(&mut self.tagged).into_values();
        transfers.chain(tagged).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;
    use tuma_actors::account::AccountRef;
    use tuma_actors::money::Money;
    use tuma_actors::roles::Role;
    use tuma_actors::transfer::{PinVerdict, TransferKind};

    fn request(amount: i64) -> TransferRequest {
        TransferRequest {
            id: TransferId::parse("same-id").unwrap(),
            kind: TransferKind::SendMoney,
            from: AccountRef::parse("254700000001").unwrap(),
            to: AccountRef::parse("254700000002").unwrap(),
            amount: Money::from_cents(amount),
            account_reference: None,
            pin: PinVerdict::Verified,
            deadline_ms: 1,
            initiator: Role::Customer,
            reverses: None,
        }
    }

    fn receipt(result: ResultCode) -> Receipt {
        Receipt {
            id: TransferId::parse("same-id").unwrap(),
            result,
            txn_id: None,
            fee: Money::ZERO,
            balance: Money::ZERO,
            payee_name: None,
        }
    }

    /// A request refused without a record takes no id: another request waiting under the same
    /// id keeps waiting for its own entry instead of hearing "conflict" (and then being applied).
    #[test]
    fn only_a_recorded_answer_tells_other_requests_the_id_is_taken() {
        let mut waiters = Waiters::default();
        let (wrong_pin, genuine) = (request(100), request(200));
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        waiters
            .wait_transfer(wrong_pin.clone(), Waiter::Local(tx1))
            .unwrap();
        waiters
            .wait_transfer(genuine.clone(), Waiter::Local(tx2))
            .unwrap();
        let mut out = Vec::new();
        waiters.finished(&wrong_pin, &receipt(ResultCode::WrongPin), false, &mut out);
        assert_eq!(
            out.len(),
            1,
            "only the refused request's caller is answered"
        );
        for (waiter, reply) in out.drain(..) {
            if let Waiter::Local(tx) = waiter {
                let _ = tx.send(reply);
            }
        }
        assert!(
            matches!(rx1.try_recv(), Ok(ClientReply::Receipt(r)) if r.result == ResultCode::WrongPin)
        );
        assert!(rx2.try_recv().is_err(), "the other request still waits");
        waiters.finished(&genuine, &receipt(ResultCode::Success), true, &mut out);
        assert_eq!(out.len(), 1);
        // Recorded: a third request under the id is told it is taken.
        let (tx3, _rx3) = oneshot::channel();
        waiters
            .wait_transfer(request(300), Waiter::Local(tx3))
            .unwrap();
        let mut out = Vec::new();
        waiters.finished(&genuine, &receipt(ResultCode::Success), true, &mut out);
        assert!(matches!(
            out.as_slice(),
            [(_, ClientReply::Refused(ResultCode::IdempotencyConflict))]
        ));
    }
}

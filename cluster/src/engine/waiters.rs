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

//! Linearizable reads: a leader answers a read only after confirming it still leads (raft-rs's
//! ReadIndex: a heartbeat round acknowledged by a quorum) and applying up to the commit index
//! it read — so a deposed leader that does not know it yet can never answer from stale state,
//! and a transfer that committed is never reported unknown. Reads of the history store are
//! answered off the engine thread (`history_reads.rs`).

use std::collections::{BTreeMap, BTreeSet};

use raft::ReadState;
use tuma_actors::account::ShardId;
use tuma_actors::ledger::ShardLedger;
use tuma_actors::transfer::TransferId;

use super::history_reads::{HistoryQuery, HistoryRead};
use super::request::{ClientReply, ClientRequest, PayoutLookup, PromptLookup, Waiter};

/// Most reads waiting on one replica; more are answered "unavailable".
pub const PENDING_READS_MAX: usize = 10_000;

/// Who waits on a read: a client, or a payee shard's inquiry about a transfer this shard had
/// no record of (presumed abort is a read of everything the shard committed).
enum PendingRead {
    Client {
        request: Box<ClientRequest>,
        waiter: Waiter,
    },
    Inquiry {
        id: TransferId,
        from: ShardId,
    },
}

/// Reads waiting for their ReadIndex, then for the replica to apply up to it.
#[derive(Default)]
pub(super) struct PendingReads {
    next_id: u64,
    /// Asked raft-rs for a read index; keyed by the request context.
    confirming: BTreeMap<u64, PendingRead>,
    /// Leadership confirmed at this commit index; answered once applied that far.
    confirmed: Vec<(u64, PendingRead)>,
    /// Inquiries waiting, so a payee's resends while one waits add no second read.
    inquiries: BTreeSet<(TransferId, ShardId)>,
}

/// What the confirmed reads a replica has applied far enough for get.
#[derive(Default)]
pub(super) struct Answers {
    pub clients: Vec<(Waiter, Answer)>,
    /// Inquiries whose "no record here" is now confirmed (or no longer true).
    pub inquiries: Vec<(TransferId, ShardId)>,
}

impl PendingReads {
    fn full(&self) -> bool {
        self.confirming.len() + self.confirmed.len() >= PENDING_READS_MAX
    }

    fn add(&mut self, read: PendingRead) -> Vec<u8> {
        self.next_id += 1;
        self.confirming.insert(self.next_id, read);
        self.next_id.to_be_bytes().to_vec()
    }

    /// Registers a read; returns the context to pass to `read_index`, or hands the waiter back
    /// when too many reads wait.
    pub fn register(&mut self, request: ClientRequest, waiter: Waiter) -> Result<Vec<u8>, Waiter> {
        if self.full() {
            return Err(waiter);
        }
        Ok(self.add(PendingRead::Client {
            request: Box::new(request),
            waiter,
        }))
    }

    /// Registers an inquiry to answer once confirmed; the context to pass to `read_index`, or
    /// `None` when the same inquiry already waits or too many reads wait (the payee asks
    /// again).
    pub fn register_inquiry(&mut self, id: TransferId, from: ShardId) -> Option<Vec<u8>> {
        if self.full() || !self.inquiries.insert((id.clone(), from)) {
            return None;
        }
        Some(self.add(PendingRead::Inquiry { id, from }))
    }

    /// Read indexes raft-rs confirmed in a Ready.
    pub fn confirm(&mut self, states: &[ReadState]) {
        for state in states {
            let Ok(id) = <[u8; 8]>::try_from(state.request_ctx.as_slice()) else {
                continue;
            };
            if let Some(read) = self.confirming.remove(&u64::from_be_bytes(id)) {
                self.confirmed.push((state.index, read));
            }
        }
    }

    /// Answers every confirmed read whose index is applied.
    pub fn answer(&mut self, ledger: &ShardLedger, applied: u64) -> Answers {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.confirmed = later;
        let mut answers = Answers::default();
        for (_, read) in due {
            match read {
                PendingRead::Client { request, waiter } => {
                    answers.clients.push((waiter, answer(ledger, &request)))
                }
                PendingRead::Inquiry { id, from } => {
                    self.inquiries.remove(&(id.clone(), from));
                    answers.inquiries.push((id, from));
                }
            }
        }
        answers
    }

    /// Every waiting client read's waiter (leadership lost: they retry elsewhere; nothing was
    /// done); waiting inquiries are dropped (payees ask again).
    pub fn drain(&mut self) -> Vec<Waiter> {
        self.inquiries.clear();
        let confirming = std::mem::take(&mut self.confirming).into_values();
        let confirmed = std::mem::take(&mut self.confirmed)
            .into_iter()
            .map(|(_, r)| r);
        confirming
            .chain(confirmed)
            .filter_map(|read| match read {
                PendingRead::Client { waiter, .. } => Some(waiter),
                PendingRead::Inquiry { .. } => None,
            })
            .collect()
    }
}

/// Most confirmation texts one outbox read answers.
pub const SMS_OUTBOX_READ_MAX: usize = 1_000;
/// Most business callbacks one read returns.
pub const CALLBACKS_READ_MAX: usize = 1_000;

/// What a confirmed read gets: an answer from the applied state, or a query of the shard's
/// history (a range read of a few rows, whose cost does not grow with the history) that the
/// engine hands to a reader thread ([`super::history_reads`]).
#[derive(Debug)]
pub(super) enum Answer {
    Now(ClientReply),
    FromHistory(HistoryQuery),
}

/// The answer to a confirmed read.
pub(super) fn answer(ledger: &ShardLedger, request: &ClientRequest) -> Answer {
    let shard = ledger.shard();
    let history = |what| Answer::FromHistory(HistoryQuery { shard, what });
    let reply = match request {
        ClientRequest::Account { account } => {
            ClientReply::Account(ledger.account(account).cloned().map(Box::new))
        }
        ClientRequest::TransferStatus { id, payer, .. } => match ledger.outgoing(id) {
            Some(record) if payer.as_ref().is_some_and(|p| *p != record.request.from) => {
                ClientReply::UnknownTransfer
            }
            Some(_) => match ledger.receipt(id) {
                Some(receipt) => ClientReply::Receipt(receipt),
                None => ClientReply::InProgress,
            },
            // Retired from memory: its payer row answers for the whole history.
            None => {
                return history(HistoryRead::TransferStatus {
                    id: id.clone(),
                    payer: payer.clone(),
                })
            }
        },
        ClientRequest::TransferByReceipt { txn_id, .. } => {
            ClientReply::Transfer(ledger.outgoing_by_receipt(txn_id).cloned().map(Box::new))
        }
        ClientRequest::Receipt { txn_id, .. } => {
            return history(HistoryRead::Receipt { txn_id: *txn_id })
        }
        ClientRequest::Audit { .. } => match ledger.audit() {
            Ok(audit) => ClientReply::Audit(Box::new(audit)),
            Err(violation) => ClientReply::Unavailable(format!("audit failed: {violation}")),
        },
        ClientRequest::Statement {
            account,
            limit,
            before,
        } => {
            return history(HistoryRead::Statement {
                account: account.clone(),
                before: *before,
                limit: *limit,
            })
        }
        ClientRequest::BackupState { .. } => {
            let state = bincode::serde::encode_to_vec(ledger.state(), bincode::config::standard())
                .expect("encoding the ledger into memory cannot fail");
            ClientReply::BackupState(Box::new(super::request::ShardBackupState {
                state,
                history_rows: ledger.history_next_seq(),
                audit_records: ledger.audit_log_next_seq(),
                in_flight: (ledger.prepared().count() + ledger.accepted().count()) as u64,
                entries_applied: ledger.entries_applied(),
            }))
        }
        ClientRequest::BackupRows { after, limit, .. } => {
            return history(HistoryRead::Export {
                after: after.clone(),
                limit: *limit,
            })
        }
        ClientRequest::AuditLog { before, limit, .. } => {
            return history(HistoryRead::AuditLog {
                before: *before,
                limit: *limit,
            })
        }
        ClientRequest::ReversalRequests { .. } => ClientReply::ReversalRequests(
            ledger
                .reversal_requests()
                .map(|(txn, request)| (*txn, request.clone()))
                .collect(),
        ),
        ClientRequest::SmsOutbox {
            from_seq, limit, ..
        } => ClientReply::SmsOutbox(
            ledger
                .sms_outbox_from(*from_seq)
                .take((*limit).min(SMS_OUTBOX_READ_MAX))
                .cloned()
                .collect(),
        ),
        ClientRequest::Prompt { lookup, .. } => {
            let prompt = match lookup {
                PromptLookup::ByCheckoutId(id) => ledger.prompt(id),
                PromptLookup::WaitingFor(customer) => ledger.prompt_waiting_for(customer),
            };
            ClientReply::Prompt(prompt.cloned().map(Box::new))
        }
        ClientRequest::Payout { business, lookup } => {
            let payout = match lookup {
                PayoutLookup::ByConversationId(id) => ledger.payout(id),
                PayoutLookup::ByOriginatorId(id) => ledger.payout_by_origin(business, id),
            };
            ClientReply::Payout(payout.cloned().map(Box::new))
        }
        ClientRequest::ApiKey { consumer_key, .. } => {
            ClientReply::Business(ledger.api_key_business(consumer_key).cloned())
        }
        ClientRequest::Callbacks {
            from_seq, limit, ..
        } => ClientReply::Callbacks(
            ledger
                .callbacks(*from_seq, (*limit).min(CALLBACKS_READ_MAX))
                .cloned()
                .collect(),
        ),
        other => ClientReply::Unavailable(format!(
            "not a read: {}",
            match other {
                ClientRequest::Command { .. } => "command",
                ClientRequest::Transfer { .. } => "transfer",
                ClientRequest::PlantPanic { .. } | ClientRequest::PlantEnginePanic => "test hook",
                _ => "cluster change",
            }
        )),
    };
    Answer::Now(reply)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tuma_actors::ledger::LedgerConfig;
    use tuma_actors::tariff::Tariffs;
    use tuma_actors::ShardMap;

    use super::*;

    fn ledger() -> ShardLedger {
        let map = ShardMap::new(2).unwrap();
        ShardLedger::new(LedgerConfig::new(
            0,
            map,
            Arc::new(Tariffs::kenya_default()),
        ))
    }

    fn confirmed_at(reads: &mut PendingReads, context: Vec<u8>, index: u64) {
        reads.confirm(&[ReadState {
            index,
            request_ctx: context,
        }]);
    }

    #[test]
    fn an_inquiry_is_answered_once_confirmed_and_applied_and_asked_once_while_it_waits() {
        let (mut reads, ledger) = (PendingReads::default(), ledger());
        let id = TransferId::parse("t-1").unwrap();
        let context = reads.register_inquiry(id.clone(), 1).expect("registered");
        assert_eq!(
            reads.register_inquiry(id.clone(), 1),
            None,
            "a resend while one waits adds no read"
        );
        assert!(
            reads.answer(&ledger, 100).inquiries.is_empty(),
            "not confirmed yet"
        );
        confirmed_at(&mut reads, context, 7);
        assert!(
            reads.answer(&ledger, 6).inquiries.is_empty(),
            "not applied that far"
        );
        assert_eq!(reads.answer(&ledger, 7).inquiries, vec![(id.clone(), 1)]);
        assert!(
            reads.register_inquiry(id, 1).is_some(),
            "answered, so it may be asked again"
        );
    }

    #[test]
    fn leadership_lost_drops_waiting_inquiries_and_hands_back_client_waiters() {
        let mut reads = PendingReads::default();
        let id = TransferId::parse("t-1").unwrap();
        let (tx, _rx) = tokio::sync::oneshot::channel();
        assert!(reads
            .register(ClientRequest::Audit { shard: 0 }, Waiter::Local(tx))
            .is_ok());
        reads.register_inquiry(id.clone(), 1).expect("registered");
        assert_eq!(
            reads.drain().len(),
            1,
            "only the client waits for an answer"
        );
        assert!(
            reads.register_inquiry(id, 1).is_some(),
            "the payee's next inquiry starts afresh"
        );
    }
}

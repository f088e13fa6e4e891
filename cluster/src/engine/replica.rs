//! One shard replica on this node: its raft-rs group, its ledger, and (while it leads and is
//! ready to serve) its protocol driver, the callers waiting on it, and the reads it confirms.

use raft::prelude::{Entry, Snapshot};
use raft::ReadState;
use tuma_actors::ledger::{self, Applied, Command, LedgerConfig, LedgerState, ShardLedger};
use tuma_actors::protocol::{Effects, Envelope, ShardDriver};
use tuma_actors::transfer::TransferRequest;
use tuma_actors::ShardMap;

use super::group::{Every, GroupStart, RaftGroup};
use super::proposals::Proposals;
use super::reads::PendingReads;
use super::removal_watch::RemovalWatch;
use super::request::{ClientReply, ClientRequest, Waiter};
use super::snapshots::payload;
use super::waiters::Waiters;
use super::{EngineConfig, EngineError, EngineFault};
use crate::storage::{audit_log, history, LogStore, WriteOp};
use crate::transport::NodeId;

/// What applying committed entries asks the engine to do.
#[derive(Default)]
pub(super) struct ApplyOutput {
    pub replies: Vec<(Waiter, ClientReply)>,
    pub envelopes: Vec<Envelope>,
    /// The cluster state (or the meta group's configuration) changed.
    pub meta_changed: bool,
    /// History rows and audit records the applied entries emitted, per shard, to write
    /// before reads answer.
    pub history: Vec<ShardRows>,
}

/// What one shard's applied entries emitted for its store.
pub(super) struct ShardRows {
    pub shard: u32,
    pub rows: Vec<tuma_actors::ledger::HistoryRow>,
    pub audit_log: Vec<tuma_actors::ledger::AuditLogRecord>,
}

impl ApplyOutput {
    pub fn extend(&mut self, other: ApplyOutput) {
        self.replies.extend(other.replies);
        self.envelopes.extend(other.envelopes);
        self.meta_changed |= other.meta_changed;
        self.history.extend(other.history);
    }
}

pub(super) struct Replica {
    shard: u32,
    /// The Raft half: its own type with its own invariants (the meta group has one too).
    pub group: RaftGroup,
    ledger: ShardLedger,
    /// Present only while this replica leads and is ready to serve.
    driver: Option<ShardDriver>,
    driver_config: tuma_actors::protocol::DriverConfig,
    waiters: Waiters,
    reads: PendingReads,
    /// SMS records this leader already handed to the sink (volatile; a new leader may resend).
    sms_sent_up_to: u64,
    /// The latest retirement this replica proposed (volatile).
    retire_proposed_up_to: u64,
    /// The leader's time of the last `ExpireRequests` it proposed.
    prompts_expired_up_to: u64,
    /// Untagged proposals of this loop, proposed as one entry at the next Ready pass.
    proposals: Proposals,
    /// The history and audit sequences of the stored checkpoint: a snapshot carries the rows
    /// and records below them.
    checkpoint_history_seq: u64,
    checkpoint_audit_seq: u64,
    /// Whether its group still holds it (volatile).
    removal: RemovalWatch,
    planted_fault: Option<EngineFault>,
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// An empty ledger's checkpoint data (what a new cluster's shards start from).
pub(super) fn empty_ledger_data(config: &EngineConfig, map: ShardMap, shard: u32) -> Vec<u8> {
    let ledger = ShardLedger::new(LedgerConfig::new(shard, map, config.tariffs.clone()));
    bincode::serde::encode_to_vec(ledger.state(), bincode_config())
        .expect("encoding the ledger into memory cannot fail")
}

/// Least time between two retirements a leader proposes.
const RETIRE_EVERY_MS: u64 = 1_000;
/// At most one expiry of payment prompts this often (each closes every prompt due by its time).
const EXPIRE_PROMPTS_EVERY_MS: u64 = 250;

impl Replica {
    /// Opens a shard replica; returns it and the writes that make a bootstrap durable.
    pub fn open(
        config: &EngineConfig,
        map: ShardMap,
        shard: u32,
        start: GroupStart,
        incarnation: u64,
    ) -> Result<(Replica, Vec<WriteOp>), EngineError> {
        let ledger_config = LedgerConfig::new(shard, map, config.tariffs.clone());
        let (group, snapshot, writes) = RaftGroup::open(config, shard, start, incarnation)?;
        let ledger = match &snapshot {
            Some(snapshot) => restore_ledger(ledger_config, snapshot)?,
            None => ShardLedger::new(ledger_config),
        };
        let checkpoint_history_seq = ledger.history_next_seq();
        let checkpoint_audit_seq = ledger.audit_log_next_seq();
        let replica = Replica {
            shard,
            group,
            ledger,
            checkpoint_history_seq,
            checkpoint_audit_seq,
            driver: None,
            driver_config: config.driver.clone(),
            waiters: Waiters::default(),
            reads: PendingReads::default(),
            sms_sent_up_to: 0,
            retire_proposed_up_to: 0,
            prompts_expired_up_to: 0,
            proposals: Proposals::default(),
            removal: RemovalWatch::default(),
            planted_fault: config.planted_fault,
        };
        Ok((replica, writes))
    }

    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// The shard's replicated state as of the last applied entry (read-only: it changes only
    /// by applying committed entries).
    pub fn ledger(&self) -> &ShardLedger {
        &self.ledger
    }

    pub fn removal(&self) -> &RemovalWatch {
        &self.removal
    }

    pub fn removal_mut(&mut self) -> &mut RemovalWatch {
        &mut self.removal
    }

    /// The SMS records this leader has not handed to the sink yet.
    pub fn unsent_sms(&self) -> impl Iterator<Item = &ledger::SmsRecord> {
        self.ledger.sms_outbox_from(self.sms_sent_up_to)
    }

    /// Records up to `up_to_seq` were handed to the sink.
    pub fn sms_handed_over(&mut self, up_to_seq: u64) {
        self.sms_sent_up_to = up_to_seq + 1;
    }

    pub fn is_leader(&self) -> bool {
        self.group.is_leader()
    }

    /// Leads and has applied an entry of its own term: may answer requests and reads.
    pub fn is_serving(&self) -> bool {
        self.group.is_ready_leader()
    }

    /// The leader this replica knows of, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.group.leader()
    }

    fn not_leader(&self) -> ClientReply {
        ClientReply::NotLeader {
            shard: self.shard,
            leader: self.leader(),
        }
    }

    /// Proposes a ledger command stamped with this leader's clock. With a `tag` (the proposer
    /// finds its entry by it when it applies) the command is an entry of its own now; without,
    /// it queues for this loop's batch ([`Replica::flush_proposals`]). `Err` when this replica
    /// takes no proposals (not leading, or handing its leadership over).
    pub fn propose(
        &mut self,
        command: Command,
        tag: Option<u64>,
        now_ms: u64,
    ) -> Result<(), raft::Error> {
        if tag.is_none() {
            if !self.group.accepts_proposals() {
                return Err(raft::Error::ProposalDropped);
            }
            self.proposals.push(command);
            return Ok(());
        }
        let entry = ledger::Entry {
            timestamp_ms: now_ms,
            command,
        };
        self.propose_entry(&entry, tag)
    }

    fn propose_entry(
        &mut self,
        entry: &ledger::Entry,
        tag: Option<u64>,
    ) -> Result<(), raft::Error> {
        let data = bincode::serde::encode_to_vec(entry, bincode_config())
            .expect("encoding an entry into memory cannot fail");
        self.group.propose_tagged(data, tag)
    }

    /// Whether proposals wait for the next Ready pass.
    pub fn has_queued_proposals(&self) -> bool {
        !self.proposals.is_empty()
    }

    /// Proposes what this loop queued, stamped `now_ms`: one entry, or a few when more than
    /// a batch's bound queued. What raft-rs drops (leadership lost since) is counted and lost
    /// as any dropped proposal is.
    pub fn flush_proposals(&mut self, now_ms: u64) {
        if self.proposals.is_empty() {
            return;
        }
        if !self.group.accepts_proposals() {
            let dropped = self.proposals.clear();
            metrics::counter!("tuma_proposals_dropped_total").increment(dropped as u64);
            return;
        }
        for (entry, commands) in self.proposals.take_entries(now_ms) {
            metrics::histogram!("tuma_proposal_batch_commands").record(commands as f64);
            if self.propose_entry(&entry, None).is_err() {
                metrics::counter!("tuma_proposals_dropped_total").increment(commands as u64);
            }
        }
    }

    /// Proposes an admin command whose caller waits for its result.
    pub fn propose_for(
        &mut self,
        command: Command,
        tag: u64,
        waiter: Waiter,
        now_ms: u64,
    ) -> Option<(Waiter, ClientReply)> {
        match self.propose(command, Some(tag), now_ms) {
            Ok(()) => {
                self.waiters.wait_tag(tag, waiter);
                None
            }
            Err(_) => Some((waiter, self.not_leader())),
        }
    }

    /// Proposes a transfer whose caller waits for its final answer.
    pub fn propose_transfer(
        &mut self,
        request: TransferRequest,
        waiter: Waiter,
        now_ms: u64,
    ) -> Option<(Waiter, ClientReply)> {
        if self
            .propose(Command::Transfer(request.clone()), None, now_ms)
            .is_err()
        {
            return Some((waiter, self.not_leader()));
        }
        self.wait_transfer(request, waiter)
    }

    /// Waits for the final answer of a transfer already in flight.
    pub fn wait_transfer(
        &mut self,
        request: TransferRequest,
        waiter: Waiter,
    ) -> Option<(Waiter, ClientReply)> {
        self.waiters.wait_transfer(request, waiter).err().map(|w| {
            (
                w,
                ClientReply::Unavailable("too many retries waiting for this transfer".into()),
            )
        })
    }

    /// Starts a linearizable read: confirmed by a quorum (ReadIndex), answered once applied.
    pub fn read(
        &mut self,
        request: ClientRequest,
        waiter: Waiter,
    ) -> Option<(Waiter, ClientReply)> {
        match self.reads.register(request, waiter) {
            Ok(context) => {
                self.group.raw.read_index(context);
                None
            }
            Err(waiter) => Some((
                waiter,
                ClientReply::Unavailable("too many reads waiting".into()),
            )),
        }
    }

    /// Read indexes raft-rs confirmed in this Ready.
    pub fn confirm_reads(&mut self, states: &[ReadState]) {
        self.reads.confirm(states);
    }

    /// Answers the confirmed reads this replica has applied far enough for: client reads, and
    /// the inquiries its driver waited to answer (their protocol effects).
    pub fn answer_reads(&mut self, now_ms: u64) -> (Vec<(Waiter, super::reads::Answer)>, Effects) {
        let answers = self.reads.answer(&self.ledger, self.group.applied);
        let mut effects = Effects::default();
        if let Some(driver) = self.driver.as_mut() {
            for (id, from) in answers.inquiries {
                effects.extend(driver.answer_confirmed_inquiry(&self.ledger, &id, from, now_ms));
            }
        }
        (answers.clients, effects)
    }

    /// Protocol duties this replica's driver is pacing (0 unless it leads and serves).
    pub fn duties_paced(&self) -> usize {
        self.driver.as_ref().map_or(0, ShardDriver::paced)
    }

    /// Applies committed entries in order; answers waiters; runs the driver while serving.
    pub fn apply_entries(
        &mut self,
        entries: Vec<Entry>,
        now_ms: u64,
        mut observer: super::ready::Observer<'_>,
    ) -> ApplyOutput {
        let mut out = ApplyOutput::default();
        for entry in entries {
            self.group.note_applied(&entry);
            if self.group.apply_conf_entry(&entry) {
                if let Some(observer) = observer.as_deref_mut() {
                    let conf = self.group.log.conf_state();
                    let voters: Vec<u64> = conf
                        .voters
                        .iter()
                        .chain(&conf.voters_outgoing)
                        .copied()
                        .collect();
                    observer.configured(self.shard, entry.index, &voters);
                }
                continue;
            }
            if entry.data.is_empty() {
                continue;
            }
            let decoded: Result<(ledger::Entry, usize), _> =
                bincode::serde::decode_from_slice(&entry.data, bincode_config());
            let Ok((ledger_entry, _)) = decoded else {
                panic!(
                    "shard {} entry {} does not decode: the log is corrupt",
                    self.shard, entry.index
                );
            };
            let applied = self.ledger.apply(&ledger_entry);
            // A batch's commands, each with its outcome; a single command alone.
            let each: Vec<(&Command, &Applied)> = match (&ledger_entry.command, &applied) {
                (Command::Batch(commands), Applied::Batch(outcomes)) => {
                    commands.iter().zip(outcomes).collect()
                }
                (command, applied) => vec![(command, applied)],
            };
            metrics::counter!("tuma_raft_entries_applied_total").increment(1);
            metrics::counter!("tuma_ledger_commands_applied_total").increment(each.len() as u64);
            let rows = self.ledger.take_history();
            let audit_log = self.ledger.take_audit_log();
            if !rows.is_empty() || !audit_log.is_empty() {
                if self.driver.is_some() {
                    count_finished_transfers(&rows);
                }
                out.history.push(ShardRows {
                    shard: self.shard,
                    rows,
                    audit_log,
                });
            }
            if let Some(observer) = observer.as_deref_mut() {
                observer.applied(self.shard, entry.index, &entry.data, &self.ledger);
            }
            if let Some(waiter) = self
                .group
                .tag_of(&entry)
                .and_then(|tag| self.waiters.take_tag(tag))
            {
                out.replies.push((waiter, reply_for_command(&applied)));
            }
            for (command, applied) in each {
                self.answer_transfer_waiters(command, applied, &mut out.replies);
            }
            if let Some(driver) = self.driver.as_mut() {
                let effects = driver.on_applied(&self.ledger, &applied, now_ms);
                out.envelopes.extend(effects.send);
                for command in effects.propose {
                    let _ = self.propose(command, None, now_ms);
                }
            }
        }
        out
    }

    /// Answers the callers an applied entry resolves: the final answer of a transfer goes to
    /// the callers of that very request; a refusal of a proposed request to its own callers.
    fn answer_transfer_waiters(
        &mut self,
        command: &Command,
        applied: &Applied,
        out: &mut Vec<(Waiter, ClientReply)>,
    ) {
        match applied {
            Applied::TransferFinished(receipt) => {
                let (request, recorded) = match (self.ledger.outgoing(&receipt.id), command) {
                    (Some(record), _) => (record.request.clone(), true),
                    // Refused without a record: the applied request is the one answered.
                    (None, Command::Transfer(request)) => (request.clone(), false),
                    (None, _) => return,
                };
                self.waiters.finished(&request, receipt, recorded, out);
            }
            Applied::TransferPrepared(offer)
                if self.planted_fault == Some(EngineFault::AckBeforeDecide) =>
            {
                let premature = ledger::Receipt {
                    id: offer.id.clone(),
                    result: tuma_actors::ResultCode::Success,
                    txn_id: Some(offer.txn_id),
                    fee: tuma_actors::money::Money::ZERO,
                    balance: tuma_actors::money::Money::ZERO,
                    payee_name: None,
                };
                if let Some(record) = self.ledger.outgoing(&offer.id) {
                    let request = record.request.clone();
                    self.waiters.finished(&request, &premature, true, out);
                }
            }
            Applied::TransferRefused { result, .. } => {
                if let Command::Transfer(request) = command {
                    self.waiters
                        .answer_request(request, &ClientReply::Refused(*result), out);
                }
            }
            _ => {}
        }
    }

    /// The driver's periodic work (nothing unless serving), and the retirement of finished
    /// records older than the idempotency window and its grace (`retire_after_ms`).
    pub fn drive(&mut self, now_ms: u64, retire_after_ms: u64) -> Effects {
        let Some(driver) = self.driver.as_mut() else {
            return Effects::default();
        };
        let mut effects = driver.on_tick(&self.ledger, now_ms);
        let up_to_ms = now_ms.saturating_sub(retire_after_ms);
        let due = self
            .ledger
            .oldest_retirable_ms()
            .is_some_and(|oldest| oldest <= up_to_ms);
        // At most one retirement a second: each takes every record due by its time.
        if due && up_to_ms >= self.retire_proposed_up_to.saturating_add(RETIRE_EVERY_MS) {
            self.retire_proposed_up_to = up_to_ms;
            effects.propose.push(Command::Retire { up_to_ms });
        }
        // Prompts nobody answered close at their expiry, by this leader's clock.
        let expired = self
            .ledger
            .next_prompt_expiry_ms()
            .into_iter()
            .chain(self.ledger.next_payout_expiry_ms())
            .min()
            .is_some_and(|at| at <= now_ms);
        if expired
            && now_ms
                >= self
                    .prompts_expired_up_to
                    .saturating_add(EXPIRE_PROMPTS_EVERY_MS)
        {
            self.prompts_expired_up_to = now_ms;
            effects
                .propose
                .push(Command::ExpireRequests { up_to_ms: now_ms });
        }
        effects
    }

    /// A protocol message for this shard (ignored unless serving).
    pub fn on_protocol(&mut self, envelope: &Envelope, now_ms: u64) -> Effects {
        let Some(driver) = self.driver.as_mut() else {
            return Effects::default();
        };
        let mut effects = driver.on_message(&self.ledger, envelope, now_ms);
        // "No record here" is answered only after a ReadIndex round confirmed this leader.
        for (id, from) in std::mem::take(&mut effects.confirm_absent) {
            if matches!(
                self.planted_fault,
                Some(EngineFault::PresumeAbortEarly | EngineFault::PresumeAbortUnconfirmed)
            ) {
                effects.extend(driver.answer_confirmed_inquiry(&self.ledger, &id, from, now_ms));
            } else if let Some(context) = self.reads.register_inquiry(id, from) {
                self.group.raw.read_index(context);
            }
        }
        effects
    }

    /// Whether protocol messages for this shard are handled here.
    pub fn takes_protocol(&self) -> bool {
        self.driver.is_some()
    }

    /// Installs a snapshot sent by the leader; returns the durable operations that record it:
    /// the checkpoint (the ledger state alone) and the history it carried, which replaces
    /// whatever history this replica had.
    pub fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<Vec<WriteOp>, EngineError> {
        let parts = payload::split(&snapshot.data)?;
        let (rows, audit_log) = match parts.history {
            Some(bytes) => history::decode_rows(bytes)?,
            None => (Vec::new(), Vec::new()),
        };
        // The metadata and the checkpoint part alone: the history part can be most of the data.
        let mut checkpoint = Snapshot::default();
        checkpoint.set_metadata(snapshot.get_metadata().clone());
        checkpoint.data = parts.checkpoint.to_vec().into();
        let config = self.ledger.config().clone();
        self.ledger = restore_ledger(config, &checkpoint)?;
        self.checkpoint_history_seq = self.ledger.history_next_seq();
        self.checkpoint_audit_seq = self.ledger.audit_log_next_seq();
        Ok(vec![
            self.group.install_snapshot(checkpoint),
            WriteOp::SnapshotHistory {
                shard: self.shard,
                rows,
                audit_log,
            },
        ])
    }

    /// A checkpoint of the ledger when one is due (see [`RaftGroup::maybe_checkpoint`]).
    pub fn maybe_checkpoint(&mut self, every: Every, keep: u64) -> Option<WriteOp> {
        let ledger = &self.ledger;
        let op = self.group.maybe_checkpoint(every, keep, || {
            bincode::serde::encode_to_vec(ledger.state(), bincode_config())
                .expect("encoding the ledger into memory cannot fail")
        });
        if op.is_some() {
            self.checkpoint_history_seq = self.ledger.history_next_seq();
            self.checkpoint_audit_seq = self.ledger.audit_log_next_seq();
        }
        op
    }

    /// The history a snapshot of the stored checkpoint carries: every row numbered below the
    /// checkpoint's history sequence, encoded — read on a thread of its own when the store
    /// offers a reader (millions of rows take seconds: the engine must not stall on them, or
    /// its leadership lapses and the stream with it), else here.
    pub fn history_for_snapshot(
        &self,
        store: &dyn LogStore,
    ) -> Result<super::snapshots::History, crate::storage::StorageError> {
        use super::snapshots::History;
        let (shard, below, audit_below) = (
            self.shard,
            self.checkpoint_history_seq,
            self.checkpoint_audit_seq,
        );
        let Some(reader) = store.history_reader() else {
            let rows = store.history_export(shard, below)?;
            let audit_log = audit_log::export(store.history_kv(), shard, audit_below)?;
            return Ok(History::Ready(std::sync::Arc::new(history::encode_rows(
                &rows, &audit_log,
            ))));
        };
        let slot: super::snapshots::PendingHistory = Default::default();
        let filled = slot.clone();
        std::thread::Builder::new()
            .name(format!("history-export-{shard}"))
            .spawn(move || {
                let exported = history::export(reader.as_ref(), shard, below)
                    .and_then(|rows| {
                        let audit_log = audit_log::export(reader.as_ref(), shard, audit_below)?;
                        tracing::info!(
                            shard,
                            rows = rows.len(),
                            audit_records = audit_log.len(),
                            "history rows read for a snapshot"
                        );
                        Ok(std::sync::Arc::new(history::encode_rows(&rows, &audit_log)))
                    })
                    .map_err(|error| error.to_string());
                *filled.lock().unwrap_or_else(|p| p.into_inner()) = Some(exported);
            })
            .map_err(crate::storage::StorageError::Io)?;
        Ok(History::Pending(slot))
    }

    /// Follows leadership: the driver starts once this replica leads *and* has applied an
    /// entry of its term (a leader that answered protocol messages before that could presume
    /// abort for a transfer its log already committed); a deposed leader drops it and tells
    /// every waiting caller to retry at the new leader. Returns the waiters to answer when
    /// leadership was lost.
    pub fn follow_role(&mut self, may_lead: bool) -> Option<Vec<(Waiter, ClientReply)>> {
        let driving = match self.planted_fault {
            Some(EngineFault::PresumeAbortEarly) => self.is_leader(),
            _ => self.is_serving() && may_lead,
        };
        match (driving, self.driver.is_some()) {
            (true, false) => {
                tracing::info!(
                    shard = self.shard,
                    term = self.group.raw.raft.term,
                    "leads and serves"
                );
                self.driver = Some(ShardDriver::new(self.shard, self.driver_config.clone()));
            }
            (false, true) => self.driver = None,
            _ => {}
        }
        match self.group.role_changed() {
            Some(false) => {
                tracing::info!(shard = self.shard, leader = ?self.leader(), "lost leadership");
                Some(self.drain(ClientReply::Ambiguous(
                    "leadership changed before the answer".into(),
                )))
            }
            _ => None,
        }
    }

    /// Every waiting caller gets `reply` (reads get "not leader": they did nothing).
    pub fn drain(&mut self, reply: ClientReply) -> Vec<(Waiter, ClientReply)> {
        let not_leader = self.not_leader();
        let reads = self
            .reads
            .drain()
            .into_iter()
            .map(|w| (w, not_leader.clone()));
        self.waiters
            .drain()
            .into_iter()
            .map(|w| (w, reply.clone()))
            .chain(reads)
            .collect()
    }
}

/// Transfers that became final on this leader (a payer's history row each; refusals answered
/// without a record are `tuma_failed_attempts_total`'s), by kind and result.
fn count_finished_transfers(rows: &[ledger::HistoryRow]) {
    for row in rows.iter().filter(|r| r.side == ledger::HistorySide::Payer) {
        metrics::counter!(
            "tuma_transfers_finished_total",
            "kind" => row.kind.name(),
            "result" => row.result.name()
        )
        .increment(1);
    }
}

fn reply_for_command(applied: &Applied) -> ClientReply {
    match applied {
        Applied::Admin(code) => ClientReply::Done(*code),
        Applied::AdminMany(codes) => ClientReply::DoneMany(codes.clone()),
        Applied::TransferFinished(receipt) => ClientReply::Receipt(receipt.clone()),
        Applied::TransferRefused { result, .. } => ClientReply::Refused(*result),
        _ => ClientReply::Done(tuma_actors::ResultCode::Success),
    }
}

fn restore_ledger(config: LedgerConfig, snapshot: &Snapshot) -> Result<ShardLedger, EngineError> {
    let decoded: Result<(LedgerState, usize), _> =
        bincode::serde::decode_from_slice(&snapshot.data, bincode_config());
    let (state, _) = decoded.map_err(|e| {
        EngineError::Storage(crate::storage::StorageError::Corrupt {
            key: format!("checkpoint of shard {}", config.shard),
            reason: e.to_string(),
        })
    })?;
    Ok(ShardLedger::restore(config, state))
}

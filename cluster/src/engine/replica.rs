//! One shard replica on this node: its raft-rs group, its ledger, and (while it leads) its
//! protocol driver and the callers waiting on it.

use std::collections::HashMap;

use raft::prelude::{ConfState, Entry, EntryType, HardState, Snapshot};
use raft::{RawNode, StateRole};
use tuma_actors::ledger::{self, Applied, Command, LedgerConfig, LedgerState, ShardLedger};
use tuma_actors::protocol::{Envelope, ShardDriver};
use tuma_actors::transfer::TransferId;
use tuma_actors::ShardMap;

use super::request::{ClientReply, Waiter};
use super::{EngineConfig, EngineError};
use crate::slog_bridge::shard_logger;
use crate::storage::{DurableShard, ShardLog, WriteOp};
use crate::transport::NodeId;

/// What applying committed entries asks the engine to do.
#[derive(Default)]
pub(super) struct ApplyOutput {
    pub replies: Vec<(Waiter, ClientReply)>,
    pub envelopes: Vec<Envelope>,
}

impl ApplyOutput {
    pub fn extend(&mut self, other: ApplyOutput) {
        self.replies.extend(other.replies);
        self.envelopes.extend(other.envelopes);
    }
}

pub(super) struct Replica {
    pub shard: u32,
    node_id: NodeId,
    pub raw: RawNode<ShardLog>,
    pub log: ShardLog,
    pub ledger: ShardLedger,
    /// Present only while this replica leads.
    pub driver: Option<ShardDriver>,
    driver_config: tuma_actors::protocol::DriverConfig,
    /// Callers waiting for a transfer's final answer.
    pub transfer_waiters: HashMap<TransferId, Vec<Waiter>>,
    /// Callers waiting for an admin command, by proposal tag.
    pub tagged: HashMap<u64, Waiter>,
    pub applied: u64,
    pub checkpoint_index: u64,
    /// SMS records this leader already handed to the sink (volatile; a new leader may resend).
    pub sms_sent_up_to: u64,
    was_leader: bool,
    planted_fault: Option<super::EngineFault>,
    /// True when the replica has no durable state yet (its conf state must be written).
    pub fresh: bool,
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

impl Replica {
    pub fn open(
        config: &EngineConfig,
        map: ShardMap,
        shard: u32,
        voters: Vec<NodeId>,
        durable: Option<DurableShard>,
    ) -> Result<Replica, EngineError> {
        let ledger_config = LedgerConfig::new(shard, map, config.tariffs.clone());
        let fresh = durable.is_none();
        let (log, ledger, applied) = match durable {
            None => {
                let conf = ConfState {
                    voters,
                    ..Default::default()
                };
                (
                    ShardLog::restore(HardState::default(), conf, None, Vec::new()),
                    ShardLedger::new(ledger_config),
                    0,
                )
            }
            Some(durable) => {
                let (ledger, applied) = match &durable.snapshot {
                    Some(snapshot) => (
                        restore_ledger(ledger_config, snapshot)?,
                        snapshot.get_metadata().index,
                    ),
                    None => (ShardLedger::new(ledger_config), 0),
                };
                let mut conf = durable.conf_state;
                if conf.voters.is_empty() {
                    conf.voters = voters;
                }
                (
                    ShardLog::restore(durable.hard_state, conf, durable.snapshot, durable.entries),
                    ledger,
                    applied,
                )
            }
        };
        let raft_config = raft::Config {
            id: config.node_id,
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            applied,
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Default::default()
        };
        raft_config.validate()?;
        let raw = RawNode::new(
            &raft_config,
            log.clone(),
            &shard_logger(config.node_id, shard),
        )?;
        Ok(Replica {
            shard,
            node_id: config.node_id,
            raw,
            log,
            ledger,
            driver: None,
            driver_config: config.driver.clone(),
            transfer_waiters: HashMap::new(),
            tagged: HashMap::new(),
            applied,
            checkpoint_index: applied,
            sms_sent_up_to: 0,
            was_leader: false,
            planted_fault: config.planted_fault,
            fresh,
        })
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this replica knows of, if any.
    pub fn leader(&self) -> Option<NodeId> {
        let id = self.raw.raft.leader_id;
        (id != 0).then_some(id)
    }

    /// Has `node` replicated everything this leader holds?
    pub fn caught_up(&self, node: NodeId) -> bool {
        let last = self.raw.raft.raft_log.last_index();
        self.raw
            .raft
            .prs()
            .get(node)
            .is_some_and(|p| p.matched == last)
    }

    /// Proposes a ledger command stamped with this leader's clock. `tag` lets the proposer find
    /// its entry when it applies.
    pub fn propose(
        &mut self,
        command: Command,
        tag: Option<u64>,
        now_ms: u64,
    ) -> Result<(), raft::Error> {
        let entry = ledger::Entry {
            timestamp_ms: now_ms,
            command,
        };
        let data = bincode::serde::encode_to_vec(&entry, bincode_config())
            .expect("encoding an entry into memory cannot fail");
        let context = tag
            .map(|t| [self.node_id.to_be_bytes(), t.to_be_bytes()].concat())
            .unwrap_or_default();
        self.raw.propose(context, data)
    }

    fn tag_of(&self, entry: &Entry) -> Option<u64> {
        let ctx: &[u8] = entry.context.as_ref();
        if ctx.len() != 16 || ctx[..8] != self.node_id.to_be_bytes() {
            return None;
        }
        Some(u64::from_be_bytes(ctx[8..].try_into().ok()?))
    }

    /// Applies committed entries in order; answers waiters; runs the driver while leading.
    pub fn apply_entries(&mut self, entries: Vec<Entry>, now_ms: u64) -> ApplyOutput {
        let mut out = ApplyOutput::default();
        for entry in entries {
            self.applied = entry.index;
            if entry.data.is_empty() || entry.get_entry_type() != EntryType::EntryNormal {
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
            if let Some(waiter) = self.tag_of(&entry).and_then(|tag| self.tagged.remove(&tag)) {
                out.replies.push((waiter, reply_for_command(&applied)));
            }
            match &applied {
                Applied::TransferFinished(receipt) => {
                    for waiter in self
                        .transfer_waiters
                        .remove(&receipt.id)
                        .unwrap_or_default()
                    {
                        out.replies
                            .push((waiter, ClientReply::Receipt(receipt.clone())));
                    }
                }
                Applied::TransferPrepared(offer)
                    if self.planted_fault == Some(super::EngineFault::AckBeforeDecide) =>
                {
                    let premature = tuma_actors::ledger::Receipt {
                        id: offer.id.clone(),
                        result: tuma_actors::ResultCode::Success,
                        txn_id: Some(offer.txn_id),
                        fee: tuma_actors::money::Money::ZERO,
                        balance: tuma_actors::money::Money::ZERO,
                        payee_name: None,
                    };
                    for waiter in self.transfer_waiters.remove(&offer.id).unwrap_or_default() {
                        out.replies
                            .push((waiter, ClientReply::Receipt(premature.clone())));
                    }
                }
                Applied::TransferRefused { id, result } => {
                    for waiter in self.transfer_waiters.remove(id).unwrap_or_default() {
                        out.replies.push((waiter, ClientReply::Refused(*result)));
                    }
                }
                _ => {}
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

    /// Installs a snapshot sent by the leader; returns the durable operation that records it.
    pub fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<WriteOp, EngineError> {
        let config = self.ledger.config().clone();
        self.ledger = restore_ledger(config, snapshot)?;
        let (first, last) = self.log.bounds();
        self.log.apply_snapshot(snapshot);
        self.applied = snapshot.get_metadata().index;
        self.checkpoint_index = self.applied;
        tracing::info!(
            shard = self.shard,
            index = self.applied,
            "installed a snapshot from the leader"
        );
        metrics::counter!("tuma_raft_snapshots_installed_total").increment(1);
        Ok(WriteOp::Checkpoint {
            shard: self.shard,
            snapshot: snapshot.clone(),
            compact_from: first,
            compact_to: last.max(first),
        })
    }

    /// A checkpoint of the ledger at the applied index, compacting the log behind it, once
    /// enough entries have applied since the last one.
    pub fn maybe_checkpoint(&mut self, every: u64, keep: u64) -> Option<WriteOp> {
        if self.applied < self.checkpoint_index + every {
            return None;
        }
        let term = self.log.term_of(self.applied)?;
        let data = bincode::serde::encode_to_vec(self.ledger.state(), bincode_config())
            .expect("encoding the ledger into memory cannot fail");
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = self.applied;
        snapshot.mut_metadata().term = term;
        snapshot
            .mut_metadata()
            .set_conf_state(self.log.conf_state());
        snapshot.data = data.into();
        let (first, _) = self.log.bounds();
        let compact_to = self.applied.saturating_sub(keep);
        self.log.checkpoint(snapshot.clone(), compact_to);
        self.checkpoint_index = self.applied;
        metrics::counter!("tuma_raft_checkpoints_total").increment(1);
        Some(WriteOp::Checkpoint {
            shard: self.shard,
            snapshot,
            compact_from: first,
            compact_to: compact_to.max(first.saturating_sub(1)),
        })
    }

    /// Notices leadership changes: a new leader starts a driver; a deposed one drops it and
    /// tells every waiting caller to retry at the new leader. Returns the waiters to answer.
    pub fn on_role_change(&mut self) -> Option<Vec<(Waiter, ClientReply)>> {
        let leading = self.is_leader();
        if leading == self.was_leader {
            return None;
        }
        self.was_leader = leading;
        if leading {
            tracing::info!(
                shard = self.shard,
                term = self.raw.raft.term,
                "became leader"
            );
            self.driver = Some(ShardDriver::new(self.shard, self.driver_config.clone()));
            return Some(Vec::new());
        }
        tracing::info!(shard = self.shard, leader = ?self.leader(), "lost leadership");
        self.driver = None;
        let not_leader = ClientReply::NotLeader {
            shard: self.shard,
            leader: self.leader(),
        };
        let waiters = self
            .transfer_waiters
            .drain()
            .flat_map(|(_, w)| w)
            .chain(self.tagged.drain().map(|(_, w)| w))
            .map(|w| (w, not_leader.clone()))
            .collect();
        Some(waiters)
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

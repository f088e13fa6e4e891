//! One shard replica on this node: its raft-rs group, its ledger, and (while it leads) its
//! protocol driver and the callers waiting on it.

use std::collections::HashMap;

use raft::prelude::{Entry, Snapshot};
use tuma_actors::ledger::{self, Applied, Command, LedgerConfig, LedgerState, ShardLedger};
use tuma_actors::protocol::{Envelope, ShardDriver};
use tuma_actors::transfer::TransferId;
use tuma_actors::ShardMap;

use super::group::{GroupStart, RaftGroup};
use super::request::{ClientReply, Waiter};
use super::{EngineConfig, EngineError};
use crate::storage::WriteOp;
use crate::transport::NodeId;

/// What applying committed entries asks the engine to do.
#[derive(Default)]
pub(super) struct ApplyOutput {
    pub replies: Vec<(Waiter, ClientReply)>,
    pub envelopes: Vec<Envelope>,
    /// The cluster state (or the meta group's configuration) changed.
    pub meta_changed: bool,
}

impl ApplyOutput {
    pub fn extend(&mut self, other: ApplyOutput) {
        self.replies.extend(other.replies);
        self.envelopes.extend(other.envelopes);
        self.meta_changed |= other.meta_changed;
    }
}

pub(super) struct Replica {
    pub shard: u32,
    pub group: RaftGroup,
    pub ledger: ShardLedger,
    /// Present only while this replica leads.
    pub driver: Option<ShardDriver>,
    driver_config: tuma_actors::protocol::DriverConfig,
    /// Callers waiting for a transfer's final answer.
    pub transfer_waiters: HashMap<TransferId, Vec<Waiter>>,
    /// Callers waiting for an admin command, by proposal tag.
    pub tagged: HashMap<u64, Waiter>,
    /// SMS records this leader already handed to the sink (volatile; a new leader may resend).
    pub sms_sent_up_to: u64,
    planted_fault: Option<super::EngineFault>,
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

impl Replica {
    /// Opens a shard replica; returns it and the writes that make a bootstrap durable.
    pub fn open(
        config: &EngineConfig,
        map: ShardMap,
        shard: u32,
        start: GroupStart,
    ) -> Result<(Replica, Vec<WriteOp>), EngineError> {
        let ledger_config = LedgerConfig::new(shard, map, config.tariffs.clone());
        let (group, snapshot, writes) = RaftGroup::open(config, shard, start)?;
        let ledger = match &snapshot {
            Some(snapshot) => restore_ledger(ledger_config, snapshot)?,
            None => ShardLedger::new(ledger_config),
        };
        let replica = Replica {
            shard,
            group,
            ledger,
            driver: None,
            driver_config: config.driver.clone(),
            transfer_waiters: HashMap::new(),
            tagged: HashMap::new(),
            sms_sent_up_to: 0,
            planted_fault: config.planted_fault,
        };
        Ok((replica, writes))
    }

    pub fn is_leader(&self) -> bool {
        self.group.is_leader()
    }

    /// The leader this replica knows of, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.group.leader()
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
        self.group.propose_tagged(data, tag)
    }

    /// Applies committed entries in order; answers waiters; runs the driver while leading.
    pub fn apply_entries(&mut self, entries: Vec<Entry>, now_ms: u64) -> ApplyOutput {
        let mut out = ApplyOutput::default();
        for entry in entries {
            self.group.applied = entry.index;
            if self.group.apply_conf_entry(&entry) || entry.data.is_empty() {
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
            if let Some(waiter) = self
                .group
                .tag_of(&entry)
                .and_then(|tag| self.tagged.remove(&tag))
            {
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
        Ok(self.group.install_snapshot(snapshot))
    }

    /// A checkpoint of the ledger when one is due (see [`RaftGroup::maybe_checkpoint`]).
    pub fn maybe_checkpoint(&mut self, every: u64, keep: u64) -> Option<WriteOp> {
        let ledger = &self.ledger;
        self.group.maybe_checkpoint(every, keep, || {
            bincode::serde::encode_to_vec(ledger.state(), bincode_config())
                .expect("encoding the ledger into memory cannot fail")
        })
    }

    /// Notices leadership changes: a new leader starts a driver; a deposed one drops it and
    /// tells every waiting caller to retry at the new leader. Returns the waiters to answer.
    pub fn on_role_change(&mut self) -> Option<Vec<(Waiter, ClientReply)>> {
        let leading = self.group.role_changed()?;
        if leading {
            tracing::info!(
                shard = self.shard,
                term = self.group.raw.raft.term,
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

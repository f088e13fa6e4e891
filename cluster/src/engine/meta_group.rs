//! The meta group on this node: the Raft group every live member holds, whose state machine is
//! the [`ClusterMeta`] — members, placement, moves.

use std::collections::BTreeMap;

use raft::prelude::{Entry, Snapshot};
use serde::{Deserialize, Serialize};

use super::group::{Every, GroupStart, RaftGroup};
use super::replica::ApplyOutput;
use super::request::{ClientReply, Waiter};
use super::{EngineConfig, EngineError};
use crate::membership::{ClusterMeta, MetaCommand, META_GROUP};
use crate::storage::{StorageError, WriteOp};

/// A meta log entry: the command and the proposing leader's clock.
#[derive(Serialize, Deserialize)]
struct MetaEntry {
    timestamp_ms: u64,
    command: MetaCommand,
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes the meta state for a checkpoint.
pub(super) fn meta_data(meta: &ClusterMeta) -> Vec<u8> {
    bincode::serde::encode_to_vec(meta, bincode_config())
        .expect("encoding the cluster state into memory cannot fail")
}

fn restore_meta(snapshot: &Snapshot) -> Result<ClusterMeta, EngineError> {
    let decoded: Result<(ClusterMeta, usize), _> =
        bincode::serde::decode_from_slice(&snapshot.data, bincode_config());
    decoded.map(|(meta, _)| meta).map_err(|e| {
        EngineError::Storage(StorageError::Corrupt {
            key: "checkpoint of the meta group".into(),
            reason: e.to_string(),
        })
    })
}

pub(super) struct MetaGroup {
    pub group: RaftGroup,
    /// `None` on a joining node until the leader's snapshot arrives.
    pub meta: Option<ClusterMeta>,
    /// Callers waiting for a meta command, by proposal tag.
    pub tagged: BTreeMap<u64, Waiter>,
}

impl MetaGroup {
    pub fn open(
        config: &EngineConfig,
        start: GroupStart,
        incarnation: u64,
    ) -> Result<(MetaGroup, Vec<WriteOp>), EngineError> {
        let (group, snapshot, writes) = RaftGroup::open(config, META_GROUP, start, incarnation)?;
        let meta = snapshot.as_ref().map(restore_meta).transpose()?;
        let meta_group = MetaGroup {
            group,
            meta,
            tagged: BTreeMap::new(),
        };
        Ok((meta_group, writes))
    }

    pub fn propose(
        &mut self,
        command: MetaCommand,
        tag: Option<u64>,
        now_ms: u64,
    ) -> Result<(), raft::Error> {
        let entry = MetaEntry {
            timestamp_ms: now_ms,
            command,
        };
        let data = bincode::serde::encode_to_vec(&entry, bincode_config())
            .expect("encoding an entry into memory cannot fail");
        self.group.propose_tagged(data, tag)
    }

    pub fn apply_entries(&mut self, entries: Vec<Entry>) -> ApplyOutput {
        let mut out = ApplyOutput::default();
        for entry in entries {
            self.group.note_applied(&entry);
            if self.group.apply_conf_entry(&entry) {
                out.meta_changed = true;
                continue;
            }
            if entry.data.is_empty() {
                continue;
            }
            let decoded: Result<(MetaEntry, usize), _> =
                bincode::serde::decode_from_slice(&entry.data, bincode_config());
            let Ok((meta_entry, _)) = decoded else {
                panic!(
                    "meta entry {} does not decode: the log is corrupt",
                    entry.index
                );
            };
            let Some(meta) = self.meta.as_mut() else {
                panic!(
                    "meta entry {} arrived before the meta snapshot",
                    entry.index
                );
            };
            let outcome = meta.apply(&meta_entry.command, meta_entry.timestamp_ms);
            tracing::info!(index = entry.index, command = ?meta_entry.command, ?outcome, "cluster state changed");
            out.meta_changed = true;
            if let Some(waiter) = self
                .group
                .tag_of(&entry)
                .and_then(|tag| self.tagged.remove(&tag))
            {
                out.replies.push((waiter, ClientReply::Meta(outcome)));
            }
        }
        out
    }

    pub fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<WriteOp, EngineError> {
        self.meta = Some(restore_meta(snapshot)?);
        Ok(self.group.install_snapshot(snapshot.clone()))
    }

    pub fn maybe_checkpoint(&mut self, every: Every, keep: u64) -> Option<WriteOp> {
        let meta = self.meta.as_ref()?;
        self.group.maybe_checkpoint(every, keep, || meta_data(meta))
    }

    /// On losing leadership, callers waiting here retry at the new leader.
    pub fn on_role_change(&mut self) -> Vec<(Waiter, ClientReply)> {
        match self.group.role_changed() {
            Some(false) => {
                let lost =
                    ClientReply::Ambiguous("meta leadership changed before the answer".into());
                std::mem::take(&mut self.tagged)
                    .into_values()
                    .map(|w| (w, lost.clone()))
                    .collect()
            }
            Some(true) => {
                tracing::info!(term = self.group.raw.raft.term, "leads the meta group");
                Vec::new()
            }
            None => Vec::new(),
        }
    }
}

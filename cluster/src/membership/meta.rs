//! The cluster's own state, replicated through the meta Raft group: who the members are, where
//! every shard's replicas live, and which replica moves are under way. Pure: no clocks, no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::placement::Placement;
use crate::transport::NodeId;

/// The Raft group id of the meta group (shard ids are `0..shards`).
pub const META_GROUP: u32 = u32::MAX;

/// Where a member is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Carries replicas and leaderships.
    Active,
    /// Being emptied: its replicas move elsewhere, its leaderships go first.
    Draining,
    /// Holds nothing and is out of every Raft group; its id is never reused.
    Removed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub peer_addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    pub state: MemberState,
}

/// A shard moving from its placement to `target` (same size, preferred leader first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub target: Vec<NodeId>,
    /// Leader clock when the move was recorded (the entry's timestamp, not a clock read).
    pub started_ms: u64,
}

/// Longest document name.
pub const DOCUMENT_NAME_LEN_MAX: usize = 64;
/// Largest document body.
pub const DOCUMENT_BYTES_MAX: usize = 256 * 1024;
/// Most documents the cluster keeps.
pub const DOCUMENTS_MAX: usize = 64;

/// A named text the cluster keeps for the layers above it (a channel's menus…): replicated
/// through the meta group and versioned, never read by the cluster itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// 1 for the first body stored under the name, one more for each different body since.
    pub version: u64,
    pub body: String,
    /// Leader clock when this version was stored (the entry's timestamp).
    pub stored_ms: u64,
}

/// The replicated cluster state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMeta {
    pub shards: u32,
    pub replicas: usize,
    pub members: BTreeMap<NodeId, Member>,
    /// Each shard's replica set, preferred leader first.
    pub placement: Vec<Vec<NodeId>>,
    pub moves: BTreeMap<u32, Move>,
    /// Moves finished since the cluster was created.
    pub moves_done: u64,
    /// Named documents, by name (see [`Document`]).
    pub documents: BTreeMap<String, Document>,
}

/// A change to the cluster state, proposed through the meta group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// A node asks to join; `node_id` `None` lets the cluster pick the next free id.
    Join {
        node_id: Option<NodeId>,
        peer_addr: SocketAddr,
        http_addr: Option<SocketAddr>,
    },
    /// A member that holds its own data comes back at another address (a pod rescheduled, a
    /// machine renumbered): every member links to it there from now on. Only for a member not
    /// removed, and only to an address no other member has. (A *new* node asking for a taken
    /// id is refused by `Join`: it holds none of that member's data.)
    Readdress {
        node: NodeId,
        peer_addr: SocketAddr,
        http_addr: Option<SocketAddr>,
    },
    /// Start emptying a node (operator's `members remove`).
    Drain {
        node: NodeId,
    },
    /// A drained node holds nothing any more.
    MarkRemoved {
        node: NodeId,
    },
    StartMove {
        shard: u32,
        target: Vec<NodeId>,
    },
    /// The shard's leader reports its Raft configuration equals the move's target.
    FinishMove {
        shard: u32,
        replicas: Vec<NodeId>,
    },
    CancelMove {
        shard: u32,
    },
    /// The same replica set with another preferred leader (no data moves).
    SetLeaderOrder {
        shard: u32,
        replicas: Vec<NodeId>,
    },
    /// Store a document under `name` (a new version if the body differs from the stored one).
    /// With `expected_version` (0: no document yet), only over that version: a read-modify-write
    /// that lost a race is refused instead of undoing the other writer's change.
    PutDocument {
        name: String,
        body: String,
        expected_version: Option<u64>,
    },
}

/// What applying a command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaOutcome {
    Joined(NodeId),
    Done,
    /// The document's version after a `PutDocument`.
    DocumentVersion(u64),
    Refused(String),
}

impl ClusterMeta {
    /// The state every initial member bootstraps identically.
    pub fn initial(
        members: &BTreeMap<NodeId, SocketAddr>,
        shards: u32,
        replicas: usize,
    ) -> Option<ClusterMeta> {
        let placement = Placement::new(members.keys().copied().collect(), replicas, shards)?;
        Some(ClusterMeta {
            shards,
            replicas,
            members: members
                .iter()
                .map(|(&id, &peer_addr)| {
                    let member = Member {
                        peer_addr,
                        http_addr: None,
                        state: MemberState::Active,
                    };
                    (id, member)
                })
                .collect(),
            placement: (0..shards).map(|s| placement.replicas_of(s)).collect(),
            moves: BTreeMap::new(),
            moves_done: 0,
            documents: BTreeMap::new(),
        })
    }

    pub fn state_of(&self, node: NodeId) -> Option<MemberState> {
        self.members.get(&node).map(|m| m.state)
    }

    /// Members in a state, ascending.
    pub fn members_in(&self, state: MemberState) -> Vec<NodeId> {
        self.members
            .iter()
            .filter(|(_, m)| m.state == state)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Members still in the Raft groups (not removed), ascending.
    pub fn live_members(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .filter(|(_, m)| m.state != MemberState::Removed)
            .map(|(&id, _)| id)
            .collect()
    }

    /// The replica set a shard is heading to: the move's target, else its placement.
    pub fn desired(&self, shard: u32) -> &[NodeId] {
        match self.moves.get(&shard) {
            Some(m) => &m.target,
            None => self
                .placement
                .get(shard as usize)
                .map_or(&[][..], Vec::as_slice),
        }
    }

    /// May `node` hold a replica of `shard` (in its placement or a move's target)?
    pub fn may_hold(&self, shard: u32, node: NodeId) -> bool {
        self.placement
            .get(shard as usize)
            .is_some_and(|p| p.contains(&node))
            || self
                .moves
                .get(&shard)
                .is_some_and(|m| m.target.contains(&node))
    }

    /// Replicas each live member holds or is receiving.
    pub fn load(&self) -> BTreeMap<NodeId, usize> {
        let mut load: BTreeMap<NodeId, usize> =
            self.live_members().into_iter().map(|n| (n, 0)).collect();
        for shard in 0..self.shards {
            let mut holders: BTreeSet<NodeId> =
                self.placement[shard as usize].iter().copied().collect();
            if let Some(m) = self.moves.get(&shard) {
                holders.extend(m.target.iter().copied());
            }
            for node in holders {
                *load.entry(node).or_default() += 1;
            }
        }
        load
    }

    /// Applies one committed command at the entry's `timestamp_ms`.
    pub fn apply(&mut self, command: &MetaCommand, timestamp_ms: u64) -> MetaOutcome {
        let outcome = match command {
            MetaCommand::Join {
                node_id,
                peer_addr,
                http_addr,
            } => self.join(*node_id, *peer_addr, *http_addr),
            MetaCommand::Readdress {
                node,
                peer_addr,
                http_addr,
            } => self.readdress(*node, *peer_addr, *http_addr),
            MetaCommand::Drain { node } => self.drain(*node),
            MetaCommand::MarkRemoved { node } => self.mark_removed(*node),
            MetaCommand::StartMove { shard, target } => {
                self.start_move(*shard, target, timestamp_ms)
            }
            MetaCommand::FinishMove { shard, replicas } => self.finish_move(*shard, replicas),
            MetaCommand::CancelMove { shard } => match self.moves.remove(shard) {
                Some(_) => MetaOutcome::Done,
                None => MetaOutcome::Refused(format!("shard {shard} has no move")),
            },
            MetaCommand::SetLeaderOrder { shard, replicas } => {
                self.set_leader_order(*shard, replicas)
            }
            MetaCommand::PutDocument {
                name,
                body,
                expected_version,
            } => self.put_document(name, body, *expected_version, timestamp_ms),
        };
        debug_assert!(self.check().is_ok(), "{:?}", self.check());
        outcome
    }

    fn join(
        &mut self,
        node_id: Option<NodeId>,
        peer_addr: SocketAddr,
        http_addr: Option<SocketAddr>,
    ) -> MetaOutcome {
        let same_address = self
            .members
            .iter_mut()
            .find(|(_, m)| m.peer_addr == peer_addr && m.state != MemberState::Removed);
        if let Some((&existing, member)) = same_address {
            // A retried join answers the id already given; a member (an initial one, or one
            // restarted on another HTTP port) says where it serves HTTP this way too.
            return match node_id {
                Some(id) if id != existing => MetaOutcome::Refused(format!(
                    "peer address {peer_addr} already belongs to node {existing}"
                )),
                _ => {
                    if http_addr.is_some() {
                        member.http_addr = http_addr;
                    }
                    MetaOutcome::Joined(existing)
                }
            };
        }
        let id = match node_id {
            Some(0) => return MetaOutcome::Refused("node ids start at 1".into()),
            Some(id) if self.members.contains_key(&id) => {
                return MetaOutcome::Refused(format!(
                    "node id {id} is taken (ids of removed nodes are never reused)"
                ))
            }
            Some(id) => id,
            None => self.members.keys().max().copied().unwrap_or(0) + 1,
        };
        self.members.insert(
            id,
            Member {
                peer_addr,
                http_addr,
                state: MemberState::Active,
            },
        );
        MetaOutcome::Joined(id)
    }

    fn readdress(
        &mut self,
        node: NodeId,
        peer_addr: SocketAddr,
        http_addr: Option<SocketAddr>,
    ) -> MetaOutcome {
        let taken = self.members.iter().find(|(&id, m)| {
            id != node && m.peer_addr == peer_addr && m.state != MemberState::Removed
        });
        if let Some((&other, _)) = taken {
            return MetaOutcome::Refused(format!(
                "peer address {peer_addr} belongs to node {other}"
            ));
        }
        match self.members.get_mut(&node) {
            Some(member) if member.state != MemberState::Removed => {
                member.peer_addr = peer_addr;
                if http_addr.is_some() {
                    member.http_addr = http_addr;
                }
                MetaOutcome::Joined(node)
            }
            Some(_) => MetaOutcome::Refused(format!(
                "node {node} was removed (ids of removed nodes are never reused)"
            )),
            None => MetaOutcome::Refused(format!("node {node} is not a member")),
        }
    }

    fn put_document(
        &mut self,
        name: &str,
        body: &str,
        expected_version: Option<u64>,
        timestamp_ms: u64,
    ) -> MetaOutcome {
        if name.is_empty()
            || name.len() > DOCUMENT_NAME_LEN_MAX
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        {
            return MetaOutcome::Refused(format!(
                "a document name is 1 to {DOCUMENT_NAME_LEN_MAX} characters of A-Z a-z 0-9 - _ . /"
            ));
        }
        if body.len() > DOCUMENT_BYTES_MAX {
            return MetaOutcome::Refused(format!(
                "document {name} has {} bytes; at most {DOCUMENT_BYTES_MAX}",
                body.len()
            ));
        }
        let room = self.documents.len() < DOCUMENTS_MAX;
        let current = self.documents.get(name).map_or(0, |d| d.version);
        let same_body = self.documents.get(name).is_some_and(|d| d.body == body);
        if expected_version.is_some_and(|v| v != current) && !same_body {
            return MetaOutcome::Refused(format!(
                "document {name} is at version {current}, not {}: read it again",
                expected_version.unwrap_or_default()
            ));
        }
        match self.documents.get_mut(name) {
            // The same body again (a retried put) is no new version.
            Some(stored) if stored.body == body => MetaOutcome::DocumentVersion(stored.version),
            Some(stored) => {
                stored.version += 1;
                stored.body = body.to_string();
                stored.stored_ms = timestamp_ms;
                MetaOutcome::DocumentVersion(stored.version)
            }
            None if !room => MetaOutcome::Refused(format!(
                "the cluster keeps at most {DOCUMENTS_MAX} documents"
            )),
            None => {
                let document = Document {
                    version: 1,
                    body: body.to_string(),
                    stored_ms: timestamp_ms,
                };
                self.documents.insert(name.to_string(), document);
                MetaOutcome::DocumentVersion(1)
            }
        }
    }

    fn drain(&mut self, node: NodeId) -> MetaOutcome {
        match self.state_of(node) {
            None => MetaOutcome::Refused(format!("node {node} is not a member")),
            Some(MemberState::Draining) => MetaOutcome::Done,
            Some(MemberState::Removed) => MetaOutcome::Refused(format!("node {node} is removed")),
            Some(MemberState::Active) => {
                let remaining = self.members_in(MemberState::Active).len() - 1;
                if remaining < self.replicas {
                    return MetaOutcome::Refused(format!(
                        "removing node {node} would leave {remaining} active members for {} replicas per shard; add a node first",
                        self.replicas
                    ));
                }
                self.members.get_mut(&node).expect("member").state = MemberState::Draining;
                MetaOutcome::Done
            }
        }
    }

    fn mark_removed(&mut self, node: NodeId) -> MetaOutcome {
        if self.state_of(node) != Some(MemberState::Draining) {
            return MetaOutcome::Refused(format!("node {node} is not draining"));
        }
        if (0..self.shards).any(|s| self.may_hold(s, node)) {
            return MetaOutcome::Refused(format!("node {node} still holds replicas"));
        }
        self.members.get_mut(&node).expect("member").state = MemberState::Removed;
        MetaOutcome::Done
    }

    fn start_move(&mut self, shard: u32, target: &[NodeId], timestamp_ms: u64) -> MetaOutcome {
        if shard >= self.shards {
            return MetaOutcome::Refused(format!("no shard {shard}"));
        }
        if self.moves.contains_key(&shard) {
            return MetaOutcome::Refused(format!("shard {shard} is already moving"));
        }
        let distinct: BTreeSet<NodeId> = target.iter().copied().collect();
        if target.len() != self.replicas || distinct.len() != target.len() {
            return MetaOutcome::Refused(format!(
                "a target needs {} distinct nodes",
                self.replicas
            ));
        }
        if let Some(bad) = target
            .iter()
            .find(|n| self.state_of(**n) != Some(MemberState::Active))
        {
            return MetaOutcome::Refused(format!("node {bad} is not an active member"));
        }
        self.moves.insert(
            shard,
            Move {
                target: target.to_vec(),
                started_ms: timestamp_ms,
            },
        );
        MetaOutcome::Done
    }

    fn finish_move(&mut self, shard: u32, replicas: &[NodeId]) -> MetaOutcome {
        let Some(m) = self.moves.get(&shard) else {
            return MetaOutcome::Refused(format!("shard {shard} has no move"));
        };
        if !same_set(&m.target, replicas) {
            return MetaOutcome::Refused(format!(
                "shard {shard} reached {replicas:?}, not its target {:?}",
                m.target
            ));
        }
        let target = m.target.clone();
        self.placement[shard as usize] = target;
        self.moves.remove(&shard);
        self.moves_done += 1;
        MetaOutcome::Done
    }

    fn set_leader_order(&mut self, shard: u32, replicas: &[NodeId]) -> MetaOutcome {
        if shard >= self.shards || self.moves.contains_key(&shard) {
            return MetaOutcome::Refused(format!("shard {shard} is missing or moving"));
        }
        if !same_set(&self.placement[shard as usize], replicas) {
            return MetaOutcome::Refused(format!(
                "{replicas:?} is not shard {shard}'s replica set"
            ));
        }
        self.placement[shard as usize] = replicas.to_vec();
        MetaOutcome::Done
    }

    /// The invariants: every shard has `replicas` distinct known replicas; moves name shards
    /// that exist; removed members hold nothing.
    pub fn check(&self) -> Result<(), String> {
        if self.placement.len() != self.shards as usize {
            return Err("placement does not cover every shard".into());
        }
        for (shard, replicas) in self.placement.iter().enumerate() {
            let distinct: BTreeSet<_> = replicas.iter().collect();
            if replicas.len() != self.replicas || distinct.len() != replicas.len() {
                return Err(format!("shard {shard} has replicas {replicas:?}"));
            }
            if let Some(n) = replicas
                .iter()
                .find(|n| matches!(self.state_of(**n), None | Some(MemberState::Removed)))
            {
                return Err(format!("shard {shard} is placed on non-member {n}"));
            }
        }
        if let Some(s) = self.moves.keys().find(|s| **s >= self.shards) {
            return Err(format!("a move names shard {s}"));
        }
        Ok(())
    }
}

/// Do two lists hold the same nodes?
pub fn same_set(a: &[NodeId], b: &[NodeId]) -> bool {
    let a: BTreeSet<_> = a.iter().collect();
    let b: BTreeSet<_> = b.iter().collect();
    a == b
}

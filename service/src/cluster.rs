//! The cluster as a whole: the audit over every shard, this node's status, and changes to the
//! membership (joins, drains), and the documents the cluster keeps for the channels.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tuma_actors::ledger::ShardAudit;
use tuma_actors::money::Money;
use tuma_cluster::engine::{ClientReply, ClientRequest, NodeStatus};
use tuma_cluster::membership::{ClusterMeta, Document, MetaCommand, MetaOutcome};
use tuma_cluster::transport::NodeId;

use crate::{Service, ServiceError};

/// Attempts at a document change that keeps meeting another writer's.
const DOCUMENT_WRITE_ATTEMPTS: usize = 5;

/// Audits and cluster changes give up after this long.
const CLUSTER_DEADLINE: Duration = Duration::from_secs(15);

/// Every shard's audit, as each shard's leader holds it now, and their sums.
#[derive(Clone, Debug)]
pub struct Audit {
    pub shards: Vec<ShardAudit>,
    pub totals: AuditTotals,
}

/// Sums over every shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditTotals {
    /// Σ posted balances of every account, system ones included: always zero.
    pub balance_sum: Money,
    /// Σ clearing balances: zero once no transfer is in flight.
    pub clearing_sum: Money,
    /// E-money issued (the issuers' rows, negated).
    pub e_money_issued: Money,
    pub fees: Money,
    pub commissions: Money,
    pub transfers_in_flight: usize,
    pub accounts: usize,
}

impl AuditTotals {
    pub fn of(shards: &[ShardAudit]) -> AuditTotals {
        let sum = |f: &dyn Fn(&ShardAudit) -> Money| {
            Money::from_cents(shards.iter().map(|a| f(a).cents()).sum())
        };
        AuditTotals {
            balance_sum: sum(&|a| a.balance_sum),
            clearing_sum: sum(&|a| a.clearing),
            e_money_issued: Money::from_cents(-sum(&|a| a.issuer).cents()),
            fees: sum(&|a| a.fees),
            commissions: sum(&|a| a.commissions),
            transfers_in_flight: shards
                .iter()
                .map(|a| a.prepared + a.accepted + a.outbox)
                .sum(),
            accounts: shards.iter().map(|a| a.accounts).sum(),
        }
    }

    /// The books balance: nothing created or lost, and (with nothing in flight) nothing
    /// stuck in clearing.
    pub fn balanced(&self) -> bool {
        self.balance_sum.cents() == 0
            && (self.transfers_in_flight > 0 || self.clearing_sum.cents() == 0)
    }
}

impl Service {
    /// Every shard's audit, asked of every shard's leader at once.
    pub async fn audit(&self) -> Result<Audit, ServiceError> {
        let deadline = Instant::now() + CLUSTER_DEADLINE;
        let replies = futures::future::join_all(
            (0..self.shard_count())
                .map(|shard| self.calls.call(ClientRequest::Audit { shard }, deadline)),
        )
        .await;
        let mut shards = Vec::new();
        for (shard, (reply, _)) in replies.into_iter().enumerate() {
            match reply {
                ClientReply::Audit(audit) => shards.push(*audit),
                other => {
                    return Err(ServiceError::no_answer(
                        &format!("shard {shard} did not answer"),
                        &other,
                    ))
                }
            }
        }
        let totals = AuditTotals::of(&shards);
        Ok(Audit { shards, totals })
    }

    /// This node's view: what it leads, its clock, the cluster state it applied.
    pub async fn status(&self) -> Result<NodeStatus, ServiceError> {
        self.handle()
            .status()
            .await
            .ok_or_else(|| ServiceError::Unavailable("engine not answering".into()))
    }

    /// The cluster state (members, placement, moves) as this node applied it.
    pub async fn cluster_state(&self) -> Result<ClusterMeta, ServiceError> {
        self.status().await?.cluster.ok_or_else(|| {
            ServiceError::Unavailable("this node has not received the cluster state yet".into())
        })
    }

    /// Records a node in the cluster state; answers its id (the next free one when `node_id`
    /// is `None`). Joining again with the same peer address answers the same id.
    pub async fn join(
        &self,
        node_id: Option<NodeId>,
        peer_addr: SocketAddr,
        http_addr: Option<SocketAddr>,
    ) -> Result<NodeId, ServiceError> {
        let command = MetaCommand::Join {
            node_id,
            peer_addr,
            http_addr,
        };
        joined_id(self.change_cluster(command).await?)
    }

    /// Records where a member that holds its own data serves now (peer and HTTP addresses):
    /// a member restarted at another address (see `MetaCommand::Readdress`).
    pub async fn readdress(
        &self,
        node: NodeId,
        peer_addr: SocketAddr,
        http_addr: Option<SocketAddr>,
    ) -> Result<NodeId, ServiceError> {
        let command = MetaCommand::Readdress {
            node,
            peer_addr,
            http_addr,
        };
        joined_id(self.change_cluster(command).await?)
    }

    /// Drains a node: its leaderships, then its replicas move to other members; once it
    /// holds nothing it is marked removed.
    pub async fn drain(&self, node: NodeId) -> Result<(), ServiceError> {
        self.change_cluster(MetaCommand::Drain { node }).await?;
        Ok(())
    }

    /// Stores a document for the layers above the cluster (menus…), replicated through the
    /// meta group; answers its version (unchanged when the body is the one stored).
    pub async fn put_document(&self, name: &str, body: String) -> Result<u64, ServiceError> {
        self.put_document_over(name, body, None).await
    }

    /// As [`Service::put_document`], only over version `expected_version` (0: none yet);
    /// `Conflict` when another writer got there first.
    pub async fn put_document_over(
        &self,
        name: &str,
        body: String,
        expected_version: Option<u64>,
    ) -> Result<u64, ServiceError> {
        let command = MetaCommand::PutDocument {
            name: name.to_string(),
            body,
            expected_version,
        };
        match self.change_cluster(command).await? {
            MetaOutcome::DocumentVersion(version) => Ok(version),
            other => Err(ServiceError::Unavailable(format!(
                "the document was not stored: {other:?}"
            ))),
        }
    }

    /// Every document as this node applied the cluster state (may lag the meta leader briefly).
    pub async fn documents(&self) -> Result<BTreeMap<String, Document>, ServiceError> {
        Ok(self.cluster_state().await?.documents)
    }

    /// JSON document `name` as this node applied the cluster state (an absent one reads as
    /// `T::default()`), with its version (0 when absent).
    pub(crate) async fn read_json_document<T: DeserializeOwned + Default>(
        &self,
        name: &str,
    ) -> Result<(T, u64), ServiceError> {
        match self.documents().await?.get(name) {
            None => Ok((T::default(), 0)),
            Some(document) => serde_json::from_str(&document.body)
                .map(|value| (value, document.version))
                .map_err(|e| ServiceError::Unavailable(format!("document {name} unreadable: {e}"))),
        }
    }

    /// Applies `change` to JSON document `name` over the version read, and again (a few times)
    /// when another writer came first; `refusal` says what a refused change means.
    pub(crate) async fn change_json_document<T, E>(
        &self,
        name: &str,
        mut change: impl FnMut(&mut T) -> Result<(), E>,
        refusal: impl Fn(E) -> ServiceError,
    ) -> Result<(), ServiceError>
    where
        T: Serialize + DeserializeOwned + Default,
    {
        for _ in 0..DOCUMENT_WRITE_ATTEMPTS {
            let (mut value, version) = self.read_json_document::<T>(name).await?;
            change(&mut value).map_err(&refusal)?;
            let body = serde_json::to_string(&value).expect("a document serializes");
            match self.put_document_over(name, body, Some(version)).await {
                Ok(_) => return Ok(()),
                Err(ServiceError::Conflict(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(ServiceError::Unavailable(format!(
            "document {name} kept changing under this change; try again"
        )))
    }

    async fn change_cluster(&self, command: MetaCommand) -> Result<MetaOutcome, ServiceError> {
        let deadline = Instant::now() + CLUSTER_DEADLINE;
        match self
            .calls
            .call(ClientRequest::Meta { command }, deadline)
            .await
            .0
        {
            ClientReply::Meta(MetaOutcome::Refused(reason)) => Err(ServiceError::Conflict(reason)),
            ClientReply::Meta(outcome) => Ok(outcome),
            other => Err(ServiceError::no_answer(
                "the cluster did not record the change",
                &other,
            )),
        }
    }
}

/// The member id a join or readdress answered.
fn joined_id(outcome: MetaOutcome) -> Result<NodeId, ServiceError> {
    match outcome {
        MetaOutcome::Joined(id) => Ok(id),
        MetaOutcome::Done | MetaOutcome::DocumentVersion(_) => Err(ServiceError::Unavailable(
            "the cluster answered without a member id".into(),
        )),
        MetaOutcome::Refused(why) => Err(ServiceError::Conflict(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(balance_sum: i64, clearing: i64, prepared: usize) -> ShardAudit {
        ShardAudit {
            balance_sum: Money::from_cents(balance_sum),
            clearing: Money::from_cents(clearing),
            prepared,
            ..ShardAudit::default()
        }
    }

    #[test]
    fn the_books_balance_only_when_nothing_was_created_and_clearing_is_explained() {
        let balanced = AuditTotals::of(&[shard(0, 500, 0), shard(0, -500, 0)]);
        assert!(balanced.balanced());
        let created = AuditTotals::of(&[shard(100, 0, 0), shard(0, 0, 0)]);
        assert!(!created.balanced(), "money appeared");
        let stuck = AuditTotals::of(&[shard(0, 500, 0), shard(0, 0, 0)]);
        assert!(
            !stuck.balanced(),
            "clearing holds money with nothing in flight"
        );
        let in_flight = AuditTotals::of(&[shard(0, 500, 1), shard(0, 0, 0)]);
        assert!(
            in_flight.balanced(),
            "a transfer in flight explains clearing"
        );
    }
}

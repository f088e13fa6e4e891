//! `tuma node --join URL`: asks a member to record this node in the cluster state, and learns
//! its id, the cluster's shape and the members' peer addresses.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;
use tuma_cluster::storage::ClusterIdentity;

use crate::config::NodeConfig;

/// How long a starting node keeps trying to reach the member it joins through.
const JOIN_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct Joined {
    node_id: u64,
    shards: u32,
    replicas: usize,
    members: BTreeMap<u64, SocketAddr>,
}

/// Joins through `url` and fills in `config`. A node that joined before (its data directory
/// knows its id) joins again with the same id and address, which the cluster answers
/// idempotently; if no member can be reached it starts from what its data directory knows.
pub async fn join(
    url: &str,
    config: &mut NodeConfig,
    known: Option<ClusterIdentity>,
) -> anyhow::Result<()> {
    if let Some(known) = &known {
        if !known.members.is_empty() {
            bail!(
                "{} belongs to initial member {} of a cluster; start it with --members, not --join",
                config.data.display(),
                known.node_id
            );
        }
        if config.id != 0 && config.id != known.node_id {
            bail!(
                "{} belongs to node {}, not node {}",
                config.data.display(),
                known.node_id,
                config.id
            );
        }
        config.id = known.node_id;
    }
    match ask(url, config, known.is_some()).await {
        Ok(joined) => {
            if let Some(known) = &known {
                if known.node_id != joined.node_id
                    || known.shards != joined.shards
                    || known.replicas as usize != joined.replicas
                {
                    bail!(
                        "the cluster at {url} is not the one {} belongs to",
                        config.data.display()
                    );
                }
            }
            tracing::info!(node = joined.node_id, %url, members = joined.members.len(), "joined the cluster");
            config.id = joined.node_id;
            config.shards = joined.shards;
            config.replicas = joined.replicas;
            config.members = joined.members;
            Ok(())
        }
        Err(JoinError::Refused(reason)) => bail!("the cluster refused to add this node: {reason}"),
        Err(JoinError::Unreachable(error)) => match known {
            Some(known) => {
                tracing::warn!(%error, "cannot reach {url}; starting from the cluster state on disk");
                config.shards = known.shards;
                config.replicas = known.replicas as usize;
                config.members = BTreeMap::new();
                Ok(())
            }
            None => Err(error.context(format!("joining through {url}"))),
        },
    }
}

enum JoinError {
    Refused(String),
    Unreachable(anyhow::Error),
}

async fn ask(url: &str, config: &NodeConfig, returning: bool) -> Result<Joined, JoinError> {
    let client = crate::tls::client(config.tls_ca.as_deref(), Duration::from_secs(20))
        .map_err(JoinError::Unreachable)?;
    let body = serde_json::json!({
        "peer_addr": config.advertise_peer.to_string(),
        "http_addr": config.listen_http.to_string(),
        "node_id": (config.id != 0).then_some(config.id),
        // It holds its data: it may come back at another address.
        "returning": returning,
    });
    let endpoint = format!("{}/admin/v1/members", url.trim_end_matches('/'));
    let give_up = Instant::now() + JOIN_PATIENCE;
    loop {
        let sent = client
            .post(&endpoint)
            .bearer_auth(&config.admin_token)
            .json(&body)
            .send()
            .await;
        let error = match sent {
            Ok(response) if response.status().is_success() => {
                return response
                    .json::<Joined>()
                    .await
                    .context("reading the join answer")
                    .map_err(JoinError::Unreachable)
            }
            Ok(response) if response.status().is_client_error() => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                return Err(JoinError::Refused(format!("HTTP {status}: {text}")));
            }
            Ok(response) => anyhow::anyhow!("HTTP {}", response.status()),
            Err(error) => anyhow::Error::from(error),
        };
        if Instant::now() >= give_up {
            return Err(JoinError::Unreachable(error));
        }
        tracing::info!(%error, "joining: retrying");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

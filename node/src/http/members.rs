//! `/admin/v1/members`: nodes join, operators drain and remove them, everyone sees the cluster
//! state (members, placement, moves).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tuma_cluster::engine::NodeStatus;

use super::access::{authorize, Permission};
use super::error::ApiError;
use super::ApiState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// The joining node's peer address, as other members reach it.
    peer_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    /// Requested id; the cluster picks the next free one when absent.
    node_id: Option<u64>,
    /// The node holds `node_id`'s data and comes back, perhaps at another address.
    #[serde(default)]
    returning: bool,
}

/// `POST /admin/v1/members`: records a node in the cluster state. Answers its id, the cluster's
/// shape and every member's peer address. Joining again with the same peer address answers the
/// same id.
pub async fn join(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<JoinBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::Members)?;
    let Json(body) = body?;
    if body.peer_addr.ip().is_unspecified() || body.peer_addr.port() == 0 {
        return Err(ApiError::field(
            "peer_addr",
            "must be an address other members can reach",
        ));
    }
    let node_id = match (body.returning, body.node_id) {
        (true, Some(id)) => {
            state
                .service
                .readdress(id, body.peer_addr, body.http_addr)
                .await?
        }
        (true, None) => {
            return Err(ApiError::field(
                "node_id",
                "a returning node names the id whose data it holds",
            ))
        }
        (false, id) => {
            state
                .service
                .join(id, body.peer_addr, body.http_addr)
                .await?
        }
    };
    let cluster = state.service.cluster_state().await?;
    let mut members: BTreeMap<String, String> = cluster
        .members
        .iter()
        .filter(|(_, m)| m.state != tuma_cluster::membership::MemberState::Removed)
        .map(|(id, m)| (id.to_string(), m.peer_addr.to_string()))
        .collect();
    members.insert(node_id.to_string(), body.peer_addr.to_string());
    Ok(Json(json!({
        "node_id": node_id,
        "shards": cluster.shards,
        "replicas": cluster.replicas,
        "members": members,
    })))
}

/// `DELETE /admin/v1/members/{id}`: drains a node — its leaderships go first, then its
/// replicas move to other members; once it holds nothing it is marked removed. Works for a
/// dead node too: its shards are re-replicated from the surviving replicas.
pub async fn remove(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(node): Path<u64>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::Members)?;
    state.service.drain(node).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "node": node, "state": "draining" })),
    ))
}

/// `GET /admin/v1/members`: the cluster state as this node applied it.
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ReadCluster)?;
    let status = state.service.status().await?;
    Ok(Json(cluster_json(&status)))
}

/// Members (state, replicas held, preferred leaderships), moves under way, and what this
/// node knows of the meta group.
pub fn cluster_json(status: &NodeStatus) -> Value {
    let Some(meta) = status.cluster.as_ref() else {
        return json!({ "members": [], "moves": [], "meta_leader": status.meta_leader });
    };
    let members: Vec<Value> = meta
        .members
        .iter()
        .map(|(id, m)| {
            json!({
                "id": id,
                "peer_addr": m.peer_addr.to_string(),
                "http_addr": m.http_addr.map(|a| a.to_string()),
                "state": m.state,
                "replicas": meta.placement.iter().filter(|p| p.contains(id)).count(),
                "preferred_leader_of": meta.placement.iter().filter(|p| p.first() == Some(id)).count(),
            })
        })
        .collect();
    let moves: Vec<Value> = meta
        .moves
        .iter()
        .map(|(shard, m)| {
            json!({
                "shard": shard,
                "from": meta.placement[*shard as usize],
                "to": m.target,
                "started_ms": m.started_ms,
            })
        })
        .collect();
    json!({
        "members": members,
        "replicas_per_shard": meta.replicas,
        "placement": meta.placement,
        "moves": moves,
        "moves_done": meta.moves_done,
        "meta_leader": status.meta_leader,
    })
}

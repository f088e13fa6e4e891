//! `/admin/v1/sms?msisdn=`: every text queued for or sent to a phone, gathered from every
//! member (a shard's texts are sent by the node that led it at the time) with the latest
//! delivery report of each, wherever the gateway delivered it.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tuma_actors::msisdn::Msisdn;
use tuma_channels::sms::TextView;

use super::access::{authorize, Permission};
use super::error::ApiError;
use super::ApiState;

/// How long another member may take to answer.
/// Most references one report lookup names.
const REFS_MAX: usize = 500;

#[derive(Deserialize)]
pub struct TextsQuery {
    msisdn: String,
    /// `node`: this node's texts only (what members ask each other).
    scope: Option<String>,
}

pub async fn texts(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<TextsQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ReadCluster)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let msisdn =
        Msisdn::parse(&query.msisdn).map_err(|e| ApiError::field("msisdn", e.to_string()))?;
    let local = state
        .sms
        .texts_to(msisdn.as_str())
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    if query.scope.as_deref() == Some("node") {
        return Ok(Json(json!({ "texts": local })));
    }
    let others = other_members(&state).await;
    let client = &state.member_client;
    let mut texts: Vec<TextView> = local;
    let mut unreachable = Vec::new();
    for (id, base) in &others {
        let url = format!("{base}/admin/v1/sms?msisdn={}&scope=node", msisdn.as_str());
        match fetch(client, &url, state.access.bootstrap_token()).await {
            Some(body) => texts.extend(
                serde_json::from_value::<Vec<TextView>>(body["texts"].clone()).unwrap_or_default(),
            ),
            None => unreachable.push(*id),
        }
    }
    let mut texts = merge(texts);
    // Reports the gateway delivered to another node than the sender.
    let waiting: Vec<String> = texts
        .iter()
        .filter(|t| t.status == "accepted")
        .flat_map(|t| [Some(t.id.clone()), t.gateway_ref.clone()])
        .flatten()
        .take(REFS_MAX)
        .collect();
    if !waiting.is_empty() {
        let mut reports: BTreeMap<String, String> = BTreeMap::new();
        for reference in &waiting {
            if let Some(report) = state.sms.report_for(reference) {
                reports.insert(reference.clone(), report.status);
            }
        }
        for (_, base) in &others {
            let url = format!("{base}/admin/v1/sms/reports?refs={}", waiting.join(","));
            if let Some(body) = fetch(client, &url, state.access.bootstrap_token()).await {
                for (reference, status) in body["reports"].as_object().into_iter().flatten() {
                    if let Some(status) = status.as_str() {
                        reports.insert(reference.clone(), status.to_string());
                    }
                }
            }
        }
        for text in texts.iter_mut().filter(|t| t.status == "accepted") {
            let found = [Some(&text.id), text.gateway_ref.as_ref()]
                .into_iter()
                .flatten()
                .find_map(|r| reports.get(r));
            if let Some(status) = found {
                text.status = status.clone();
            }
        }
    }
    Ok(Json(json!({
        "msisdn": msisdn.as_str(),
        "gateway": state.sms.gateway().name(),
        "texts": texts,
        "unreachable_nodes": unreachable,
    })))
}

#[derive(Deserialize)]
pub struct ReportsQuery {
    refs: String,
}

/// `GET /admin/v1/sms/reports?refs=a,b`: the delivery reports this node received for them.
pub async fn reports(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<ReportsQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ReadCluster)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let reports: serde_json::Map<String, Value> = query
        .refs
        .split(',')
        .take(REFS_MAX)
        .filter_map(|r| {
            let report = state.sms.report_for(r)?;
            Some((r.to_string(), Value::String(report.status)))
        })
        .collect();
    Ok(Json(json!({ "reports": reports })))
}

/// Every other live member's HTTP base URL, by id.
async fn other_members(state: &ApiState) -> Vec<(u64, String)> {
    let Ok(meta) = state.service.cluster_state().await else {
        return Vec::new();
    };
    let me = state.service.node_id();
    meta.members
        .iter()
        .filter(|(id, m)| **id != me && m.state != tuma_cluster::membership::MemberState::Removed)
        .filter_map(|(id, m)| {
            let scheme = state.member_scheme;
            m.http_addr.map(|a| (*id, format!("{scheme}://{a}")))
        })
        .collect()
}

async fn fetch(client: &reqwest::Client, url: &str, token: &str) -> Option<Value> {
    let response = client.get(url).bearer_auth(token).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// The same text seen on several nodes (spooled by two leaders in turn) is shown once, with
/// the most advanced status; texts oldest first.
fn merge(texts: Vec<TextView>) -> Vec<TextView> {
    let rank = |status: &str| match status {
        "queued" => 0,
        "accepted" => 1,
        _ => 2,
    };
    let mut by_id: BTreeMap<String, TextView> = BTreeMap::new();
    for text in texts {
        match by_id.get(&text.id) {
            Some(seen) if rank(&seen.status) >= rank(&text.status) => {}
            _ => {
                by_id.insert(text.id.clone(), text);
            }
        }
    }
    let mut merged: Vec<TextView> = by_id.into_values().collect();
    merged.sort_by_key(|t| t.sent_ms.or(t.queued_ms).unwrap_or(0));
    merged
}

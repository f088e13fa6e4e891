//! `/admin/v1/menus/…`: the USSD menus in force, and pushing a new one (checked, then stored
//! in the cluster, so every node serves it within a second; sessions under way keep theirs);
//! `/admin/v1/ussd/events`: the gateways' latest end-of-session reports.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tuma_channels::ussd::PushError;

use super::access::{authorize, Permission};
use super::error::ApiError;
use super::ApiState;

pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ReadCluster)?;
    let menus: Vec<_> = state
        .ussd
        .menus()
        .into_iter()
        .map(|(name, version)| json!({ "name": name, "version": version }))
        .collect();
    Ok(Json(json!({ "menus": menus })))
}

pub async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ReadCluster)?;
    let menu = state
        .ussd
        .menu(&name)
        .ok_or_else(|| ApiError::not_found(format!("no menu {name}")))?;
    Ok(Json(json!({
        "name": name,
        "version": menu.version,
        "service_codes": menu.menu.service_codes,
        "screens": menu.menu.screens.len(),
    })))
}

pub async fn push(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: String,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Permission::PushMenus)?;
    match state.ussd.push_menu(&name, body).await {
        Ok(version) => Ok(Json(json!({ "name": name, "version": version })).into_response()),
        // Every fault, each with its line, so an editor can fix them all at once.
        Err(PushError::Invalid(errors)) => {
            let listed: Vec<_> = errors
                .0
                .iter()
                .map(|e| json!({ "line": e.line, "error": e.message }))
                .collect();
            let body = json!({
                "error": format!("the menu has {} error(s):\n{errors}", listed.len()),
                "errors": listed,
            });
            Ok((StatusCode::BAD_REQUEST, Json(body)).into_response())
        }
        Err(error @ PushError::Misnamed { .. }) => Err(ApiError::bad_request(error.to_string())),
        Err(PushError::Service(error)) => Err(error.into()),
    }
}

pub async fn session_ends(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ReadCluster)?;
    Ok(Json(json!({
        "live_sessions": state.ussd.live_sessions(),
        "ends": state.ussd.ends(),
    })))
}

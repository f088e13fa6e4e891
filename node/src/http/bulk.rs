//! `POST /admin/v1/customers/bulk`: registering customers in bulk, as an operator migrating an
//! existing customer base would. Rows are validated, grouped by shard, and each group becomes one
//! log entry on its shard's leader, all shards in parallel.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tuma_actors::account::AccountRef;
use tuma_actors::ledger::OpenAccount;
use tuma_actors::msisdn::Msisdn;
use tuma_actors::pin::PinHash;
use tuma_actors::roles::AccountKind;
use tuma_service::RowOutcome;

use super::access::{authorize, Permission};
use super::admin::{pin_field, text_field};
use super::error::ApiError;
use super::ApiState;

/// Most rows per request (one request's entries stay small enough to replicate quickly).
pub const BULK_ROWS_MAX: usize = 10_000;

#[derive(Deserialize)]
pub struct BulkIn {
    customers: Vec<BulkRow>,
}

/// One customer. `pin_hash` is an argon2id PHC string from the system being migrated (or a keyed
/// digest exported from this cluster); `pin` is hashed here (a keyed digest: microseconds); with
/// neither, care must set a start PIN before the customer can transact.
#[derive(Deserialize)]
pub struct BulkRow {
    msisdn: String,
    name: String,
    id_number: String,
    pin: Option<String>,
    pin_hash: Option<String>,
}

async fn row_to_open(state: &ApiState, row: BulkRow) -> Result<OpenAccount, String> {
    let msisdn = Msisdn::parse(&row.msisdn).map_err(|e| format!("msisdn: {e}"))?;
    let name = text_field("name", &row.name, 100).map_err(|e| e.message)?;
    let id_number = text_field("id_number", &row.id_number, 20).map_err(|e| e.message)?;
    let pin_hash = match (row.pin_hash, row.pin) {
        (Some(phc), _) => {
            let hash = PinHash::from_phc(phc).map_err(|e| format!("pin_hash: {e}"))?;
            if hash.key_id().is_some() && hash.key_id() != state.service.pins().hasher().key_id() {
                return Err("pin_hash: a keyed digest made with another PIN key".into());
            }
            Some(hash)
        }
        (None, Some(pin)) => {
            let pin = pin_field(&pin).map_err(|e| e.message)?;
            Some(
                state
                    .service
                    .pins()
                    .hash(pin)
                    .await
                    .ok_or("PIN hashing failed")?,
            )
        }
        (None, None) => None,
    };
    Ok(OpenAccount {
        account: AccountRef::Customer(msisdn),
        kind: AccountKind::Customer,
        name,
        id_number: Some(id_number),
        phone: Some(msisdn),
        store_number: None,
        pin_hash,
        api_credentials: None,
    })
}

pub async fn register_customers(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<BulkIn>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::Register)?;
    let Json(body) = body?;
    if body.customers.is_empty() || body.customers.len() > BULK_ROWS_MAX {
        return Err(ApiError::field(
            "customers",
            format!("customers must hold 1 to {BULK_ROWS_MAX} rows"),
        ));
    }
    let mut failed: Vec<Value> = Vec::new();
    let mut rows = Vec::new();
    let mut opens = Vec::new();
    for (row_number, row) in body.customers.into_iter().enumerate() {
        match row_to_open(&state, row).await {
            Ok(open) => {
                rows.push(row_number);
                opens.push(open);
            }
            Err(error) => failed.push(json!({"row": row_number, "error": error})),
        }
    }
    let (mut created, mut existing) = (0usize, 0usize);
    let outcomes = state.service.open_accounts(opens).await;
    for (row, outcome) in rows.into_iter().zip(outcomes) {
        match outcome {
            RowOutcome::Opened => created += 1,
            RowOutcome::Existed => existing += 1,
            RowOutcome::Refused(code) => {
                failed.push(json!({"row": row, "error": code.description(), "result": code.name()}))
            }
            RowOutcome::NotRecorded(why) => {
                failed.push(json!({"row": row, "error": format!("not registered: {why}")}))
            }
        }
    }
    failed.sort_by_key(|f| f["row"].as_u64());
    Ok(Json(
        json!({ "created": created, "existing": existing, "failed": failed }),
    ))
}

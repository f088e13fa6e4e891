//! Statements and receipts from the history store: `GET /v1/accounts/{msisdn}/statement`
//! (pages: `?limit=&before=`), `GET /v1/accounts/{msisdn}/mini-statement` (the last 5, as on
//! USSD), and for care `GET /admin/v1/accounts/{ref}/statement` (any account, no PIN) and
//! `GET /admin/v1/transactions/{transaction_id}` (a receipt, for the whole history).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tuma_actors::account::AccountRef;
use tuma_actors::ledger::{HistoryRow, HistorySide};
use tuma_actors::money::Money;
use tuma_actors::txn_id::TransactionId;
use tuma_cluster::engine::StatementLine;

use super::access::{authorize, Permission};
use super::app::holder;
use super::error::ApiError;
use super::ApiState;

/// Lines in a page when the caller names no limit.
const PAGE_LINES_DEFAULT: usize = 20;
/// Most lines in a page.
pub const PAGE_LINES_MAX: usize = 100;
/// Lines in a mini statement.
const MINI_STATEMENT_LINES: usize = 5;

#[derive(Deserialize)]
pub struct PageIn {
    limit: Option<usize>,
    before: Option<u64>,
}

impl PageIn {
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(PAGE_LINES_DEFAULT),
            Some(limit) if (1..=PAGE_LINES_MAX).contains(&limit) => Ok(limit),
            Some(_) => Err(ApiError::field(
                "limit",
                format!("limit must be 1..={PAGE_LINES_MAX}"),
            )),
        }
    }
}

fn line_json(line: &StatementLine) -> Value {
    json!({
        "request_id": line.transfer.as_str(),
        "transaction_id": line.receipt,
        "kind": line.kind,
        "counterparty": line.counterparty,
        "amount": Money::from_cents(line.amount_cents).to_decimal_string(),
        "balance": Money::from_cents(line.balance_after_cents).to_decimal_string(),
        "completed_ms": line.completed_ms,
        "seq": line.seq,
    })
}

/// A page, with the cursor for the next one (`null` after the last).
fn page_json(account: &AccountRef, lines: &[StatementLine], limit: usize) -> Value {
    let next_before = (lines.len() == limit)
        .then(|| lines.last().map(|l| l.seq))
        .flatten();
    json!({
        "msisdn": account.to_string(),
        "lines": lines.iter().map(line_json).collect::<Vec<_>>(),
        "next_before": next_before,
    })
}

pub async fn statement(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(msisdn): Path<String>,
    Query(page): Query<PageIn>,
) -> Result<impl IntoResponse, ApiError> {
    let (account, pin) = holder(&headers, &msisdn)?;
    let limit = page.limit()?;
    let lines = state
        .service
        .statement(&account, pin, limit, page.before)
        .await?;
    Ok(Json(page_json(&account, &lines, limit)))
}

pub async fn mini_statement(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(msisdn): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (account, pin) = holder(&headers, &msisdn)?;
    let lines = state
        .service
        .statement(&account, pin, MINI_STATEMENT_LINES, None)
        .await?;
    Ok(Json(json!({
        "msisdn": account.to_string(),
        "lines": lines.iter().map(line_json).collect::<Vec<_>>(),
    })))
}

pub async fn care_statement(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Query(page): Query<PageIn>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ReadAccounts)?;
    let account =
        AccountRef::parse(&reference).map_err(|e| ApiError::field("ref", e.to_string()))?;
    let limit = page.limit()?;
    let lines = state
        .service
        .statement_page(&account, limit, page.before)
        .await?;
    Ok(Json(page_json(&account, &lines, limit)))
}

fn row_json(row: &HistoryRow) -> Value {
    json!({
        "account": row.account.to_string(),
        "side": match row.side { HistorySide::Payer => "payer", HistorySide::Payee => "payee" },
        "request_id": row.transfer.as_str(),
        "transaction_id": row.receipt.map(|t| t.to_string()),
        "kind": row.kind.name(),
        "counterparty": row.counterparty.to_string(),
        "amount": Money::from_cents(row.amount_cents).to_decimal_string(),
        "fee": row.fee.to_decimal_string(),
        "result": row.result.name(),
        "result_code": row.result.code(),
        "balance": row.balance_after.to_decimal_string(),
        "completed_ms": row.completed_ms,
    })
}

pub async fn receipt(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(transaction_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, Permission::ReadAccounts)?;
    let txn_id = TransactionId::parse(&transaction_id)
        .map_err(|e| ApiError::field("transaction_id", e.to_string()))?;
    let rows = state.service.receipt(txn_id).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found(format!("no transaction {txn_id}")));
    }
    Ok(Json(json!({
        "transaction_id": txn_id.to_string(),
        "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
    })))
}

//! `GET /dev/tasks/{taskId}` (`--dev` only): what a worker reads from the chain before running a
//! task — the task, its deal, the app (with its enclave configuration as text) and the dataset —
//! so the local worker (`sms app run --dev`, `sms worker run`) needs no chain client. Nothing
//! secret is in it: every field is public on a real chain.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use sms_core::B256;

use crate::edge::Params;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn task_description(
    State(state): State<AppState>,
    Params(task): Params<String>,
) -> Result<Json<Value>, ApiError> {
    let task_id: B256 = task
        .parse()
        .map_err(|_| ApiError::bad_request("taskId: expected 0x followed by 64 hex digits"))?;
    let not_found = |what: String| ApiError::new(StatusCode::NOT_FOUND, what);
    let task = state
        .ledger
        .task(task_id)
        .await?
        .ok_or_else(|| not_found(format!("task {task_id} not found")))?;
    let deal = state
        .ledger
        .deal(task.deal_id)
        .await?
        .ok_or_else(|| not_found(format!("deal {} not found", task.deal_id)))?;
    let app = state
        .ledger
        .app(deal.app.pointer)
        .await?
        .ok_or_else(|| not_found(format!("app {} not found", deal.app.pointer)))?;
    let dataset = if deal.has_dataset() {
        state.ledger.dataset(deal.dataset.pointer).await?
    } else {
        None
    };
    let enclave_config = String::from_utf8_lossy(&app.mrenclave).into_owned();
    Ok(Json(json!({
        "task": task,
        "deal": deal,
        "app": app,
        "appEnclaveConfig": enclave_config,
        "dataset": dataset,
    })))
}

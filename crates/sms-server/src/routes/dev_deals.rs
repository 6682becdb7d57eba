//! Dev deals and tasks (`--dev` only): `POST /dev/deals` records a deal and its ACTIVE tasks
//! (the rules are `sms_chain::dev::DevLedger::create_deal`), `POST /dev/tasks/{taskId}/status`
//! moves a task through its life cycle.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use sms_chain::dev::{DevLedger, NewDeal};
use sms_core::B256;
use sms_core::ledger::TaskStatus;

use crate::edge::Params;
use crate::error::ApiError;
use crate::state::AppState;

fn ledger(state: &AppState) -> Result<&DevLedger, ApiError> {
    state
        .dev_ledger
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("the dev API exists only with --dev"))
}

pub async fn create_deal(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let new: NewDeal = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let created = ledger(&state)?.create_deal(new, state.clock.now())?;
    Ok(Json(
        json!({ "dealId": created.deal_id, "taskIds": created.task_ids }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStatus {
    status: TaskStatus,
}

pub async fn set_task_status(
    State(state): State<AppState>,
    Params(task): Params<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let task_id: B256 = task
        .parse()
        .map_err(|_| ApiError::bad_request("taskId: expected 0x followed by 64 hex characters"))?;
    let new: NewStatus = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid JSON body: {e} (status: UNSET, ACTIVE, REVEALING, COMPLETED or FAILED)"
        ))
    })?;
    ledger(&state)?.set_task_status(task_id, new.status)?;
    Ok(Json(json!({ "taskId": task_id, "status": new.status })))
}

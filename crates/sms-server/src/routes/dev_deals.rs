//! Dev deals and tasks (`--dev` only): `POST /dev/deals` records a deal and its ACTIVE tasks,
//! `POST /dev/tasks/{taskId}/status` moves a task through its life cycle.
//!
//! Ids follow PoCo: `taskId = keccak256(dealId ‖ uint256 index)`; the deal id is
//! `keccak256("sms-dev-deal" ‖ uint64 nonce)` with a nonce of the dev ledger (unique per ledger).
//! Deadlines follow PoCo with the category's time reference (0 XS 300 s, 1 S 1200 s, 2 M 3600 s,
//! 3 L 10800 s, 4 XL 36000 s): contribution = start + 7·ref, final = start + 10·ref.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use sms_chain::dev::DevLedger;
use sms_core::hash::keccak_concat;
use sms_core::ledger::{Deal, DealResource, Task, TaskStatus, task_id};
use sms_core::tag::parse_tag;
use sms_core::{Address, B256, U256};

use crate::error::ApiError;
use crate::state::AppState;

/// Time references of the PoCo default categories, in seconds.
pub const CATEGORY_TIME_REFS: [u64; 5] = [300, 1200, 3600, 10800, 36000];
/// Largest volume of one dev deal.
pub const MAX_VOLUME: u64 = 1000;

fn ledger(state: &AppState) -> Result<&DevLedger, ApiError> {
    state
        .dev_ledger
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("the dev API exists only with --dev"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewDeal {
    app: Address,
    #[serde(default)]
    dataset: Option<Address>,
    workerpool: Address,
    requester: Address,
    #[serde(default)]
    beneficiary: Option<Address>,
    #[serde(default)]
    callback: Option<Address>,
    #[serde(default)]
    tag: Option<String>,
    /// A string (verbatim) or a JSON object (serialised).
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    volume: Option<u64>,
    #[serde(default)]
    category: Option<u64>,
    #[serde(default)]
    trust: Option<u64>,
    /// Unix seconds; default now. Lets tests create tasks whose deadlines have passed (and a 0
    /// start time, a deal the session check refuses).
    #[serde(default)]
    start_time: Option<u64>,
}

fn now() -> u64 {
    crate::tee::challenge::unix_now()
}

async fn resource(
    state: &AppState,
    pointer: Address,
    what: &str,
) -> Result<DealResource, ApiError> {
    let owner = state.ledger.owner_of(pointer).await?.ok_or_else(|| {
        ApiError::bad_request(format!(
            "{what}: {pointer} is not registered in the dev ledger"
        ))
    })?;
    Ok(DealResource {
        pointer,
        owner,
        price: U256::ZERO,
    })
}

pub async fn create_deal(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let new: NewDeal = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let dev = ledger(&state)?;
    let tag = match new.tag.as_deref() {
        None => parse_tag("tee,scone"),
        Some(t) => parse_tag(t),
    }
    .map_err(|e| ApiError::bad_request(format!("tag: {e}")))?;
    let params = match new.params {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(v @ Value::Object(_)) => v.to_string(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "params: expected a string or a JSON object",
            ));
        }
    };
    let volume = new.volume.unwrap_or(1);
    if !(1..=MAX_VOLUME).contains(&volume) {
        return Err(ApiError::bad_request(format!(
            "volume: expected 1 to {MAX_VOLUME}"
        )));
    }
    let category = new.category.unwrap_or(0);
    let time_ref = usize::try_from(category)
        .ok()
        .and_then(|c| CATEGORY_TIME_REFS.get(c).copied())
        .ok_or_else(|| ApiError::bad_request("category: expected 0 (XS) to 4 (XL)"))?;
    // Entry kinds of the app are not checked: a deal naming another entry as its app lets
    // tests provoke GET_TASK_DESCRIPTION_FAILED.
    let app = resource(&state, new.app, "app").await?;
    let dataset = match new.dataset.filter(|d| *d != Address::ZERO) {
        Some(d) => {
            if state.ledger.dataset(d).await?.is_none() {
                return Err(ApiError::bad_request(format!(
                    "dataset: {d} is not a dataset of the dev ledger"
                )));
            }
            resource(&state, d, "dataset").await?
        }
        None => DealResource {
            pointer: Address::ZERO,
            owner: Address::ZERO,
            price: U256::ZERO,
        },
    };
    if state.ledger.workerpool(new.workerpool).await?.is_none() {
        return Err(ApiError::bad_request(format!(
            "workerpool: {} is not a workerpool of the dev ledger",
            new.workerpool
        )));
    }
    let workerpool = resource(&state, new.workerpool, "workerpool").await?;
    let nonce = dev.next_nonce()?;
    let deal_id = keccak_concat(&[b"sms-dev-deal", &nonce.to_be_bytes()]);
    let start = new.start_time.unwrap_or_else(now);
    let deal = Deal {
        deal_id,
        app,
        dataset,
        workerpool,
        trust: U256::from(new.trust.unwrap_or(1).max(1)),
        category: U256::from(category),
        tag,
        requester: new.requester,
        beneficiary: new.beneficiary.unwrap_or(new.requester),
        callback: new.callback.unwrap_or(Address::ZERO),
        params,
        start_time: start,
        bot_first: 0,
        bot_size: volume,
        worker_stake: U256::ZERO,
        scheduler_reward_ratio: U256::ZERO,
        sponsor: new.requester,
    };
    let tasks: Vec<Task> = (0..volume)
        .map(|index| Task {
            task_id: task_id(&deal_id, index),
            deal_id,
            index,
            status: TaskStatus::Active,
            time_ref,
            contribution_deadline: start + 7 * time_ref,
            reveal_deadline: 0,
            final_deadline: start + 10 * time_ref,
        })
        .collect();
    let task_ids: Vec<B256> = tasks.iter().map(|t| t.task_id).collect();
    dev.insert_deal(deal, tasks)?;
    Ok(Json(json!({ "dealId": deal_id, "taskIds": task_ids })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStatus {
    status: TaskStatus,
}

pub async fn set_task_status(
    State(state): State<AppState>,
    Path(task): Path<String>,
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

//! The dev ledger API (`--dev` only): register apps, datasets and workerpools, and transfer
//! them, so ownership rules can be exercised without a chain.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sms_chain::dev::{DevLedger, NewApp, NewDataset};
use sms_core::Address;

use crate::error::ApiError;
use crate::state::AppState;

fn ledger(state: &AppState) -> Result<&DevLedger, ApiError> {
    state
        .dev_ledger
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("the dev API exists only with --dev"))
}

/// JSON body parsing whose errors name the field (serde's message) and answer 400.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// `GET /dev/info`: a client (`sms app run`) asks whether it talks to a dev server; the route
/// exists only with `--dev`, so any other answer means "not a dev server".
pub async fn info(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    ledger(&state)?;
    Ok(Json(json!({ "dev": true, "ledger": "embedded" })))
}

pub async fn deploy_app(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let app: NewApp = parse(&body)?;
    let address = ledger(&state)?.deploy_app(app)?;
    Ok(Json(json!({ "address": address })))
}

pub async fn deploy_dataset(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let dataset: NewDataset = parse(&body)?;
    let address = ledger(&state)?.deploy_dataset(dataset)?;
    Ok(Json(json!({ "address": address })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWorkerpool {
    owner: Address,
    #[serde(default)]
    description: String,
}

pub async fn deploy_workerpool(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let pool: NewWorkerpool = parse(&body)?;
    let address = ledger(&state)?.deploy_workerpool(pool.owner, pool.description)?;
    Ok(Json(json!({ "address": address })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Transfer {
    entry: Address,
    to: Address,
}

pub async fn transfer(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let t: Transfer = parse(&body)?;
    let kind = ledger(&state)?.transfer(t.entry, t.to)?;
    Ok(Json(
        json!({ "entry": t.entry, "kind": kind, "owner": t.to }),
    ))
}

/// `POST /dev/ipfs`: stores the body as a document of the dev IPFS (bulk runs of the local
/// worker, docs/bulk-processing.md); answers its CIDv0.
pub async fn ipfs_add(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    if body.len() > sms_core::bulk::MAX_DOCUMENT_BYTES {
        return Err(ApiError::bad_request(format!(
            "a dev IPFS document is at most {} bytes",
            sms_core::bulk::MAX_DOCUMENT_BYTES
        )));
    }
    let cid = ledger(&state)?.ipfs_add(&body)?;
    Ok(Json(json!({ "cid": cid })))
}

/// `GET /dev/ipfs/{cid}`: a path gateway over the dev IPFS (the `--dev` server's default
/// `--ipfs-gateway` is `<its URL>/dev`).
pub async fn ipfs_get(
    State(state): State<AppState>,
    crate::edge::Params(cid): crate::edge::Params<String>,
) -> Result<Bytes, ApiError> {
    ledger(&state)?
        .ipfs_get(&cid)?
        .map(Bytes::from)
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                format!("no dev IPFS document {cid}"),
            )
        })
}

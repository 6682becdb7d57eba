//! `/tee/provisioning/{sessionId}/{service}/{nonce,release}`: the built-in attested
//! provisioner (docs/provisioning.md). Every refusal is `{"code", "error", "reason"}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use sms_client::provision::{NonceAnswer, ReleaseAnswer, ReleaseRequest};

use crate::provision::Refusal;
use crate::state::AppState;

pub async fn nonce(
    State(state): State<AppState>,
    Path((session_id, service)): Path<(String, String)>,
) -> Result<Json<NonceAnswer>, Refusal> {
    state
        .provisioner
        .issue_nonce(&state.store, &session_id, &service)
        .await
        .map(Json)
}

pub async fn release(
    State(state): State<AppState>,
    Path((session_id, service)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<ReleaseAnswer>, Refusal> {
    let request: ReleaseRequest = serde_json::from_slice(&body)
        .map_err(|e| Refusal::RequestMalformed(format!("body is not a release request: {e}")))?;
    state
        .provisioner
        .release(&state.store, &session_id, &service, &request)
        .await
        .map(Json)
}

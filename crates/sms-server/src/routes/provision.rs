//! `/tee/provisioning/{sessionId}/{service}/{nonce,release}` and `/tee/provisioning/identity`:
//! the built-in attested provisioner (docs/provisioning.md). Every refusal is `{"code", "error", "reason"}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use sms_attest::IdentityDocument;
use sms_attest::provision::{NonceAnswer, ReleaseAnswer};

use crate::edge::Params;
use crate::provision::{Refusal, ServiceSegment};
use crate::state::AppState;

pub async fn nonce(
    State(state): State<AppState>,
    Params((session_id, service)): Params<(String, String)>,
) -> Result<Json<NonceAnswer>, Refusal> {
    state
        .provisioner
        .issue_nonce(&state.store, &session_id, &ServiceSegment::parse(&service))
        .await
        .map(Json)
}

pub async fn release(
    State(state): State<AppState>,
    Params((session_id, service)): Params<(String, String)>,
    body: Bytes,
) -> Result<Json<ReleaseAnswer>, Refusal> {
    state
        .provisioner
        .release(
            &state.store,
            state.ledger.as_ref(),
            &session_id,
            &ServiceSegment::parse(&service),
            &body,
        )
        .await
        .map(Json)
}

/// `GET /tee/provisioning/identity`: `{"keyId", "algorithm", "publicKey"}`.
pub async fn identity(State(state): State<AppState>) -> Json<IdentityDocument> {
    Json(state.provisioner.identity().document())
}

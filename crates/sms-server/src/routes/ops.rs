//! Operational endpoints: version, health, Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;

pub async fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Healthy when the store answers.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.count_by_namespace().await {
        Ok(_) => (StatusCode::OK, Json(json!({ "status": "UP" }))),
        Err(e) => {
            tracing::error!(error = %e, "health check: store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "DOWN", "reason": "store unavailable" })),
            )
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

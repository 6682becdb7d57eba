//! Operational endpoints: version, health, Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// `{"version": "…", "simulatedTee": false}`; the bare version as text (upstream's answer) to a
/// client whose `Accept` lists `text/plain` before any JSON type.
pub async fn version(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    if prefers_plain_text(&headers) {
        return (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            version,
        )
            .into_response();
    }
    Json(json!({
        "version": version,
        "simulatedTee": state.provisioner.allows_simulated(),
    }))
    .into_response()
}

/// The first of `text/plain` and a JSON type (`application/json`, `application/*`, `*/*`) in
/// `Accept` wins (quality values are not weighed); no `Accept`: JSON.
fn prefers_plain_text(headers: &HeaderMap) -> bool {
    let types = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    for media_type in types {
        match media_type.as_str() {
            "text/plain" | "text/*" => return true,
            "application/json" | "application/*" | "*/*" => return false,
            _ => {}
        }
    }
    false
}

/// Healthy when the store answered its last ping (kept up to date in the background by
/// [`crate::health::Health`]: a call costs no store round trip); DOWN names the cause.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    match state.health.status() {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "UP" }))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "DOWN", "code": "STORE_UNAVAILABLE", "reason": reason })),
        ),
    }
}

/// The recorder's metrics, plus this server's `sms_simulated_tee_enabled` (written here from
/// the server's own setting: the recorder is shared by every server of a process).
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "# HELP sms_simulated_tee_enabled 1 when simulated TEE evidence is accepted (--dev or --dangerous-allow-simulated-tee)\n\
         # TYPE sms_simulated_tee_enabled gauge\n\
         sms_simulated_tee_enabled {}\n",
        u8::from(state.provisioner.allows_simulated())
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, value.parse().unwrap());
        h
    }

    #[test]
    fn plain_text_only_when_asked_first() {
        assert!(!prefers_plain_text(&HeaderMap::new()));
        assert!(!prefers_plain_text(&accept("*/*")));
        assert!(!prefers_plain_text(&accept("application/json")));
        assert!(prefers_plain_text(&accept("text/plain")));
        assert!(prefers_plain_text(&accept(
            "text/plain, application/json, application/*+json, */*"
        )));
        assert!(!prefers_plain_text(&accept(
            "application/json;q=0.9, text/plain"
        )));
        assert!(prefers_plain_text(&accept("text/html, TEXT/PLAIN;q=0.5")));
    }
}

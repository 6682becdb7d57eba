//! `/tee/*`: framework, pipeline properties, enclave challenges and sessions
//! (docs/iexec-compatibility.md §3, §4, §7). Every error body is exactly `{"error": "<CODE>"}`, which iExec
//! clients decode strictly; the human reason goes to the log and to the `X-Sms-Reason` header,
//! and a session code this implementation adds goes to `X-Sms-Error` (see
//! [`sms_core::tee_error`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sms_core::tag::TeeFramework;
use sms_core::tee_error::SessionError;

use crate::edge::Params;
use crate::state::AppState;
use crate::tee::explain::{self, ExplainFailure};
use crate::tee::session::{self, ChallengeFailure};

/// The header carrying the human reason of a refusal.
pub const REASON_HEADER: &str = "x-sms-reason";
/// The header carrying the precise session error code (the body carries upstream's).
pub const ERROR_HEADER: &str = "x-sms-error";
/// Longest reason sent in a header.
const MAX_REASON_BYTES: usize = 512;

fn error(status: StatusCode, code: &str, reason: impl Into<String>) -> Response {
    let mut response = (status, Json(json!({ "error": code }))).into_response();
    if let Ok(value) = HeaderValue::from_str(&header_text(&reason.into())) {
        response.headers_mut().insert(REASON_HEADER, value);
    }
    response
}

/// A reason as a header value: printable ASCII only, bounded.
fn header_text(reason: &str) -> String {
    let mut text: String = reason
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(MAX_REASON_BYTES)
        .collect();
    if reason.chars().count() > MAX_REASON_BYTES {
        text.push_str("...");
    }
    text
}

pub async fn framework(State(state): State<AppState>) -> Response {
    Json(state.tee.framework).into_response()
}

/// The refusal for a framework path segment other than the one served, if any.
fn framework_refusal(state: &AppState, text: &str) -> Option<Response> {
    let asked: TeeFramework = match text.parse() {
        Ok(f) => f,
        Err(e) => {
            let e: sms_core::tag::UnknownFramework = e;
            return Some(error(
                StatusCode::BAD_REQUEST,
                "UNKNOWN_TEE_FRAMEWORK",
                e.to_string(),
            ));
        }
    };
    (asked != state.tee.framework).then(|| {
        error(
            StatusCode::CONFLICT,
            "TEE_FRAMEWORK_MISMATCH",
            format!("this SMS serves {}, not {asked}", state.tee.framework),
        )
    })
}

fn properties_answer(state: &AppState, pipeline: &sms_core::pipeline::Pipeline) -> Response {
    match state.tee.properties(pipeline) {
        Some(p) => ([(header::CONTENT_TYPE, "application/json")], p.to_json()).into_response(),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "PROPERTIES_UNAVAILABLE",
            "the LAS image is not configured",
        ),
    }
}

pub async fn properties(
    State(state): State<AppState>,
    Params((framework, version)): Params<(String, String)>,
) -> Response {
    if let Some(r) = framework_refusal(&state, &framework) {
        return r;
    }
    match state.tee.pipelines.find(&version) {
        Some(p) => properties_answer(&state, &p),
        None => error(
            StatusCode::NOT_FOUND,
            "UNKNOWN_PIPELINE_VERSION",
            format!(
                "no {} pipeline for version '{}'",
                state.tee.framework,
                version.chars().take(64).collect::<String>()
            ),
        ),
    }
}

/// Deprecated: the first configured pipeline.
pub async fn properties_default(
    State(state): State<AppState>,
    Params(framework): Params<String>,
) -> Response {
    if let Some(r) = framework_refusal(&state, &framework) {
        return r;
    }
    properties_answer(&state, &state.tee.pipelines.default_pipeline())
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

pub async fn challenge(
    State(state): State<AppState>,
    Params(task): Params<String>,
    headers: HeaderMap,
) -> Response {
    match session::challenge(&state, &task, authorization(&headers)).await {
        Ok(address) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            sms_core::hex::encode_prefixed(address),
        )
            .into_response(),
        Err(ChallengeFailure::BadTaskId(r)) => error(StatusCode::BAD_REQUEST, "INVALID_TASK_ID", r),
        Err(ChallengeFailure::Unauthorized(r)) => {
            tracing::info!(reason = %r, "enclave challenge refused");
            error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", r)
        }
        Err(ChallengeFailure::FrameworkMismatch(r)) => {
            error(StatusCode::CONFLICT, "TEE_FRAMEWORK_MISMATCH", r)
        }
        Err(ChallengeFailure::LedgerUnavailable(r)) => {
            tracing::warn!(reason = %r, "ledger unavailable");
            error(StatusCode::SERVICE_UNAVAILABLE, "LEDGER_UNAVAILABLE", r)
        }
        Err(ChallengeFailure::StoreUnavailable(r)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", r)
        }
        Err(ChallengeFailure::RateLimited(r)) => r.response_for("/tee/challenges/"),
        Err(ChallengeFailure::NotCreated(r)) => {
            tracing::error!(reason = %r, "enclave challenge not created");
            error(StatusCode::NOT_FOUND, "CHALLENGE_NOT_CREATED", r)
        }
    }
}

fn session_error(e: SessionError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(code = %e.code, detail = %e.detail, "TEE session not created");
    } else {
        tracing::info!(code = %e.code, detail = %e.detail, "TEE session refused");
    }
    let mut response = error(status, e.code.wire_code().as_str(), e.detail);
    response
        .headers_mut()
        .insert(ERROR_HEADER, HeaderValue::from_static(e.code.as_str()));
    response
}

pub async fn create_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let worker = match session::verify_worker(authorization(&headers), &body) {
        Ok(worker) => worker,
        Err(e) => return session_error(e),
    };
    if let Err(refusal) = state
        .rates
        .check_signer(crate::limits::family::TEE_SESSION, worker.pool_signer)
    {
        return refusal.response_for("/tee/sessions");
    }
    match session::create(&state, worker).await {
        Ok(created) => Json(json!({
            "data": {
                "sessionId": created.session_id,
                "secretProvisioningUrl": created.secret_provisioning_url,
            }
        }))
        .into_response(),
        Err(e) => session_error(e),
    }
}

/// `GET /tee/explain/{taskId}`: a new route (no iExec client decodes it), so the reason is in
/// the body too.
pub async fn explain(
    State(state): State<AppState>,
    Params(task): Params<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let worker = query.get("worker").map(String::as_str);
    let (status, code, reason) =
        match explain::explain(&state, &task, worker, authorization(&headers)).await {
            Ok(explanation) => return Json(explanation).into_response(),
            Err(ExplainFailure::BadTaskId(r)) => (StatusCode::BAD_REQUEST, "INVALID_TASK_ID", r),
            Err(ExplainFailure::BadWorker(r)) => {
                (StatusCode::BAD_REQUEST, "INVALID_WORKER_ADDRESS", r)
            }
            Err(ExplainFailure::Unauthorized(r)) => {
                tracing::info!(reason = %r, "explain refused");
                (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", r)
            }
            Err(ExplainFailure::UnknownTask(r)) => (StatusCode::NOT_FOUND, "UNKNOWN_TASK", r),
            Err(ExplainFailure::LedgerUnavailable(r)) => {
                tracing::warn!(reason = %r, "ledger unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "LEDGER_UNAVAILABLE", r)
            }
            Err(ExplainFailure::StoreUnavailable(r)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "STORE_UNAVAILABLE", r)
            }
        };
    let text = header_text(&reason);
    let mut response = (status, Json(json!({ "error": code, "reason": text }))).into_response();
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().insert(REASON_HEADER, value);
    }
    response
}

//! API errors and their wire forms. Compute-secret routes answer `{"error": [message]}` like
//! iExec's SMS; the other routes answer `{"error": message}`. Both add a `reason` field with
//! what the caller needs to act (never a secret value).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sms_chain::LedgerError;
use sms_store::StoreError;

/// Which body shape a route family uses for errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `/apps/*` and `/requesters/*`: `{"error": ["..."]}`.
    List,
    /// Everything else: `{"error": "..."}`.
    Plain,
    /// Secrets API v2: `{"error": {"code", "message", "field"}}` (plus details).
    Coded,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable message (iExec's wording where one exists).
    pub message: String,
    /// Detail for the caller.
    pub reason: Option<String>,
    pub shape: Shape,
    /// What a [`Shape::Coded`] body adds (boxed: most errors have none).
    pub coded: Option<Box<Coded>>,
    /// `Retry-After` of the answer, in seconds (rate limits).
    pub retry_after_secs: Option<u64>,
}

/// The members of a coded error body besides the message.
#[derive(Debug, Default)]
pub struct Coded {
    /// Stable machine-readable code (derived from the status when absent).
    pub code: Option<&'static str>,
    /// The request field at fault.
    pub field: Option<String>,
    /// More members of the error object (e.g. `currentVersion` of a conflict).
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            reason: None,
            shape: Shape::Plain,
            coded: None,
            retry_after_secs: None,
        }
    }

    /// A request over its rate: 429 with `Retry-After` and the `RATE_LIMITED` code, which the
    /// plain and list bodies carry in `code` like the other limit refusals (docs/limits.md).
    pub fn rate_limited(refusal: &crate::limits::rate::RateRefusal) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            crate::limits::rate::RateRefusal::MESSAGE,
        )
        .with_reason(refusal.reason());
        error.coded = Some(Box::new(Coded {
            code: Some(crate::limits::rate::RateRefusal::CODE),
            ..Coded::default()
        }));
        error.retry_after_secs = Some(refusal.retry_after_secs);
        error
    }

    /// A coded error (v2): its code, the field at fault and what is wrong with it.
    pub fn coded(
        status: StatusCode,
        code: &'static str,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        let mut error = Self::new(status, message);
        error.coded = Some(Box::new(Coded {
            code: Some(code),
            field: field.map(str::to_owned),
            details: Default::default(),
        }));
        error.shaped(Shape::Coded)
    }

    /// This error as a coded body whose field at fault is `field`.
    pub fn at_field(mut self, field: &str) -> Self {
        self.coded.get_or_insert_default().field = Some(field.to_owned());
        self.shaped(Shape::Coded)
    }

    pub fn with_detail(mut self, name: &str, value: serde_json::Value) -> Self {
        self.coded
            .get_or_insert_default()
            .details
            .insert(name.to_owned(), value);
        self
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Invalid authorization").with_reason(reason)
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn shaped(mut self, shape: Shape) -> Self {
        self.shape = shape;
        self
    }

    /// A failure of ours: logged with its cause, answered as a bare 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

/// A store outage is 503 with the cause (the caller retries); anything else is ours (500).
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "store unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "store unavailable").with_reason(reason)
            }
            // The write was not done: its audit entry could not be written with it.
            StoreError::AuditRefused(reason) => {
                let mut error = Self::new(StatusCode::SERVICE_UNAVAILABLE, "audit log unavailable")
                    .with_reason(format!(
                        "not done: the audit entry of this action could not be written ({reason})"
                    ));
                error.coded = Some(Box::new(Coded {
                    code: Some("AUDIT_LOG_UNAVAILABLE"),
                    ..Coded::default()
                }));
                error
            }
            // Logged (row identity) and counted by the store; the value is never served.
            StoreError::Integrity(record) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "STORE_INTEGRITY",
            )
            .with_reason(format!(
                "stored record {record} failed its integrity check (tampered or rolled back)"
            )),
            other => Self::internal(other),
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Unavailable(reason) => {
                tracing::warn!(%reason, "ledger unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "ledger unavailable").with_reason(reason)
            }
            LedgerError::Rejected(reason) => Self::bad_request(reason),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A limit refusal also carries its reason in a header, like those of the request guard.
        let retry_after = self
            .retry_after_secs
            .map(|secs| (secs, self.reason.clone().unwrap_or_default()));
        let error = match self.shape {
            Shape::List => json!([self.message]),
            Shape::Plain => json!(self.message),
            Shape::Coded => return with_retry_after(coded_body(self).into_response(), retry_after),
        };
        let mut body = match self.reason {
            Some(reason) => json!({ "error": error, "reason": reason }),
            None => json!({ "error": error }),
        };
        // Only the limit refusals and AUDIT_LOG_UNAVAILABLE set a code on a plain or list body.
        if let Some(code) = self.coded.and_then(|c| c.code) {
            body["code"] = json!(code);
        }
        with_retry_after((self.status, Json(body)).into_response(), retry_after)
    }
}

fn with_retry_after(mut response: Response, limit: Option<(u64, String)>) -> Response {
    if let Some((secs, reason)) = limit {
        let headers = response.headers_mut();
        headers.insert(axum::http::header::RETRY_AFTER, secs.into());
        if let Ok(value) = axum::http::HeaderValue::from_str(&reason) {
            headers.insert("x-sms-reason", value);
        }
    }
    response
}

/// `{"error": {"code", "message", "field", ...details}}`; the reason, if any, ends the message.
fn coded_body(error: ApiError) -> (StatusCode, Json<serde_json::Value>) {
    let coded = error.coded.map(|c| *c).unwrap_or_default();
    let code = coded.code.unwrap_or(match error.status {
        StatusCode::BAD_REQUEST => "BAD_REQUEST",
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::CONFLICT => "CONFLICT",
        StatusCode::PAYLOAD_TOO_LARGE => "VALUE_TOO_LARGE",
        StatusCode::SERVICE_UNAVAILABLE => "UNAVAILABLE",
        _ => "INTERNAL",
    });
    let message = match error.reason {
        Some(reason) => format!("{}: {reason}", error.message),
        None => error.message,
    };
    let mut object = serde_json::Map::new();
    object.insert("code".into(), json!(code));
    object.insert("message".into(), json!(message));
    object.insert("field".into(), json!(coded.field));
    object.extend(coded.details);
    (error.status, Json(json!({ "error": object })))
}

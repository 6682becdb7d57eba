//! Why the provisioner refused, with a stable code and an HTTP status per reason. The body is
//! `{"code": "...", "error": "...", "reason": "..."}`; it never carries an environment value.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sms_attest::VerifyError;
use sms_store::StoreError;

#[derive(Debug)]
pub enum Refusal {
    /// Body not JSON of the expected shape, nonce or public key not decodable.
    RequestMalformed(String),
    /// Not a service name, or not a service of this session.
    ServiceUnknown(String),
    SessionUnknown,
    SessionExpired {
        expired_at: u64,
    },
    /// Never issued, already used, or swept after expiry.
    NonceUnknown,
    NonceExpired {
        expired_at_ms: u64,
    },
    /// Issued for another session or service.
    NonceMismatch,
    ReleaseLimitReached {
        limit: u32,
    },
    Evidence(VerifyError),
    /// The task is no longer ACTIVE, or past its final deadline (or unknown to the chain).
    TaskNotLive(String),
    /// The chain could not be read in time: retry.
    ChainUnavailable(String),
    /// Too many concurrent releases of one service: retry.
    Busy,
    /// The store could not be reached in time: retry.
    StoreUnavailable(String),
    /// The release's audit entry could not be written: nothing is released without it.
    AuditUnavailable(String),
    /// A failure of ours (store, undecodable stored session): logged, answered as a bare 500.
    Internal(String),
}

impl Refusal {
    /// Provisioner codes besides the evidence codes of [`VerifyError::CODES`].
    pub const CODES: [&'static str; 13] = [
        "REQUEST_MALFORMED",
        "SERVICE_UNKNOWN",
        "SESSION_UNKNOWN",
        "SESSION_EXPIRED",
        "NONCE_UNKNOWN",
        "NONCE_EXPIRED",
        "NONCE_MISMATCH",
        "RELEASE_LIMIT_REACHED",
        "TASK_NOT_LIVE",
        "CHAIN_UNAVAILABLE",
        "RELEASE_BUSY",
        "AUDIT_LOG_UNAVAILABLE",
        "INTERNAL_ERROR",
    ];

    pub fn code(&self) -> &'static str {
        match self {
            Refusal::RequestMalformed(_) => "REQUEST_MALFORMED",
            Refusal::ServiceUnknown(_) => "SERVICE_UNKNOWN",
            Refusal::SessionUnknown => "SESSION_UNKNOWN",
            Refusal::SessionExpired { .. } => "SESSION_EXPIRED",
            Refusal::NonceUnknown => "NONCE_UNKNOWN",
            Refusal::NonceExpired { .. } => "NONCE_EXPIRED",
            Refusal::NonceMismatch => "NONCE_MISMATCH",
            Refusal::ReleaseLimitReached { .. } => "RELEASE_LIMIT_REACHED",
            Refusal::Evidence(e) => e.code(),
            Refusal::TaskNotLive(_) => "TASK_NOT_LIVE",
            Refusal::ChainUnavailable(_) => "CHAIN_UNAVAILABLE",
            Refusal::Busy => "RELEASE_BUSY",
            Refusal::StoreUnavailable(_) => "STORE_UNAVAILABLE",
            Refusal::AuditUnavailable(_) => "AUDIT_LOG_UNAVAILABLE",
            Refusal::Internal(_) => "INTERNAL_ERROR",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::RequestMalformed(_) => StatusCode::BAD_REQUEST,
            Refusal::ServiceUnknown(_) | Refusal::SessionUnknown => StatusCode::NOT_FOUND,
            Refusal::SessionExpired { .. } => StatusCode::GONE,
            Refusal::NonceUnknown | Refusal::NonceExpired { .. } | Refusal::NonceMismatch => {
                StatusCode::UNAUTHORIZED
            }
            Refusal::ReleaseLimitReached { .. } => StatusCode::CONFLICT,
            Refusal::Evidence(e) => evidence_status(e),
            Refusal::TaskNotLive(_) => StatusCode::FORBIDDEN,
            Refusal::ChainUnavailable(_)
            | Refusal::Busy
            | Refusal::StoreUnavailable(_)
            | Refusal::AuditUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Short stable message.
    fn message(&self) -> String {
        match self {
            Refusal::RequestMalformed(_) => "malformed request".into(),
            Refusal::ServiceUnknown(service) => format!("no service '{service}' in this session"),
            Refusal::SessionUnknown => "unknown session".into(),
            Refusal::SessionExpired { .. } => "session expired".into(),
            Refusal::NonceUnknown => "unknown or already used nonce".into(),
            Refusal::NonceExpired { .. } => "nonce expired".into(),
            Refusal::NonceMismatch => "nonce was issued for another session or service".into(),
            Refusal::ReleaseLimitReached { limit } => {
                format!("release limit reached ({limit}): a restarted enclave needs a new session")
            }
            Refusal::Evidence(e) => e.to_string(),
            Refusal::TaskNotLive(_) => "the task is not running: nothing is released for it".into(),
            Refusal::ChainUnavailable(_) => "the chain cannot be read now, retry".into(),
            Refusal::Busy => "too many concurrent releases of this service, retry".into(),
            Refusal::StoreUnavailable(_) => "the store cannot be reached now, retry".into(),
            Refusal::AuditUnavailable(_) => {
                "the audit log cannot be written: nothing is released without its entry".into()
            }
            Refusal::Internal(_) => "internal error".into(),
        }
    }

    /// Detail for the caller (never a value).
    fn reason(&self) -> Option<String> {
        match self {
            Refusal::RequestMalformed(detail) => Some(detail.clone()),
            Refusal::SessionExpired { expired_at } => {
                Some(format!("expired at {expired_at} (unix seconds)"))
            }
            Refusal::NonceExpired { expired_at_ms } => Some(format!(
                "expired at {} (unix seconds)",
                expired_at_ms.div_ceil(1000)
            )),
            Refusal::Evidence(e) => Some(e.full_message()),
            Refusal::TaskNotLive(detail)
            | Refusal::ChainUnavailable(detail)
            | Refusal::StoreUnavailable(detail)
            | Refusal::AuditUnavailable(detail) => Some(detail.clone()),
            _ => None,
        }
    }
}

/// Bad or untrusted evidence is the caller's (4xx); collateral we cannot get or use is ours
/// to fix, and the caller may retry (503).
fn evidence_status(e: &VerifyError) -> StatusCode {
    match e {
        VerifyError::EvidenceMalformed(_) | VerifyError::TeeMismatch { .. } => {
            StatusCode::BAD_REQUEST
        }
        VerifyError::QuoteInvalid(_) | VerifyError::ReportDataMismatch => StatusCode::UNAUTHORIZED,
        VerifyError::CollateralMissing(_)
        | VerifyError::CollateralUnavailable(_)
        | VerifyError::CollateralInvalid(_)
        | VerifyError::CollateralExpired { .. }
        | VerifyError::CollateralNotYetValid { .. } => StatusCode::SERVICE_UNAVAILABLE,
        VerifyError::DebugEnclave
        | VerifyError::TcbStatusRejected { .. }
        | VerifyError::AdvisoryRejected { .. }
        | VerifyError::MeasurementMismatch { .. }
        | VerifyError::SimulatedEvidenceRefused => StatusCode::FORBIDDEN,
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => Refusal::StoreUnavailable(reason),
            StoreError::AuditRefused(reason) => Refusal::AuditUnavailable(reason),
            other => Refusal::Internal(format!("store: {other}")),
        }
    }
}

impl From<VerifyError> for Refusal {
    fn from(e: VerifyError) -> Self {
        Refusal::Evidence(e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let code = self.code();
        metrics::counter!("sms_provision_refusals_total", "code" => code).increment(1);
        match &self {
            Refusal::Internal(cause) => {
                tracing::error!(code, cause = %cause, "provisioning failed")
            }
            _ => tracing::info!(code, reason = ?self.reason(), "provisioning refused"),
        }
        let body = match self.reason() {
            Some(reason) => json!({ "code": code, "error": self.message(), "reason": reason }),
            None => json!({ "code": code, "error": self.message() }),
        };
        (self.status(), Json(body)).into_response()
    }
}

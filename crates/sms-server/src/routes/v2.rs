//! Secrets API v2 (docs/secrets-api-v2.md): EIP-712 signed, replay-proof, versioned owner
//! operations on the same stored secrets as the iExec API.
//!
//! Every operation runs the same steps before it touches a secret:
//! `parse_request → verify (chain, domain, expiry, signature) → ensure_signer_budget →
//! ensure_operation → ensure_target → ensure_value → ensure_signer_owns_offline →
//! record_nonce → ensure_signer_owns_on_chain`. Nothing is read from the chain before the signature holds,
//! and the nonce is spent before the chain is asked.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use sms_core::audit::{AuditEvent, SecretAction};
use sms_core::secret::{SecretId, SecretKind, SecretValue};
use sms_core::secret_operation::{
    self, DomainClaim, FieldError, Operation, SecretList, SecretMetadata, SecretVersion,
    SignedRequest, Target, VerifiedOperation, public_name,
};
use sms_core::{Address, B256};
use sms_store::{CheckAndSet, NonceUse, RecordKey, RecordMetadata};

use crate::error::{ApiError, Shape};
use crate::state::AppState;

type Reply<T> = Result<Json<T>, ApiError>;

/// Every error of a v2 route in the v2 body (`{"error": {"code", "message", "field"}}`), the
/// store's and the ledger's included (docs/secrets-api-v2.md).
fn coded<T>(reply: Reply<T>) -> Reply<T> {
    reply.map_err(|e| e.shaped(Shape::Coded))
}

/// `GET /v2/domain`: the EIP-712 domain this SMS accepts.
pub async fn domain(State(state): State<AppState>) -> Json<DomainClaim> {
    Json(state.domain.claim())
}

/// `POST /v2/secrets/put`: create (`expectedVersion` 0) or replace version N.
pub async fn put(State(state): State<AppState>, body: Bytes) -> Reply<SecretVersion> {
    coded(put_secret(&state, &body).await)
}

async fn put_secret(state: &AppState, body: &Bytes) -> Reply<SecretVersion> {
    let authorized = authorize(state, body, Operation::Put).await?;
    let (Target::Secret(id), Some(value)) = (&authorized.target, &authorized.value) else {
        return Err(ApiError::internal("put without a secret or a value"));
    };
    let expected = expected_version(&authorized.operation)?;
    let action = if expected == 0 {
        SecretAction::Created
    } else {
        SecretAction::Updated
    };
    let event = written_event(id, &authorized, action);
    match state
        .store
        .audited(&event)
        .put(&RecordKey::from(id), value, expected)
        .await?
    {
        CheckAndSet::Written { version } => {
            if expected == 0 {
                metrics::gauge!("sms_secrets_stored", "kind" => id.kind.as_str()).increment(1.0);
            }
            tracing::info!(secret = %id, version, signer = %authorized.operation.signer, "secret written (v2)");
            Ok(Json(secret_version(id, version)))
        }
        CheckAndSet::Conflict { current } => Err(conflict(expected, current)),
    }
}

/// `POST /v2/secrets/delete`: a tombstone at version N (`expectedVersion` 0: any version).
pub async fn delete(State(state): State<AppState>, body: Bytes) -> Reply<SecretVersion> {
    coded(delete_secret(&state, &body).await)
}

async fn delete_secret(state: &AppState, body: &Bytes) -> Reply<SecretVersion> {
    let authorized = authorize(state, body, Operation::Delete).await?;
    let Target::Secret(id) = &authorized.target else {
        return Err(ApiError::internal("delete without a secret"));
    };
    let expected = expected_version(&authorized.operation)?;
    let key = RecordKey::from(id);
    let precondition = (expected > 0).then_some(expected);
    let event = written_event(id, &authorized, SecretAction::Deleted);
    match state
        .store
        .audited(&event)
        .tombstone(&key, precondition)
        .await?
    {
        CheckAndSet::Written { version } => {
            metrics::gauge!("sms_secrets_stored", "kind" => id.kind.as_str()).decrement(1.0);
            tracing::info!(secret = %id, version, signer = %authorized.operation.signer, "secret deleted (v2)");
            Ok(Json(secret_version(id, version)))
        }
        CheckAndSet::Conflict { current: 0 } => Err(not_found(id)),
        CheckAndSet::Conflict { current } => Err(conflict(expected, current)),
    }
}

/// `POST /v2/secrets/list`: names and versions of one kind and owner, never values.
pub async fn list(State(state): State<AppState>, body: Bytes) -> Reply<SecretList> {
    coded(list_secret(&state, &body).await)
}

async fn list_secret(state: &AppState, body: &Bytes) -> Reply<SecretList> {
    let authorized = authorize(state, body, Operation::List).await?;
    let Target::List { kind, owner } = authorized.target else {
        return Err(ApiError::internal("list without a list target"));
    };
    let rows = state
        .store
        .list(kind.as_str(), &sms_core::hex::encode_prefixed(owner))
        .await?;
    Ok(Json(SecretList {
        kind,
        owner,
        secrets: rows
            .iter()
            .map(|meta| metadata(kind, owner, meta))
            .collect(),
    }))
}

/// `POST /v2/secrets/show`: the metadata of one secret (version, times, key id), never its value.
pub async fn show(State(state): State<AppState>, body: Bytes) -> Reply<SecretMetadata> {
    coded(show_secret(&state, &body).await)
}

async fn show_secret(state: &AppState, body: &Bytes) -> Reply<SecretMetadata> {
    let authorized = authorize(state, body, Operation::Show).await?;
    let Target::Secret(id) = &authorized.target else {
        return Err(ApiError::internal("show without a secret"));
    };
    match state.store.metadata(&RecordKey::from(id)).await? {
        Some(meta) => Ok(Json(metadata(id.kind, id.owner, &meta))),
        None => Err(not_found(id)),
    }
}

/// The audit entry of a v2 write at the version it writes (identity, signer, version: never
/// the value); it commits with the write.
fn written_event<'a>(
    id: &'a SecretId,
    authorized: &'a Authorized,
    action: SecretAction,
) -> impl Fn(i64) -> AuditEvent + Send + Sync + 'a {
    move |version| AuditEvent::SecretWritten {
        secret: id.into(),
        action,
        signer: sms_core::hex::encode_prefixed(authorized.operation.signer),
        version,
        api: "v2".into(),
    }
}

/// What the steps establish: who signed, what they may touch, and for a put the value.
struct Authorized {
    operation: VerifiedOperation,
    target: Target,
    value: Option<SecretValue>,
}

/// The steps every v2 operation runs, in order (module documentation).
async fn authorize(
    state: &AppState,
    body: &Bytes,
    expected: Operation,
) -> Result<Authorized, ApiError> {
    let request = parse_request(body)?;
    let operation = secret_operation::verify(&request, &state.domain, state.clock.now()).map_err(
        |refusal| {
            ApiError::coded(
                StatusCode::UNAUTHORIZED,
                refusal.code(),
                Some(refusal.field()),
                refusal.to_string(),
            )
        },
    )?;
    ensure_signer_budget(state, &operation)?;
    let op = operation.operation(expected).map_err(invalid)?;
    let target = operation.target(op).map_err(invalid)?;
    let value = ensure_value(state, &request, op)?;
    ensure_signer_owns_offline(&operation, &target)?;
    record_nonce(state, &operation).await?;
    ensure_signer_owns_on_chain(state, &operation, &target).await?;
    Ok(Authorized {
        operation,
        target,
        value,
    })
}

/// The signer's request rate (`--rate-limit-signer`), counted before the nonce is spent (a
/// refused request can be sent again as is) and before the chain is asked.
fn ensure_signer_budget(state: &AppState, operation: &VerifiedOperation) -> Result<(), ApiError> {
    state
        .rates
        .check_signer(crate::routes::Feature::SecretsV2.tag(), operation.signer)
        .map_err(|refusal| ApiError::rate_limited(&refusal))
}

/// Step 1: the body is a [`SignedRequest`] (400 naming what is wrong).
fn parse_request(body: &Bytes) -> Result<SignedRequest, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::coded(
            StatusCode::BAD_REQUEST,
            "MALFORMED_REQUEST",
            None,
            format!(
                "the body must be a JSON signed request {{domain, message, signer, signature, value?}}: {e}"
            ),
        )
    })
}

/// A put carries a value whose keccak256 is the signed `valueHash`, within the size limit;
/// the other operations carry none and sign 32 zero bytes.
fn ensure_value(
    state: &AppState,
    request: &SignedRequest,
    operation: Operation,
) -> Result<Option<SecretValue>, ApiError> {
    let value_hash = request.message.value_hash;
    if operation != Operation::Put {
        if request.value.is_some() {
            return Err(invalid(field_error("value", "only put carries a value")));
        }
        if value_hash != B256::ZERO {
            return Err(invalid(field_error(
                "message.valueHash",
                "must be 32 zero bytes for list, show and delete",
            )));
        }
        return Ok(None);
    }
    let Some(value) = &request.value else {
        return Err(invalid(field_error("value", "put needs the value")));
    };
    if secret_operation::value_hash(value.as_bytes()) != value_hash {
        return Err(ApiError::coded(
            StatusCode::UNAUTHORIZED,
            "VALUE_NOT_SIGNED",
            Some("value"),
            "keccak256 of the value is not the signed message.valueHash",
        ));
    }
    let body = Bytes::copy_from_slice(value.as_bytes());
    super::secrets::checked_value(state, &body, StatusCode::PAYLOAD_TOO_LARGE)
        .map(Some)
        .map_err(|e| e.at_field("value"))
}

/// Requester and web2 secrets belong to the signer's own address: checked without a chain read.
fn ensure_signer_owns_offline(
    operation: &VerifiedOperation,
    target: &Target,
) -> Result<(), ApiError> {
    let owned_directly = matches!(target.kind(), SecretKind::Requester | SecretKind::Web2);
    if owned_directly && target.owner() != operation.signer {
        return Err(not_owner(format!(
            "{} secrets of {} can only be managed by {}, not by {}",
            target.kind(),
            target.owner(),
            target.owner(),
            operation.signer
        )));
    }
    Ok(())
}

/// The nonce is single-use for this signer until the request's expiry (all replicas share it).
async fn record_nonce(state: &AppState, operation: &VerifiedOperation) -> Result<(), ApiError> {
    let (nonce, expiry) = operation.nonce();
    let expires_at = i64::try_from(expiry).unwrap_or(i64::MAX);
    let signer = sms_core::hex::encode_prefixed(operation.signer);
    match state
        .store
        .use_nonce(&signer, &sms_core::hex::encode_prefixed(nonce), expires_at)
        .await?
    {
        NonceUse::Fresh => {
            sweep_expired_nonces(state);
            Ok(())
        }
        NonceUse::Reused => Err(ApiError::coded(
            StatusCode::UNAUTHORIZED,
            "NONCE_REUSED",
            Some("message.nonce"),
            "this signer already used this nonce: a replayed request, or sign again with a fresh nonce",
        )),
    }
}

/// At most once a minute per process, deletes the nonces whose request expired (in the
/// background; a failure only delays the cleanup). Nonces live at most
/// [`secret_operation::MAX_LIFETIME_SECS`], so the table stays bounded by the request rate.
fn sweep_expired_nonces(state: &AppState) {
    static LAST_SWEEP: AtomicU64 = AtomicU64::new(0);
    let now = state.clock.now();
    let last = LAST_SWEEP.load(Ordering::Relaxed);
    if now < last + 60
        || LAST_SWEEP
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let store = state.store.clone();
    tokio::spawn(async move {
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        match store.delete_expired_nonces(now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "expired v2 request nonces deleted"),
            Err(e) => tracing::warn!(error = %e, "nonce sweep failed"),
        }
    });
}

/// An app developer secret or a dataset key belongs to the app's or dataset's owner on chain now.
async fn ensure_signer_owns_on_chain(
    state: &AppState,
    operation: &VerifiedOperation,
    target: &Target,
) -> Result<(), ApiError> {
    let (what, a_what) = match target.kind() {
        SecretKind::AppDeveloper => ("app", "an app"),
        SecretKind::Web3 => ("dataset", "a dataset"),
        SecretKind::Requester | SecretKind::Web2 => return Ok(()),
    };
    let entry = target.owner();
    let owner = state.ledger.owner_of(entry).await?;
    match owner {
        Some(owner) if owner == operation.signer => Ok(()),
        Some(owner) => Err(not_owner(format!(
            "signer {} is not {owner}, the owner of {what} {entry}",
            operation.signer
        ))),
        None => Err(not_owner(format!(
            "{entry} is not {a_what} known to {}",
            state.ledger.describe()
        ))),
    }
}

fn expected_version(operation: &VerifiedOperation) -> Result<i64, ApiError> {
    i64::try_from(operation.message.expected_version).map_err(|_| {
        invalid(field_error(
            "message.expectedVersion",
            "versions are below 2^63",
        ))
    })
}

fn field_error(field: &'static str, reason: &str) -> FieldError {
    FieldError {
        field,
        reason: reason.to_owned(),
    }
}

fn invalid(error: FieldError) -> ApiError {
    ApiError::coded(
        StatusCode::BAD_REQUEST,
        "INVALID_FIELD",
        Some(error.field),
        error.reason,
    )
}

fn not_owner(message: String) -> ApiError {
    ApiError::coded(
        StatusCode::UNAUTHORIZED,
        "NOT_OWNER",
        Some("message.owner"),
        message,
    )
}

fn not_found(id: &SecretId) -> ApiError {
    ApiError::coded(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        Some("message.name"),
        format!("{id} does not exist (or was deleted)"),
    )
}

fn conflict(expected: i64, current: i64) -> ApiError {
    let message = if current == 0 {
        format!(
            "expected version {expected}, but the secret does not exist: use expectedVersion 0 to create it"
        )
    } else if expected == 0 {
        format!(
            "the secret exists at version {current}: use expectedVersion {current} to replace it"
        )
    } else {
        format!("expected version {expected}, the current version is {current}")
    };
    ApiError::coded(
        StatusCode::CONFLICT,
        "VERSION_CONFLICT",
        Some("message.expectedVersion"),
        message,
    )
    .with_detail("currentVersion", json!(current))
}

fn secret_version(id: &SecretId, version: i64) -> SecretVersion {
    SecretVersion {
        kind: id.kind,
        owner: id.owner,
        name: public_name(id.kind, &id.name).to_owned(),
        version,
    }
}

fn metadata(kind: SecretKind, owner: Address, meta: &RecordMetadata) -> SecretMetadata {
    SecretMetadata {
        kind,
        owner,
        name: public_name(kind, &meta.name).to_owned(),
        version: meta.version,
        created_at: meta.created_at,
        updated_at: meta.updated_at,
        key_id: meta.key_id,
    }
}

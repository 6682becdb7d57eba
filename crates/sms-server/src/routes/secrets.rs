//! The iExec secret API. Check order on every push: authorization, then the name format,
//! then the size, then the insert (docs/iexec-compatibility.md §1, §2).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use sms_core::audit::{AuditEvent, SecretAction};
use sms_core::challenge;
use sms_core::secret::{RequesterSecretName, SecretId, SecretKind, SecretValue, parse_address};
use sms_core::signature::EthSignature;
use sms_core::{Address, B256};
use sms_store::{Insert, RecordKey, Update};

use crate::edge::Params;
use crate::error::{ApiError, Shape};
use crate::state::AppState;

type Reply = Result<StatusCode, ApiError>;

fn address(value: &str, field: &str) -> Result<Address, ApiError> {
    parse_address(value).map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

fn query_param<'a>(query: &'a HashMap<String, String>, name: &str) -> Result<&'a str, ApiError> {
    query
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("missing query parameter '{name}'")))
}

/// The signer of `digest` according to the `Authorization` header (401 when malformed).
fn recover_signer(headers: &HeaderMap, digest: &B256) -> Result<Address, ApiError> {
    let header = headers
        .get("authorization")
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing Authorization header (expected the 0x-hex EIP-191 signature)",
            )
        })?
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not ASCII"))?;
    let signature =
        EthSignature::parse(header).map_err(|e| ApiError::unauthorized(e.to_string()))?;
    signature
        .recover_eip191(digest)
        .map_err(|e| ApiError::unauthorized(e.to_string()))
}

/// Verifies the `Authorization` header signs `digest` and recovers to `expected`.
fn authorize(headers: &HeaderMap, digest: &B256, expected: Address) -> Result<Address, ApiError> {
    let signer = recover_signer(headers, digest)?;
    if signer != expected {
        return Err(ApiError::unauthorized(format!(
            "signer {signer} is not {expected}"
        )));
    }
    Ok(signer)
}

/// Verifies that `digest` is signed by the current owner of an app or dataset. The signer is
/// recovered and its request rate counted before the ledger is asked, so garbage costs no
/// chain call.
async fn authorize_entry_owner(
    state: &AppState,
    headers: &HeaderMap,
    digest: &B256,
    entry: Address,
    what: &str,
) -> Result<Address, ApiError> {
    let signer = recover_signer(headers, digest)?;
    state
        .rates
        .check_signer(crate::limits::family::CHAIN_PUSH, signer)
        .map_err(|refusal| ApiError::rate_limited(&refusal))?;
    let owner = state.ledger.owner_of(entry).await?.ok_or_else(|| {
        ApiError::unauthorized(format!(
            "{entry} is not a {what} known to {}",
            state.ledger.describe()
        ))
    })?;
    if signer != owner {
        return Err(ApiError::unauthorized(format!(
            "signer {signer} is not {owner}, the owner of {what} {entry}"
        )));
    }
    Ok(signer)
}

/// Size (after authorization) and UTF-8 checks of a pushed value.
pub(crate) fn checked_value(
    state: &AppState,
    body: &Bytes,
    too_large: StatusCode,
) -> Result<SecretValue, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the request body (the secret value) is empty",
        ));
    }
    if body.len() > state.max_secret_bytes {
        let message = if state.max_secret_bytes == sms_core::secret::DEFAULT_MAX_SECRET_BYTES {
            "Secret size should not exceed 4 Kb".to_owned()
        } else {
            format!(
                "Secret size should not exceed {} bytes",
                state.max_secret_bytes
            )
        };
        return Err(ApiError::new(too_large, message).with_reason(format!(
            "the value has {} bytes, the limit is {}",
            body.len(),
            state.max_secret_bytes
        )));
    }
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::bad_request("the secret value must be UTF-8 text"));
    }
    Ok(SecretValue::new(body.to_vec()))
}

/// The audit entry of a v1 secret write at the version it writes (identity, signer,
/// version: never the value); it commits with the write.
fn written_event(
    id: &SecretId,
    signer: Address,
    action: SecretAction,
) -> impl Fn(i64) -> AuditEvent + Send + Sync + '_ {
    move |version| AuditEvent::SecretWritten {
        secret: id.into(),
        action,
        signer: sms_core::hex::encode_prefixed(signer),
        version,
        api: "v1".into(),
    }
}

async fn insert(state: &AppState, id: &SecretId, signer: Address, value: &SecretValue) -> Reply {
    let event = written_event(id, signer, SecretAction::Created);
    match state
        .store
        .audited(&event)
        .insert(&RecordKey::from(id), value, None)
        .await?
    {
        Insert::Inserted => {
            metrics::gauge!("sms_secrets_stored", "kind" => id.kind.as_str()).increment(1.0);
            tracing::info!(secret = %id, "secret stored");
            Ok(StatusCode::NO_CONTENT)
        }
        Insert::AlreadyExists => Err(ApiError::new(StatusCode::CONFLICT, "Secret already exists")
            .with_reason(format!("{id} exists and cannot be updated"))),
    }
}

async fn exists(state: &AppState, id: &SecretId) -> Reply {
    if state.store.exists(&RecordKey::from(id)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Ok(StatusCode::NOT_FOUND)
    }
}

// ---- web3: dataset keys -------------------------------------------------------------------

pub async fn check_web3(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let dataset = address(query_param(&q, "secretAddress")?, "secretAddress")?;
    exists(&state, &SecretId::web3(dataset)).await
}

pub async fn push_web3(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let dataset = address(query_param(&q, "secretAddress")?, "secretAddress")?;
    let digest = challenge::web3_secret(dataset.as_slice(), &body);
    let signer = authorize_entry_owner(&state, &headers, &digest, dataset, "dataset").await?;
    let value = checked_value(&state, &body, StatusCode::PAYLOAD_TOO_LARGE)?;
    insert(&state, &SecretId::web3(dataset), signer, &value).await
}

// ---- web2: owner-named secrets ------------------------------------------------------------

pub async fn check_web2(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let owner = address(query_param(&q, "ownerAddress")?, "ownerAddress")?;
    let name = query_param(&q, "secretName")?;
    let id = SecretId::web2(owner, name)
        .map_err(|e| ApiError::bad_request(format!("secretName: {e}")))?;
    exists(&state, &id).await
}

/// Authorization of a web2 write: the owner signs the name exactly as sent.
fn authorize_web2(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(SecretId, Address), ApiError> {
    let owner = address(query_param(q, "ownerAddress")?, "ownerAddress")?;
    let name = query_param(q, "secretName")?;
    let signer = authorize(
        headers,
        &challenge::named_secret(owner.as_slice(), name, body),
        owner,
    )?;
    SecretId::web2(owner, name)
        .map(|id| (id, signer))
        .map_err(|e| ApiError::bad_request(format!("secretName: {e}")))
}

pub async fn push_web2(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let (id, signer) = authorize_web2(&q, &headers, &body)?;
    let value = checked_value(&state, &body, StatusCode::PAYLOAD_TOO_LARGE)?;
    insert(&state, &id, signer, &value).await
}

pub async fn update_web2(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let (id, signer) = authorize_web2(&q, &headers, &body)?;
    let value = checked_value(&state, &body, StatusCode::PAYLOAD_TOO_LARGE)?;
    let event = written_event(&id, signer, SecretAction::Updated);
    match state
        .store
        .audited(&event)
        .update(&RecordKey::from(&id), &value)
        .await?
    {
        Update::Updated { version } => {
            tracing::info!(secret = %id, version, "secret updated");
            Ok(StatusCode::NO_CONTENT)
        }
        Update::Unchanged => Ok(StatusCode::NO_CONTENT),
        Update::NotFound => Err(ApiError::new(StatusCode::NOT_FOUND, "Secret not found")
            .with_reason(format!("{id} does not exist: create it with POST"))),
    }
}

// ---- app developer secret -----------------------------------------------------------------

pub async fn check_app(State(state): State<AppState>, Params(app): Params<String>) -> Reply {
    let app = address(&app, "appAddress").map_err(|e| e.shaped(Shape::List))?;
    exists(&state, &SecretId::app_developer(app)).await
}

pub async fn push_app(
    State(state): State<AppState>,
    Params(app): Params<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let push = async {
        let app = address(&app, "appAddress")?;
        let digest = challenge::app_developer_secret(&app, &body);
        let signer = authorize_entry_owner(&state, &headers, &digest, app, "app").await?;
        let value = checked_value(&state, &body, StatusCode::PAYLOAD_TOO_LARGE)?;
        insert(&state, &SecretId::app_developer(app), signer, &value).await
    };
    push.await.map_err(|e| e.shaped(Shape::List))
}

// ---- requester secrets --------------------------------------------------------------------

pub async fn check_requester(
    State(state): State<AppState>,
    Params((requester, name)): Params<(String, String)>,
) -> Reply {
    let check = async {
        let requester = address(&requester, "requesterAddress")?;
        let name =
            RequesterSecretName::parse(&name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        exists(&state, &SecretId::requester(requester, &name)).await
    };
    check.await.map_err(|e| e.shaped(Shape::List))
}

pub async fn push_requester(
    State(state): State<AppState>,
    Params((requester, name)): Params<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let push = async {
        let requester = address(&requester, "requesterAddress")?;
        let signer = authorize(
            &headers,
            &challenge::named_secret(requester.as_slice(), &name, &body),
            requester,
        )?;
        let name =
            RequesterSecretName::parse(&name).map_err(|e| ApiError::bad_request(e.to_string()))?;
        // iExec answers 400, not 413, for an oversized requester secret.
        let value = checked_value(&state, &body, StatusCode::BAD_REQUEST)?;
        insert(
            &state,
            &SecretId::requester(requester, &name),
            signer,
            &value,
        )
        .await
    };
    push.await.map_err(|e| e.shaped(Shape::List))
}

/// Number of stored secrets per kind, for the metrics gauges at start-up.
pub async fn publish_counts(state: &AppState) -> Result<(), sms_store::StoreError> {
    let counts = state.store.count_by_namespace().await?;
    for kind in SecretKind::ALL {
        let n = counts
            .iter()
            .find(|(ns, _)| ns == kind.as_str())
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("sms_secrets_stored", "kind" => kind.as_str()).set(n as f64);
    }
    Ok(())
}

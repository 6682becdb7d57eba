//! The admin API (`/admin/*`, docs/keys-and-backups.md): key status, data-key rotation,
//! re-wrapping, key retirement, online backup. Mounted only when `--admin-token-file` is
//! given (otherwise every `/admin/*` path is 404, like any unknown route); every call needs
//! `Authorization: Bearer <token>` (or iExec's `X-API-KEY: <token>`), compared in constant
//! time, and is logged with its caller.
//!
//! iExec's names served here: `POST /admin/backup` (201) and
//! `POST /admin/{storageID}/restore-backup` (always refused while serving: 409). Not served:
//! `replicate-backup`, `delete-backup`, `copy-to` — this server keeps no backup files of its
//! own (the backup is streamed to the caller), so there is nothing to copy or delete.

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde_json::{Value, json};
use sms_store::{KeyStatus, RecordKey, RewrapBatch, StoreError};
use std::collections::HashMap;

use crate::admin_config::{digest, same_digest};
use crate::error::ApiError;
use crate::state::AppState;

/// Who called, for the log: never the token.
struct Caller(String);

/// Step 1 of every admin call: the admin API is on and the bearer token is the configured one.
fn ensure_admin(state: &AppState, headers: &HeaderMap, action: &str) -> Result<Caller, ApiError> {
    let Some(admin) = &state.admin else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "No such route"));
    };
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let caller = Caller(format!("agent={agent} forwarded-for={forwarded}"));
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    let Some(presented) = presented else {
        tracing::warn!(action, caller = %caller.0, "admin call without a token");
        return Err(unauthorized(
            "Authorization: Bearer <admin token> is missing",
        ));
    };
    if !same_digest(&digest(presented.trim().as_bytes()), &admin.token_digest) {
        tracing::warn!(action, caller = %caller.0, "admin call with a wrong token");
        return Err(unauthorized("the admin token is not the configured one"));
    }
    tracing::info!(action, caller = %caller.0, "admin call");
    Ok(caller)
}

/// The audit entry of an admin call that changed something (never key material), waited
/// for. Key operations span several writes and are done first: if their entry cannot be
/// written the answer is a 503 that says the action was done but is not in the log.
async fn record_admin(state: &AppState, action: &str, detail: String) -> Result<(), ApiError> {
    admin_entry(state, action, detail).await.map_err(|e| {
        ApiError::from(e).with_reason(format!(
            "{action} was done, but its audit entry could not be written"
        ))
    })
}

async fn admin_entry(state: &AppState, action: &str, detail: String) -> Result<(), StoreError> {
    let event = sms_core::audit::AuditEvent::AdminAction {
        action: action.to_owned(),
        detail,
    };
    crate::audit::record(&state.store, &event)
        .await
        .map(|_| ())
        .map_err(|e| StoreError::AuditRefused(e.to_string()))
}

fn unauthorized(reason: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "Invalid admin token").with_reason(reason)
}

fn status_json(status: &KeyStatus) -> Value {
    json!({
        "masterKeyFingerprint": status.master_fingerprint,
        "currentKeyId": status.current_key_id,
        "maxEncryptionsPerKey": status.max_encryptions,
        "pendingRewrap": status.pending_rewrap,
        "keys": status.keys.iter().map(|k| json!({
            "id": k.id,
            "createdAt": k.created_at,
            "encryptions": k.encryptions,
            "rows": k.rows,
            "masterKeyFingerprint": k.master_fingerprint,
            "current": k.current,
            "legacy": k.legacy,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /admin/keys`: key ids, rows and encryptions per key; never key material.
pub async fn key_status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    ensure_admin(&state, &headers, "key-status")?;
    Ok(Json(status_json(&state.store.key_status().await?)))
}

/// `POST /admin/keys/rotate`: a new data key now.
pub async fn rotate(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = ensure_admin(&state, &headers, "rotate-data-key")?;
    let id = state.store.rotate_data_key().await?;
    tracing::info!(data_key = id, caller = %caller.0, "data key rotated");
    record_admin(&state, "rotate-data-key", format!("new data key {id}")).await?;
    Ok(Json(status_json(&state.store.key_status().await?)))
}

/// Largest `limit` of one rewrap batch.
pub const MAX_REWRAP_BATCH: u32 = 10_000;

fn encode_cursor(key: &RecordKey) -> String {
    B64URL.encode(format!("{}\0{}\0{}", key.namespace, key.owner, key.name))
}

fn decode_cursor(text: &str) -> Result<RecordKey, ApiError> {
    let bad = || ApiError::bad_request("after: not a cursor returned by a previous batch");
    let bytes = B64URL.decode(text).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.split('\0');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(ns), Some(owner), Some(name), None) => Ok(RecordKey::new(ns, owner, name)),
        _ => Err(bad()),
    }
}

fn batch_json(batch: &RewrapBatch, pending: u64) -> Value {
    json!({
        "currentKeyId": batch.current_key_id,
        "rewrapped": batch.rewrapped,
        "raced": batch.raced,
        "tombstones": batch.tombstones,
        "unreadable": batch.unreadable.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        "next": batch.next.as_ref().map(encode_cursor),
        "pendingRewrap": pending,
    })
}

/// `POST /admin/keys/rewrap?limit=N&after=CURSOR`: re-seals one bounded batch under the
/// current key; `next` is the cursor of the following batch (null at the end of a pass).
pub async fn rewrap(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    ensure_admin(&state, &headers, "rewrap")?;
    if let Some(unknown) = query
        .keys()
        .find(|k| !matches!(k.as_str(), "limit" | "after"))
    {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {unknown}: expected limit and after"
        )));
    }
    let limit = match query.get("limit") {
        None => 500,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_REWRAP_BATCH).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit: expected 1 to {MAX_REWRAP_BATCH}"))
            })?,
    };
    let after = query.get("after").map(|c| decode_cursor(c)).transpose()?;
    let batch = state.store.rewrap_batch(after.as_ref(), limit).await?;
    record_admin(
        &state,
        "rewrap",
        format!(
            "{} rows and {} tombstones moved to data key {}",
            batch.rewrapped, batch.tombstones, batch.current_key_id
        ),
    )
    .await?;
    let status = state.store.key_status().await?;
    Ok(Json(batch_json(&batch, status.pending_rewrap)))
}

/// `POST /admin/keys/retire`: deletes the data keys no row uses (never the current one).
pub async fn retire(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = ensure_admin(&state, &headers, "retire-data-keys")?;
    let retired = state.store.retire_unused_keys().await?;
    tracing::info!(?retired, caller = %caller.0, "data keys retired");
    record_admin(&state, "retire-data-keys", format!("retired {retired:?}")).await?;
    Ok(Json(json!({ "retired": retired })))
}

/// `POST /admin/backup` (iExec's name and 201): a consistent online copy of the SQLite store,
/// streamed as the answer. It holds the wrapped data keys, never the master key. PostgreSQL
/// stores are backed up with pg_dump (409 says so).
pub async fn backup(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = ensure_admin(&state, &headers, "backup")?;
    let Some(admin) = &state.admin else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "No such route"));
    };
    let Ok(_one) = admin.backup.try_lock() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "a backup is already running",
        ));
    };
    let tmp = admin
        .data_dir
        .join(format!(".backup-{:016x}.db", rand::random::<u64>()));
    match state.store.backup_to(&tmp).await {
        Ok(()) => {}
        Err(StoreError::Unsupported(reason)) => {
            return Err(
                ApiError::new(StatusCode::CONFLICT, "backup not served for this store")
                    .with_reason(reason),
            );
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    }
    let file = tokio::fs::File::open(&tmp).await;
    // Unlinked now: the open file is streamed, nothing is left in the data directory.
    let _ = std::fs::remove_file(&tmp);
    let file = file.map_err(ApiError::internal)?;
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let fingerprint = state.store.key_status().await?.master_fingerprint;
    tracing::info!(bytes = size, caller = %caller.0, "backup streamed");
    // Before the first byte leaves: no copy of the store without its entry.
    admin_entry(&state, "backup", format!("{size} bytes streamed")).await?;
    let mut response = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(file)));
    *response.status_mut() = StatusCode::CREATED;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.sqlite3"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(v) = HeaderValue::from_str(&fingerprint) {
        headers.insert("x-sms-master-key-fingerprint", v);
    }
    Ok(response)
}

/// `POST /admin/{storageID}/restore-backup` (iExec's name): refused while serving. A restore
/// replaces the whole store, so it runs with the server stopped (`sms operator restore`).
pub async fn restore_backup(
    State(state): State<AppState>,
    headers: HeaderMap,
    crate::edge::Params(storage_id): crate::edge::Params<String>,
) -> Result<Response, ApiError> {
    ensure_admin(&state, &headers, "restore-backup")?;
    if storage_id.is_empty()
        || storage_id.len() % 2 != 0
        || !storage_id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(ApiError::bad_request(
            "storageID: expected the hex encoding of a directory path (e.g. 2f6261636b7570)",
        ));
    }
    Err(ApiError::new(StatusCode::CONFLICT, "restore refused while serving").with_reason(
        "stop the server, then run `sms operator restore <file> --data-dir <dir>` (docs/keys-and-backups.md)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_garbage_is_refused() {
        let key = RecordKey::new("web2", "0xab", "name/with\u{e9}");
        let back = decode_cursor(&encode_cursor(&key));
        assert!(matches!(back, Ok(ref k) if k == &key));
        assert!(decode_cursor("%%%").is_err());
        assert!(decode_cursor(&B64URL.encode("only\0two")).is_err());
    }
}

//! What the provisioner keeps in the store: single-use nonces and the release log of each
//! service of each session (also its release counter). Neither holds an environment value.

use serde::{Deserialize, Serialize};
use sms_core::B256;
use sms_core::secret::SecretValue;
use sms_store::{Insert, Namespace, RecordKey, Records, Store, StoreError, Versioned};

// Nonces: `RecordKey("tee-provision-nonce", "", hex(nonce))`, expiring with the nonce.
// Release logs: `RecordKey("tee-release", taskId, service)`, kept for audit. One per task and
// service, whatever the session: the release budget is the task's.

/// Attempts of the check-and-set loop before answering "busy".
const RESERVE_ATTEMPTS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NonceRecord {
    pub session_id: String,
    pub service: String,
    pub expires_at_ms: u64,
}

/// One release: who received what, when (never a value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseEntry {
    /// 1 for the first release of the service.
    pub number: u32,
    /// Unix seconds.
    pub at: u64,
    /// The session released from.
    #[serde(default)]
    pub session_id: String,
    /// The worker the session was created for.
    pub worker: String,
    pub task_id: String,
    /// `sgx`, `tdx` or `simulated`.
    pub tee: String,
    /// The verified measurement, lowercase hex.
    pub measurement: String,
    pub tcb_status: Option<String>,
    pub advisory_ids: Vec<String>,
    /// SHA-256 of the raw public key the environment was sealed to.
    pub public_key_sha256: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseLog {
    pub releases: Vec<ReleaseEntry>,
}

impl ReleaseLog {
    pub fn count(&self) -> u32 {
        u32::try_from(self.releases.len()).unwrap_or(u32::MAX)
    }
}

/// The single-use nonces' rows: `("", hex(nonce))`.
fn nonces(store: &Store) -> Records<'_> {
    store.records(Namespace::TeeProvisionNonce)
}

/// The release logs' rows: `(<taskId>, <service>)`.
fn releases(store: &Store) -> Records<'_> {
    store.records(Namespace::TeeRelease)
}

fn release_owner(task_id: &B256) -> String {
    sms_core::hex::encode_prefixed(task_id)
}

/// The key of a stored session's row, `("", <sessionId>)`: `/tee/sessions` writes it, the
/// provisioner reads it.
pub fn session_key(session_id: &str) -> RecordKey {
    Namespace::TeeSession.key("", session_id)
}

/// The key of a nonce's row.
pub fn nonce_key(nonce: &[u8]) -> RecordKey {
    Namespace::TeeProvisionNonce.key("", sms_core::hex::encode(nonce))
}

/// The task a session id names: `/tee/sessions` draws `<10 characters>0000<taskId>`, so a
/// service's release log can be read in the same round trip as the session. Only a guess:
/// the stored session decides which task it is for.
pub fn task_named_by(session_id: &str) -> Option<B256> {
    let at = session_id.len().checked_sub(66)?;
    session_id.get(at..)?.parse().ok()
}

/// A release log read ahead of knowing the session's task: its row, for the task it was
/// read for.
pub struct LogRead {
    pub task_id: B256,
    pub row: Option<Versioned>,
}

impl LogRead {
    /// The row read, if it was read for `task_id`.
    pub fn for_task(self, task_id: &B256) -> Option<Option<Versioned>> {
        (self.task_id == *task_id).then_some(self.row)
    }
}

/// The key of a service's release log (what [`release_log`] reads).
pub fn release_key(task_id: &B256, service: &str) -> RecordKey {
    Namespace::TeeRelease.key(release_owner(task_id), service)
}

fn to_value<T: Serialize>(value: &T) -> Result<SecretValue, StoreError> {
    serde_json::to_vec(value)
        .map(SecretValue::new)
        .map_err(|e| StoreError::Key(format!("record encoding: {e}")))
}

fn from_value<T: for<'de> Deserialize<'de>>(
    value: &SecretValue,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_slice(value.as_bytes())
        .map_err(|e| StoreError::Key(format!("{what} record is not decodable: {e}")))
}

/// Inserts a fresh nonce; false if it already exists (a collision of 32 random bytes).
pub async fn insert_nonce(
    store: &Store,
    nonce: &[u8],
    record: &NonceRecord,
) -> Result<bool, StoreError> {
    let expires = i64::try_from(record.expires_at_ms.div_ceil(1000)).unwrap_or(i64::MAX);
    let inserted = nonces(store)
        .insert(
            "",
            &sms_core::hex::encode(nonce),
            &to_value(record)?,
            Some(expires),
        )
        .await?;
    Ok(inserted == Insert::Inserted)
}

/// Uses up the nonce whose row was read as `found`: what it was issued for, `None` if it was
/// unknown or another request took it first.
pub async fn take_nonce(
    store: &Store,
    nonce: &[u8],
    found: Option<Versioned>,
) -> Result<Option<NonceRecord>, StoreError> {
    let Some(found) = found else {
        return Ok(None);
    };
    if !store.delete_at(&nonce_key(nonce), found.version).await? {
        return Ok(None);
    }
    Ok(Some(from_value(&found.value, "nonce")?))
}

/// The row of the service's release log: `known` when it was read ahead for this task,
/// read now otherwise.
async fn log_row(
    store: &Store,
    task_id: &B256,
    service: &str,
    known: Option<Option<Versioned>>,
) -> Result<Option<Versioned>, StoreError> {
    match known {
        Some(row) => Ok(row),
        None => releases(store).get(&release_owner(task_id), service).await,
    }
}

/// The service's release log, from `known` when it was read ahead for this task.
pub async fn release_log(
    store: &Store,
    task_id: &B256,
    service: &str,
    known: Option<Option<Versioned>>,
) -> Result<Option<ReleaseLog>, StoreError> {
    log_row(store, task_id, service, known)
        .await?
        .map(|v| from_value(&v.value, "release log"))
        .transpose()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// Recorded as this release number.
    Recorded(u32),
    LimitReached,
    /// Lost the check-and-set race too many times.
    Busy,
}

/// Appends `entry` to the service's release log unless `limit` releases are already recorded.
/// The first release is an insert-once, later ones a check-and-set on the log's version, so
/// concurrent releases can never record more than `limit` (`known`, a row read ahead, can
/// only cost a lost check-and-set if stale). The count commits with the audit entry `granted`
/// builds from the release number, or nothing is counted.
pub async fn reserve_release(
    store: &Store,
    task_id: &B256,
    service: &str,
    limit: u32,
    mut entry: ReleaseEntry,
    granted: &(dyn Fn(u32) -> sms_core::audit::AuditEvent + Send + Sync),
    mut known: Option<Option<Versioned>>,
) -> Result<Reserve, StoreError> {
    let (releases, owner) = (releases(store), release_owner(task_id));
    for _ in 0..RESERVE_ATTEMPTS {
        // The first attempt may use the log read ahead; a lost check-and-set reads it again.
        match log_row(store, task_id, service, known.take()).await? {
            None => {
                if limit == 0 {
                    return Ok(Reserve::LimitReached);
                }
                entry.number = 1;
                let log = ReleaseLog {
                    releases: vec![entry.clone()],
                };
                let event = |_| granted(1);
                if releases
                    .audited(&event)
                    .insert(&owner, service, &to_value(&log)?, None)
                    .await?
                    == Insert::Inserted
                {
                    return Ok(Reserve::Recorded(1));
                }
            }
            Some(current) => {
                let mut log: ReleaseLog = from_value(&current.value, "release log")?;
                if log.count() >= limit {
                    return Ok(Reserve::LimitReached);
                }
                entry.number = log.count().saturating_add(1);
                log.releases.push(entry.clone());
                let event = |_| granted(entry.number);
                if releases
                    .audited(&event)
                    .compare_and_set(&owner, service, &to_value(&log)?, current.version, None)
                    .await?
                {
                    return Ok(Reserve::Recorded(entry.number));
                }
            }
        }
    }
    Ok(Reserve::Busy)
}

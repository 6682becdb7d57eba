//! What the provisioner keeps in the store: single-use nonces and the release log of each
//! service of each session (also its release counter). Neither holds an environment value.

use serde::{Deserialize, Serialize};
use sms_core::B256;
use sms_core::secret::SecretValue;
use sms_store::{Insert, Namespace, RecordKey, Records, Store, StoreError};

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

/// The stored sessions' rows, `("", <sessionId>)`: `/tee/sessions` writes them, the
/// provisioner reads them.
pub fn sessions(store: &Store) -> Records<'_> {
    store.records(Namespace::TeeSession)
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

/// Removes the nonce and returns what it was issued for; `None` if unknown or already taken.
pub async fn take_nonce(store: &Store, nonce: &[u8]) -> Result<Option<NonceRecord>, StoreError> {
    match nonces(store)
        .take("", &sms_core::hex::encode(nonce))
        .await?
    {
        Some(taken) => Ok(Some(from_value(&taken.value, "nonce")?)),
        None => Ok(None),
    }
}

pub async fn release_log(
    store: &Store,
    task_id: &B256,
    service: &str,
) -> Result<Option<ReleaseLog>, StoreError> {
    match releases(store)
        .get(&release_owner(task_id), service)
        .await?
    {
        Some(v) => Ok(Some(from_value(&v.value, "release log")?)),
        None => Ok(None),
    }
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
/// concurrent releases can never record more than `limit`.
/// Counts one release of `service` against the task's budget; the count commits with the
/// audit entry `granted` builds from the release number, or nothing is counted.
pub async fn reserve_release(
    store: &Store,
    task_id: &B256,
    service: &str,
    limit: u32,
    mut entry: ReleaseEntry,
    granted: &(dyn Fn(u32) -> sms_core::audit::AuditEvent + Send + Sync),
) -> Result<Reserve, StoreError> {
    let (releases, owner) = (releases(store), release_owner(task_id));
    for _ in 0..RESERVE_ATTEMPTS {
        match releases.get(&owner, service).await? {
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

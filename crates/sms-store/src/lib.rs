//! Durable, encrypted storage of everything the SMS keeps: secrets, enclave-challenge keys,
//! sessions, nonces.
//!
//! - [`Store`] is what the server uses: it seals values before they reach a [`Backend`] and
//!   opens them on the way back. Plaintext never reaches the database.
//! - [`Backend`] is a small key-value trait over sealed rows, with insert-once, check-and-set
//!   and expiry. Implementations: [`sqlite::SqliteBackend`] (embedded default, group commit)
//!   and [`postgres::PostgresBackend`] (shared by several replicas).

pub mod crypto;
pub mod postgres;
mod sql;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use sms_core::secret::{SecretId, SecretValue};
use thiserror::Error;

pub use crypto::{KeyRing, MasterKey};

/// Identity of a stored record. `namespace` separates kinds (`web2`, `requester`,
/// `tee-challenge`, …); `owner` is normally a lowercase 0x address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecordKey {
    pub namespace: String,
    pub owner: String,
    pub name: String,
}

impl RecordKey {
    pub fn new(
        namespace: impl Into<String>,
        owner: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            owner: owner.into(),
            name: name.into(),
        }
    }

    /// Associated data binding a ciphertext to this identity.
    pub fn binding(&self) -> Vec<u8> {
        format!("sms/v1/{}/{}/{}", self.namespace, self.owner, self.name).into_bytes()
    }
}

impl From<&SecretId> for RecordKey {
    fn from(id: &SecretId) -> Self {
        Self::new(id.kind.as_str(), id.owner_hex(), id.name.clone())
    }
}

/// A row as the backend sees it: ciphertext only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedRow {
    pub key: RecordKey,
    pub key_id: i64,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub version: i64,
    /// Unix seconds after which the row may be swept.
    pub expires_at: Option<i64>,
}

/// A data key wrapped by the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedDataKey {
    pub id: i64,
    pub wrapped: Vec<u8>,
    pub nonce: Vec<u8>,
    /// Fingerprint of the master key that wrapped it (detects a wrong master key at start-up).
    pub master_fingerprint: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    Inserted,
    AlreadyExists,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    Updated { version: i64 },
    Unchanged,
    NotFound,
}

/// Outcome of a check-and-set write ([`Store::put`], [`Store::tombstone`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckAndSet {
    /// Written; the version the secret has now.
    Written { version: i64 },
    /// The precondition failed; `current` is the live version now, 0 if there is no live value.
    Conflict { current: i64 },
}

/// What a signed-request nonce was when it was presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceUse {
    Fresh,
    Reused,
}

/// What may be shown about a stored secret: never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    pub name: String,
    pub version: i64,
    pub key_id: i64,
    /// Unix seconds of the first write (of the current life, after a delete).
    pub created_at: i64,
    pub updated_at: i64,
    /// A tombstone: the value is gone, the version is kept.
    pub deleted: bool,
}

#[derive(Debug, Error)]
pub enum StoreError {
    /// The database cannot be reached or did not answer in time (pool timeout, connection
    /// refused or reset, statement timeout, server shutting down). Transient: the caller may
    /// retry (503); the pool reconnects by itself.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(sqlx::migrate::MigrateError),
    /// The database was migrated by a newer SMS: this binary must not write to it.
    #[error(
        "the database schema is at version {database}, newer than the newest this SMS knows ({known}): \
         upgrade this replica, or point it at another database"
    )]
    SchemaTooNew { database: i64, known: i64 },
    #[error("the store's writer has stopped")]
    WriterGone,
    #[error("{0}")]
    Key(String),
    #[error("record {0} cannot be decrypted: wrong key or tampered row")]
    Integrity(String),
}

impl StoreError {
    /// Whether this is a transient outage of the database (503), not a bug or a bad row.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match unavailability(&e) {
            Some(reason) => StoreError::Unavailable(reason),
            None => StoreError::Database(e),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => match unavailability(&inner) {
                Some(reason) => StoreError::Unavailable(reason),
                None => StoreError::Migration(sqlx::migrate::MigrateError::Execute(inner)),
            },
            other => StoreError::Migration(other),
        }
    }
}

/// PostgreSQL SQLSTATEs that mean "the server cannot serve now", not "the request is wrong":
/// class 08 (connection exception), 53300 (too many connections), 57014 (statement timeout
/// or cancel), 57P01..57P03 (shutdown, crash recovery, cannot connect now).
fn is_unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "53300" | "57014" | "57P01" | "57P02" | "57P03")
}

/// The reason a sqlx error is an outage, if it is one.
fn unavailability(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::PoolTimedOut => Some("no database connection within the timeout".into()),
        sqlx::Error::PoolClosed => Some("the database pool is closed".into()),
        sqlx::Error::Io(io) => Some(format!("database connection: {io}")),
        sqlx::Error::Tls(tls) => Some(format!("database TLS: {tls}")),
        sqlx::Error::WorkerCrashed => Some("the database connection worker stopped".into()),
        // The byte stream is not PostgreSQL's protocol: a connection cut mid-handshake (e.g.
        // an empty answer to the SSLRequest) or a broken hop; a new connection may work.
        sqlx::Error::Protocol(detail) => Some(format!("database connection broken: {detail}")),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            is_unavailable_sqlstate(&code)
                .then(|| format!("database refused ({code}): {}", db.message()))
        }
        _ => None,
    }
}

/// Storage of sealed rows. Every acknowledged write is durable.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Inserts the row unless its key exists.
    async fn insert(&self, row: SealedRow) -> Result<Insert, StoreError>;
    /// Replaces the row if its current version is `expected_version`; false otherwise.
    async fn replace(&self, row: SealedRow, expected_version: i64) -> Result<bool, StoreError>;
    async fn get(&self, key: &RecordKey) -> Result<Option<SealedRow>, StoreError>;
    async fn exists(&self, key: &RecordKey) -> Result<bool, StoreError>;
    /// Deletes the row (only at `expected_version` when given); true if a row was deleted.
    async fn delete(
        &self,
        key: &RecordKey,
        expected_version: Option<i64>,
    ) -> Result<bool, StoreError>;
    /// Creates the row (or revives a tombstone) if no live value exists; the version written.
    async fn put_create(&self, row: SealedRow) -> Result<Option<i64>, StoreError>;
    /// Replaces the live row at `expected_version` (the row carries `expected_version + 1`).
    async fn put_update(
        &self,
        row: SealedRow,
        expected_version: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Drops the value, keeps the row with the next version; at any version when `None`.
    async fn tombstone(
        &self,
        key: &RecordKey,
        expected_version: Option<i64>,
    ) -> Result<Option<i64>, StoreError>;
    /// Metadata of the row, tombstone included.
    async fn metadata(&self, key: &RecordKey) -> Result<Option<RecordMetadata>, StoreError>;
    /// Live rows of one owner in one namespace, by name.
    async fn list(&self, namespace: &str, owner: &str) -> Result<Vec<RecordMetadata>, StoreError>;
    /// Records a signed-request nonce of `owner` until `expires_at`, unless already recorded.
    async fn use_nonce(
        &self,
        owner: &str,
        nonce: &str,
        expires_at: i64,
    ) -> Result<NonceUse, StoreError>;
    /// Forgets nonces whose request expired before `now`.
    async fn delete_expired_nonces(&self, now: i64) -> Result<u64, StoreError>;
    /// Deletes rows of `namespace` whose expiry is before `now`; returns how many.
    async fn delete_expired(&self, namespace: &str, now: i64) -> Result<u64, StoreError>;
    /// Number of rows per namespace.
    async fn count_by_namespace(&self) -> Result<Vec<(String, u64)>, StoreError>;
    async fn data_keys(&self) -> Result<Vec<WrappedDataKey>, StoreError>;
    async fn insert_data_key(&self, key: WrappedDataKey) -> Result<Insert, StoreError>;
    /// One cheap round trip (`SELECT 1`), bounded by the backend's timeout (`/health`).
    async fn ping(&self) -> Result<(), StoreError>;
    fn describe(&self) -> String;
}

/// A stored value with its version (for check-and-set updates).
#[derive(Debug)]
pub struct Versioned {
    pub value: SecretValue,
    pub version: i64,
}

/// The encrypted store used by the server.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    keys: Arc<KeyRing>,
}

impl Store {
    /// Loads (or creates, on first start) the data keys, checking the master key.
    pub async fn open(backend: Arc<dyn Backend>, master: MasterKey) -> Result<Self, StoreError> {
        let keys = KeyRing::load_or_create(backend.as_ref(), master).await?;
        Ok(Self {
            backend,
            keys: Arc::new(keys),
        })
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    fn seal(
        &self,
        key: &RecordKey,
        value: &[u8],
        version: i64,
        expires_at: Option<i64>,
    ) -> Result<SealedRow, StoreError> {
        let (key_id, nonce, ciphertext) = self.keys.seal(&key.binding(), value)?;
        Ok(SealedRow {
            key: key.clone(),
            key_id,
            nonce,
            ciphertext,
            version,
            expires_at,
        })
    }

    fn open_row(&self, row: &SealedRow) -> Result<SecretValue, StoreError> {
        self.keys
            .open(row.key_id, &row.key.binding(), &row.nonce, &row.ciphertext)
            .map_err(|e| match e {
                StoreError::Integrity(_) => StoreError::Integrity(format!(
                    "{}/{}/{}",
                    row.key.namespace, row.key.owner, row.key.name
                )),
                other => other,
            })
    }

    /// Inserts once: a second insert of the same key is `AlreadyExists`, whatever the value.
    pub async fn insert(
        &self,
        key: &RecordKey,
        value: &SecretValue,
        expires_at: Option<i64>,
    ) -> Result<Insert, StoreError> {
        let row = self.seal(key, value.as_bytes(), 1, expires_at)?;
        self.backend.insert(row).await
    }

    pub async fn get(&self, key: &RecordKey) -> Result<Option<Versioned>, StoreError> {
        match self.backend.get(key).await? {
            Some(row) => Ok(Some(Versioned {
                value: self.open_row(&row)?,
                version: row.version,
            })),
            None => Ok(None),
        }
    }

    pub async fn exists(&self, key: &RecordKey) -> Result<bool, StoreError> {
        self.backend.exists(key).await
    }

    /// Replaces an existing value. Same value → `Unchanged` (no write); missing → `NotFound`.
    pub async fn update(&self, key: &RecordKey, value: &SecretValue) -> Result<Update, StoreError> {
        // Check-and-set loop: a concurrent writer makes us re-read, never lose an update silently.
        for _ in 0..8 {
            let Some(current) = self.backend.get(key).await? else {
                return Ok(Update::NotFound);
            };
            if self.open_row(&current)? == *value {
                return Ok(Update::Unchanged);
            }
            let version = current.version + 1;
            let row = self.seal(key, value.as_bytes(), version, current.expires_at)?;
            if self.backend.replace(row, current.version).await? {
                return Ok(Update::Updated { version });
            }
        }
        Err(StoreError::Key(format!(
            "too much contention updating {}/{}",
            key.owner, key.name
        )))
    }

    /// Replaces the value only if the stored version is still `expected_version`.
    pub async fn compare_and_set(
        &self,
        key: &RecordKey,
        value: &SecretValue,
        expected_version: i64,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let row = self.seal(key, value.as_bytes(), expected_version + 1, expires_at)?;
        self.backend.replace(row, expected_version).await
    }

    /// Check-and-set write of a secret: `expected_version` 0 creates (no live value may
    /// exist, a tombstone is revived with the next version), N replaces version N. Atomic in
    /// the database; on a conflict the current live version is read for the answer.
    pub async fn put(
        &self,
        key: &RecordKey,
        value: &SecretValue,
        expected_version: i64,
    ) -> Result<CheckAndSet, StoreError> {
        let written = if expected_version <= 0 {
            let row = self.seal(key, value.as_bytes(), 1, None)?;
            self.backend.put_create(row).await?
        } else {
            let row = self.seal(key, value.as_bytes(), expected_version + 1, None)?;
            self.backend.put_update(row, expected_version).await?
        };
        match written {
            Some(version) => Ok(CheckAndSet::Written { version }),
            None => Ok(CheckAndSet::Conflict {
                current: self.live_version(key).await?,
            }),
        }
    }

    /// Deletes a secret's value, keeping a tombstone so versions stay monotonic; sessions and
    /// existence checks no longer see it. `None` deletes at any version.
    pub async fn tombstone(
        &self,
        key: &RecordKey,
        expected_version: Option<i64>,
    ) -> Result<CheckAndSet, StoreError> {
        match self.backend.tombstone(key, expected_version).await? {
            Some(version) => Ok(CheckAndSet::Written { version }),
            None => Ok(CheckAndSet::Conflict {
                current: self.live_version(key).await?,
            }),
        }
    }

    /// The live version of a secret, 0 when absent or deleted.
    async fn live_version(&self, key: &RecordKey) -> Result<i64, StoreError> {
        Ok(match self.backend.metadata(key).await? {
            Some(meta) if !meta.deleted => meta.version,
            _ => 0,
        })
    }

    /// Metadata of a live secret (`None` when absent or deleted).
    pub async fn metadata(&self, key: &RecordKey) -> Result<Option<RecordMetadata>, StoreError> {
        Ok(self.backend.metadata(key).await?.filter(|m| !m.deleted))
    }

    /// Names and versions of an owner's live secrets in one namespace, never values.
    pub async fn list(
        &self,
        namespace: &str,
        owner: &str,
    ) -> Result<Vec<RecordMetadata>, StoreError> {
        self.backend.list(namespace, owner).await
    }

    /// Records a signed-request nonce until the request's expiry; `Reused` if already seen.
    pub async fn use_nonce(
        &self,
        owner: &str,
        nonce: &str,
        expires_at: i64,
    ) -> Result<NonceUse, StoreError> {
        self.backend.use_nonce(owner, nonce, expires_at).await
    }

    pub async fn delete_expired_nonces(&self, now: i64) -> Result<u64, StoreError> {
        self.backend.delete_expired_nonces(now).await
    }

    /// Removes and returns a value atomically (single-use tokens).
    pub async fn take(&self, key: &RecordKey) -> Result<Option<Versioned>, StoreError> {
        let Some(row) = self.backend.get(key).await? else {
            return Ok(None);
        };
        if !self.backend.delete(key, Some(row.version)).await? {
            return Ok(None);
        }
        Ok(Some(Versioned {
            value: self.open_row(&row)?,
            version: row.version,
        }))
    }

    pub async fn delete(&self, key: &RecordKey) -> Result<bool, StoreError> {
        self.backend.delete(key, None).await
    }

    pub async fn delete_expired(&self, namespace: &str, now: i64) -> Result<u64, StoreError> {
        self.backend.delete_expired(namespace, now).await
    }

    pub async fn count_by_namespace(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.backend.count_by_namespace().await
    }

    /// Whether the database answers now (`/health`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

//! What a backend stores and answers: record identities, sealed rows, wrapped data keys,
//! write outcomes, the error type, and the [`Backend`] trait itself. Below both the key ring
//! (`crypto`) and the [`crate::Store`] that uses them.

use async_trait::async_trait;
use sms_core::secret::SecretId;
use thiserror::Error;

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

    /// Associated data of rows sealed before versions were bound ([`crate::crypto::seal_format::LEGACY`]);
    /// new rows use [`crate::crypto::row_aad`].
    pub fn binding(&self) -> Vec<u8> {
        format!("sms/v1/{}/{}/{}", self.namespace, self.owner, self.name).into_bytes()
    }
}

/// The namespaces of the records the server keeps besides secrets (secrets are keyed by their
/// [`SecretId`]). Each is bound once, by the subsystem that owns it ([`crate::Store::records`]),
/// so no subsystem spells a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// Enclave-challenge keys: `("", <taskId>)`, until the task's final deadline.
    TeeChallenge,
    /// Provisioning sessions ([`sms_core::stored_session::StoredSession`]): `("", <sessionId>)`.
    TeeSession,
    /// The index task → its one live session: `("", <taskId>)`.
    TeeTaskSession,
    /// Single-use provisioning nonces: `("", hex(nonce))`.
    TeeProvisionNonce,
    /// Release logs and counters: `(<taskId>, <service>)`.
    TeeRelease,
    /// The SMS identity key: `("", "current")`.
    SmsIdentity,
}

impl Namespace {
    /// The namespace as the `records.namespace` column holds it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TeeChallenge => "tee-challenge",
            Self::TeeSession => "tee-session",
            Self::TeeTaskSession => "tee-task-session",
            Self::TeeProvisionNonce => "tee-provision-nonce",
            Self::TeeRelease => "tee-release",
            Self::SmsIdentity => "sms-identity",
        }
    }

    /// The key of `(owner, name)` in this namespace.
    pub fn key(self, owner: impl Into<String>, name: impl Into<String>) -> RecordKey {
        RecordKey::new(self.as_str(), owner, name)
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
    /// [`crate::crypto::seal_format`]: what the associated data was. Writes always store
    /// [`crate::crypto::seal_format::VERSIONED`].
    pub seal_format: i64,
}

impl std::fmt::Display for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.owner, self.name)
    }
}

/// A data key wrapped by the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedDataKey {
    pub id: i64,
    pub wrapped: Vec<u8>,
    pub nonce: Vec<u8>,
    /// Fingerprint of the master key that wrapped it (detects a wrong master key at start-up).
    pub master_fingerprint: String,
    pub created_at: i64,
    /// Encryptions reserved under this key so far, by every process (an upper bound).
    pub encryptions: i64,
    /// [`crate::crypto::wrap_format`].
    pub wrap_format: i64,
}

/// One data key as `sms operator key-status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataKeyStatus {
    pub id: i64,
    pub created_at: i64,
    /// Encryptions reserved under it (an upper bound of those done).
    pub encryptions: i64,
    /// Rows sealed under it (tombstones included).
    pub rows: u64,
    pub master_fingerprint: String,
    /// New values are sealed with it (in this process).
    pub current: bool,
    /// Created before versions were bound (may open legacy rows).
    pub legacy: bool,
}

/// The data keys and what uses them; never key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStatus {
    pub master_fingerprint: String,
    pub current_key_id: i64,
    pub max_encryptions: u64,
    pub keys: Vec<DataKeyStatus>,
    /// Rows still to re-seal under the current key (`sms operator rewrap`).
    pub pending_rewrap: u64,
}

/// What one [`crate::Store::rewrap_batch`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewrapBatch {
    /// Rows re-sealed under the current key.
    pub rewrapped: u64,
    /// Rows changed by a writer meanwhile (the writer sealed them; a later pass checks).
    pub raced: u64,
    /// Tombstones moved to the current key (no ciphertext).
    pub tombstones: u64,
    /// Rows that do not open (tampered or rolled back): left as they are.
    pub unreadable: Vec<RecordKey>,
    /// Where the next batch starts; `None` when this pass reached the end of the table.
    pub next: Option<RecordKey>,
    pub current_key_id: i64,
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

/// Outcome of a check-and-set write ([`crate::Store::put`], [`crate::Store::tombstone`]).
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
    /// A row does not open: its ciphertext is not this identity's at this version (tampered,
    /// or an older copy of the row written back), or the wrong data key. Never served (500).
    #[error("record {0} cannot be decrypted: wrong key, tampered or rolled-back row")]
    Integrity(String),
    /// The operation does not exist for this backend (e.g. online backup of PostgreSQL).
    #[error("{0}")]
    Unsupported(String),
    /// The data directory is in use by a running server (restore refused).
    #[error("{0}")]
    Busy(String),
    /// No store where one was named, or none named (operator commands).
    #[error("{0}")]
    NoStore(String),
    #[error("cannot create {}", path.display())]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An audited write was not done because its audit entry could not be written: the
    /// action and its entry commit together or not at all (503, `AUDIT_LOG_UNAVAILABLE`).
    #[error("audit log unavailable: {0}")]
    AuditRefused(String),
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

/// One entry of the audit log as stored, with the hash the log recorded for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAuditEntry {
    pub entry: sms_core::audit::AuditEntry,
    pub hash: sms_core::audit::Hash,
}

/// A signed tree head as stored: the signature is the identity's JSON
/// (`{keyId, algorithm, value}`), checked by readers, not by the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTreeHead {
    pub head: sms_core::audit::TreeHead,
    pub signature: String,
}

/// A hash column read back: its 32 bytes (a column of another length, zero-padded or cut,
/// then fails the checks that use it).
pub(crate) fn fixed_hash(bytes: &[u8]) -> sms_core::audit::Hash {
    let mut out = [0u8; 32];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
    out
}

/// One write of sealed rows, as [`Backend::write_audited`] takes it. What each answers is
/// what the method of the same name answers: rows written for `Insert` and `Replace`, 1 when
/// every row of `InsertAll` was inserted (0: none was), the version written (0: not written)
/// for the others.
#[derive(Clone, Debug)]
pub enum RowWrite {
    Insert(SealedRow),
    InsertAll(Vec<SealedRow>),
    Replace(SealedRow, i64),
    PutCreate(SealedRow),
    PutUpdate(SealedRow, i64),
    Tombstone(RecordKey, Option<i64>),
}

/// The audit entry of an audited write: its time (Unix seconds) and canonical body.
#[derive(Clone, Debug)]
pub struct AuditNote {
    pub at: u64,
    pub body: String,
}

/// Storage of sealed rows. Every acknowledged write is durable.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Inserts the row unless its key exists.
    async fn insert(&self, row: SealedRow) -> Result<Insert, StoreError>;
    /// Replaces the row if its current version is `expected_version`; false otherwise.
    async fn replace(&self, row: SealedRow, expected_version: i64) -> Result<bool, StoreError>;
    /// Inserts every row, all or none (a savepoint): false, with nothing written, when the
    /// key of one of them exists (a tombstone counts: every row is sealed for version 1).
    async fn insert_all(&self, rows: Vec<SealedRow>) -> Result<bool, StoreError>;
    async fn get(&self, key: &RecordKey) -> Result<Option<SealedRow>, StoreError>;
    /// The rows of `keys`, in their order (`None` where absent), in one statement per 16 keys.
    async fn get_many(&self, keys: &[RecordKey]) -> Result<Vec<Option<SealedRow>>, StoreError>;
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
    /// Inserts a data key unless its id exists or a key wrapped by another master key exists.
    async fn insert_data_key(&self, key: WrappedDataKey) -> Result<Insert, StoreError>;
    /// Adds `count` to the key's encryption counter.
    async fn reserve_encryptions(&self, key_id: i64, count: u64) -> Result<(), StoreError>;
    /// Replaces every wrapping in one transaction, each only if still wrapped by `old_fp`, and
    /// only if afterwards every key is wrapped by `new_fp`; false (nothing changed) otherwise.
    async fn rewrap_data_keys(
        &self,
        keys: Vec<WrappedDataKey>,
        old_fp: &str,
        new_fp: &str,
    ) -> Result<bool, StoreError>;
    /// Deletes data key `id` if it is not the newest and no row uses it.
    async fn retire_data_key(&self, id: i64) -> Result<bool, StoreError>;
    /// Rows per data key id, tombstones included.
    async fn rows_per_key(&self) -> Result<Vec<(i64, u64)>, StoreError>;
    /// Rows not yet sealed under `current` in the current format.
    async fn pending_rewrap(&self, current: i64) -> Result<u64, StoreError>;
    /// Live rows after `after` (in key order) not sealed under `current` in the current format.
    async fn rewrap_candidates(
        &self,
        current: i64,
        after: &RecordKey,
        limit: u32,
    ) -> Result<Vec<SealedRow>, StoreError>;
    /// Writes a re-sealed row if it still is the exact row read (`version`, `old_nonce`).
    async fn rewrap_row(&self, row: SealedRow, old_nonce: &[u8]) -> Result<bool, StoreError>;
    /// Moves up to `limit` tombstones to key `current`.
    async fn rewrap_tombstones(&self, current: i64, limit: u32) -> Result<u64, StoreError>;
    /// Writes a consistent copy of the whole database to `dest` (a new file), online.
    async fn backup_to(&self, dest: &std::path::Path) -> Result<(), StoreError>;
    /// One cheap round trip (`SELECT 1`), bounded by the backend's timeout (`/health`).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Does `write` and, if it wrote, records `note` in the audit log, in one transaction:
    /// both or neither ([`StoreError::AuditRefused`] when the entry cannot be written). The
    /// entry is in the chain when this returns, or waiting for [`Backend::chain_pending`].
    async fn write_audited(&self, write: RowWrite, note: AuditNote) -> Result<u64, StoreError>;
    /// Moves up to `limit` entries committed by [`Backend::write_audited`] but not yet chained
    /// into the chain; how many. Backends that chain them at once have none.
    async fn chain_pending(&self, _limit: u32) -> Result<u64, StoreError> {
        Ok(0)
    }
    /// Appends one entry per body, in order, after the current head of the audit log, in one
    /// transaction (one chain across replicas); the index of the first.
    async fn append_audit(&self, at: u64, bodies: Vec<String>) -> Result<u64, StoreError>;
    /// Up to `limit` entries from index `from`, in order.
    async fn audit_entries(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredAuditEntry>, StoreError>;
    /// The recorded hashes of the first `size` entries (inclusion proofs).
    async fn audit_leaves(&self, size: u64) -> Result<Vec<sms_core::audit::Hash>, StoreError>;
    /// Entries appended so far (the chain head's size).
    async fn audit_size(&self) -> Result<u64, StoreError>;
    /// Stores a signed tree head unless one of that size exists.
    async fn insert_audit_head(&self, head: StoredTreeHead) -> Result<Insert, StoreError>;
    /// Up to `limit` heads of size `from_size` or more, by size.
    async fn audit_heads(
        &self,
        from_size: u64,
        limit: u32,
    ) -> Result<Vec<StoredTreeHead>, StoreError>;
    async fn latest_audit_head(&self) -> Result<Option<StoredTreeHead>, StoreError>;
    fn describe(&self) -> String;
}

/// Unix seconds, as the database columns hold them (the backends stamp rows with the system
/// clock at commit).
pub(crate) fn unix_now() -> i64 {
    clock_secs(&sms_core::clock::Clock::system())
}

/// `clock`'s Unix seconds, as the database columns hold them.
pub(crate) fn clock_secs(clock: &sms_core::clock::Clock) -> i64 {
    i64::try_from(clock.now()).unwrap_or(i64::MAX)
}

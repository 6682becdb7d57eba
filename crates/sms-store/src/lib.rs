//! Durable, encrypted storage of everything the SMS keeps: secrets, enclave-challenge keys,
//! sessions, nonces.
//!
//! - [`Store`] is what the server uses: it seals values before they reach a [`Backend`] and
//!   opens them on the way back. Plaintext never reaches the database.
//! - Every sealed row binds its identity and its version ([`crypto::row_aad`]): a row put
//!   back to an older copy of itself does not open ([`StoreError::Integrity`], logged with
//!   the row identity and counted in `sms_store_integrity_failures_total`).
//! - Data keys rotate ([`Store::rotate_data_key`], automatically per [`RotationPolicy`]),
//!   rows move to the newest key with [`Store::rewrap_batch`], unused keys are retired, and
//!   [`rotate_master_key`] re-wraps every data key (docs/keys-and-backups.md).
//! - [`Backend`] is a small key-value trait over sealed rows, with insert-once, check-and-set
//!   and expiry. Implementations: [`sqlite::SqliteBackend`] (embedded default, group commit)
//!   and [`postgres::PostgresBackend`] (shared by several replicas).

mod backend;
pub mod crypto;
mod key_index;
pub mod offline;
pub mod postgres;
mod records;
mod sql;
pub mod sqlite;

use std::sync::Arc;

use sms_core::clock::Clock;
use sms_core::secret::SecretValue;

pub use backend::{
    AuditNote, Backend, CheckAndSet, DataKeyStatus, Insert, KeyStatus, Namespace, NonceUse,
    RecordKey, RecordMetadata, RewrapBatch, RowWrite, SealedRow, StoreError, StoredAuditEntry,
    StoredTreeHead, Update, WrappedDataKey,
};
pub(crate) use backend::{fixed_hash, unix_now};
pub use crypto::{
    DEFAULT_MAX_ENCRYPTIONS, KeyRing, MasterKey, MasterKeyRotation, RotationPolicy,
    rotate_master_key,
};
pub use records::{AuditedRecords, Records};

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
    audit: tokio::sync::mpsc::Sender<AuditJob>,
    /// Wakes the audit writer to chain entries an audited write left pending.
    chain_wake: Arc<tokio::sync::Notify>,
    /// What the store decides by the time (row expiry, audit entry times, data-key age) reads.
    clock: Clock,
}

/// One row of [`Store::insert_all`]: its key, value and expiry (Unix seconds).
#[derive(Clone, Copy, Debug)]
pub struct NewRow<'a> {
    pub key: &'a RecordKey,
    pub value: &'a SecretValue,
    pub expires_at: Option<i64>,
}

/// Builds the audit event of an audited write from the version the write stores.
pub type AuditFn<'a> = &'a (dyn Fn(i64) -> sms_core::audit::AuditEvent + Send + Sync);

/// Writes whose audit entry commits in the same transaction as the row ([`Store::audited`]):
/// a write that is done is in the log, a write whose entry cannot be written is not done
/// ([`StoreError::AuditRefused`]).
pub struct Audited<'a> {
    store: &'a Store,
    event: AuditFn<'a>,
}

impl Audited<'_> {
    /// [`Store::insert`], audited.
    pub async fn insert(
        &self,
        key: &RecordKey,
        value: &SecretValue,
        expires_at: Option<i64>,
    ) -> Result<Insert, StoreError> {
        self.store
            .insert_as(key, value, expires_at, Some(self.event))
            .await
    }

    /// [`Store::insert_all`], audited: one entry for all the rows.
    pub async fn insert_all(&self, rows: &[NewRow<'_>]) -> Result<Insert, StoreError> {
        self.store.insert_all_as(rows, Some(self.event)).await
    }

    /// [`Store::update`], audited.
    pub async fn update(&self, key: &RecordKey, value: &SecretValue) -> Result<Update, StoreError> {
        self.store.update_as(key, value, Some(self.event)).await
    }

    /// [`Store::compare_and_set`], audited.
    pub async fn compare_and_set(
        &self,
        key: &RecordKey,
        value: &SecretValue,
        expected_version: i64,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.store
            .compare_and_set_as(key, value, expected_version, expires_at, Some(self.event))
            .await
    }

    /// [`Store::put`], audited.
    pub async fn put(
        &self,
        key: &RecordKey,
        value: &SecretValue,
        expected_version: i64,
    ) -> Result<CheckAndSet, StoreError> {
        self.store
            .put_as(key, value, expected_version, Some(self.event))
            .await
    }

    /// [`Store::tombstone`], audited.
    pub async fn tombstone(
        &self,
        key: &RecordKey,
        expected_version: Option<i64>,
    ) -> Result<CheckAndSet, StoreError> {
        self.store
            .tombstone_as(key, expected_version, Some(self.event))
            .await
    }
}

/// How often each process looks for audit entries another one left pending (a replica that
/// stopped between its commit and the chaining).
const PENDING_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// Entries appended by one audit transaction at most.
const AUDIT_BATCH: usize = 256;
/// Entries waiting for the audit writer at most; past it a detached entry is dropped (counted).
const AUDIT_QUEUE: usize = 8192;

/// One entry for the audit writer; `done` when the caller waits for it.
struct AuditJob {
    body: String,
    kind: &'static str,
    done: Option<tokio::sync::oneshot::Sender<Result<u64, StoreError>>>,
}

/// The audit writer of one process: appends queued entries in batches, one transaction (one
/// chain-head lock) each, so concurrent actions do not queue on the lock one by one.
async fn audit_writer(
    backend: Arc<dyn Backend>,
    mut jobs: tokio::sync::mpsc::Receiver<AuditJob>,
    chain_wake: Arc<tokio::sync::Notify>,
    clock: Clock,
) {
    let mut batch = Vec::with_capacity(AUDIT_BATCH);
    let mut sweep = tokio::time::interval(PENDING_SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = jobs.recv_many(&mut batch, AUDIT_BATCH) => if received == 0 { break },
            _ = chain_wake.notified() => { chain_all_pending(backend.as_ref()).await.ok(); continue }
            _ = sweep.tick() => { chain_all_pending(backend.as_ref()).await.ok(); continue }
        }
        let bodies = batch.iter().map(|j| j.body.clone()).collect();
        let result = backend.append_audit(clock.now(), bodies).await;
        for (i, job) in batch.drain(..).enumerate() {
            let answer = match &result {
                Ok(first) => {
                    metrics::counter!("sms_audit_entries_total", "type" => job.kind).increment(1);
                    Ok(first + i as u64)
                }
                Err(e) => {
                    metrics::counter!("sms_audit_write_failures_total", "type" => job.kind)
                        .increment(1);
                    Err(if e.is_unavailable() {
                        StoreError::Unavailable(e.to_string())
                    } else {
                        StoreError::Key(format!("audit log append failed: {e}"))
                    })
                }
            };
            if let Err(e) = &answer
                && job.done.is_none()
            {
                tracing::error!(error = %e, event = job.kind, "audit log append failed");
            }
            if let Some(done) = job.done {
                let _ = done.send(answer);
            }
        }
    }
}

/// Chains every entry left pending by audited writes (PostgreSQL); failures are logged.
async fn chain_all_pending(backend: &dyn Backend) -> Result<(), StoreError> {
    loop {
        match backend.chain_pending(AUDIT_BATCH as u32).await {
            Ok(n) if n < AUDIT_BATCH as u64 => return Ok(()),
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "pending audit entries not chained this time");
                return Err(e);
            }
        }
    }
}

impl Store {
    /// Loads (or creates, on first start) the data keys, checking the master key.
    pub async fn open(backend: Arc<dyn Backend>, master: MasterKey) -> Result<Self, StoreError> {
        Self::open_with(backend, master, RotationPolicy::default()).await
    }

    /// [`Store::open`] with a data-key rotation policy.
    pub async fn open_with(
        backend: Arc<dyn Backend>,
        master: MasterKey,
        policy: RotationPolicy,
    ) -> Result<Self, StoreError> {
        Self::open_clocked(backend, master, policy, Clock::system()).await
    }

    /// [`Store::open_with`] reading `clock` (the server's; a test's [`sms_core::clock::FixedClock`])
    /// wherever the store decides by the time.
    pub async fn open_clocked(
        backend: Arc<dyn Backend>,
        master: MasterKey,
        policy: RotationPolicy,
        clock: Clock,
    ) -> Result<Self, StoreError> {
        let keys = KeyRing::open(backend.as_ref(), master, policy, clock.clone()).await?;
        let (audit, jobs) = tokio::sync::mpsc::channel(AUDIT_QUEUE);
        let chain_wake = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(audit_writer(
            backend.clone(),
            jobs,
            chain_wake.clone(),
            clock.clone(),
        ));
        Ok(Self {
            backend,
            keys: Arc::new(keys),
            audit,
            chain_wake,
            clock,
        })
    }

    /// The clock the store reads.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Seals `value` as `key` at exactly `version`: the version the write will store.
    async fn seal(
        &self,
        key: &RecordKey,
        value: &[u8],
        version: i64,
        expires_at: Option<i64>,
    ) -> Result<SealedRow, StoreError> {
        let (key_id, nonce, ciphertext) = self
            .keys
            .seal(self.backend.as_ref(), key, version, value)
            .await?;
        Ok(SealedRow {
            key: key.clone(),
            key_id,
            nonce,
            ciphertext,
            version,
            expires_at,
            seal_format: crypto::seal_format::VERSIONED,
        })
    }

    /// Opens a row read from the backend. A row under a data key this process does not hold
    /// yet (created by another replica) reloads the keys once. A row that does not open is
    /// logged with its identity (never its value), counted, and answered `Integrity`.
    async fn open_row(&self, row: &SealedRow) -> Result<SecretValue, StoreError> {
        if !self.keys.knows(row.key_id) {
            self.keys.reload(self.backend.as_ref()).await?;
        }
        self.keys.open_row(row).map_err(|e| match e {
            StoreError::Integrity(_) => {
                tracing::error!(
                    record = %row.key,
                    version = row.version,
                    key_id = row.key_id,
                    seal_format = row.seal_format,
                    "stored record failed its integrity check (tampered, or an older copy written back)"
                );
                metrics::counter!("sms_store_integrity_failures_total", "namespace" => row.key.namespace.clone())
                    .increment(1);
                StoreError::Integrity(row.key.to_string())
            }
            other => other,
        })
    }

    /// The writes of `event`'s action: each commits with its entry, or is not done.
    pub fn audited<'a>(&'a self, event: AuditFn<'a>) -> Audited<'a> {
        Audited { store: self, event }
    }

    /// One row write, audited when `audit` is given (`version` is what it stores, for the
    /// entry); the result as [`RowWrite`] documents it.
    async fn row_write(
        &self,
        write: RowWrite,
        version: i64,
        audit: Option<AuditFn<'_>>,
    ) -> Result<u64, StoreError> {
        if let Some(event) = audit {
            return self.write_audited(write, version, event).await;
        }
        let b = &self.backend;
        let version = |written: Option<i64>| sql::version_result(written.map(|v| (v,)));
        Ok(match write {
            RowWrite::Insert(row) => u64::from(b.insert(row).await? == Insert::Inserted),
            RowWrite::InsertAll(rows) => u64::from(b.insert_all(rows).await?),
            RowWrite::Replace(row, expected) => u64::from(b.replace(row, expected).await?),
            RowWrite::PutCreate(row) => version(b.put_create(row).await?),
            RowWrite::PutUpdate(row, expected) => version(b.put_update(row, expected).await?),
            RowWrite::Tombstone(key, expected) => version(b.tombstone(&key, expected).await?),
        })
    }

    /// An audited row write: the event built for `version`, counted, and the audit writer
    /// woken to chain it if the backend left it pending.
    async fn write_audited(
        &self,
        write: RowWrite,
        version: i64,
        event: AuditFn<'_>,
    ) -> Result<u64, StoreError> {
        let event = event(version);
        let note = AuditNote {
            at: self.clock.now(),
            body: event.body(),
        };
        match self.backend.write_audited(write, note).await {
            Ok(written) => {
                if written > 0 {
                    metrics::counter!("sms_audit_entries_total", "type" => event.kind())
                        .increment(1);
                    self.chain_wake.notify_one();
                }
                Ok(written)
            }
            Err(e) => {
                if matches!(e, StoreError::AuditRefused(_)) {
                    tracing::error!(error = %e, event = event.kind(), "audit entry not written: action refused");
                    metrics::counter!("sms_audit_write_failures_total", "type" => event.kind())
                        .increment(1);
                }
                Err(e)
            }
        }
    }

    /// Inserts once: a second insert of the same key is `AlreadyExists`, whatever the value.
    pub async fn insert(
        &self,
        key: &RecordKey,
        value: &SecretValue,
        expires_at: Option<i64>,
    ) -> Result<Insert, StoreError> {
        self.insert_as(key, value, expires_at, None).await
    }

    async fn insert_as(
        &self,
        key: &RecordKey,
        value: &SecretValue,
        expires_at: Option<i64>,
        audit: Option<AuditFn<'_>>,
    ) -> Result<Insert, StoreError> {
        // Sealed for version 1; over a tombstone at version N the SQL only revives it with a
        // row sealed for N + 1, so the version sealed is always the version written.
        let mut version = 1;
        for _ in 0..8 {
            let row = self
                .seal(key, value.as_bytes(), version, expires_at)
                .await?;
            if self
                .row_write(RowWrite::Insert(row), version, audit)
                .await?
                == 1
            {
                return Ok(Insert::Inserted);
            }
            match self.backend.metadata(key).await? {
                Some(meta) if meta.deleted => version = meta.version + 1,
                Some(_) => return Ok(Insert::AlreadyExists),
                None => version = 1,
            }
        }
        Err(contention(key))
    }

    /// Inserts every row in one transaction, all or none: `AlreadyExists`, with nothing
    /// written, when one of the keys exists (a deleted one included: unlike
    /// [`Store::insert`], no row is revived). For rows that belong together, such as a
    /// session and its task's index.
    pub async fn insert_all(&self, rows: &[NewRow<'_>]) -> Result<Insert, StoreError> {
        self.insert_all_as(rows, None).await
    }

    async fn insert_all_as(
        &self,
        rows: &[NewRow<'_>],
        audit: Option<AuditFn<'_>>,
    ) -> Result<Insert, StoreError> {
        let mut sealed = Vec::with_capacity(rows.len());
        for row in rows {
            sealed.push(
                self.seal(row.key, row.value.as_bytes(), 1, row.expires_at)
                    .await?,
            );
        }
        let written = self
            .row_write(RowWrite::InsertAll(sealed), 1, audit)
            .await?;
        Ok(sql::insert_outcome(written))
    }

    /// The values of `keys`, in their order (`None` where absent): one round trip per 16
    /// keys, where [`Store::get`] makes one per key.
    pub async fn get_many(&self, keys: &[RecordKey]) -> Result<Vec<Option<Versioned>>, StoreError> {
        let rows = self.backend.get_many(keys).await?;
        let mut values = Vec::with_capacity(rows.len());
        for row in rows {
            values.push(match row {
                Some(row) => Some(Versioned {
                    value: self.open_row(&row).await?,
                    version: row.version,
                }),
                None => None,
            });
        }
        Ok(values)
    }

    pub async fn get(&self, key: &RecordKey) -> Result<Option<Versioned>, StoreError> {
        match self.backend.get(key).await? {
            Some(row) => Ok(Some(Versioned {
                value: self.open_row(&row).await?,
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
        self.update_as(key, value, None).await
    }

    async fn update_as(
        &self,
        key: &RecordKey,
        value: &SecretValue,
        audit: Option<AuditFn<'_>>,
    ) -> Result<Update, StoreError> {
        // Check-and-set loop: a concurrent writer makes us re-read, never lose an update silently.
        for _ in 0..8 {
            let Some(current) = self.backend.get(key).await? else {
                return Ok(Update::NotFound);
            };
            if self.open_row(&current).await? == *value {
                return Ok(Update::Unchanged);
            }
            let version = current.version + 1;
            let row = self
                .seal(key, value.as_bytes(), version, current.expires_at)
                .await?;
            if self.replace_as(row, current.version, audit).await? {
                return Ok(Update::Updated { version });
            }
        }
        Err(contention(key))
    }

    /// Replaces the value only if the stored version is still `expected_version`.
    pub async fn compare_and_set(
        &self,
        key: &RecordKey,
        value: &SecretValue,
        expected_version: i64,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.compare_and_set_as(key, value, expected_version, expires_at, None)
            .await
    }

    async fn compare_and_set_as(
        &self,
        key: &RecordKey,
        value: &SecretValue,
        expected_version: i64,
        expires_at: Option<i64>,
        audit: Option<AuditFn<'_>>,
    ) -> Result<bool, StoreError> {
        let row = self
            .seal(key, value.as_bytes(), expected_version + 1, expires_at)
            .await?;
        self.replace_as(row, expected_version, audit).await
    }

    /// Replaces the row at `expected_version` (the row carries the next version).
    async fn replace_as(
        &self,
        row: SealedRow,
        expected_version: i64,
        audit: Option<AuditFn<'_>>,
    ) -> Result<bool, StoreError> {
        let version = row.version;
        Ok(self
            .row_write(RowWrite::Replace(row, expected_version), version, audit)
            .await?
            == 1)
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
        self.put_as(key, value, expected_version, None).await
    }

    async fn put_as(
        &self,
        key: &RecordKey,
        value: &SecretValue,
        expected_version: i64,
        audit: Option<AuditFn<'_>>,
    ) -> Result<CheckAndSet, StoreError> {
        let written = if expected_version <= 0 {
            self.put_create(key, value, audit).await?
        } else {
            // Sealed for expected + 1; the SQL writes exactly that version or nothing.
            let version = expected_version + 1;
            let row = self.seal(key, value.as_bytes(), version, None).await?;
            sql::version_of(
                self.row_write(RowWrite::PutUpdate(row, expected_version), version, audit)
                    .await?,
            )
        };
        match written {
            Some(version) => Ok(CheckAndSet::Written { version }),
            None => Ok(CheckAndSet::Conflict {
                current: self.live_version(key).await?,
            }),
        }
    }

    /// Creates a live value: sealed for version 1, or for N + 1 over a tombstone at N (the SQL
    /// revives only that exact tombstone). `None` when a live value exists.
    async fn put_create(
        &self,
        key: &RecordKey,
        value: &SecretValue,
        audit: Option<AuditFn<'_>>,
    ) -> Result<Option<i64>, StoreError> {
        let mut version = 1;
        for _ in 0..8 {
            let row = self.seal(key, value.as_bytes(), version, None).await?;
            let written = sql::version_of(
                self.row_write(RowWrite::PutCreate(row), version, audit)
                    .await?,
            );
            if let Some(written) = written {
                return Ok(Some(written));
            }
            match self.backend.metadata(key).await? {
                Some(meta) if meta.deleted => version = meta.version + 1,
                Some(_) => return Ok(None),
                None => version = 1,
            }
        }
        Err(contention(key))
    }

    /// Deletes a secret's value, keeping a tombstone so versions stay monotonic; sessions and
    /// existence checks no longer see it. `None` deletes at any version.
    pub async fn tombstone(
        &self,
        key: &RecordKey,
        expected_version: Option<i64>,
    ) -> Result<CheckAndSet, StoreError> {
        self.tombstone_as(key, expected_version, None).await
    }

    async fn tombstone_as(
        &self,
        key: &RecordKey,
        expected_version: Option<i64>,
        audit: Option<AuditFn<'_>>,
    ) -> Result<CheckAndSet, StoreError> {
        let written = match (audit, expected_version) {
            (None, _) => self.backend.tombstone(key, expected_version).await?,
            (Some(event), Some(expected)) => sql::version_of(
                self.write_audited(
                    RowWrite::Tombstone(key.clone(), Some(expected)),
                    expected + 1,
                    event,
                )
                .await?,
            ),
            // At any version: the entry names the version written, so the live one is read
            // first and deleted by check-and-set.
            (Some(event), None) => {
                let mut written = None;
                for _ in 0..8 {
                    let current = self.live_version(key).await?;
                    if current == 0 {
                        break;
                    }
                    written = sql::version_of(
                        self.write_audited(
                            RowWrite::Tombstone(key.clone(), Some(current)),
                            current + 1,
                            event,
                        )
                        .await?,
                    );
                    if written.is_some() {
                        break;
                    }
                }
                written
            }
        };
        match written {
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
            value: self.open_row(&row).await?,
            version: row.version,
        }))
    }

    pub async fn delete(&self, key: &RecordKey) -> Result<bool, StoreError> {
        self.backend.delete(key, None).await
    }

    /// Deletes the row only if it still is at `version` (a value read, then used once).
    pub async fn delete_at(&self, key: &RecordKey, version: i64) -> Result<bool, StoreError> {
        self.backend.delete(key, Some(version)).await
    }

    pub async fn delete_expired(&self, namespace: &str, now: i64) -> Result<u64, StoreError> {
        self.backend.delete_expired(namespace, now).await
    }

    /// Deletes the rows of `namespace` whose expiry is before the store's clock.
    pub async fn delete_expired_now(&self, namespace: Namespace) -> Result<u64, StoreError> {
        let now = backend::clock_secs(&self.clock);
        self.backend.delete_expired(namespace.as_str(), now).await
    }

    pub async fn count_by_namespace(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.backend.count_by_namespace().await
    }

    /// Whether the database answers now (`/health`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }

    /// The data keys, their use and the rows left to re-seal; never key material.
    pub async fn key_status(&self) -> Result<KeyStatus, StoreError> {
        let stored = self.backend.data_keys().await?;
        let rows: std::collections::HashMap<i64, u64> =
            self.backend.rows_per_key().await?.into_iter().collect();
        let current = self.current_key_id()?;
        Ok(KeyStatus {
            master_fingerprint: self.keys.master_fingerprint().to_owned(),
            current_key_id: current,
            max_encryptions: self.keys.policy().max_encryptions,
            pending_rewrap: self.backend.pending_rewrap(current).await?,
            keys: stored
                .into_iter()
                .map(|k| DataKeyStatus {
                    id: k.id,
                    created_at: k.created_at,
                    encryptions: k.encryptions,
                    rows: rows.get(&k.id).copied().unwrap_or(0),
                    master_fingerprint: k.master_fingerprint,
                    current: k.id == current,
                    legacy: k.wrap_format == crypto::wrap_format::LEGACY,
                })
                .collect(),
        })
    }

    fn current_key_id(&self) -> Result<i64, StoreError> {
        self.keys
            .current()
            .ok_or_else(|| StoreError::Key("no data key".into()))
    }

    /// Creates a new data key now; new values are sealed with it. Its id.
    pub async fn rotate_data_key(&self) -> Result<i64, StoreError> {
        self.keys.rotate(self.backend.as_ref()).await
    }

    /// Re-seals up to `limit` rows after `after` under the current data key (and up to
    /// `limit` tombstones), online: a row a writer changes meanwhile is left to the writer.
    /// Start with `None`, continue with [`RewrapBatch::next`]; passes until
    /// [`KeyStatus::pending_rewrap`] is 0 (stateless, so resumable after a crash).
    pub async fn rewrap_batch(
        &self,
        after: Option<&RecordKey>,
        limit: u32,
    ) -> Result<RewrapBatch, StoreError> {
        self.keys.reload(self.backend.as_ref()).await?;
        let current = self.current_key_id()?;
        let limit = limit.clamp(1, 10_000);
        let start = RecordKey::new("", "", "");
        let rows = self
            .backend
            .rewrap_candidates(current, after.unwrap_or(&start), limit)
            .await?;
        let mut batch = RewrapBatch {
            current_key_id: current,
            next: (rows.len() as u32 == limit)
                .then(|| rows.last().map(|r| r.key.clone()))
                .flatten(),
            ..RewrapBatch::default()
        };
        for row in rows {
            let value = match self.open_row(&row).await {
                Ok(value) => value,
                Err(StoreError::Integrity(_)) => {
                    batch.unreadable.push(row.key.clone());
                    continue;
                }
                Err(e) => return Err(e),
            };
            let resealed = self
                .seal(&row.key, value.as_bytes(), row.version, row.expires_at)
                .await?;
            if self.backend.rewrap_row(resealed, &row.nonce).await? {
                batch.rewrapped += 1;
            } else {
                batch.raced += 1;
            }
        }
        batch.tombstones = self.backend.rewrap_tombstones(current, limit).await?;
        Ok(batch)
    }

    /// Deletes every data key that no row uses, except the current one; the ids retired.
    pub async fn retire_unused_keys(&self) -> Result<Vec<i64>, StoreError> {
        let current = self.current_key_id()?;
        let mut retired = Vec::new();
        for key in self.backend.data_keys().await? {
            if key.id < current && self.backend.retire_data_key(key.id).await? {
                tracing::info!(data_key = key.id, "data key retired");
                retired.push(key.id);
            }
        }
        Ok(retired)
    }

    /// Appends `event` to the audit log and waits until it is committed; the index it got.
    /// Fails rather than skip: the caller decides whether its action may go on without it.
    pub async fn audit_append(
        &self,
        event: &sms_core::audit::AuditEvent,
    ) -> Result<u64, StoreError> {
        let (done, committed) = tokio::sync::oneshot::channel();
        let job = AuditJob {
            body: event.body(),
            kind: event.kind(),
            done: Some(done),
        };
        self.audit
            .send(job)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        committed.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Queues `event` for the audit log without waiting (an action already committed must
    /// not wait on the log); a failure is logged and counted (`sms_audit_write_failures_total`).
    pub fn audit_append_detached(&self, event: &sms_core::audit::AuditEvent) {
        let job = AuditJob {
            body: event.body(),
            kind: event.kind(),
            done: None,
        };
        if self.audit.try_send(job).is_err() {
            tracing::error!(
                event = event.kind(),
                "audit queue full or writer gone: entry dropped"
            );
            metrics::counter!("sms_audit_write_failures_total", "type" => event.kind())
                .increment(1);
        }
    }

    /// Up to `limit` audit entries from index `from`.
    pub async fn audit_entries(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredAuditEntry>, StoreError> {
        chain_all_pending(self.backend.as_ref()).await?;
        self.backend.audit_entries(from, limit).await
    }

    /// The recorded hashes of the first `size` audit entries.
    pub async fn audit_leaves(&self, size: u64) -> Result<Vec<sms_core::audit::Hash>, StoreError> {
        chain_all_pending(self.backend.as_ref()).await?;
        self.backend.audit_leaves(size).await
    }

    /// Entries in the chain, after chaining those audited writes left pending.
    pub async fn audit_size(&self) -> Result<u64, StoreError> {
        chain_all_pending(self.backend.as_ref()).await?;
        self.backend.audit_size().await
    }

    pub async fn insert_audit_head(&self, head: StoredTreeHead) -> Result<Insert, StoreError> {
        self.backend.insert_audit_head(head).await
    }

    pub async fn audit_heads(
        &self,
        from_size: u64,
        limit: u32,
    ) -> Result<Vec<StoredTreeHead>, StoreError> {
        self.backend.audit_heads(from_size, limit).await
    }

    pub async fn latest_audit_head(&self) -> Result<Option<StoredTreeHead>, StoreError> {
        self.backend.latest_audit_head().await
    }

    /// A consistent online copy of the database in `dest` (SQLite); never the master key.
    pub async fn backup_to(&self, dest: &std::path::Path) -> Result<(), StoreError> {
        self.backend.backup_to(dest).await
    }
}

fn contention(key: &RecordKey) -> StoreError {
    StoreError::Key(format!(
        "too much contention writing {}/{}",
        key.owner, key.name
    ))
}

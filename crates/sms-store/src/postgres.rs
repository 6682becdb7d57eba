//! PostgreSQL backend, shared by several stateless SMS replicas. Each write is its own
//! transaction; PostgreSQL's own group commit makes concurrent commits share fsyncs.
//!
//! Every call is bounded by [`PostgresSettings::timeout`]: waiting for a pooled connection,
//! the server-side `statement_timeout` of each connection, and a client-side deadline over
//! the whole call (a blackholed network answers nothing, so only the client can give up).
//! Past it the call fails with [`StoreError::Unavailable`]; the pool reconnects by itself.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};

use crate::sql::{
    self, bind_data_key, bind_key, bind_rewrap, bind_row, fetch_many_rows, insert_all_rows,
};
use crate::{
    AuditNote, Backend, Insert, NonceUse, RecordKey, RecordMetadata, RowWrite, SealedRow,
    StoreError, StoredAuditEntry, StoredTreeHead, WrappedDataKey, unix_now,
};

/// The versioned schema; applied at start-up under sqlx's `pg_advisory_lock`.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Default of [`PostgresSettings::timeout`]: well inside the 2 s a 503 must take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);
/// Default pool size per replica.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// Start-up (connect, migrate) may wait longer than a request: a replica starting while
/// another one migrates waits for the advisory lock.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How one replica talks to PostgreSQL.
#[derive(Clone, Debug)]
pub struct PostgresSettings {
    /// `postgres://user@host/db?sslmode=verify-full&sslrootcert=/path/ca.pem`
    pub url: String,
    pub max_connections: u32,
    /// Bound of one store call: connection wait, statement, and the whole round trip.
    pub timeout: Duration,
}

impl PostgresSettings {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The URL's options (TLS parameters included) plus this replica's statement timeout.
    pub fn connect_options(&self) -> Result<PgConnectOptions, StoreError> {
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(StoreError::Key(
                "--database-url must start with postgres:// or postgresql://".into(),
            ));
        }
        let options = PgConnectOptions::from_str(&self.url)
            .map_err(|e| StoreError::Key(format!("--database-url is not a PostgreSQL URL: {e}")))?;
        let ms = format!("{}ms", self.timeout.as_millis().max(1));
        // A client that vanished inside a transaction (the audit append holds the chain-head
        // lock) must not keep its locks: the server ends such a session after the same bound.
        Ok(options.options([
            ("statement_timeout", ms.clone()),
            ("idle_in_transaction_session_timeout", ms),
        ]))
    }
}

pub struct PostgresBackend {
    pool: PgPool,
    timeout: Duration,
    description: String,
}

/// The newest migration version this binary knows.
pub fn known_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

impl PostgresBackend {
    /// Connects (bounded wait) and applies migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let mut settings = PostgresSettings::new(url);
        settings.max_connections = max_connections;
        Self::open(&settings).await
    }

    /// Connects, refuses a schema newer than this binary's, applies pending migrations
    /// (sqlx holds `pg_advisory_lock` meanwhile, so replicas starting together apply them once).
    pub async fn open(settings: &PostgresSettings) -> Result<Self, StoreError> {
        let options = settings.connect_options()?;
        let description = format!(
            "postgres {}:{}/{} (sslmode {:?})",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or(""),
            options.get_ssl_mode()
        )
        .to_lowercase();
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(settings.timeout)
            .connect_lazy_with(options);
        let startup = async {
            check_schema_version(&pool).await?;
            MIGRATOR.run(&pool).await.map_err(|e| match e {
                sqlx::migrate::MigrateError::VersionMissing(database) => StoreError::SchemaTooNew {
                    database,
                    known: known_schema_version(),
                },
                other => other.into(),
            })
        };
        tokio::time::timeout(STARTUP_TIMEOUT, startup)
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "could not connect and migrate within {} s",
                    STARTUP_TIMEOUT.as_secs()
                ))
            })??;
        Ok(Self {
            pool,
            timeout: settings.timeout,
            description,
        })
    }

    /// One row write on a pooled connection, within the timeout.
    async fn row(&self, write: RowWrite) -> Result<u64, StoreError> {
        let pool = self.pool.clone();
        self.bounded(async move {
            let mut conn = pool.acquire().await?;
            apply_row(&mut conn, &write, unix_now()).await
        })
        .await
    }

    /// Runs one store call within the timeout.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer from PostgreSQL within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

/// Fails with [`StoreError::SchemaTooNew`] when a newer SMS migrated this database.
/// One row write: rows written for `Insert` and `Replace`, the version written (0: none)
/// for the check-and-set writes.
async fn apply_row(
    conn: &mut PgConnection,
    write: &RowWrite,
    now: i64,
) -> Result<u64, sqlx::Error> {
    Ok(match write {
        RowWrite::Insert(row) => bind_row!(sqlx::query(sql::INSERT), row, now)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
        RowWrite::InsertAll(rows) => u64::from(insert_all_rows!(conn, rows, now).await?),
        RowWrite::Replace(row, expected) => bind_row!(sqlx::query(sql::REPLACE), row, now)
            .bind(*expected)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
        RowWrite::PutCreate(row) => sql::version_result(
            bind_row!(sqlx::query_as(sql::PUT_CREATE), row, now)
                .fetch_optional(&mut *conn)
                .await?,
        ),
        RowWrite::PutUpdate(row, expected) => sql::version_result(
            bind_row!(sqlx::query_as(sql::PUT_UPDATE), row, now)
                .bind(*expected)
                .fetch_optional(&mut *conn)
                .await?,
        ),
        RowWrite::Tombstone(key, expected) => sql::version_result(
            bind_key!(sqlx::query_as(sql::TOMBSTONE), key)
                .bind(Vec::<u8>::new())
                .bind(now)
                .bind(expected.unwrap_or(-1))
                .fetch_optional(&mut *conn)
                .await?,
        ),
    })
}

/// Appends `bodies` after the chain head: the caller's transaction holds the head row's lock
/// (every replica appends through it, so there is one chain). The size before and after.
async fn chain_entries(
    conn: &mut PgConnection,
    entries: impl IntoIterator<Item = (u64, String)>,
) -> Result<(i64, i64), sqlx::Error> {
    // The head row's lock orders the appends of every replica: the next one reads the head
    // this one wrote (READ COMMITTED re-reads a locked row once it is released).
    let (first, mut head): (i64, Vec<u8>) = sqlx::query_as(sql::AUDIT_CHAIN_FOR_UPDATE)
        .fetch_one(&mut *conn)
        .await?;
    let mut size = first;
    for (at, body) in entries {
        let entry = sql::next_audit_entry(size, &head, at, body);
        let hash = entry.hash();
        sqlx::query(sql::AUDIT_INSERT)
            .bind(size)
            .bind(at as i64)
            .bind(entry.prev.as_slice())
            .bind(hash.as_slice())
            .bind(&entry.body)
            .execute(&mut *conn)
            .await?;
        head = hash.to_vec();
        size += 1;
    }
    sqlx::query(sql::AUDIT_ADVANCE)
        .bind(size)
        .bind(head.as_slice())
        .bind(first)
        .execute(&mut *conn)
        .await?;
    Ok((first, size))
}

async fn check_schema_version(pool: &PgPool) -> Result<(), StoreError> {
    let (exists,): (bool,) = sqlx::query_as("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(());
    }
    let (database,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    let known = known_schema_version();
    match database {
        Some(database) if database > known => Err(StoreError::SchemaTooNew { database, known }),
        _ => Ok(()),
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn insert(&self, row: SealedRow) -> Result<Insert, StoreError> {
        Ok(sql::insert_outcome(self.row(RowWrite::Insert(row)).await?))
    }

    async fn replace(&self, row: SealedRow, expected_version: i64) -> Result<bool, StoreError> {
        Ok(self.row(RowWrite::Replace(row, expected_version)).await? == 1)
    }

    async fn insert_all(&self, rows: Vec<SealedRow>) -> Result<bool, StoreError> {
        Ok(self.row(RowWrite::InsertAll(rows)).await? == 1)
    }

    async fn get_many(&self, keys: &[RecordKey]) -> Result<Vec<Option<SealedRow>>, StoreError> {
        self.bounded(fetch_many_rows!(&self.pool, keys)).await
    }

    async fn get(&self, key: &RecordKey) -> Result<Option<SealedRow>, StoreError> {
        let row: Option<sql::RowRecord> = self
            .bounded(bind_key!(sqlx::query_as(sql::GET), key).fetch_optional(&self.pool))
            .await?;
        Ok(row.map(Into::into))
    }

    async fn exists(&self, key: &RecordKey) -> Result<bool, StoreError> {
        let row: Option<(i32,)> = self
            .bounded(bind_key!(sqlx::query_as(sql::EXISTS), key).fetch_optional(&self.pool))
            .await?;
        Ok(row.is_some())
    }

    async fn delete(
        &self,
        key: &RecordKey,
        expected_version: Option<i64>,
    ) -> Result<bool, StoreError> {
        let r = match expected_version {
            None => {
                self.bounded(bind_key!(sqlx::query(sql::DELETE), key).execute(&self.pool))
                    .await?
            }
            Some(v) => {
                self.bounded(
                    bind_key!(sqlx::query(sql::DELETE_VERSION), key)
                        .bind(v)
                        .execute(&self.pool),
                )
                .await?
            }
        };
        Ok(r.rows_affected() > 0)
    }

    async fn put_create(&self, row: SealedRow) -> Result<Option<i64>, StoreError> {
        Ok(sql::version_of(self.row(RowWrite::PutCreate(row)).await?))
    }

    async fn put_update(
        &self,
        row: SealedRow,
        expected_version: i64,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sql::version_of(
            self.row(RowWrite::PutUpdate(row, expected_version)).await?,
        ))
    }

    async fn tombstone(
        &self,
        key: &RecordKey,
        expected_version: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sql::version_of(
            self.row(RowWrite::Tombstone(key.clone(), expected_version))
                .await?,
        ))
    }

    async fn metadata(&self, key: &RecordKey) -> Result<Option<RecordMetadata>, StoreError> {
        let r: Option<sql::MetadataRecord> = bind_key!(sqlx::query_as(sql::METADATA), key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(Into::into))
    }

    async fn list(&self, namespace: &str, owner: &str) -> Result<Vec<RecordMetadata>, StoreError> {
        let rows: Vec<sql::MetadataRecord> = sqlx::query_as(sql::LIST)
            .bind(namespace)
            .bind(owner)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn use_nonce(
        &self,
        owner: &str,
        nonce: &str,
        expires_at: i64,
    ) -> Result<NonceUse, StoreError> {
        let r = sqlx::query(sql::USE_NONCE)
            .bind(owner)
            .bind(nonce)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(sql::nonce_use(r.rows_affected()))
    }

    async fn delete_expired_nonces(&self, now: i64) -> Result<u64, StoreError> {
        let r = sqlx::query(sql::DELETE_EXPIRED_NONCES)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn delete_expired(&self, namespace: &str, now: i64) -> Result<u64, StoreError> {
        let r = self
            .bounded(
                sqlx::query(sql::DELETE_EXPIRED)
                    .bind(namespace)
                    .bind(now)
                    .execute(&self.pool),
            )
            .await?;
        Ok(r.rows_affected())
    }

    async fn count_by_namespace(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = self
            .bounded(sqlx::query_as(sql::COUNT).fetch_all(&self.pool))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(ns, n)| (ns, n.max(0) as u64))
            .collect())
    }

    async fn data_keys(&self) -> Result<Vec<WrappedDataKey>, StoreError> {
        let rows: Vec<sql::DataKeyRecord> = self
            .bounded(sqlx::query_as(sql::DATA_KEYS).fetch_all(&self.pool))
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn insert_data_key(&self, key: WrappedDataKey) -> Result<Insert, StoreError> {
        let r = self
            .bounded(
                bind_data_key!(sqlx::query(sql::INSERT_DATA_KEY), key, unix_now())
                    .execute(&self.pool),
            )
            .await?;
        Ok(sql::insert_outcome(r.rows_affected()))
    }

    async fn reserve_encryptions(&self, key_id: i64, count: u64) -> Result<(), StoreError> {
        // One atomic increment in the database: every replica's reservations add up.
        self.bounded(
            sqlx::query(sql::RESERVE_ENCRYPTIONS)
                .bind(key_id)
                .bind(count as i64)
                .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    async fn rewrap_data_keys(
        &self,
        keys: Vec<WrappedDataKey>,
        old_fp: &str,
        new_fp: &str,
    ) -> Result<bool, StoreError> {
        let pool = self.pool.clone();
        self.bounded(async move {
            let mut tx = pool.begin().await?;
            let mut all = true;
            for k in &keys {
                all &= sqlx::query(sql::REWRAP_DATA_KEY)
                    .bind(k.id)
                    .bind(&k.wrapped)
                    .bind(&k.nonce)
                    .bind(&k.master_fingerprint)
                    .bind(old_fp)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
            }
            let (foreign,): (i64,) = sqlx::query_as(sql::FOREIGN_DATA_KEYS)
                .bind(new_fp)
                .fetch_one(&mut *tx)
                .await?;
            if all && foreign == 0 {
                tx.commit().await?;
                Ok(true)
            } else {
                tx.rollback().await?;
                Ok(false)
            }
        })
        .await
    }

    async fn retire_data_key(&self, id: i64) -> Result<bool, StoreError> {
        let r = self
            .bounded(
                sqlx::query(sql::RETIRE_DATA_KEY)
                    .bind(id)
                    .execute(&self.pool),
            )
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn rows_per_key(&self) -> Result<Vec<(i64, u64)>, StoreError> {
        let rows: Vec<(i64, i64)> = self
            .bounded(sqlx::query_as(sql::ROWS_PER_KEY).fetch_all(&self.pool))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(k, n)| (k, n.max(0) as u64))
            .collect())
    }

    async fn pending_rewrap(&self, current: i64) -> Result<u64, StoreError> {
        let (n,): (i64,) = self
            .bounded(
                sqlx::query_as(sql::PENDING_REWRAP)
                    .bind(current)
                    .fetch_one(&self.pool),
            )
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn rewrap_candidates(
        &self,
        current: i64,
        after: &RecordKey,
        limit: u32,
    ) -> Result<Vec<SealedRow>, StoreError> {
        let rows: Vec<sql::RowRecord> = self
            .bounded(
                sqlx::query_as(sql::REWRAP_CANDIDATES)
                    .bind(current)
                    .bind(&after.namespace)
                    .bind(&after.owner)
                    .bind(&after.name)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool),
            )
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn rewrap_row(&self, row: SealedRow, old_nonce: &[u8]) -> Result<bool, StoreError> {
        let r = self
            .bounded(bind_rewrap!(sqlx::query(sql::REWRAP_ROW), row, old_nonce).execute(&self.pool))
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn rewrap_tombstones(&self, current: i64, limit: u32) -> Result<u64, StoreError> {
        let r = self
            .bounded(
                sqlx::query(sql::REWRAP_TOMBSTONES)
                    .bind(current)
                    .bind(i64::from(limit))
                    .execute(&self.pool),
            )
            .await?;
        Ok(r.rows_affected())
    }

    async fn backup_to(&self, _dest: &std::path::Path) -> Result<(), StoreError> {
        Err(StoreError::Unsupported(
            "a PostgreSQL store is backed up with pg_dump (docs/keys-and-backups.md), not by the SMS".into(),
        ))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(sqlx::query("SELECT 1").execute(&self.pool))
            .await
            .map(|_| ())
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn write_audited(&self, write: RowWrite, note: AuditNote) -> Result<u64, StoreError> {
        // The entry waits in audit_pending, committed with the row; chaining it here would hold
        // the chain-head lock across every replica's writes until each commit.
        let pool = self.pool.clone();
        self.bounded(async move {
            let mut tx = pool.begin().await?;
            let written = apply_row(&mut tx, &write, unix_now()).await?;
            if written > 0 {
                let pending = sqlx::query(sql::AUDIT_PENDING_INSERT)
                    .bind(note.at as i64)
                    .bind(&note.body)
                    .execute(&mut *tx)
                    .await;
                if let Err(e) = pending {
                    tx.rollback().await?;
                    return Ok(Err(StoreError::AuditRefused(e.to_string())));
                }
            }
            tx.commit().await?;
            Ok(Ok(written))
        })
        .await?
    }

    async fn chain_pending(&self, limit: u32) -> Result<u64, StoreError> {
        let pool = self.pool.clone();
        self.bounded(async move {
            // Cheap when there is nothing to chain: no lock taken.
            let (any,): (bool,) = sqlx::query_as(sql::AUDIT_PENDING_ANY)
                .fetch_one(&pool)
                .await?;
            if !any {
                return Ok(0);
            }
            let mut tx = pool.begin().await?;
            // Locks the head first: the pending rows are read by one chainer at a time.
            sqlx::query(sql::AUDIT_CHAIN_FOR_UPDATE)
                .execute(&mut *tx)
                .await?;
            let pending: Vec<(i64, i64, String)> = sqlx::query_as(sql::AUDIT_PENDING_PAGE)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            let ids: Vec<i64> = pending.iter().map(|(id, _, _)| *id).collect();
            chain_entries(
                &mut tx,
                pending
                    .into_iter()
                    .map(|(_, at, body)| (at.max(0) as u64, body)),
            )
            .await?;
            sqlx::query(sql::AUDIT_PENDING_DELETE)
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(ids.len() as u64)
        })
        .await
    }

    async fn append_audit(&self, at: u64, bodies: Vec<String>) -> Result<u64, StoreError> {
        let pool = self.pool.clone();
        self.bounded(async move {
            let mut tx = pool.begin().await?;
            let (first, _) =
                chain_entries(&mut tx, bodies.into_iter().map(|body| (at, body))).await?;
            tx.commit().await?;
            Ok(first.max(0) as u64)
        })
        .await
    }

    async fn audit_entries(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredAuditEntry>, StoreError> {
        let rows: Vec<sql::AuditEntryRecord> = self
            .bounded(
                sqlx::query_as(sql::AUDIT_ENTRIES)
                    .bind(i64::try_from(from).unwrap_or(i64::MAX))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool),
            )
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn audit_leaves(&self, size: u64) -> Result<Vec<sms_core::audit::Hash>, StoreError> {
        let rows: Vec<(Vec<u8>,)> = self
            .bounded(
                sqlx::query_as(sql::AUDIT_LEAVES)
                    .bind(i64::try_from(size).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool),
            )
            .await?;
        Ok(rows.iter().map(|(h,)| crate::fixed_hash(h)).collect())
    }

    async fn audit_size(&self) -> Result<u64, StoreError> {
        let (size, _): (i64, Vec<u8>) = self
            .bounded(sqlx::query_as(sql::AUDIT_CHAIN).fetch_one(&self.pool))
            .await?;
        Ok(size.max(0) as u64)
    }

    async fn insert_audit_head(&self, head: StoredTreeHead) -> Result<Insert, StoreError> {
        let r = self
            .bounded(
                sqlx::query(sql::AUDIT_INSERT_HEAD)
                    .bind(head.head.size as i64)
                    .bind(head.head.root.as_slice())
                    .bind(head.head.at as i64)
                    .bind(&head.signature)
                    .execute(&self.pool),
            )
            .await?;
        Ok(sql::insert_outcome(r.rows_affected()))
    }

    async fn audit_heads(
        &self,
        from_size: u64,
        limit: u32,
    ) -> Result<Vec<StoredTreeHead>, StoreError> {
        let rows: Vec<sql::AuditHeadRecord> = self
            .bounded(
                sqlx::query_as(sql::AUDIT_HEADS)
                    .bind(i64::try_from(from_size).unwrap_or(i64::MAX))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool),
            )
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn latest_audit_head(&self) -> Result<Option<StoredTreeHead>, StoreError> {
        let row: Option<sql::AuditHeadRecord> = self
            .bounded(sqlx::query_as(sql::AUDIT_LATEST_HEAD).fetch_optional(&self.pool))
            .await?;
        Ok(row.map(Into::into))
    }
}

#[cfg(test)]
mod tests {
    use sqlx::postgres::PgSslMode;

    use super::*;

    #[test]
    fn url_tls_parameters_are_honoured() {
        let mut settings = PostgresSettings::new(
            "postgres://sms@db.example:5433/sms?sslmode=verify-full&sslrootcert=/etc/sms/pg-ca.pem",
        );
        settings.timeout = Duration::from_millis(1200);
        let options = settings.connect_options().unwrap();
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
        assert_eq!(options.get_host(), "db.example");
        assert_eq!(options.get_port(), 5433);
        assert_eq!(options.get_database(), Some("sms"));
        assert!(format!("{options:?}").contains("/etc/sms/pg-ca.pem"));
        assert_eq!(
            options.get_options(),
            Some("-c statement_timeout=1200ms -c idle_in_transaction_session_timeout=1200ms")
        );
    }

    #[test]
    fn a_url_that_is_not_postgres_is_refused() {
        assert!(
            PostgresSettings::new("mysql://x@y/z")
                .connect_options()
                .is_err()
        );
    }

    #[test]
    fn outages_are_typed() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(StoreError::from(sqlx::Error::Io(refused)).is_unavailable());
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(
            StoreError::from(sqlx::Error::Protocol(
                "unexpected response from SSLRequest".into()
            ))
            .is_unavailable()
        );
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
    }
}

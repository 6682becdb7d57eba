//! SQLite backend: WAL, `synchronous=FULL`, one writer task that commits queued writes in
//! groups (one fsync acknowledges many requests), and a pool of readers.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::sql::{self, bind_key, bind_row};
use crate::{Backend, Insert, RecordKey, SealedRow, StoreError, WrappedDataKey, unix_now};

/// Upper bound of writes committed by one transaction.
const MAX_GROUP: usize = 512;

enum Write {
    Insert(SealedRow),
    Replace(SealedRow, i64),
    Delete(RecordKey, Option<i64>),
    DeleteExpired(String, i64),
    InsertDataKey(WrappedDataKey),
}

struct Job {
    write: Write,
    done: oneshot::Sender<Result<u64, StoreError>>,
}

pub struct SqliteBackend {
    readers: SqlitePool,
    writer: mpsc::Sender<Job>,
    path: String,
}

fn options(path: &Path) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL in WAL mode: a commit is on disk before it is acknowledged.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true))
}

impl SqliteBackend {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let mut writer = SqliteConnection::connect_with(&options(path)?).await?;
        sqlx::migrate!("migrations/sqlite").run(&mut writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options(path)?.read_only(true))
            .await?;
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(write_loop(writer, rx));
        Ok(Self { readers, writer: tx, path: path.display().to_string() })
    }

    async fn submit(&self, write: Write) -> Result<u64, StoreError> {
        let (done, wait) = oneshot::channel();
        self.writer.send(Job { write, done }).await.map_err(|_| StoreError::WriterGone)?;
        wait.await.map_err(|_| StoreError::WriterGone)?
    }
}

async fn write_loop(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut batch, MAX_GROUP).await > 0 {
        match commit_group(&mut conn, &batch).await {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.done.send(Ok(result));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = batch.len(), "group commit failed");
                let reason = e.to_string();
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(StoreError::Key(format!("write not committed: {reason}"))));
                }
            }
        }
    }
}

async fn commit_group(conn: &mut SqliteConnection, batch: &[Job]) -> Result<Vec<u64>, sqlx::Error> {
    let now = unix_now();
    let mut tx = conn.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let affected = match &job.write {
            Write::Insert(row) => bind_row!(sqlx::query(sql::INSERT), row, now).execute(&mut *tx).await?,
            Write::Replace(row, expected) => {
                bind_row!(sqlx::query(sql::REPLACE), row, now).bind(*expected).execute(&mut *tx).await?
            }
            Write::Delete(key, None) => bind_key!(sqlx::query(sql::DELETE), key).execute(&mut *tx).await?,
            Write::Delete(key, Some(v)) => {
                bind_key!(sqlx::query(sql::DELETE_VERSION), key).bind(*v).execute(&mut *tx).await?
            }
            Write::DeleteExpired(ns, before) => {
                sqlx::query(sql::DELETE_EXPIRED).bind(ns).bind(*before).execute(&mut *tx).await?
            }
            Write::InsertDataKey(k) => {
                sqlx::query(sql::INSERT_DATA_KEY)
                    .bind(k.id)
                    .bind(&k.wrapped)
                    .bind(&k.nonce)
                    .bind(&k.master_fingerprint)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
            }
        };
        results.push(affected.rows_affected());
    }
    tx.commit().await?;
    Ok(results)
}

fn inserted(affected: u64) -> Insert {
    if affected == 1 { Insert::Inserted } else { Insert::AlreadyExists }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn insert(&self, row: SealedRow) -> Result<Insert, StoreError> {
        Ok(inserted(self.submit(Write::Insert(row)).await?))
    }

    async fn replace(&self, row: SealedRow, expected_version: i64) -> Result<bool, StoreError> {
        Ok(self.submit(Write::Replace(row, expected_version)).await? == 1)
    }

    async fn get(&self, key: &RecordKey) -> Result<Option<SealedRow>, StoreError> {
        let row: Option<sql::RowRecord> = bind_key!(sqlx::query_as(sql::GET), key).fetch_optional(&self.readers).await?;
        Ok(row.map(Into::into))
    }

    async fn exists(&self, key: &RecordKey) -> Result<bool, StoreError> {
        let row: Option<(i64,)> = bind_key!(sqlx::query_as(sql::EXISTS), key).fetch_optional(&self.readers).await?;
        Ok(row.is_some())
    }

    async fn delete(&self, key: &RecordKey, expected_version: Option<i64>) -> Result<bool, StoreError> {
        Ok(self.submit(Write::Delete(key.clone(), expected_version)).await? > 0)
    }

    async fn delete_expired(&self, namespace: &str, now: i64) -> Result<u64, StoreError> {
        self.submit(Write::DeleteExpired(namespace.to_owned(), now)).await
    }

    async fn count_by_namespace(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::COUNT).fetch_all(&self.readers).await?;
        Ok(rows.into_iter().map(|(ns, n)| (ns, n.max(0) as u64)).collect())
    }

    async fn data_keys(&self) -> Result<Vec<WrappedDataKey>, StoreError> {
        let rows: Vec<sql::DataKeyRecord> = sqlx::query_as(sql::DATA_KEYS).fetch_all(&self.readers).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn insert_data_key(&self, key: WrappedDataKey) -> Result<Insert, StoreError> {
        Ok(inserted(self.submit(Write::InsertDataKey(key)).await?))
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path)
    }
}

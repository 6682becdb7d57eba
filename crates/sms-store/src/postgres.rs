//! PostgreSQL backend, shared by several stateless SMS replicas. Each write is its own
//! transaction; PostgreSQL's own group commit makes concurrent commits share fsyncs.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::sql::{self, bind_key, bind_row};
use crate::{
    Backend, Insert, NonceUse, RecordKey, RecordMetadata, SealedRow, StoreError, WrappedDataKey,
    unix_now,
};

pub struct PostgresBackend {
    pool: PgPool,
    description: String,
}

impl PostgresBackend {
    /// Connects (bounded wait) and applies migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let description = match url.rsplit_once('@') {
            Some((_, host)) => format!("postgres {host}"),
            None => "postgres".to_owned(),
        };
        Ok(Self { pool, description })
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn insert(&self, row: SealedRow) -> Result<Insert, StoreError> {
        let r = bind_row!(sqlx::query(sql::INSERT), row, unix_now())
            .execute(&self.pool)
            .await?;
        Ok(sql::insert_outcome(r.rows_affected()))
    }

    async fn replace(&self, row: SealedRow, expected_version: i64) -> Result<bool, StoreError> {
        let r = bind_row!(sqlx::query(sql::REPLACE), row, unix_now())
            .bind(expected_version)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn get(&self, key: &RecordKey) -> Result<Option<SealedRow>, StoreError> {
        let row: Option<sql::RowRecord> = bind_key!(sqlx::query_as(sql::GET), key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn exists(&self, key: &RecordKey) -> Result<bool, StoreError> {
        let row: Option<(i32,)> = bind_key!(sqlx::query_as(sql::EXISTS), key)
            .fetch_optional(&self.pool)
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
                bind_key!(sqlx::query(sql::DELETE), key)
                    .execute(&self.pool)
                    .await?
            }
            Some(v) => {
                bind_key!(sqlx::query(sql::DELETE_VERSION), key)
                    .bind(v)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(r.rows_affected() > 0)
    }

    async fn put_create(&self, row: SealedRow) -> Result<Option<i64>, StoreError> {
        let r: Option<(i64,)> = bind_row!(sqlx::query_as(sql::PUT_CREATE), row, unix_now())
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|(v,)| v))
    }

    async fn put_update(
        &self,
        row: SealedRow,
        expected_version: i64,
    ) -> Result<Option<i64>, StoreError> {
        let r: Option<(i64,)> = bind_row!(sqlx::query_as(sql::PUT_UPDATE), row, unix_now())
            .bind(expected_version)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|(v,)| v))
    }

    async fn tombstone(
        &self,
        key: &RecordKey,
        expected_version: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        let r: Option<(i64,)> = bind_key!(sqlx::query_as(sql::TOMBSTONE), key)
            .bind(Vec::<u8>::new())
            .bind(unix_now())
            .bind(expected_version.unwrap_or(-1))
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|(v,)| v))
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
        let r = sqlx::query(sql::DELETE_EXPIRED)
            .bind(namespace)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn count_by_namespace(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::COUNT).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(ns, n)| (ns, n.max(0) as u64))
            .collect())
    }

    async fn data_keys(&self) -> Result<Vec<WrappedDataKey>, StoreError> {
        let rows: Vec<sql::DataKeyRecord> =
            sqlx::query_as(sql::DATA_KEYS).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn insert_data_key(&self, key: WrappedDataKey) -> Result<Insert, StoreError> {
        let r = sqlx::query(sql::INSERT_DATA_KEY)
            .bind(key.id)
            .bind(&key.wrapped)
            .bind(&key.nonce)
            .bind(&key.master_fingerprint)
            .bind(unix_now())
            .execute(&self.pool)
            .await?;
        Ok(sql::insert_outcome(r.rows_affected()))
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

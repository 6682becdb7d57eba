//! SQL shared by both backends (`$n` placeholders work in SQLite and PostgreSQL).

/// Insert-once; a tombstone (deleted secret) is brought back to life with the next version.
pub const INSERT: &str = "INSERT INTO records (namespace, owner, name, key_id, nonce, ciphertext, version, expires_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (namespace, owner, name) DO UPDATE SET \
     key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, version = records.version + 1, \
     expires_at = excluded.expires_at, created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = NULL \
     WHERE records.deleted_at IS NOT NULL";
/// `INSERT` answering the version written (check-and-set create: `expectedVersion` 0).
pub const PUT_CREATE: &str = "INSERT INTO records (namespace, owner, name, key_id, nonce, ciphertext, version, expires_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (namespace, owner, name) DO UPDATE SET \
     key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, version = records.version + 1, \
     expires_at = excluded.expires_at, created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = NULL \
     WHERE records.deleted_at IS NOT NULL RETURNING version";
pub const REPLACE: &str = "UPDATE records SET key_id = $4, nonce = $5, ciphertext = $6, version = $7, expires_at = $8, updated_at = $9 \
     WHERE namespace = $1 AND owner = $2 AND name = $3 AND version = $10 AND deleted_at IS NULL";
/// `REPLACE` answering the version written (check-and-set update: `expectedVersion` N).
pub const PUT_UPDATE: &str = "UPDATE records SET key_id = $4, nonce = $5, ciphertext = $6, version = $7, expires_at = $8, updated_at = $9 \
     WHERE namespace = $1 AND owner = $2 AND name = $3 AND version = $10 AND deleted_at IS NULL RETURNING version";
/// Deletes the value but keeps the row (version bumped); `$6` < 0 means at any version.
pub const TOMBSTONE: &str = "UPDATE records SET nonce = $4, ciphertext = $4, version = version + 1, expires_at = NULL, updated_at = $5, deleted_at = $5 \
     WHERE namespace = $1 AND owner = $2 AND name = $3 AND deleted_at IS NULL AND ($6 < 0 OR version = $6) RETURNING version";
pub const GET: &str = "SELECT namespace, owner, name, key_id, nonce, ciphertext, version, expires_at FROM records \
     WHERE namespace = $1 AND owner = $2 AND name = $3 AND deleted_at IS NULL";
pub const EXISTS: &str = "SELECT 1 FROM records WHERE namespace = $1 AND owner = $2 AND name = $3 AND deleted_at IS NULL";
/// Metadata of a row, tombstone included (the caller decides what a tombstone means).
pub const METADATA: &str = "SELECT name, version, key_id, created_at, updated_at, deleted_at FROM records \
     WHERE namespace = $1 AND owner = $2 AND name = $3";
pub const LIST: &str = "SELECT name, version, key_id, created_at, updated_at, deleted_at FROM records \
     WHERE namespace = $1 AND owner = $2 AND deleted_at IS NULL ORDER BY name";
pub const USE_NONCE: &str = "INSERT INTO request_nonces (owner, nonce, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (owner, nonce) DO NOTHING";
pub const DELETE_EXPIRED_NONCES: &str = "DELETE FROM request_nonces WHERE expires_at < $1";
pub const DELETE: &str = "DELETE FROM records WHERE namespace = $1 AND owner = $2 AND name = $3";
pub const DELETE_VERSION: &str =
    "DELETE FROM records WHERE namespace = $1 AND owner = $2 AND name = $3 AND version = $4";
pub const DELETE_EXPIRED: &str =
    "DELETE FROM records WHERE namespace = $1 AND expires_at IS NOT NULL AND expires_at < $2";
pub const COUNT: &str =
    "SELECT namespace, COUNT(*) AS n FROM records WHERE deleted_at IS NULL GROUP BY namespace";
pub const DATA_KEYS: &str = "SELECT id, wrapped, nonce, master_fp FROM data_keys ORDER BY id";
pub const INSERT_DATA_KEY: &str = "INSERT INTO data_keys (id, wrapped, nonce, master_fp, created_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (id) DO NOTHING";

/// An insert-if-absent affected one row, or none because the key exists.
pub fn insert_outcome(affected: u64) -> crate::Insert {
    if affected == 1 {
        crate::Insert::Inserted
    } else {
        crate::Insert::AlreadyExists
    }
}

#[derive(sqlx::FromRow)]
pub struct RowRecord {
    pub namespace: String,
    pub owner: String,
    pub name: String,
    pub key_id: i64,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub version: i64,
    pub expires_at: Option<i64>,
}

impl From<RowRecord> for crate::SealedRow {
    fn from(r: RowRecord) -> Self {
        Self {
            key: crate::RecordKey::new(r.namespace, r.owner, r.name),
            key_id: r.key_id,
            nonce: r.nonce,
            ciphertext: r.ciphertext,
            version: r.version,
            expires_at: r.expires_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct MetadataRecord {
    pub name: String,
    pub version: i64,
    pub key_id: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

impl From<MetadataRecord> for crate::RecordMetadata {
    fn from(r: MetadataRecord) -> Self {
        Self {
            name: r.name,
            version: r.version,
            key_id: r.key_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            deleted: r.deleted_at.is_some(),
        }
    }
}

/// A nonce insert affected one row (fresh) or none (already recorded).
pub fn nonce_use(affected: u64) -> crate::NonceUse {
    if affected == 1 {
        crate::NonceUse::Fresh
    } else {
        crate::NonceUse::Reused
    }
}

#[derive(sqlx::FromRow)]
pub struct DataKeyRecord {
    pub id: i64,
    pub wrapped: Vec<u8>,
    pub nonce: Vec<u8>,
    pub master_fp: String,
}

impl From<DataKeyRecord> for crate::WrappedDataKey {
    fn from(r: DataKeyRecord) -> Self {
        Self {
            id: r.id,
            wrapped: r.wrapped,
            nonce: r.nonce,
            master_fingerprint: r.master_fp,
        }
    }
}

/// Binds the sealed row to `INSERT` / `REPLACE` ($1..$9).
macro_rules! bind_row {
    ($query:expr, $row:expr, $now:expr) => {
        $query
            .bind(&$row.key.namespace)
            .bind(&$row.key.owner)
            .bind(&$row.key.name)
            .bind($row.key_id)
            .bind(&$row.nonce)
            .bind(&$row.ciphertext)
            .bind($row.version)
            .bind($row.expires_at)
            .bind($now)
    };
}
pub(crate) use bind_row;

/// Binds a record key ($1..$3).
macro_rules! bind_key {
    ($query:expr, $key:expr) => {
        $query
            .bind(&$key.namespace)
            .bind(&$key.owner)
            .bind(&$key.name)
    };
}
pub(crate) use bind_key;

//! SQL shared by both backends (`$n` placeholders work in SQLite and PostgreSQL).

pub const INSERT: &str = "INSERT INTO records (namespace, owner, name, key_id, nonce, ciphertext, version, expires_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (namespace, owner, name) DO NOTHING";
pub const REPLACE: &str = "UPDATE records SET key_id = $4, nonce = $5, ciphertext = $6, version = $7, expires_at = $8, updated_at = $9 \
     WHERE namespace = $1 AND owner = $2 AND name = $3 AND version = $10";
pub const GET: &str = "SELECT namespace, owner, name, key_id, nonce, ciphertext, version, expires_at FROM records \
     WHERE namespace = $1 AND owner = $2 AND name = $3";
pub const EXISTS: &str = "SELECT 1 FROM records WHERE namespace = $1 AND owner = $2 AND name = $3";
pub const DELETE: &str = "DELETE FROM records WHERE namespace = $1 AND owner = $2 AND name = $3";
pub const DELETE_VERSION: &str =
    "DELETE FROM records WHERE namespace = $1 AND owner = $2 AND name = $3 AND version = $4";
pub const DELETE_EXPIRED: &str =
    "DELETE FROM records WHERE namespace = $1 AND expires_at IS NOT NULL AND expires_at < $2";
pub const COUNT: &str = "SELECT namespace, COUNT(*) AS n FROM records GROUP BY namespace";
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

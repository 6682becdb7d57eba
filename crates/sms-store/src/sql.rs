//! SQL shared by both backends (`$n` placeholders work in SQLite and PostgreSQL).

// Every write of a value stores the version its ciphertext was sealed for ($7): the SQL
// writes exactly that version or nothing, and marks the row `seal_format` 2 (identity and
// version bound). A tombstone at version N is revived only by a row sealed for N + 1.

/// Insert-once; a tombstone (deleted secret) at `$7 - 1` is brought back to life at `$7`.
pub const INSERT: &str = "INSERT INTO records (namespace, owner, name, key_id, nonce, ciphertext, version, expires_at, created_at, updated_at, seal_format) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 2) ON CONFLICT (namespace, owner, name) DO UPDATE SET \
     key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, version = excluded.version, \
     expires_at = excluded.expires_at, created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = NULL, seal_format = 2 \
     WHERE records.deleted_at IS NOT NULL AND records.version = excluded.version - 1";
/// `INSERT` answering the version written (check-and-set create: `expectedVersion` 0).
pub const PUT_CREATE: &str = "INSERT INTO records (namespace, owner, name, key_id, nonce, ciphertext, version, expires_at, created_at, updated_at, seal_format) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 2) ON CONFLICT (namespace, owner, name) DO UPDATE SET \
     key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, version = excluded.version, \
     expires_at = excluded.expires_at, created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = NULL, seal_format = 2 \
     WHERE records.deleted_at IS NOT NULL AND records.version = excluded.version - 1 RETURNING version";
/// Replaces the live row at `$10`; the caller sealed it for `$7` = `$10 + 1`.
pub const REPLACE: &str = "UPDATE records SET key_id = $4, nonce = $5, ciphertext = $6, version = $7, expires_at = $8, updated_at = $9, seal_format = 2 \
     WHERE namespace = $1 AND owner = $2 AND name = $3 AND version = $10 AND $7 = $10 + 1 AND deleted_at IS NULL";
/// `REPLACE` answering the version written (check-and-set update: `expectedVersion` N).
pub const PUT_UPDATE: &str = "UPDATE records SET key_id = $4, nonce = $5, ciphertext = $6, version = $7, expires_at = $8, updated_at = $9, seal_format = 2 \
     WHERE namespace = $1 AND owner = $2 AND name = $3 AND version = $10 AND $7 = $10 + 1 AND deleted_at IS NULL RETURNING version";
/// Deletes the value but keeps the row (version bumped); `$6` < 0 means at any version.
pub const TOMBSTONE: &str = "UPDATE records SET nonce = $4, ciphertext = $4, version = version + 1, expires_at = NULL, updated_at = $5, deleted_at = $5 \
     WHERE namespace = $1 AND owner = $2 AND name = $3 AND deleted_at IS NULL AND ($6 < 0 OR version = $6) RETURNING version";
pub const GET: &str = "SELECT namespace, owner, name, key_id, nonce, ciphertext, version, expires_at, seal_format FROM records \
     WHERE namespace = $1 AND owner = $2 AND name = $3 AND deleted_at IS NULL";
/// Keys per multi-key read (`get_rows`). Statements are built for powers of two up to this,
/// a shorter chunk padded with its last key, so a handful of texts stay in each connection's
/// statement cache.
pub const KEYS_PER_READ: usize = 16;

/// `GET` of `keys` keys in one statement: one `UNION ALL` branch per key, each a primary-key
/// lookup in both engines (`$1..$3` the first key, `$4..$6` the second, ...).
pub fn get_rows(keys: usize) -> String {
    (0..keys)
        .map(|i| {
            let p = 3 * i;
            format!(
                "SELECT namespace, owner, name, key_id, nonce, ciphertext, version, expires_at, seal_format FROM records \
                 WHERE namespace = ${} AND owner = ${} AND name = ${} AND deleted_at IS NULL",
                p + 1,
                p + 2,
                p + 3
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The statements of a multi-key read: `(text, keys to bind)` per chunk of at most
/// [`KEYS_PER_READ`] keys, each padded to its statement's power of two with its last key.
pub fn get_many_statements(
    keys: &[crate::RecordKey],
) -> Vec<(&'static str, Vec<&crate::RecordKey>)> {
    static TEXTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        (0..=KEYS_PER_READ.ilog2())
            .map(|p| get_rows(1 << p))
            .collect()
    });
    keys.chunks(KEYS_PER_READ)
        .map(|chunk| {
            let size = chunk.len().next_power_of_two();
            let mut bound: Vec<&crate::RecordKey> = chunk.iter().collect();
            let last = bound[bound.len() - 1];
            bound.resize(size, last);
            (texts[size.ilog2() as usize].as_str(), bound)
        })
        .collect()
}

/// The rows a multi-key read found, matched back to `keys` in order.
pub fn match_rows(
    keys: &[crate::RecordKey],
    found: Vec<RowRecord>,
) -> Vec<Option<crate::SealedRow>> {
    let mut found: Vec<crate::SealedRow> = found.into_iter().map(Into::into).collect();
    keys.iter()
        .map(|key| {
            let at = found.iter().position(|row| row.key == *key)?;
            Some(found.swap_remove(at))
        })
        .collect()
}

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
pub const DATA_KEYS: &str = "SELECT id, wrapped, nonce, master_fp, created_at, encryptions, wrap_format FROM data_keys ORDER BY id";
/// A new data key, unless a key wrapped by another master key exists (rotated elsewhere).
pub const INSERT_DATA_KEY: &str = "INSERT INTO data_keys (id, wrapped, nonce, master_fp, created_at, encryptions, wrap_format) \
     SELECT $1, $2, $3, $4, $5, 0, $6 WHERE NOT EXISTS (SELECT 1 FROM data_keys WHERE master_fp <> $4) \
     ON CONFLICT (id) DO NOTHING";
pub const RESERVE_ENCRYPTIONS: &str =
    "UPDATE data_keys SET encryptions = encryptions + $2 WHERE id = $1";
pub const REWRAP_DATA_KEY: &str = "UPDATE data_keys SET wrapped = $2, nonce = $3, master_fp = $4 WHERE id = $1 AND master_fp = $5";
pub const FOREIGN_DATA_KEYS: &str = "SELECT COUNT(*) FROM data_keys WHERE master_fp <> $1";
pub const RETIRE_DATA_KEY: &str = "DELETE FROM data_keys WHERE id = $1 AND id < (SELECT MAX(id) FROM data_keys) \
     AND NOT EXISTS (SELECT 1 FROM records WHERE key_id = $1)";
pub const ROWS_PER_KEY: &str =
    "SELECT key_id, COUNT(*) FROM records GROUP BY key_id ORDER BY key_id";
pub const PENDING_REWRAP: &str =
    "SELECT COUNT(*) FROM records WHERE key_id <> $1 OR (seal_format < 2 AND deleted_at IS NULL)";
/// Keyset pagination in primary-key order, so a pass ends even when rows do not open.
pub const REWRAP_CANDIDATES: &str = "SELECT namespace, owner, name, key_id, nonce, ciphertext, version, expires_at, seal_format FROM records \
     WHERE (namespace, owner, name) > ($2, $3, $4) AND deleted_at IS NULL AND (key_id <> $1 OR seal_format < 2) \
     ORDER BY namespace, owner, name LIMIT $5";
/// Re-sealed under a new key at the same version, only if the row is still the one read.
pub const REWRAP_ROW: &str = "UPDATE records SET key_id = $4, nonce = $5, ciphertext = $6, seal_format = 2 \
     WHERE namespace = $1 AND owner = $2 AND name = $3 AND version = $7 AND nonce = $8 AND deleted_at IS NULL";
pub const REWRAP_TOMBSTONES: &str = "UPDATE records SET key_id = $1 WHERE deleted_at IS NOT NULL AND key_id <> $1 \
     AND (namespace, owner, name) IN (SELECT namespace, owner, name FROM records WHERE deleted_at IS NOT NULL AND key_id <> $1 LIMIT $2)";

// The audit log (docs/audit.md). An append reads the chain head, inserts the entry that
// follows it and advances the head, in one transaction; PostgreSQL locks the head row
// (`FOR UPDATE`) so concurrent replicas append one after the other to one chain.
pub const AUDIT_CHAIN: &str = "SELECT size, head FROM audit_chain WHERE id = 1";
pub const AUDIT_CHAIN_FOR_UPDATE: &str =
    "SELECT size, head FROM audit_chain WHERE id = 1 FOR UPDATE";
/// PostgreSQL only: entries committed with their action, waiting to be chained.
pub const AUDIT_PENDING_INSERT: &str = "INSERT INTO audit_pending (at, body) VALUES ($1, $2)";
pub const AUDIT_PENDING_ANY: &str = "SELECT EXISTS (SELECT 1 FROM audit_pending)";
pub const AUDIT_PENDING_PAGE: &str = "SELECT id, at, body FROM audit_pending ORDER BY id LIMIT $1";
pub const AUDIT_PENDING_DELETE: &str = "DELETE FROM audit_pending WHERE id = ANY($1)";
pub const AUDIT_INSERT: &str =
    "INSERT INTO audit_entries (seq, at, prev, hash, body) VALUES ($1, $2, $3, $4, $5)";
/// Advances the head from `$3` entries; no row changed means the head moved meanwhile.
pub const AUDIT_ADVANCE: &str =
    "UPDATE audit_chain SET size = $1, head = $2 WHERE id = 1 AND size = $3";
pub const AUDIT_ENTRIES: &str = "SELECT seq, at, prev, hash, body FROM audit_entries \
     WHERE seq >= $1 ORDER BY seq LIMIT $2";
pub const AUDIT_LEAVES: &str = "SELECT hash FROM audit_entries WHERE seq < $1 ORDER BY seq";
pub const AUDIT_INSERT_HEAD: &str = "INSERT INTO audit_heads (size, root, at, signature) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING";
pub const AUDIT_HEADS: &str = "SELECT size, root, at, signature FROM audit_heads \
     WHERE size >= $1 ORDER BY size LIMIT $2";
pub const AUDIT_LATEST_HEAD: &str =
    "SELECT size, root, at, signature FROM audit_heads ORDER BY size DESC LIMIT 1";

/// `INSERT` of `rows` rows in one statement (`$1..$9` for the first row, `$10..$18` for the
/// second, ...): a group commit hands its inserts to SQLite at once, not one per row. Each row
/// gets exactly `INSERT`'s conflict rule.
pub fn insert_rows(rows: usize) -> String {
    values_rows(INSERT, 9, rows)
}

/// `AUDIT_INSERT` of `rows` entries in one statement (`$1..$5` per entry, as [`insert_rows`]).
pub fn audit_insert_rows(rows: usize) -> String {
    values_rows(AUDIT_INSERT, 5, rows)
}

/// `statement` (one `VALUES (...)` tuple of `$1..$params`) with `rows` tuples, each
/// numbered from `$1 + params * row`.
fn values_rows(statement: &str, params: usize, rows: usize) -> String {
    let (head, rest) = statement.split_once(" VALUES (").unwrap_or((statement, ""));
    let (tuple, tail) = rest.split_once(')').unwrap_or((rest, ""));
    let mut sql = String::with_capacity(statement.len() + rows * (tuple.len() + 16));
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        push_renumbered(&mut sql, tuple, params * row);
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// Appends `tuple` with every placeholder `$n` written `$(n + offset)`.
fn push_renumbered(sql: &mut String, tuple: &str, offset: usize) {
    let mut rest = tuple;
    while let Some(at) = rest.find('$') {
        sql.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        match rest[..digits].parse::<usize>() {
            Ok(n) => sql.push_str(&(n + offset).to_string()),
            Err(_) => sql.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    sql.push_str(rest);
}

#[derive(sqlx::FromRow)]
pub struct AuditEntryRecord {
    pub seq: i64,
    pub at: i64,
    pub prev: Vec<u8>,
    pub hash: Vec<u8>,
    pub body: String,
}

impl From<AuditEntryRecord> for crate::StoredAuditEntry {
    fn from(r: AuditEntryRecord) -> Self {
        // Bytes of the wrong length are kept visible as such (zero-padded) for the verifier.
        Self {
            entry: sms_core::audit::AuditEntry {
                index: r.seq.max(0) as u64,
                at: r.at.max(0) as u64,
                prev: crate::fixed_hash(&r.prev),
                body: r.body,
            },
            hash: crate::fixed_hash(&r.hash),
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct AuditHeadRecord {
    pub size: i64,
    pub root: Vec<u8>,
    pub at: i64,
    pub signature: String,
}

impl From<AuditHeadRecord> for crate::StoredTreeHead {
    fn from(r: AuditHeadRecord) -> Self {
        Self {
            head: sms_core::audit::TreeHead {
                size: r.size.max(0) as u64,
                root: crate::fixed_hash(&r.root),
                at: r.at.max(0) as u64,
            },
            signature: r.signature,
        }
    }
}

/// The entry that follows a chain head of `size` entries ending in `head`.
pub fn next_audit_entry(
    size: i64,
    head: &[u8],
    at: u64,
    body: String,
) -> sms_core::audit::AuditEntry {
    sms_core::audit::AuditEntry {
        index: size.max(0) as u64,
        at,
        prev: crate::fixed_hash(head),
        body,
    }
}

/// The version a check-and-set write's `RETURNING version` gave, as the row-write result
/// (0: not written).
pub fn version_result(returned: Option<(i64,)>) -> u64 {
    returned.map_or(0, |(v,)| v.max(0) as u64)
}

/// A check-and-set row-write result as the version written (`None`: not written).
pub fn version_of(result: u64) -> Option<i64> {
    (result > 0).then_some(result as i64)
}

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
    pub seal_format: i64,
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
            seal_format: r.seal_format,
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
    pub created_at: i64,
    pub encryptions: i64,
    pub wrap_format: i64,
}

impl From<DataKeyRecord> for crate::WrappedDataKey {
    fn from(r: DataKeyRecord) -> Self {
        Self {
            id: r.id,
            wrapped: r.wrapped,
            nonce: r.nonce,
            master_fingerprint: r.master_fp,
            created_at: r.created_at,
            encryptions: r.encryptions,
            wrap_format: r.wrap_format,
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

/// Inserts the sealed rows `$rows` in a savepoint of `$conn` (either engine's connection),
/// all or none: an async block answering true when every row was inserted.
macro_rules! insert_all_rows {
    ($conn:expr, $rows:expr, $now:expr) => {
        async {
            let mut sp = sqlx::Connection::begin(&mut *$conn).await?;
            for row in $rows {
                let inserted = bind_row!(sqlx::query(sql::INSERT), row, $now)
                    .execute(&mut *sp)
                    .await?
                    .rows_affected();
                if inserted != 1 {
                    sp.rollback().await?;
                    return Ok::<bool, sqlx::Error>(false);
                }
            }
            sp.commit().await?;
            Ok(true)
        }
    };
}
pub(crate) use insert_all_rows;

/// Reads the rows of `$keys` from `$executor` (either engine's pool): an async block answering
/// them in the order of `$keys` (`None` where absent), one statement per [`KEYS_PER_READ`].
macro_rules! fetch_many_rows {
    ($executor:expr, $keys:expr) => {
        async {
            let keys: &[crate::RecordKey] = $keys;
            let mut found = Vec::with_capacity(keys.len());
            for (text, bound) in sql::get_many_statements(keys) {
                let mut query = sqlx::query_as::<_, sql::RowRecord>(text);
                for key in bound {
                    query = bind_key!(query, key);
                }
                found.extend(query.fetch_all($executor).await?);
            }
            Ok::<_, sqlx::Error>(sql::match_rows(keys, found))
        }
    };
}
pub(crate) use fetch_many_rows;

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

/// Binds a re-sealed row to `REWRAP_ROW` ($1..$8).
macro_rules! bind_rewrap {
    ($query:expr, $row:expr, $old_nonce:expr) => {
        $query
            .bind(&$row.key.namespace)
            .bind(&$row.key.owner)
            .bind(&$row.key.name)
            .bind($row.key_id)
            .bind(&$row.nonce)
            .bind(&$row.ciphertext)
            .bind($row.version)
            .bind($old_nonce)
    };
}
pub(crate) use bind_rewrap;

/// Binds a data key to `INSERT_DATA_KEY` ($1..$6).
macro_rules! bind_data_key {
    ($query:expr, $key:expr, $now:expr) => {
        $query
            .bind($key.id)
            .bind(&$key.wrapped)
            .bind(&$key.nonce)
            .bind(&$key.master_fingerprint)
            .bind($now)
            .bind($key.wrap_format)
    };
}
pub(crate) use bind_data_key;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_statements_are_the_single_row_ones_repeated() {
        assert_eq!(insert_rows(1), INSERT);
        assert_eq!(audit_insert_rows(1), AUDIT_INSERT);
        let two = audit_insert_rows(2);
        assert!(
            two.ends_with("VALUES ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10)"),
            "{two}"
        );
        let three = insert_rows(3);
        assert!(
            three.contains("($19, $20, $21, $22, $23, $24, $25, $26, $27, $27, 2) ON CONFLICT"),
            "{three}"
        );
        assert!(three.ends_with("records.version = excluded.version - 1"));
    }
}

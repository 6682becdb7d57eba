//! SQLite backend: WAL, `synchronous=FULL`, one writer task that commits queued writes in
//! groups (one fsync acknowledges many requests), and a pool of readers.
//!
//! Existence checks are answered from memory: the writer, the only writer of the file, keeps
//! the set of record keys (loaded page by page when it is idle, then updated after every
//! commit, before the writes are acknowledged). Until it is loaded, the database answers. The
//! database file therefore belongs to one server process (as the group commit already assumes).
//!
//! While open, the backend holds a shared lock on `<db>.lock`: [`restore`] takes it
//! exclusively, so a restore never replaces the file under a running server.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::key_index::{KeyIndex, index_key};
use crate::sql::{
    self, bind_data_key, bind_key, bind_rewrap, bind_row, fetch_many_rows, insert_all_rows,
};
use crate::{
    AuditNote, Backend, Insert, NonceUse, RecordKey, RecordMetadata, RowWrite, SealedRow,
    StoreError, StoredAuditEntry, StoredTreeHead, WrappedDataKey, unix_now,
};

/// Upper bound of writes committed by one transaction.
const MAX_GROUP: usize = 512;
/// Rows read per step while loading the key index: a step holds the writer (writes wait for
/// it), and each step is a round trip to sqlx's connection thread. 50,000 rows are ~60 ms of
/// that thread on a 2-core machine; 1,000,000 keys load in 20 steps instead of 200.
#[cfg(not(test))]
const INDEX_PAGE: i64 = 50_000;
#[cfg(test)]
const INDEX_PAGE: i64 = 5_000;

/// SQLite has RETURNING: the expired keys leave the index too.
const DELETE_EXPIRED_RETURNING: &str = "DELETE FROM records WHERE namespace = $1 AND expires_at IS NOT NULL AND expires_at < $2 RETURNING owner, name";
/// One page of keys as ONE row (its last rowid, a JSON array of [namespace, owner, name]):
/// sqlx hands every row from its SQLite thread to the runtime separately, which cost ~25 µs a
/// row on a loaded 2-core machine (20 s for 1,000,000 keys); one row per page does not.
const INDEX_PAGE_SQL: &str = "SELECT max(rid), json_group_array(json_array(ns, o, n)) FROM (SELECT rowid AS rid, namespace AS ns, owner AS o, name AS n FROM records WHERE rowid > $1 AND deleted_at IS NULL ORDER BY rowid LIMIT $2)";

enum Write {
    /// A row write, with the audit entry committed beside it when audited (the entry is
    /// chained in the same transaction: this process is the file's only writer).
    Row(RowWrite, Option<AuditNote>),
    Delete(RecordKey, Option<i64>),
    DeleteExpired(String, i64),
    InsertDataKey(WrappedDataKey),
    UseNonce(String, String, i64),
    DeleteExpiredNonces(i64),
    ReserveEncryptions(i64, u64),
    /// New wrappings, old and new master fingerprints: all or nothing (1 or 0).
    RewrapDataKeys(Vec<WrappedDataKey>, String, String),
    RetireDataKey(i64),
    RewrapRow(SealedRow, Vec<u8>),
    RewrapTombstones(i64, u32),
    /// Unix seconds and bodies of the next audit entries; answers the first index + 1.
    AppendAudit(u64, Vec<String>),
    InsertAuditHead(StoredTreeHead),
}

struct Job {
    write: Write,
    done: oneshot::Sender<Result<u64, StoreError>>,
}

pub struct SqliteBackend {
    readers: SqlitePool,
    writer: mpsc::Sender<Job>,
    index: Arc<KeyIndex>,
    path: String,
    file: std::path::PathBuf,
    /// Shared lock held while open (a restore needs it exclusively).
    _lock: std::fs::File,
}

/// The lock file beside a database file.
fn lock_path(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    std::path::PathBuf::from(name)
}

fn open_lock(db: &Path) -> Result<std::fs::File, StoreError> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(db))
        .map_err(|e| StoreError::Key(format!("cannot open {}: {e}", lock_path(db).display())))
}

fn options(path: &Path) -> Result<SqliteConnectOptions, StoreError> {
    Ok(
        SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL in WAL mode: a commit is on disk before it is acknowledged.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true),
    )
}

impl SqliteBackend {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let lock = open_lock(path)?;
        lock.try_lock_shared().map_err(|_| {
            StoreError::Busy(format!(
                "{} is being restored: start the server when the restore is done",
                path.display()
            ))
        })?;
        let mut writer = SqliteConnection::connect_with(&options(path)?).await?;
        sqlx::migrate!("migrations/sqlite").run(&mut writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options(path)?.read_only(true))
            .await?;
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        let index = Arc::new(KeyIndex::default());
        tokio::spawn(write_loop(writer, rx, index.clone()));
        Ok(Self {
            readers,
            writer: tx,
            index,
            path: path.display().to_string(),
            file: path.to_path_buf(),
            _lock: lock,
        })
    }

    async fn submit(&self, write: Write) -> Result<u64, StoreError> {
        let (done, wait) = oneshot::channel();
        self.writer
            .send(Job { write, done })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        wait.await.map_err(|_| StoreError::WriterGone)?
    }
}

async fn write_loop(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>, index: Arc<KeyIndex>) {
    let mut batch = Vec::with_capacity(MAX_GROUP);
    // Rowid after which the index still has to be read; None once loaded (or given up).
    let mut cursor = Some(0i64);
    let loading = std::time::Instant::now();
    metrics::gauge!("sms_store_key_index_loaded").set(0.0);
    loop {
        if let Some(after) = cursor
            && rx.is_empty()
        {
            cursor = match load_index_page(&mut conn, &index, after).await {
                Ok(None) => {
                    let keys = index.len();
                    tracing::info!(
                        keys,
                        ms = loading.elapsed().as_millis() as u64,
                        "key index loaded: existence checks answered from memory"
                    );
                    metrics::gauge!("sms_store_key_index_keys").set(keys as f64);
                    metrics::gauge!("sms_store_key_index_loaded").set(1.0);
                    None
                }
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot load the key index; existence checks stay on the database");
                    None
                }
            };
            continue;
        }
        if rx.recv_many(&mut batch, MAX_GROUP).await == 0 {
            break;
        }
        match commit_group(&mut conn, &batch).await {
            Ok(Committed {
                results,
                changes,
                refused,
            }) => {
                index.apply(changes);
                let mut refused = refused.into_iter().peekable();
                for (i, (job, result)) in batch.drain(..).zip(results).enumerate() {
                    let answer = match refused.next_if(|(at, _)| *at == i) {
                        Some((_, error)) => Err(error),
                        None => Ok(result),
                    };
                    let _ = job.done.send(answer);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = batch.len(), "group commit failed");
                let reason = e.to_string();
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(StoreError::Key(format!(
                        "write not committed: {reason}"
                    ))));
                }
            }
        }
    }
}

/// Reads one page of keys into the index; the next cursor, or None when all are read.
async fn load_index_page(
    conn: &mut SqliteConnection,
    index: &KeyIndex,
    after: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let (last, keys): (Option<i64>, String) = sqlx::query_as(INDEX_PAGE_SQL)
        .bind(after)
        .bind(INDEX_PAGE)
        .fetch_one(&mut *conn)
        .await?;
    let keys: Vec<(String, String, String)> =
        serde_json::from_str(&keys).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    index.apply(
        keys.into_iter()
            .map(|(ns, owner, name)| (true, index_key(&ns, &owner, &name)))
            .collect(),
    );
    match last {
        Some(rowid) => Ok(Some(rowid)),
        None => {
            index.loaded.store(true, Ordering::Release);
            Ok(None)
        }
    }
}

/// What a committed group did.
struct Committed {
    /// The result of each write.
    results: Vec<u64>,
    /// The key-index changes.
    changes: Vec<(bool, String)>,
    /// Writes undone alone (their savepoint rolled back), by position, with the error.
    refused: Vec<(usize, StoreError)>,
}

/// Appends one audit entry inside the group's transaction: head, entry, head advanced.
async fn append_audit(
    conn: &mut SqliteConnection,
    at: u64,
    body: &str,
) -> Result<u64, sqlx::Error> {
    let (size, head): (i64, Vec<u8>) = sqlx::query_as(sql::AUDIT_CHAIN)
        .fetch_one(&mut *conn)
        .await?;
    let entry = sql::next_audit_entry(size, &head, at, body.to_owned());
    let hash = entry.hash();
    sqlx::query(sql::AUDIT_INSERT)
        .bind(size)
        .bind(at as i64)
        .bind(entry.prev.as_slice())
        .bind(hash.as_slice())
        .bind(body)
        .execute(&mut *conn)
        .await?;
    let advanced = sqlx::query(sql::AUDIT_ADVANCE)
        .bind(size + 1)
        .bind(hash.as_slice())
        .bind(size)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if advanced != 1 {
        return Err(sqlx::Error::Protocol(
            "the audit chain head moved during an append".into(),
        ));
    }
    Ok(size.max(0) as u64)
}

/// One row write inside the group's transaction: its result, and its key-index change.
async fn apply_row(
    conn: &mut SqliteConnection,
    write: &RowWrite,
    now: i64,
    changes: &mut Vec<(bool, String)>,
) -> Result<u64, sqlx::Error> {
    let key_of = |k: &RecordKey| index_key(&k.namespace, &k.owner, &k.name);
    Ok(match write {
        RowWrite::Insert(row) => {
            let n = bind_row!(sqlx::query(sql::INSERT), row, now)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if n == 1 {
                changes.push((true, key_of(&row.key)));
            }
            n
        }
        RowWrite::InsertAll(rows) => {
            if !insert_all_rows!(conn, rows, now).await? {
                return Ok(0);
            }
            changes.extend(rows.iter().map(|row| (true, key_of(&row.key))));
            1
        }
        RowWrite::Replace(row, expected) => bind_row!(sqlx::query(sql::REPLACE), row, now)
            .bind(*expected)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
        RowWrite::PutCreate(row) => {
            let v = sql::version_result(
                bind_row!(sqlx::query_as(sql::PUT_CREATE), row, now)
                    .fetch_optional(&mut *conn)
                    .await?,
            );
            if v > 0 {
                changes.push((true, key_of(&row.key)));
            }
            v
        }
        RowWrite::PutUpdate(row, expected) => sql::version_result(
            bind_row!(sqlx::query_as(sql::PUT_UPDATE), row, now)
                .bind(*expected)
                .fetch_optional(&mut *conn)
                .await?,
        ),
        RowWrite::Tombstone(key, expected) => {
            let v = sql::version_result(
                bind_key!(sqlx::query_as(sql::TOMBSTONE), key)
                    .bind(Vec::<u8>::new())
                    .bind(now)
                    .bind(expected.unwrap_or(-1))
                    .fetch_optional(&mut *conn)
                    .await?,
            );
            if v > 0 {
                changes.push((false, key_of(key)));
            }
            v
        }
    })
}

/// Rows per multi-row statement: powers of two up to this, so a handful of statement texts
/// stay in sqlx's statement cache (64 rows are 576 parameters, under any SQLite limit).
const ROWS_PER_STATEMENT: usize = 64;

/// The longest run of row inserts (audited or not, one row or all of a set) at the start of
/// `jobs`.
fn insert_run(jobs: &[Job]) -> &[Job] {
    let len = jobs
        .iter()
        .take_while(|job| inserted_rows(job).is_some())
        .count();
    &jobs[..len]
}

/// The rows a job inserts and its audit note, if it is an insert.
fn inserted_rows(job: &Job) -> Option<(&[SealedRow], Option<&AuditNote>)> {
    match &job.write {
        Write::Row(RowWrite::Insert(row), note) => Some((std::slice::from_ref(row), note.as_ref())),
        Write::Row(RowWrite::InsertAll(rows), note) => Some((rows.as_slice(), note.as_ref())),
        _ => None,
    }
}

/// The row count of each multi-row statement that covers `rows` rows.
fn statement_sizes(mut rows: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let size = match rows {
            0 => return None,
            n if n >= ROWS_PER_STATEMENT => ROWS_PER_STATEMENT,
            n => 1 << n.ilog2(),
        };
        rows -= size;
        Some(size)
    })
}

/// The multi-row statement texts, by power of two (1, 2, 4, ... `ROWS_PER_STATEMENT`).
fn cached_statement(
    cache: &'static std::sync::OnceLock<Vec<String>>,
    build: fn(usize) -> String,
    rows: usize,
) -> &'static str {
    let texts = cache.get_or_init(|| {
        (0..=ROWS_PER_STATEMENT.ilog2())
            .map(|p| build(1 << p))
            .collect()
    });
    texts.get(rows.ilog2() as usize).map_or("", String::as_str)
}

/// A run of inserts as a few multi-row statements (each statement is one hand-off to sqlx's
/// SQLite thread, which costs more than the row), when every one of them inserts: the
/// key-index changes. `None` when some row is not inserted (it exists) or a statement fails:
/// nothing of the run is left, and the caller writes it one by one, which answers each write
/// as it always did (and undoes a refused audit entry with its write alone).
async fn insert_at_once(
    conn: &mut SqliteConnection,
    run: &[Job],
    now: i64,
) -> Result<Option<Vec<(bool, String)>>, sqlx::Error> {
    let mut sp = conn.begin().await?;
    let written = write_run(&mut sp, run, now).await;
    if matches!(written, Ok(true)) {
        sp.commit().await?;
        let rows = run
            .iter()
            .filter_map(inserted_rows)
            .flat_map(|(rows, _)| rows);
        return Ok(Some(
            rows.map(|row| {
                (
                    true,
                    index_key(&row.key.namespace, &row.key.owner, &row.key.name),
                )
            })
            .collect(),
        ));
    }
    sp.rollback().await?;
    Ok(None)
}

/// Writes a run of inserts and the audit entries of the audited ones, chained in the run's
/// order; false if some row was not inserted (the caller rolls back).
async fn write_run(
    conn: &mut SqliteConnection,
    run: &[Job],
    now: i64,
) -> Result<bool, sqlx::Error> {
    static INSERTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    static ENTRIES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let mut rows = Vec::with_capacity(run.len());
    let mut notes = Vec::new();
    for (inserted, note) in run.iter().filter_map(inserted_rows) {
        rows.extend(inserted);
        notes.extend(note);
    }
    let mut rest = rows.as_slice();
    for size in statement_sizes(rows.len()) {
        let (chunk, next) = rest.split_at(size);
        rest = next;
        let mut query = sqlx::query(cached_statement(&INSERTS, sql::insert_rows, size));
        for row in chunk {
            query = bind_row!(query, row, now);
        }
        if query.execute(&mut *conn).await?.rows_affected() != size as u64 {
            return Ok(false);
        }
    }
    if notes.is_empty() {
        return Ok(true);
    }
    // The chain head once; the entries follow it in order; the head advanced once.
    let (size, head): (i64, Vec<u8>) = sqlx::query_as(sql::AUDIT_CHAIN)
        .fetch_one(&mut *conn)
        .await?;
    let mut prev = head;
    let mut entries = Vec::with_capacity(notes.len());
    for (i, note) in notes.iter().enumerate() {
        let seq = size + i as i64;
        let entry = sql::next_audit_entry(seq, &prev, note.at, note.body.clone());
        let hash = entry.hash();
        entries.push((seq, note.at as i64, entry.prev, hash, note.body.as_str()));
        prev = hash.to_vec();
    }
    let mut rest = entries.as_slice();
    for chunk_size in statement_sizes(entries.len()) {
        let (chunk, next) = rest.split_at(chunk_size);
        rest = next;
        let mut query = sqlx::query(cached_statement(
            &ENTRIES,
            sql::audit_insert_rows,
            chunk_size,
        ));
        for (seq, at, prev, hash, body) in chunk {
            query = query
                .bind(*seq)
                .bind(*at)
                .bind(prev.as_slice())
                .bind(hash.as_slice())
                .bind(*body);
        }
        query.execute(&mut *conn).await?;
    }
    let advanced = sqlx::query(sql::AUDIT_ADVANCE)
        .bind(size + entries.len() as i64)
        .bind(prev.as_slice())
        .bind(size)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(advanced == 1)
}

/// Commits a group; the result of each write, and the key-index changes it made.
async fn commit_group(
    conn: &mut SqliteConnection,
    batch: &[Job],
) -> Result<Committed, sqlx::Error> {
    let now = unix_now();
    let mut tx = conn.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    let mut changes = Vec::new();
    let mut refused = Vec::new();
    // Inserts up to this position go one by one (their run was tried at once and declined).
    let mut one_by_one_until = 0;
    let mut at = 0;
    while let Some(job) = batch.get(at) {
        if at >= one_by_one_until {
            let run = insert_run(&batch[at..]);
            let rows: usize = run
                .iter()
                .filter_map(inserted_rows)
                .map(|(rows, _)| rows.len())
                .sum();
            if rows > 1 {
                match insert_at_once(&mut tx, run, now).await? {
                    Some(mut done) => {
                        results.extend(std::iter::repeat_n(1, run.len()));
                        changes.append(&mut done);
                        at += run.len();
                        continue;
                    }
                    None => one_by_one_until = at + run.len(),
                }
            }
        }
        let affected = match &job.write {
            Write::Row(write, None) => apply_row(&mut tx, write, now, &mut changes).await?,
            Write::Row(write, Some(note)) => {
                // A savepoint: the row and its entry commit together, or this write is undone
                // alone (the group goes on).
                let mut sp = tx.begin().await?;
                let mut row_changes = Vec::new();
                // A failing row write fails the group, as any write does.
                let written = apply_row(&mut sp, write, now, &mut row_changes).await?;
                let done = if written > 0 {
                    append_audit(&mut sp, note.at, &note.body)
                        .await
                        .map(|_| written)
                } else {
                    Ok(0)
                };
                match done {
                    Ok(written) => {
                        sp.commit().await?;
                        changes.append(&mut row_changes);
                        written
                    }
                    Err(e) => {
                        sp.rollback().await?;
                        refused.push((results.len(), StoreError::AuditRefused(e.to_string())));
                        0
                    }
                }
            }
            Write::Delete(key, version) => {
                let n = match version {
                    None => {
                        bind_key!(sqlx::query(sql::DELETE), key)
                            .execute(&mut *tx)
                            .await?
                    }
                    Some(v) => {
                        bind_key!(sqlx::query(sql::DELETE_VERSION), key)
                            .bind(*v)
                            .execute(&mut *tx)
                            .await?
                    }
                }
                .rows_affected();
                if n > 0 {
                    changes.push((false, index_key(&key.namespace, &key.owner, &key.name)));
                }
                n
            }
            Write::DeleteExpired(ns, before) => {
                let gone: Vec<(String, String)> = sqlx::query_as(DELETE_EXPIRED_RETURNING)
                    .bind(ns)
                    .bind(*before)
                    .fetch_all(&mut *tx)
                    .await?;
                changes.extend(
                    gone.iter()
                        .map(|(owner, name)| (false, index_key(ns, owner, name))),
                );
                gone.len() as u64
            }
            Write::UseNonce(owner, nonce, expires_at) => sqlx::query(sql::USE_NONCE)
                .bind(owner)
                .bind(nonce)
                .bind(*expires_at)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            Write::DeleteExpiredNonces(before) => sqlx::query(sql::DELETE_EXPIRED_NONCES)
                .bind(*before)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            Write::InsertDataKey(k) => bind_data_key!(sqlx::query(sql::INSERT_DATA_KEY), k, now)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            Write::ReserveEncryptions(id, count) => sqlx::query(sql::RESERVE_ENCRYPTIONS)
                .bind(*id)
                .bind(*count as i64)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            Write::RewrapDataKeys(keys, old_fp, new_fp) => {
                // A savepoint: a failed check undoes this write only, not the group.
                let mut sp = tx.begin().await?;
                let mut all = true;
                for k in keys {
                    all &= sqlx::query(sql::REWRAP_DATA_KEY)
                        .bind(k.id)
                        .bind(&k.wrapped)
                        .bind(&k.nonce)
                        .bind(&k.master_fingerprint)
                        .bind(old_fp)
                        .execute(&mut *sp)
                        .await?
                        .rows_affected()
                        == 1;
                }
                let (foreign,): (i64,) = sqlx::query_as(sql::FOREIGN_DATA_KEYS)
                    .bind(new_fp)
                    .fetch_one(&mut *sp)
                    .await?;
                if all && foreign == 0 {
                    sp.commit().await?;
                    1
                } else {
                    sp.rollback().await?;
                    0
                }
            }
            Write::RetireDataKey(id) => sqlx::query(sql::RETIRE_DATA_KEY)
                .bind(*id)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            Write::RewrapRow(row, old_nonce) => {
                bind_rewrap!(sqlx::query(sql::REWRAP_ROW), row, old_nonce)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }
            Write::RewrapTombstones(current, limit) => sqlx::query(sql::REWRAP_TOMBSTONES)
                .bind(*current)
                .bind(i64::from(*limit))
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            Write::AppendAudit(at, bodies) => {
                // A savepoint: an append the database refuses fails alone, not the group.
                let mut sp = tx.begin().await?;
                let mut appended: Result<Option<u64>, sqlx::Error> = Ok(None);
                for body in bodies {
                    match append_audit(&mut sp, *at, body).await {
                        Ok(index) => appended = appended.map(|first| first.or(Some(index))),
                        Err(e) => {
                            appended = Err(e);
                            break;
                        }
                    }
                }
                match appended {
                    Ok(first) => {
                        sp.commit().await?;
                        first.map_or(0, |f| f + 1)
                    }
                    Err(e) => {
                        sp.rollback().await?;
                        refused.push((results.len(), StoreError::AuditRefused(e.to_string())));
                        0
                    }
                }
            }
            Write::InsertAuditHead(head) => sqlx::query(sql::AUDIT_INSERT_HEAD)
                .bind(head.head.size as i64)
                .bind(head.head.root.as_slice())
                .bind(head.head.at as i64)
                .bind(&head.signature)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
        };
        results.push(affected);
        at += 1;
    }
    tx.commit().await?;
    Ok(Committed {
        results,
        changes,
        refused,
    })
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn insert(&self, row: SealedRow) -> Result<Insert, StoreError> {
        Ok(sql::insert_outcome(
            self.submit(Write::Row(RowWrite::Insert(row), None)).await?,
        ))
    }

    async fn replace(&self, row: SealedRow, expected_version: i64) -> Result<bool, StoreError> {
        Ok(self
            .submit(Write::Row(RowWrite::Replace(row, expected_version), None))
            .await?
            == 1)
    }

    async fn insert_all(&self, rows: Vec<SealedRow>) -> Result<bool, StoreError> {
        Ok(self
            .submit(Write::Row(RowWrite::InsertAll(rows), None))
            .await?
            == 1)
    }

    async fn get_many(&self, keys: &[RecordKey]) -> Result<Vec<Option<SealedRow>>, StoreError> {
        Ok(fetch_many_rows!(&self.readers, keys).await?)
    }

    async fn get(&self, key: &RecordKey) -> Result<Option<SealedRow>, StoreError> {
        let row: Option<sql::RowRecord> = bind_key!(sqlx::query_as(sql::GET), key)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(Into::into))
    }

    async fn exists(&self, key: &RecordKey) -> Result<bool, StoreError> {
        if let Some(known) = self.index.contains(key) {
            return Ok(known);
        }
        let row: Option<(i64,)> = bind_key!(sqlx::query_as(sql::EXISTS), key)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.is_some())
    }

    async fn delete(
        &self,
        key: &RecordKey,
        expected_version: Option<i64>,
    ) -> Result<bool, StoreError> {
        Ok(self
            .submit(Write::Delete(key.clone(), expected_version))
            .await?
            > 0)
    }

    async fn put_create(&self, row: SealedRow) -> Result<Option<i64>, StoreError> {
        Ok(sql::version_of(
            self.submit(Write::Row(RowWrite::PutCreate(row), None))
                .await?,
        ))
    }

    async fn put_update(
        &self,
        row: SealedRow,
        expected_version: i64,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sql::version_of(
            self.submit(Write::Row(RowWrite::PutUpdate(row, expected_version), None))
                .await?,
        ))
    }

    async fn tombstone(
        &self,
        key: &RecordKey,
        expected_version: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sql::version_of(
            self.submit(Write::Row(
                RowWrite::Tombstone(key.clone(), expected_version),
                None,
            ))
            .await?,
        ))
    }

    async fn metadata(&self, key: &RecordKey) -> Result<Option<RecordMetadata>, StoreError> {
        let r: Option<sql::MetadataRecord> = bind_key!(sqlx::query_as(sql::METADATA), key)
            .fetch_optional(&self.readers)
            .await?;
        Ok(r.map(Into::into))
    }

    async fn list(&self, namespace: &str, owner: &str) -> Result<Vec<RecordMetadata>, StoreError> {
        let rows: Vec<sql::MetadataRecord> = sqlx::query_as(sql::LIST)
            .bind(namespace)
            .bind(owner)
            .fetch_all(&self.readers)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn use_nonce(
        &self,
        owner: &str,
        nonce: &str,
        expires_at: i64,
    ) -> Result<NonceUse, StoreError> {
        let affected = self
            .submit(Write::UseNonce(
                owner.to_owned(),
                nonce.to_owned(),
                expires_at,
            ))
            .await?;
        Ok(sql::nonce_use(affected))
    }

    async fn delete_expired_nonces(&self, now: i64) -> Result<u64, StoreError> {
        self.submit(Write::DeleteExpiredNonces(now)).await
    }

    async fn delete_expired(&self, namespace: &str, now: i64) -> Result<u64, StoreError> {
        self.submit(Write::DeleteExpired(namespace.to_owned(), now))
            .await
    }

    async fn count_by_namespace(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::COUNT).fetch_all(&self.readers).await?;
        Ok(rows
            .into_iter()
            .map(|(ns, n)| (ns, n.max(0) as u64))
            .collect())
    }

    async fn data_keys(&self) -> Result<Vec<WrappedDataKey>, StoreError> {
        let rows: Vec<sql::DataKeyRecord> = sqlx::query_as(sql::DATA_KEYS)
            .fetch_all(&self.readers)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn insert_data_key(&self, key: WrappedDataKey) -> Result<Insert, StoreError> {
        Ok(sql::insert_outcome(
            self.submit(Write::InsertDataKey(key)).await?,
        ))
    }

    async fn reserve_encryptions(&self, key_id: i64, count: u64) -> Result<(), StoreError> {
        self.submit(Write::ReserveEncryptions(key_id, count))
            .await?;
        Ok(())
    }

    async fn rewrap_data_keys(
        &self,
        keys: Vec<WrappedDataKey>,
        old_fp: &str,
        new_fp: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .submit(Write::RewrapDataKeys(keys, old_fp.into(), new_fp.into()))
            .await?
            == 1)
    }

    async fn retire_data_key(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self.submit(Write::RetireDataKey(id)).await? == 1)
    }

    async fn rows_per_key(&self) -> Result<Vec<(i64, u64)>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(sql::ROWS_PER_KEY)
            .fetch_all(&self.readers)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(k, n)| (k, n.max(0) as u64))
            .collect())
    }

    async fn pending_rewrap(&self, current: i64) -> Result<u64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(sql::PENDING_REWRAP)
            .bind(current)
            .fetch_one(&self.readers)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn rewrap_candidates(
        &self,
        current: i64,
        after: &RecordKey,
        limit: u32,
    ) -> Result<Vec<SealedRow>, StoreError> {
        let rows: Vec<sql::RowRecord> = sqlx::query_as(sql::REWRAP_CANDIDATES)
            .bind(current)
            .bind(&after.namespace)
            .bind(&after.owner)
            .bind(&after.name)
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn rewrap_row(&self, row: SealedRow, old_nonce: &[u8]) -> Result<bool, StoreError> {
        Ok(self
            .submit(Write::RewrapRow(row, old_nonce.to_vec()))
            .await?
            == 1)
    }

    async fn rewrap_tombstones(&self, current: i64, limit: u32) -> Result<u64, StoreError> {
        self.submit(Write::RewrapTombstones(current, limit)).await
    }

    async fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        if dest.exists() {
            return Err(StoreError::Key(format!(
                "backup destination {} exists",
                dest.display()
            )));
        }
        // Its own connection: VACUUM INTO reads one snapshot (every commit acknowledged
        // before it started) while the writer goes on.
        let mut conn = SqliteConnection::connect_with(&options(&self.file)?).await?;
        sqlx::query("VACUUM INTO $1")
            .bind(dest.display().to_string())
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path)
    }

    async fn write_audited(&self, write: RowWrite, note: AuditNote) -> Result<u64, StoreError> {
        self.submit(Write::Row(write, Some(note))).await
    }

    async fn append_audit(&self, at: u64, bodies: Vec<String>) -> Result<u64, StoreError> {
        let result = self.submit(Write::AppendAudit(at, bodies)).await?;
        result
            .checked_sub(1)
            .ok_or_else(|| StoreError::Key("audit log append refused".into()))
    }

    async fn audit_entries(
        &self,
        from: u64,
        limit: u32,
    ) -> Result<Vec<StoredAuditEntry>, StoreError> {
        let rows: Vec<sql::AuditEntryRecord> = sqlx::query_as(sql::AUDIT_ENTRIES)
            .bind(i64::try_from(from).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn audit_leaves(&self, size: u64) -> Result<Vec<sms_core::audit::Hash>, StoreError> {
        let rows: Vec<(Vec<u8>,)> = sqlx::query_as(sql::AUDIT_LEAVES)
            .bind(i64::try_from(size).unwrap_or(i64::MAX))
            .fetch_all(&self.readers)
            .await?;
        Ok(rows.iter().map(|(h,)| crate::fixed_hash(h)).collect())
    }

    async fn audit_size(&self) -> Result<u64, StoreError> {
        let (size, _): (i64, Vec<u8>) = sqlx::query_as(sql::AUDIT_CHAIN)
            .fetch_one(&self.readers)
            .await?;
        Ok(size.max(0) as u64)
    }

    async fn insert_audit_head(&self, head: StoredTreeHead) -> Result<Insert, StoreError> {
        Ok(sql::insert_outcome(
            self.submit(Write::InsertAuditHead(head)).await?,
        ))
    }

    async fn audit_heads(
        &self,
        from_size: u64,
        limit: u32,
    ) -> Result<Vec<StoredTreeHead>, StoreError> {
        let rows: Vec<sql::AuditHeadRecord> = sqlx::query_as(sql::AUDIT_HEADS)
            .bind(i64::try_from(from_size).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn latest_audit_head(&self) -> Result<Option<StoredTreeHead>, StoreError> {
        let row: Option<sql::AuditHeadRecord> = sqlx::query_as(sql::AUDIT_LATEST_HEAD)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(Into::into))
    }
}

/// What [`restore`] put in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    pub database: std::path::PathBuf,
    /// Rows whose value was opened with the master key (every live row).
    pub rows: u64,
    pub data_keys: usize,
}

/// Restores a backup made by [`Backend::backup_to`] as `data_dir/sms.db`: refused while a
/// server uses the data directory (its lock) or when a database is already there. The copy
/// is migrated, its data keys unwrapped with `master` and every live row opened before it is
/// moved into place, so a wrong master key or a damaged backup changes nothing.
pub async fn restore(
    backup: &Path,
    data_dir: &Path,
    master: crate::MasterKey,
) -> Result<Restored, StoreError> {
    let target = data_dir.join("sms.db");
    let lock = open_lock(&target)?;
    lock.try_lock().map_err(|_| {
        StoreError::Busy(format!(
            "a running server uses {}: stop it before restoring",
            target.display()
        ))
    })?;
    if target.exists() {
        return Err(StoreError::Busy(format!(
            "{} exists: restore into a fresh data directory, or move the database away first",
            target.display()
        )));
    }
    let unreadable = |e: std::io::Error| {
        StoreError::Key(format!("cannot read backup {}: {e}", backup.display()))
    };
    let mut header = [0u8; 16];
    std::io::Read::read_exact(
        &mut std::fs::File::open(backup).map_err(unreadable)?,
        &mut header,
    )
    .map_err(unreadable)?;
    if &header != b"SQLite format 3\0" {
        return Err(StoreError::Key(format!(
            "{} is not an SMS backup (not a SQLite database)",
            backup.display()
        )));
    }
    let staging = data_dir.join("sms.db.restoring");
    for leftover in [&staging, &lock_path(&staging)] {
        let _ = std::fs::remove_file(leftover);
    }
    std::fs::copy(backup, &staging)
        .map_err(|e| StoreError::Key(format!("cannot write {}: {e}", staging.display())))?;
    let checked = match check_restored(&staging, master).await {
        // A clean, self-contained file (no WAL beside it) in place of the staging copy.
        Ok((backend, rows, data_keys)) => {
            backend.backup_to(&target).await.map(|()| (rows, data_keys))
        }
        Err(e) => Err(e),
    };
    for leftover in [
        "sms.db.restoring",
        "sms.db.restoring-wal",
        "sms.db.restoring-shm",
        "sms.db.restoring.lock",
    ] {
        let _ = std::fs::remove_file(data_dir.join(leftover));
    }
    let (rows, data_keys) = checked?;
    drop(lock);
    Ok(Restored {
        database: target,
        rows,
        data_keys,
    })
}

/// Opens the staged copy as a server would and reads every live row; (rows, data keys).
async fn check_restored(
    staging: &Path,
    master: crate::MasterKey,
) -> Result<(Arc<SqliteBackend>, u64, usize), StoreError> {
    let backend = Arc::new(SqliteBackend::open(staging).await?);
    let store = crate::Store::open(backend.clone(), master).await?;
    let keys = backend.data_keys().await?.len();
    let mut rows = 0u64;
    let mut after = RecordKey::new("", "", "");
    loop {
        let page = backend.rewrap_candidates(i64::MIN, &after, 500).await?;
        for row in &page {
            store.get(&row.key).await?;
            rows += 1;
        }
        match page.last() {
            Some(last) if page.len() == 500 => after = last.key.clone(),
            _ => break,
        }
    }
    Ok((backend, rows, keys))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(owner: &str, name: &str, expires_at: Option<i64>) -> SealedRow {
        SealedRow {
            key: RecordKey::new("ns", owner, name),
            key_id: 1,
            nonce: vec![0; 12],
            ciphertext: vec![1; 32],
            version: 1,
            expires_at,
            seal_format: 2,
        }
    }

    async fn wait_loaded(b: &SqliteBackend) {
        for _ in 0..1000 {
            if b.index.loaded.load(Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the key index never loaded");
    }

    async fn data_key(b: &SqliteBackend) {
        let key = WrappedDataKey {
            id: 1,
            wrapped: vec![0; 48],
            nonce: vec![0; 12],
            master_fingerprint: "f".into(),
            created_at: 0,
            encryptions: 0,
            wrap_format: 2,
        };
        b.insert_data_key(key).await.unwrap();
    }

    /// The per-namespace count of live rows (the `sms_secrets_stored` gauge) reads the partial
    /// index of live rows, never the table: at 1,000,000 rows a table scan ran for seconds
    /// beside the requests (BENCHMARKS.md, "Scale").
    #[tokio::test]
    async fn live_counts_read_the_live_index_not_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let b = SqliteBackend::open(&dir.path().join("sms.db"))
            .await
            .unwrap();
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            sql::COUNT
        )))
        .fetch_all(&b.readers)
        .await
        .unwrap();
        let steps: Vec<&str> = plan.iter().map(|(_, _, _, step)| step.as_str()).collect();
        assert_eq!(
            steps,
            ["SCAN records USING COVERING INDEX records_live"],
            "{steps:?}"
        );
    }

    /// Every lookup by key is a search of the primary key on all three columns, never a
    /// secondary index with the rest filtered (PostgreSQL's planner did that on a table not
    /// analysed yet: `postgres_key_lookups_do_not_scan_a_namespace`). Checked on a store with
    /// rows of two owners and no statistics.
    #[tokio::test]
    async fn key_lookups_search_the_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let b = SqliteBackend::open(&dir.path().join("sms.db"))
            .await
            .unwrap();
        data_key(&b).await;
        for i in 0..300 {
            let owner = if i % 10 == 0 { "few" } else { "many" };
            b.insert(row(owner, &format!("name-{i}"), None))
                .await
                .unwrap();
        }
        // The indexes every insert writes: none that no query uses (`sqlite/0006`).
        let indexes: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records' ORDER BY name",
        )
        .fetch_all(&b.readers)
        .await
        .unwrap();
        let indexes: Vec<&str> = indexes.iter().map(|(n,)| n.as_str()).collect();
        assert_eq!(
            indexes,
            [
                "records_expiry",
                "records_key_id",
                "records_live",
                "sqlite_autoindex_records_1"
            ]
        );
        let get_many = sql::get_rows(4);
        for query in [sql::EXISTS, sql::GET, sql::METADATA, sql::LIST, &get_many] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {query}")))
                    .fetch_all(&b.readers)
                    .await
                    .unwrap();
            // A multi-key read's plan also names its compound parts: each part is a search.
            let compound = ["COMPOUND QUERY", "LEFT-MOST SUBQUERY", "UNION ALL"];
            let steps: Vec<&str> = plan
                .iter()
                .map(|(_, _, _, step)| step.as_str())
                .filter(|step| !compound.contains(step))
                .collect();
            let primary = |step: &&str| {
                step.starts_with("SEARCH records USING INDEX sqlite_autoindex_records_1 (namespace=? AND owner=?")
            };
            assert!(
                !steps.is_empty() && steps.iter().all(primary),
                "{query}: {steps:?}"
            );
        }
    }

    /// The in-memory answers agree with the database through inserts, deletes, expiry sweeps
    /// and a reopen with more rows than one index page.
    #[tokio::test]
    async fn key_index_follows_every_write_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sms.db");
        let b = SqliteBackend::open(&path).await.unwrap();
        data_key(&b).await;
        wait_loaded(&b).await;
        assert_eq!(
            b.insert(row("o", "a", None)).await.unwrap(),
            Insert::Inserted
        );
        assert!(b.exists(&RecordKey::new("ns", "o", "a")).await.unwrap());
        assert!(!b.exists(&RecordKey::new("ns", "o", "b")).await.unwrap());
        assert!(!b.exists(&RecordKey::new("other", "o", "a")).await.unwrap());
        assert_eq!(
            b.insert(row("o", "a", None)).await.unwrap(),
            Insert::AlreadyExists
        );
        assert!(
            b.delete(&RecordKey::new("ns", "o", "a"), Some(1))
                .await
                .unwrap()
        );
        assert!(!b.exists(&RecordKey::new("ns", "o", "a")).await.unwrap());
        b.insert(row("o", "old", Some(100))).await.unwrap();
        b.insert(row("o", "new", Some(300))).await.unwrap();
        assert_eq!(b.delete_expired("ns", 200).await.unwrap(), 1);
        assert!(!b.exists(&RecordKey::new("ns", "o", "old")).await.unwrap());
        assert!(b.exists(&RecordKey::new("ns", "o", "new")).await.unwrap());
        let n = 2 * INDEX_PAGE as usize + 7;
        let mut writes = tokio::task::JoinSet::new();
        let b = Arc::new(b);
        for i in 0..n {
            let b = b.clone();
            writes.spawn(async move { b.insert(row("p", &format!("k{i}"), None)).await });
        }
        while let Some(r) = writes.join_next().await {
            assert_eq!(r.unwrap().unwrap(), Insert::Inserted);
        }
        drop(b);

        let b = SqliteBackend::open(&path).await.unwrap();
        wait_loaded(&b).await;
        assert_eq!(b.index.len(), n + 1);
        for i in [0, n / 2, n - 1] {
            assert!(
                b.exists(&RecordKey::new("ns", "p", format!("k{i}")))
                    .await
                    .unwrap()
            );
        }
        assert!(b.exists(&RecordKey::new("ns", "o", "new")).await.unwrap());
        assert!(
            !b.exists(&RecordKey::new("ns", "p", format!("k{n}")))
                .await
                .unwrap()
        );
    }
}

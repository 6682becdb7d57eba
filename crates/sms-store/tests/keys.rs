//! Keys, rollback detection, rotation, master-key rotation, backup and restore, on both
//! backends (PostgreSQL from `SMS_TEST_POSTGRES_URL`, as in store.rs: never skipped).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sms_core::secret::SecretValue;
use sms_store::postgres::PostgresBackend;
use sms_store::sqlite::SqliteBackend;
use sms_store::{
    Backend, CheckAndSet, MasterKey, RecordKey, RotationPolicy, Store, StoreError,
    rotate_master_key,
};
use sqlx::Connection;

enum Raw {
    Sqlite(PathBuf),
    Postgres(String),
}

struct Db {
    raw: Raw,
    dir: tempfile::TempDir,
}

impl Db {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            raw: Raw::Sqlite(dir.path().join("sms.db")),
            dir,
        }
    }

    async fn postgres() -> Self {
        Self {
            raw: Raw::Postgres(postgres_url().await),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A new backend on this database (another replica, or a restart).
    async fn backend(&self) -> Arc<dyn Backend> {
        match &self.raw {
            Raw::Sqlite(path) => Arc::new(SqliteBackend::open(path).await.unwrap()),
            Raw::Postgres(url) => Arc::new(PostgresBackend::connect(url, 8).await.unwrap()),
        }
    }

    fn key_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn store(&self, master: &str, policy: RotationPolicy) -> Store {
        let (master, _) = MasterKey::load_or_create(&self.key_file(master)).unwrap();
        Store::open_with(self.backend().await, master, policy)
            .await
            .unwrap()
    }
}

/// Runs one statement with binds on the database behind the store, as an attacker with
/// write access to it would (sqlite3 / psql).
macro_rules! raw_sql {
    ($db:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        match &$db.raw {
            Raw::Sqlite(path) => {
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                sqlx::query($sql)$(.bind($bind))*.execute(&mut c).await.unwrap().rows_affected()
            }
            Raw::Postgres(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query($sql)$(.bind($bind))*.execute(&mut c).await.unwrap().rows_affected()
            }
        }
    };
}

pub async fn postgres_url() -> String {
    let admin = std::env::var("SMS_TEST_POSTGRES_URL").expect(
        "SMS_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh, which starts a throwaway PostgreSQL cluster",
    );
    let name = format!(
        "sms_keys_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_007
    );
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (base, query) = admin
        .split_once('?')
        .map(|(b, q)| (b, format!("?{q}")))
        .unwrap_or((&admin, String::new()));
    let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
    format!("{base}/{name}{query}")
}

fn key(name: &str) -> RecordKey {
    RecordKey::new("web2", "0x00000000000000000000000000000000000000aa", name)
}

fn quick_policy() -> RotationPolicy {
    RotationPolicy {
        block: 16,
        refresh: Duration::from_millis(100),
        ..RotationPolicy::default()
    }
}

/// An older copy of a row written back over a newer one (same version column) does not
/// open: a distinct `Integrity` error naming the row, never the old value.
async fn rolled_back_row_does_not_open(db: Db) {
    let store = db.store("m.key", RotationPolicy::default()).await;
    let k = key("rolled");
    store
        .put(&k, &SecretValue::from("old-value"), 0)
        .await
        .unwrap();
    let old = store.backend().get(&k).await.unwrap().unwrap();
    assert_eq!(
        store
            .put(&k, &SecretValue::from("new-value"), 1)
            .await
            .unwrap(),
        CheckAndSet::Written { version: 2 }
    );
    let n = raw_sql!(
        db,
        "UPDATE records SET key_id = $1, nonce = $2, ciphertext = $3 WHERE name = $4",
        old.key_id,
        old.nonce.clone(),
        old.ciphertext.clone(),
        "rolled",
    );
    assert_eq!(n, 1);
    let err = store.get(&k).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Integrity(ref id) if id == &k.to_string()),
        "{err}"
    );
    assert!(!err.to_string().contains("old-value"));
    // The same bytes at their own version open: the version column is what binds them.
    raw_sql!(
        db,
        "UPDATE records SET version = 1 WHERE name = $1",
        "rolled"
    );
    assert_eq!(
        store.get(&k).await.unwrap().unwrap().value,
        SecretValue::from("old-value"),
        "documented limit: a whole row rolled back, version included, is a replay"
    );
    // A versioned row marked legacy (to drop the version from its associated data) fails.
    raw_sql!(
        db,
        "UPDATE records SET seal_format = 1 WHERE name = $1",
        "rolled"
    );
    assert!(matches!(store.get(&k).await, Err(StoreError::Integrity(_))));
}

/// Every write path seals the version it writes: insert, revive after a tombstone (v1 and
/// v2), check-and-set, update, compare-and-set, take.
async fn every_write_seals_its_version(db: Db) {
    let store = db.store("m.key", RotationPolicy::default()).await;
    let k = key("paths");
    store
        .insert(&k, &SecretValue::from("a"), None)
        .await
        .unwrap();
    store.update(&k, &SecretValue::from("b")).await.unwrap();
    assert!(
        store
            .compare_and_set(&k, &SecretValue::from("c"), 2, None)
            .await
            .unwrap()
    );
    store.tombstone(&k, None).await.unwrap();
    assert_eq!(
        store
            .insert(&k, &SecretValue::from("d"), None)
            .await
            .unwrap(),
        sms_store::Insert::Inserted
    );
    let got = store.get(&k).await.unwrap().unwrap();
    assert_eq!((got.value, got.version), (SecretValue::from("d"), 5));
    store.tombstone(&k, Some(5)).await.unwrap();
    assert_eq!(
        store.put(&k, &SecretValue::from("e"), 0).await.unwrap(),
        CheckAndSet::Written { version: 7 }
    );
    assert_eq!(
        store.put(&k, &SecretValue::from("f"), 7).await.unwrap(),
        CheckAndSet::Written { version: 8 }
    );
    let got = store.get(&k).await.unwrap().unwrap();
    assert_eq!((got.value, got.version), (SecretValue::from("f"), 8));
    let t = RecordKey::new("nonce", "s", "n");
    store
        .insert(&t, &SecretValue::from("once"), Some(i64::MAX))
        .await
        .unwrap();
    assert_eq!(
        store.take(&t).await.unwrap().unwrap().value,
        SecretValue::from("once")
    );
}

/// Rows sealed before versions were bound (seal_format 1 under a legacy data key) still
/// open, and `rewrap` re-seals them with their version.
async fn legacy_rows_open_and_are_resealed(db: Db) {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let (master, _) = MasterKey::load_or_create(&db.key_file("m.key")).unwrap();
    let raw_master = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(
                std::fs::read_to_string(db.key_file("m.key"))
                    .unwrap()
                    .trim(),
            )
            .unwrap()
    };
    // What an SMS before migration 0003 wrote: key 1 wrapped with the v1 associated data,
    // a row sealed with the identity only.
    let backend = db.backend().await;
    let data_key = [7u8; 32];
    let wrapper = aes_gcm::Aes256Gcm::new_from_slice(&raw_master).unwrap();
    let wrapped = wrapper
        .encrypt(
            &[1u8; 12].into(),
            Payload {
                msg: &data_key,
                aad: b"sms/data-key/v1/1",
            },
        )
        .unwrap();
    backend
        .insert_data_key(sms_store::WrappedDataKey {
            id: 1,
            wrapped,
            nonce: vec![1; 12],
            master_fingerprint: master.fingerprint(),
            created_at: 0,
            encryptions: 0,
            wrap_format: 1,
        })
        .await
        .unwrap();
    let k = key("legacy");
    let sealed = aes_gcm::Aes256Gcm::new_from_slice(&data_key)
        .unwrap()
        .encrypt(
            &[2u8; 12].into(),
            Payload {
                msg: b"from-before",
                aad: &k.binding(),
            },
        )
        .unwrap();
    backend
        .insert(sms_store::SealedRow {
            key: k.clone(),
            key_id: 1,
            nonce: vec![2; 12],
            ciphertext: sealed,
            version: 1,
            expires_at: None,
            seal_format: 2,
        })
        .await
        .unwrap();
    raw_sql!(
        db,
        "UPDATE records SET seal_format = 1 WHERE name = $1",
        "legacy"
    );
    drop(backend);
    let store = Store::open(db.backend().await, master).await.unwrap();
    assert_eq!(
        store.get(&k).await.unwrap().unwrap().value,
        SecretValue::from("from-before")
    );
    assert_eq!(store.key_status().await.unwrap().pending_rewrap, 1);
    let new_key = store.rotate_data_key().await.unwrap();
    assert_eq!(new_key, 2);
    let batch = store.rewrap_batch(None, 100).await.unwrap();
    assert_eq!(batch.rewrapped, 1);
    let row = store.backend().get(&k).await.unwrap().unwrap();
    assert_eq!((row.key_id, row.seal_format), (2, 2));
    assert_eq!(
        store.get(&k).await.unwrap().unwrap().value,
        SecretValue::from("from-before")
    );
    assert_eq!(store.retire_unused_keys().await.unwrap(), vec![1]);
    // A legacy-format row under a key created since is refused.
    raw_sql!(
        db,
        "UPDATE records SET seal_format = 1 WHERE name = $1",
        "legacy"
    );
    assert!(matches!(store.get(&k).await, Err(StoreError::Integrity(_))));
}

/// Pushes and reads go on while a data key is rotated and every row re-wrapped; afterwards
/// every row is on the new key, every value exact, and the old key can be retired.
async fn rotation_under_load(db: Db) {
    let store = db.store("m.key", quick_policy()).await;
    for i in 0..300 {
        store
            .put(
                &key(&format!("pre{i}")),
                &SecretValue::from(format!("pre-{i}").as_str()),
                0,
            )
            .await
            .unwrap();
    }
    store.tombstone(&key("pre0"), None).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let (store, stop) = (store.clone(), stop.clone());
        writers.spawn(async move {
            let mut written = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let k = key(&format!("w{w}-{i}"));
                let v = format!("value-{w}-{i}");
                store
                    .put(&k, &SecretValue::from(v.as_str()), 0)
                    .await
                    .unwrap();
                // Reads (releases) of older rows continue too.
                let old = key(&format!("pre{}", 1 + i % 299));
                assert!(store.get(&old).await.unwrap().is_some());
                written.push((k, v));
                i += 1;
            }
            written
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let old_key = store.key_status().await.unwrap().current_key_id;
    let new_key = store.rotate_data_key().await.unwrap();
    assert!(new_key > old_key);
    let mut after: Option<RecordKey> = None;
    loop {
        let batch = store.rewrap_batch(after.as_ref(), 50).await.unwrap();
        assert!(batch.unreadable.is_empty());
        after = batch.next;
        if after.is_none() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut written = Vec::new();
    while let Some(w) = writers.join_next().await {
        written.extend(w.unwrap());
    }
    // Rows written meanwhile by a stale lease are picked up by a second pass.
    loop {
        let status = store.key_status().await.unwrap();
        if status.pending_rewrap == 0 {
            break;
        }
        let mut after: Option<RecordKey> = None;
        loop {
            let batch = store.rewrap_batch(after.as_ref(), 100).await.unwrap();
            after = batch.next;
            if after.is_none() {
                break;
            }
        }
    }
    let status = store.key_status().await.unwrap();
    for k in &status.keys {
        if k.id != new_key {
            assert_eq!(k.rows, 0, "{status:?}");
        }
    }
    assert!(!written.is_empty());
    for (k, v) in written {
        assert_eq!(
            store.get(&k).await.unwrap().unwrap().value,
            SecretValue::from(v.as_str())
        );
    }
    for i in 1..300 {
        assert_eq!(
            store
                .get(&key(&format!("pre{i}")))
                .await
                .unwrap()
                .unwrap()
                .value,
            SecretValue::from(format!("pre-{i}").as_str())
        );
    }
    assert!(store.retire_unused_keys().await.unwrap().contains(&old_key));
    let status = store.key_status().await.unwrap();
    assert_eq!(status.keys.len(), 1);
    assert_eq!(status.keys[0].id, new_key);
}

/// Encryption counts are reserved in the database, so two replicas add up; a key spent by
/// count is replaced automatically, and the other replica follows.
async fn counts_add_up_across_replicas_and_rotate_automatically(db: Db) {
    let policy = RotationPolicy {
        max_encryptions: 200,
        block: 16,
        refresh: Duration::from_millis(50),
        max_age: None,
    };
    let a = db.store("m.key", policy.clone()).await;
    let b = db.store("m.key", policy).await;
    for i in 0..300 {
        let store = if i % 2 == 0 { &a } else { &b };
        store
            .put(&key(&format!("r{i}")), &SecretValue::from("v"), 0)
            .await
            .unwrap();
    }
    let status = a.key_status().await.unwrap();
    let reserved: i64 = status.keys.iter().map(|k| k.encryptions).sum();
    assert!(reserved >= 300, "{status:?}");
    assert!(
        status.keys.len() >= 2,
        "a key was spent and replaced: {status:?}"
    );
    assert!(
        status.keys.iter().all(|k| k.encryptions <= 200 + 16),
        "{status:?}"
    );
    // Both replicas read everything, whichever key sealed it.
    for i in 0..300 {
        assert!(a.get(&key(&format!("r{i}"))).await.unwrap().is_some());
        assert!(b.get(&key(&format!("r{i}"))).await.unwrap().is_some());
    }
    // A rotation by one replica is followed by the other within its refresh interval.
    let rotated = a.rotate_data_key().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.put(&key("after"), &SecretValue::from("v"), 0)
        .await
        .unwrap();
    assert_eq!(
        b.backend()
            .get(&key("after"))
            .await
            .unwrap()
            .unwrap()
            .key_id,
        rotated
    );
}

/// Every data key re-wrapped under a new master key in one transaction: the old key file
/// deleted, a restart with the new one reads everything; the old one is refused.
async fn master_key_rotation(db: Db) {
    let store = db.store("old.key", RotationPolicy::default()).await;
    store.rotate_data_key().await.unwrap();
    for i in 0..20 {
        store
            .put(
                &key(&format!("m{i}")),
                &SecretValue::from(format!("v{i}").as_str()),
                0,
            )
            .await
            .unwrap();
    }
    drop(store);
    let old = MasterKey::load(&db.key_file("old.key")).unwrap();
    let (new, created) = MasterKey::load_or_create(&db.key_file("new.key")).unwrap();
    assert!(created);
    let backend = db.backend().await;
    let done = rotate_master_key(backend.as_ref(), &old, &new)
        .await
        .unwrap();
    assert_eq!(done.data_keys, 2);
    assert_eq!(
        rotate_master_key(backend.as_ref(), &old, &new)
            .await
            .unwrap()
            .data_keys,
        0,
        "running it again is a no-op"
    );
    drop(backend);
    std::fs::remove_file(db.key_file("old.key")).unwrap();
    let store = Store::open(
        db.backend().await,
        MasterKey::load(&db.key_file("new.key")).unwrap(),
    )
    .await
    .unwrap();
    for i in 0..20 {
        assert_eq!(
            store
                .get(&key(&format!("m{i}")))
                .await
                .unwrap()
                .unwrap()
                .value,
            SecretValue::from(format!("v{i}").as_str())
        );
    }
    let err = Store::open(db.backend().await, old)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot unwrap data key"), "{err}");
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Db::sqlite().await).await } )* }
        mod on_postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Db::postgres().await).await } )* }
    };
}

both_backends!(
    rolled_back_row_does_not_open,
    every_write_seals_its_version,
    legacy_rows_open_and_are_resealed,
    rotation_under_load,
    counts_add_up_across_replicas_and_rotate_automatically,
    master_key_rotation,
);

/// An online backup taken while pushes go on holds every value acknowledged before it
/// started; it restores into a fresh data dir with the master key, never into a used one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_while_pushing_restores_into_a_fresh_dir() {
    let db = Db::sqlite().await;
    let store = db.store("m.key", RotationPolicy::default()).await;
    for i in 0..100 {
        store
            .put(
                &key(&format!("b{i}")),
                &SecretValue::from(format!("v{i}").as_str()),
                0,
            )
            .await
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                store
                    .put(&key(&format!("during{i}")), &SecretValue::from("x"), 0)
                    .await
                    .unwrap();
                i += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let acked = 100;
    let backup = db.dir.path().join("backup.db");
    store.backup_to(&backup).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    pusher.await.unwrap();
    let bytes = std::fs::read(&backup).unwrap();
    let master_text = std::fs::read_to_string(db.key_file("m.key")).unwrap();
    assert!(
        !bytes
            .windows(master_text.trim().len())
            .any(|w| w == master_text.trim().as_bytes()),
        "a backup never holds the master key"
    );

    // Refused into the data dir a backend (server) has open.
    let Raw::Sqlite(live) = &db.raw else {
        unreachable!()
    };
    let err = sms_store::sqlite::restore(
        &backup,
        live.parent().unwrap(),
        MasterKey::load(&db.key_file("m.key")).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Busy(_)), "{err}");
    // Refused with another master key, leaving nothing behind.
    let fresh = tempfile::tempdir().unwrap();
    let err = sms_store::sqlite::restore(&backup, fresh.path(), MasterKey::generate())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot unwrap"), "{err}");
    assert!(!fresh.path().join("sms.db").exists());
    // Not a backup.
    std::fs::write(db.dir.path().join("junk"), b"not a database at all").unwrap();
    assert!(
        sms_store::sqlite::restore(
            &db.dir.path().join("junk"),
            fresh.path(),
            MasterKey::generate()
        )
        .await
        .is_err()
    );

    let restored = sms_store::sqlite::restore(
        &backup,
        fresh.path(),
        MasterKey::load(&db.key_file("m.key")).unwrap(),
    )
    .await
    .unwrap();
    assert!(restored.rows >= acked as u64);
    let store = Store::open(
        Arc::new(
            SqliteBackend::open(&fresh.path().join("sms.db"))
                .await
                .unwrap(),
        ),
        MasterKey::load(&db.key_file("m.key")).unwrap(),
    )
    .await
    .unwrap();
    for i in 0..acked {
        assert_eq!(
            store
                .get(&key(&format!("b{i}")))
                .await
                .unwrap()
                .unwrap()
                .value,
            SecretValue::from(format!("v{i}").as_str())
        );
    }
    // A second restore into the now-used dir is refused.
    drop(store);
    let err = sms_store::sqlite::restore(
        &backup,
        fresh.path(),
        MasterKey::load(&db.key_file("m.key")).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Busy(_)), "{err}");
}

#[tokio::test]
async fn postgres_backup_points_to_pg_dump() {
    let db = Db::postgres().await;
    let store = db.store("m.key", RotationPolicy::default()).await;
    let err = store.backup_to(&db.dir.path().join("b")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unsupported(ref m) if m.contains("pg_dump")));
}

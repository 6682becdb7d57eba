//! The same behaviour suite against both backends: SQLite (a temp file) and PostgreSQL
//! (a fresh database on the cluster named by `SMS_TEST_POSTGRES_URL`, which scripts/test.sh
//! provides; the PostgreSQL tests fail without it, they never skip).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sms_core::audit::{AuditEvent, TreeHead, merkle_root, verify_log};
use sms_core::secret::SecretValue;
use sms_store::postgres::PostgresBackend;
use sms_store::sqlite::SqliteBackend;
use sms_store::{
    Backend, CheckAndSet, Insert, MasterKey, NewRow, NonceUse, RecordKey, Store, StoreError,
    StoredTreeHead, Update,
};

struct Fixture {
    store: Store,
    _dir: tempfile::TempDir,
    db_file: Option<std::path::PathBuf>,
    pg_url: Option<String>,
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sms.db");
    let backend = Arc::new(SqliteBackend::open(&path).await.unwrap());
    let store = Store::open(backend, MasterKey::generate()).await.unwrap();
    Fixture {
        store,
        _dir: dir,
        db_file: Some(path),
        pg_url: None,
    }
}

/// A fresh, uniquely named database on the test cluster.
pub async fn postgres_url() -> String {
    let admin = std::env::var("SMS_TEST_POSTGRES_URL").expect(
        "SMS_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh, which starts a throwaway PostgreSQL 15 cluster",
    );
    use sqlx::Connection;
    let name = format!("sms_test_{}_{}", std::process::id(), rand_suffix());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test PostgreSQL cluster");
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

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

async fn postgres() -> Fixture {
    let url = postgres_url().await;
    let backend = Arc::new(PostgresBackend::connect(&url, 8).await.unwrap());
    let store = Store::open(backend, MasterKey::generate()).await.unwrap();
    Fixture {
        store,
        _dir: tempfile::tempdir().unwrap(),
        db_file: None,
        pg_url: Some(url),
    }
}

fn key(name: &str) -> RecordKey {
    RecordKey::new(
        "requester",
        "0x00000000000000000000000000000000000000aa",
        name,
    )
}

async fn insert_once(f: Fixture) {
    let v = SecretValue::from("value-1");
    assert_eq!(
        f.store.insert(&key("a"), &v, None).await.unwrap(),
        Insert::Inserted
    );
    assert_eq!(
        f.store
            .insert(&key("a"), &SecretValue::from("other"), None)
            .await
            .unwrap(),
        Insert::AlreadyExists
    );
    assert_eq!(f.store.get(&key("a")).await.unwrap().unwrap().value, v);
    assert!(f.store.exists(&key("a")).await.unwrap());
    assert!(
        !f.store.exists(&key("A")).await.unwrap(),
        "names are case-sensitive at this layer"
    );
    assert!(f.store.get(&key("missing")).await.unwrap().is_none());
}

async fn update_semantics(f: Fixture) {
    let k = key("web2");
    assert_eq!(
        f.store.update(&k, &SecretValue::from("x")).await.unwrap(),
        Update::NotFound
    );
    f.store
        .insert(&k, &SecretValue::from("x"), None)
        .await
        .unwrap();
    assert_eq!(
        f.store.update(&k, &SecretValue::from("x")).await.unwrap(),
        Update::Unchanged
    );
    assert_eq!(
        f.store.update(&k, &SecretValue::from("y")).await.unwrap(),
        Update::Updated { version: 2 }
    );
    assert_eq!(
        f.store.get(&k).await.unwrap().unwrap().value,
        SecretValue::from("y")
    );
}

async fn concurrent_first_inserts_yield_one_winner(f: Fixture) {
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert(
                    &key("race"),
                    &SecretValue::from(format!("v{i}").as_str()),
                    None,
                )
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap() == Insert::Inserted {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn take_is_single_use_and_expiry_sweeps(f: Fixture) {
    let k = RecordKey::new("nonce", "s", "n1");
    f.store
        .insert(&k, &SecretValue::from("t"), Some(100))
        .await
        .unwrap();
    assert!(f.store.take(&k).await.unwrap().is_some());
    assert!(f.store.take(&k).await.unwrap().is_none());
    f.store
        .insert(
            &RecordKey::new("nonce", "s", "old"),
            &SecretValue::from("t"),
            Some(100),
        )
        .await
        .unwrap();
    f.store
        .insert(
            &RecordKey::new("nonce", "s", "new"),
            &SecretValue::from("t"),
            Some(300),
        )
        .await
        .unwrap();
    assert_eq!(f.store.delete_expired("nonce", 200).await.unwrap(), 1);
    let counts = f.store.count_by_namespace().await.unwrap();
    assert_eq!(counts, vec![("nonce".to_owned(), 1)]);
}

async fn swapped_rows_do_not_decrypt(f: Fixture) {
    f.store
        .insert(&key("one"), &SecretValue::from("1"), None)
        .await
        .unwrap();
    f.store
        .insert(&key("two"), &SecretValue::from("2"), None)
        .await
        .unwrap();
    let backend = f.store.backend();
    let one = backend.get(&key("one")).await.unwrap().unwrap();
    let two = backend.get(&key("two")).await.unwrap().unwrap();
    // Put row one's ciphertext under key two: the identity binding must refuse it.
    let mut forged = one.clone();
    forged.key = two.key.clone();
    forged.version = two.version + 1;
    assert!(backend.replace(forged, two.version).await.unwrap());
    let err = f.store.get(&key("two")).await.unwrap_err().to_string();
    assert!(err.contains("cannot be decrypted"), "{err}");
}

/// Check-and-set puts: 0 creates only, N must be current; v1 updates bump the same version.
async fn check_and_set_put(f: Fixture) {
    let k = key("cas");
    let put = |v: &'static str, expected: i64| {
        let store = f.store.clone();
        let k = k.clone();
        async move {
            store
                .put(&k, &SecretValue::from(v), expected)
                .await
                .unwrap()
        }
    };
    assert_eq!(put("a", 3).await, CheckAndSet::Conflict { current: 0 });
    assert_eq!(put("a", 0).await, CheckAndSet::Written { version: 1 });
    assert_eq!(put("b", 0).await, CheckAndSet::Conflict { current: 1 });
    assert_eq!(put("b", 1).await, CheckAndSet::Written { version: 2 });
    assert_eq!(put("c", 1).await, CheckAndSet::Conflict { current: 2 });
    assert_eq!(
        f.store.update(&k, &SecretValue::from("v1")).await.unwrap(),
        Update::Updated { version: 3 }
    );
    assert_eq!(put("d", 3).await, CheckAndSet::Written { version: 4 });
    let got = f.store.get(&k).await.unwrap().unwrap();
    assert_eq!((got.value, got.version), (SecretValue::from("d"), 4));
    let meta = f.store.metadata(&k).await.unwrap().unwrap();
    assert_eq!((meta.name.as_str(), meta.version), ("cas", 4));
    assert!(meta.key_id > 0 && meta.updated_at >= meta.created_at && !meta.deleted);
}

/// Many concurrent puts with the same expected version: exactly one is written.
async fn concurrent_puts_at_one_version_yield_one_winner(f: Fixture) {
    let k = key("cas-race");
    f.store
        .put(&k, &SecretValue::from("base"), 0)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, k) = (f.store.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            store
                .put(&k, &SecretValue::from(format!("v{i}").as_str()), 1)
                .await
                .unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let written = outcomes
        .iter()
        .filter(|o| matches!(o, CheckAndSet::Written { version: 2 }))
        .count();
    assert_eq!(written, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(
        o,
        CheckAndSet::Written { version: 2 } | CheckAndSet::Conflict { current: 2 }
    )));
}

/// A tombstone hides the value from reads and existence checks, bumps the version, and the
/// name can be created again (v2 and v1) with the next version.
async fn tombstones_keep_versions_monotonic(f: Fixture) {
    let k = key("gone");
    f.store
        .insert(&k, &SecretValue::from("x"), None)
        .await
        .unwrap();
    assert_eq!(
        f.store.tombstone(&k, Some(7)).await.unwrap(),
        CheckAndSet::Conflict { current: 1 }
    );
    assert_eq!(
        f.store.tombstone(&k, Some(1)).await.unwrap(),
        CheckAndSet::Written { version: 2 }
    );
    assert!(f.store.get(&k).await.unwrap().is_none());
    assert!(!f.store.exists(&k).await.unwrap());
    assert!(f.store.metadata(&k).await.unwrap().is_none());
    assert_eq!(
        f.store.update(&k, &SecretValue::from("y")).await.unwrap(),
        Update::NotFound
    );
    assert_eq!(
        f.store.tombstone(&k, None).await.unwrap(),
        CheckAndSet::Conflict { current: 0 }
    );
    let raw = f.store.backend().metadata(&k).await.unwrap().unwrap();
    assert!(raw.deleted && raw.version == 2);
    assert_eq!(
        f.store
            .put(&k, &SecretValue::from("again"), 0)
            .await
            .unwrap(),
        CheckAndSet::Written { version: 3 }
    );
    assert!(f.store.exists(&k).await.unwrap());
    f.store.tombstone(&k, None).await.unwrap();
    assert_eq!(
        f.store
            .insert(&k, &SecretValue::from("v1"), None)
            .await
            .unwrap(),
        Insert::Inserted,
        "v1 may create a deleted name again"
    );
    let got = f.store.get(&k).await.unwrap().unwrap();
    assert_eq!((got.value, got.version), (SecretValue::from("v1"), 5));
}

/// Lists are per owner and namespace, live names only, never values.
async fn list_by_owner(f: Fixture) {
    let other = RecordKey::new(
        "requester",
        "0x00000000000000000000000000000000000000bb",
        "b",
    );
    for name in ["z", "a", "m"] {
        f.store
            .put(&key(name), &SecretValue::from("v"), 0)
            .await
            .unwrap();
    }
    f.store
        .put(&key("a"), &SecretValue::from("w"), 1)
        .await
        .unwrap();
    f.store
        .put(&other, &SecretValue::from("v"), 0)
        .await
        .unwrap();
    f.store.tombstone(&key("m"), None).await.unwrap();
    let owner = "0x00000000000000000000000000000000000000aa";
    let listed: Vec<(String, i64)> = f
        .store
        .list("requester", owner)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.version))
        .collect();
    assert_eq!(listed, vec![("a".to_owned(), 2), ("z".to_owned(), 1)]);
    assert!(f.store.list("web2", owner).await.unwrap().is_empty());
}

/// A nonce is accepted once per owner until it is swept after its expiry.
async fn nonces_are_single_use_per_owner(f: Fixture) {
    let n = "0x01";
    assert_eq!(
        f.store.use_nonce("0xaa", n, 100).await.unwrap(),
        NonceUse::Fresh
    );
    assert_eq!(
        f.store.use_nonce("0xaa", n, 100).await.unwrap(),
        NonceUse::Reused
    );
    assert_eq!(
        f.store.use_nonce("0xbb", n, 100).await.unwrap(),
        NonceUse::Fresh
    );
    assert_eq!(
        f.store.use_nonce("0xaa", "0x02", 300).await.unwrap(),
        NonceUse::Fresh
    );
    assert_eq!(f.store.delete_expired_nonces(200).await.unwrap(), 2);
    assert_eq!(
        f.store.use_nonce("0xaa", "0x02", 300).await.unwrap(),
        NonceUse::Reused
    );
}

fn audit_event(i: usize) -> AuditEvent {
    AuditEvent::AdminAction {
        action: "test".into(),
        detail: format!("event {i}"),
    }
}

/// Reads the whole log and checks it (chain, recorded hashes, heads' roots).
async fn checked_log(store: &Store) -> Vec<sms_store::StoredAuditEntry> {
    let entries = store.audit_entries(0, 10_000).await.unwrap();
    let heads: Vec<_> = store
        .audit_heads(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.head)
        .collect();
    let pairs: Vec<_> = entries
        .iter()
        .map(|e| (e.entry.clone(), Some(e.hash)))
        .collect();
    verify_log(&pairs, &heads).unwrap();
    entries
}

/// Concurrent appends get distinct consecutive indexes and form one valid chain; heads are
/// stored once per size and read back in order.
async fn audit_log_is_one_chain_under_concurrent_appends(f: Fixture) {
    assert_eq!(f.store.audit_size().await.unwrap(), 0);
    assert!(f.store.latest_audit_head().await.unwrap().is_none());
    let mut appends = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = f.store.clone();
        appends.spawn(async move { store.audit_append(&audit_event(i)).await });
    }
    let mut indexes = Vec::new();
    while let Some(r) = appends.join_next().await {
        indexes.push(r.unwrap().unwrap());
    }
    indexes.sort_unstable();
    assert_eq!(indexes, (0..40).collect::<Vec<u64>>());
    assert_eq!(f.store.audit_size().await.unwrap(), 40);
    let entries = checked_log(&f.store).await;
    assert_eq!(entries.len(), 40);
    let leaves = f.store.audit_leaves(25).await.unwrap();
    assert_eq!(leaves.len(), 25);
    let head = StoredTreeHead {
        head: TreeHead {
            size: 25,
            root: merkle_root(&leaves),
            at: 7,
        },
        signature: "{}".into(),
    };
    assert_eq!(
        f.store.insert_audit_head(head.clone()).await.unwrap(),
        Insert::Inserted
    );
    let mut again = head.clone();
    again.head.at = 8;
    assert_eq!(
        f.store.insert_audit_head(again).await.unwrap(),
        Insert::AlreadyExists
    );
    assert_eq!(f.store.latest_audit_head().await.unwrap(), Some(head));
    checked_log(&f.store).await;
    // Paging: from an index, bounded.
    let page = f.store.audit_entries(38, 10).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.entry.index).collect::<Vec<_>>(),
        [38, 39]
    );
}

/// The audit event the audited writes of these tests record: it names the version written.
fn written(version: i64) -> AuditEvent {
    AuditEvent::AdminAction {
        action: "write".into(),
        detail: format!("version {version}"),
    }
}

/// The details of every entry in the log, in order (after a check of the whole log).
async fn details(store: &Store) -> Vec<String> {
    checked_log(store)
        .await
        .iter()
        .map(|e| {
            let detail = e
                .entry
                .body
                .split(r#""detail":""#)
                .nth(1)
                .unwrap_or_default();
            detail.split('"').next().unwrap_or_default().to_owned()
        })
        .collect()
}

/// Each audited write that is done has exactly one entry naming the version it wrote; one
/// that is not done (key exists, version conflict, nothing to delete) has none.
async fn audited_writes_commit_with_their_entry(f: Fixture) {
    let k = key("audited");
    let audited = f.store.audited(&written);
    let (v1, v2, v3) = (
        SecretValue::from("one"),
        SecretValue::from("two"),
        SecretValue::from("three"),
    );
    assert_eq!(
        audited.insert(&k, &v1, None).await.unwrap(),
        Insert::Inserted
    );
    assert_eq!(
        audited.insert(&k, &v2, None).await.unwrap(),
        Insert::AlreadyExists
    );
    assert_eq!(
        audited.update(&k, &v2).await.unwrap(),
        Update::Updated { version: 2 }
    );
    assert_eq!(audited.update(&k, &v2).await.unwrap(), Update::Unchanged);
    assert!(audited.compare_and_set(&k, &v3, 2, None).await.unwrap());
    assert!(!audited.compare_and_set(&k, &v1, 2, None).await.unwrap());
    assert_eq!(
        audited.put(&k, &v1, 3).await.unwrap(),
        CheckAndSet::Written { version: 4 }
    );
    assert_eq!(
        audited.put(&k, &v1, 3).await.unwrap(),
        CheckAndSet::Conflict { current: 4 }
    );
    assert_eq!(
        audited.tombstone(&k, None).await.unwrap(),
        CheckAndSet::Written { version: 5 }
    );
    assert_eq!(
        audited.tombstone(&k, None).await.unwrap(),
        CheckAndSet::Conflict { current: 0 }
    );
    // Revived over the tombstone by a create.
    assert_eq!(
        audited.put(&k, &v2, 0).await.unwrap(),
        CheckAndSet::Written { version: 6 }
    );
    assert_eq!(
        details(&f.store).await,
        (1..=6).map(|v| format!("version {v}")).collect::<Vec<_>>()
    );
}

/// Makes the table an audited write puts its entry in refuse inserts: `audit_entries` on
/// SQLite (chained in the write's transaction), `audit_pending` on PostgreSQL.
async fn refuse_audit_entries(f: &Fixture) {
    use sqlx::Connection;
    if let Some(db) = &f.db_file {
        read_only_audit_log(db).await;
        return;
    }
    let url = f.pg_url.as_deref().unwrap();
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    for statement in [
        "CREATE FUNCTION audit_read_only() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'audit log is read-only'; END $$",
        "CREATE TRIGGER audit_read_only BEFORE INSERT ON audit_pending \
         FOR EACH ROW EXECUTE FUNCTION audit_read_only()",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
}

/// An audited write whose entry the database refuses is not done (the attacker's case: a
/// log made read-only to hide what follows): `AuditRefused`, the row is absent, the log
/// unchanged; a plain write beside it is unaffected.
async fn audited_write_is_not_done_without_its_entry(f: Fixture) {
    let (k, beside) = (key("hidden"), key("beside"));
    let value = SecretValue::from("value");
    f.store
        .audited(&written)
        .insert(&key("first"), &value, None)
        .await
        .unwrap();
    refuse_audit_entries(&f).await;
    let refused = f.store.audited(&written).insert(&k, &value, None).await;
    assert!(
        matches!(refused, Err(StoreError::AuditRefused(_))),
        "{refused:?}"
    );
    assert!(!f.store.exists(&k).await.unwrap());
    assert!(f.store.get(&k).await.unwrap().is_none());
    let refused = f.store.audited(&written).put(&k, &value, 0).await;
    assert!(
        matches!(refused, Err(StoreError::AuditRefused(_))),
        "{refused:?}"
    );
    assert!(f.store.metadata(&k).await.unwrap().is_none());
    assert_eq!(
        f.store.insert(&beside, &value, None).await.unwrap(),
        Insert::Inserted
    );
    assert_eq!(details(&f.store).await, ["version 1"]);
}

/// Many audited inserts in flight at once (the SQLite writer commits them in one group, as
/// multi-row statements): each new key is inserted with exactly one entry, in one valid
/// chain; the inserts of a key that exists answer `AlreadyExists` and leave no entry; and
/// when the log refuses entries, every audited insert of the group is refused alone while
/// the plain inserts beside them are done.
async fn concurrent_audited_inserts_each_commit_with_their_entry(f: Fixture) {
    let value = SecretValue::from("value");
    let audited = f.store.audited(&written);
    assert_eq!(
        audited.insert(&key("taken"), &value, None).await.unwrap(),
        Insert::Inserted
    );
    let mut inserts = tokio::task::JoinSet::new();
    for i in 0..96 {
        let store = f.store.clone();
        let name = if i % 12 == 0 {
            "taken".to_owned()
        } else {
            format!("group-{i}")
        };
        inserts.spawn(async move {
            let value = SecretValue::from("value");
            let outcome = store
                .audited(&written)
                .insert(&key(&name), &value, None)
                .await;
            (name, outcome.unwrap())
        });
    }
    let mut inserted = 0;
    while let Some(r) = inserts.join_next().await {
        let (name, outcome) = r.unwrap();
        let expected = if name == "taken" {
            Insert::AlreadyExists
        } else {
            Insert::Inserted
        };
        assert_eq!(outcome, expected, "{name}");
        inserted += usize::from(outcome == Insert::Inserted);
        assert!(f.store.exists(&key(&name)).await.unwrap(), "{name}");
    }
    assert_eq!(inserted, 88);
    assert_eq!(details(&f.store).await.len(), 89);

    refuse_audit_entries(&f).await;
    let mut inserts = tokio::task::JoinSet::new();
    for i in 0..64 {
        let store = f.store.clone();
        inserts.spawn(async move {
            let (k, value) = (key(&format!("late-{i}")), SecretValue::from("value"));
            let outcome = if i % 2 == 0 {
                store.audited(&written).insert(&k, &value, None).await
            } else {
                store.insert(&k, &value, None).await
            };
            (i, k, outcome)
        });
    }
    while let Some(r) = inserts.join_next().await {
        let (i, k, outcome) = r.unwrap();
        if i % 2 == 0 {
            assert!(
                matches!(outcome, Err(StoreError::AuditRefused(_))),
                "{i}: {outcome:?}"
            );
            assert!(!f.store.exists(&k).await.unwrap(), "{i}");
        } else {
            assert_eq!(outcome.unwrap(), Insert::Inserted, "{i}");
            assert!(f.store.exists(&k).await.unwrap(), "{i}");
        }
    }
    assert_eq!(details(&f.store).await.len(), 89);
}

/// A handle bound to one namespace names rows by owner and name only, and reaches no other
/// namespace's rows: the same `(owner, name)` under another namespace is another row, which
/// that handle neither reads, takes, deletes nor sweeps.
async fn a_namespace_handle_reaches_only_its_own_rows(f: Fixture) {
    use sms_store::Namespace;
    // An expiry after today's clock (2096), passed by the sweeps below.
    const LATER: i64 = 4_000_000_000;
    let challenges = f.store.records(Namespace::TeeChallenge);
    let sessions = f.store.records(Namespace::TeeSession);
    assert_eq!(
        challenges
            .insert("", "0xtask", &SecretValue::from("challenge"), Some(LATER))
            .await
            .unwrap(),
        Insert::Inserted
    );
    assert!(sessions.get("", "0xtask").await.unwrap().is_none());
    assert!(sessions.take("", "0xtask").await.unwrap().is_none());
    assert!(!sessions.delete("", "0xtask").await.unwrap());
    assert_eq!(sessions.delete_expired(LATER + 1).await.unwrap(), 0);
    let direct = f
        .store
        .get(&Namespace::TeeChallenge.key("", "0xtask"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(direct.value, SecretValue::from("challenge"));
    assert_eq!(
        challenges.get("", "0xtask").await.unwrap().unwrap().value,
        SecretValue::from("challenge")
    );
    assert_eq!(challenges.delete_expired(LATER + 1).await.unwrap(), 1);
    assert!(challenges.get("", "0xtask").await.unwrap().is_none());
}

/// What `get` answers for `k`, comparable.
async fn got(store: &Store, k: &RecordKey) -> Option<(Vec<u8>, i64)> {
    let found = store.get(k).await.unwrap();
    found.map(|v| (v.value.as_bytes().to_vec(), v.version))
}

/// A multi-key read answers each key as `get` does, in the order asked: absent and deleted
/// keys `None`, a key asked twice twice, over more keys than one statement reads.
async fn get_many_answers_each_key_as_get_does(f: Fixture) {
    let s = &f.store;
    for i in 0..40 {
        let value = SecretValue::from(format!("value-{i}").as_str());
        s.insert(&key(&format!("k{i}")), &value, None)
            .await
            .unwrap();
    }
    s.update(&key("k1"), &SecretValue::from("second"))
        .await
        .unwrap();
    assert!(s.delete(&key("k3")).await.unwrap());
    assert_eq!(
        s.tombstone(&key("k5"), None).await.unwrap(),
        CheckAndSet::Written { version: 2 }
    );
    let mut asked: Vec<RecordKey> = ["k0", "missing", "k1", "k3", "k5", "k7", "k0"]
        .into_iter()
        .map(key)
        .collect();
    asked.extend((10..40).map(|i| key(&format!("k{i}"))));
    asked.push(RecordKey::new("web2", key("k7").owner, "k7"));
    let many = s.get_many(&asked).await.unwrap();
    assert_eq!(many.len(), asked.len());
    for (k, found) in asked.iter().zip(many) {
        let found = found.map(|v| (v.value.as_bytes().to_vec(), v.version));
        assert_eq!(found, got(s, k).await, "{k}");
    }
    assert_eq!(
        s.get_many(&[key("k1")]).await.unwrap()[0]
            .as_ref()
            .unwrap()
            .version,
        2
    );
    assert!(s.get_many(&[]).await.unwrap().is_empty());
}

/// `insert_all` writes every row or none: a set with one existing key (live, or deleted)
/// writes nothing and leaves no entry; a new set is written with one entry; a set whose
/// entry the log refuses is not written (the attacker's read-only log).
async fn insert_all_writes_every_row_or_none(f: Fixture) {
    let s = &f.store;
    let audited = s.audited(&written);
    let value = SecretValue::from("value");
    s.insert(&key("taken"), &SecretValue::from("first"), None)
        .await
        .unwrap();
    s.insert(&key("gone"), &value, None).await.unwrap();
    s.tombstone(&key("gone"), None).await.unwrap();
    let (a, b) = (key("new-a"), key("new-b"));
    let row = |key| NewRow {
        key,
        value: &value,
        expires_at: None,
    };
    let (taken, gone, e) = (key("taken"), key("gone"), key("new-e"));
    for existing in [&taken, &gone] {
        assert_eq!(
            audited
                .insert_all(&[row(&a), row(existing), row(&b)])
                .await
                .unwrap(),
            Insert::AlreadyExists,
            "{existing}"
        );
        assert!(!s.exists(&a).await.unwrap() && !s.exists(&b).await.unwrap());
        assert!(got(s, &a).await.is_none() && got(s, &b).await.is_none());
    }
    assert_eq!(got(s, &key("taken")).await.unwrap().0, b"first");
    assert!(details(s).await.is_empty());
    assert_eq!(
        audited.insert_all(&[row(&a), row(&b)]).await.unwrap(),
        Insert::Inserted
    );
    assert!(s.exists(&a).await.unwrap() && s.exists(&b).await.unwrap());
    assert_eq!(got(s, &b).await, Some((b"value".to_vec(), 1)));
    assert_eq!(details(s).await, ["version 1"]);
    let (c, d) = (key("new-c"), key("new-d"));
    assert_eq!(
        s.insert_all(&[row(&c)]).await.unwrap(),
        Insert::Inserted,
        "unaudited"
    );
    refuse_audit_entries(&f).await;
    let refused = audited.insert_all(&[row(&d), row(&e)]).await;
    assert!(
        matches!(refused, Err(StoreError::AuditRefused(_))),
        "{refused:?}"
    );
    assert!(!s.exists(&d).await.unwrap() && got(s, &e).await.is_none());
    assert_eq!(details(s).await, ["version 1"]);
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite { $( #[tokio::test] async fn $name() { super::$name(super::sqlite().await).await } )* }
        mod on_postgres { $( #[tokio::test] async fn $name() { super::$name(super::postgres().await).await } )* }
    };
}

both_backends!(
    insert_once,
    update_semantics,
    concurrent_first_inserts_yield_one_winner,
    take_is_single_use_and_expiry_sweeps,
    swapped_rows_do_not_decrypt,
    check_and_set_put,
    concurrent_puts_at_one_version_yield_one_winner,
    tombstones_keep_versions_monotonic,
    list_by_owner,
    nonces_are_single_use_per_owner,
    audit_log_is_one_chain_under_concurrent_appends,
    audited_writes_commit_with_their_entry,
    concurrent_audited_inserts_each_commit_with_their_entry,
    audited_write_is_not_done_without_its_entry,
    a_namespace_handle_reaches_only_its_own_rows,
    get_many_answers_each_key_as_get_does,
    insert_all_writes_every_row_or_none,
);

/// An entry committed with its write by a replica that stopped before chaining it (a row
/// left in `audit_pending`) is chained by another replica on its own, within seconds, with
/// no read of the log to trigger it; the log stays one valid chain.
#[tokio::test]
async fn postgres_entries_left_pending_by_a_stopped_replica_are_chained() {
    use sqlx::Connection;
    let url = postgres_url().await;
    let backend = Arc::new(PostgresBackend::connect(&url, 4).await.unwrap());
    let store = Store::open(backend, MasterKey::generate()).await.unwrap();
    store.audit_append(&audit_event(0)).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let body = written(7).body();
    sqlx::query("INSERT INTO audit_pending (at, body) VALUES (1, $1)")
        .bind(&body)
        .execute(&mut conn)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (chained,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_entries")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if chained == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pending entry was not chained within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (pending,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_pending")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending, 0);
    assert_eq!(details(&store).await, ["event 0", "version 7"]);
}

/// The per-namespace count of live rows (the `sms_secrets_stored` gauge) can be answered from
/// the partial index of live rows instead of a scan of the table (migration 0006).
#[tokio::test]
async fn postgres_live_counts_have_their_index() {
    use sqlx::Connection;
    let url = postgres_url().await;
    let _backend = PostgresBackend::connect(&url, 2).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let (definition,): (String,) =
        sqlx::query_as("SELECT indexdef FROM pg_indexes WHERE indexname = 'records_live'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(
        definition.contains("WHERE (deleted_at IS NULL)"),
        "{definition}"
    );
    // Its use, once a table scan is priced out (a tiny table would be scanned anyway).
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut conn)
        .await
        .unwrap();
    let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "EXPLAIN {}",
        "SELECT namespace, COUNT(*) AS n FROM records WHERE deleted_at IS NULL GROUP BY namespace"
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|(line,)| line).collect();
    assert!(plan.iter().any(|l| l.contains("records_live")), "{plan:?}");
}

/// A lookup by key is an index lookup on all three key columns, whatever the statistics say:
/// on a table grown from empty (not analysed yet, as after a burst of pushes), the planner
/// preferred the smaller partial index `records_live` for `EXISTS` and filtered owner and name
/// row by row — 15,022 rows read per HEAD with 15,000 secrets stored (`sms bench`, cluster) —
/// or the owner index `(owner, namespace)` and filtered the names.
#[tokio::test]
async fn postgres_key_lookups_do_not_scan_a_namespace() {
    use sqlx::Connection;
    let url = postgres_url().await;
    let backend = Arc::new(PostgresBackend::connect(&url, 2).await.unwrap());
    let store = Store::open(backend, MasterKey::generate()).await.unwrap();
    store
        .insert(&key("first"), &SecretValue::from("v"), None)
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // Sealed-size rows of two owners, as in `sms bench`'s cluster scenario (where the planner
    // also sent lookups to the owner index `(owner, namespace)` and filtered the names).
    for (owner, prefix, rows) in [
        (
            "0x9db4b0182c7bb9608f39211006901f98a0ad5a22",
            "push-5e1f0c3a9b7d-",
            20_000,
        ),
        (
            "0xd5f95905c8f393b0d5219e55f76f116806c282a2",
            "ck-db7c9850-",
            256,
        ),
    ] {
        sqlx::query(
            "INSERT INTO records (namespace, owner, name, key_id, nonce, ciphertext, version, created_at, updated_at) \
             SELECT 'web2', $1, $2 || g, (SELECT MAX(id) FROM data_keys), decode(repeat('ab', 12), 'hex'), decode(repeat('cd', 80), 'hex'), 1, 0, 0 \
             FROM generate_series(1, $3) AS g",
        )
        .bind(owner)
        .bind(prefix)
        .bind(rows)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    for query in [
        "SELECT 1 FROM records WHERE namespace = 'web2' AND owner = '0x9db4b0182c7bb9608f39211006901f98a0ad5a22' AND name = 'push-5e1f0c3a9b7d-77' AND deleted_at IS NULL",
        "SELECT version FROM records WHERE namespace = 'web2' AND owner = '0x9db4b0182c7bb9608f39211006901f98a0ad5a22' AND name = 'push-5e1f0c3a9b7d-77' AND deleted_at IS NULL",
        "SELECT 1 FROM records WHERE namespace = 'web2' AND owner = '0xd5f95905c8f393b0d5219e55f76f116806c282a2' AND name = 'ck-db7c9850-4' AND deleted_at IS NULL",
        "SELECT name FROM records WHERE namespace = 'web2' AND owner = '0xd5f95905c8f393b0d5219e55f76f116806c282a2' AND deleted_at IS NULL ORDER BY name",
        // A multi-key read (Store::get_many): one primary-key lookup per key.
        "SELECT name, version FROM records WHERE namespace = 'web2' AND owner = '0x9db4b0182c7bb9608f39211006901f98a0ad5a22' AND name = 'push-5e1f0c3a9b7d-77' AND deleted_at IS NULL \
         UNION ALL SELECT name, version FROM records WHERE namespace = 'web2' AND owner = '0xd5f95905c8f393b0d5219e55f76f116806c282a2' AND name = 'ck-db7c9850-4' AND deleted_at IS NULL",
    ] {
        let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {query}"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|(line,)| line).collect();
        assert!(
            !plan
                .iter()
                .any(|l| l.contains("Seq Scan") || l.contains("Rows Removed by Filter")),
            "{query}: {plan:#?}"
        );
    }
}

/// Two stores (two backends, one master key) on one new PostgreSQL database.
async fn two_replicas() -> Vec<Store> {
    let url = postgres_url().await;
    let mut stores = Vec::new();
    for _ in 0..2 {
        let backend = Arc::new(PostgresBackend::connect(&url, 4).await.unwrap());
        let master = MasterKey::from_base64(&format!("{}=", "A".repeat(43))).unwrap();
        stores.push(Store::open(backend, master).await.unwrap());
    }
    stores
}

/// Audited writes of two replicas at once: every write has its entry, once, in one chain.
#[tokio::test]
async fn postgres_replicas_audited_writes_form_one_chain() {
    let stores = two_replicas().await;
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = stores[i % 2].clone();
        writes.spawn(async move {
            let event = move |_| AuditEvent::AdminAction {
                action: "write".into(),
                detail: format!("write {i}"),
            };
            store
                .audited(&event)
                .insert(&key(&format!("k{i}")), &SecretValue::from("v"), None)
                .await
        });
    }
    while let Some(r) = writes.join_next().await {
        assert_eq!(r.unwrap().unwrap(), Insert::Inserted);
    }
    let mut seen = details(&stores[0]).await;
    seen.sort();
    let mut expected: Vec<String> = (0..40).map(|i| format!("write {i}")).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

/// Two replicas (two backends on one database) appending at once keep one chain.
#[tokio::test]
async fn postgres_replicas_append_to_one_chain() {
    let stores = two_replicas().await;
    let mut appends = tokio::task::JoinSet::new();
    for i in 0..60 {
        let store = stores[i % 2].clone();
        appends.spawn(async move { store.audit_append(&audit_event(i)).await });
    }
    while let Some(r) = appends.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(checked_log(&stores[1]).await.len(), 60);
}

/// A log the database refuses to extend (a trigger standing for a read-only table) fails the
/// append, and only the append: the group's other writes commit.
#[tokio::test]
async fn sqlite_refused_audit_append_fails_alone() {
    let f = sqlite().await;
    f.store.audit_append(&audit_event(0)).await.unwrap();
    let db = f.db_file.clone().unwrap();
    read_only_audit_log(&db).await;
    let (event, beside, value) = (
        audit_event(1),
        key("beside"),
        SecretValue::new(b"v".to_vec()),
    );
    let (append, insert) = tokio::join!(
        f.store.audit_append(&event),
        f.store.insert(&beside, &value, None)
    );
    assert!(append.is_err(), "{append:?}");
    assert_eq!(insert.unwrap(), Insert::Inserted);
    assert_eq!(f.store.audit_size().await.unwrap(), 1);
    assert_eq!(checked_log(&f.store).await.len(), 1);
}

/// Makes the audit table of a SQLite database refuse inserts.
async fn read_only_audit_log(db: &std::path::Path) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER audit_read_only BEFORE INSERT ON audit_entries \
         BEGIN SELECT RAISE(ABORT, 'audit log is read-only'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn sqlite_file_never_holds_plaintext() {
    let f = sqlite().await;
    let marker = "PLAINTEXT-MARKER-7f3a9c";
    for i in 0..20 {
        f.store
            .insert(&key(&format!("k{i}")), &SecretValue::from(marker), None)
            .await
            .unwrap();
    }
    let dir = f.db_file.as_ref().unwrap().parent().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()));
    }
}

#[tokio::test]
async fn reopening_with_another_master_key_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sms.db");
    let backend: Arc<dyn Backend> = Arc::new(SqliteBackend::open(&path).await.unwrap());
    Store::open(backend.clone(), MasterKey::generate())
        .await
        .unwrap();
    let err = Store::open(backend, MasterKey::generate())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot unwrap data key"), "{err}");
}

#[tokio::test]
async fn values_survive_reopen_with_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sms.db");
    let key_file = dir.path().join("master.key");
    {
        let (master, _) = MasterKey::load_or_create(&key_file).unwrap();
        let store = Store::open(Arc::new(SqliteBackend::open(&path).await.unwrap()), master)
            .await
            .unwrap();
        store
            .insert(&key("durable"), &SecretValue::from("kept"), None)
            .await
            .unwrap();
    }
    let (master, created) = MasterKey::load_or_create(&key_file).unwrap();
    assert!(!created);
    let store = Store::open(Arc::new(SqliteBackend::open(&path).await.unwrap()), master)
        .await
        .unwrap();
    assert_eq!(
        store.get(&key("durable")).await.unwrap().unwrap().value,
        SecretValue::from("kept")
    );
}

/// The store decides row expiry by the clock it was opened with: a row expiring at 1000 is
/// kept while that clock reads 999 and deleted once it reads 1001, with no sleep.
#[tokio::test]
async fn row_expiry_follows_the_injected_clock() {
    use sms_core::clock::FixedClock;
    use sms_store::{Namespace, RotationPolicy};
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(
        SqliteBackend::open(&dir.path().join("sms.db"))
            .await
            .unwrap(),
    );
    let fixed = FixedClock::at(999);
    let store = Store::open_clocked(
        backend,
        MasterKey::generate(),
        RotationPolicy::default(),
        fixed.clone().into(),
    )
    .await
    .unwrap();
    let challenge = Namespace::TeeChallenge.key("task", "0x01");
    store
        .insert(&challenge, &SecretValue::from("k"), Some(1000))
        .await
        .unwrap();
    for (now, deleted, kept) in [(999, 0, true), (1001, 1, false)] {
        fixed.set(now);
        assert_eq!(store.clock().now(), now);
        let swept = store.delete_expired_now(Namespace::TeeChallenge).await;
        assert_eq!(swept.unwrap(), deleted, "at {now}");
        assert_eq!(
            store.get(&challenge).await.unwrap().is_some(),
            kept,
            "at {now}"
        );
    }
}

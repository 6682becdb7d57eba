//! A fresh PostgreSQL database per test, on the cluster named by `SMS_TEST_POSTGRES_URL`
//! (scripts/test.sh starts a throwaway PostgreSQL 15 cluster and sets it). Missing: the test
//! fails, it never skips.

// Test support: a failure to set up the fixture is a test failure, so panics are intended.
#![allow(clippy::expect_used)]

use sqlx::Connection;

/// The URL of a new, uniquely named, empty database.
pub async fn fresh_database_url() -> String {
    let admin = std::env::var("SMS_TEST_POSTGRES_URL").expect(
        "SMS_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh, which starts a throwaway PostgreSQL 15 cluster",
    );
    let name = format!("sms_test_{}_{:016x}", std::process::id(), rand_suffix());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the test PostgreSQL cluster");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    let (base, query) = admin
        .split_once('?')
        .map(|(b, q)| (b, format!("?{q}")))
        .unwrap_or((&admin, String::new()));
    let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
    format!("{base}/{name}{query}")
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(48)
}

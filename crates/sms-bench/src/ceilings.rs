//! Ceilings of this machine, measured in the same run as the scenarios: a bare axum handler
//! driven by the same client, secp256k1 recoveries, AES-256-GCM seals, durable SQLite commits.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, head};
use rand::RngCore;
use serde_json::json;
use sms_core::B256;
use sms_core::signature::sign_eip191;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};

/// `sms bench --serve-bare`: serves a handler that does nothing, prints its URL, runs until
/// killed. Same runtime flavour and same route shape as the SMS.
pub async fn serve_bare() -> anyhow::Result<()> {
    let app = Router::new()
        .route(
            "/requesters/{requester}/secrets/{name}",
            head(|| async { StatusCode::NO_CONTENT })
                .post(|_body: bytes::Bytes| async { StatusCode::NO_CONTENT }),
        )
        .route("/health", get(|| async { "UP" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("{}", json!({ "url": url }));
    axum::serve(listener, app).await?;
    Ok(())
}

/// Runs `op` on every core for `duration`; total operations per second.
pub fn per_second_on_all_cores<S, F>(duration: Duration, setup: S) -> f64
where
    S: Fn() -> F + Sync,
    F: FnMut(),
{
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let start = Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut op = setup();
                    let mut n = 0u64;
                    let deadline = Instant::now() + duration;
                    while Instant::now() < deadline {
                        for _ in 0..16 {
                            op();
                        }
                        n += 16;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

/// EIP-191 signer recoveries per second (what every authorized push does once).
pub fn secp256k1_recoveries(duration: Duration) -> f64 {
    let signer = alloy_signer_local::PrivateKeySigner::random();
    let digest = B256::repeat_byte(0x42);
    let signature = sign_eip191(&signer, &digest);
    per_second_on_all_cores(duration, || {
        move || {
            let _ = black_box(black_box(&signature).recover_eip191(black_box(&digest)));
        }
    })
}

/// AES-256-GCM seals of a 64-byte value with a random nonce and its binding as AAD (what the
/// store does once per write).
pub fn aes_gcm_seals(duration: Duration) -> f64 {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let aad =
        b"sms/v1/requester/0x0000000000000000000000000000000000000000/bench-secret-name".to_vec();
    let value = [b'v'; 64];
    per_second_on_all_cores(duration, || {
        let cipher = Aes256Gcm::new_from_slice(&key).ok();
        let aad = aad.clone();
        move || {
            let mut nonce = [0u8; 12];
            rand::rng().fill_bytes(&mut nonce);
            if let Some(c) = &cipher {
                let _ = black_box(c.encrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: &value,
                        aad: &aad,
                    },
                ));
            }
        }
    })
}

/// Durable commits of one SQLite connection (WAL, synchronous=FULL, like the store), with
/// `rows` inserts per transaction: (commits per second, rows per second).
pub async fn sqlite_commits(
    dir: &Path,
    rows: usize,
    duration: Duration,
) -> anyhow::Result<(f64, f64)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("ceiling-{rows}.db"));
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v BLOB NOT NULL)")
        .execute(&mut conn)
        .await?;
    let value = vec![7u8; 120];
    let (mut commits, mut n) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < duration {
        let mut tx = conn.begin().await?;
        for _ in 0..rows {
            sqlx::query("INSERT INTO t (k, v) VALUES (?, ?)")
                .bind(format!("key-{n}"))
                .bind(&value)
                .execute(&mut *tx)
                .await?;
            n += 1;
        }
        tx.commit().await?;
        commits += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    conn.close().await?;
    let _ = std::fs::remove_file(&path);
    Ok((commits as f64 / secs, n as f64 / secs))
}

/// All in-process ceilings, by name.
#[derive(Clone, Debug, Default)]
pub struct Ceilings {
    pub bare_head: Option<f64>,
    pub bare_post: Option<f64>,
    /// Server + client CPU microseconds per bare request.
    pub bare_head_cpu_us: Option<f64>,
    pub recoveries: Option<f64>,
    pub seals: Option<f64>,
    pub sqlite_single: Option<f64>,
    pub sqlite_batched_rows: Option<f64>,
}

impl Ceilings {
    /// What a push must do on the same cores: an HTTP request, a recovery, a seal and its
    /// share of a batched durable commit. Costs add up: 1 / Σ (1 / ceiling).
    pub fn push(&self) -> Option<f64> {
        let parts = [
            self.bare_post?,
            self.recoveries?,
            self.seals?,
            self.sqlite_batched_rows?,
        ];
        Some(1.0 / parts.iter().map(|c| 1.0 / c).sum::<f64>())
    }
}

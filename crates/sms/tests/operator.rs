//! The admin API and `sms operator` against a real server: admin routes off (404), bad or
//! missing token (401), bad input (4xx, never 5xx); a rolled-back row answered 500
//! STORE_INTEGRITY with the metric; rotation + rewrap under pushes; master-key rotation with
//! the old key deleted; backup while pushing, restore into a fresh data dir.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sms_core::secret::SecretValue;
use sms_server::ServerConfig;
use sms_store::RecordKey;
use sms_testkit::server::TestServer;
use sqlx::Connection;

const TOKEN: &str = "an-admin-token-of-enough-length-0123456789";

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A dev server with the admin API on; the token file lives outside the data dir.
async fn admin_server() -> (TestServer, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    let token = secrets.path().join("admin.token");
    write_private(&token, TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
    config.keys.admin_token_file = Some(token);
    config.master_key_file = Some(secrets.path().join("master.key"));
    (TestServer::with_config(config, Some(dir)).await, secrets)
}

fn sms(secrets: &Path, url: &str, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sms"))
        .arg("--json")
        .args(args)
        .env("SMS_URL", url)
        .env("SMS_ADMIN_TOKEN_FILE", secrets.join("admin.token"))
        .env_remove("SMS_MASTER_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

async fn call(url: &str, method: Method, path: &str, auth: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().request(method, format!("{url}{path}"));
    if let Some(a) = auth {
        request = request.header("Authorization", a);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

fn web2(name: &str) -> RecordKey {
    RecordKey::new("web2", "0x00000000000000000000000000000000000000aa", name)
}

#[tokio::test]
async fn admin_routes_are_404_when_off_and_401_without_the_token() {
    let off = TestServer::dev().await;
    for (method, path) in [
        (Method::GET, "/admin/keys"),
        (Method::POST, "/admin/keys/rotate"),
        (Method::POST, "/admin/backup"),
        (Method::POST, "/admin/2f6261636b7570/restore-backup"),
    ] {
        let bearer = format!("Bearer {TOKEN}");
        let (status, _) = call(&off.url(), method.clone(), path, Some(&bearer)).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{path} with the admin API off"
        );
    }

    let (server, _secrets) = admin_server().await;
    let url = server.url();
    let bearer = format!("Bearer {TOKEN}");
    let wrong = format!("Bearer {TOKEN}x");
    for (method, path) in [
        (Method::GET, "/admin/keys"),
        (Method::POST, "/admin/keys/rotate"),
        (Method::POST, "/admin/keys/rewrap"),
        (Method::POST, "/admin/keys/retire"),
        (Method::POST, "/admin/backup"),
        (Method::POST, "/admin/2f6261636b7570/restore-backup"),
    ] {
        for auth in [
            None,
            Some(wrong.as_str()),
            Some(TOKEN),
            Some("Bearer "),
            Some("Basic abc"),
        ] {
            let (status, body) = call(&url, method.clone(), path, auth).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}: {body}"
            );
            assert!(!body.contains(TOKEN));
        }
    }
    // iExec's header works too.
    let response = reqwest::Client::new()
        .get(format!("{url}/admin/keys"))
        .header("X-API-KEY", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Hostile input: precise 4xx, never 5xx.
    for path in [
        "/admin/keys/rewrap?limit=0",
        "/admin/keys/rewrap?limit=99999999999",
        "/admin/keys/rewrap?limit=abc",
        "/admin/keys/rewrap?after=%%%",
        "/admin/keys/rewrap?after=AAAA",
        "/admin/keys/rewrap?evil=1",
        "/admin/zz/restore-backup",
        "/admin/abc/restore-backup",
    ] {
        let (status, body) = call(&url, Method::POST, path, Some(&bearer)).await;
        assert!(status.is_client_error(), "{path}: {status} {body}");
    }
    let (status, body) = call(
        &url,
        Method::POST,
        "/admin/2f6261636b7570/restore-backup",
        Some(&bearer),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = call(&url, Method::DELETE, "/admin/keys", Some(&bearer)).await;
    assert!(status.is_client_error());
}

/// An older ciphertext of a web2 secret written back with raw SQL: the update that must read
/// it answers 500 STORE_INTEGRITY, the metric counts it, the old value is never served.
#[tokio::test]
async fn a_rolled_back_row_is_answered_store_integrity() {
    let server = TestServer::dev().await;
    let signer = alloy_signer_local::PrivateKeySigner::random();
    let client = server.client();
    client
        .push_web2_secret(
            &signer,
            "rolled",
            "OLD-VALUE-1",
            sms_client::Web2Write::Create,
        )
        .await
        .unwrap();
    let db = server.data_dir().join("sms.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let (nonce, ciphertext): (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT nonce, ciphertext FROM records WHERE namespace = 'web2' AND name = 'rolled'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    client
        .push_web2_secret(
            &signer,
            "rolled",
            "NEW-VALUE-2",
            sms_client::Web2Write::Update,
        )
        .await
        .unwrap();
    let n = sqlx::query("UPDATE records SET nonce = $1, ciphertext = $2 WHERE namespace = 'web2' AND name = 'rolled'")
        .bind(nonce)
        .bind(ciphertext)
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 1);
    // The raw PUT the client sends, to read the whole answer.
    let owner = signer.address();
    let digest = sms_core::challenge::named_secret(owner.as_slice(), "rolled", b"THIRD");
    let signature = sms_core::signature::sign_eip191(&signer, &digest).to_hex();
    let response = reqwest::Client::new()
        .put(format!("{}/secrets/web2", server.url()))
        .query(&[
            ("ownerAddress", owner.to_string()),
            ("secretName", "rolled".to_owned()),
        ])
        .header("Authorization", signature)
        .body("THIRD")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.text().await.unwrap();
    assert!(body.contains("STORE_INTEGRITY"), "{body}");
    assert!(
        !body.contains("OLD-VALUE-1") && !body.contains("NEW-VALUE-2"),
        "{body}"
    );
    let metrics = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sms_store_integrity_failures_total"),
        "{metrics}"
    );
}

/// Pushes and reads go on while `sms operator rotate-data-key` and `rewrap` run; afterwards
/// every row is on the new key with its exact value. Then the master key is rotated, the old
/// key file deleted, and a restart reads everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_then_master_key_rotation() {
    let (mut server, secrets) = admin_server().await;
    let store = server.server().store.clone();
    for i in 0..200 {
        store
            .put(
                &web2(&format!("pre{i}")),
                &SecretValue::from(format!("v{i}").as_str()),
                0,
            )
            .await
            .unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pusher = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store
                    .put(
                        &web2(&format!("live{i}")),
                        &SecretValue::from(format!("l{i}").as_str()),
                        0,
                    )
                    .await
                    .unwrap();
                assert!(
                    store
                        .get(&web2(&format!("pre{}", i % 200)))
                        .await
                        .unwrap()
                        .is_some()
                );
                i += 1;
            }
            i
        })
    };
    let url = server.url();
    let s = secrets.path().to_path_buf();
    let (code, rotated, err) = tokio::task::spawn_blocking({
        let (s, url) = (s.clone(), url.clone());
        move || sms(&s, &url, &["operator", "rotate-data-key"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let new_key = rotated["currentKeyId"].as_i64().unwrap();
    let (code, done, err) = tokio::task::spawn_blocking({
        let (s, url) = (s.clone(), url.clone());
        move || sms(&s, &url, &["operator", "rewrap", "--batch", "50"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("\"pending\""),
        "JSON progress on stderr: {err}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let live = pusher.await.unwrap();
    assert_eq!(done["currentKeyId"].as_i64(), Some(new_key));
    let (code, _, err) = tokio::task::spawn_blocking({
        let (s, url) = (s.clone(), url.clone());
        move || sms(&s, &url, &["operator", "rewrap", "--retire"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let status = store.key_status().await.unwrap();
    assert_eq!(status.pending_rewrap, 0);
    assert_eq!(status.keys.len(), 1, "{status:?}");
    assert_eq!(status.keys[0].id, new_key);
    for i in 0..200 {
        assert_eq!(
            store
                .get(&web2(&format!("pre{i}")))
                .await
                .unwrap()
                .unwrap()
                .value,
            SecretValue::from(format!("v{i}").as_str())
        );
    }
    for i in 0..live {
        assert_eq!(
            store
                .get(&web2(&format!("live{i}")))
                .await
                .unwrap()
                .unwrap()
                .value,
            SecretValue::from(format!("l{i}").as_str())
        );
    }

    // Master-key rotation, old key file deleted, restart with the new one.
    let data_dir = server.data_dir();
    let new_key_file = s.join("new-master.key");
    let out = Command::new(env!("CARGO_BIN_EXE_sms"))
        .args(["--json", "operator", "rotate-master-key", "--new-key-file"])
        .arg(&new_key_file)
        .arg("--master-key-file")
        .arg(s.join("master.key"))
        .arg("--data-dir")
        .arg(&data_dir)
        .env_remove("SMS_MASTER_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(store);
    std::fs::remove_file(s.join("master.key")).unwrap();
    std::fs::rename(&new_key_file, s.join("master.key")).unwrap();
    server.restart().await;
    let store = server.server().store.clone();
    for i in 0..200 {
        assert_eq!(
            store
                .get(&web2(&format!("pre{i}")))
                .await
                .unwrap()
                .unwrap()
                .value,
            SecretValue::from(format!("v{i}").as_str())
        );
    }
}

/// `sms operator backup` while pushes go on, then `restore` into a fresh data dir (refused
/// into the live one): every secret acknowledged before the backup started is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_pushing_restores_into_a_fresh_dir() {
    let (server, secrets) = admin_server().await;
    let store = server.server().store.clone();
    for i in 0..100 {
        store
            .put(
                &web2(&format!("b{i}")),
                &SecretValue::from(format!("v{i}").as_str()),
                0,
            )
            .await
            .unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pusher = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store
                    .put(&web2(&format!("during{i}")), &SecretValue::from("x"), 0)
                    .await
                    .unwrap();
                i += 1;
            }
        })
    };
    let s = secrets.path().to_path_buf();
    let file = s.join("backup.db");
    let url = server.url();
    let (code, answer, err) = tokio::task::spawn_blocking({
        let (s, url, file) = (s.clone(), url.clone(), file.clone());
        move || {
            sms(
                &s,
                &url,
                &["operator", "backup", "--out", file.to_str().unwrap()],
            )
        }
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    pusher.await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(answer["bytes"].as_u64().unwrap() > 0);
    let master = std::fs::read_to_string(s.join("master.key")).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        !bytes
            .windows(master.trim().len())
            .any(|w| w == master.trim().as_bytes())
    );

    let restore = |dir: &Path| {
        Command::new(env!("CARGO_BIN_EXE_sms"))
            .args(["--json", "operator", "restore"])
            .arg(&file)
            .arg("--data-dir")
            .arg(dir)
            .arg("--master-key-file")
            .arg(s.join("master.key"))
            .env_remove("SMS_MASTER_KEY")
            .output()
            .unwrap()
    };
    let refused = restore(&server.data_dir());
    assert!(
        !refused.status.success(),
        "restore into a served data dir must be refused"
    );
    let fresh = tempfile::tempdir().unwrap();
    let done = restore(fresh.path());
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stdout)
    );
    let mut config = ServerConfig::dev_in(fresh.path().to_path_buf());
    config.master_key_file = Some(s.join("master.key"));
    let restored = TestServer::with_config(config, None).await;
    let store = restored.server().store.clone();
    for i in 0..100 {
        assert_eq!(
            store
                .get(&web2(&format!("b{i}")))
                .await
                .unwrap()
                .unwrap()
                .value,
            SecretValue::from(format!("v{i}").as_str())
        );
    }
}

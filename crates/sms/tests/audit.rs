//! The audit log end to end (docs/audit.md): a full `sms app run --dev` with a dataset, an app
//! secret and a requester secret, each owned by another wallet; each owner's receipts hold
//! exactly their asset's events, proven under a head signed in the background; impostors,
//! stale and cross-instance signatures get 401; `sms audit verify` passes, then fails naming
//! the entry when one is edited, removed from the middle, or the tail is cut after a head;
//! no secret value and no hash of one is in the log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sms_client::audit::sign_receipts_request;
use sms_client::{ClientError, ClientOptions, SmsClient};
use sms_core::audit::receipts_digest;
use sms_core::signature::sign_eip191;
use sms_server::ServerConfig;
use sms_testkit::server::TestServer;
use sqlx::Connection;

mod common;

use common::DevCli;

const APP_SECRET: &str = "audit-app-secret-value-93af17";
const REQUESTER_SECRET: &str = "audit-requester-value-5c1e02";

/// An app that writes a result and its computed.json.
const APP: &str = r#"printf 'done\n' > "$IEXEC_OUT/result.txt"
printf '{"deterministic-output-path":"%s/result.txt"}' "$IEXEC_OUT" > "$IEXEC_OUT/computed.json"
"#;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A dev server whose tree heads are signed every 200 ms.
async fn server() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
    config.audit_head_interval_ms = 200;
    TestServer::with_config(config, Some(dir)).await
}

/// Waits until the background signer has signed a head over the whole log.
async fn wait_for_head(server: &TestServer) {
    let store = &server.server().store;
    for _ in 0..200 {
        let size = store.audit_size().await.unwrap();
        if let Some(head) = store.latest_audit_head().await.unwrap()
            && head.head.size == size
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no tree head over the whole log within 10 s");
}

struct Owners {
    app_owner: String,
    dataset_owner: String,
    requester: String,
    dataset_key: String,
}

/// Deploys and pushes everything, then runs the task; the owners' wallet files.
fn run_task(env: &DevCli) -> Owners {
    let dir = env.home.path();
    let script = dir.join("app.sh");
    std::fs::write(&script, APP).unwrap();
    let app = env.deploy_scone_app(&format!("sh {}", script.display()), &"11".repeat(32));
    let app_owner = env.wallet("owner");
    env.ok(&[
        "app",
        "push-secret",
        &app,
        "--secret-value",
        APP_SECRET,
        "--wallet-file",
        &app_owner,
        "--json",
    ]);

    let dataset_owner = dir.join("dataset-owner.json").display().to_string();
    let dataset_owner_address = env.ok(&[
        "wallet",
        "create",
        "--wallet-file",
        &dataset_owner,
        "--json",
    ])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(dir.join("data.txt"), "audited data").unwrap();
    let enc = env.ok(&["dataset", "encrypt", "data.txt", "--json"]);
    let checksum = enc["encryptedFiles"][0]["checksum"].as_str().unwrap();
    let file = dir.join(enc["encryptedFiles"][0]["encrypted"].as_str().unwrap());
    let dataset = env.ok(&[
        "dev",
        "dataset",
        "deploy",
        "--owner",
        &dataset_owner_address,
        "--multiaddr",
        &format!("file://{}", file.display()),
        "--checksum",
        checksum,
        "--json",
    ])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_file = dir.join(".secrets/datasets/data.txt.key");
    let dataset_key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_owned();
    env.ok(&[
        "dataset",
        "push-secret",
        &dataset,
        "--secret-path",
        &key_file.display().to_string(),
        "--wallet-file",
        &dataset_owner,
        "--json",
    ]);

    let requester = env.wallet("requester");
    env.ok(&[
        "requester",
        "push-secret",
        "audit-token",
        "--secret-value",
        REQUESTER_SECRET,
        "--wallet-file",
        &requester,
        "--json",
    ]);
    let run = env.app_run(&app, &["--dataset", &dataset, "--secret", "1=audit-token"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let stages: Vec<String> = run.json()["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stages, ["pre-compute", "app", "post-compute"]);
    Owners {
        app_owner,
        dataset_owner,
        requester,
        dataset_key,
    }
}

/// `(type, secret namespace if any)` of each receipt, after checking every one is proven.
fn receipt_kinds(answer: &Value) -> Vec<(String, String)> {
    let receipts = answer["receipts"].as_array().unwrap();
    assert_eq!(
        answer["proven"].as_u64(),
        Some(receipts.len() as u64),
        "{answer}"
    );
    receipts
        .iter()
        .map(|r| {
            (
                r["event"]["type"].as_str().unwrap().to_owned(),
                r["event"]["secret"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn expected(namespace: &str) -> Vec<(String, String)> {
    let mut all = vec![
        ("secret-written".to_owned(), namespace.to_owned()),
        ("session-created".to_owned(), String::new()),
    ];
    all.extend((0..3).map(|_| ("release-granted".to_owned(), String::new())));
    all
}

fn unauthorized(result: Result<sms_client::audit::ReceiptsAnswer, ClientError>) {
    match result {
        Err(ClientError::Unexpected { status, .. }) => assert_eq!(status.as_u16(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
}

async fn sqlite(data_dir: &Path) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", data_dir.join("sms.db").display()))
        .await
        .unwrap()
}

/// `sms audit verify` against the server: Ok(summary) or Err(everything printed).
fn verify(env: &DevCli) -> Result<Value, String> {
    let run = env.run(&["audit", "verify", "--json"]);
    if run.code == 0 {
        Ok(run.json())
    } else {
        Err(format!("{}{}", run.stdout, run.stderr))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_verification_and_tampering_of_a_full_dev_task() {
    let server = server().await;
    let env = DevCli::new(&server);
    let owners = run_task(&env);
    wait_for_head(&server).await;

    // Each owner gets exactly the events of their own asset, all proven.
    for (wallet, namespace) in [
        (&owners.app_owner, "app-developer"),
        (&owners.dataset_owner, "web3"),
        (&owners.requester, "requester"),
    ] {
        let answer = env.ok(&["audit", "receipts", "--wallet-file", wallet, "--json"]);
        assert_eq!(receipt_kinds(&answer), expected(namespace), "{answer}");
        let text = answer.to_string();
        assert!(!text.contains(APP_SECRET) && !text.contains(REQUESTER_SECRET));
    }
    // The table: when, task, worker, measurement, outcome.
    let table = env.run(&["audit", "receipts", "--wallet-file", &owners.requester]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table.stdout.contains("WORKER") && table.stdout.contains("granted (release 1)"),
        "{}",
        table.stdout
    );

    // Impostor, stale, future and other-instance signatures: 401.
    let client = SmsClient::new(&env.url, &ClientOptions::default()).unwrap();
    let owner = sms_client::wallet::load(Path::new(&owners.app_owner), "dev").unwrap();
    let other = sms_client::wallet::load(Path::new(&env.wallet("workerpool")), "dev").unwrap();
    let instance = sms_core::hex::encode_prefixed(client.v2_domain().await.unwrap().instance);
    let owner_hex = sms_core::hex::encode_prefixed(owner.address());
    let t = now();
    let by_other = sign_eip191(&other, &receipts_digest(&owner_hex, &instance, t)).to_hex();
    unauthorized(
        client
            .audit_receipts_signed(owner.address(), t, by_other)
            .await,
    );
    let stale = t - 301;
    let sig = sign_receipts_request(&owner, &instance, stale);
    unauthorized(
        client
            .audit_receipts_signed(owner.address(), stale, sig)
            .await,
    );
    let future = t + 120;
    let sig = sign_receipts_request(&owner, &instance, future);
    unauthorized(
        client
            .audit_receipts_signed(owner.address(), future, sig)
            .await,
    );
    let elsewhere = sign_receipts_request(&owner, &format!("0x{}", "00".repeat(20)), t);
    unauthorized(
        client
            .audit_receipts_signed(owner.address(), t, elsewhere)
            .await,
    );
    // The same owner, fresh, for this instance: accepted.
    let sig = sign_receipts_request(&owner, &instance, t);
    assert!(
        client
            .audit_receipts_signed(owner.address(), t, sig)
            .await
            .is_ok()
    );

    // No value and no hash of a value anywhere in the export.
    env.ok(&["audit", "export", "--out", "audit.jsonl", "--json"]);
    let export = std::fs::read_to_string(env.home.path().join("audit.jsonl")).unwrap();
    assert!(export.lines().count() > 8, "{export}");
    for value in [APP_SECRET, REQUESTER_SECRET, owners.dataset_key.as_str()] {
        for needle in [
            value.to_owned(),
            hex(sms_core::hash::sha256(value.as_bytes()).as_slice()),
            hex(sms_core::hash::keccak_utf8(value).as_slice()),
        ] {
            assert!(!export.contains(&needle), "{needle} is in the export");
        }
    }

    // Verification passes, from the server and from the export.
    let summary = verify(&env).unwrap();
    let size = summary["summary"]["entries"].as_u64().unwrap();
    assert_eq!(summary["summary"]["signedSize"].as_u64(), Some(size));
    env.ok(&["audit", "verify", "--from", "audit.jsonl", "--json"]);

    let mut db = sqlite(&env.data_dir).await;
    let victim = 3i64;
    let (body,): (String,) = sqlx::query_as("SELECT body FROM audit_entries WHERE seq = $1")
        .bind(victim)
        .fetch_one(&mut db)
        .await
        .unwrap();

    // One byte of entry 3 changed: named.
    let mut edited = body.clone().into_bytes();
    edited[12] ^= 0x01;
    let edited = String::from_utf8(edited).unwrap();
    sqlx::query("UPDATE audit_entries SET body = $1 WHERE seq = $2")
        .bind(&edited)
        .bind(victim)
        .execute(&mut db)
        .await
        .unwrap();
    let failure = verify(&env).unwrap_err();
    assert!(failure.contains("entry 3:"), "{failure}");
    sqlx::query("UPDATE audit_entries SET body = $1 WHERE seq = $2")
        .bind(&body)
        .bind(victim)
        .execute(&mut db)
        .await
        .unwrap();
    verify(&env).unwrap();

    // Entry 3 deleted from the middle: named.
    let row: (i64, i64, Vec<u8>, Vec<u8>, String) =
        sqlx::query_as("SELECT seq, at, prev, hash, body FROM audit_entries WHERE seq = $1")
            .bind(victim)
            .fetch_one(&mut db)
            .await
            .unwrap();
    sqlx::query("DELETE FROM audit_entries WHERE seq = $1")
        .bind(victim)
        .execute(&mut db)
        .await
        .unwrap();
    let failure = verify(&env).unwrap_err();
    assert!(failure.contains("entry 3 is missing"), "{failure}");
    sqlx::query(
        "INSERT INTO audit_entries (seq, at, prev, hash, body) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(row.0)
    .bind(row.1)
    .bind(&row.2)
    .bind(&row.3)
    .bind(&row.4)
    .execute(&mut db)
    .await
    .unwrap();
    verify(&env).unwrap();

    // The last entry (under the signed head) cut: the head says more.
    sqlx::query("DELETE FROM audit_entries WHERE seq = $1")
        .bind(size as i64 - 1)
        .execute(&mut db)
        .await
        .unwrap();
    let failure = verify(&env).unwrap_err();
    assert!(failure.contains("truncated"), "{failure}");

    // An edited export line fails the same way.
    // (The body is a JSON string inside the line: its quotes are escaped.)
    let tampered = export.replacen(r#"\"action\":\"created\""#, r#"\"action\":\"updated\""#, 1);
    assert_ne!(tampered, export);
    std::fs::write(env.home.path().join("tampered.jsonl"), tampered).unwrap();
    let run = env.run(&["audit", "verify", "--from", "tampered.jsonl", "--json"]);
    assert_ne!(run.code, 0);
    assert!(run.stdout.contains("edited"), "{}", run.stdout);
}

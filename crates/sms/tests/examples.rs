//! The examples of `examples/` run end to end with `sms app run --dev` against an in-process
//! `--dev` server: expected output, no secret value in any file or output outside the enclave
//! workspace, and the workspace removed after the run. Also `sms demo`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use sms_testkit::server::{TestServer, files_under};

mod common;

use common::DevCli;

struct Env(DevCli);

impl std::ops::Deref for Env {
    type Target = DevCli;
    fn deref(&self) -> &DevCli {
        &self.0
    }
}

fn hex_digits(bytes: &[u8]) -> String {
    sms_core::hex::encode_prefixed(bytes)[2..].to_owned()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .canonicalize()
        .unwrap()
}

impl Env {
    fn new(server: &TestServer) -> Self {
        Self(DevCli::new(server))
    }

    /// Registers an app whose enclave runs `entrypoint`; the fingerprint is the source's sha256.
    fn deploy_app(&self, entrypoint: &str, source: &Path) -> String {
        let fingerprint = sms_core::hash::sha256(&std::fs::read(source).unwrap());
        self.deploy_scone_app(entrypoint, &hex_digits(fingerprint.as_slice()))
    }

    /// No file under the home directory (results, config, keys of the test) nor anything printed
    /// holds one of `secrets`; the workspace root is empty.
    fn assert_contained(&self, secrets: &[&str], except: &[&Path]) {
        let ws = self.home.path().join("ws");
        assert_eq!(
            std::fs::read_dir(&ws).unwrap().count(),
            0,
            "the task workspace was not removed"
        );
        for file in files_under(self.home.path()) {
            if except.iter().any(|e| file.starts_with(e)) {
                continue;
            }
            let bytes = std::fs::read(&file).unwrap();
            for secret in secrets {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret:?} found in {}",
                    file.display()
                );
            }
        }
        let printed = self.printed.borrow();
        for secret in secrets {
            assert!(!printed.contains(secret), "{secret:?} printed by the CLI");
        }
    }
}

fn result_text(report: &Value) -> String {
    report["result"].as_str().unwrap_or_default().to_owned()
}

fn requester_secrets(interpreter: &str, file: &str) -> (Env, Value) {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = server_rt.block_on(TestServer::dev());
    let env = Env::new(&server);
    let source = examples().join("requester-secrets").join(file);
    let app = env.deploy_app(&format!("{interpreter} {}", source.display()), &source);
    let (owner, requester) = (env.wallet("owner"), env.wallet("requester"));
    env.ok(&[
        "app",
        "push-secret",
        &app,
        "--secret-value",
        "1;1;1;1",
        "--wallet-file",
        &owner,
        "--json",
    ]);
    env.ok(&[
        "requester",
        "push-secret",
        "x1",
        "--secret-value",
        "2",
        "--wallet-file",
        &requester,
        "--json",
    ]);
    // A second requester secret the app does not use: delivered to the app enclave all the same.
    env.ok(&[
        "requester",
        "push-secret",
        "marker",
        "--secret-value",
        "requester-marker-5e1f0c",
        "--wallet-file",
        &requester,
        "--json",
    ]);
    let run = env.app_run(&app, &["--secret", "1=x1", "2=marker"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    // Big x: the other result of the tutorial, in a second run (a fresh deal and session).
    env.ok(&[
        "requester",
        "push-secret",
        "big",
        "--secret-value",
        "98765",
        "--wallet-file",
        &requester,
        "--json",
    ]);
    let big = env.app_run(&app, &["--secret", "1=big"]);
    assert_eq!(big.code, 0, "{}{}", big.stdout, big.stderr);
    let big: Value = serde_json::from_str(big.stdout.trim()).unwrap();
    assert_eq!(result_text(&big).trim(), "f(98765) = 963415438471116");
    drop(server);
    drop(server_rt);
    (env, report)
}

fn check_polynomial(env: &Env, report: &Value) {
    assert_eq!(report["ok"], true);
    assert_eq!(result_text(report).trim(), "f(2) = 15");
    assert_eq!(report["signatureVerified"], true);
    let stages: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["app", "post-compute"],
        "no pre-compute without dataset or input files"
    );
    let archive = PathBuf::from(report["resultArchive"].as_str().unwrap());
    assert!(
        archive.starts_with(env.home.path().canonicalize().unwrap().join("results")),
        "{}",
        archive.display()
    );
    let computed: Value =
        serde_json::from_slice(&std::fs::read(report["computedFile"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(computed["result-digest"], report["resultDigest"]);
    assert_eq!(computed["task-id"], report["taskId"]);
    env.assert_contained(&["1;1;1;1", "requester-marker-5e1f0c"], &[]);
}

#[test]
fn requester_secrets_javascript() {
    let (env, report) = requester_secrets("node", "js/app.js");
    check_polynomial(&env, &report);
}

#[test]
fn requester_secrets_python() {
    let (env, report) = requester_secrets("python3", "python/app.py");
    check_polynomial(&env, &report);
}

/// A counter endpoint like the tutorial's: `GET /hit/<namespace>/<key>` → `{"value": n}`.
fn counter_server(hits: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (status, body) = if path == "/hit/tutorial-ns-4d2a/secret-key-9b7c" {
                let n = hits.fetch_add(1, Ordering::SeqCst) + 1 + 41;
                ("200 OK", format!("{{\"value\":{n}}}"))
            } else {
                ("404 Not Found", "{}".to_owned())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
    });
    format!("http://{addr}")
}

async fn app_developer_secret(interpreter: &str, file: &str) {
    let server = TestServer::dev().await;
    let env = Env::new(&server);
    let hits = Arc::new(AtomicUsize::new(0));
    let endpoint = format!(
        "{}/hit/tutorial-ns-4d2a/secret-key-9b7c",
        counter_server(hits.clone())
    );
    let source = examples().join("app-developer-secret").join(file);
    let app = env.deploy_app(&format!("{interpreter} {}", source.display()), &source);
    let owner = env.wallet("owner");
    env.ok(&[
        "app",
        "push-secret",
        &app,
        "--secret-value",
        &endpoint,
        "--wallet-file",
        &owner,
        "--json",
    ]);
    let run = env.app_run(&app, &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(result_text(&report).trim(), "endpoint hit 42 times");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the app called the secret endpoint once"
    );
    env.assert_contained(&["tutorial-ns-4d2a/secret-key-9b7c"], &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn app_developer_secret_javascript() {
    app_developer_secret("node", "js/app.js").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn app_developer_secret_python() {
    app_developer_secret("python3", "python/app.py").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_dataset_python() {
    let server = TestServer::dev().await;
    let env = Env::new(&server);
    let home = env.home.path();
    let original = home.join("datasets/original");
    std::fs::create_dir_all(&original).unwrap();
    std::fs::write(original.join("sales.csv"), "name,amount,qty\nconfidential-row-a1,10,1\nconfidential-row-b2,32.5,3\nconfidential-row-c3,7.5,2\n")
        .unwrap();
    let encrypted = env.ok(&["dataset", "encrypt", "--json"]);
    let checksum = encrypted["encryptedFiles"][0]["checksum"]
        .as_str()
        .unwrap()
        .to_owned();
    let enc_file = home.join(
        encrypted["encryptedFiles"][0]["encrypted"]
            .as_str()
            .unwrap(),
    );
    let key = std::fs::read_to_string(home.join(".secrets/datasets/sales.csv.key")).unwrap();
    let owner_address = env.address("owner");
    let owner = env.wallet("owner");
    let url = format!("file://{}", enc_file.display());
    let dataset = env.ok(&[
        "dev",
        "dataset",
        "deploy",
        "--owner",
        &owner_address,
        "--multiaddr",
        &url,
        "--checksum",
        &checksum,
        "--json",
    ])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    env.ok(&[
        "dataset",
        "push-secret",
        &dataset,
        "--wallet-file",
        &owner,
        "--json",
    ]);
    let source = examples().join("encrypted-dataset/python/app.py");
    let app = env.deploy_app(&format!("python3 {}", source.display()), &source);

    let run = env.app_run(&app, &["--dataset", &dataset]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(
        result_text(&report),
        "rows: 3\ncolumns: name, amount, qty\nsum(amount): 50\nsum(qty): 6\n"
    );
    let stages: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["pre-compute", "app", "post-compute"]);

    // The same file registered with a wrong checksum: refused by pre-compute, before decryption.
    let bad = format!("0x{}", "ab".repeat(32));
    let wrong = env.ok(&[
        "dev",
        "dataset",
        "deploy",
        "--owner",
        &owner_address,
        "--multiaddr",
        &url,
        "--checksum",
        &bad,
        "--json",
    ])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    env.ok(&[
        "dataset",
        "push-secret",
        &wrong,
        "--wallet-file",
        &owner,
        "--json",
    ]);
    let failed = env.app_run(&app, &["--dataset", &wrong]);
    assert_eq!(failed.code, 1, "{}{}", failed.stdout, failed.stderr);
    let report: Value = serde_json::from_str(failed.stdout.trim()).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["stages"][0]["stage"], "pre-compute");
    assert_eq!(
        report["stages"][0]["cause"],
        "PRE_COMPUTE_INVALID_DATASET_CHECKSUM"
    );
    assert_eq!(
        report["stages"].as_array().unwrap().len(),
        1,
        "nothing runs after a failed stage"
    );

    // The plaintext and the key stay with their owner (datasets/original, .secrets) and the
    // enclave workspace.
    env.assert_contained(
        &["confidential-row-b2", key.trim()],
        &[&home.join("datasets/original"), &home.join(".secrets")],
    );
}

#[test]
fn demo_prints_f_of_2() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sms"))
        .args(["demo", "--json"])
        .env("HOME", home.path())
        .env_remove("SMS_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result_text(&report).trim(), "f(2) = 15");
    // The demo leaves nothing behind.
    let archive = PathBuf::from(report["resultArchive"].as_str().unwrap());
    assert!(!archive.exists());
    assert_eq!(files_under(home.path()).len(), 0);
}

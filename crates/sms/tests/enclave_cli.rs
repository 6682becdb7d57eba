//! `sms enclave run` against an in-process `--dev` server with simulated evidence: the child
//! sees the released environment, nothing of it lands on disk, refusals run nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use sms_core::stored_session::{StoredService, StoredSession};
use sms_core::tag::TeeFramework;
use sms_core::{Address, B256};
use sms_testkit::server::{TestServer, files_under};

const MEASUREMENT: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";
/// A harmless test value standing for a secret.
const TEST_VALUE: &str = "enclave-run-test-value-41b9";

async fn seed(server: &TestServer, id: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let env: BTreeMap<String, String> =
        [("SMS_TEST_SECRET", TEST_VALUE), ("IEXEC_TASK_ID", "0x01")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
    let session = StoredSession {
        session_id: id.into(),
        task_id: B256::repeat_byte(1),
        framework: TeeFramework::Gramine,
        worker: Address::repeat_byte(2),
        expires_at: now + 600,
        services: vec![StoredService {
            name: "app".into(),
            measurement: MEASUREMENT.into(),
            tdx: None,
            command: Some("echo from-session-command:$IEXEC_TASK_ID".into()),
            env,
        }],
    };
    assert!(
        sms_server::provision::store_session(&server.server().store, &session)
            .await
            .unwrap()
    );
}

async fn enclave_run(
    server: &TestServer,
    cwd: &Path,
    session: &str,
    measurement: &str,
    command: &[&str],
) -> std::process::Output {
    let url = server.url();
    let mut args = vec![
        "enclave",
        "run",
        "--sms-url",
        &url,
        "--session",
        session,
        "--service",
        "app",
        "--evidence",
        "simulated",
        "--measurement",
        measurement,
    ];
    if !command.is_empty() {
        args.push("--");
        args.extend_from_slice(command);
    }
    tokio::process::Command::new(env!("CARGO_BIN_EXE_sms"))
        .args(&args)
        .current_dir(cwd)
        .env_remove("SMS_TEST_SECRET")
        .output()
        .await
        .unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_child_sees_the_released_env_and_nothing_is_written() {
    let server = TestServer::dev().await;
    let cwd = tempfile::tempdir().unwrap();
    seed(&server, "enclave-ok").await;

    let out = enclave_run(
        &server,
        cwd.path(),
        "enclave-ok",
        MEASUREMENT,
        &["sh", "-c", "echo \"[$SMS_TEST_SECRET]\""],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout} {stderr}");
    assert_eq!(stdout.trim(), format!("[{TEST_VALUE}]"));
    // The launcher's own messages never carry the value.
    assert!(!stderr.contains(TEST_VALUE), "{stderr}");
    assert!(stderr.contains("2 variables released"), "{stderr}");

    // Nothing in the server's data dir, nor in the launcher's working directory.
    for file in files_under(&server.data_dir())
        .into_iter()
        .chain(files_under(cwd.path()))
    {
        assert!(
            !contains(&std::fs::read(&file).unwrap(), TEST_VALUE),
            "{}",
            file.display()
        );
    }
    assert!(files_under(cwd.path()).is_empty());

    // The limit (1) is reached: refused with its code, and the command does not run.
    let marker = cwd.path().join("ran");
    let out = enclave_run(
        &server,
        cwd.path(),
        "enclave-ok",
        MEASUREMENT,
        &["touch", marker.to_str().unwrap()],
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RELEASE_LIMIT_REACHED"));
    assert!(!marker.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_session_command_runs_without_one_and_a_wrong_measurement_runs_nothing() {
    let server = TestServer::dev().await;
    let cwd = tempfile::tempdir().unwrap();
    seed(&server, "enclave-cmd").await;
    seed(&server, "enclave-bad").await;

    let out = enclave_run(&server, cwd.path(), "enclave-cmd", MEASUREMENT, &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "from-session-command:0x01"
    );

    let marker = cwd.path().join("ran");
    let out = enclave_run(
        &server,
        cwd.path(),
        "enclave-bad",
        &"00".repeat(32),
        &["touch", marker.to_str().unwrap()],
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("MEASUREMENT_MISMATCH"), "{stderr}");
    assert!(!marker.exists());

    // Simulated evidence needs a measurement.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sms"))
        .args([
            "enclave",
            "run",
            "--sms-url",
            &server.url(),
            "--session",
            "enclave-bad",
            "--service",
            "app",
        ])
        .args(["--evidence", "simulated", "--", "true"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--measurement"));
}

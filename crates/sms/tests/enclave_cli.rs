//! `sms enclave run` against in-process `--dev` servers with simulated evidence: the child
//! sees the released environment, nothing of it lands on disk, refusals run nothing, and the
//! launcher trusts only its pinned SMS key and its own argv (an impostor SMS, a hostile
//! variable name, a command in the session: all refused or ignored, nothing executed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use sms_core::Address;
use sms_core::enclave_config::Measurement;
use sms_core::session_plan::EnclaveRole;
use sms_core::stored_session::{StoredService, StoredSession};
use sms_core::tag::TeeFramework;
use sms_testkit::server::{TestServer, files_under};

const MEASUREMENT: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";
/// A harmless test value standing for a secret.
const TEST_VALUE: &str = "enclave-run-test-value-41b9";

async fn seed(server: &TestServer, id: &str) {
    seed_env(
        server,
        id,
        &[("SMS_TEST_SECRET", TEST_VALUE), ("IEXEC_TASK_ID", "0x01")],
    )
    .await
}

/// A session with one `app` service releasing `env`, for an ACTIVE dev task of its own.
async fn seed_env(server: &TestServer, id: &str, env: &[(&str, &str)]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let task_id = sms_core::hash::keccak_concat(&[b"enclave-cli", id.as_bytes()]);
    server.active_dev_task(task_id, now + 86_400);
    let session = StoredSession {
        session_id: id.into(),
        task_id,
        framework: TeeFramework::Gramine,
        worker: Address::repeat_byte(2),
        expires_at: now + 600,
        services: vec![StoredService {
            role: EnclaveRole::App,
            measurement: Measurement::from_hex(MEASUREMENT).unwrap(),
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

/// The key `server` signs with, as a launcher pins it.
fn pinned(server: &TestServer) -> String {
    server.server().identity.public_key.clone()
}

async fn enclave_run(
    server: &TestServer,
    cwd: &Path,
    session: &str,
    measurement: &str,
    command: &[&str],
) -> std::process::Output {
    enclave_run_pinned(server, &pinned(server), cwd, session, measurement, command).await
}

/// `sms enclave run` against `server`, pinning `key`.
async fn enclave_run_pinned(
    server: &TestServer,
    key: &str,
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
        "--sms-public-key",
        key,
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
async fn the_session_command_is_ignored_and_a_wrong_measurement_runs_nothing() {
    let server = TestServer::dev().await;
    let cwd = tempfile::tempdir().unwrap();
    seed(&server, "enclave-cmd").await;
    seed(&server, "enclave-bad").await;

    // The session carries a command; the launcher runs its own argv, never that one.
    let out = enclave_run(
        &server,
        cwd.path(),
        "enclave-cmd",
        MEASUREMENT,
        &["echo", "from-argv"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from-argv");

    // Without a command after `--` there is nothing to run: a usage error, nothing released.
    let out = enclave_run(&server, cwd.path(), "enclave-bad", MEASUREMENT, &[]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("COMMAND"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
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
            "--sms-public-key",
            &pinned(&server),
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

/// The host points a genuine enclave at its own, real SMS (its own identity) that holds a
/// session with the same id and would release what it likes: the launcher, pinned to the
/// first SMS, refuses the answer and runs nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_impostor_sms_is_refused_and_nothing_runs() {
    let genuine = TestServer::dev().await;
    let impostor = TestServer::dev().await;
    assert_ne!(pinned(&genuine), pinned(&impostor));
    seed(&genuine, "enclave-shared").await;
    seed(&impostor, "enclave-shared").await;
    let cwd = tempfile::tempdir().unwrap();
    let marker = cwd.path().join("ran");
    let out = enclave_run_pinned(
        &impostor,
        &pinned(&genuine),
        cwd.path(),
        "enclave-shared",
        MEASUREMENT,
        &["touch", marker.to_str().unwrap()],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("not by the pinned SMS key"), "{stderr}");
    assert!(!stderr.contains(TEST_VALUE), "{stderr}");
    assert!(!marker.exists(), "the impostor's answer ran the command");

    // Pinned to the right SMS, the same launcher works against it.
    let out = enclave_run(
        &genuine,
        cwd.path(),
        "enclave-shared",
        MEASUREMENT,
        &["touch", marker.to_str().unwrap()],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(marker.exists());
}

/// A session that would set LD_PRELOAD (or PATH, or a lowercase name): the launcher refuses
/// the whole answer before executing anything.
#[tokio::test(flavor = "multi_thread")]
async fn a_forbidden_variable_name_refuses_the_whole_answer() {
    let server = TestServer::dev().await;
    let cwd = tempfile::tempdir().unwrap();
    for (i, name) in ["LD_PRELOAD", "PATH", "BASH_ENV", "lower_case"]
        .into_iter()
        .enumerate()
    {
        let id = format!("enclave-name-{i}");
        seed_env(
            &server,
            &id,
            &[("IEXEC_TASK_ID", "0x01"), (name, "/tmp/evil.so")],
        )
        .await;
        let marker = cwd.path().join(format!("ran-{i}"));
        let out = enclave_run(
            &server,
            cwd.path(),
            &id,
            MEASUREMENT,
            &["touch", marker.to_str().unwrap()],
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: {stderr}");
        assert!(stderr.contains(&format!("'{name}'")), "{stderr}");
        assert!(!marker.exists(), "{name}: the command ran");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_pinned_key_the_launcher_does_not_start() {
    let server = TestServer::dev().await;
    seed(&server, "enclave-unpinned").await;
    let cwd = tempfile::tempdir().unwrap();
    let marker = cwd.path().join("ran");
    let run = |extra: Vec<String>| {
        let url = server.url();
        let marker = marker.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_sms"))
                .args([
                    "enclave",
                    "run",
                    "--sms-url",
                    &url,
                    "--session",
                    "enclave-unpinned",
                ])
                .args([
                    "--service",
                    "app",
                    "--evidence",
                    "simulated",
                    "--measurement",
                    MEASUREMENT,
                ])
                .args(extra)
                .args(["--", "touch", marker.to_str().unwrap()])
                .output()
                .await
                .unwrap()
        }
    };
    let out = run(vec![]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--sms-public-key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(vec!["--sms-public-key".into(), "AAAA".into()]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("32 bytes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!marker.exists());

    // A key file holding the identity document works too.
    let file = cwd.path().join("sms-key.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&server.server().identity).unwrap(),
    )
    .unwrap();
    let out = run(vec![
        "--sms-public-key-file".into(),
        file.display().to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(marker.exists());
}

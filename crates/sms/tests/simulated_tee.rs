//! `sms server` next to a chain (local anvil with the real PoCo contracts, sms-testkit):
//! simulated TEE evidence only with `--dangerous-allow-simulated-tee`, the removed
//! `--allow-simulated-tee` / `SMS_ALLOW_SIMULATED_TEE` refused at start-up, and a server that
//! accepts simulated evidence saying so in `/version`, `/metrics` and the `/tee/*` headers.
//! Needs `tools/chain/setup.sh` to have run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sms_testkit::chain::LocalChain;

const HEADER: &str = "x-sms-simulated-tee";

/// `sms server` (not `--dev`) reading `chain`, on a free loopback port, with `extra` flags and
/// environment.
fn server_command(chain: &LocalChain, data_dir: &std::path::Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sms"));
    cmd.args([
        "--json",
        "server",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir.display().to_string(),
        "--chain-rpc",
        chain.rpc_url(),
        "--hub",
        &chain.hub().to_string(),
        "--chain-id",
        &chain.chain_id().to_string(),
    ])
    .args(extra)
    .env_remove("SMS_ALLOW_SIMULATED_TEE")
    .env_remove("SMS_DANGEROUS_ALLOW_SIMULATED_TEE")
    .env_remove("SMS_DEV")
    .env("SMS_LOG", "warn");
    cmd
}

struct Running {
    child: Child,
    url: String,
    start_up: Value,
    /// The start-up log (stderr), read until the JSON line appeared on stdout.
    log: std::sync::mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server and waits for its start-up line (`--json`: one object with `url`).
fn start(mut cmd: Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let start_up: Value = serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("no start-up line ({e}): {line:?}"));
    let url = start_up["url"].as_str().unwrap().to_owned();
    Running {
        child,
        url,
        start_up,
        log,
    }
}

/// Runs a server that must refuse to start; its exit code and everything it printed.
fn refused(mut cmd: Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn removed_flag_and_env_var_refuse_to_start_and_name_the_new_flag() {
    let chain = LocalChain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, Command); 4] = [
        (
            "flag",
            server_command(&chain, dir.path(), &["--allow-simulated-tee"]),
        ),
        (
            "flag=true",
            server_command(&chain, dir.path(), &["--allow-simulated-tee=true"]),
        ),
        // Even the value that refused simulated evidence: the setting must be rewritten.
        (
            "flag=false",
            server_command(&chain, dir.path(), &["--allow-simulated-tee=false"]),
        ),
        ("env", {
            let mut cmd = server_command(&chain, dir.path(), &[]);
            cmd.env("SMS_ALLOW_SIMULATED_TEE", "true");
            cmd
        }),
    ];
    for (case, cmd) in cases {
        let (code, text) = refused(cmd);
        assert_ne!(code, 0, "{case}: {text}");
        assert!(
            text.contains("--dangerous-allow-simulated-tee")
                && text.contains("SMS_DANGEROUS_ALLOW_SIMULATED_TEE"),
            "{case}: {text}"
        );
        assert!(text.contains("no longer accepted"), "{case}: {text}");
    }
    // Nothing was started: no master key, no database.
    assert!(!dir.path().join("master.key").exists());
}

async fn get(url: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{url}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
}

async fn post(url: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
}

/// What a server says about simulated evidence: `/version`, the gauge, and the header of three
/// `/tee/*` answers (a provisioning refusal, an unserved route, an unknown path).
async fn observe(url: &str) -> (Value, String, [Option<String>; 3], Option<String>) {
    let version: Value = get(url, "/version").await.json().await.unwrap();
    let metrics = get(url, "/metrics").await.text().await.unwrap();
    let gauge = metrics
        .lines()
        .find(|l| l.starts_with("sms_simulated_tee_enabled "))
        .unwrap_or_else(|| panic!("no gauge in:\n{metrics}"))
        .to_owned();
    let header = |r: &reqwest::Response| {
        r.headers()
            .get(HEADER)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let nonce = post(url, "/tee/provisioning/no-such-session/app/nonce").await;
    assert_eq!(nonce.status(), 404);
    let tee = [
        header(&nonce),
        header(&get(url, "/tee/framework").await),
        header(&get(url, "/tee/no/such/path").await),
    ];
    let health = header(&get(url, "/health").await);
    (version, gauge, tee, health)
}

#[tokio::test(flavor = "multi_thread")]
async fn dangerous_flag_next_to_a_chain_shows_everywhere() {
    let chain = LocalChain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(server_command(
        &chain,
        dir.path(),
        &["--dangerous-allow-simulated-tee"],
    ));
    assert_eq!(server.start_up["simulatedTee"], true);
    let (version, gauge, tee, health) = observe(&server.url).await;
    assert_eq!(version["simulatedTee"], true, "{version}");
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(gauge, "sms_simulated_tee_enabled 1");
    assert_eq!(
        tee,
        [
            Some("true".to_owned()),
            Some("true".to_owned()),
            Some("true".to_owned())
        ]
    );
    assert_eq!(health, None, "only /tee/* answers carry the header");
    // The start-up warning.
    let log: Vec<String> = server.log.try_iter().collect();
    assert!(
        log.iter()
            .any(|l| l.contains("SIMULATED TEE EVIDENCE IS ACCEPTED")),
        "{log:?}"
    );
    drop(server);

    // Its environment variable does the same.
    let mut cmd = server_command(&chain, dir.path(), &[]);
    cmd.env("SMS_DANGEROUS_ALLOW_SIMULATED_TEE", "true");
    let server = start(cmd);
    let (version, gauge, ..) = observe(&server.url).await;
    assert_eq!(
        (version["simulatedTee"].clone(), gauge.as_str()),
        (Value::Bool(true), "sms_simulated_tee_enabled 1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_flag_next_to_a_chain_nothing_is_simulated() {
    let chain = LocalChain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(server_command(&chain, dir.path(), &[]));
    assert_eq!(server.start_up["simulatedTee"], false);
    let (version, gauge, tee, _) = observe(&server.url).await;
    assert_eq!(version["simulatedTee"], false, "{version}");
    assert_eq!(gauge, "sms_simulated_tee_enabled 0");
    assert_eq!(tee, [None, None, None]);
}

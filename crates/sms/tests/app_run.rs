//! `sms app run --dev` and `sms worker run` beyond the examples: encrypted results, input files,
//! stage-by-stage failure causes, running an existing task.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use serde_json::{Value, json};
use sms_testkit::server::TestServer;

mod common;

use common::DevCli;

struct Env(DevCli);

impl std::ops::Deref for Env {
    type Target = DevCli;
    fn deref(&self) -> &DevCli {
        &self.0
    }
}

impl Env {
    async fn new() -> (TestServer, Self) {
        let server = TestServer::dev().await;
        let env = Self(DevCli::new(&server));
        (server, env)
    }

    fn deploy_app(&self, entrypoint: &str) -> String {
        self.deploy_scone_app(entrypoint, &"11".repeat(32))
    }

    fn workspaces_left(&self) -> usize {
        std::fs::read_dir(self.home.path().join("ws"))
            .unwrap()
            .count()
    }
}

/// An app (shell) listing what it received: the input files and its arguments.
const LISTING_APP: &str = r#"for f in "$IEXEC_IN"/*; do [ -f "$f" ] && printf '%s %s\n' "$(basename "$f")" "$(cat "$f")"; done > "$IEXEC_OUT/result.txt"
printf 'args: %s\n' "$*" >> "$IEXEC_OUT/result.txt"
printf '{"deterministic-output-path":"%s/result.txt"}' "$IEXEC_OUT" > "$IEXEC_OUT/computed.json"
"#;

fn http_server(body: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn input_files_args_and_encrypted_result() {
    let (_server, env) = Env::new().await;
    let dir = env.home.path();
    let script = dir.join("listing.sh");
    std::fs::write(&script, LISTING_APP).unwrap();
    let app = env.deploy_app(&format!("sh {}", script.display()));
    let url = format!("{}/input.txt", http_server(b"downloaded input"));

    // Beneficiary key: generate, push.
    let requester = env.wallet("requester");
    env.ok(&[
        "result",
        "generate-encryption-keypair",
        "--wallet-file",
        &requester,
        "--bits",
        "2048",
        "--json",
    ]);
    env.ok(&[
        "result",
        "push-encryption-key",
        "--wallet-file",
        &requester,
        "--json",
    ]);

    let run = env.app_run(
        &app,
        &[
            "--input-files",
            &url,
            "--args",
            "alpha beta",
            "--encrypt-result",
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["encrypted"], true);
    assert_eq!(report["signatureVerified"], true);
    assert!(
        report.get("result").is_none(),
        "an encrypted result is not shown"
    );
    let stages: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["pre-compute", "app", "post-compute"]);
    assert_eq!(env.workspaces_left(), 0);

    let archive = report["resultArchive"].as_str().unwrap();
    env.ok(&[
        "result",
        "decrypt",
        archive,
        "--wallet-file",
        &requester,
        "--out",
        "plain.zip",
        "--json",
    ]);
    let mut zip =
        zip::ZipArchive::new(std::fs::File::open(dir.join("plain.zip")).unwrap()).unwrap();
    let mut text = String::new();
    zip.by_name("result.txt")
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let name = sms_worker::pre_compute::input_file_name(&url);
    assert_eq!(text, format!("{name} downloaded input\nargs: alpha beta\n"));
}

/// The requester's args are argv words, never shell: an injection attempt reaches the app as
/// literal words and the app developer secret stays out of the requester's result.
#[tokio::test(flavor = "multi_thread")]
async fn requester_args_cannot_inject_shell_into_the_app() {
    let (_server, env) = Env::new().await;
    let dir = env.home.path();
    let script = dir.join("listing.sh");
    std::fs::write(&script, LISTING_APP).unwrap();
    let app = env.deploy_app(&format!("sh {}", script.display()));
    const APP_SECRET: &str = "app-secret-never-in-results-5d1c";
    let owner = env.wallet("owner");
    env.ok(&[
        "app",
        "push-secret",
        &app,
        "--secret-value",
        APP_SECRET,
        "--wallet-file",
        &owner,
        "--json",
    ]);
    let hostile = "; echo $IEXEC_APP_DEVELOPER_SECRET > $IEXEC_OUT/leak";
    let run = env.app_run(&app, &["--args", hostile]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(
        report["result"],
        "args: ; echo $IEXEC_APP_DEVELOPER_SECRET > $IEXEC_OUT/leak\n"
    );
    let archive = report["resultArchive"].as_str().unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(archive).unwrap()).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    assert!(!names.iter().any(|n| n.contains("leak")), "{names:?}");
    for name in names {
        let mut bytes = Vec::new();
        zip.by_name(&name).unwrap().read_to_end(&mut bytes).unwrap();
        assert!(
            !bytes
                .windows(APP_SECRET.len())
                .any(|w| w == APP_SECRET.as_bytes()),
            "{name} holds the app secret"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stage_failures_name_their_cause() {
    let (_server, env) = Env::new().await;
    let dir = env.home.path();

    // The app fails.
    let failing = env.deploy_app("false");
    let run = env.app_run(&failing, &[]);
    assert_eq!(run.code, 1);
    let report = run.json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["stages"][0]["stage"], "app");
    assert_eq!(report["stages"][0]["cause"], "APP_COMPUTE_FAILED");
    assert_eq!(report["cause"], "app: APP_COMPUTE_FAILED");
    assert_eq!(env.workspaces_left(), 0);

    // The app writes no computed.json: post-compute's cause.
    let silent = env.deploy_app("true");
    let report = env.app_run(&silent, &[]).json();
    assert_eq!(report["stages"][1]["stage"], "post-compute");
    assert_eq!(
        report["stages"][1]["cause"],
        "POST_COMPUTE_COMPUTED_FILE_NOT_FOUND"
    );

    // A dataset whose key in the SMS is not its key: decryption fails after the checksum passed.
    std::fs::write(dir.join("data.txt"), "some data").unwrap();
    let enc = env.ok(&["dataset", "encrypt", "data.txt", "--json"]);
    let checksum = enc["encryptedFiles"][0]["checksum"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = dir.join(enc["encryptedFiles"][0]["encrypted"].as_str().unwrap());
    let owner = env.address("owner");
    let dataset = env.ok(&[
        "dev",
        "dataset",
        "deploy",
        "--owner",
        &owner,
        "--multiaddr",
        &file.display().to_string(),
        "--checksum",
        &checksum,
        "--json",
    ])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_key = dir.join("other.key");
    std::fs::write(&other_key, "ERERERERERERERERERERERERERERERERERERERERERE=").unwrap();
    let owner_wallet = env.wallet("owner");
    env.ok(&[
        "dataset",
        "push-secret",
        &dataset,
        "--secret-path",
        &other_key.display().to_string(),
        "--wallet-file",
        &owner_wallet,
        "--json",
    ]);
    let app = env.deploy_app("true");
    let report = env.app_run(&app, &["--dataset", &dataset]).json();
    assert_eq!(report["stages"][0]["stage"], "pre-compute");
    assert_eq!(
        report["stages"][0]["cause"],
        "PRE_COMPUTE_DATASET_DECRYPTION_FAILED"
    );

    // Result encryption without a beneficiary key: the session is refused.
    let report = env.app_run(&app, &["--encrypt-result"]).json();
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["stages"][0]["cause"],
        "TEE_SESSION_GENERATION_POST_COMPUTE_GET_ENCRYPTION_TOKENS_FAILED_EMPTY_BENEFICIARY_KEY"
    );
    assert_eq!(env.workspaces_left(), 0);

    // A stage over its time limit is ended, with its children.
    let slow = env.deploy_app("sleep 30");
    let started = std::time::Instant::now();
    let report = env.app_run(&slow, &["--stage-timeout", "1"]).json();
    assert_eq!(report["stages"][0]["cause"], "APP_COMPUTE_TIMEOUT");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(env.workspaces_left(), 0);

    // --show-logs prints the stages' output.
    let talking = env.deploy_app("echo hello-from-the-app");
    let run = env.app_run(&talking, &["--show-logs"]);
    assert!(
        run.stderr.contains("[app] hello-from-the-app"),
        "{}",
        run.stderr
    );
    let quiet = env.app_run(&talking, &[]);
    assert!(
        !quiet.stderr.contains("hello-from-the-app")
            && !quiet.stdout.contains("hello-from-the-app")
    );

    // Without --dev against this dev server the run proceeds, and against a server that is
    // not dev it is refused with a pointer to `sms worker run`: tests/cli_storage.rs.
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_runs_an_existing_task() {
    let (_server, env) = Env::new().await;
    let dir = env.home.path();
    let script = dir.join("listing.sh");
    std::fs::write(&script, LISTING_APP).unwrap();
    let app = env.deploy_app(&format!("sh {}", script.display()));
    // A first run creates the dev workerpool (remembered in the config dir).
    let first = env.app_run(&app, &[]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let pool_file: Value = serde_json::from_slice(
        &std::fs::read(dir.join(".config/sms/dev-workerpool.json")).unwrap(),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(".config/sms/dev-workerpool.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pool = pool_file["workerpools"][env.url.trim_end_matches('/')]
        .as_str()
        .unwrap()
        .to_owned();

    let requester = env.address("requester");
    let deal = env.ok(&[
        "dev",
        "deal",
        "create",
        "--app",
        &app,
        "--workerpool",
        &pool,
        "--requester",
        &requester,
        "--params",
        r#"{"iexec_args":"from the deal"}"#,
        "--volume",
        "2",
        "--json",
    ]);
    let task = deal["taskIds"][1].as_str().unwrap();
    let report = env.ok(&["worker", "run", "--task", task, "--json"]);
    assert_eq!(report["taskId"], task);
    assert_eq!(report["result"], "args: from the deal\n");
    assert!(Path::new(report["resultArchive"].as_str().unwrap()).is_file());
    // The same task again: one task, one session, one release budget. The repeated session
    // request answers the same session, whose environments were released already.
    let again = env.run(&["worker", "run", "--task", task, "--json"]);
    assert_ne!(again.code, 0);
    let again: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again["ok"], false);
    assert!(
        again["cause"]
            .as_str()
            .unwrap()
            .contains("RELEASE_LIMIT_REACHED"),
        "{again}"
    );
    let missing = env.run(&[
        "worker",
        "run",
        "--task",
        &format!("0x{}", "12".repeat(32)),
        "--json",
    ]);
    assert_ne!(missing.code, 0);

    // A remembered workerpool the server does not know (a new dev server at the same URL) is
    // deployed again.
    let file = dir.join(".config/sms/dev-workerpool.json");
    let stale_pool = json!(format!("0x{}", "34".repeat(20)));
    let mut stale: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    stale["workerpools"][env.url.trim_end_matches('/')] = stale_pool.clone();
    std::fs::write(&file, stale.to_string()).unwrap();
    let run = env.app_run(&app, &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let fresh: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_ne!(
        fresh["workerpools"][env.url.trim_end_matches('/')],
        stale_pool
    );
}

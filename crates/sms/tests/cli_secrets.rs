//! The `sms` binary against an in-process `--dev` server: wallets, every push/check command,
//! the dev ledger commands, `--json` output and error exits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sms_testkit::server::TestServer;

struct Cli {
    url: String,
    home: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Cli {
    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_sms"))
            .args(args)
            .env("SMS_URL", &self.url)
            .env("HOME", self.home.path())
            .env_remove("SMS_WALLET_FILE")
            .env_remove("SMS_WALLET_PASSWORD")
            .current_dir(self.home.path())
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> Value {
        let run = self.run(args);
        assert_eq!(
            run.code, 0,
            "sms {args:?} failed: {}{}",
            run.stdout, run.stderr
        );
        run.json()
    }

    fn wallet(&self, name: &str) -> String {
        self.home.path().join(name).display().to_string()
    }
}

fn signed<'a>(wallet: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(["--wallet-file", wallet, "--password", "pw", "--json"]);
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_commands_round_trip() {
    let server = TestServer::dev().await;
    let cli = Cli {
        url: server.url(),
        home: tempfile::tempdir().unwrap(),
    };
    let (dev_w, req_w, other_w) = (
        cli.wallet("dev.json"),
        cli.wallet("requester.json"),
        cli.wallet("other.json"),
    );

    // Wallets: create, show, import; never overwrite.
    let created = cli.ok(&[
        "wallet",
        "create",
        "--wallet-file",
        &dev_w,
        "--password",
        "pw",
        "--json",
    ]);
    let dev = created["address"].as_str().unwrap().to_owned();
    assert_eq!(
        cli.ok(&[
            "wallet",
            "show",
            "--wallet-file",
            &dev_w,
            "--password",
            "pw",
            "--json"
        ])["address"],
        dev.as_str()
    );
    let again = cli.run(&[
        "wallet",
        "create",
        "--wallet-file",
        &dev_w,
        "--password",
        "pw",
    ]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    let wrong = cli.run(&[
        "wallet",
        "show",
        "--wallet-file",
        &dev_w,
        "--password",
        "nope",
    ]);
    assert!(wrong.stderr.contains("wrong password"), "{}", wrong.stderr);
    let imported = cli.ok(&[
        "wallet",
        "import",
        "0x564a9db84969c8159f7aa3d5393c5ecd014fce6a375842a45b12af6677b12407",
        "--wallet-file",
        &req_w,
        "--password",
        "pw",
        "--json",
    ]);
    assert_eq!(
        imported["address"],
        "0x7bd4783FDCAD405A28052a0d1f11236A741da593"
    );
    cli.ok(&[
        "wallet",
        "create",
        "--wallet-file",
        &other_w,
        "--password",
        "pw",
        "--json",
    ]);

    // App developer secret, owned on the dev ledger.
    let app = cli.ok(&["dev", "app", "deploy", "--owner", &dev, "--json"])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        cli.ok(&["app", "check-secret", &app, "--json"])["isSecretSet"],
        false
    );
    assert_eq!(
        cli.ok(&signed(
            &dev_w,
            &["app", "push-secret", &app, "--secret-value", "1;1;1;1"]
        ))["isPushed"],
        true
    );
    assert_eq!(
        cli.ok(&["app", "check-secret", &app, "--json"])["isSecretSet"],
        true
    );
    let dup = cli.run(&signed(
        &dev_w,
        &["app", "push-secret", &app, "--secret-value", "1;1;1;1"],
    ));
    assert_ne!(dup.code, 0);
    assert!(
        dup.json()["error"]
            .as_str()
            .unwrap()
            .contains("Secret already exists"),
        "{}",
        dup.stdout
    );
    let app2 = cli.ok(&["dev", "app", "deploy", "--owner", &dev, "--json"])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let stranger = cli.run(&signed(
        &other_w,
        &["app", "push-secret", &app2, "--secret-value", "x"],
    ));
    assert!(
        stranger.json()["error"]
            .as_str()
            .unwrap()
            .contains("is not allowed to set secret"),
        "{}",
        stranger.stdout
    );

    // Transfer app2 to the other wallet: the old owner is refused, the new one accepted.
    let other = cli.ok(&[
        "wallet",
        "show",
        "--wallet-file",
        &other_w,
        "--password",
        "pw",
        "--json",
    ])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    cli.ok(&["dev", "transfer", &app2, "--to", &other, "--json"]);
    assert_ne!(
        cli.run(&signed(
            &dev_w,
            &["app", "push-secret", &app2, "--secret-value", "x"]
        ))
        .code,
        0
    );
    cli.ok(&signed(
        &other_w,
        &["app", "push-secret", &app2, "--secret-value", "x"],
    ));

    // Requester secrets; check defaults to the wallet's address.
    cli.ok(&signed(
        &req_w,
        &["requester", "push-secret", "x1", "--secret-value", "2"],
    ));
    let check = cli.ok(&[
        "requester",
        "check-secret",
        "x1",
        "--wallet-file",
        &req_w,
        "--json",
    ]);
    assert_eq!(check["isSecretSet"], true);
    let by_address = cli.ok(&[
        "requester",
        "check-secret",
        "X1",
        "0x7bd4783FDCAD405A28052a0d1f11236A741da593",
        "--json",
    ]);
    assert_eq!(
        by_address["isSecretSet"], false,
        "requester names are case-sensitive"
    );
    let bad_name = cli.run(&signed(
        &req_w,
        &[
            "requester",
            "push-secret",
            "bad:name",
            "--secret-value",
            "2",
        ],
    ));
    assert_ne!(bad_name.code, 0);

    // Secret value from standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sms"))
        .args(signed(&req_w, &["requester", "push-secret", "from-stdin"]))
        .env("SMS_URL", &cli.url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped-value\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());

    // Dataset key from a key file.
    let dataset = cli.ok(&["dev", "dataset", "deploy", "--owner", &dev, "--json"])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_file = cli.home.path().join("dataset.key");
    std::fs::write(&key_file, "ubA6H9emVPJT91/flYAmnKHC0phSV3cfuqsLxQfgow0=\n").unwrap();
    let key_path = key_file.display().to_string();
    assert_eq!(
        cli.ok(&["dataset", "check-secret", &dataset, "--json"])["isSecretSet"],
        false
    );
    cli.ok(&signed(
        &dev_w,
        &[
            "dataset",
            "push-secret",
            &dataset,
            "--secret-path",
            &key_path,
        ],
    ));
    assert_eq!(
        cli.ok(&["dataset", "check-secret", &dataset, "--json"])["isSecretSet"],
        true
    );
    std::fs::write(&key_file, "not a key").unwrap();
    assert_ne!(
        cli.run(&signed(
            &dev_w,
            &[
                "dataset",
                "push-secret",
                &dataset,
                "--secret-path",
                &key_path
            ]
        ))
        .code,
        0
    );

    // Result encryption key: push, refuse without --force-update, update with it.
    let pem =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../sms-worker/tests/fixtures/result_archive");
    let public = std::fs::read_dir(&pem)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            std::fs::read_to_string(p)
                .map(|t| t.contains("BEGIN PUBLIC KEY"))
                .unwrap_or(false)
        });
    let public = public
        .expect("a public key PEM in the result archive fixture")
        .display()
        .to_string();
    assert_eq!(
        cli.ok(&[
            "result",
            "check-encryption-key",
            "--wallet-file",
            &req_w,
            "--json"
        ])["isSecretSet"],
        false
    );
    let pushed = cli.ok(&signed(
        &req_w,
        &["result", "push-encryption-key", "--secret-path", &public],
    ));
    assert_eq!(
        (pushed["isPushed"].as_bool(), pushed["isUpdated"].as_bool()),
        (Some(true), Some(false))
    );
    let refused = cli.run(&signed(
        &req_w,
        &["result", "push-encryption-key", "--secret-path", &public],
    ));
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("--force-update")
    );
    let updated = cli.ok(&signed(
        &req_w,
        &[
            "result",
            "push-encryption-key",
            "--force-update",
            "--secret-path",
            &public,
        ],
    ));
    assert_eq!(updated["isUpdated"], true);
    assert_eq!(
        cli.ok(&[
            "result",
            "check-encryption-key",
            "0x7bd4783FDCAD405A28052a0d1f11236A741da593",
            "--json"
        ])["isSecretSet"],
        true
    );

    // Human-readable errors: one line on stderr, non-zero exit.
    let bad = cli.run(&["app", "check-secret", "0x123"]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.starts_with("Error: ") && bad.stderr.trim().lines().count() == 1,
        "{}",
        bad.stderr
    );
    let down = Cli {
        url: "http://127.0.0.1:9".into(),
        home: tempfile::tempdir().unwrap(),
    };
    let run = down.run(&["app", "check-secret", &app]);
    assert!(
        run.stderr.contains("failed with a network error"),
        "{}",
        run.stderr
    );
}

#[test]
fn help_teaches_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_sms"))
        .args(["server", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "SMS_LISTEN",
        "--data-dir",
        "--database-url",
        "--max-secret-bytes",
        "--tls-cert",
        "--insecure-http",
        "--dev",
    ] {
        assert!(help.contains(flag), "sms server --help lacks {flag}");
    }
}

/// `sms secret put|show|list|delete` (secrets API v2): create-only by default, check-and-set
/// with --expected-version, a conflict that names the flag to pass, lists without values.
#[tokio::test(flavor = "multi_thread")]
async fn secret_v2_commands() {
    let server = TestServer::dev().await;
    let cli = Cli {
        url: server.url(),
        home: tempfile::tempdir().unwrap(),
    };
    let w = cli.wallet("owner.json");
    let me = cli.ok(&signed(&w, &["wallet", "create"]))["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = cli.ok(&signed(
        &w,
        &[
            "secret",
            "put",
            "requester",
            "api-key",
            "--value",
            "first-value",
        ],
    ));
    assert_eq!(put["version"], 1);
    assert_eq!(put["name"], "api-key");
    assert_eq!(
        put["owner"].as_str().unwrap().to_lowercase(),
        me.to_lowercase()
    );

    // Without --expected-version an existing secret is not overwritten; the error says how.
    let refused = cli.run(&[
        "secret",
        "put",
        "requester",
        "api-key",
        "--value",
        "x",
        "--wallet-file",
        &w,
        "--password",
        "pw",
    ]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("VERSION_CONFLICT")
            && refused.stderr.contains("--expected-version 1"),
        "{}",
        refused.stderr
    );
    let replaced = cli.ok(&signed(
        &w,
        &[
            "secret",
            "put",
            "requester",
            "api-key",
            "--value",
            "second",
            "--expected-version",
            "1",
        ],
    ));
    assert_eq!(replaced["version"], 2);
    // The value can come from standard input.
    let piped = Command::new(env!("CARGO_BIN_EXE_sms"))
        .args(signed(&w, &["secret", "put", "web2", "token"]))
        .env("SMS_URL", &cli.url)
        .env("HOME", cli.home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"web2-value\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(piped.status.success());

    let shown = cli.ok(&signed(&w, &["secret", "show", "requester", "api-key"]));
    assert_eq!(shown["version"], 2);
    let listed = cli.ok(&signed(&w, &["secret", "list"]));
    let names: Vec<&str> = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api-key", "token"]);
    let text = listed.to_string();
    assert!(!text.contains("second") && !text.contains("web2-value"));
    let human = cli.run(&["secret", "list", "--wallet-file", &w, "--password", "pw"]);
    assert!(
        human.stdout.contains("api-key") && human.stdout.contains("VERSION"),
        "{}",
        human.stdout
    );

    let deleted = cli.ok(&signed(
        &w,
        &[
            "secret",
            "delete",
            "requester",
            "api-key",
            "--expected-version",
            "2",
        ],
    ));
    assert_eq!(deleted["version"], 3);
    let gone = cli.run(&[
        "secret",
        "show",
        "requester",
        "api-key",
        "--wallet-file",
        &w,
        "--password",
        "pw",
        "--json",
    ]);
    assert_ne!(gone.code, 0);
    assert!(gone.json()["error"].as_str().unwrap().contains("NOT_FOUND"));
    // A bad address is a CLI error before any request.
    let bad = cli.run(&[
        "secret",
        "list",
        "app",
        "0x123",
        "--wallet-file",
        &w,
        "--password",
        "pw",
    ]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("0x"), "{}", bad.stderr);
}

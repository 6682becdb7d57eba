//! `sms explain task` against a `--dev` SMS reading the real PoCo contracts (local anvil
//! chain, sms-testkit): one line per check, exit 1 naming the failing check, exit 0 once the
//! missing secret is stored, one JSON object with `--json`. Needs `tools/chain/setup.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use serde_json::Value;
use sms_server::ServerConfig;
use sms_testkit::chain::LocalChain;
use sms_testkit::server::TestServer;

fn explain(server: &TestServer, wallet: &std::path::Path, task: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sms"))
        .args(["explain", "task", task, "--wallet-file"])
        .arg(wallet)
        .args(["--sms-url", &server.url()])
        .args(extra)
        .env("SMS_WALLET_PASSWORD", "pw")
        .env_remove("SMS_URL")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn names_the_failing_check_and_exits_non_zero_until_it_passes() {
    let chain = LocalChain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().join("sms"));
    config.chain = chain.server_chain_args(5000);
    let server = TestServer::with_config(config, None).await;
    let client = server.client();
    let deal = chain.deal(true, 1).await.unwrap();
    let spec = &deal.spec;
    client
        .push_web2_secret(
            &spec.requester,
            "iexec-result-iexec-ipfs-token",
            "token",
            sms_client::Web2Write::Create,
        )
        .await
        .unwrap();
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();
    let task = task.to_string();
    let pool_wallet = dir.path().join("pool.json");
    sms_client::wallet::save(&pool_wallet, &spec.workerpool_owner, "pw").unwrap();

    // No dataset key: the dataset-key check fails with the session's code.
    let out = explain(&server, &pool_wallet, &task, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("dataset-key"))
        .unwrap_or_else(|| panic!("no dataset-key line: {stdout}"));
    assert!(line.starts_with("✗"), "{line}");
    assert!(
        line.contains("PRE_COMPUTE_GET_DATASET_SECRET_FAILED"),
        "{line}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("✓ task-active")),
        "{stdout}"
    );

    let out = explain(&server, &pool_wallet, &task, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["ok"], false);
    let failed: Vec<&str> = answer["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["dataset-key"], "{answer}");

    // The dataset owner stores the key: every check passes, exit 0.
    let (dataset, owner) = spec.dataset.clone().unwrap();
    client
        .push_dataset_secret(&owner, dataset, "key")
        .await
        .unwrap();
    let out = explain(
        &server,
        &pool_wallet,
        &task,
        &["--worker", &deal.worker.address().to_string()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("every check passes"), "{}", text(&out));

    // Another wallet: refused, non-zero, no checks printed.
    let stranger = dir.path().join("stranger.json");
    sms_client::wallet::save(&stranger, &sms_testkit::chain::wallet(), "pw").unwrap();
    let out = explain(&server, &stranger, &task, &[]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("UNAUTHORIZED"), "{}", text(&out));
}

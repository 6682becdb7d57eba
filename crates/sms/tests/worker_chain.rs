//! `sms worker run --task` on a task of the real PoCo contracts (local anvil chain, sms-testkit):
//! the deal is matched on chain, the SMS (`--dev` reading the chain) and the local worker read it
//! from there. Needs `tools/chain/setup.sh` to have run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use sms_server::{ChainArgs, ServerConfig};
use sms_testkit::chain::{AppSpec, DealSpec, LocalChain, scone_tag, wallet};
use sms_testkit::server::TestServer;

#[tokio::test(flavor = "multi_thread")]
async fn runs_a_task_matched_on_chain() {
    let chain = LocalChain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().join("sms"));
    config.chain = ChainArgs {
        chain_rpc: Some(chain.rpc_url().to_owned()),
        hub: Some(chain.hub()),
        chain_id: Some(chain.chain_id()),
        chain_timeout_ms: 5000,
        chain_retries: 1,
        chain_fresh_ms: 0,
    };
    let server = TestServer::with_config(config, None).await;
    let client = server.client();

    // The polynomial app on chain, its secrets in the SMS.
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/requester-secrets/js/app.js")
        .canonicalize()
        .unwrap();
    let enclave = json!({
        "framework": "SCONE", "version": "v5", "entrypoint": format!("node {}", source.display()),
        "heapSize": 1_073_741_824u64, "fingerprint": "22".repeat(32),
    });
    let app_owner = wallet();
    let mut spec = AppSpec::scone("polynomial");
    spec.mrenclave = enclave.to_string().into_bytes();
    let app = chain.create_app(app_owner.address(), &spec).await.unwrap();
    client
        .push_app_secret(&app_owner, app, "1;1;1;1")
        .await
        .unwrap();
    let requester = wallet();
    client
        .push_requester_secret(&requester, "x1", "2")
        .await
        .unwrap();

    let pool_owner = wallet();
    let workerpool = chain
        .create_workerpool(pool_owner.address(), "local worker pool")
        .await
        .unwrap();
    let deal = DealSpec {
        app,
        app_owner,
        dataset: None,
        workerpool,
        workerpool_owner: pool_owner.clone(),
        beneficiary: requester.address(),
        requester,
        callback: sms_core::Address::ZERO,
        tag: scone_tag(),
        category: 0,
        trust: 1,
        volume: 1,
        params: r#"{"iexec_secrets":{"1":"x1"},"iexec_result_storage_provider":"ipfs"}"#.to_owned(),
    };
    let deal_id = chain.match_orders(&deal).await.unwrap();
    let task = chain.initialize_task(deal_id, 0).await.unwrap();

    // The worker holds the pool owner's key.
    let home = tempfile::tempdir().unwrap();
    let pool_file = home.path().join("pool.json");
    let key =
        |s: &alloy_signer_local::PrivateKeySigner| sms_core::hex::encode_prefixed(s.to_bytes());
    std::fs::write(
        &pool_file,
        json!({ "ownerPrivateKey": key(&pool_owner), "workerPrivateKey": key(&wallet()) })
            .to_string(),
    )
    .unwrap();
    std::fs::create_dir(home.path().join("ws")).unwrap();
    let hub = chain.hub().to_string();
    let chain_id = chain.chain_id().to_string();
    let task_s = task.to_string();
    let pool_s = pool_file.display().to_string();
    let args = [
        "worker",
        "run",
        "--task",
        &task_s,
        "--chain-rpc",
        chain.rpc_url(),
        "--hub",
        &hub,
        "--chain-id",
        &chain_id,
        "--workerpool-file",
        &pool_s,
        "--json",
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_sms"))
        .args(args)
        .env("SMS_URL", server.url())
        .env("HOME", home.path())
        .env("SMS_WORKSPACE_ROOT", home.path().join("ws"))
        .current_dir(home.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["result"].as_str().unwrap().trim(), "f(2) = 15");
    assert_eq!(report["signatureVerified"], true);
    assert_eq!(report["dealId"], deal_id.to_string());
    assert_eq!(
        std::fs::read_dir(home.path().join("ws")).unwrap().count(),
        0
    );

    // Another pool owner's key: refused before anything is asked.
    std::fs::write(
        &pool_file,
        json!({ "ownerPrivateKey": key(&wallet()), "workerPrivateKey": key(&wallet()) })
            .to_string(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sms"))
        .args(args)
        .env("SMS_URL", server.url())
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is owned by"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

//! `sms storage init|check` (the SDK's `iexec storage init|check`: reserved web2 secrets) and
//! `sms app run` finding out by itself that it talks to a dev server (`GET /dev/info`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::Method;
use sms_core::Address;
use sms_core::secret::{RESULT_IPFS_TOKEN, SecretId};
use sms_store::RecordKey;
use sms_testkit::result_proxy::FakeResultProxy;
use sms_testkit::server::TestServer;

mod common;

use common::DevCli;

#[tokio::test(flavor = "multi_thread")]
async fn storage_init_and_check_push_the_sdk_secrets() {
    let server = TestServer::dev().await;
    let cli = DevCli::new(&server);
    let requester = cli.wallet("requester");
    let address: Address = cli.address("requester").parse().unwrap();
    let client = server.client();

    for (provider, name) in [
        ("ipfs", "iexec-result-iexec-ipfs-token"),
        ("dropbox", "iexec-result-dropbox-token"),
    ] {
        let check = [
            "storage",
            "check",
            "--provider",
            provider,
            "--wallet-file",
            &requester,
            "--json",
        ];
        assert_eq!(cli.ok(&check)["isInitialized"], false, "{provider}");
        let init = [
            "storage",
            "init",
            "--provider",
            provider,
            "--token",
            "tok-1",
            "--wallet-file",
            &requester,
            "--json",
        ];
        let pushed = cli.ok(&init);
        assert_eq!(
            (pushed["isPushed"].as_bool(), pushed["isUpdated"].as_bool()),
            (Some(true), Some(false))
        );
        assert!(
            client.web2_secret_exists(address, name).await.unwrap(),
            "{name}"
        );
        assert_eq!(cli.ok(&check)["isInitialized"], true, "{provider}");
        // Again without --force-update: refused, naming the secret and the flag.
        let again = cli.run(&init);
        assert_ne!(again.code, 0);
        let error = again.json()["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains(name) && error.contains("--force-update"),
            "{error}"
        );
        let mut forced = init.to_vec();
        forced.insert(2, "--force-update");
        assert_eq!(cli.ok(&forced)["isUpdated"], true);
    }
    // Default provider is ipfs; another user's token is checked with --user.
    let owner = cli.address("owner");
    let other = cli.ok(&["storage", "check", "--user", &owner, "--json"]);
    assert_eq!(other["isInitialized"], false);
    // Bad input: unknown provider, empty token.
    let bad = cli.run(&["storage", "init", "--provider", "s3", "--token", "t"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("s3"), "{}", bad.stderr);
    let empty = cli.run(&[
        "storage",
        "init",
        "--token",
        " ",
        "--wallet-file",
        &requester,
    ]);
    assert_ne!(empty.code, 0);
    assert!(empty.stderr.contains("empty"), "{}", empty.stderr);
}

/// `storage init` for ipfs without `--token` logs in to the result proxy like the SDK (the
/// proxy checks the signature over its EIP-712 challenge) and pushes the token it issues.
#[tokio::test(flavor = "multi_thread")]
async fn storage_init_ipfs_logs_in_to_the_result_proxy() {
    let server = TestServer::dev().await;
    let cli = DevCli::new(&server);
    let requester = cli.wallet("requester");
    let address: Address = cli.address("requester").parse().unwrap();
    let chain_id = server.client().v2_domain().await.unwrap().chain_id;
    let proxy = FakeResultProxy::start(chain_id).await;
    let url = proxy.url();
    let pushed = cli.ok(&[
        "storage",
        "init",
        "--result-proxy-url",
        &url,
        "--wallet-file",
        &requester,
        "--json",
    ]);
    assert_eq!(pushed["isPushed"], true);
    assert_eq!(proxy.logins(), 1);
    let id = SecretId::web2(address, RESULT_IPFS_TOKEN).unwrap();
    let stored = server
        .server()
        .store
        .get(&RecordKey::from(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.value.as_str(),
        Some(FakeResultProxy::token_for(address).as_str())
    );

    // Without a proxy URL on a chain iExec runs no proxy for: refused, naming the flag.
    let other = cli.wallet("owner");
    let run = cli.run(&[
        "storage",
        "init",
        "--chain-id",
        "65535",
        "--wallet-file",
        &other,
    ]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--result-proxy-url"), "{}", run.stderr);
}

/// A proxy that asks for anything but its own challenge (here: the typed data of a dataset
/// order, which would hand a signed order to the proxy) gets no signature and no login.
#[tokio::test(flavor = "multi_thread")]
async fn storage_init_refuses_to_sign_a_hostile_challenge() {
    let server = TestServer::dev().await;
    let cli = DevCli::new(&server);
    let requester = cli.wallet("requester");
    let chain_id = server.client().v2_domain().await.unwrap().chain_id;
    let order = serde_json::json!({
        "types": { "DatasetOrder": [{ "name": "dataset", "type": "address" }] },
        "domain": { "name": "iExecODB", "version": "5.0.0", "chainId": chain_id },
        "primaryType": "DatasetOrder",
        "message": { "dataset": Address::repeat_byte(7) },
    });
    let proxy = FakeResultProxy::hostile(chain_id, order).await;
    let run = cli.run(&[
        "storage",
        "init",
        "--result-proxy-url",
        &proxy.url(),
        "--chain-id",
        &chain_id.to_string(),
        "--wallet-file",
        &requester,
    ]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("primaryType"), "{}", run.stderr);
    assert_eq!(proxy.logins(), 0, "nothing was signed or sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_info_says_dev() {
    let server = TestServer::dev().await;
    let (status, body) = server.call(Method::GET, "/dev/info", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["dev"], true);
    assert!(server.client().is_dev_server().await.unwrap());
}

const APP: &str = r#"echo done > "$IEXEC_OUT/result.txt"
printf '{"deterministic-output-path":"%s/result.txt"}' "$IEXEC_OUT" > "$IEXEC_OUT/computed.json"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn app_run_without_dev_flag_against_a_dev_server() {
    let server = TestServer::dev().await;
    let cli = DevCli::new(&server);
    let script = cli.home.path().join("app.sh");
    std::fs::write(&script, APP).unwrap();
    let app = cli.deploy_scone_app(&format!("sh {}", script.display()), &"11".repeat(32));
    let requester = cli.wallet("requester");
    let run = cli.run(&["app", "run", &app, "--json", "--wallet-file", &requester]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.json()["result"], "done\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn app_run_refuses_a_server_that_is_not_dev() {
    // A server without the dev API (as iExec's SMS): every path is 404.
    let app = axum::Router::new().fallback(|| async { axum::http::StatusCode::NOT_FOUND });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dev = TestServer::dev().await;
    let mut cli = DevCli::new(&dev);
    cli.url = url.clone();
    let requester = cli.wallet("requester");
    let app = "0x0000000000000000000000000000000000000001";
    let run = cli.run(&["app", "run", app, "--wallet-file", &requester]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("not one")
            && run.stderr.contains("/dev/info")
            && run.stderr.contains(&url)
            && run.stderr.contains("sms worker run --task"),
        "{}",
        run.stderr
    );
}

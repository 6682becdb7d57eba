//! The secret API of an in-process server whose ledger is the real iExec PoCo contracts on a
//! local anvil chain (sms-testkit): ownership from the chain, bounded 503s when the RPC is down,
//! hangs or answers garbage, recovery, and the start-up checks. These tests need
//! `tools/chain/setup.sh` to have run; they fail (never skip) otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alloy_signer_local::PrivateKeySigner;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sms_core::challenge;
use sms_core::ledger::EntryKind;
use sms_core::signature::sign_eip191;
use sms_core::{Address, B256};
use sms_server::{ChainArgs, Server, ServerConfig};
use sms_testkit::chain::{AppSpec, DatasetSpec, LocalChain, wallet};
use sms_testkit::proxy::{Fault, FaultProxy};
use sms_testkit::server::TestServer;

/// Ledger read bound of the servers under test.
const TIMEOUT: Duration = Duration::from_millis(1000);
/// Slack on top of [`TIMEOUT`] for the HTTP round trip and a loaded 2-core CI machine. The point
/// is "bounded" (upstream can block for over a minute), not a performance target.
const SLACK: Duration = Duration::from_millis(2000);

/// Chain flags pointing at `rpc` (the chain itself or a proxy in front of it).
fn chain_args(rpc: &str, chain: &LocalChain) -> ChainArgs {
    ChainArgs {
        chain_rpc: Some(rpc.to_owned()),
        hub: Some(chain.hub()),
        chain_id: Some(chain.chain_id()),
        chain_timeout_ms: TIMEOUT.as_millis() as u64,
        chain_retries: 1,
        chain_fresh_ms: 0,
    }
}

/// A production-mode (not `--dev`) configuration in `dir` whose ledger is `chain`.
fn config(dir: &tempfile::TempDir, chain: ChainArgs) -> ServerConfig {
    let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
    config.dev = false;
    config.chain = chain;
    config
}

struct Api {
    server: TestServer,
}

impl Api {
    async fn start(chain: ChainArgs) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = config(&dir, chain);
        Self {
            server: TestServer::with_config(config, Some(dir)).await,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<String>,
        body: Option<&[u8]>,
    ) -> (StatusCode, Value) {
        self.server.call(method, path, auth, body).await
    }

    async fn push_app(
        &self,
        signer: &PrivateKeySigner,
        app: Address,
        value: &[u8],
    ) -> (StatusCode, Value) {
        let auth = sign(signer, challenge::app_developer_secret(&app, value));
        self.call(
            Method::POST,
            &format!("/apps/{app}/secrets"),
            auth,
            Some(value),
        )
        .await
    }

    async fn push_dataset(
        &self,
        signer: &PrivateKeySigner,
        dataset: Address,
        key: &[u8],
    ) -> (StatusCode, Value) {
        let auth = sign(signer, challenge::web3_secret(dataset.as_slice(), key));
        self.call(
            Method::POST,
            &format!("/secrets/web3?secretAddress={dataset}"),
            auth,
            Some(key),
        )
        .await
    }

    async fn push_requester(
        &self,
        signer: &PrivateKeySigner,
        name: &str,
        value: &[u8],
    ) -> StatusCode {
        let path = format!("/requesters/{}/secrets/{name}", signer.address());
        let auth = sign(
            signer,
            challenge::named_secret(signer.address().as_slice(), name, value),
        );
        self.call(Method::POST, &path, auth, Some(value)).await.0
    }

    async fn push_web2(&self, signer: &PrivateKeySigner, name: &str, value: &[u8]) -> StatusCode {
        let path = format!(
            "/secrets/web2?ownerAddress={}&secretName={name}",
            signer.address()
        );
        let auth = sign(
            signer,
            challenge::named_secret(signer.address().as_slice(), name, value),
        );
        self.call(Method::POST, &path, auth, Some(value)).await.0
    }

    async fn head(&self, path: &str) -> StatusCode {
        self.call(Method::HEAD, path, None, None).await.0
    }
}

fn sign(signer: &PrivateKeySigner, digest: B256) -> Option<String> {
    Some(sign_eip191(signer, &digest).to_hex())
}

async fn app_owned_by(chain: &LocalChain, owner: Address) -> Address {
    chain
        .create_app(owner, &AppSpec::scone(&format!("app-{}", rand_name())))
        .await
        .unwrap()
}

fn rand_name() -> String {
    wallet().address().to_string()[2..10].to_owned()
}

fn assert_unauthorized(answer: (StatusCode, Value), what: &str) {
    assert_eq!(answer.0, StatusCode::UNAUTHORIZED, "{what}: {}", answer.1);
}

#[tokio::test]
async fn app_secret_push_follows_the_onchain_owner() {
    let chain = LocalChain::start().await;
    let api = Api::start(chain_args(chain.rpc_url(), &chain)).await;
    let (alice, bob, mallory) = (wallet(), wallet(), wallet());

    let app = app_owned_by(&chain, alice.address()).await;
    let (status, body) = api.push_app(&mallory, app, b"v").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], json!(["Invalid authorization"]));
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains(&alice.address().to_string()),
        "{body}"
    );
    assert_eq!(
        api.head(&format!("/apps/{app}/secrets")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.push_app(&alice, app, b"v").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.head(&format!("/apps/{app}/secrets")).await,
        StatusCode::NO_CONTENT
    );

    // ERC-721 transfer of a second app (no secret yet): the new owner may push, the old one not.
    let moved = app_owned_by(&chain, alice.address()).await;
    chain
        .transfer(EntryKind::App, moved, &alice, bob.address())
        .await
        .unwrap();
    assert_unauthorized(api.push_app(&alice, moved, b"old owner").await, "old owner");
    assert_eq!(
        api.push_app(&bob, moved, b"new owner").await.0,
        StatusCode::NO_CONTENT
    );

    // No owner at all (an EOA): 401 naming the ledger. A contract owned by someone else (the
    // app registry): 401. Never 500.
    let (status, body) = api.push_app(&alice, wallet().address(), b"v").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["reason"].as_str().unwrap().contains("PoCo"), "{body}");
    assert_unauthorized(
        api.push_app(&alice, chain.deployment().app_registry, b"v")
            .await,
        "registry",
    );
}

#[tokio::test]
async fn ownership_is_never_staler_than_the_fresh_bound() {
    let chain = LocalChain::start().await;
    let fresh = Duration::from_millis(400);
    let mut args = chain_args(chain.rpc_url(), &chain);
    args.chain_fresh_ms = fresh.as_millis() as u64;
    let api = Api::start(args).await;
    let (alice, bob) = (wallet(), wallet());

    let app = app_owned_by(&chain, alice.address()).await;
    // Bob's refused push puts "owner = alice" in the freshness cache.
    assert_unauthorized(api.push_app(&bob, app, b"v").await, "before the transfer");
    let transferred = Instant::now();
    chain
        .transfer(EntryKind::App, app, &alice, bob.address())
        .await
        .unwrap();
    tokio::time::sleep(fresh.saturating_sub(transferred.elapsed()) + Duration::from_millis(50))
        .await;
    assert_eq!(
        api.push_app(&bob, app, b"v").await.0,
        StatusCode::NO_CONTENT,
        "past the bound"
    );
}

#[tokio::test]
async fn dataset_key_push_by_the_dataset_owner_only() {
    let chain = LocalChain::start().await;
    let api = Api::start(chain_args(chain.rpc_url(), &chain)).await;
    let (owner, mallory) = (wallet(), wallet());
    let dataset = chain
        .create_dataset(owner.address(), &DatasetSpec::ipfs(&rand_name()))
        .await
        .unwrap();
    let check = format!("/secrets/web3?secretAddress={dataset}");

    let (status, body) = api.push_dataset(&mallory, dataset, b"k").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], json!("Invalid authorization"));
    assert_eq!(api.head(&check).await, StatusCode::NOT_FOUND);
    assert_eq!(
        api.push_dataset(&owner, dataset, b"k").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.head(&check).await, StatusCode::NO_CONTENT);

    // After a transfer the dataset belongs to the new owner (the key exists: 409, not 401).
    chain
        .transfer(EntryKind::Dataset, dataset, &owner, mallory.address())
        .await
        .unwrap();
    assert_unauthorized(api.push_dataset(&owner, dataset, b"k2").await, "old owner");
    assert_eq!(
        api.push_dataset(&mallory, dataset, b"k2").await.0,
        StatusCode::CONFLICT
    );
}

/// While the chain cannot be read: app and dataset pushes get a 503 with a reason within the
/// bound; requester and web2 secrets, checks and health keep working.
async fn assert_degraded(
    api: &Api,
    owner: &PrivateKeySigner,
    app: Address,
    dataset: Address,
    label: &str,
) {
    let bound = TIMEOUT + SLACK;
    for (what, push) in [("app", true), ("dataset", false)] {
        let started = Instant::now();
        let (status, body) = if push {
            api.push_app(owner, app, b"v").await
        } else {
            api.push_dataset(owner, dataset, b"k").await
        };
        let elapsed = started.elapsed();
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{label}, {what}: {body}"
        );
        let error = if push {
            json!(["ledger unavailable"])
        } else {
            json!("ledger unavailable")
        };
        assert_eq!(body["error"], error, "{label}, {what}");
        let reason = body["reason"].as_str().unwrap_or_default();
        assert!(!reason.is_empty(), "{label}, {what}: no reason in {body}");
        assert!(
            elapsed < bound,
            "{label}, {what}: 503 after {elapsed:?}, bound {bound:?}"
        );
        eprintln!("{label}, {what}: 503 in {elapsed:?}: {reason}");
    }
    let name = format!("{}-{}", label.replace(' ', "-"), rand_name());
    assert_eq!(
        api.push_requester(owner, &name, b"r").await,
        StatusCode::NO_CONTENT,
        "{label}: requester"
    );
    let requester = format!("/requesters/{}/secrets/{name}", owner.address());
    assert_eq!(
        api.head(&requester).await,
        StatusCode::NO_CONTENT,
        "{label}"
    );
    assert_eq!(
        api.push_web2(owner, &name, b"w").await,
        StatusCode::NO_CONTENT,
        "{label}: web2"
    );
    // Checks read the store only.
    assert_eq!(
        api.head(&format!("/apps/{app}/secrets")).await,
        StatusCode::NOT_FOUND,
        "{label}"
    );
    assert_eq!(
        api.call(Method::GET, "/health", None, None).await.0,
        StatusCode::OK,
        "{label}"
    );
}

/// An app and a dataset owned by `owner`, with no secret yet.
async fn entries(chain: &LocalChain, owner: Address) -> (Address, Address) {
    let app = app_owned_by(chain, owner).await;
    let dataset = chain
        .create_dataset(owner, &DatasetSpec::ipfs(&rand_name()))
        .await
        .unwrap();
    (app, dataset)
}

#[tokio::test]
async fn rpc_down_gives_bounded_503_and_recovers() {
    let mut chain = LocalChain::start().await;
    let api = Api::start(chain_args(chain.rpc_url(), &chain)).await;
    let owner = wallet();
    let (app, dataset) = entries(&chain, owner.address()).await;

    chain.stop().await.unwrap();
    assert_degraded(&api, &owner, app, dataset, "node down").await;

    chain.resume().await.unwrap();
    assert_eq!(
        api.push_app(&owner, app, b"v").await.0,
        StatusCode::NO_CONTENT,
        "after the node is back"
    );
    assert_eq!(
        api.push_dataset(&owner, dataset, b"k").await.0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn hanging_rpc_gives_bounded_503_and_recovers() {
    let chain = LocalChain::start().await;
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], chain.port())))
        .await
        .unwrap();
    let api = Api::start(chain_args(&proxy.url(), &chain)).await;
    let owner = wallet();
    let (app, dataset) = entries(&chain, owner.address()).await;

    proxy.set(Fault::Hang);
    assert_degraded(&api, &owner, app, dataset, "hanging rpc").await;

    proxy.set(Fault::None);
    assert_eq!(
        api.push_app(&owner, app, b"v").await.0,
        StatusCode::NO_CONTENT,
        "after the hang"
    );
    assert_eq!(
        api.push_dataset(&owner, dataset, b"k").await.0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn garbage_rpc_gives_bounded_503_and_recovers() {
    let chain = LocalChain::start().await;
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], chain.port())))
        .await
        .unwrap();
    let api = Api::start(chain_args(&proxy.url(), &chain)).await;
    let owner = wallet();
    let (app, dataset) = entries(&chain, owner.address()).await;

    for (fault, label) in [
        (Fault::HttpGarbage, "http garbage"),
        (Fault::RawGarbage, "raw garbage"),
    ] {
        proxy.set(fault);
        assert_degraded(&api, &owner, app, dataset, label).await;
    }

    proxy.set(Fault::None);
    assert_eq!(
        api.push_app(&owner, app, b"v").await.0,
        StatusCode::NO_CONTENT,
        "after the garbage"
    );
    assert_eq!(
        api.push_dataset(&owner, dataset, b"k").await.0,
        StatusCode::NO_CONTENT
    );
}

async fn start_error(chain: ChainArgs) -> String {
    let dir = tempfile::tempdir().unwrap();
    match Server::start(config(&dir, chain)).await {
        Ok(server) => {
            server.shutdown().await;
            panic!("the server started")
        }
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn startup_refused_on_a_wrong_chain_id() {
    let chain = LocalChain::start().await;
    let mut args = chain_args(chain.rpc_url(), &chain);
    args.chain_id = Some(65535);
    let message = start_error(args).await;
    assert!(
        message.contains("65535") && message.contains("134"),
        "{message}"
    );
    assert!(message.contains("chain id"), "{message}");
}

#[tokio::test]
async fn startup_refused_on_a_hub_without_code() {
    let chain = LocalChain::start().await;
    let not_a_hub = wallet().address();
    let mut args = chain_args(chain.rpc_url(), &chain);
    args.hub = Some(not_a_hub);
    let message = start_error(args).await;
    assert!(
        message.contains(&not_a_hub.to_string()) && message.contains("134"),
        "{message}"
    );
}

#[tokio::test]
async fn startup_refused_when_the_rpc_is_unreachable_or_half_configured() {
    let chain = LocalChain::start().await;
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], chain.port())))
        .await
        .unwrap();
    proxy.set(Fault::Hang);
    let started = Instant::now();
    let message = start_error(chain_args(&proxy.url(), &chain)).await;
    assert!(
        started.elapsed() < TIMEOUT + SLACK,
        "start-up check took {:?}",
        started.elapsed()
    );
    assert!(message.contains("cannot check the chain id"), "{message}");

    let only_rpc = ChainArgs {
        hub: None,
        ..chain_args(chain.rpc_url(), &chain)
    };
    let message = start_error(only_rpc).await;
    assert!(message.contains("--hub"), "{message}");
    let neither = ChainArgs::default();
    let message = start_error(neither).await;
    assert!(
        message.contains("--chain-rpc") && message.contains("--dev"),
        "{message}"
    );
}

#[tokio::test]
async fn dev_with_a_chain_reads_the_chain_and_serves_no_dev_api() {
    let chain = LocalChain::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
    config.chain = chain_args(chain.rpc_url(), &chain);
    let server = Server::start(config).await.unwrap();
    assert!(!server.dev_wallets.is_empty(), "dev wallets stay");
    assert!(
        server.ledger_description.contains("PoCo"),
        "{}",
        server.ledger_description
    );
    let url = server.url();
    let http = reqwest::Client::new();
    let owner = wallet();
    let response = http
        .post(format!("{url}/dev/apps"))
        .header("Content-Type", "application/json")
        .body(json!({ "owner": owner.address() }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "no /dev API over a chain"
    );

    let app = app_owned_by(&chain, owner.address()).await;
    let auth = sign(&owner, challenge::app_developer_secret(&app, b"v")).unwrap();
    let response = http
        .post(format!("{url}/apps/{app}/secrets"))
        .header("Authorization", auth)
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    server.shutdown().await;
}

//! `GET /tee/explain/{taskId}` on the real PoCo contracts (sms-testkit anvil chain, one per
//! test) and an in-process production-mode SCONE server: each scenario names the failing check
//! with the code `/tee/sessions` then answers, and explaining has no side effect (no challenge,
//! no session, no release counted). These tests need `tools/chain/setup.sh` to have run; they
//! fail (never skip) otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy_signer_local::PrivateKeySigner;
use reqwest::StatusCode;
use serde_json::Value;
use sms_client::Web2Write;
use sms_core::authorization::WorkerpoolAuthorization;
use sms_core::challenge;
use sms_core::explain::{CheckStatus, Explanation, names};
use sms_core::hex::encode_prefixed;
use sms_core::signature::sign_eip191;
use sms_core::{Address, B256};
use sms_server::ServerConfig;
use sms_server::tee::args::FrameworkArg;
use sms_store::sqlite::SqliteBackend;
use sms_store::{Backend, RecordKey};
use sms_testkit::chain::{AppSpec, DealSpec, LocalChain, TestDeal, scone_tag, wallet};
use sms_testkit::server::TestServer;

const APP_FP: &str = "2d4b9efd066d0bb058b8da79bf8551be7d244779bc41d03a12201a4004779609";
const PRE_FP: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const POST_FP: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const DATASET_KEY: &str = "explain-dataset-key-value";
const IPFS_TOKEN: &str = "explain-ipfs-token-value";
const APP_SECRET: &str = "explain-app-secret-value";

/// A production-mode SCONE server over `chain` accepting simulated evidence (so that the
/// release-evidence check passes without collateral), and a read handle on its database.
struct Tee {
    server: TestServer,
    http: reqwest::Client,
    backend: SqliteBackend,
}

impl Tee {
    async fn start(chain: &LocalChain) -> Self {
        Self::start_with(chain, true).await
    }

    /// `simulated`: whether simulated evidence is accepted (no collateral is configured).
    async fn start_with(chain: &LocalChain, simulated: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pipelines = dir.path().join("pipelines.toml");
        std::fs::write(
            &pipelines,
            format!(
                "[[pipelines]]\nversion = \"v5.9\"\n\
                 [pipelines.pre-compute]\nimage = \"pre:1\"\nfingerprint = \"{PRE_FP}\"\nentrypoint = \"/pre\"\nheap-size = \"1GB\"\n\
                 [pipelines.post-compute]\nimage = \"post:1\"\nfingerprint = \"{POST_FP}\"\nentrypoint = \"/post\"\nheap-size = \"1GB\"\n"
            ),
        )
        .unwrap();
        let mut config = ServerConfig::dev_in(dir.path().join("data"));
        config.dev = false;
        config.chain = chain.server_chain_args(1000);
        config.tee.tee_framework = Some(FrameworkArg::Scone);
        config.tee.pipelines = Some(pipelines);
        config.tee.las_image = Some("las:1".into());
        config.attest.dangerous_allow_simulated_tee = Some(simulated);
        let server = TestServer::with_config(config, Some(dir)).await;
        let backend = SqliteBackend::open(&server.data_dir().join("sms.db"))
            .await
            .unwrap();
        Self {
            server,
            http: reqwest::Client::new(),
            backend,
        }
    }

    async fn explain(&self, deal: &TestDeal, task: B256, worker: Option<Address>) -> Explanation {
        self.server
            .client()
            .tee_explain(&deal.spec.workerpool_owner, task, worker)
            .await
            .unwrap()
    }

    /// A raw explain request: status, body.
    async fn explain_raw(&self, path: &str, authorization: Option<String>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .get(format!("{}/tee/explain/{path}", self.server.url()));
        if let Some(a) = authorization {
            request = request.header("Authorization", a);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// True when the store holds a record under `namespace`/`name` (expired or not).
    async fn has_record(&self, namespace: &str, name: &str) -> bool {
        self.backend
            .get(&RecordKey::new(namespace, "", name))
            .await
            .unwrap()
            .is_some()
    }

    async fn challenge(&self, deal: &TestDeal, task: B256) -> Address {
        self.server
            .client()
            .tee_challenge(&deal.spec.workerpool_owner, task)
            .await
            .unwrap()
    }

    /// `POST /tee/sessions` by `deal.worker`: status and body (precise code in `error`).
    async fn session(&self, deal: &TestDeal, task: B256, enclave: Address) -> (StatusCode, Value) {
        let worker = &deal.worker;
        let hash = challenge::workerpool_authorization(&worker.address(), &task, &enclave);
        let auth = WorkerpoolAuthorization {
            chain_task_id: task,
            deal_id: deal.deal_id,
            task_index: 0,
            worker_wallet: worker.address(),
            enclave_challenge: enclave,
            signature: sign_eip191(&deal.spec.workerpool_owner, &hash),
        };
        let response = self
            .http
            .post(format!("{}/tee/sessions", self.server.url()))
            .header("Content-Type", "application/json")
            .header("Authorization", sign_eip191(worker, &hash).to_hex())
            .body(auth.to_json())
            .send()
            .await
            .unwrap();
        sms_testkit::server::session_reply(response).await
    }

    /// Rows per store namespace: explaining must leave it unchanged.
    async fn snapshot(&self) -> Vec<(String, u64)> {
        self.backend.count_by_namespace().await.unwrap()
    }

    /// Nothing was written for `task` by explaining it: no challenge, no session index.
    async fn assert_untouched(&self, task: B256) {
        let id = encode_prefixed(task);
        assert!(
            !self.has_record("tee-challenge", &id).await,
            "explain created a challenge"
        );
        assert!(
            !self.has_record("tee-task-session", &id).await,
            "explain stored a session"
        );
    }
}

/// A deal of fresh owners with a Scone app, an optional dataset and `tag`.
async fn deal_with(chain: &LocalChain, tag: B256, with_dataset: bool) -> TestDeal {
    let template = chain.deal(with_dataset, 1).await.unwrap();
    if tag == scone_tag() {
        return template;
    }
    let app_owner = wallet();
    let app = chain
        .create_app(app_owner.address(), &AppSpec::scone("explain-app"))
        .await
        .unwrap();
    let workerpool_owner = wallet();
    let workerpool = chain
        .create_workerpool(workerpool_owner.address(), "explain pool")
        .await
        .unwrap();
    let spec = DealSpec {
        app,
        app_owner,
        workerpool,
        workerpool_owner,
        tag,
        ..template.spec.clone()
    };
    let deal_id = chain.match_orders(&spec).await.unwrap();
    TestDeal {
        deal_id,
        spec,
        ..template
    }
}

/// The requester's result storage token (the default storage of testkit deals).
async fn push_ipfs_token(tee: &Tee, deal: &TestDeal) {
    tee.server
        .client()
        .push_web2_secret(
            &deal.spec.requester,
            "iexec-result-iexec-ipfs-token",
            IPFS_TOKEN,
            Web2Write::Create,
        )
        .await
        .unwrap();
}

/// The one failing check (panics when none or several fail).
fn failing(explanation: &Explanation) -> &sms_core::explain::Check {
    let failed: Vec<_> = explanation
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .collect();
    assert_eq!(failed.len(), 1, "{explanation:#?}");
    failed[0]
}

fn status_of(explanation: &Explanation, name: &str) -> CheckStatus {
    explanation
        .check(name)
        .unwrap_or_else(|| panic!("no check {name} in {explanation:#?}"))
        .status
}

#[tokio::test]
async fn an_active_tee_task_with_everything_present_passes_every_check() {
    let chain = LocalChain::start().await;
    let tee = Tee::start(&chain).await;
    let deal = deal_with(&chain, scone_tag(), true).await;
    let spec = &deal.spec;
    let (dataset, dataset_owner) = spec.dataset.clone().unwrap();
    let client = tee.server.client();
    client
        .push_dataset_secret(&dataset_owner, dataset, DATASET_KEY)
        .await
        .unwrap();
    client
        .push_app_secret(&spec.app_owner, spec.app, APP_SECRET)
        .await
        .unwrap();
    client
        .push_web2_secret(
            &spec.requester,
            "iexec-result-iexec-ipfs-token",
            IPFS_TOKEN,
            Web2Write::Create,
        )
        .await
        .unwrap();
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();

    let before = tee.snapshot().await;
    let explanation = tee.explain(&deal, task, Some(deal.worker.address())).await;
    assert!(explanation.ok, "{explanation:#?}");
    assert_eq!(tee.snapshot().await, before, "explain wrote to the store");
    assert_eq!(explanation.task_id, encode_prefixed(task));
    let listed: Vec<&str> = explanation.checks.iter().map(|c| c.name.as_str()).collect();
    for expected in [
        names::TASK_ACTIVE,
        names::TASK_DEADLINE,
        names::DEAL_TEE_TAG,
        names::TEE_FRAMEWORK,
        names::TASK_SESSION,
        names::APP,
        names::DATASET,
        names::APP_ENCLAVE,
        names::ENCLAVE_CHALLENGE,
        names::DATASET_KEY,
        names::APP_DEVELOPER_SECRET,
        names::REQUESTER_SECRETS,
        names::RESULT_STORAGE_TOKEN,
        names::PRE_COMPUTE_MEASUREMENT,
        names::APP_MEASUREMENT,
        names::POST_COMPUTE_MEASUREMENT,
        names::RELEASE_EVIDENCE,
        names::RELEASE_BUDGET,
    ] {
        assert!(listed.contains(&expected), "{expected} missing: {listed:?}");
    }
    let fact = |name: &str| explanation.check(name).unwrap().fact.clone();
    assert!(fact(names::TASK_ACTIVE).starts_with("status ACTIVE, final deadline "));
    assert!(fact(names::DATASET_KEY).contains(&dataset.to_string()));
    assert!(fact(names::APP_DEVELOPER_SECRET).starts_with("stored"));
    assert!(fact(names::APP_MEASUREMENT).contains(APP_FP));
    assert!(fact(names::PRE_COMPUTE_MEASUREMENT).contains(PRE_FP));
    assert!(fact(names::POST_COMPUTE_MEASUREMENT).contains(POST_FP));
    assert!(fact(names::RELEASE_EVIDENCE).contains("sgx"));
    assert!(fact(names::ENCLAVE_CHALLENGE).starts_with("not issued yet"));
    // Identities and presence only, never values.
    let text = serde_json::to_string(&explanation).unwrap();
    for value in [DATASET_KEY, IPFS_TOKEN, APP_SECRET] {
        assert!(!text.contains(value), "{value} in {text}");
    }

    // No side effect: no challenge, no session; the scheduler still gets a fresh challenge
    // and the worker a session, as the explanation said.
    tee.assert_untouched(task).await;
    let enclave = tee.challenge(&deal, task).await;
    let (status, body) = tee.session(&deal, task, enclave).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Now the challenge is issued and the session taken: by this worker (answered again), not
    // by another one (the code a second worker's session request gets).
    let again = tee.explain(&deal, task, Some(deal.worker.address())).await;
    assert!(again.ok, "{again:#?}");
    assert!(
        again
            .check(names::ENCLAVE_CHALLENGE)
            .unwrap()
            .fact
            .contains(&enclave.to_string())
    );
    let other = tee.explain(&deal, task, Some(wallet().address())).await;
    let check = failing(&other);
    assert_eq!(check.name, names::TASK_SESSION);
    assert_eq!(
        check.code.as_deref(),
        Some("EXECUTION_NOT_AUTHORIZED_TASK_SESSION_TAKEN")
    );

    // The app's environment released once (the default budget): explain reads the budget,
    // reports it spent, and counts nothing itself.
    let id = body["data"]["sessionId"].as_str().unwrap();
    let pinned = client.provision_identity().await.unwrap();
    let pinned = sms_attest::SmsPublicKey::from_base64(&pinned.public_key).unwrap();
    let claim = |report_data: &[u8; 64]| {
        Ok(sms_attest::Evidence::Simulated {
            measurement: sms_core::hex::decode_lenient(APP_FP).unwrap(),
            report_data: *report_data,
            debug: false,
        })
    };
    client
        .attested_release(id, "app", &pinned, claim)
        .await
        .unwrap();
    let before = tee.snapshot().await;
    let spent = tee.explain(&deal, task, Some(deal.worker.address())).await;
    assert_eq!(tee.snapshot().await, before, "explain wrote to the store");
    let check = failing(&spent);
    assert_eq!(check.name, names::RELEASE_BUDGET);
    assert_eq!(check.code.as_deref(), Some("RELEASE_LIMIT_REACHED"));
    assert!(check.fact.starts_with("app "), "{check:?}");
    let refused = client
        .attested_release(id, "app", &pinned, claim)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), check.code.as_deref(), "{refused}");
}

#[tokio::test]
async fn a_missing_dataset_key_fails_the_dataset_key_check_with_the_session_code() {
    let chain = LocalChain::start().await;
    let tee = Tee::start(&chain).await;
    let deal = deal_with(&chain, scone_tag(), true).await;
    push_ipfs_token(&tee, &deal).await;
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();

    let explanation = tee.explain(&deal, task, None).await;
    assert!(!explanation.ok);
    let check = failing(&explanation);
    assert_eq!(check.name, names::DATASET_KEY);
    let (dataset, _) = deal.spec.dataset.clone().unwrap();
    assert!(check.fact.contains(&dataset.to_string()), "{check:?}");
    // Later steps that do not need the key still ran.
    assert_eq!(
        status_of(&explanation, names::RESULT_STORAGE_TOKEN),
        CheckStatus::Pass
    );
    assert_eq!(
        status_of(&explanation, names::APP_MEASUREMENT),
        CheckStatus::Pass
    );
    tee.assert_untouched(task).await;

    let enclave = tee.challenge(&deal, task).await;
    let (status, body) = tee.session(&deal, task, enclave).await;
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{body}"
    );
    assert_eq!(body["error"].as_str(), check.code.as_deref(), "{body}");
}

#[tokio::test]
async fn a_non_tee_tag_fails_the_tag_check_and_skips_what_needs_a_framework() {
    let chain = LocalChain::start().await;
    let tee = Tee::start(&chain).await;
    let deal = deal_with(&chain, B256::ZERO, false).await;
    push_ipfs_token(&tee, &deal).await;
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();

    let explanation = tee.explain(&deal, task, None).await;
    let check = failing(&explanation);
    assert_eq!(check.name, names::DEAL_TEE_TAG);
    assert_eq!(
        check.code.as_deref(),
        Some("EXECUTION_NOT_AUTHORIZED_NO_MATCH_ONCHAIN_TYPE")
    );
    for name in [
        names::TEE_FRAMEWORK,
        names::PIPELINES,
        names::APP_ENCLAVE,
        names::APP_MEASUREMENT,
    ] {
        assert_eq!(
            status_of(&explanation, name),
            CheckStatus::Skipped,
            "{name}"
        );
    }
    // Steps that need no framework still ran.
    assert_eq!(
        status_of(&explanation, names::RESULT_STORAGE_TOKEN),
        CheckStatus::Pass
    );
    tee.assert_untouched(task).await;
    let (status, body) = tee.session(&deal, task, wallet().address()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"].as_str(), check.code.as_deref(), "{body}");
}

#[tokio::test]
async fn a_completed_task_fails_the_task_active_check() {
    let chain = LocalChain::start().await;
    let tee = Tee::start(&chain).await;
    let deal = deal_with(&chain, scone_tag(), false).await;
    push_ipfs_token(&tee, &deal).await;
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();
    chain
        .contribute_and_finalize(&deal, task, B256::repeat_byte(8), b"{}")
        .await
        .unwrap();

    let explanation = tee.explain(&deal, task, None).await;
    let check = failing(&explanation);
    assert_eq!(check.name, names::TASK_ACTIVE);
    assert_eq!(
        check.code.as_deref(),
        Some("EXECUTION_NOT_AUTHORIZED_TASK_NOT_ACTIVE")
    );
    assert!(check.fact.contains("Completed"), "{check:?}");
    let (status, body) = tee.session(&deal, task, wallet().address()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"].as_str(), check.code.as_deref(), "{body}");
}

/// Outside dev, without collateral no SGX evidence can be verified: the release would refuse
/// every enclave, and explain says so before any session exists.
#[tokio::test]
async fn no_collateral_and_no_simulated_evidence_fails_the_release_evidence_check() {
    let chain = LocalChain::start().await;
    let tee = Tee::start_with(&chain, false).await;
    let deal = deal_with(&chain, scone_tag(), false).await;
    push_ipfs_token(&tee, &deal).await;
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();
    let explanation = tee.explain(&deal, task, None).await;
    let check = failing(&explanation);
    assert_eq!(check.name, names::RELEASE_EVIDENCE);
    assert_eq!(check.code.as_deref(), Some("COLLATERAL_MISSING"));
    assert!(
        check.fact.starts_with("sgx evidence needs collateral"),
        "{check:?}"
    );
}

#[tokio::test]
async fn only_the_workerpool_owner_gets_an_explanation_and_bad_input_is_named() {
    let mut chain = LocalChain::start().await;
    let tee = Tee::start(&chain).await;
    let deal = deal_with(&chain, scone_tag(), false).await;
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();
    let path = encode_prefixed(task);
    let explain_sig =
        |s: &PrivateKeySigner| Some(sign_eip191(s, &challenge::explain_request(&task)).to_hex());

    let (status, body) = tee.explain_raw(&path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "unsigned: {body}");
    assert_eq!(body["error"], "UNAUTHORIZED");
    for (label, signer) in [
        ("a stranger", wallet()),
        ("the app owner", deal.spec.app_owner.clone()),
        ("the requester", deal.spec.requester.clone()),
    ] {
        let (status, body) = tee.explain_raw(&path, explain_sig(&signer)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {body}");
    }
    // The scheduler's challenge signature (sent for every task) does not open explain.
    let challenge_sig = sign_eip191(
        &deal.spec.workerpool_owner,
        &challenge::enclave_challenge_request(&task),
    )
    .to_hex();
    let (status, body) = tee.explain_raw(&path, Some(challenge_sig)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "challenge signature: {body}"
    );
    let (status, body) = tee.explain_raw(&path, Some("0x1234".into())).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "malformed signature: {body}"
    );

    let owner = explain_sig(&deal.spec.workerpool_owner);
    let (status, body) = tee.explain_raw("0x1234", owner.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "INVALID_TASK_ID");
    assert!(
        body["reason"].as_str().unwrap().contains("taskId"),
        "{body}"
    );
    let (status, body) = tee
        .explain_raw(&format!("{path}?worker=0xnothex"), owner.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "INVALID_WORKER_ADDRESS");
    assert!(
        body["reason"].as_str().unwrap().contains("worker"),
        "{body}"
    );
    let unknown = B256::repeat_byte(0x42);
    let (status, body) = tee
        .explain_raw(
            &encode_prefixed(unknown),
            Some(
                sign_eip191(
                    &deal.spec.workerpool_owner,
                    &challenge::explain_request(&unknown),
                )
                .to_hex(),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "UNKNOWN_TASK");

    let (status, body) = tee.explain_raw(&path, owner.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tee.assert_untouched(task).await;

    // The chain down: a bounded 503, like the other TEE routes.
    chain.stop().await.unwrap();
    let started = std::time::Instant::now();
    let (status, body) = tee.explain_raw(&path, owner).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "LEDGER_UNAVAILABLE");
    assert!(started.elapsed() < Duration::from_secs(10));
    chain.resume().await.unwrap();
}

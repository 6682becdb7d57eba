//! The chain-facing parts of `POST /tee/challenges/{taskId}` and `POST /tee/sessions`, provoked
//! for real: an in-process production-mode server (`--chain-rpc/--hub`, `--tee-framework scone`,
//! a pipelines file) whose ledger is the iExec PoCo contracts on a fresh local anvil chain per
//! test (sms-testkit). These tests need `tools/chain/setup.sh` to have run; they fail (never
//! skip) otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SESSION_NAMESPACE: &str = sms_store::Namespace::TeeSession.as_str();

use alloy_signer_local::PrivateKeySigner;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sms_chain::Ledger;
use sms_chain::poco::{PocoConfig, PocoLedger};
use sms_client::Web2Write;
use sms_core::authorization::WorkerpoolAuthorization;
use sms_core::challenge;
use sms_core::hex::encode_prefixed;
use sms_core::ledger::TaskStatus;
use sms_core::signature::sign_eip191;
use sms_core::stored_session::StoredSession;
use sms_core::{Address, B256};
use sms_server::tee::args::FrameworkArg;
use sms_server::{ChainArgs, ServerConfig};
use sms_store::sqlite::SqliteBackend;
use sms_store::{Backend, MasterKey, RecordKey, Store};
use sms_testkit::chain::{AppSpec, CATEGORIES, DealSpec, LocalChain, TestDeal, scone_tag, wallet};
use sms_testkit::proxy::{Fault, FaultProxy};
use sms_testkit::server::TestServer;

/// Ledger read bound of the servers under test.
const TIMEOUT: Duration = Duration::from_millis(1000);
/// Slack on top of [`TIMEOUT`] for the HTTP round trip and a loaded 2-core machine: the point is
/// "bounded", not a performance target.
const SLACK: Duration = Duration::from_millis(2000);
/// Fingerprint in `SCONE_MRENCLAVE` (sms-testkit): the expected measurement of the app enclave.
const APP_FP: &str = "2d4b9efd066d0bb058b8da79bf8551be7d244779bc41d03a12201a4004779609";
const PRE_FP: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const POST_FP: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// One pipeline for the version of [`SCONE_MRENCLAVE`] (`v5.9`).
fn pipelines_toml() -> String {
    format!(
        "[[pipelines]]\nversion = \"v5.9\"\n\
         [pipelines.pre-compute]\nimage = \"pre:1\"\nfingerprint = \"{PRE_FP}\"\nentrypoint = \"/pre\"\nheap-size = \"1GB\"\n\
         [pipelines.post-compute]\nimage = \"post:1\"\nfingerprint = \"{POST_FP}\"\nentrypoint = \"/post\"\nheap-size = \"1GB\"\n"
    )
}

fn tag(low_byte: u8) -> B256 {
    let mut tag = B256::ZERO;
    tag[31] = low_byte;
    tag
}

/// A production-mode SCONE server over `chain`, and a second handle on its store.
struct Tee {
    server: TestServer,
    http: reqwest::Client,
    store: Store,
    backend: Arc<SqliteBackend>,
}

impl Tee {
    async fn start(chain: &LocalChain) -> Self {
        Self::start_via(chain, chain.rpc_url()).await
    }

    /// Reads `chain` through `rpc` (the node itself or a proxy in front of it).
    async fn start_via(chain: &LocalChain, rpc: &str) -> Self {
        Self::start_configured(chain, rpc, |_| {}).await
    }

    async fn start_configured(
        chain: &LocalChain,
        rpc: &str,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pipelines = dir.path().join("pipelines.toml");
        std::fs::write(&pipelines, pipelines_toml()).unwrap();
        let mut config = ServerConfig::dev_in(dir.path().join("data"));
        config.dev = false;
        config.chain = ChainArgs {
            chain_rpc: Some(rpc.to_owned()),
            hub: Some(chain.hub()),
            chain_id: Some(chain.chain_id()),
            chain_timeout_ms: TIMEOUT.as_millis() as u64,
            chain_retries: 1,
            chain_fresh_ms: 0,
        };
        config.tee.tee_framework = Some(FrameworkArg::Scone);
        config.tee.pipelines = Some(pipelines);
        config.tee.las_image = Some("las:1".into());
        configure(&mut config);
        let server = TestServer::with_config(config, Some(dir)).await;
        let data = server.data_dir();
        let (master, _) = MasterKey::load_or_create(&data.join("master.key")).unwrap();
        let backend = Arc::new(SqliteBackend::open(&data.join("sms.db")).await.unwrap());
        let store = Store::open(backend.clone(), master).await.unwrap();
        Self {
            server,
            http: reqwest::Client::new(),
            store,
            backend,
        }
    }

    async fn challenge_as(
        &self,
        task: B256,
        signer: Option<&PrivateKeySigner>,
    ) -> (StatusCode, String) {
        let mut req = self
            .http
            .post(format!("{}/tee/challenges/{task}", self.server.url()));
        if let Some(s) = signer {
            req = req.header(
                "Authorization",
                sign_eip191(s, &challenge::enclave_challenge_request(&task)).to_hex(),
            );
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        // A refusal's reason travels in X-Sms-Reason; the body is only `{"error": CODE}`.
        let reason = resp
            .headers()
            .get("x-sms-reason")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.unwrap();
        match reason {
            Some(reason) => (status, format!("{text} {reason}")),
            None => (status, text),
        }
    }

    /// The challenge the workerpool owner gets for `task` (200 expected).
    async fn challenge(&self, deal: &TestDeal, task: B256) -> Address {
        let (status, text) = self
            .challenge_as(task, Some(&deal.spec.workerpool_owner))
            .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        text.parse().unwrap()
    }

    /// `POST /tee/sessions` by `deal.worker`, the authorization signed by `pool_signer`.
    async fn session_as(
        &self,
        deal: &TestDeal,
        task: B256,
        enclave: Address,
        pool_signer: &PrivateKeySigner,
    ) -> (StatusCode, Value) {
        let worker = &deal.worker;
        let hash = challenge::workerpool_authorization(&worker.address(), &task, &enclave);
        let auth = WorkerpoolAuthorization {
            chain_task_id: task,
            deal_id: deal.deal_id,
            task_index: 0,
            worker_wallet: worker.address(),
            enclave_challenge: enclave,
            signature: sign_eip191(pool_signer, &hash),
        };
        let resp = self
            .http
            .post(format!("{}/tee/sessions", self.server.url()))
            .header("Content-Type", "application/json")
            .header("Authorization", sign_eip191(worker, &hash).to_hex())
            .body(auth.to_json())
            .send()
            .await
            .unwrap();
        sms_testkit::server::session_reply(resp).await
    }

    async fn session(&self, deal: &TestDeal, task: B256, enclave: Address) -> (StatusCode, Value) {
        self.session_as(deal, task, enclave, &deal.spec.workerpool_owner)
            .await
    }

    /// The error code of a refused session (status checked by the caller).
    async fn session_error(
        &self,
        deal: &TestDeal,
        task: B256,
        enclave: Address,
    ) -> (StatusCode, String) {
        let (status, body) = self.session(deal, task, enclave).await;
        (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    }
}

/// A deal of fresh owners: an app made from `app`, a workerpool, a requester; category
/// `category`, trust 1, prices 0.
async fn deal_of(
    chain: &LocalChain,
    app: AppSpec,
    tag: B256,
    category: u64,
    volume: u64,
    params: &str,
) -> TestDeal {
    let app_owner = wallet();
    let app = chain.create_app(app_owner.address(), &app).await.unwrap();
    let workerpool_owner = wallet();
    let workerpool = chain
        .create_workerpool(workerpool_owner.address(), "tee_chain pool")
        .await
        .unwrap();
    let requester = wallet();
    let spec = DealSpec {
        app,
        app_owner,
        dataset: None,
        workerpool,
        workerpool_owner,
        beneficiary: requester.address(),
        requester,
        callback: Address::ZERO,
        tag,
        category,
        trust: 1,
        volume,
        params: params.to_owned(),
    };
    let deal_id = chain.match_orders(&spec).await.unwrap();
    TestDeal {
        deal_id,
        spec,
        worker: wallet(),
        enclave: wallet(),
    }
}

async fn scone_deal(chain: &LocalChain, volume: u64, params: &str) -> TestDeal {
    deal_of(
        chain,
        AppSpec::scone("tee-chain-app"),
        scone_tag(),
        0,
        volume,
        params,
    )
    .await
}

fn reader(chain: &LocalChain) -> PocoConfig {
    let mut config = PocoConfig::new(chain.rpc_url(), chain.hub(), chain.chain_id());
    config.fresh_for = Duration::ZERO;
    config
}

type Env = BTreeMap<String, String>;

fn service<'a>(s: &'a StoredSession, name: &str) -> &'a sms_core::stored_session::StoredService {
    s.services
        .iter()
        .find(|x| x.role.name() == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", s.services))
}

#[tokio::test]
async fn session_for_an_active_tee_task_of_a_real_deal() {
    let chain = LocalChain::start().await;
    let tee = Tee::start(&chain).await;
    let deal = scone_deal(&chain, 1, r#"{"iexec_secrets":{"1":"foo"}}"#).await;
    let requester = &deal.spec.requester;
    let client = tee.server.client();
    client
        .push_requester_secret(requester, "foo", "foo-value")
        .await
        .unwrap();
    client
        .push_web2_secret(
            requester,
            "iexec-result-iexec-ipfs-token",
            "ipfs-token",
            Web2Write::Create,
        )
        .await
        .unwrap();
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();

    let enclave = tee.challenge(&deal, task).await;
    assert_eq!(tee.challenge(&deal, task).await, enclave, "idempotent");
    let (status, answer) = tee.session(&deal, task, enclave).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["data"]["secretProvisioningUrl"],
        json!(tee.server.url().trim_start_matches("http://"))
    );
    let id = answer["data"]["sessionId"].as_str().unwrap();
    assert!(id.ends_with(&format!("0000{task}")), "{id}");

    let stored = tee
        .store
        .get(&RecordKey::new(SESSION_NAMESPACE, "", id))
        .await
        .unwrap()
        .expect("the session is stored");
    let session: StoredSession = serde_json::from_slice(stored.value.as_bytes()).unwrap();
    assert_eq!(
        (session.task_id, session.worker),
        (task, deal.worker.address())
    );
    let names: Vec<&str> = session.services.iter().map(|s| s.role.name()).collect();
    assert_eq!(names, ["app", "post-compute"], "no dataset: no pre-compute");

    let zero = encode_prefixed(Address::ZERO);
    let expected: Env = [
        ("IEXEC_TASK_ID", encode_prefixed(task)),
        ("IEXEC_DEAL_ID", encode_prefixed(deal.deal_id)),
        ("IEXEC_TASK_INDEX", "0".into()),
        ("IEXEC_IN", "/iexec_in".into()),
        ("IEXEC_OUT", "/iexec_out".into()),
        ("IEXEC_BOT_SIZE", "1".into()),
        ("IEXEC_BOT_FIRST_INDEX", "0".into()),
        ("IEXEC_BOT_TASK_INDEX", "0".into()),
        ("IEXEC_DATASET_ADDRESS", zero.clone()),
        ("IEXEC_DATASET_FILENAME", zero),
        ("IEXEC_INPUT_FILES_NUMBER", "0".into()),
        ("IEXEC_REQUESTER_SECRET_1", "foo-value".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let app = service(&session, "app");
    assert_eq!(app.env, expected);
    assert_eq!(app.measurement.as_hex(), APP_FP, "from m_appMREnclave");
    assert_eq!(app.command.as_deref(), Some("python /app/app.py"));
    let post = service(&session, "post-compute");
    assert_eq!(
        post.measurement.as_hex(),
        POST_FP,
        "from the pipelines file"
    );
    assert_eq!(post.env["RESULT_STORAGE_TOKEN"], "ipfs-token");
    assert_eq!(
        post.env["SIGN_WORKER_ADDRESS"],
        deal.worker.address().to_checksum(None)
    );

    // Never kept past the task's final deadline on chain.
    let ledger = PocoLedger::connect(reader(&chain)).await.unwrap();
    let onchain = ledger.task(task).await.unwrap().unwrap();
    assert!(
        session.expires_at <= onchain.final_deadline,
        "{} > {}",
        session.expires_at,
        onchain.final_deadline
    );
}

#[tokio::test]
async fn challenge_expiry_is_the_onchain_final_deadline() {
    let chain = LocalChain::start().await;
    let tee = Tee::start(&chain).await;
    // Category 2 (M, 3600 s): the final deadline is start + 10 × 3600, not a constant.
    let category = 2;
    let deal = deal_of(
        &chain,
        AppSpec::scone("tee-chain-app"),
        scone_tag(),
        category,
        1,
        "{}",
    )
    .await;
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();
    let enclave = tee.challenge(&deal, task).await;

    let ledger = PocoLedger::connect(reader(&chain)).await.unwrap();
    let onchain = ledger.task(task).await.unwrap().unwrap();
    let start = ledger.deal(deal.deal_id).await.unwrap().unwrap().start_time;
    assert_eq!(
        onchain.final_deadline,
        start + 10 * CATEGORIES[category as usize].1
    );
    let row = tee
        .backend
        .get(&RecordKey::new("tee-challenge", "", encode_prefixed(task)))
        .await
        .unwrap()
        .expect("challenge row");
    assert_eq!(row.expires_at, Some(onchain.final_deadline as i64));
    // The stored key is the one whose address was answered.
    let key = tee
        .store
        .get(&RecordKey::new("tee-challenge", "", encode_prefixed(task)))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(key.value.as_bytes().to_vec()).unwrap();
    let signer: PrivateKeySigner = text.trim_start_matches("0x").parse().unwrap();
    assert_eq!(signer.address(), enclave);
}

#[tokio::test]
async fn tasks_that_are_missing_or_not_active_are_refused() {
    let chain = LocalChain::start().await;
    let tee = Tee::start(&chain).await;
    let deal = scone_deal(&chain, 4, "{}").await;
    let revealing = chain.initialize_task(deal.deal_id, 1).await.unwrap();
    chain
        .contribute(&deal, revealing, B256::repeat_byte(7))
        .await
        .unwrap();
    let completed = chain.initialize_task(deal.deal_id, 2).await.unwrap();
    chain
        .contribute_and_finalize(&deal, completed, B256::repeat_byte(8), b"{}")
        .await
        .unwrap();
    // Last: failing moves the chain's clock past every deadline.
    let failed = chain.initialize_task(deal.deal_id, 3).await.unwrap();
    chain.fail_task(failed).await.unwrap();

    let ledger = PocoLedger::connect(reader(&chain)).await.unwrap();
    for (task, status) in [
        (revealing, TaskStatus::Revealing),
        (completed, TaskStatus::Completed),
        (failed, TaskStatus::Failed),
    ] {
        assert_eq!(ledger.task(task).await.unwrap().unwrap().status, status);
    }

    let get_failed = "EXECUTION_NOT_AUTHORIZED_GET_CHAIN_TASK_FAILED";
    let not_active = "EXECUTION_NOT_AUTHORIZED_TASK_NOT_ACTIVE";
    let cases = [
        ("unknown task id", B256::repeat_byte(0x42), get_failed),
        // viewTask of a task never initialized has a zero deal id: PoCo's UNSET is "not found".
        ("UNSET (not initialized)", deal.task_id(0), get_failed),
        ("outside the deal", deal.task_id(4), get_failed),
        ("REVEALING", revealing, not_active),
        ("COMPLETED", completed, not_active),
        ("FAILED", failed, not_active),
    ];
    for (label, task, code) in cases {
        let (status, text) = tee
            .challenge_as(task, Some(&deal.spec.workerpool_owner))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {text}");
        // No challenge can be issued: ask with any enclave address.
        let (status, body) = tee.session(&deal, task, wallet().address()).await;
        assert_eq!(
            (status, body["error"].as_str().unwrap_or_default()),
            (StatusCode::UNAUTHORIZED, code),
            "{label}: {body}"
        );
        assert!(
            body["reason"]
                .as_str()
                .unwrap_or_default()
                .contains(&task.to_string()),
            "{label}: {body}"
        );
    }
}

#[tokio::test]
async fn deal_tags_without_the_served_framework() {
    let chain = LocalChain::start().await;
    let tee = Tee::start(&chain).await;
    let cases = [
        // Standard (non-TEE) deal: no framework nibble.
        (
            "no TEE bit",
            tag(0x00),
            StatusCode::UNAUTHORIZED,
            "EXECUTION_NOT_AUTHORIZED_NO_MATCH_ONCHAIN_TYPE",
        ),
        (
            "TEE bit, no framework",
            tag(0x01),
            StatusCode::UNAUTHORIZED,
            "EXECUTION_NOT_AUTHORIZED_NO_MATCH_ONCHAIN_TYPE",
        ),
        (
            "GRAMINE on a SCONE SMS",
            tag(0x05),
            StatusCode::CONFLICT,
            "EXECUTION_NOT_AUTHORIZED_TEE_FRAMEWORK_MISMATCH",
        ),
    ];
    for (label, tag, status, code) in cases {
        let deal = deal_of(&chain, AppSpec::scone("tagged"), tag, 0, 1, "{}").await;
        let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();
        let (challenge_status, text) = tee
            .challenge_as(task, Some(&deal.spec.workerpool_owner))
            .await;
        assert_eq!(challenge_status, status, "{label}: challenge {text}");
        assert_eq!(
            tee.session_error(&deal, task, wallet().address()).await,
            (status, code.to_owned()),
            "{label}"
        );
    }
}

#[tokio::test]
async fn only_the_workerpool_owner_may_authorize() {
    let chain = LocalChain::start().await;
    let tee = Tee::start(&chain).await;
    let deal = scone_deal(&chain, 1, "{}").await;
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();
    let spec = &deal.spec;

    let others = [
        ("a stranger", wallet()),
        ("the app owner", spec.app_owner.clone()),
        ("the requester", spec.requester.clone()),
        ("the worker", deal.worker.clone()),
    ];
    for (label, signer) in &others {
        let (status, text) = tee.challenge_as(task, Some(signer)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "challenge by {label}");
        assert!(
            text.contains(&spec.workerpool_owner.address().to_string()),
            "{label}: {text}"
        );
    }
    let (status, _) = tee.challenge_as(task, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no signature");

    let enclave = tee.challenge(&deal, task).await;
    for (label, signer) in &others {
        let (status, body) = tee.session_as(&deal, task, enclave, signer).await;
        assert_eq!(
            (status, body["error"].as_str().unwrap_or_default()),
            (
                StatusCode::UNAUTHORIZED,
                "EXECUTION_NOT_AUTHORIZED_INVALID_SIGNATURE"
            ),
            "session authorized by {label}: {body}"
        );
    }
}

#[tokio::test]
async fn app_without_an_enclave_configuration() {
    let chain = LocalChain::start().await;
    let tee = Tee::start(&chain).await;
    let app = AppSpec {
        mrenclave: Vec::new(),
        ..AppSpec::scone("no-enclave-config")
    };
    let deal = deal_of(&chain, app, scone_tag(), 0, 1, "{}").await;
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();
    let enclave = tee.challenge(&deal, task).await;
    assert_eq!(
        tee.session_error(&deal, task, enclave).await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "APP_COMPUTE_NO_ENCLAVE_CONFIG".to_owned()
        )
    );
}

/// An ACTIVE task with its challenge issued and a storage token pushed: ready for a session.
async fn ready_task(chain: &LocalChain, tee: &Tee) -> (TestDeal, B256, Address) {
    let deal = scone_deal(chain, 1, "{}").await;
    tee.server
        .client()
        .push_web2_secret(
            &deal.spec.requester,
            "iexec-result-iexec-ipfs-token",
            "t",
            Web2Write::Create,
        )
        .await
        .unwrap();
    let task = chain.initialize_task(deal.deal_id, 0).await.unwrap();
    let enclave = tee.challenge(&deal, task).await;
    (deal, task, enclave)
}

/// While the chain cannot be read: the challenge is a 503 and the session a 503 carrying the
/// reference's code for an unreadable task (GET_CHAIN_TASK_FAILED) and the ledger's reason, so
/// a worker can retry; both within the read bound; the server stays up.
async fn assert_bounded_refusals(
    tee: &Tee,
    deal: &TestDeal,
    task: B256,
    enclave: Address,
    label: &str,
) {
    let bound = TIMEOUT + SLACK;
    let started = Instant::now();
    let (status, text) = tee
        .challenge_as(task, Some(&deal.spec.workerpool_owner))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{label}: {text}");
    assert!(text.contains("LEDGER_UNAVAILABLE"), "{label}: {text}");
    assert!(
        elapsed < bound,
        "{label}: challenge in {elapsed:?}, bound {bound:?}"
    );

    let started = Instant::now();
    let (status, body) = tee.session(deal, task, enclave).await;
    let elapsed = started.elapsed();
    assert_eq!(
        (status, body["error"].as_str().unwrap_or_default()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "EXECUTION_NOT_AUTHORIZED_GET_CHAIN_TASK_FAILED"
        ),
        "{label}: {body}"
    );
    assert!(
        body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("ledger unavailable"),
        "{label}: {body}"
    );
    assert!(
        elapsed < bound,
        "{label}: session in {elapsed:?}, bound {bound:?}"
    );
    eprintln!("{label}: session refused in {elapsed:?}");
    assert_eq!(
        tee.http
            .get(format!("{}/health", tee.server.url()))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK,
        "{label}: the server stays up"
    );
}

#[tokio::test]
async fn chain_down_during_challenge_and_session_is_bounded() {
    let mut chain = LocalChain::start().await;
    let tee = Tee::start(&chain).await;
    let (deal, task, enclave) = ready_task(&chain, &tee).await;

    chain.stop().await.unwrap();
    assert_bounded_refusals(&tee, &deal, task, enclave, "node down").await;

    chain.resume().await.unwrap();
    assert_eq!(tee.challenge(&deal, task).await, enclave, "same key after");
    let (status, body) = tee.session(&deal, task, enclave).await;
    assert_eq!(status, StatusCode::OK, "after the node is back: {body}");
}

#[tokio::test]
async fn hanging_rpc_during_challenge_and_session_is_bounded() {
    let chain = LocalChain::start().await;
    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], chain.port())))
        .await
        .unwrap();
    let tee = Tee::start_via(&chain, &proxy.url()).await;
    let (deal, task, enclave) = ready_task(&chain, &tee).await;

    proxy.set(Fault::Hang);
    assert_bounded_refusals(&tee, &deal, task, enclave, "hanging rpc").await;

    proxy.set(Fault::None);
    assert_eq!(tee.challenge(&deal, task).await, enclave, "same key after");
    let (status, body) = tee.session(&deal, task, enclave).await;
    assert_eq!(status, StatusCode::OK, "after the hang: {body}");
}

/// At release, the task is read again from the chain: while the node is down the release is a
/// bounded 503 `CHAIN_UNAVAILABLE` (nothing counted), and once it is back the enclave gets its
/// environment, signed by the SMS identity.
#[tokio::test]
async fn release_reads_the_task_again_and_a_chain_outage_is_a_bounded_503() {
    let mut chain = LocalChain::start().await;
    let rpc = chain.rpc_url().to_owned();
    let tee = Tee::start_configured(&chain, &rpc, |c| {
        c.attest.dangerous_allow_simulated_tee = Some(true)
    })
    .await;
    let (deal, task, enclave) = ready_task(&chain, &tee).await;
    let (status, answer) = tee.session(&deal, task, enclave).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = answer["data"]["sessionId"].as_str().unwrap().to_owned();
    let client = tee.server.client();
    let pinned = client.provision_identity().await.unwrap();
    let pinned = sms_attest::SmsPublicKey::from_base64(&pinned.public_key).unwrap();
    let claim = |report_data: &[u8; 64]| {
        Ok(sms_attest::Evidence::Simulated {
            measurement: sms_core::hex::decode_lenient(APP_FP).unwrap(),
            report_data: *report_data,
            debug: false,
        })
    };

    chain.stop().await.unwrap();
    let started = Instant::now();
    let refused = client
        .attested_release(&id, "app", &pinned, claim)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(refused.code(), Some("CHAIN_UNAVAILABLE"), "{refused}");
    assert!(
        elapsed < TIMEOUT * 3 + SLACK,
        "release refused in {elapsed:?}"
    );

    chain.resume().await.unwrap();
    let (answer, env) = client
        .attested_release(&id, "app", &pinned, claim)
        .await
        .unwrap();
    assert_eq!(answer.release, 1, "the refused attempt was not counted");
    assert_eq!(env.env["IEXEC_TASK_ID"], encode_prefixed(task));
}

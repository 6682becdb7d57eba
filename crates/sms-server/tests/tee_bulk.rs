//! Bulk processing (docs/bulk-processing.md) against the real PoCo contracts: a production-mode
//! SCONE server on a fresh anvil chain (sms-testkit) reads a `bulk_cid` deal's documents from a
//! loopback IPFS gateway; dataset orders are signed with EIP-712 (`iExecODB`/`5.0.0`) by the
//! dataset owners and checked by PoCo's `assertDatasetDealCompatibility` against the chain's
//! owners. Needs `tools/chain/setup.sh`; fails (never skips) without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SESSION_NAMESPACE: &str = sms_store::Namespace::TeeSession.as_str();

use alloy_signer_local::PrivateKeySigner;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sms_client::Web2Write;
use sms_core::authorization::WorkerpoolAuthorization;
use sms_core::bulk::{self, DatasetOrder, SignedDatasetOrder, open_order};
use sms_core::challenge;
use sms_core::hex::encode_prefixed;
use sms_core::signature::sign_eip191;
use sms_core::stored_session::StoredSession;
use sms_core::{Address, B256, U256};
use sms_server::ServerConfig;
use sms_server::tee::args::FrameworkArg;
use sms_store::sqlite::SqliteBackend;
use sms_store::{MasterKey, RecordKey, Store};
use sms_testkit::chain::{
    AppSpec, DatasetSpec, DealSpec, LocalChain, TestDeal, salt, scone_tag, wallet,
};
use sms_testkit::ipfs::{FakeIpfsGateway, Serve};
use sms_testkit::server::TestServer;

/// Gateway bound of the servers under test.
const IPFS_TIMEOUT: Duration = Duration::from_millis(1500);
/// Room for the HTTP round trip on a loaded machine: the point is "bounded".
const SLACK: Duration = Duration::from_millis(3000);
const PRE_FP: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const POST_FP: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn pipelines_toml() -> String {
    format!(
        "[[pipelines]]\nversion = \"v5.9\"\n\
         [pipelines.pre-compute]\nimage = \"pre:1\"\nfingerprint = \"{PRE_FP}\"\nentrypoint = \"/pre\"\nheap-size = \"1GB\"\n\
         [pipelines.post-compute]\nimage = \"post:1\"\nfingerprint = \"{POST_FP}\"\nentrypoint = \"/post\"\nheap-size = \"1GB\"\n"
    )
}

/// A chain, a gateway and a server reading both.
struct Bulk {
    chain: LocalChain,
    gateway: FakeIpfsGateway,
    server: TestServer,
    store: Store,
}

/// A dataset registered on chain with its key stored in the SMS.
struct Dataset {
    address: Address,
    owner: PrivateKeySigner,
    spec: DatasetSpec,
    key: String,
}

impl Bulk {
    async fn start() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(gateway_configured: bool) -> Self {
        let chain = LocalChain::start().await;
        let gateway = FakeIpfsGateway::start().await;
        let dir = tempfile::tempdir().unwrap();
        let pipelines = dir.path().join("pipelines.toml");
        std::fs::write(&pipelines, pipelines_toml()).unwrap();
        let mut config = ServerConfig::dev_in(dir.path().join("data"));
        config.dev = false;
        config.chain = chain.server_chain_args(2000);
        config.tee.tee_framework = Some(FrameworkArg::Scone);
        config.tee.pipelines = Some(pipelines);
        config.tee.las_image = Some("las:1".into());
        if gateway_configured {
            config.tee.ipfs_gateway = Some(gateway.url());
        }
        config.tee.ipfs_timeout_ms = IPFS_TIMEOUT.as_millis() as u64;
        let server = TestServer::with_config(config, Some(dir)).await;
        let data = server.data_dir();
        let (master, _) = MasterKey::load_or_create(&data.join("master.key")).unwrap();
        let backend = std::sync::Arc::new(SqliteBackend::open(&data.join("sms.db")).await.unwrap());
        let store = Store::open(backend, master).await.unwrap();
        Self {
            chain,
            gateway,
            server,
            store,
        }
    }

    fn domain(&self) -> bulk::Eip712Domain {
        bulk::order_domain(self.chain.chain_id(), self.chain.hub())
    }

    /// A dataset owned by a fresh wallet, its key pushed by that owner.
    async fn dataset(&self, name: &str) -> Dataset {
        let owner = wallet();
        let spec = DatasetSpec::ipfs(name);
        let address = self
            .chain
            .create_dataset(owner.address(), &spec)
            .await
            .unwrap();
        let key = format!("key-of-{name}");
        self.server
            .client()
            .push_dataset_secret(&owner, address, &key)
            .await
            .unwrap();
        Dataset {
            address,
            owner,
            spec,
            key,
        }
    }

    /// An open bulk order of `dataset`, signed by its owner.
    fn order(&self, dataset: &Dataset) -> SignedDatasetOrder {
        SignedDatasetOrder::sign(
            open_order(dataset.address, scone_tag(), salt()),
            &dataset.owner,
            &self.domain(),
        )
    }

    /// Uploads one slice of `orders` and the bulk root listing it; returns the root CID.
    fn publish(&self, orders: &[SignedDatasetOrder]) -> (String, String) {
        let slice: Vec<Value> = orders.iter().map(SignedDatasetOrder::to_json).collect();
        let slice_cid = self.gateway.add(&serde_json::to_vec(&slice).unwrap());
        let root_cid = self
            .gateway
            .add(&serde_json::to_vec(std::slice::from_ref(&slice_cid)).unwrap());
        (root_cid, slice_cid)
    }

    /// A SCONE deal of fresh owners, no dataset, `bulk_cid` = `root`, task 0 initialized, the
    /// requester's IPFS token stored.
    async fn deal(&self, root: &str) -> (TestDeal, B256) {
        let chain = &self.chain;
        let app_owner = wallet();
        let app = chain
            .create_app(app_owner.address(), &AppSpec::scone("bulk-app"))
            .await
            .unwrap();
        let workerpool_owner = wallet();
        let workerpool = chain
            .create_workerpool(workerpool_owner.address(), "bulk pool")
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
            tag: scone_tag(),
            category: 0,
            trust: 1,
            volume: 1,
            params: json!({ "bulk_cid": root, "iexec_result_storage_provider": "ipfs" })
                .to_string(),
        };
        self.server
            .client()
            .push_web2_secret(
                &spec.requester,
                "iexec-result-iexec-ipfs-token",
                "ipfs-token",
                Web2Write::Create,
            )
            .await
            .unwrap();
        let deal_id = chain.match_orders(&spec).await.unwrap();
        let deal = TestDeal {
            deal_id,
            spec,
            worker: wallet(),
            enclave: wallet(),
        };
        let task = chain.initialize_task(deal_id, 0).await.unwrap();
        (deal, task)
    }

    /// Challenge then session, as scheduler and worker do.
    async fn session(&self, deal: &TestDeal, task: B256) -> (StatusCode, Value) {
        let http = reqwest::Client::new();
        let owner = &deal.spec.workerpool_owner;
        let resp = http
            .post(format!("{}/tee/challenges/{task}", self.server.url()))
            .header(
                "Authorization",
                sign_eip191(owner, &challenge::enclave_challenge_request(&task)).to_hex(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let enclave: Address = resp.text().await.unwrap().parse().unwrap();
        let worker = &deal.worker;
        let hash = challenge::workerpool_authorization(&worker.address(), &task, &enclave);
        let auth = WorkerpoolAuthorization {
            chain_task_id: task,
            deal_id: deal.deal_id,
            task_index: 0,
            worker_wallet: worker.address(),
            enclave_challenge: enclave,
            signature: sign_eip191(owner, &hash),
        };
        let resp = http
            .post(format!("{}/tee/sessions", self.server.url()))
            .header("Content-Type", "application/json")
            .header("Authorization", sign_eip191(worker, &hash).to_hex())
            .body(auth.to_json())
            .send()
            .await
            .unwrap();
        sms_testkit::server::session_reply(resp).await
    }

    async fn stored(&self, answer: &Value) -> StoredSession {
        let id = answer["data"]["sessionId"].as_str().unwrap();
        let stored = self
            .store
            .get(&RecordKey::new(SESSION_NAMESPACE, "", id))
            .await
            .unwrap()
            .expect("the session is stored");
        serde_json::from_slice(stored.value.as_bytes()).unwrap()
    }
}

type Env = BTreeMap<String, String>;

fn env<'a>(session: &'a StoredSession, name: &str) -> &'a Env {
    &session
        .services
        .iter()
        .find(|s| s.role.name() == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", session.services))
        .env
}

/// The bulk variables of an environment (`IEXEC_BULK_*`, `IEXEC_DATASET_<i>_*`).
fn bulk_vars(env: &Env) -> Env {
    env.iter()
        .filter(|(k, _)| {
            k.starts_with("IEXEC_BULK_")
                || k.strip_prefix("IEXEC_DATASET_")
                    .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn expected(pairs: &[(String, String)]) -> Env {
    pairs.iter().cloned().collect()
}

fn full(i: usize, d: &Dataset) -> Vec<(String, String)> {
    vec![
        (
            format!("IEXEC_DATASET_{i}_URL"),
            "/ipfs/QmW2WQi7j6c7UgJTarActp7tDNikE4B2qXtFCfLPdsgaTQ".into(),
        ),
        (
            format!("IEXEC_DATASET_{i}_CHECKSUM"),
            encode_prefixed(d.spec.checksum),
        ),
        (format!("IEXEC_DATASET_{i}_KEY"), d.key.clone()),
        (
            format!("IEXEC_DATASET_{i}_FILENAME"),
            encode_prefixed(d.address),
        ),
    ]
}

fn empty(i: usize, address: Address) -> Vec<(String, String)> {
    vec![
        (format!("IEXEC_DATASET_{i}_URL"), String::new()),
        (format!("IEXEC_DATASET_{i}_CHECKSUM"), String::new()),
        (format!("IEXEC_DATASET_{i}_KEY"), String::new()),
        (
            format!("IEXEC_DATASET_{i}_FILENAME"),
            encode_prefixed(address),
        ),
    ]
}

#[tokio::test]
async fn three_valid_orders_give_three_keys_to_pre_compute_and_their_names_to_the_app() {
    let t = Bulk::start().await;
    let datasets = [
        t.dataset("bulk-a").await,
        t.dataset("bulk-b").await,
        t.dataset("bulk-c").await,
    ];
    let orders: Vec<_> = datasets.iter().map(|d| t.order(d)).collect();
    let (root, _) = t.publish(&orders);
    let (deal, task) = t.deal(&root).await;

    let (status, answer) = t.session(&deal, task).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let session = t.stored(&answer).await;
    let names: Vec<&str> = session.services.iter().map(|s| s.role.name()).collect();
    assert_eq!(
        names,
        ["pre-compute", "app", "post-compute"],
        "bulk needs pre-compute"
    );

    let mut pre = vec![("IEXEC_BULK_SLICE_SIZE".to_owned(), "3".to_owned())];
    for (i, d) in datasets.iter().enumerate() {
        pre.extend(full(i + 1, d));
    }
    let pre_env = env(&session, "pre-compute");
    assert_eq!(bulk_vars(pre_env), expected(&pre));
    assert_eq!(
        pre_env["IS_DATASET_REQUIRED"], "false",
        "the deal has no dataset"
    );

    let mut app = vec![("IEXEC_BULK_SLICE_SIZE".to_owned(), "3".to_owned())];
    for (i, d) in datasets.iter().enumerate() {
        app.push((
            format!("IEXEC_DATASET_{}_FILENAME", i + 1),
            encode_prefixed(d.address),
        ));
    }
    assert_eq!(bulk_vars(env(&session, "app")), expected(&app));
    assert!(
        bulk_vars(env(&session, "post-compute")).is_empty(),
        "post-compute gets no dataset"
    );
    assert_eq!(t.gateway.requests(), 2, "root and slice, each read once");
}

/// Each order that breaks a rule keeps its index with empty values (the pre-compute then reports
/// that dataset), as upstream: signed by someone else than the owner, restricted to another
/// app, made for a single task, of an address that is no dataset.
#[tokio::test]
async fn invalid_orders_keep_their_index_with_empty_values() {
    let t = Bulk::start().await;
    let good = t.dataset("bulk-good").await;
    let stolen = t.dataset("bulk-stolen").await;
    let restricted = t.dataset("bulk-restricted").await;
    let single = t.dataset("bulk-single").await;
    let domain = t.domain();

    let impostor = SignedDatasetOrder::sign(
        open_order(stolen.address, scone_tag(), salt()),
        &wallet(),
        &domain,
    );
    let other_app = SignedDatasetOrder::sign(
        DatasetOrder {
            apprestrict: Address::repeat_byte(0xaa),
            ..open_order(restricted.address, scone_tag(), salt())
        },
        &restricted.owner,
        &domain,
    );
    let one_task = SignedDatasetOrder::sign(
        DatasetOrder {
            volume: U256::from(1),
            ..open_order(single.address, scone_tag(), salt())
        },
        &single.owner,
        &domain,
    );
    let nobody = Address::repeat_byte(0x5e);
    let not_a_dataset =
        SignedDatasetOrder::sign(open_order(nobody, scone_tag(), salt()), &wallet(), &domain);
    let (root, _) = t.publish(&[t.order(&good), impostor, other_app, one_task, not_a_dataset]);
    let (deal, task) = t.deal(&root).await;

    let (status, answer) = t.session(&deal, task).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let session = t.stored(&answer).await;
    let mut pre = vec![("IEXEC_BULK_SLICE_SIZE".to_owned(), "5".to_owned())];
    pre.extend(full(1, &good));
    pre.extend(empty(2, stolen.address));
    pre.extend(empty(3, restricted.address));
    pre.extend(empty(4, single.address));
    pre.extend(empty(5, nobody));
    assert_eq!(bulk_vars(env(&session, "pre-compute")), expected(&pre));
    assert_eq!(
        env(&session, "app")["IEXEC_BULK_SLICE_SIZE"],
        "5",
        "the app sees every file name"
    );
}

/// The order restricted to the deal's own app, pool and requester is accepted: the check reads
/// the deal, not just "zero".
#[tokio::test]
async fn restrictions_naming_the_deal_are_satisfied() {
    let t = Bulk::start().await;
    let d = t.dataset("bulk-named").await;
    // Restrictions must be known before the deal exists: make the deal first with a root that
    // is published afterwards (the CID is content-addressed, so publish the order now and
    // reuse the app/pool/requester of a first deal).
    let (probe_root, _) = t.publish(&[t.order(&d)]);
    let (probe, _) = t.deal(&probe_root).await;
    let named = SignedDatasetOrder::sign(
        DatasetOrder {
            apprestrict: probe.spec.app,
            workerpoolrestrict: probe.spec.workerpool,
            requesterrestrict: probe.spec.requester.address(),
            ..open_order(d.address, scone_tag(), salt())
        },
        &d.owner,
        &t.domain(),
    );
    let (root, _) = t.publish(&[named]);
    let mut spec = probe.spec.clone();
    spec.params = json!({ "bulk_cid": root, "iexec_result_storage_provider": "ipfs" }).to_string();
    let deal_id = t.chain.match_orders(&spec).await.unwrap();
    let deal = TestDeal {
        deal_id,
        spec,
        worker: wallet(),
        enclave: wallet(),
    };
    let task = t.chain.initialize_task(deal_id, 0).await.unwrap();
    let (status, answer) = t.session(&deal, task).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let session = t.stored(&answer).await;
    let mut pre = vec![("IEXEC_BULK_SLICE_SIZE".to_owned(), "1".to_owned())];
    pre.extend(full(1, &d));
    assert_eq!(bulk_vars(env(&session, "pre-compute")), expected(&pre));
}

#[tokio::test]
async fn a_tampered_document_is_refused() {
    let t = Bulk::start().await;
    let d = t.dataset("bulk-tampered").await;
    let (root, slice) = t.publish(&[t.order(&d)]);
    // The gateway answers another valid-looking slice under the same CID.
    let other = t.dataset("bulk-substitute").await;
    let forged = serde_json::to_vec(&[t.order(&other).to_json()]).unwrap();
    t.gateway.set(&slice, Serve::Bytes(forged));
    let (deal, task) = t.deal(&root).await;
    let (status, body) = t.session(&deal, task).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"], "PRE_COMPUTE_BULK_CID_MISMATCH", "{body}");
    assert_eq!(body["wireError"], "SECURE_SESSION_GENERATION_FAILED");
    assert!(body["reason"].as_str().unwrap().contains(&slice), "{body}");
}

#[tokio::test]
async fn a_hanging_gateway_is_a_bounded_retryable_refusal() {
    let t = Bulk::start().await;
    let (deal, task) = t
        .deal("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
        .await;
    t.gateway.set(
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
        Serve::Hang,
    );
    let started = Instant::now();
    let (status, body) = t.session(&deal, task).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "PRE_COMPUTE_BULK_GATEWAY_FAILED", "{body}");
    assert!(took < IPFS_TIMEOUT + SLACK, "took {took:?}");
    // An error status is the same refusal.
    t.gateway.set(
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
        Serve::Status(500),
    );
    let (status, body) = t.session(&deal, task).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "PRE_COMPUTE_BULK_GATEWAY_FAILED", "{body}");
}

#[tokio::test]
async fn oversized_or_malformed_documents_are_invalid() {
    let t = Bulk::start().await;
    let cid = "QmR9BAE3mzYhqgJ5eoHLYPV91oG8EcsUutiv8FW2QtyL1t";
    let (deal, task) = t.deal(cid).await;
    for answer in [
        Serve::Endless,
        Serve::Bytes(vec![b' '; bulk::MAX_DOCUMENT_BYTES + 1]),
    ] {
        t.gateway.set(cid, answer);
        let started = Instant::now();
        let (status, body) = t.session(&deal, task).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"], "PRE_COMPUTE_BULK_DOCUMENT_INVALID", "{body}");
        assert!(
            body["reason"].as_str().unwrap().contains("larger"),
            "{body}"
        );
        assert!(started.elapsed() < IPFS_TIMEOUT + SLACK);
    }
    // A verified document that is not a bulk root, and a root without a slice for task 0.
    for content in [b"{\"not\":\"a list\"}".to_vec(), b"[]".to_vec()] {
        let root = t.gateway.add(&content);
        let (deal, task) = t.deal(&root).await;
        let (status, body) = t.session(&deal, task).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"], "PRE_COMPUTE_BULK_DOCUMENT_INVALID", "{body}");
    }
    // A bulk_cid this SMS cannot verify.
    let (deal, task) = t.deal("bafkqaaa").await;
    let (status, body) = t.session(&deal, task).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "PRE_COMPUTE_BULK_DOCUMENT_INVALID", "{body}");
}

#[tokio::test]
async fn without_a_gateway_bulk_tasks_are_refused() {
    let t = Bulk::start_with(false).await;
    let d = t.dataset("bulk-nogw").await;
    let (root, _) = t.publish(&[t.order(&d)]);
    let (deal, task) = t.deal(&root).await;
    let (status, body) = t.session(&deal, task).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert_eq!(body["error"], "PRE_COMPUTE_BULK_PROCESSING_NOT_SUPPORTED");
    assert_eq!(t.gateway.requests(), 0);
}

//! `/tee/*` over HTTP against an in-process `--dev` server: challenges (idempotence,
//! concurrency, sweep), properties, every session error code, and the stored session of each
//! task shape (whole env maps read back from the store).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

const SESSION_NAMESPACE: &str = sms_store::Namespace::TeeSession.as_str();

use alloy_signer_local::PrivateKeySigner;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sms_client::Web2Write;
use sms_core::authorization::WorkerpoolAuthorization;
use sms_core::challenge;
use sms_core::hex::encode_prefixed;
use sms_core::signature::sign_eip191;
use sms_core::stored_session::StoredSession;
use sms_core::{Address, B256};
use sms_server::ServerConfig;
use sms_store::sqlite::SqliteBackend;
use sms_store::{MasterKey, RecordKey, Store};
use sms_testkit::server::TestServer;

const APP_FP: &str = "2d4b9efd066d0bb058b8da79bf8551be7d244779bc41d03a12201a4004779609";
const APP_IMAGE: &str = "docker.io/example/app:1.0.0";

fn scone_config(version: &str) -> String {
    format!(
        r#"{{"framework":"SCONE","version":"{version}","entrypoint":"python /app/app.py","heapSize":1073741824,"fingerprint":"{APP_FP}"}}"#
    )
}

struct World {
    server: TestServer,
    http: reqwest::Client,
    store: Store,
    app_owner: PrivateKeySigner,
    app: Address,
    pool_owner: PrivateKeySigner,
    pool: Address,
    requester: PrivateKeySigner,
    worker: PrivateKeySigner,
}

async fn open_store(server: &TestServer) -> Store {
    let dir = server.data_dir();
    let (master, _) = MasterKey::load_or_create(&dir.join("master.key")).unwrap();
    let backend = SqliteBackend::open(&dir.join("sms.db")).await.unwrap();
    Store::open(std::sync::Arc::new(backend), master)
        .await
        .unwrap()
}

impl World {
    async fn new() -> Self {
        Self::with_server(TestServer::dev().await).await
    }

    async fn with_config(f: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
        f(&mut config);
        Self::with_server(TestServer::with_config(config, Some(dir)).await).await
    }

    async fn with_server(server: TestServer) -> Self {
        let store = open_store(&server).await;
        let http = reqwest::Client::new();
        let app_owner = PrivateKeySigner::random();
        let pool_owner = PrivateKeySigner::random();
        let mut w = Self {
            server,
            http,
            store,
            app: Address::ZERO,
            app_owner,
            pool: Address::ZERO,
            pool_owner,
            requester: PrivateKeySigner::random(),
            worker: PrivateKeySigner::random(),
        };
        w.app = w.deploy_app(&scone_config("v5")).await;
        w.pool = w
            .post_ok(
                "/dev/workerpools",
                json!({ "owner": w.pool_owner.address() }),
            )
            .await["address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        w
    }

    async fn deploy_app(&self, mrenclave: &str) -> Address {
        let body = json!({
            "owner": self.app_owner.address(), "name": "app", "multiaddr": APP_IMAGE,
            "checksum": format!("0x{}", "ab".repeat(32)), "mrenclave": mrenclave,
        });
        self.post_ok("/dev/apps", body).await["address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.server.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (
            status,
            serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    async fn post_ok(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.post(path, body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        answer
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.server.url()))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (
            status,
            serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    /// A deal of this world's app and pool; `extra` overrides fields. Returns the task ids.
    async fn deal(&self, extra: Value) -> Vec<B256> {
        let mut body = json!({
            "app": self.app, "workerpool": self.pool, "requester": self.requester.address(),
            "tag": "tee,scone", "volume": 1,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let answer = self.post_ok("/dev/deals", body).await;
        answer["taskIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().parse().unwrap())
            .collect()
    }

    async fn task(&self, extra: Value) -> B256 {
        self.deal(extra).await[0]
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
        (resp.status(), resp.text().await.unwrap())
    }

    async fn challenge(&self, task: B256) -> Address {
        let (status, text) = self.challenge_as(task, Some(&self.pool_owner)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(text, text.to_lowercase());
        text.parse().unwrap()
    }

    fn authorization(
        &self,
        task: B256,
        enclave: Address,
        pool_signer: &PrivateKeySigner,
    ) -> (String, String) {
        let hash = challenge::workerpool_authorization(&self.worker.address(), &task, &enclave);
        let auth = WorkerpoolAuthorization {
            chain_task_id: task,
            deal_id: B256::ZERO,
            task_index: 0,
            worker_wallet: self.worker.address(),
            enclave_challenge: enclave,
            signature: sign_eip191(pool_signer, &hash),
        };
        (auth.to_json(), sign_eip191(&self.worker, &hash).to_hex())
    }

    async fn raw_session(&self, header: Option<&str>, body: &str) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}/tee/sessions", self.server.url()))
            .header("Content-Type", "application/json")
            .body(body.to_owned());
        if let Some(h) = header {
            req = req.header("Authorization", h);
        }
        sms_testkit::server::session_reply(req.send().await.unwrap()).await
    }

    async fn session_with(&self, task: B256, enclave: Address) -> (StatusCode, Value) {
        let (body, header) = self.authorization(task, enclave, &self.pool_owner);
        self.raw_session(Some(&header), &body).await
    }

    /// Issues the challenge and asks for a session; returns the error code or the stored session.
    async fn session(&self, task: B256) -> Result<StoredSession, (StatusCode, String)> {
        let enclave = self.challenge(task).await;
        let (status, answer) = self.session_with(task, enclave).await;
        if status != StatusCode::OK {
            return Err((
                status,
                answer["error"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        // SCONE: `host:port` of the attestation endpoint, without a scheme, as upstream.
        assert_eq!(
            answer["data"]["secretProvisioningUrl"],
            json!(self.server.url().trim_start_matches("http://"))
        );
        let id = answer["data"]["sessionId"].as_str().unwrap();
        assert_eq!(id.len(), 80);
        assert!(id.ends_with(&format!("0000{task}")));
        let stored = self
            .store
            .get(&RecordKey::new(SESSION_NAMESPACE, "", id))
            .await
            .unwrap()
            .unwrap();
        let session: StoredSession = serde_json::from_slice(stored.value.as_bytes()).unwrap();
        assert_eq!(session.session_id, id);
        assert_eq!(session.worker, self.worker.address());
        Ok(session)
    }

    async fn expect_error(&self, task: B256, status: StatusCode, code: &str) {
        let err = self
            .session(task)
            .await
            .err()
            .unwrap_or_else(|| panic!("expected {code}"));
        assert_eq!(err, (status, code.to_owned()));
    }

    async fn challenge_key(&self, task: B256) -> String {
        let key = RecordKey::new("tee-challenge", "", encode_prefixed(task));
        let v = self.store.get(&key).await.unwrap().unwrap();
        String::from_utf8(v.value.as_bytes().to_vec()).unwrap()
    }

    fn client(&self) -> sms_client::SmsClient {
        self.server.client()
    }
}

type Env = BTreeMap<String, String>;

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn service_env(s: &StoredSession, name: &str) -> Env {
    s.services
        .iter()
        .find(|x| x.role.name() == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .env
        .clone()
}

fn names(s: &StoredSession) -> Vec<&str> {
    s.services.iter().map(|x| x.role.name()).collect()
}

impl World {
    fn app_base(&self, task: B256) -> Env {
        let zero = encode_prefixed(Address::ZERO);
        let mut e = env(&[
            ("IEXEC_TASK_INDEX", "0"),
            ("IEXEC_IN", "/iexec_in"),
            ("IEXEC_OUT", "/iexec_out"),
            ("IEXEC_BOT_SIZE", "1"),
            ("IEXEC_BOT_FIRST_INDEX", "0"),
            ("IEXEC_BOT_TASK_INDEX", "0"),
            ("IEXEC_DATASET_ADDRESS", &zero),
            ("IEXEC_DATASET_FILENAME", &zero),
            ("IEXEC_INPUT_FILES_NUMBER", "0"),
        ]);
        e.insert("IEXEC_TASK_ID".into(), encode_prefixed(task));
        e
    }

    async fn sign_tokens(&self, task: B256) -> Env {
        let mut e = Env::new();
        e.insert("IEXEC_TASK_ID".into(), encode_prefixed(task));
        e.insert(
            "SIGN_WORKER_ADDRESS".into(),
            self.worker.address().to_checksum(None),
        );
        e.insert(
            "SIGN_TEE_CHALLENGE_PRIVATE_KEY".into(),
            self.challenge_key(task).await,
        );
        e
    }

    async fn post_env(&self, task: B256, pairs: &[(&str, &str)]) -> Env {
        let mut e = self.sign_tokens(task).await;
        e.extend(env(pairs));
        e
    }
}

/// The deal id is the only value of the env the test does not choose: take it from the session.
fn with_deal_id(mut e: Env, s: &StoredSession) -> Env {
    let deal = service_env(s, "app")["IEXEC_DEAL_ID"].clone();
    e.insert("IEXEC_DEAL_ID".into(), deal);
    e
}

// ---------------------------------------------------------------------------------------------
// Session plans
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn plan_app_secret_only() {
    let w = World::new().await;
    w.client()
        .push_app_secret(&w.app_owner, w.app, "app-secret")
        .await
        .unwrap();
    w.client()
        .push_web2_secret(
            &w.requester,
            "iexec-result-iexec-ipfs-token",
            " req-token ",
            Web2Write::Create,
        )
        .await
        .unwrap();
    let task = w
        .task(
            json!({ "params": { "iexec_result_storage_provider": "ipfs", "iexec_args": "--x 1" } }),
        )
        .await;
    let s = w.session(task).await.unwrap();
    assert_eq!(names(&s), ["app", "post-compute"]);
    let mut app = w.app_base(task);
    app.insert("IEXEC_APP_DEVELOPER_SECRET".into(), "app-secret".into());
    app.insert("IEXEC_APP_DEVELOPER_SECRET_1".into(), "app-secret".into());
    assert_eq!(service_env(&s, "app"), with_deal_id(app, &s));
    let post = w
        .post_env(
            task,
            &[
                ("RESULT_ENCRYPTION", "false"),
                ("RESULT_ENCRYPTION_PUBLIC_KEY", ""),
                ("RESULT_STORAGE_CALLBACK", "false"),
                ("RESULT_STORAGE_PROVIDER", "ipfs"),
                ("RESULT_STORAGE_PROXY", ""),
                ("RESULT_STORAGE_TOKEN", "req-token"),
            ],
        )
        .await;
    assert_eq!(service_env(&s, "post-compute"), post);
    let app_service = s.services.iter().find(|x| x.role.name() == "app").unwrap();
    assert_eq!(app_service.measurement.as_hex(), APP_FP);
    assert_eq!(
        app_service.command.as_deref(),
        Some("python /app/app.py --x 1")
    );
    let post_service = s
        .services
        .iter()
        .find(|x| x.role.name() == "post-compute")
        .unwrap();
    assert_eq!(
        post_service.measurement.as_hex(),
        sms_server::tee::DEV_POST_COMPUTE_FINGERPRINT
    );
    assert_eq!(
        post_service.command.as_deref(),
        Some("sms worker post-compute")
    );
    // One task, one session: asked again, the same one.
    let again = w.session(task).await.unwrap();
    assert_eq!(again.session_id, s.session_id);
}

#[tokio::test]
async fn plan_requester_secrets_1_and_3() {
    let w = World::new().await;
    let c = w.client();
    c.push_requester_secret(&w.requester, "foo", "foo-value")
        .await
        .unwrap();
    c.push_requester_secret(&w.requester, "bar", "bar-value")
        .await
        .unwrap();
    c.push_web2_secret(
        &w.requester,
        "iexec-result-iexec-ipfs-token",
        "t",
        Web2Write::Create,
    )
    .await
    .unwrap();
    let task = w
        .task(json!({ "params": { "iexec_secrets": { "1": "foo", "3": "bar" } } }))
        .await;
    let s = w.session(task).await.unwrap();
    let mut app = w.app_base(task);
    app.insert("IEXEC_REQUESTER_SECRET_1".into(), "foo-value".into());
    app.insert("IEXEC_REQUESTER_SECRET_3".into(), "bar-value".into());
    assert_eq!(service_env(&s, "app"), with_deal_id(app, &s));
    assert!(!service_env(&s, "app").contains_key("IEXEC_REQUESTER_SECRET_2"));
}

/// Secrets deleted through the v2 API stop releases at once: a deleted requester secret is
/// skipped (iExec's rule for missing requester secrets), a deleted dataset key fails the
/// session with PRE_COMPUTE_GET_DATASET_SECRET_FAILED.
#[tokio::test]
async fn secrets_deleted_through_v2_are_not_released() {
    use sms_client::v2::SecretRef;
    use sms_core::secret::SecretKind;
    let w = World::new().await;
    let c = w.client();
    c.push_requester_secret(&w.requester, "foo", "foo-value")
        .await
        .unwrap();
    c.push_requester_secret(&w.requester, "bar", "bar-value")
        .await
        .unwrap();
    c.push_web2_secret(
        &w.requester,
        "iexec-result-iexec-ipfs-token",
        "t",
        Web2Write::Create,
    )
    .await
    .unwrap();
    let foo = SecretRef {
        kind: SecretKind::Requester,
        owner: w.requester.address(),
        name: "foo".into(),
    };
    c.v2_delete(&w.requester, &foo, 1).await.unwrap();
    let task = w
        .task(json!({ "params": { "iexec_secrets": { "1": "foo", "3": "bar" } } }))
        .await;
    let s = w.session(task).await.unwrap();
    let app = service_env(&s, "app");
    assert!(!app.contains_key("IEXEC_REQUESTER_SECRET_1"), "{app:?}");
    assert_eq!(app["IEXEC_REQUESTER_SECRET_3"], "bar-value");
    assert!(!format!("{s:?}").contains("foo-value"));

    let owner = PrivateKeySigner::random();
    let dataset: Address = w
        .post_ok(
            "/dev/datasets",
            json!({ "owner": owner.address(), "multiaddr": "/ipfs/QmDataset" }),
        )
        .await["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    c.push_dataset_secret(&owner, dataset, "ZGF0YXNldC1rZXk=")
        .await
        .unwrap();
    let key = SecretRef {
        kind: SecretKind::Web3,
        owner: dataset,
        name: String::new(),
    };
    c.v2_delete(&owner, &key, 0).await.unwrap();
    let task = w.task(json!({ "dataset": dataset })).await;
    w.expect_error(
        task,
        StatusCode::INTERNAL_SERVER_ERROR,
        "PRE_COMPUTE_GET_DATASET_SECRET_FAILED",
    )
    .await;
}

#[tokio::test]
async fn plan_dataset() {
    let w = World::new().await;
    let owner = PrivateKeySigner::random();
    let checksum = format!("0x{}", "cd".repeat(32));
    let dataset: Address = w
        .post_ok("/dev/datasets", json!({ "owner": owner.address(), "multiaddr": "/ipfs/QmDataset", "checksum": checksum }))
        .await["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    w.client()
        .push_dataset_secret(&owner, dataset, "ZGF0YXNldC1rZXk=")
        .await
        .unwrap();
    w.client()
        .push_web2_secret(
            &w.requester,
            "iexec-result-iexec-ipfs-token",
            "t",
            Web2Write::Create,
        )
        .await
        .unwrap();
    let task = w.task(json!({ "dataset": dataset })).await;
    let s = w.session(task).await.unwrap();
    assert_eq!(names(&s), ["pre-compute", "app", "post-compute"]);
    let d = encode_prefixed(dataset);
    let mut pre = w.sign_tokens(task).await;
    pre.extend(env(&[
        ("IEXEC_PRE_COMPUTE_OUT", "/iexec_in"),
        ("IS_DATASET_REQUIRED", "true"),
        ("IEXEC_DATASET_KEY", "ZGF0YXNldC1rZXk="),
        ("IEXEC_DATASET_URL", "/ipfs/QmDataset"),
        ("IEXEC_DATASET_FILENAME", &d),
        ("IEXEC_DATASET_CHECKSUM", &checksum),
        ("IEXEC_TASK_INDEX", "0"),
        ("IEXEC_INPUT_FILES_NUMBER", "0"),
    ]));
    assert_eq!(service_env(&s, "pre-compute"), with_deal_id(pre, &s));
    let mut app = w.app_base(task);
    app.insert("IEXEC_DATASET_ADDRESS".into(), d.clone());
    app.insert("IEXEC_DATASET_FILENAME".into(), d);
    assert_eq!(service_env(&s, "app"), with_deal_id(app, &s));
    let pre_service = &s.services[0];
    assert_eq!(
        pre_service.measurement.as_hex(),
        sms_server::tee::DEV_PRE_COMPUTE_FINGERPRINT
    );

    // Without the dataset key: PRE_COMPUTE_GET_DATASET_SECRET_FAILED.
    let bare: Address = w
        .post_ok(
            "/dev/datasets",
            json!({ "owner": owner.address(), "multiaddr": "/ipfs/QmBare" }),
        )
        .await["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let task = w.task(json!({ "dataset": bare })).await;
    w.expect_error(
        task,
        StatusCode::INTERNAL_SERVER_ERROR,
        "PRE_COMPUTE_GET_DATASET_SECRET_FAILED",
    )
    .await;
}

#[tokio::test]
async fn plan_input_files() {
    let w = World::new().await;
    w.client()
        .push_web2_secret(
            &w.requester,
            "iexec-result-iexec-ipfs-token",
            "t",
            Web2Write::Create,
        )
        .await
        .unwrap();
    let urls = ["https://example.com/foo.txt", "https://example.com/bar.txt"];
    let task = w
        .task(json!({ "params": { "iexec_input_files": urls } }))
        .await;
    let s = w.session(task).await.unwrap();
    assert_eq!(names(&s), ["pre-compute", "app", "post-compute"]);
    let mut pre = w.sign_tokens(task).await;
    pre.extend(env(&[
        ("IEXEC_PRE_COMPUTE_OUT", "/iexec_in"),
        ("IS_DATASET_REQUIRED", "false"),
        ("IEXEC_TASK_INDEX", "0"),
        ("IEXEC_INPUT_FILES_NUMBER", "2"),
        ("IEXEC_INPUT_FILES_FOLDER", "/iexec_in"),
        ("IEXEC_INPUT_FILE_URL_1", urls[0]),
        ("IEXEC_INPUT_FILE_URL_2", urls[1]),
    ]));
    assert_eq!(service_env(&s, "pre-compute"), with_deal_id(pre, &s));
    let mut app = w.app_base(task);
    app.extend(env(&[
        ("IEXEC_INPUT_FILES_NUMBER", "2"),
        ("IEXEC_INPUT_FILES_FOLDER", "/iexec_in"),
        (
            "IEXEC_INPUT_FILE_NAME_1",
            "0x5aaad10112bc2296b5b64fdad4da1bfb2e774da7523ca918b3e0c020a7fb61b6",
        ),
    ]));
    app.insert(
        "IEXEC_INPUT_FILE_NAME_2".into(),
        encode_prefixed(sms_core::hash::sha256(urls[1].as_bytes())),
    );
    assert_eq!(service_env(&s, "app"), with_deal_id(app, &s));
}

#[tokio::test]
async fn plan_result_encryption_on_and_missing_key() {
    let w = World::new().await;
    let beneficiary = PrivateKeySigner::random();
    let c = w.client();
    c.push_web2_secret(
        &w.requester,
        "iexec-result-iexec-ipfs-token",
        "t",
        Web2Write::Create,
    )
    .await
    .unwrap();
    let params =
        json!({ "iexec_result_encryption": true, "iexec_result_storage_provider": "ipfs" });
    let task = w
        .task(json!({ "params": params, "beneficiary": beneficiary.address() }))
        .await;
    w.expect_error(
        task,
        StatusCode::INTERNAL_SERVER_ERROR,
        "POST_COMPUTE_GET_ENCRYPTION_TOKENS_FAILED_EMPTY_BENEFICIARY_KEY",
    )
    .await;
    c.push_web2_secret(
        &beneficiary,
        "iexec-result-encryption-public-key",
        "  UFVCS0VZ\n",
        Web2Write::Create,
    )
    .await
    .unwrap();
    let s = w.session(task).await.unwrap();
    let post = w
        .post_env(
            task,
            &[
                ("RESULT_ENCRYPTION", "true"),
                ("RESULT_ENCRYPTION_PUBLIC_KEY", "UFVCS0VZ"),
                ("RESULT_STORAGE_CALLBACK", "false"),
                ("RESULT_STORAGE_PROVIDER", "ipfs"),
                ("RESULT_STORAGE_PROXY", ""),
                ("RESULT_STORAGE_TOKEN", "t"),
            ],
        )
        .await;
    assert_eq!(service_env(&s, "post-compute"), post);
}

#[tokio::test]
async fn plan_callback() {
    let w = World::new().await;
    let callback = Address::repeat_byte(0xcb);
    let task = w
        .task(
            json!({ "callback": callback, "params": { "iexec_result_storage_provider": "ipfs" } }),
        )
        .await;
    // No storage token is needed with a callback.
    let s = w.session(task).await.unwrap();
    let post = w
        .post_env(
            task,
            &[
                ("RESULT_ENCRYPTION", "false"),
                ("RESULT_ENCRYPTION_PUBLIC_KEY", ""),
                ("RESULT_STORAGE_CALLBACK", "true"),
                ("RESULT_STORAGE_PROVIDER", ""),
                ("RESULT_STORAGE_PROXY", ""),
                ("RESULT_STORAGE_TOKEN", ""),
            ],
        )
        .await;
    assert_eq!(service_env(&s, "post-compute"), post);
}

#[tokio::test]
async fn plan_dropbox() {
    let w = World::new().await;
    let c = w.client();
    // The worker's IPFS token must not be used for dropbox.
    c.push_web2_secret(
        &w.worker,
        "iexec-result-iexec-ipfs-token",
        "worker-ipfs",
        Web2Write::Create,
    )
    .await
    .unwrap();
    let task = w
        .task(json!({ "params": { "iexec_result_storage_provider": "dropbox" } }))
        .await;
    w.expect_error(
        task,
        StatusCode::INTERNAL_SERVER_ERROR,
        "POST_COMPUTE_GET_STORAGE_TOKENS_FAILED",
    )
    .await;
    c.push_web2_secret(
        &w.requester,
        "iexec-result-dropbox-token",
        "dropbox-token",
        Web2Write::Create,
    )
    .await
    .unwrap();
    let s = w.session(task).await.unwrap();
    let post = w
        .post_env(
            task,
            &[
                ("RESULT_ENCRYPTION", "false"),
                ("RESULT_ENCRYPTION_PUBLIC_KEY", ""),
                ("RESULT_STORAGE_CALLBACK", "false"),
                ("RESULT_STORAGE_PROVIDER", "dropbox"),
                ("RESULT_STORAGE_PROXY", ""),
                ("RESULT_STORAGE_TOKEN", "dropbox-token"),
            ],
        )
        .await;
    assert_eq!(service_env(&s, "post-compute"), post);
}

#[tokio::test]
async fn plan_workerpool_proxy_fallback() {
    let w = World::new().await;
    let c = w.client();
    c.push_web2_secret(
        &w.requester,
        "iexec-result-iexec-ipfs-token",
        "req-token",
        Web2Write::Create,
    )
    .await
    .unwrap();
    c.push_web2_secret(
        &w.worker,
        "iexec-result-iexec-ipfs-token",
        "worker-token",
        Web2Write::Create,
    )
    .await
    .unwrap();
    c.push_web2_secret(
        &w.pool_owner,
        "iexec-result-iexec-result-proxy-url",
        "https://proxy.pool.example ",
        Web2Write::Create,
    )
    .await
    .unwrap();
    let task = w
        .task(json!({ "params": { "iexec_result_storage_provider": "ipfs" } }))
        .await;
    let s = w.session(task).await.unwrap();
    let expected = |proxy: &str| {
        vec![
            ("RESULT_ENCRYPTION", "false".to_owned()),
            ("RESULT_ENCRYPTION_PUBLIC_KEY", String::new()),
            ("RESULT_STORAGE_CALLBACK", "false".to_owned()),
            ("RESULT_STORAGE_PROVIDER", "ipfs".to_owned()),
            ("RESULT_STORAGE_PROXY", proxy.to_owned()),
            ("RESULT_STORAGE_TOKEN", "worker-token".to_owned()),
        ]
    };
    let mut post = w.sign_tokens(task).await;
    post.extend(
        expected("https://proxy.pool.example")
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    );
    assert_eq!(service_env(&s, "post-compute"), post);
    // A proxy in the params wins over the pool's.
    let task = w
        .task(json!({ "params": { "iexec_result_storage_provider": "ipfs", "iexec_result_storage_proxy": "https://mine" } }))
        .await;
    let s = w.session(task).await.unwrap();
    let mut post = w.sign_tokens(task).await;
    post.extend(
        expected("https://mine")
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    );
    assert_eq!(service_env(&s, "post-compute"), post);
}

// ---------------------------------------------------------------------------------------------
// Session error codes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn session_error_codes() {
    let w = World::new().await;
    let c = w.client();
    c.push_web2_secret(
        &w.requester,
        "iexec-result-iexec-ipfs-token",
        "t",
        Web2Write::Create,
    )
    .await
    .unwrap();
    let task = w.task(json!({})).await;
    let enclave = w.challenge(task).await;
    let (body, header) = w.authorization(task, enclave, &w.pool_owner);
    let code = |v: &Value| v["error"].as_str().unwrap_or_default().to_owned();

    // Malformed body: 400 with a reason naming the field.
    let (s, v) = w.raw_session(Some(&header), "not json").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "MALFORMED_SESSION_REQUEST".into())
    );
    assert!(v["reason"].as_str().unwrap().contains("JSON"), "{v}");
    let mut bad: Value = serde_json::from_str(&body).unwrap();
    bad["workerWallet"] = json!("0x12");
    let (s, v) = w.raw_session(Some(&header), &bad.to_string()).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "MALFORMED_SESSION_REQUEST".into())
    );
    assert!(
        v["reason"].as_str().unwrap().contains("workerWallet"),
        "{v}"
    );
    let (s, v) = w.raw_session(Some(&header), "").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "MALFORMED_SESSION_REQUEST".into())
    );
    // No chainTaskId.
    let mut empty: Value = serde_json::from_str(&body).unwrap();
    empty.as_object_mut().unwrap().remove("chainTaskId");
    let (s, v) = w.raw_session(Some(&header), &empty.to_string()).await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::UNAUTHORIZED,
            "EXECUTION_NOT_AUTHORIZED_EMPTY_PARAMS_UNAUTHORIZED".into()
        )
    );
    // Worker signature: missing, malformed, wrong signer.
    let wrong = sign_eip191(&w.pool_owner, &B256::ZERO).to_hex();
    for h in [None, Some("0x1234"), Some(wrong.as_str())] {
        let (s, v) = w.raw_session(h, &body).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNAUTHORIZED, "INVALID_AUTHORIZATION".into()),
            "{h:?}"
        );
    }
    // Unknown task.
    let unknown = B256::repeat_byte(0x42);
    let (s, v) = w.session_with(unknown, enclave).await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::UNAUTHORIZED,
            "EXECUTION_NOT_AUTHORIZED_GET_CHAIN_TASK_FAILED".into()
        )
    );
    // Body signed by someone else than the pool owner.
    let (other_body, other_header) = w.authorization(task, enclave, &w.requester);
    let (s, v) = w.raw_session(Some(&other_header), &other_body).await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::UNAUTHORIZED,
            "EXECUTION_NOT_AUTHORIZED_INVALID_SIGNATURE".into()
        )
    );
    // Enclave challenge other than the issued one.
    let (s, v) = w.session_with(task, Address::repeat_byte(0x77)).await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::UNAUTHORIZED,
            "EXECUTION_NOT_AUTHORIZED_ENCLAVE_CHALLENGE_MISMATCH".into()
        )
    );
    // Zero enclave challenge.
    let (s, v) = w.session_with(task, Address::ZERO).await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "GET_SIGNATURE_TOKENS_FAILED_EMPTY_PUBLIC_ENCLAVE_CHALLENGE".into()
        )
    );
    // The good request works, then the task stops being ACTIVE.
    let (s, v) = w.raw_session(Some(&header), &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for status in ["COMPLETED", "REVEALING", "FAILED", "UNSET"] {
        w.post_ok(
            &format!("/dev/tasks/{task}/status"),
            json!({ "status": status }),
        )
        .await;
        let (s, v) = w.raw_session(Some(&header), &body).await;
        assert_eq!(
            (s, code(&v)),
            (
                StatusCode::UNAUTHORIZED,
                "EXECUTION_NOT_AUTHORIZED_TASK_NOT_ACTIVE".into()
            )
        );
    }

    // Deal start time 0.
    let t = w.task(json!({ "startTime": 0 })).await;
    let (s, v) = w.session_with(t, Address::repeat_byte(1)).await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::UNAUTHORIZED,
            "EXECUTION_NOT_AUTHORIZED_GET_CHAIN_DEAL_FAILED".into()
        )
    );
    // Tag without a framework.
    let t = w.task(json!({ "tag": "tee" })).await;
    let (s, v) = w.session_with(t, Address::repeat_byte(1)).await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::UNAUTHORIZED,
            "EXECUTION_NOT_AUTHORIZED_NO_MATCH_ONCHAIN_TYPE".into()
        )
    );
    // Another framework than the one served.
    let t = w.task(json!({ "tag": "tee,gramine" })).await;
    let (s, v) = w.session_with(t, Address::repeat_byte(1)).await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::CONFLICT,
            "EXECUTION_NOT_AUTHORIZED_TEE_FRAMEWORK_MISMATCH".into()
        )
    );
    // No challenge issued for the task.
    let t = w.task(json!({})).await;
    let (s, v) = w.session_with(t, Address::repeat_byte(1)).await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "GET_SIGNATURE_TOKENS_FAILED_EMPTY_TEE_CHALLENGE".into()
        )
    );
    // A stored challenge key that is empty.
    let t = w.task(json!({})).await;
    let key = RecordKey::new("tee-challenge", "", encode_prefixed(t));
    w.store
        .insert(&key, &sms_core::secret::SecretValue::new(Vec::new()), None)
        .await
        .unwrap();
    let (s, v) = w.session_with(t, Address::repeat_byte(1)).await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "GET_SIGNATURE_TOKENS_FAILED_EMPTY_TEE_CREDENTIALS".into()
        )
    );
    // The deal's "app" is a workerpool: the task description cannot be read.
    let t = w.task(json!({ "app": w.pool })).await;
    w.expect_error(
        t,
        StatusCode::INTERNAL_SERVER_ERROR,
        "GET_TASK_DESCRIPTION_FAILED",
    )
    .await;
    // Apps without or with a bad enclave configuration.
    let no_config = w.deploy_app("").await;
    let t = w.task(json!({ "app": no_config })).await;
    w.expect_error(
        t,
        StatusCode::INTERNAL_SERVER_ERROR,
        "APP_COMPUTE_NO_ENCLAVE_CONFIG",
    )
    .await;
    let bad_config = w
        .deploy_app(r#"{"framework":"SCONE","version":"v5","entrypoint":"x","heapSize":1,"fingerprint":"abcd"}"#)
        .await;
    let t = w.task(json!({ "app": bad_config })).await;
    w.expect_error(
        t,
        StatusCode::INTERNAL_SERVER_ERROR,
        "APP_COMPUTE_INVALID_ENCLAVE_CONFIG",
    )
    .await;
    // No storage token at all.
    let other = World::new().await;
    let t = other.task(json!({})).await;
    other
        .expect_error(
            t,
            StatusCode::INTERNAL_SERVER_ERROR,
            "POST_COMPUTE_GET_STORAGE_TOKENS_FAILED",
        )
        .await;
    // A bulk_cid that is no CID (the dev server reads bulk documents from its dev IPFS);
    // then one the dev IPFS does not hold (a 404 of the gateway).
    let t = w.task(json!({ "params": { "bulk_cid": "QmBulk" } })).await;
    w.expect_error(
        t,
        StatusCode::UNPROCESSABLE_ENTITY,
        "PRE_COMPUTE_BULK_DOCUMENT_INVALID",
    )
    .await;
    let t = w
        .task(json!({ "params": { "bulk_cid": "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o" } }))
        .await;
    w.expect_error(
        t,
        StatusCode::SERVICE_UNAVAILABLE,
        "PRE_COMPUTE_BULK_GATEWAY_FAILED",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Challenges
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn challenge_is_authorized_and_idempotent() {
    let w = World::new().await;
    let task = w.task(json!({})).await;
    let (s, _) = w.challenge_as(task, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = w.challenge_as(task, Some(&w.requester)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let first = w.challenge(task).await;
    assert_eq!(w.challenge(task).await, first);
    // The stored key is the challenge's, sealed at rest.
    let key = w.challenge_key(task).await;
    let signer: PrivateKeySigner = key.trim_start_matches("0x").parse().unwrap();
    assert_eq!(signer.address(), first);
    for file in sms_testkit::server::files_under(&w.server.data_dir()) {
        let raw = std::fs::read(&file).unwrap();
        assert!(
            !raw.windows(key.len()).any(|x| x == key.as_bytes()),
            "{}",
            file.display()
        );
    }
    // Unknown task, bad id, other framework, inactive task.
    let (s, _) = w
        .challenge_as(B256::repeat_byte(9), Some(&w.pool_owner))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let resp = w
        .http
        .post(format!("{}/tee/challenges/0x12", w.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let gramine = w.task(json!({ "tag": "tee,gramine" })).await;
    assert_eq!(
        w.challenge_as(gramine, Some(&w.pool_owner)).await.0,
        StatusCode::CONFLICT
    );
    let no_tee = w
        .task(
            json!({ "tag": "0x0000000000000000000000000000000000000000000000000000000000000001" }),
        )
        .await;
    assert_eq!(
        w.challenge_as(no_tee, Some(&w.pool_owner)).await.0,
        StatusCode::UNAUTHORIZED
    );
    w.post_ok(
        &format!("/dev/tasks/{task}/status"),
        json!({ "status": "COMPLETED" }),
    )
    .await;
    assert_eq!(
        w.challenge_as(task, Some(&w.pool_owner)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// A challenge and a session commit with their audit entries: while the log refuses entries,
/// neither is created (503, the worker retries) and nothing is stored; once it accepts them
/// again both are created.
#[tokio::test]
async fn challenges_and_sessions_are_not_created_without_their_audit_entry() {
    let w = World::new().await;
    let task = w.storable_task().await;
    w.server.audit_log_read_only(true).await;
    let (status, text) = w.challenge_as(task, Some(&w.pool_owner)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    let key = RecordKey::new("tee-challenge", "", encode_prefixed(task));
    assert!(w.store.get(&key).await.unwrap().is_none());

    w.server.audit_log_read_only(false).await;
    let enclave = w.challenge(task).await;
    w.server.audit_log_read_only(true).await;
    let (status, answer) = w.session_with(task, enclave).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(
        answer["error"], "SECURE_SESSION_STORAGE_CALL_FAILED",
        "{answer}"
    );
    let counts = w.store.count_by_namespace().await.unwrap();
    assert!(
        !counts
            .iter()
            .any(|(ns, n)| ns == SESSION_NAMESPACE && *n > 0),
        "{counts:?}"
    );

    w.server.audit_log_read_only(false).await;
    let (status, answer) = w.session_with(task, enclave).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let store = w.server.server().store.clone();
    let kinds: Vec<String> = store
        .audit_entries(0, 100)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| {
            ["challenge-issued", "session-created"]
                .into_iter()
                .find(|k| e.entry.body.contains(k))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(kinds, ["challenge-issued", "session-created"]);
}

#[tokio::test]
async fn fifty_parallel_first_challenges_give_one_address() {
    let w = World::new().await;
    let task = w.task(json!({})).await;
    let header = sign_eip191(&w.pool_owner, &challenge::enclave_challenge_request(&task)).to_hex();
    let url = format!("{}/tee/challenges/{task}", w.server.url());
    let calls = (0..50).map(|_| {
        let (http, url, header) = (w.http.clone(), url.clone(), header.clone());
        tokio::spawn(async move {
            let resp = http
                .post(url)
                .header("Authorization", header)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            resp.text().await.unwrap()
        })
    });
    let mut addresses = std::collections::BTreeSet::new();
    for c in calls.collect::<Vec<_>>() {
        addresses.insert(c.await.unwrap());
    }
    assert_eq!(addresses.len(), 1, "{addresses:?}");
}

#[tokio::test]
async fn sweep_deletes_expired_challenges() {
    let w =
        World::with_config(|c| c.tee.challenge_sweep_interval = Duration::from_millis(200)).await;
    // Category XS (300 s): final deadline = start + 3000 s, long past.
    let old = w
        .task(json!({ "startTime": 1_000_000, "category": 0 }))
        .await;
    let live = w.task(json!({})).await;
    let old_address = w.challenge(old).await;
    w.challenge(live).await;
    let key = |t: B256| RecordKey::new("tee-challenge", "", encode_prefixed(t));
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if w.store.get(&key(old)).await.unwrap().is_none() {
            gone = true;
            break;
        }
    }
    assert!(gone, "the expired challenge was not swept");
    assert!(w.store.get(&key(live)).await.unwrap().is_some());
    // A new call creates a new key.
    assert_ne!(w.challenge(old).await, old_address);
}

// ---------------------------------------------------------------------------------------------
// Framework and properties
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dev_framework_and_properties() {
    let w = World::new().await;
    assert_eq!(
        w.get("/tee/framework").await,
        (StatusCode::OK, json!("SCONE"))
    );
    let (s, p) = w.get("/tee/properties/scone/v5.9").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["teeFramework"], "SCONE");
    assert_eq!(p["teeFrameworkVersion"], "v5.9");
    assert_eq!(
        p["preComputeProperties"]["image"],
        sms_server::tee::DEV_PRE_COMPUTE_IMAGE
    );
    assert_eq!(
        p["preComputeProperties"]["entrypoint"],
        "sms worker pre-compute"
    );
    assert_eq!(
        p["postComputeProperties"]["fingerprint"],
        sms_server::tee::DEV_POST_COMPUTE_FINGERPRINT
    );
    assert!(p["lasImage"].is_string());
    assert_eq!(w.get("/tee/properties/SCONE").await.0, StatusCode::OK);
    assert_eq!(
        w.get("/tee/properties/gramine/v5").await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        w.get("/tee/properties/sgx/v5").await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn configured_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipelines.toml");
    let fp = "11".repeat(32);
    std::fs::write(
        &file,
        format!(
            "[[pipelines]]\nversion = \"v1\"\n[pipelines.pre-compute]\nimage = \"pre:1\"\nfingerprint = \"{fp}\"\nentrypoint = \"/pre\"\nheap-size = \"1GB\"\n[pipelines.post-compute]\nimage = \"post:1\"\nfingerprint = \"{fp}\"\nentrypoint = \"/post\"\nheap-size = 1024\n"
        ),
    )
    .unwrap();
    let path = file.clone();
    let w = World::with_config(move |c| {
        c.tee.tee_framework = Some(sms_server::tee::args::FrameworkArg::Gramine);
        c.tee.pipelines = Some(path);
    })
    .await;
    assert_eq!(
        w.get("/tee/framework").await,
        (StatusCode::OK, json!("GRAMINE"))
    );
    let (s, p) = w.get("/tee/properties/GRAMINE/v1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        p,
        json!({
            "teeFramework": "GRAMINE", "teeFrameworkVersion": "v1",
            "preComputeProperties": { "image": "pre:1", "fingerprint": fp, "entrypoint": "/pre", "heapSizeInBytes": 1u64 << 30 },
            "postComputeProperties": { "image": "post:1", "fingerprint": fp, "entrypoint": "/post", "heapSizeInBytes": 1024 },
        })
    );
    assert_eq!(
        w.get("/tee/properties/gramine/v2").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.get("/tee/properties/gramine").await.1["teeFrameworkVersion"],
        "v1"
    );

    // A bad file stops the start-up, naming the field.
    std::fs::write(&file, "[[pipelines]]\nversion = \"v1\"\n").unwrap();
    let mut config = ServerConfig::dev_in(dir.path().join("data"));
    config.tee.pipelines = Some(file);
    let err = sms_server::Server::start(config)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("pipelines[0].pre-compute"), "{err}");
}

/// A Gramine session answer, decoded as the iExec worker does (unknown keys refused), carries
/// `host:port` of the attestation endpoint like SCONE's.
#[tokio::test]
async fn gramine_session_answer_decodes_strictly() {
    let mut w = World::with_config(|c| {
        c.tee.tee_framework = Some(sms_server::tee::args::FrameworkArg::Gramine);
    })
    .await;
    w.app = w
        .deploy_app(&format!(
            r#"{{"framework":"GRAMINE","version":"v5","entrypoint":"/app","heapSize":1073741824,"fingerprint":"{APP_FP}"}}"#
        ))
        .await;
    w.client()
        .push_web2_secret(
            &w.requester,
            "iexec-result-iexec-ipfs-token",
            "t",
            Web2Write::Create,
        )
        .await
        .unwrap();
    let task = w.task(json!({ "tag": "tee,gramine" })).await;
    let enclave = w.challenge(task).await;
    let (s, v) = w.session_with(task, enclave).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let answer: UpstreamSession = strict("gramine session", &v);
    assert_eq!(
        answer.data.secret_provisioning_url,
        w.server.url().trim_start_matches("http://")
    );
    assert!(answer.data.session_id.ends_with(&format!("0000{task}")));
}

#[tokio::test]
async fn provisioning_url_is_host_port_for_scone_and_configurable() {
    for (public, configured, expected) in [
        ("https://sms.example/", None, "sms.example:443"),
        ("https://sms.example:8443/base", None, "sms.example:8443"),
        (
            "https://sms.example",
            Some("cas.example:18765"),
            "cas.example:18765",
        ),
    ] {
        let w = World::with_config(|c| {
            c.tee.public_url = Some(public.into());
            c.tee.secret_provisioning_url = configured.map(str::to_owned);
        })
        .await;
        assert_eq!(
            provisioning_url(&w).await,
            expected,
            "{public} {configured:?}"
        );
    }
}

async fn provisioning_url(w: &World) -> String {
    w.client()
        .push_web2_secret(
            &w.requester,
            "iexec-result-iexec-ipfs-token",
            "t",
            Web2Write::Create,
        )
        .await
        .unwrap();
    let task = w.task(json!({})).await;
    let enclave = w.challenge(task).await;
    let (s, v) = w.session_with(task, enclave).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"]["secretProvisioningUrl"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn dev_deals_follow_poco_ids_and_deadlines() {
    let w = World::new().await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let answer = w
        .post_ok(
            "/dev/deals",
            json!({ "app": w.app, "workerpool": w.pool, "requester": w.requester.address(), "volume": 3, "category": 2,
                    "params": "plain args" }),
        )
        .await;
    let deal: B256 = answer["dealId"].as_str().unwrap().parse().unwrap();
    let tasks: Vec<B256> = answer["taskIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        tasks,
        (0..3)
            .map(|i| sms_core::ledger::task_id(&deal, i))
            .collect::<Vec<_>>()
    );
    let again = w
        .post_ok(
            "/dev/deals",
            json!({ "app": w.app, "workerpool": w.pool, "requester": w.requester.address() }),
        )
        .await;
    assert_ne!(again["dealId"], answer["dealId"]);
    let ledger =
        sms_chain::dev::DevLedger::open(w.server.data_dir().join("dev-ledger.json")).unwrap();
    use sms_chain::Ledger;
    let t = ledger.task(tasks[2]).await.unwrap().unwrap();
    assert_eq!(t.index, 2);
    assert_eq!(t.status, sms_core::ledger::TaskStatus::Active);
    assert!(t.final_deadline >= before + 36_000 && t.final_deadline <= before + 36_100);
    let d = ledger.deal(deal).await.unwrap().unwrap();
    assert_eq!(d.params, "plain args");
    assert_eq!(d.tag[31], 0x03);
    assert_eq!(d.workerpool.owner, w.pool_owner.address());
    // Bad inputs are 400 with a reason.
    for bad in [
        json!({ "app": w.app, "workerpool": w.pool, "requester": w.requester.address(), "tag": "tee,sgx" }),
        json!({ "app": w.app, "workerpool": w.pool, "requester": w.requester.address(), "volume": 0 }),
        json!({ "app": Address::repeat_byte(5), "workerpool": w.pool, "requester": w.requester.address() }),
        json!({ "app": w.app, "workerpool": w.app, "requester": w.requester.address() }),
    ] {
        let (s, v) = w.post("/dev/deals", bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    }
    let (s, _) = w
        .post(
            &format!("/dev/tasks/{}/status", tasks[0]),
            json!({ "status": "DONE" }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn failed_export_is_storage_call_failed() {
    // Nothing listens on port 9 of localhost: the export fails, the session is refused.
    let w = World::with_config(|c| {
        c.tee.session_export = sms_server::tee::args::SessionExport::SconeCas;
        c.tee.session_export_url = Some("https://localhost:9".into());
    })
    .await;
    w.client()
        .push_web2_secret(
            &w.requester,
            "iexec-result-iexec-ipfs-token",
            "t",
            Web2Write::Create,
        )
        .await
        .unwrap();
    let task = w.task(json!({})).await;
    w.expect_error(
        task,
        StatusCode::INTERNAL_SERVER_ERROR,
        "SECURE_SESSION_STORAGE_CALL_FAILED",
    )
    .await;
}

/// One task, one session: 100 identical concurrent requests (a retrying worker) all get the
/// same session, so the task keeps one release budget.
#[tokio::test(flavor = "multi_thread")]
async fn identical_session_requests_share_one_session() {
    let w = World::new().await;
    let task = w.storable_task().await;
    let enclave = w.challenge(task).await;
    let (body, header) = w.authorization(task, enclave, &w.pool_owner);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (http, url) = (w.http.clone(), format!("{}/tee/sessions", w.server.url()));
        let (body, header) = (body.clone(), header.clone());
        calls.spawn(async move {
            let resp = http
                .post(url)
                .header("Content-Type", "application/json")
                .header("Authorization", header)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let answer: Value = resp.json().await.unwrap();
            (
                status,
                answer["data"]["sessionId"].as_str().map(str::to_owned),
            )
        });
    }
    let answers = calls.join_all().await;
    assert!(
        answers.iter().all(|(s, _)| *s == StatusCode::OK),
        "{answers:?}"
    );
    let ids: std::collections::BTreeSet<_> = answers.into_iter().filter_map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let counts = w.store.count_by_namespace().await.unwrap();
    let sessions = counts
        .iter()
        .find(|(ns, _)| ns == SESSION_NAMESPACE)
        .map(|(_, n)| *n);
    assert_eq!(sessions, Some(1), "{counts:?}");
    // Later, the same request again: still that session.
    let (status, answer) = w.session_with(task, enclave).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["data"]["sessionId"].as_str(),
        ids.first().map(String::as_str)
    );
}

/// A second worker cannot take over a task whose session lives (it would get its own copy of
/// the secrets and its own budget).
#[tokio::test]
async fn another_worker_is_refused_while_the_session_lives() {
    let mut w = World::new().await;
    let task = w.storable_task().await;
    w.session(task).await.unwrap();
    w.worker = PrivateKeySigner::random();
    let enclave = w.challenge(task).await;
    let (status, answer) = w.session_with(task, enclave).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("EXECUTION_NOT_AUTHORIZED_TASK_SESSION_TAKEN")
        ),
        "{answer}"
    );
}

/// A session that expired while its task still runs is not the task's any more: asked again,
/// the worker gets a new session (the expired one's index is replaced without waiting for the
/// sweep), which is then the task's; another worker is refused again while it lives.
#[tokio::test]
async fn a_task_gets_a_new_session_once_its_session_expired() {
    let start = sms_core::clock::unix_now() - 7200;
    let fixed = sms_core::clock::FixedClock::at(start);
    let clock = fixed.clone();
    let mut w = World::with_config(move |c| c.attest.clock = Some(clock.into())).await;
    let task = w.storable_task_in(1).await;
    let first = w.session(task).await.unwrap();
    assert_eq!(first.expires_at, start + 3600);
    fixed.advance(3600);
    let second = w.session(task).await.unwrap();
    assert_ne!(second.session_id, first.session_id);
    assert_eq!(second.expires_at, start + 7200);
    let again = w.session(task).await.unwrap();
    assert_eq!(again.session_id, second.session_id);
    w.worker = PrivateKeySigner::random();
    assert_eq!(
        w.session(task).await.unwrap_err(),
        (
            StatusCode::CONFLICT,
            "EXECUTION_NOT_AUTHORIZED_TASK_SESSION_TAKEN".to_owned()
        )
    );
}

/// A dev deal is created at the injected clock's time: its task's final deadline (category 0,
/// 10 × 300 s) counts from that clock, and a session of the task ends there, before the
/// session lifetime.
#[tokio::test]
async fn a_dev_deal_counts_its_deadline_from_the_injected_clock() {
    let start = sms_core::clock::unix_now() - 7200;
    let fixed = sms_core::clock::FixedClock::at(start);
    let w = World::with_config(move |c| c.attest.clock = Some(fixed.into())).await;
    let task = w.storable_task_in(0).await;
    let session = w.session(task).await.unwrap();
    assert_eq!(session.expires_at, start + 3000);
}

/// A session ends when the injected clock passes its end: created at the clock's time (its
/// expiry is that time plus the session lifetime), it releases nothing once the clock is moved
/// past it, without waiting.
#[tokio::test]
async fn a_session_expires_when_the_injected_clock_passes_its_end() {
    let start = sms_core::clock::unix_now() - 7200;
    let fixed = sms_core::clock::FixedClock::at(start);
    let clock = fixed.clone();
    let w = World::with_config(move |c| c.attest.clock = Some(clock.into())).await;
    // Category 1 (S): the task's final deadline, 10 × 1200 s after the injected clock, is
    // after the session's end.
    let task = w.storable_task_in(1).await;
    let session = w.session(task).await.unwrap();
    assert_eq!(session.expires_at, start + 3600);
    let nonce = |w: &World| {
        let url = format!(
            "{}/tee/provisioning/{}/app/nonce",
            w.server.url(),
            session.session_id
        );
        let http = w.http.clone();
        async move {
            let resp = http.post(url).send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            (status, body["code"].as_str().unwrap_or_default().to_owned())
        }
    };
    assert_eq!(nonce(&w).await.0, StatusCode::OK);
    fixed.advance(3600);
    assert_eq!(
        nonce(&w).await,
        (StatusCode::GONE, "SESSION_EXPIRED".to_owned())
    );
}

impl World {
    /// A task whose session can be created: IPFS storage with the requester's token pushed.
    async fn storable_task(&self) -> B256 {
        self.storable_task_in(0).await
    }

    /// A task of a deal of `category` (its deadlines count from the server's clock).
    async fn storable_task_in(&self, category: u64) -> B256 {
        self.client()
            .push_web2_secret(
                &self.requester,
                "iexec-result-iexec-ipfs-token",
                "token",
                Web2Write::Create,
            )
            .await
            .unwrap();
        self.task(
            json!({ "params": { "iexec_result_storage_provider": "ipfs" }, "category": category }),
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// What iExec components decode, decoded as strictly as they do (unknown keys fail).

/// Upstream's properties classes: every key named, nothing else accepted.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct UpstreamProperties {
    tee_framework: String,
    tee_framework_version: String,
    pre_compute_properties: UpstreamStage,
    post_compute_properties: UpstreamStage,
    #[serde(default)]
    las_image: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct UpstreamStage {
    image: String,
    fingerprint: String,
    entrypoint: String,
    heap_size_in_bytes: u64,
}

/// Upstream's error envelope of the `/tee/*` routes: `{"error": "<CODE>"}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamError {
    error: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamSession {
    data: UpstreamSessionData,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpstreamSessionData {
    session_id: String,
    secret_provisioning_url: String,
}

fn strict<T: serde::de::DeserializeOwned>(what: &str, body: &Value) -> T {
    serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{what}: {e} in {body}"))
}

#[tokio::test]
async fn iexec_components_decode_every_tee_answer_strictly() {
    let w = World::new().await;
    // Worker: framework and properties.
    let (s, framework) = w.get("/tee/framework").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(strict::<String>("framework", &framework), "SCONE");
    for path in ["/tee/properties/scone/v5", "/tee/properties/scone"] {
        let (s, p) = w.get(path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {p}");
        strict::<UpstreamProperties>(path, &p);
    }
    for (path, status, code) in [
        (
            "/tee/properties/gramine/v5",
            StatusCode::CONFLICT,
            "TEE_FRAMEWORK_MISMATCH",
        ),
        (
            "/tee/properties/sgx/v5",
            StatusCode::BAD_REQUEST,
            "UNKNOWN_TEE_FRAMEWORK",
        ),
    ] {
        let resp = w
            .http
            .get(format!("{}{path}", w.server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
        assert!(
            resp.headers().contains_key("x-sms-reason"),
            "{path}: the reason is a header"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(strict::<UpstreamError>(path, &body).error, code);
    }
    // Scheduler: a refused challenge.
    let task = w.task(json!({})).await;
    let resp = w
        .http
        .post(format!("{}/tee/challenges/{task}", w.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let reason = resp.headers()["x-sms-reason"].to_str().unwrap().to_owned();
    assert!(!reason.is_empty());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        strict::<UpstreamError>("challenge", &body).error,
        "UNAUTHORIZED"
    );
    // Worker: every added session code reaches it as an upstream code (session_reply checks
    // the body shape and that the code is upstream's), the precise one in X-Sms-Error.
    w.challenge(task).await;
    let (s, v) = w.session_with(task, Address::repeat_byte(0x77)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(
        (v["error"].as_str(), v["wireError"].as_str()),
        (
            Some("EXECUTION_NOT_AUTHORIZED_ENCLAVE_CHALLENGE_MISMATCH"),
            Some("GET_SIGNATURE_TOKENS_FAILED_EMPTY_PUBLIC_ENCLAVE_CHALLENGE")
        )
    );
    let (_, header) = w.authorization(task, Address::ZERO, &w.pool_owner);
    let (s, v) = w.raw_session(Some(&header), "not json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["wireError"], "NO_SESSION_REQUEST");
}

//! The built-in attested provisioner over HTTP against an in-process `--dev` server: the
//! release with simulated evidence, and every refusal with its code, nothing released.
//! Sessions are seeded directly into the server's store, as `/tee/sessions` stores them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sms_attest::SmsPublicKey;
use sms_attest::{EphemeralKey, Evidence, TcbStatus, report_data_binding};
use sms_client::provision::{
    NonceAnswer, ProvisionError, ReleaseAnswer, ReleaseAsk, ReleaseRequest, ReleasedEnv,
    open_release,
};
use sms_core::enclave_config::Measurement;
use sms_core::ledger::TaskStatus;
use sms_core::session_plan::EnclaveRole;
use sms_core::stored_session::{StoredService, StoredSession};
use sms_core::tag::TeeFramework;
use sms_core::{Address, B256};
use sms_server::ServerConfig;
use sms_server::attest_args::Clock;
use sms_server::provision::{ReleaseLog, release_key, store_session};
use sms_store::Store;
use sms_testkit::server::{TestServer, files_under};

const APP_MEASUREMENT: [u8; 32] = [0xa1; 32];
const POST_MEASUREMENT: [u8; 32] = [0xb2; 32];
/// A harmless test value standing for a secret.
const TEST_SECRET: &str = "provisioning-test-value-7f3e";
/// 2025-07-01T00:00:00Z, inside the DCAP fixtures' collateral windows.
const FIXTURE_NOW_MS: u64 = 1_751_328_000_000;

struct Prov {
    server: TestServer,
    http: reqwest::Client,
    clock: Arc<AtomicU64>,
}

fn real_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

impl Prov {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
        let clock = Arc::new(AtomicU64::new(real_now_ms()));
        let c = clock.clone();
        config.attest.clock = Some(Clock::new(move || c.load(Ordering::SeqCst)));
        configure(&mut config);
        if let Some(ms) = config.attest.clock.as_ref().map(|c| c.now_ms()) {
            clock.store(ms, Ordering::SeqCst);
        }
        Self {
            server: TestServer::with_config(config, Some(dir)).await,
            http: reqwest::Client::new(),
            clock,
        }
    }

    fn store(&self) -> Store {
        self.server.server().store.clone()
    }

    fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst) / 1000
    }

    fn advance_ms(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    /// Stores a session with an `app` and a `post-compute` service for a task of its own
    /// (ACTIVE on the dev ledger); returns its id.
    async fn seed(&self, id: &str, expires_at: u64, app_measurement: &[u8]) -> String {
        let task_id = task_of(id);
        self.server
            .active_dev_task(task_id, real_now_ms() / 1000 + 10 * 365 * 86_400);
        self.seed_for(id, task_id, expires_at, app_measurement)
            .await
    }

    /// Stores a session for `task_id` (which must already be on the dev ledger).
    async fn seed_for(
        &self,
        id: &str,
        task_id: B256,
        expires_at: u64,
        app_measurement: &[u8],
    ) -> String {
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let session = StoredSession {
            session_id: id.to_owned(),
            task_id,
            framework: TeeFramework::Gramine,
            worker: Address::repeat_byte(9),
            expires_at,
            services: vec![
                StoredService {
                    role: EnclaveRole::App,
                    measurement: Measurement::from_bytes(app_measurement),
                    tdx: None,
                    command: Some("python3 /app/main.py".into()),
                    env: env(&[
                        ("IEXEC_TASK_ID", "0x07"),
                        ("IEXEC_APP_DEVELOPER_SECRET", TEST_SECRET),
                    ]),
                },
                StoredService {
                    role: EnclaveRole::PostCompute,
                    measurement: Measurement::from_bytes(&POST_MEASUREMENT),
                    tdx: None,
                    command: None,
                    env: env(&[("RESULT_STORAGE_TOKEN", "post-value")]),
                },
            ],
        };
        assert!(store_session(&self.store(), &session).await.unwrap());
        id.to_owned()
    }

    async fn post(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.post(format!("{}{path}", self.server.url()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn nonce(&self, session: &str, service: &str) -> NonceAnswer {
        let (status, body) = self
            .post(
                &format!("/tee/provisioning/{session}/{service}/nonce"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    async fn nonce_refused(&self, session: &str, service: &str) -> (StatusCode, String) {
        let (status, body) = self
            .post(
                &format!("/tee/provisioning/{session}/{service}/nonce"),
                None,
            )
            .await;
        (status, body["code"].as_str().unwrap_or_default().to_owned())
    }

    async fn release_raw(
        &self,
        session: &str,
        service: &str,
        request: &ReleaseRequest,
    ) -> (StatusCode, Value) {
        let body = serde_json::to_value(request).unwrap();
        self.post(
            &format!("/tee/provisioning/{session}/{service}/release"),
            Some(body),
        )
        .await
    }

    /// A successful release: the answer, and the exact body that was sent.
    async fn release(
        &self,
        session: &str,
        service: &str,
        request: &ReleaseRequest,
    ) -> (ReleaseAnswer, Vec<u8>) {
        let sent = serde_json::to_vec(request).unwrap();
        let resp = self
            .http
            .post(format!(
                "{}/tee/provisioning/{session}/{service}/release",
                self.server.url()
            ))
            .header("Content-Type", "application/json")
            .body(sent.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{text}");
        (serde_json::from_str(&text).unwrap(), sent)
    }

    /// The key this server announces (what a launcher pins in these tests).
    async fn identity(&self) -> SmsPublicKey {
        let (status, body) = self.get("/tee/provisioning/identity").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["algorithm"], "Ed25519", "{body}");
        let key = SmsPublicKey::from_base64(body["publicKey"].as_str().unwrap()).unwrap();
        assert_eq!(body["keyId"].as_str(), Some(key.key_id().as_str()));
        key
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.server.url()))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Asserts a refusal: status, code, a message, and nothing in the body but the refusal.
    async fn refused(
        &self,
        session: &str,
        service: &str,
        request: &ReleaseRequest,
        status: StatusCode,
        code: &str,
    ) {
        let (got, body) = self.release_raw(session, service, request).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
        assert!(body["error"].is_string(), "{body}");
        assert!(body.get("sealed").is_none(), "{body}");
        assert!(!body.to_string().contains(TEST_SECRET));
    }

    /// The release log of the task a session was seeded for.
    async fn release_log(&self, session: &str, service: &str) -> Option<ReleaseLog> {
        self.task_release_log(&task_of(session), service).await
    }

    async fn task_release_log(&self, task: &B256, service: &str) -> Option<ReleaseLog> {
        let v = self
            .store()
            .get(&release_key(task, service))
            .await
            .unwrap()?;
        Some(serde_json::from_slice(v.value.as_bytes()).unwrap())
    }

    /// Stores a session for `task` (put on the dev ledger) whose id names `named` the way
    /// `/tee/sessions` draws ids (`<10 characters>0000<taskId>`); the id and `task`.
    async fn seed_named(&self, prefix: &str, named: B256) -> (String, B256) {
        assert_eq!(prefix.len(), 10);
        let task = task_of(prefix);
        self.server
            .active_dev_task(task, real_now_ms() / 1000 + 10 * 365 * 86_400);
        let id = format!("{prefix}0000{named:#x}");
        let id = self
            .seed_for(&id, task, self.now() + 600, &APP_MEASUREMENT)
            .await;
        (id, task)
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.server.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The task [`Prov::seed`] creates for a session id.
fn task_of(session: &str) -> B256 {
    sms_core::hash::keccak_concat(&[b"task-of", session.as_bytes()])
}

/// Opens an answer as a launcher pinned to `pinned` would, for what was asked.
fn open(
    pinned: &SmsPublicKey,
    key: &EphemeralKey,
    (session, service): (&str, &str),
    nonce: &NonceAnswer,
    sent: &[u8],
    answer: &ReleaseAnswer,
) -> Result<ReleasedEnv, ProvisionError> {
    let nonce = nonce.nonce_bytes().unwrap();
    let asked = ReleaseAsk {
        session_id: session,
        service,
        nonce: &nonce,
        request_body: sent,
    };
    open_release(pinned, key, &asked, answer)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A release request with simulated evidence of `measurement`, bound to `nonce` and `bound_key`,
/// carrying `sent_key`.
fn simulated(
    nonce: &NonceAnswer,
    measurement: &[u8],
    bound_key: &EphemeralKey,
    sent_key: &EphemeralKey,
) -> ReleaseRequest {
    let report_data = report_data_binding(&nonce.nonce_bytes().unwrap(), bound_key.public_key());
    ReleaseRequest {
        nonce: nonce.nonce.clone(),
        public_key: sent_key.public_key_base64(),
        evidence: Evidence::Simulated {
            measurement: measurement.to_vec(),
            report_data,
            debug: false,
        },
    }
}

fn good(nonce: &NonceAnswer, measurement: &[u8], key: &EphemeralKey) -> ReleaseRequest {
    simulated(nonce, measurement, key, key)
}

#[tokio::test]
async fn simulated_release_opens_to_the_service_env_and_is_recorded() {
    let p = Prov::new().await;
    let sid = p.seed("s-ok", p.now() + 600, &APP_MEASUREMENT).await;
    let nonce = p.nonce(&sid, "app").await;
    assert_eq!(nonce.nonce_bytes().unwrap().len(), 32);
    assert!(nonce.expires_at > p.now() && nonce.expires_at <= p.now() + 61);

    let key = EphemeralKey::generate();
    let pinned = p.identity().await;
    let (answer, sent) = p
        .release(&sid, "app", &good(&nonce, &APP_MEASUREMENT, &key))
        .await;
    assert_eq!((answer.release, answer.limit), (1, 1));
    assert_eq!(answer.signature.key_id, pinned.key_id());
    assert_eq!(answer.tee, "simulated");
    assert_eq!(answer.measurement, hex(&APP_MEASUREMENT));
    assert!(
        !serde_json::to_string(&answer)
            .unwrap()
            .contains(TEST_SECRET)
    );

    let opened = open(&pinned, &key, (&sid, "app"), &nonce, &sent, &answer).unwrap();
    assert_eq!(
        opened
            .env
            .get("IEXEC_APP_DEVELOPER_SECRET")
            .map(String::as_str),
        Some(TEST_SECRET)
    );
    assert_eq!(
        opened.env.get("IEXEC_TASK_ID").map(String::as_str),
        Some("0x07")
    );
    assert_eq!(opened.env.len(), 2);
    assert!(!format!("{opened:?}").contains(TEST_SECRET));

    // Another ephemeral key, or the right key for another service, does not open it.
    let other = EphemeralKey::generate();
    assert!(matches!(
        open(&pinned, &other, (&sid, "app"), &nonce, &sent, &answer),
        Err(ProvisionError::NotAuthenticated(_))
    ));
    assert!(
        open(
            &pinned,
            &key,
            (&sid, "post-compute"),
            &nonce,
            &sent,
            &answer
        )
        .is_err()
    );

    // Recorded: who, which measurement, when; never a value.
    let log = p.release_log(&sid, "app").await.unwrap();
    assert_eq!(log.count(), 1);
    let entry = &log.releases[0];
    assert_eq!((entry.number, entry.tee.as_str()), (1, "simulated"));
    assert_eq!(entry.measurement, hex(&APP_MEASUREMENT));
    assert_eq!(entry.worker, format!("{:#x}", Address::repeat_byte(9)));
    assert_eq!(entry.at, p.now());
    assert!(!serde_json::to_string(&log).unwrap().contains(TEST_SECRET));
    // The other service is untouched and gets its own env.
    assert!(p.release_log(&sid, "post-compute").await.is_none());
    let nonce = p.nonce(&sid, "post-compute").await;
    let (answer, sent) = p
        .release(&sid, "post-compute", &good(&nonce, &POST_MEASUREMENT, &key))
        .await;
    let opened = open(
        &pinned,
        &key,
        (&sid, "post-compute"),
        &nonce,
        &sent,
        &answer,
    )
    .unwrap();
    assert_eq!(
        opened.env.keys().collect::<Vec<_>>(),
        ["RESULT_STORAGE_TOKEN"]
    );

    let metrics = p.metrics().await;
    assert!(
        metrics.contains("sms_provision_releases_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sms_attest_simulated_evidence_total"),
        "{metrics}"
    );
    // Nothing in the data dir holds the value in clear.
    for file in files_under(&p.server.data_dir()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(TEST_SECRET.len())
                .any(|w| w == TEST_SECRET.as_bytes()),
            "{}",
            file.display()
        );
    }
}

#[tokio::test]
async fn each_refusal_has_its_code_and_releases_nothing() {
    let p = Prov::new().await;
    let sid = p.seed("s-refusals", p.now() + 600, &APP_MEASUREMENT).await;
    let key = EphemeralKey::generate();

    // Wrong measurement.
    let nonce = p.nonce(&sid, "app").await;
    p.refused(
        &sid,
        "app",
        &good(&nonce, &[0xee; 32], &key),
        StatusCode::FORBIDDEN,
        "MEASUREMENT_MISMATCH",
    )
    .await;
    // The nonce was consumed by the refused attempt.
    p.refused(
        &sid,
        "app",
        &good(&nonce, &APP_MEASUREMENT, &key),
        StatusCode::UNAUTHORIZED,
        "NONCE_UNKNOWN",
    )
    .await;

    // Report data bound to another key than the one sent.
    let nonce = p.nonce(&sid, "app").await;
    let attacker = EphemeralKey::generate();
    let unbound = simulated(&nonce, &APP_MEASUREMENT, &key, &attacker);
    p.refused(
        &sid,
        "app",
        &unbound,
        StatusCode::UNAUTHORIZED,
        "REPORT_DATA_MISMATCH",
    )
    .await;
    // Report data bound to another nonce.
    let nonce = p.nonce(&sid, "app").await;
    let stale = p.nonce(&sid, "app").await;
    let mut request = good(&stale, &APP_MEASUREMENT, &key);
    request.nonce = nonce.nonce.clone();
    p.refused(
        &sid,
        "app",
        &request,
        StatusCode::UNAUTHORIZED,
        "REPORT_DATA_MISMATCH",
    )
    .await;

    // Expired nonce (TTL 60 s by default).
    let nonce = p.nonce(&sid, "app").await;
    p.advance_ms(60_001);
    p.refused(
        &sid,
        "app",
        &good(&nonce, &APP_MEASUREMENT, &key),
        StatusCode::UNAUTHORIZED,
        "NONCE_EXPIRED",
    )
    .await;

    // A nonce of one service used for another.
    let nonce = p.nonce(&sid, "post-compute").await;
    p.refused(
        &sid,
        "app",
        &good(&nonce, &APP_MEASUREMENT, &key),
        StatusCode::UNAUTHORIZED,
        "NONCE_MISMATCH",
    )
    .await;

    // Debug enclaves are refused by the default policy.
    let nonce = p.nonce(&sid, "app").await;
    let mut request = good(&nonce, &APP_MEASUREMENT, &key);
    if let Evidence::Simulated { debug, .. } = &mut request.evidence {
        *debug = true;
    }
    p.refused(
        &sid,
        "app",
        &request,
        StatusCode::FORBIDDEN,
        "DEBUG_ENCLAVE",
    )
    .await;

    // Malformed requests do not burn the nonce.
    let nonce = p.nonce(&sid, "app").await;
    let mut request = good(&nonce, &APP_MEASUREMENT, &key);
    request.public_key = STANDARD.encode([1u8; 31]);
    p.refused(
        &sid,
        "app",
        &request,
        StatusCode::BAD_REQUEST,
        "REQUEST_MALFORMED",
    )
    .await;
    let (status, body) = p
        .post(
            &format!("/tee/provisioning/{sid}/app/release"),
            Some(json!({ "nonce": 1 })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("REQUEST_MALFORMED")),
        "{body}"
    );

    // Unknown session and service, on both endpoints.
    assert_eq!(
        p.nonce_refused("nope", "app").await,
        (StatusCode::NOT_FOUND, "SESSION_UNKNOWN".into())
    );
    assert_eq!(
        p.nonce_refused(&sid, "pre-compute").await,
        (StatusCode::NOT_FOUND, "SERVICE_UNKNOWN".into())
    );
    assert_eq!(
        p.nonce_refused(&sid, "shell").await,
        (StatusCode::NOT_FOUND, "SERVICE_UNKNOWN".into())
    );

    // None of this released anything; the good nonce left above still works.
    assert!(p.release_log(&sid, "app").await.is_none());
    let (answer, _) = p
        .release(&sid, "app", &good(&nonce, &APP_MEASUREMENT, &key))
        .await;
    assert_eq!(answer.release, 1);

    let metrics = p.metrics().await;
    for code in [
        "MEASUREMENT_MISMATCH",
        "NONCE_EXPIRED",
        "REPORT_DATA_MISMATCH",
    ] {
        assert!(
            metrics.contains(&format!("code=\"{code}\"")),
            "{code} missing from metrics"
        );
    }
}

#[tokio::test]
async fn replayed_nonce_and_second_release_over_the_limit_are_refused() {
    let p = Prov::new().await;
    let sid = p.seed("s-limit", p.now() + 600, &APP_MEASUREMENT).await;
    let key = EphemeralKey::generate();
    let first = p.nonce(&sid, "app").await;
    let second = p.nonce(&sid, "app").await;
    let request = good(&first, &APP_MEASUREMENT, &key);
    p.release(&sid, "app", &request).await;

    // The same request again: the nonce is gone.
    p.refused(
        &sid,
        "app",
        &request,
        StatusCode::UNAUTHORIZED,
        "NONCE_UNKNOWN",
    )
    .await;
    // A nonce obtained before the release: refused at release time.
    p.refused(
        &sid,
        "app",
        &good(&second, &APP_MEASUREMENT, &key),
        StatusCode::CONFLICT,
        "RELEASE_LIMIT_REACHED",
    )
    .await;
    // And no new nonce for a service at its limit.
    assert_eq!(
        p.nonce_refused(&sid, "app").await,
        (StatusCode::CONFLICT, "RELEASE_LIMIT_REACHED".into())
    );
    assert_eq!(p.release_log(&sid, "app").await.unwrap().count(), 1);
}

/// Concurrent releases, for a session id that names no task and for one that names its
/// task as `/tee/sessions` draws them (the provisioner then reads the release log ahead,
/// and a stale read-ahead must cost only a lost check-and-set).
#[tokio::test]
async fn concurrent_releases_never_exceed_the_limit() {
    let p = Prov::with(|c| c.attest.release_limit = 2).await;
    let sid = p.seed("s-race", p.now() + 600, &APP_MEASUREMENT).await;
    concurrent_releases_stop_at_two(&p, &sid, task_of(&sid)).await;
    let (named, task) = p.seed_named("racenamed0", task_of("s-race-named")).await;
    concurrent_releases_stop_at_two(&p, &named, task).await;
}

async fn concurrent_releases_stop_at_two(p: &Prov, sid: &str, task: B256) {
    let mut requests = Vec::new();
    for _ in 0..6 {
        let key = EphemeralKey::generate();
        let nonce = p.nonce(sid, "app").await;
        requests.push(good(&nonce, &APP_MEASUREMENT, &key));
    }
    let results = futures_join(p, sid, &requests).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let limit = results
        .iter()
        .filter(|(_, c)| c == "RELEASE_LIMIT_REACHED")
        .count();
    assert_eq!((ok, limit), (2, 4), "{sid}: {results:?}");
    let log = p.task_release_log(&task, "app").await.unwrap();
    assert_eq!(
        log.releases.iter().map(|e| e.number).collect::<Vec<_>>(),
        [1, 2]
    );
}

async fn futures_join(
    p: &Prov,
    sid: &str,
    requests: &[ReleaseRequest],
) -> Vec<(StatusCode, String)> {
    let mut tasks = tokio::task::JoinSet::new();
    for request in requests {
        let (http, url) = (
            p.http.clone(),
            format!("{}/tee/provisioning/{sid}/app/release", p.server.url()),
        );
        let body = serde_json::to_value(request).unwrap();
        tasks.spawn(async move {
            let resp = http.post(url).json(&body).send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap();
            (status, body["code"].as_str().unwrap_or_default().to_owned())
        });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn expired_session_is_refused() {
    let p = Prov::new().await;
    let sid = p.seed("s-expiring", p.now() + 30, &APP_MEASUREMENT).await;
    let key = EphemeralKey::generate();
    let nonce = p.nonce(&sid, "app").await;
    p.advance_ms(30_000);
    p.refused(
        &sid,
        "app",
        &good(&nonce, &APP_MEASUREMENT, &key),
        StatusCode::GONE,
        "SESSION_EXPIRED",
    )
    .await;
    assert_eq!(
        p.nonce_refused(&sid, "app").await,
        (StatusCode::GONE, "SESSION_EXPIRED".into())
    );
    assert!(p.release_log(&sid, "app").await.is_none());
}

#[tokio::test]
async fn simulated_evidence_is_refused_when_not_enabled() {
    let p = Prov::with(|c| c.attest.dangerous_allow_simulated_tee = Some(false)).await;
    let sid = p.seed("s-real-only", p.now() + 600, &APP_MEASUREMENT).await;
    let key = EphemeralKey::generate();
    let nonce = p.nonce(&sid, "app").await;
    p.refused(
        &sid,
        "app",
        &good(&nonce, &APP_MEASUREMENT, &key),
        StatusCode::FORBIDDEN,
        "SIMULATED_EVIDENCE_REFUSED",
    )
    .await;
    assert!(p.release_log(&sid, "app").await.is_none());
    assert!(
        p.metrics()
            .await
            .contains("sms_attest_simulated_evidence_total{outcome=\"refused\"}")
    );
}

fn fixture(name: &str) -> PathBuf {
    let dir = sms_attest::samples::samples_dir().unwrap_or_else(|e| panic!("{e}"));
    dir.join(name)
}

/// The real Intel SGX quote over HTTP, with offline collateral at a pinned time: the quote
/// verifies (signatures, collateral, measurement, policy) and is then refused because its
/// report data does not bind our nonce and key, which no replayed quote can.
#[tokio::test]
async fn real_sgx_quote_goes_through_dcap_and_is_refused_for_its_report_data() {
    let quote = std::fs::read(fixture("sgx_quote")).unwrap();
    let mr_enclave = quote[112..144].to_vec();
    let request = |nonce: &NonceAnswer, key: &EphemeralKey| ReleaseRequest {
        nonce: nonce.nonce.clone(),
        public_key: key.public_key_base64(),
        evidence: Evidence::SgxDcap {
            quote: quote.clone(),
        },
    };
    let key = EphemeralKey::generate();
    let pinned = || Some(Clock::new(|| FIXTURE_NOW_MS));

    // No collateral configured.
    let p = Prov::with(|c| c.attest.clock = pinned()).await;
    let sid = p.seed("s-sgx", p.now() + 600, &mr_enclave).await;
    let nonce = p.nonce(&sid, "app").await;
    p.refused(
        &sid,
        "app",
        &request(&nonce, &key),
        StatusCode::SERVICE_UNAVAILABLE,
        "COLLATERAL_MISSING",
    )
    .await;
    drop(p);

    // Offline collateral, default policy: the fixture's status is not accepted.
    let collateral = fixture("sgx_quote_collateral.json");
    let p = Prov::with(|c| {
        c.attest.clock = pinned();
        c.attest.collateral_dir = Some(collateral.clone());
    })
    .await;
    let sid = p.seed("s-sgx", p.now() + 600, &mr_enclave).await;
    let nonce = p.nonce(&sid, "app").await;
    p.refused(
        &sid,
        "app",
        &request(&nonce, &key),
        StatusCode::FORBIDDEN,
        "TCB_STATUS_REJECTED",
    )
    .await;
    let metrics = p.metrics().await;
    assert!(
        metrics.contains("sms_attest_collateral_days_until_expiry"),
        "{metrics}"
    );
    drop(p);

    // Status accepted (or its advisories ignored): the quote passes everything but the binding.
    for configure in [
        (|c: &mut ServerConfig| {
            c.attest.accept_tcb_status = vec![TcbStatus::ConfigurationAndSWHardeningNeeded]
        }) as fn(&mut ServerConfig),
        |c: &mut ServerConfig| {
            c.attest.ignored_advisories = vec!["INTEL-SA-00289".into(), "INTEL-SA-00615".into()]
        },
    ] {
        let p = Prov::with(|c| {
            c.attest.clock = pinned();
            c.attest.collateral_dir = Some(collateral.clone());
            configure(c);
        })
        .await;
        let sid = p.seed("s-sgx", p.now() + 600, &mr_enclave).await;
        let nonce = p.nonce(&sid, "app").await;
        p.refused(
            &sid,
            "app",
            &request(&nonce, &key),
            StatusCode::UNAUTHORIZED,
            "REPORT_DATA_MISMATCH",
        )
        .await;
        // With another expected measurement, that is what fails first.
        let sid = p.seed("s-sgx-other", p.now() + 600, &APP_MEASUREMENT).await;
        let nonce = p.nonce(&sid, "app").await;
        p.refused(
            &sid,
            "app",
            &request(&nonce, &key),
            StatusCode::FORBIDDEN,
            "MEASUREMENT_MISMATCH",
        )
        .await;
        // One flipped byte in the signed report body.
        let mut flipped = request(&p.nonce(&sid, "app").await, &key);
        if let Evidence::SgxDcap { quote } = &mut flipped.evidence {
            quote[120] ^= 1;
        }
        p.refused(
            &sid,
            "app",
            &flipped,
            StatusCode::UNAUTHORIZED,
            "QUOTE_INVALID",
        )
        .await;
        assert!(p.release_log(&sid, "app").await.is_none());
    }
}

impl Prov {
    /// A session with one `app` service whose environment is `env`, for a task of its own.
    async fn seed_env(&self, id: &str, env: &[(&str, &str)]) -> String {
        let task_id = task_of(id);
        self.server
            .active_dev_task(task_id, real_now_ms() / 1000 + 86_400);
        let session = StoredSession {
            session_id: id.to_owned(),
            task_id,
            framework: TeeFramework::Gramine,
            worker: Address::repeat_byte(9),
            expires_at: self.now() + 600,
            services: vec![StoredService {
                role: EnclaveRole::App,
                measurement: Measurement::from_bytes(&APP_MEASUREMENT),
                tdx: None,
                command: None,
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }],
        };
        assert!(store_session(&self.store(), &session).await.unwrap());
        id.to_owned()
    }

    /// A good app release of `sid`: the nonce, the key, the exact body sent, the answer.
    async fn app_release(&self, sid: &str) -> (NonceAnswer, EphemeralKey, Vec<u8>, ReleaseAnswer) {
        let key = EphemeralKey::generate();
        let nonce = self.nonce(sid, "app").await;
        let (answer, sent) = self
            .release(sid, "app", &good(&nonce, &APP_MEASUREMENT, &key))
            .await;
        (nonce, key, sent, answer)
    }
}

#[tokio::test]
async fn the_identity_is_served_and_survives_restarts() {
    let mut p = Prov::new().await;
    let before = p.identity().await;
    assert_eq!(
        p.server.server().identity.public_key,
        before.to_base64(),
        "Server::identity and the route agree"
    );
    p.server.restart().await;
    assert_eq!(p.identity().await, before);
    assert!(!p.server.server().identity_created);
    // Another store, another identity.
    let other = Prov::new().await;
    assert_ne!(other.identity().await, before);
}

/// Every byte of an answer is covered: changing any field, or opening it for a request other
/// than the one sent, is refused before anything is decrypted.
#[tokio::test]
async fn a_tampered_answer_is_refused() {
    let p = Prov::new().await;
    let sid = p.seed("s-tamper", p.now() + 600, &APP_MEASUREMENT).await;
    let pinned = p.identity().await;
    let (nonce, key, sent, answer) = p.app_release(&sid).await;
    open(&pinned, &key, (&sid, "app"), &nonce, &sent, &answer).unwrap();

    fn flip(bytes: &mut [u8]) {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
    }
    type Tamper = Box<dyn Fn(&mut ReleaseAnswer)>;
    let tampered: Vec<(&str, Tamper)> = vec![
        ("ciphertext", Box::new(|a| flip(&mut a.sealed.ciphertext))),
        ("enc", Box::new(|a| flip(&mut a.sealed.enc))),
        ("signature", Box::new(|a| flip(&mut a.signature.value))),
        ("release", Box::new(|a| a.release += 1)),
        ("limit", Box::new(|a| a.limit += 1)),
        ("tee", Box::new(|a| a.tee = "sgx".into())),
        ("measurement", Box::new(|a| a.measurement = "00".repeat(32))),
        (
            "keyId",
            Box::new(|a| a.signature.key_id = "0000000000000000".into()),
        ),
        (
            "algorithm",
            Box::new(|a| a.signature.algorithm = "none".into()),
        ),
    ];
    for (field, change) in tampered {
        let mut copy = answer.clone();
        change(&mut copy);
        let result = open(&pinned, &key, (&sid, "app"), &nonce, &sent, &copy);
        assert!(
            matches!(result, Err(ProvisionError::NotAuthenticated(_))),
            "{field}: {result:?}"
        );
    }
    // The genuine answer, replayed to a launcher that asked something else.
    let mut other_body = sent.clone();
    other_body.push(b' ');
    assert!(matches!(
        open(&pinned, &key, (&sid, "app"), &nonce, &other_body, &answer),
        Err(ProvisionError::NotAuthenticated(_))
    ));
    let other_nonce = p.nonce(&sid, "post-compute").await;
    assert!(matches!(
        open(&pinned, &key, (&sid, "app"), &other_nonce, &sent, &answer),
        Err(ProvisionError::NotAuthenticated(_))
    ));
}

/// A second, real SMS holding a session with the same id (an impostor the host points the
/// enclave at) answers validly for itself, but not for a launcher pinned to the first SMS.
#[tokio::test]
async fn an_impostor_sms_cannot_answer_for_the_pinned_one() {
    let genuine = Prov::new().await;
    let pinned = genuine.identity().await;
    let impostor = Prov::new().await;
    assert_ne!(impostor.identity().await, pinned);
    let sid = impostor
        .seed_env(
            "s-shared-id",
            &[("IEXEC_APP_DEVELOPER_SECRET", "impostor-value")],
        )
        .await;
    genuine
        .seed("s-shared-id", genuine.now() + 600, &APP_MEASUREMENT)
        .await;

    let (nonce, key, sent, answer) = impostor.app_release(&sid).await;
    let refused = open(&pinned, &key, (&sid, "app"), &nonce, &sent, &answer).unwrap_err();
    assert!(
        matches!(
            refused,
            ProvisionError::NotAuthenticated(sms_attest::IdentityError::WrongKey { .. })
        ),
        "{refused:?}"
    );
    assert!(refused.to_string().contains(&pinned.key_id()), "{refused}");
}

#[tokio::test]
async fn an_answer_setting_a_forbidden_name_is_refused_whole() {
    let p = Prov::new().await;
    let pinned = p.identity().await;
    for (i, name) in [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PATH",
        "HOME",
        "SHELL",
        "IFS",
        "ENV",
        "BASH_ENV",
        "lowercase",
        "1STARTS_WITH_DIGIT",
        "HAS-DASH",
        "",
    ]
    .into_iter()
    .enumerate()
    {
        let sid = p
            .seed_env(
                &format!("s-name-{i}"),
                &[("IEXEC_TASK_ID", "0x01"), (name, "/tmp/evil.so")],
            )
            .await;
        let (nonce, key, sent, answer) = p.app_release(&sid).await;
        let result = open(&pinned, &key, (&sid, "app"), &nonce, &sent, &answer);
        assert!(
            matches!(result, Err(ProvisionError::ForbiddenName(_))),
            "{name}: {result:?}"
        );
    }
    let sid = p
        .seed_env("s-name-ok", &[("IEXEC_TASK_ID", "0x01"), ("SMS_X_9", "v")])
        .await;
    let (nonce, key, sent, answer) = p.app_release(&sid).await;
    assert_eq!(
        open(&pinned, &key, (&sid, "app"), &nonce, &sent, &answer)
            .unwrap()
            .env
            .len(),
        2
    );
}

#[tokio::test]
async fn a_release_needs_a_live_task() {
    let p = Prov::new().await;
    let key = EphemeralKey::generate();

    // Completed (or failed) on chain: refused, nothing recorded.
    let sid = p.seed("s-done", p.now() + 600, &APP_MEASUREMENT).await;
    let nonce = p.nonce(&sid, "app").await;
    p.server
        .set_dev_task_status(task_of(&sid), TaskStatus::Completed);
    p.refused(
        &sid,
        "app",
        &good(&nonce, &APP_MEASUREMENT, &key),
        StatusCode::FORBIDDEN,
        "TASK_NOT_LIVE",
    )
    .await;
    assert!(p.release_log(&sid, "app").await.is_none());

    // Past its final deadline while the session still lives.
    let task_id = task_of("s-late");
    p.server.active_dev_task(task_id, p.now() + 30);
    let sid = p
        .seed_for("s-late", task_id, p.now() + 600, &APP_MEASUREMENT)
        .await;
    let nonce = p.nonce(&sid, "app").await;
    p.advance_ms(31_000);
    p.refused(
        &sid,
        "app",
        &good(&nonce, &APP_MEASUREMENT, &key),
        StatusCode::FORBIDDEN,
        "TASK_NOT_LIVE",
    )
    .await;

    // Unknown to the chain.
    let sid = p
        .seed_for(
            "s-ghost",
            B256::repeat_byte(0x66),
            p.now() + 600,
            &APP_MEASUREMENT,
        )
        .await;
    let nonce = p.nonce(&sid, "app").await;
    p.refused(
        &sid,
        "app",
        &good(&nonce, &APP_MEASUREMENT, &key),
        StatusCode::FORBIDDEN,
        "TASK_NOT_LIVE",
    )
    .await;
}

/// The release budget belongs to the task: a second session for the same task (e.g. created
/// after the first expired) does not bring a fresh one.
#[tokio::test]
async fn the_release_budget_is_the_tasks_across_sessions() {
    let p = Prov::new().await;
    let sid = p.seed("s-budget-1", p.now() + 600, &APP_MEASUREMENT).await;
    let second = p
        .seed_for("s-budget-2", task_of(&sid), p.now() + 600, &APP_MEASUREMENT)
        .await;
    p.app_release(&sid).await;
    assert_eq!(
        p.nonce_refused(&second, "app").await,
        (StatusCode::CONFLICT, "RELEASE_LIMIT_REACHED".into())
    );
    let log = p.release_log(&sid, "app").await.unwrap();
    assert_eq!(log.count(), 1);
    assert_eq!(log.releases[0].session_id, sid);
}

/// The attacker's session id: one that names another task than the session's (the
/// provisioner reads the named task's release log ahead). The budget spent and checked is
/// the stored session's task's, at the nonce and at the release; the named task's log is
/// neither read for the decision nor written.
#[tokio::test]
async fn a_session_id_naming_another_task_spends_its_own_tasks_budget() {
    let p = Prov::new().await;
    let (honest, task) = p.seed_named("honest0001", task_of("honest0001")).await;
    let other = task_of("other task");
    let hostile = format!("hostile0010000{other:#x}");
    p.seed_for(&hostile, task, p.now() + 600, &APP_MEASUREMENT)
        .await;
    // A nonce of the hostile-id session before the budget is spent, used after.
    let early = p.nonce(&hostile, "app").await;
    p.app_release(&honest).await;
    assert_eq!(
        p.nonce_refused(&hostile, "app").await,
        (StatusCode::CONFLICT, "RELEASE_LIMIT_REACHED".into())
    );
    p.refused(
        &hostile,
        "app",
        &good(&early, &APP_MEASUREMENT, &EphemeralKey::generate()),
        StatusCode::CONFLICT,
        "RELEASE_LIMIT_REACHED",
    )
    .await;
    assert_eq!(p.task_release_log(&task, "app").await.unwrap().count(), 1);
    assert!(p.task_release_log(&other, "app").await.is_none());
}

/// Two releases presenting one nonce at the same moment: exactly one is served.
async fn one_nonce_is_served_once(p: &Prov) {
    for round in 0..8 {
        let sid = p
            .seed(
                &format!("s-nonce-race-{round}"),
                p.now() + 600,
                &APP_MEASUREMENT,
            )
            .await;
        let key = EphemeralKey::generate();
        let nonce = p.nonce(&sid, "app").await;
        let request = good(&nonce, &APP_MEASUREMENT, &key);
        let results = futures_join(p, &sid, &[request.clone(), request]).await;
        let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        let unknown = results.iter().filter(|(_, c)| c == "NONCE_UNKNOWN").count();
        assert_eq!((ok, unknown), (1, 1), "round {round}: {results:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_nonce_is_served_once_on_sqlite() {
    one_nonce_is_served_once(&Prov::with(|c| c.attest.release_limit = 100).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_nonce_is_served_once_on_postgres() {
    let url = sms_testkit::postgres::fresh_database_url().await;
    let p = Prov::with(|c| {
        c.attest.release_limit = 100;
        c.database_url = Some(url);
    })
    .await;
    assert!(
        p.server.server().store_description.starts_with("postgres"),
        "{}",
        p.server.server().store_description
    );
    one_nonce_is_served_once(&p).await;
}

/// Replicas on one PostgreSQL database, started together, sign with one identity.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_on_one_database_share_the_identity() {
    let url = sms_testkit::postgres::fresh_database_url().await;
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("master.key");
    sms_store::MasterKey::load_or_create(&key_file).unwrap();
    let start = |url: String, key_file: PathBuf| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
        config.database_url = Some(url);
        config.master_key_file = Some(key_file);
        TestServer::with_config(config, Some(dir)).await
    };
    let (a, b, c) = tokio::join!(
        start(url.clone(), key_file.clone()),
        start(url.clone(), key_file.clone()),
        start(url, key_file.clone())
    );
    let ids: Vec<_> = [&a, &b, &c]
        .iter()
        .map(|s| s.server().identity.public_key.clone())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2]);
    let created = [&a, &b, &c]
        .iter()
        .filter(|s| s.server().identity_created)
        .count();
    assert_eq!(created, 1);
}

/// The release count and the release's entry are one transaction: a release refused because
/// its entry could not be written does not use the task's budget (one release per service by
/// default), so the same service is released once the log is writable, as release 1.
#[tokio::test]
async fn a_release_refused_for_its_audit_entry_uses_no_budget() {
    let p = Prov::new().await;
    let sid = p
        .seed("s-audit-budget", p.now() + 600, &APP_MEASUREMENT)
        .await;
    let key = EphemeralKey::generate();
    let nonce = p.nonce(&sid, "app").await;
    p.server.audit_log_read_only(true).await;
    p.refused(
        &sid,
        "app",
        &good(&nonce, &APP_MEASUREMENT, &key),
        StatusCode::SERVICE_UNAVAILABLE,
        "AUDIT_LOG_UNAVAILABLE",
    )
    .await;
    p.server.audit_log_read_only(false).await;
    let nonce = p.nonce(&sid, "app").await;
    let (answer, _) = p
        .release(&sid, "app", &good(&nonce, &APP_MEASUREMENT, &key))
        .await;
    assert_eq!(answer.release, 1);
    let entries = p.store().audit_entries(0, 1000).await.unwrap();
    let granted: Vec<_> = entries
        .iter()
        .filter(|e| e.entry.body.contains("release-granted"))
        .collect();
    assert_eq!(granted.len(), 1, "one granted release, one entry");
}

/// No release without its audit entry: when the log cannot be written, the release is
/// refused (503 AUDIT_LOG_UNAVAILABLE) and nothing is sealed or answered; once the log is
/// writable again the next release goes through and is in the log.
#[tokio::test]
async fn release_is_refused_when_its_audit_entry_cannot_be_written() {
    let p = Prov::new().await;
    let sid = p.seed("s-audit", p.now() + 600, &APP_MEASUREMENT).await;
    let key = EphemeralKey::generate();
    let nonce = p.nonce(&sid, "app").await;
    let before = p.store().audit_size().await.unwrap();
    p.server.audit_log_read_only(true).await;
    p.refused(
        &sid,
        "app",
        &good(&nonce, &APP_MEASUREMENT, &key),
        StatusCode::SERVICE_UNAVAILABLE,
        "AUDIT_LOG_UNAVAILABLE",
    )
    .await;
    assert_eq!(p.store().audit_size().await.unwrap(), before);
    assert!(p.metrics().await.contains("sms_audit_write_failures_total"));

    // Writable again: the post-compute service is released, and its entry is there.
    p.server.audit_log_read_only(false).await;
    let nonce = p.nonce(&sid, "post-compute").await;
    let (answer, _) = p
        .release(&sid, "post-compute", &good(&nonce, &POST_MEASUREMENT, &key))
        .await;
    assert_eq!(answer.release, 1);
    let entries = p.store().audit_entries(before, 100).await.unwrap();
    let bodies: Vec<&str> = entries.iter().map(|e| e.entry.body.as_str()).collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(bodies[0].contains("release-granted") && bodies[0].contains("post-compute"));
    assert!(!bodies[0].contains("post-value") && !bodies[0].contains(TEST_SECRET));
}

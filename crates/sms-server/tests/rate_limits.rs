//! Rate limits and cheap refusals (docs/limits.md), against a production-mode server whose
//! ledger is the iExec PoCo contracts on a fresh local anvil chain, read through a proxy that
//! counts the JSON-RPC calls: 429 with Retry-After per client address and per signer (another
//! address or signer keeps its budget), no chain call before a signature holds, unknown facts
//! negatively cached, concurrent identical reads sharing one call, and what 10,000 requests
//! with random task ids cost the node. These tests need `tools/chain/setup.sh` to have run;
//! they fail (never skip) otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_signer_local::PrivateKeySigner;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sms_core::authorization::WorkerpoolAuthorization;
use sms_core::challenge;
use sms_core::secret::SecretKind;
use sms_core::secret_operation::{Operation, OperationMessage, SignedRequest};
use sms_core::signature::{EthSignature, sign_eip191};
use sms_core::{Address, B256};
use sms_server::limits::LimitsArgs;
use sms_server::tee::args::FrameworkArg;
use sms_server::{ChainArgs, ServerConfig};
use sms_testkit::chain::LocalChain;
use sms_testkit::rpc_count::CountingRpc;
use sms_testkit::server::TestServer;

const PRE_FP: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const POST_FP: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn pipelines_toml() -> String {
    format!(
        "[[pipelines]]\nversion = \"v5.9\"\n\
         [pipelines.pre-compute]\nimage = \"pre:1\"\nfingerprint = \"{PRE_FP}\"\nentrypoint = \"/pre\"\nheap-size = \"1GB\"\n\
         [pipelines.post-compute]\nimage = \"post:1\"\nfingerprint = \"{POST_FP}\"\nentrypoint = \"/post\"\nheap-size = \"1GB\"\n"
    )
}

/// A SCONE server on `chain`, read through a counting proxy, and two clients: one from
/// 127.0.0.1, one from 127.0.0.2.
struct World {
    _chain: LocalChain,
    rpc: CountingRpc,
    server: TestServer,
    a: reqwest::Client,
    b: reqwest::Client,
}

fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

impl World {
    /// Rate limits off and no negative cache unless `configure` sets them.
    async fn start(configure: impl FnOnce(&mut LimitsArgs)) -> Self {
        let chain = LocalChain::start().await;
        let rpc = CountingRpc::start(chain.rpc_url()).await;
        let dir = tempfile::tempdir().unwrap();
        let pipelines = dir.path().join("pipelines.toml");
        std::fs::write(&pipelines, pipelines_toml()).unwrap();
        let mut config = ServerConfig::dev_in(dir.path().join("data"));
        config.dev = false;
        config.chain = ChainArgs {
            chain_rpc: Some(rpc.url()),
            hub: Some(chain.hub()),
            chain_id: Some(chain.chain_id()),
            chain_timeout_ms: 5000,
            chain_retries: 0,
            // The PoCo ledger's own freshness cache off: what is measured is the layer above.
            chain_fresh_ms: 0,
        };
        config.tee.tee_framework = Some(FrameworkArg::Scone);
        config.tee.pipelines = Some(pipelines);
        config.tee.las_image = Some("las:1".into());
        config.limits.rate_limit_ip = "off".parse().unwrap();
        config.limits.rate_limit_signer = "off".parse().unwrap();
        config.limits.chain_miss_ttl_ms = 0;
        configure(&mut config.limits);
        let server = TestServer::with_config(config, Some(dir)).await;
        Self {
            _chain: chain,
            rpc,
            server,
            a: client_from("127.0.0.1"),
            b: client_from("127.0.0.2"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    async fn challenge(
        &self,
        http: &reqwest::Client,
        task: B256,
        authorization: Option<String>,
    ) -> reqwest::Response {
        let mut req = http.post(self.url(&format!("/tee/challenges/{task}")));
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        req.send().await.unwrap()
    }

    async fn signed_challenge(
        &self,
        http: &reqwest::Client,
        task: B256,
        signer: &PrivateKeySigner,
    ) -> reqwest::Response {
        let header = sign_eip191(signer, &challenge::enclave_challenge_request(&task)).to_hex();
        self.challenge(http, task, Some(header)).await
    }

    /// `POST /tee/sessions` by a fresh worker; the body signed with `pool_signature`
    /// (`None`: by `pool_signer`).
    async fn session(
        &self,
        http: &reqwest::Client,
        task: B256,
        pool_signer: &PrivateKeySigner,
        pool_signature: Option<EthSignature>,
    ) -> reqwest::Response {
        let worker = PrivateKeySigner::random();
        let enclave = Address::repeat_byte(0xe1);
        let hash = challenge::workerpool_authorization(&worker.address(), &task, &enclave);
        let auth = WorkerpoolAuthorization {
            chain_task_id: task,
            deal_id: B256::ZERO,
            task_index: 0,
            worker_wallet: worker.address(),
            enclave_challenge: enclave,
            signature: pool_signature.unwrap_or_else(|| sign_eip191(pool_signer, &hash)),
        };
        http.post(self.url("/tee/sessions"))
            .header("Content-Type", "application/json")
            .header("Authorization", sign_eip191(&worker, &hash).to_hex())
            .body(auth.to_json())
            .send()
            .await
            .unwrap()
    }

    /// `POST /secrets/web3?secretAddress=<dataset>` with `value`, signed by `signer`.
    async fn push_web3(
        &self,
        http: &reqwest::Client,
        dataset: Address,
        signer: Option<&PrivateKeySigner>,
    ) -> reqwest::Response {
        let value = b"dataset-key";
        let mut req = http
            .post(self.url(&format!("/secrets/web3?secretAddress={dataset}")))
            .body(value.to_vec());
        if let Some(s) = signer {
            let digest = challenge::web3_secret(dataset.as_slice(), value);
            req = req.header("Authorization", sign_eip191(s, &digest).to_hex());
        }
        req.send().await.unwrap()
    }

    async fn metrics(&self) -> String {
        self.a
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn random_task() -> B256 {
    B256::from(rand::random::<[u8; 32]>())
}

fn random_address() -> Address {
    Address::from(rand::random::<[u8; 20]>())
}

/// 65 bytes that parse as a signature (v = 27) but recover to no address.
fn unrecoverable_signature() -> EthSignature {
    EthSignature::parse(&format!("0x{}1b", "00".repeat(64))).unwrap()
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()
        .get("retry-after")
        .expect("a 429 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A 429: Retry-After in whole seconds within `max`, and the body.
async fn assert_rate_limited(resp: reqwest::Response, max_retry: u64) -> Value {
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let secs = retry_after(&resp);
    assert!((1..=max_retry).contains(&secs), "Retry-After {secs}");
    assert!(
        resp.headers()
            .get("x-sms-reason")
            .is_some_and(|r| r.to_str().unwrap().contains("too many")),
        "{:?}",
        resp.headers()
    );
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn per_ip_rate_limit_answers_429_and_spares_other_addresses() {
    let w = World::start(|l| {
        l.rate_limit_ip = "off,tee-challenge=3/h,chain-push=2/h".parse().unwrap();
    })
    .await;
    let task = random_task();
    for _ in 0..3 {
        let resp = w.challenge(&w.a, task, None).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let body = assert_rate_limited(w.challenge(&w.a, task, None).await, 3600).await;
    // The body iExec workers decode on /tee/*.
    assert_eq!(body, json!({ "error": "RATE_LIMITED" }));
    // Another address has its own bucket; another family of the same address is not limited.
    assert_eq!(
        w.challenge(&w.b, task, None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let framework = w.a.get(w.url("/tee/framework")).send().await.unwrap();
    assert_eq!(framework.status(), StatusCode::OK);

    // A push that reads the chain: the list body of /apps/*, with the code.
    let app = random_address();
    let push = |http: reqwest::Client| {
        let url = w.url(&format!("/apps/{app}/secrets"));
        async move { http.post(url).body("v").send().await.unwrap() }
    };
    for _ in 0..2 {
        assert_eq!(push(w.a.clone()).await.status(), StatusCode::UNAUTHORIZED);
    }
    let body = assert_rate_limited(push(w.a.clone()).await, 3600).await;
    assert_eq!(body["error"], json!(["Too many requests"]), "{body}");
    assert_eq!(body["code"], "RATE_LIMITED", "{body}");
    assert_eq!(push(w.b.clone()).await.status(), StatusCode::UNAUTHORIZED);

    let metrics = w.metrics().await;
    for family in ["tee-challenge", "chain-push"] {
        assert!(
            metrics.contains(&format!(
                "sms_rate_limited_total{{family=\"{family}\",by=\"ip\"}} 1"
            )),
            "{metrics}"
        );
    }
}

/// Behind a trusted proxy (127.0.0.1 here) the client is the `X-Forwarded-For` hop; another
/// peer's header is ignored, so it cannot pick a fresh address per request.
#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let w = World::start(|l| {
        l.rate_limit_ip = "off,tee-challenge=2/h".parse().unwrap();
        l.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await;
    let task = random_task();
    let via = |http: &reqwest::Client, forwarded: &str| {
        http.post(w.url(&format!("/tee/challenges/{task}")))
            .header("X-Forwarded-For", forwarded.to_owned())
            .send()
    };
    for _ in 0..2 {
        let resp = via(&w.a, "203.0.113.7").await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    assert_rate_limited(via(&w.a, "198.51.100.1, 203.0.113.7").await.unwrap(), 3600).await;
    assert_eq!(
        via(&w.a, "203.0.113.8").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // 127.0.0.2 is no trusted proxy: its own address counts, whatever it forwards.
    for i in 0..2 {
        let resp = via(&w.b, &format!("192.0.2.{i}")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    assert_rate_limited(via(&w.b, "192.0.2.99").await.unwrap(), 3600).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn per_signer_rate_limit_answers_429_before_any_chain_read() {
    let w = World::start(|l| {
        l.rate_limit_signer = "off,tee-challenge=2/h,tee-session=2/h,chain-push=2/h"
            .parse()
            .unwrap();
    })
    .await;
    let (x, y) = (PrivateKeySigner::random(), PrivateKeySigner::random());

    // Challenges: two unknown tasks are read and refused, the third is refused unread.
    for _ in 0..2 {
        let resp = w.signed_challenge(&w.a, random_task(), &x).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let before = w.rpc.calls();
    let body = assert_rate_limited(w.signed_challenge(&w.a, random_task(), &x).await, 3600).await;
    assert_eq!(body, json!({ "error": "RATE_LIMITED" }));
    assert_eq!(
        w.rpc.calls(),
        before,
        "a refused signer costs no chain call"
    );
    // Another signer, even from the same address, has its own budget.
    assert_eq!(
        w.signed_challenge(&w.a, random_task(), &y).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Sessions: the workerpool signer of the authorization is counted.
    for _ in 0..2 {
        let resp = w.session(&w.a, random_task(), &x, None).await;
        assert!(resp.status().is_client_error(), "{}", resp.status());
        assert_ne!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let before = w.rpc.calls();
    let body = assert_rate_limited(w.session(&w.b, random_task(), &x, None).await, 3600).await;
    assert_eq!(body, json!({ "error": "RATE_LIMITED" }));
    assert_eq!(w.rpc.calls(), before);
    let other = w.session(&w.a, random_task(), &y, None).await;
    assert_ne!(other.status(), StatusCode::TOO_MANY_REQUESTS);

    // Dataset pushes (owner() on chain): the plain body, with the code.
    for _ in 0..2 {
        let resp = w.push_web3(&w.a, random_address(), Some(&x)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let before = w.rpc.calls();
    let body = assert_rate_limited(w.push_web3(&w.b, random_address(), Some(&x)).await, 3600).await;
    assert_eq!(body["error"], "Too many requests", "{body}");
    assert_eq!(body["code"], "RATE_LIMITED", "{body}");
    assert_eq!(w.rpc.calls(), before);
    assert_eq!(
        w.push_web3(&w.a, random_address(), Some(&y)).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let metrics = w.metrics().await;
    for family in ["tee-challenge", "tee-session", "chain-push"] {
        assert!(
            metrics.contains(&format!(
                "sms_rate_limited_total{{family=\"{family}\",by=\"signer\"}} 1"
            )),
            "{metrics}"
        );
    }
}

/// Unsigned, malformed and unrecoverable signatures on every route that reads the chain are
/// refused without a single RPC call.
#[tokio::test(flavor = "multi_thread")]
async fn signatures_are_checked_before_any_chain_call() {
    let w = World::start(|_| {}).await;
    let zero = unrecoverable_signature().to_hex();
    let task = random_task();
    let dataset = random_address();
    let start = w.rpc.calls();
    let mut answers = BTreeMap::new();
    let mut note = |what: &str, status: StatusCode| {
        answers.insert(what.to_owned(), status);
    };

    note(
        "challenge, unsigned",
        w.challenge(&w.a, task, None).await.status(),
    );
    note(
        "challenge, not hex",
        w.challenge(&w.a, task, Some("garbage".into()))
            .await
            .status(),
    );
    note(
        "challenge, unrecoverable",
        w.challenge(&w.a, task, Some(zero.clone())).await.status(),
    );
    let anyone = PrivateKeySigner::random();
    note(
        "session, self-signed worker, unrecoverable pool signature",
        w.session(&w.a, task, &anyone, Some(unrecoverable_signature()))
            .await
            .status(),
    );
    let unsigned_session =
        w.a.post(w.url("/tee/sessions"))
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
    note("session, unsigned", unsigned_session.status());
    note(
        "web3 push, unsigned",
        w.push_web3(&w.a, dataset, None).await.status(),
    );
    let zero_push =
        w.a.post(w.url(&format!("/secrets/web3?secretAddress={dataset}")))
            .header("Authorization", zero.clone())
            .body("v")
            .send()
            .await
            .unwrap();
    note("web3 push, unrecoverable", zero_push.status());
    let app_push =
        w.a.post(w.url(&format!("/apps/{}/secrets", random_address())))
            .header("Authorization", zero.clone())
            .body("v")
            .send()
            .await
            .unwrap();
    note("app push, unrecoverable", app_push.status());
    // v2: a put of a dataset key whose signature is not the claimed signer's.
    let domain = w.server.client().v2_domain().await.unwrap();
    let message =
        OperationMessage::new(Operation::Put, SecretKind::Web3, dataset, "", Some("v"), 0)
            .valid_for(challenge_now(), 120);
    let mut request = SignedRequest::signed(&anyone, &domain, message, Some("v".into()));
    request.signer = random_address();
    let v2 =
        w.a.post(w.url("/v2/secrets/put"))
            .json(&request)
            .send()
            .await
            .unwrap();
    note("v2 put, wrong signer", v2.status());

    for (what, status) in &answers {
        assert!(
            status.is_client_error() && *status != StatusCode::TOO_MANY_REQUESTS,
            "{what}: {status}"
        );
    }
    assert_eq!(
        w.rpc.calls() - start,
        0,
        "RPC calls made for unsigned requests: {:?} ({answers:?})",
        w.rpc.by_method()
    );
}

fn challenge_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_tasks_and_entries_are_negatively_cached() {
    let w = World::start(|l| l.chain_miss_ttl_ms = 60_000).await;
    let signer = PrivateKeySigner::random();
    let task = random_task();
    let start = w.rpc.calls();
    let first = w.signed_challenge(&w.a, task, &signer).await;
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    let one = w.rpc.calls() - start;
    assert_eq!(one, 1, "one viewTask: {:?}", w.rpc.by_method());
    for _ in 0..20 {
        let again = w.signed_challenge(&w.a, task, &signer).await;
        assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    }
    for _ in 0..5 {
        let session = w.session(&w.a, task, &signer, None).await;
        assert!(session.status().is_client_error(), "{}", session.status());
    }
    assert_eq!(
        w.rpc.calls() - start,
        one,
        "the unknown task is remembered: {:?}",
        w.rpc.by_method()
    );

    // An address without an owner (a dataset push for nothing on chain).
    let dataset = random_address();
    let start = w.rpc.calls();
    for _ in 0..10 {
        let push = w.push_web3(&w.a, dataset, Some(&signer)).await;
        assert_eq!(push.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(w.rpc.calls() - start, 1, "{:?}", w.rpc.by_method());
    let metrics = w.metrics().await;
    assert!(
        metrics.contains("sms_chain_negative_cache_entries 2"),
        "{metrics}"
    );
}

/// A slow node (500 ms per call) and 100 identical concurrent requests for one unknown task,
/// with the negative cache off: they share one read.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_identical_requests_share_one_rpc_call() {
    let w = Arc::new(World::start(|_| {}).await);
    w.rpc.set_delay(Duration::from_millis(500));
    let signer = PrivateKeySigner::random();
    let task = random_task();
    let start = w.rpc.calls();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (w, signer) = (w.clone(), signer.clone());
        calls.spawn(async move { w.signed_challenge(&w.a, task, &signer).await.status() });
    }
    let statuses = calls.join_all().await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    let made = w.rpc.calls() - start;
    assert!(made <= 2, "{made} RPC calls: {:?}", w.rpc.by_method());
}

/// 10,000 requests with random task ids (5,000 challenges, 5,000 sessions, each signed by a
/// fresh key) from one address, with the default limits: the RPC calls stay within the
/// per-address budgets of the two families. Prints the figures of docs/limits.md.
#[tokio::test(flavor = "multi_thread")]
async fn random_task_ids_cost_a_bounded_number_of_rpc_calls() {
    let w = Arc::new(
        World::start(|l| {
            let defaults = LimitsArgs::default();
            l.rate_limit_ip = defaults.rate_limit_ip;
            l.rate_limit_signer = defaults.rate_limit_signer;
            l.chain_miss_ttl_ms = defaults.chain_miss_ttl_ms;
        })
        .await,
    );
    const PER_ROUTE: usize = 5_000;
    const CONCURRENCY: usize = 32;
    let start_calls = w.rpc.calls();
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (w, next) = (w.clone(), next.clone());
        workers.spawn(async move {
            let mut statuses = BTreeMap::<(bool, u16), u64>::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= 2 * PER_ROUTE {
                    return statuses;
                }
                let signer = PrivateKeySigner::random();
                let is_session = i % 2 == 1;
                let resp = if is_session {
                    w.session(&w.a, random_task(), &signer, None).await
                } else {
                    w.signed_challenge(&w.a, random_task(), &signer).await
                };
                *statuses
                    .entry((is_session, resp.status().as_u16()))
                    .or_default() += 1;
            }
        });
    }
    let mut statuses = BTreeMap::<(bool, u16), u64>::new();
    for part in workers.join_all().await {
        for (k, n) in part {
            *statuses.entry(k).or_default() += n;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let calls = w.rpc.calls() - start_calls;
    // Per family and address: a burst of 200, then 20 per second; one viewTask per admitted
    // request for an unknown task.
    let budget = 2.0 * (200.0 + 20.0 * elapsed.ceil()) + 10.0;
    println!(
        "random task ids: {} requests from one address in {elapsed:.1} s cost {calls} RPC calls \
         ({:.1} per s; budget {budget:.0}); answers (session?, status): {statuses:?}; methods {:?}",
        2 * PER_ROUTE,
        calls as f64 / elapsed,
        w.rpc.by_method()
    );
    assert!(
        (calls as f64) <= budget,
        "{calls} RPC calls for {elapsed:.1} s exceed the budget {budget:.0}"
    );
    let limited: u64 = statuses
        .iter()
        .filter(|((_, s), _)| *s == 429)
        .map(|(_, n)| n)
        .sum();
    assert!(limited > 0, "{statuses:?}");
}

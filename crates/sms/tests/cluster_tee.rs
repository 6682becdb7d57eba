//! The TEE path across replicas: three real `sms server` processes (not `--dev`) on one
//! PostgreSQL 15 database and one anvil chain with the real iExec PoCo contracts, so that the
//! store and the ledger are both shared. Enclave challenges, sessions, provisioning nonces, the
//! per-task release budget and the SMS identity hold across replicas. Needs scripts/test.sh
//! (PostgreSQL) and tools/chain/setup.sh (anvil, PoCo); fails, never skips, without them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use sms_attest::{EphemeralKey, Evidence, SmsPublicKey, report_data_binding};
use sms_client::provision::{ReleaseAsk, ReleaseRequest, open_release};
use sms_client::{ClientOptions, SmsClient, Web2Write};
use sms_core::authorization::WorkerpoolAuthorization;
use sms_core::challenge;
use sms_core::signature::sign_eip191;
use sms_core::{Address, B256};
use sms_testkit::chain::{LocalChain, TestDeal};
use sms_testkit::cluster::{Cluster, Mode};
use sms_testkit::postgres::fresh_database_url;
use sqlx::Connection;

const SMS: &str = env!("CARGO_BIN_EXE_sms");
/// Fingerprint of the app enclave in `sms_testkit::chain::SCONE_MRENCLAVE`.
const APP_FP: &str = "2d4b9efd066d0bb058b8da79bf8551be7d244779bc41d03a12201a4004779609";
const PRE_FP: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const POST_FP: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const REPLICAS: usize = 3;

/// One pipeline for the version of `SCONE_MRENCLAVE` (`v5.9`).
fn pipelines_toml() -> String {
    format!(
        "[[pipelines]]\nversion = \"v5.9\"\n\
         [pipelines.pre-compute]\nimage = \"pre:1\"\nfingerprint = \"{PRE_FP}\"\nentrypoint = \"/pre\"\nheap-size = \"1GB\"\n\
         [pipelines.post-compute]\nimage = \"post:1\"\nfingerprint = \"{POST_FP}\"\nentrypoint = \"/post\"\nheap-size = \"1GB\"\n"
    )
}

/// Three production-mode SCONE replicas on one database and one chain, accepting simulated
/// evidence (the attestation itself is not what is tested here), `release_limit` per service
/// of a task.
struct TeeCluster {
    chain: LocalChain,
    cluster: Cluster,
    database_url: String,
    clients: Vec<SmsClient>,
    _dir: tempfile::TempDir,
}

impl TeeCluster {
    async fn start(release_limit: u32) -> Self {
        let chain = LocalChain::start().await;
        let database_url = fresh_database_url().await;
        let dir = tempfile::tempdir().unwrap();
        let pipelines = dir.path().join("pipelines.toml");
        std::fs::write(&pipelines, pipelines_toml()).unwrap();
        let cluster = Self::replicas(&chain, &database_url, &pipelines, release_limit).await;
        let clients = (0..REPLICAS).map(|i| client(&cluster.url(i))).collect();
        Self {
            chain,
            cluster,
            database_url,
            clients,
            _dir: dir,
        }
    }

    async fn replicas(
        chain: &LocalChain,
        database_url: &str,
        pipelines: &std::path::Path,
        release_limit: u32,
    ) -> Cluster {
        let hub = chain.hub().to_string();
        let chain_id = chain.chain_id().to_string();
        let limit = release_limit.to_string();
        let pipelines = pipelines.display().to_string();
        let args = [
            "--chain-rpc",
            chain.rpc_url(),
            "--hub",
            &hub,
            "--chain-id",
            &chain_id,
            // Every replica reads the task status from the chain at each step.
            "--chain-fresh-ms",
            "0",
            "--tee-framework",
            "scone",
            "--pipelines",
            &pipelines,
            "--las-image",
            "las:1",
            "--dangerous-allow-simulated-tee",
            "--release-limit",
            &limit,
        ];
        Cluster::start_in(Mode::Production, SMS, database_url, REPLICAS, &args).await
    }

    /// A TEE deal of `volume` tasks whose requester pushed the result-storage token (through
    /// replica 0).
    async fn deal(&self, volume: u64) -> TestDeal {
        let deal = self.chain.deal(false, volume).await.unwrap();
        self.clients[0]
            .push_web2_secret(
                &deal.spec.requester,
                "iexec-result-iexec-ipfs-token",
                "ipfs-token",
                Web2Write::Create,
            )
            .await
            .unwrap();
        deal
    }

    async fn count(&self, sql: &str) -> i64 {
        let mut conn = sqlx::PgConnection::connect(&self.database_url)
            .await
            .unwrap();
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        n
    }
}

fn client(url: &str) -> SmsClient {
    SmsClient::new(
        url,
        &ClientOptions {
            ca_cert: None,
            timeout: Some(Duration::from_secs(20)),
        },
    )
    .unwrap()
}

/// The authorization a workerpool owner signs for a worker and an enclave challenge.
fn authorization(
    deal: &TestDeal,
    task: B256,
    index: u64,
    enclave: Address,
) -> WorkerpoolAuthorization {
    let worker = deal.worker.address();
    let hash = challenge::workerpool_authorization(&worker, &task, &enclave);
    WorkerpoolAuthorization {
        chain_task_id: task,
        deal_id: deal.deal_id,
        task_index: index,
        worker_wallet: worker,
        enclave_challenge: enclave,
        signature: sign_eip191(&deal.spec.workerpool_owner, &hash),
    }
}

/// Simulated evidence of the app enclave, bound to `report_data`.
fn app_claim(report_data: &[u8; 64]) -> Result<Evidence, String> {
    Ok(Evidence::Simulated {
        measurement: sms_core::hex::decode_lenient(APP_FP).unwrap(),
        report_data: *report_data,
        debug: false,
    })
}

/// A release request for `nonce`, bound to a fresh key: its body, the raw nonce and the key.
fn release_body(nonce: &sms_client::provision::NonceAnswer) -> (Vec<u8>, Vec<u8>, EphemeralKey) {
    let raw = nonce.nonce_bytes().unwrap();
    let key = EphemeralKey::generate();
    let report_data = report_data_binding(&raw, key.public_key());
    let request = ReleaseRequest {
        nonce: nonce.nonce.clone(),
        public_key: key.public_key_base64(),
        evidence: app_claim(&report_data).unwrap(),
    };
    (serde_json::to_vec(&request).unwrap(), raw, key)
}

/// `(status, code)` of a raw release POST: the code is the refusal's, or `OK`.
async fn post_release(base: &str, session: &str, body: Vec<u8>) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .post(format!("{base}/tee/provisioning/{session}/app/release"))
        .header("Content-Type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let code = if status.is_success() {
        "OK".to_owned()
    } else {
        body["code"].as_str().unwrap_or_default().to_owned()
    };
    (status, code)
}

/// Runs `futures` concurrently (each on its own task) and returns their outputs in order.
async fn together<T: Send + 'static>(
    futures: impl IntoIterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// The pinned key of the cluster, as an enclave image would carry it (from replica 0).
async fn pinned(tee: &TeeCluster) -> SmsPublicKey {
    let identity = tee.clients[0].provision_identity().await.unwrap();
    SmsPublicKey::from_base64(&identity.public_key).unwrap()
}

/// An ACTIVE task of `deal`, its challenge (asked on replica `on`) and its session (asked on
/// the same replica): the session id.
async fn session_on(tee: &TeeCluster, deal: &TestDeal, index: u64, on: usize) -> (B256, String) {
    let task = tee
        .chain
        .initialize_task(deal.deal_id, index)
        .await
        .unwrap();
    let enclave = tee.clients[on]
        .tee_challenge(&deal.spec.workerpool_owner, task)
        .await
        .unwrap();
    let session = tee.clients[on]
        .tee_session(&deal.worker, &authorization(deal, task, index, enclave))
        .await
        .unwrap();
    (task, session.session_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_challenge_per_task_when_all_replicas_are_asked_at_once() {
    let tee = TeeCluster::start(1).await;
    const TASKS: u64 = 4;
    const PER_REPLICA: usize = 3;
    let deal = tee.deal(TASKS).await;
    let mut tasks = Vec::new();
    for index in 0..TASKS {
        let task = tee
            .chain
            .initialize_task(deal.deal_id, index)
            .await
            .unwrap();
        // 3 requests on each of the 3 replicas, all in flight together.
        let asks = (0..REPLICAS * PER_REPLICA).map(|k| {
            let client = tee.clients[k % REPLICAS].clone();
            let owner = deal.spec.workerpool_owner.clone();
            async move { (k % REPLICAS, client.tee_challenge(&owner, task).await) }
        });
        let answers = together(asks).await;
        let addresses: HashSet<Address> = answers
            .iter()
            .map(|(replica, a)| {
                *a.as_ref()
                    .unwrap_or_else(|e| panic!("task {index}, replica {replica}: {e}"))
            })
            .collect();
        assert_eq!(addresses.len(), 1, "task {index}: {answers:?}");
        // Asked again later, anywhere: the same challenge.
        let first = *addresses.iter().next().unwrap();
        for (replica, c) in tee.clients.iter().enumerate() {
            assert_eq!(
                c.tee_challenge(&deal.spec.workerpool_owner, task)
                    .await
                    .unwrap(),
                first,
                "task {index}, replica {replica}"
            );
        }
        tasks.push(first);
    }
    assert_eq!(
        tasks.iter().collect::<HashSet<_>>().len(),
        TASKS as usize,
        "one challenge per task"
    );
    assert_eq!(
        tee.count("SELECT COUNT(*) FROM records WHERE namespace = 'tee-challenge'")
            .await,
        TASKS as i64,
        "one stored challenge per task"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_created_on_replica_1_is_released_by_replica_2_once() {
    let tee = TeeCluster::start(1).await;
    let deal = tee.deal(1).await;
    let pinned = pinned(&tee).await;
    let (task, session) = session_on(&tee, &deal, 0, 0).await;

    // The worker retries its session request on the other replicas: the task's live session.
    let enclave = tee.clients[0]
        .tee_challenge(&deal.spec.workerpool_owner, task)
        .await
        .unwrap();
    for i in 1..REPLICAS {
        let again = tee.clients[i]
            .tee_session(&deal.worker, &authorization(&deal, task, 0, enclave))
            .await
            .unwrap();
        assert_eq!(again.session_id, session, "replica {i}");
    }

    // The enclave asks replica 2 (index 1), which never saw the session being made.
    let (answer, env) = tee.clients[1]
        .attested_release(&session, "app", &pinned, app_claim)
        .await
        .unwrap();
    assert_eq!((answer.release, answer.limit), (1, 1));
    assert_eq!(
        env.env["IEXEC_TASK_ID"],
        sms_core::hex::encode_prefixed(task)
    );

    // The task's budget (1) is spent on every replica: no nonce, no second release.
    for (i, c) in tee.clients.iter().enumerate() {
        let refused = c.provision_nonce(&session, "app").await.unwrap_err();
        assert_eq!(
            refused.code(),
            Some("RELEASE_LIMIT_REACHED"),
            "replica {i}: {refused}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_nonce_presented_to_three_replicas_at_once_is_released_once() {
    // A large budget: the nonce is the only thing that may stop the second and third copies.
    let tee = TeeCluster::start(100).await;
    const ROUNDS: u64 = 6;
    let deal = tee.deal(ROUNDS).await;
    let pinned = pinned(&tee).await;
    for round in 0..ROUNDS {
        let (_, session) = session_on(&tee, &deal, round, round as usize % REPLICAS).await;
        let nonce = tee.clients[(round as usize + 1) % REPLICAS]
            .provision_nonce(&session, "app")
            .await
            .unwrap();
        let (body, _, _) = release_body(&nonce);
        let posts = (0..REPLICAS).map(|i| {
            let (base, session, body) = (tee.cluster.url(i), session.clone(), body.clone());
            async move { post_release(&base, &session, body).await }
        });
        let results = together(posts).await;
        let served = results.iter().filter(|(_, c)| c == "OK").count();
        let unknown = results
            .iter()
            .filter(|(s, c)| *s == StatusCode::UNAUTHORIZED && c == "NONCE_UNKNOWN")
            .count();
        assert_eq!((served, unknown), (1, 2), "round {round}: {results:?}");

        // The served answer is genuine: released once, and signed by the shared identity.
        let answer = tee.clients[round as usize % REPLICAS]
            .provision_release(&session, "app", body.clone())
            .await
            .unwrap_err();
        assert_eq!(answer.code(), Some("NONCE_UNKNOWN"), "a fourth try later");
        let fresh = tee.clients[2]
            .provision_nonce(&session, "app")
            .await
            .unwrap();
        let (body2, raw2, key2) = release_body(&fresh);
        let second = tee.clients[0]
            .provision_release(&session, "app", body2.clone())
            .await
            .unwrap();
        assert_eq!(
            second.release, 2,
            "round {round}: the race counted exactly one"
        );
        let asked = ReleaseAsk {
            session_id: &session,
            service: "app",
            nonce: &raw2,
            request_body: &body2,
        };
        open_release(&pinned, &key2, &asked, &second).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_release_budget_of_a_task_holds_across_replicas() {
    const LIMIT: u32 = 2;
    const TRIES: usize = 9;
    let tee = TeeCluster::start(LIMIT).await;
    let deal = tee.deal(1).await;
    let (_, session) = session_on(&tee, &deal, 0, 2).await;
    // Nine nonces, three from each replica, then nine releases in flight together, each on
    // another replica than the one that issued its nonce.
    let mut bodies = Vec::new();
    for k in 0..TRIES {
        let nonce = tee.clients[k % REPLICAS]
            .provision_nonce(&session, "app")
            .await
            .unwrap();
        bodies.push(release_body(&nonce).0);
    }
    let posts = bodies.into_iter().enumerate().map(|(k, body)| {
        let (base, session) = (tee.cluster.url((k + 1) % REPLICAS), session.clone());
        async move { post_release(&base, &session, body).await }
    });
    let results = together(posts).await;
    let served = results.iter().filter(|(_, c)| c == "OK").count();
    let over = results
        .iter()
        .filter(|(s, c)| *s == StatusCode::CONFLICT && c == "RELEASE_LIMIT_REACHED")
        .count();
    assert_eq!(
        (served, over),
        (LIMIT as usize, TRIES - LIMIT as usize),
        "{results:?}"
    );
    for (i, c) in tee.clients.iter().enumerate() {
        let refused = c.provision_nonce(&session, "app").await.unwrap_err();
        assert_eq!(
            refused.code(),
            Some("RELEASE_LIMIT_REACHED"),
            "replica {i}: {refused}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_identity_key_lives_in_the_store_and_is_the_same_on_every_replica() {
    let mut tee = TeeCluster::start(1).await;
    let identity = |c: &SmsClient| {
        let c = c.clone();
        async move { c.provision_identity().await.unwrap() }
    };
    let first = identity(&tee.clients[0]).await;
    for (i, c) in tee.clients.iter().enumerate().skip(1) {
        let other = identity(c).await;
        assert_eq!(
            (&other.key_id, &other.public_key),
            (&first.key_id, &first.public_key),
            "replica {i}"
        );
    }
    assert_eq!(
        tee.count("SELECT COUNT(*) FROM records WHERE namespace = 'sms-identity'")
            .await,
        1,
        "one identity record in PostgreSQL"
    );
    // Nothing of it on a replica's disk: with every replica stopped, a whole new cluster with
    // new, empty data directories on the same database signs with the same key.
    for i in 0..REPLICAS {
        tee.cluster.kill(i).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let pipelines = dir.path().join("pipelines.toml");
    std::fs::write(&pipelines, pipelines_toml()).unwrap();
    let fresh = TeeCluster::replicas(&tee.chain, &tee.database_url, &pipelines, 1).await;
    for i in 0..REPLICAS {
        let again = identity(&client(&fresh.url(i))).await;
        assert_eq!(
            (&again.key_id, &again.public_key),
            (&first.key_id, &first.public_key),
            "new replica {i}"
        );
    }
    // And it signs releases: a session made on the new cluster verifies against the old pin.
    let deal = tee.deal_via(&fresh, 1).await;
    tee.cluster = fresh;
    tee.clients = (0..REPLICAS).map(|i| client(&tee.cluster.url(i))).collect();
    let pinned = SmsPublicKey::from_base64(&first.public_key).unwrap();
    let (_, session) = session_on(&tee, &deal, 0, 1).await;
    tee.clients[2]
        .attested_release(&session, "app", &pinned, app_claim)
        .await
        .unwrap();
}

impl TeeCluster {
    /// [`TeeCluster::deal`] with the token pushed through `cluster`'s replica 0.
    async fn deal_via(&self, cluster: &Cluster, volume: u64) -> TestDeal {
        let deal = self.chain.deal(false, volume).await.unwrap();
        client(&cluster.url(0))
            .push_web2_secret(
                &deal.spec.requester,
                "iexec-result-iexec-ipfs-token",
                "ipfs-token",
                Web2Write::Create,
            )
            .await
            .unwrap();
        deal
    }
}

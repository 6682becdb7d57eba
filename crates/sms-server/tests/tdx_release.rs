//! TDX measured whole, over HTTP against an in-process `--dev` TDX server: a session built from
//! a pipelines file with `tdx` tables carries each stage's registers (the app's RTMR3 derived
//! from its on-chain checksum), every stage is released to simulated evidence of its published
//! fingerprint, and the real TDX quote is checked register by register.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::PathBuf;

const SESSION_NAMESPACE: &str = sms_store::Namespace::TeeSession.as_str();

use alloy_signer_local::PrivateKeySigner;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sms_attest::{EphemeralKey, Evidence, Register, TdxMeasurement, TdxRegister};
use sms_client::provision::ReleaseRequest;
use sms_core::authorization::WorkerpoolAuthorization;
use sms_core::challenge;
use sms_core::enclave_config::Measurement;
use sms_core::measurement::app_rtmr3;
use sms_core::session_plan::EnclaveRole;
use sms_core::signature::sign_eip191;
use sms_core::stored_session::{StoredService, StoredSession};
use sms_core::tag::TeeFramework;
use sms_core::{Address, B256};
use sms_server::ServerConfig;
use sms_server::attest_args::Clock;
use sms_server::provision::store_session;
use sms_server::tee::args::FrameworkArg;
use sms_store::RecordKey;
use sms_testkit::server::TestServer;

const PRE_FP: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const POST_FP: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";
const APP_CHECKSUM: [u8; 32] = [0xcc; 32];
/// 2025-07-01T00:00:00Z, inside the DCAP fixtures' collateral windows.
const FIXTURE_NOW_MS: u64 = 1_751_328_000_000;

fn reg(byte: u8) -> String {
    hex::encode([byte; 48])
}

/// One TDX pipeline: pre-compute TD `1x`, post-compute TD `2x` (RTMR3 `any`), app TD image `3x`.
fn pipelines_toml() -> String {
    let stage = |name: &str, fp: &str, b: u8| {
        format!(
            "[pipelines.{name}]\nimage = \"reg/{name}:1\"\nfingerprint = \"{fp}\"\nentrypoint = \"/{name}\"\nheap-size = \"1GB\"\n\
             [pipelines.{name}.tdx]\nmrtd = \"{}\"\nrtmr0 = \"{}\"\nrtmr1 = \"{}\"\nrtmr2 = \"{}\"\nrtmr3 = \"any\"\n",
            reg(b + 1),
            reg(b + 2),
            reg(b + 3),
            reg(b + 4)
        )
    };
    format!(
        "[[pipelines]]\nversion = \"tdx-1\"\n{}{}[pipelines.app.tdx]\nmrtd = \"{}\"\nrtmr0 = \"{}\"\nrtmr1 = \"{}\"\nrtmr2 = \"{}\"\n",
        stage("pre-compute", PRE_FP, 0x10),
        stage("post-compute", POST_FP, 0x20),
        reg(0x31),
        reg(0x32),
        reg(0x33),
        reg(0x34),
    )
}

fn exact(byte: u8) -> Register {
    Register::Exact([byte; 48])
}

async fn post_ok(server: &TestServer, path: &str, body: Value) -> Value {
    let (status, answer) = server
        .call(
            reqwest::Method::POST,
            path,
            None,
            Some(body.to_string().as_bytes()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    answer
}

/// `--dev --tee-framework tdx --pipelines <file with tdx tables>`: the stored session pins
/// each stage's TD, the app's RTMR3 being the extension of its checksum, and each of the three
/// stages is released (simulated evidence claims the stage's published fingerprint).
#[tokio::test]
async fn tdx_session_pins_every_register_and_releases_the_app_stage() {
    let dir = tempfile::tempdir().unwrap();
    let pipelines = dir.path().join("pipelines.toml");
    std::fs::write(&pipelines, pipelines_toml()).unwrap();
    let mut config = ServerConfig::dev_in(dir.path().join("sms"));
    config.tee.tee_framework = Some(FrameworkArg::Tdx);
    config.tee.pipelines = Some(pipelines);
    let server = TestServer::with_config(config, Some(dir)).await;
    let client = server.client();

    let pool_owner = PrivateKeySigner::random();
    let worker = PrivateKeySigner::random();
    let app = post_ok(
        &server,
        "/dev/apps",
        json!({ "owner": Address::repeat_byte(0x11), "name": "tdx-app",
                "multiaddr": "docker.io/example/tdx-app:1", "checksum": B256::from(APP_CHECKSUM) }),
    )
    .await["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let pool = post_ok(
        &server,
        "/dev/workerpools",
        json!({ "owner": pool_owner.address() }),
    )
    .await["address"]
        .as_str()
        .unwrap()
        .to_owned();
    // An input file (so there is a pre-compute) and a callback (so no storage token is needed).
    let deal = post_ok(
        &server,
        "/dev/deals",
        json!({ "app": app, "workerpool": pool, "requester": Address::repeat_byte(0x22),
                "tag": "tee,tdx", "callback": Address::repeat_byte(0x33),
                "params": { "iexec_input_files": ["https://example.com/in.txt"] } }),
    )
    .await;
    let task: B256 = deal["taskIds"][0].as_str().unwrap().parse().unwrap();
    let enclave = client.tee_challenge(&pool_owner, task).await.unwrap();
    let hash = challenge::workerpool_authorization(&worker.address(), &task, &enclave);
    let authorization = WorkerpoolAuthorization {
        chain_task_id: task,
        deal_id: B256::ZERO,
        task_index: 0,
        worker_wallet: worker.address(),
        enclave_challenge: enclave,
        signature: sign_eip191(&pool_owner, &hash),
    };
    let answer = client.tee_session(&worker, &authorization).await.unwrap();
    // TDX: the full URL of the attestation endpoint (SCONE and Gramine answer host:port).
    assert_eq!(answer.secret_provisioning_url, server.url());
    let session_id = answer.session_id;

    // The stored expectation of each stage.
    let stored = server
        .server()
        .store
        .get(&RecordKey::new(SESSION_NAMESPACE, "", session_id.as_str()))
        .await
        .unwrap()
        .unwrap();
    let session: StoredSession = serde_json::from_slice(stored.value.as_bytes()).unwrap();
    assert_eq!(session.framework, TeeFramework::Tdx);
    let tdx = |name: &str| {
        session
            .services
            .iter()
            .find(|s| s.role.name() == name)
            .and_then(|s| s.tdx.clone())
            .unwrap_or_else(|| panic!("{name} has no TDX registers"))
    };
    let stage_td = |b: u8| TdxMeasurement {
        mrtd: exact(b + 1),
        rtmr0: exact(b + 2),
        rtmr1: exact(b + 3),
        rtmr2: exact(b + 4),
        rtmr3: Register::Any,
        mr_config_id: Register::Any,
    };
    assert_eq!(tdx("pre-compute"), stage_td(0x10));
    assert_eq!(tdx("post-compute"), stage_td(0x20));
    assert_eq!(
        tdx("app"),
        TdxMeasurement {
            mrtd: exact(0x31),
            rtmr0: exact(0x32),
            rtmr1: exact(0x33),
            rtmr2: exact(0x34),
            rtmr3: Register::Exact(app_rtmr3(&B256::from(APP_CHECKSUM))),
            mr_config_id: Register::Any,
        }
    );

    // Every stage, the app included, is released to simulated evidence of its fingerprint.
    let pinned =
        sms_attest::SmsPublicKey::from_base64(&server.server().identity.public_key).unwrap();
    for (service, fingerprint) in [
        ("pre-compute", hex::decode(PRE_FP).unwrap()),
        ("app", APP_CHECKSUM.to_vec()),
        ("post-compute", hex::decode(POST_FP).unwrap()),
    ] {
        // Not another stage's fingerprint, nor the app's RTMR3.
        let claim = |measurement: Vec<u8>| {
            move |report_data: &[u8; 64]| {
                Ok(Evidence::Simulated {
                    measurement,
                    report_data: *report_data,
                    debug: false,
                })
            }
        };
        let refused = client
            .attested_release(
                &session_id,
                service,
                &pinned,
                claim(app_rtmr3(&B256::from(APP_CHECKSUM)).to_vec()),
            )
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some("MEASUREMENT_MISMATCH"), "{service}");

        let (answer, env) = client
            .attested_release(&session_id, service, &pinned, claim(fingerprint))
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"));
        assert_eq!((answer.service.as_str(), answer.release), (service, 1));
        assert_eq!(
            env.env.get("IEXEC_TASK_ID").map(String::as_str),
            Some(sms_core::hex::encode_prefixed(task).as_str()),
            "{service}"
        );
    }
}

fn fixture(name: &str) -> PathBuf {
    let dir = sms_attest::samples::samples_dir().unwrap_or_else(|e| panic!("{e}"));
    dir.join(name)
}

/// The registers of the fixture TDX quote (v4: 48-byte header, then the TD report body).
fn fixture_registers(quote: &[u8]) -> TdxMeasurement {
    TdxMeasurement::from_fn(|register| {
        let at = match register {
            TdxRegister::Mrtd => 184,
            TdxRegister::MrConfigId => 232,
            TdxRegister::Rtmr0 => 376,
            TdxRegister::Rtmr1 => 424,
            TdxRegister::Rtmr2 => 472,
            TdxRegister::Rtmr3 => 520,
        };
        Register::Exact(quote[at..at + 48].try_into().unwrap())
    })
}

/// The real Intel TDX quote over HTTP (offline collateral, pinned clock) against sessions
/// seeded with different expectations. Its own registers: it passes the measurement and is
/// refused only for its report data, which no replayed quote can bind. RTMR1 one bit off,
/// no registers (a session stored before they were checked, or the `--dev` built-in
/// pipeline), or an SGX session: refused for the measurement, naming what differed.
#[tokio::test]
async fn real_tdx_quote_is_released_only_against_all_its_registers() {
    let quote = std::fs::read(fixture("tdx_quote")).unwrap();
    let own = fixture_registers(&quote);
    let mut rtmr1_off = own.clone();
    let Register::Exact(mut rtmr1) = own.rtmr1 else {
        unreachable!()
    };
    rtmr1[0] ^= 0x01;
    rtmr1_off.rtmr1 = Register::Exact(rtmr1);
    let mrtd = hex::encode(&quote[184..232]);

    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
    config.attest.clock = Some(Clock::new(|| FIXTURE_NOW_MS));
    config.attest.collateral_dir = Some(fixture("tdx_quote_collateral.json"));
    let server = TestServer::with_config(config, Some(dir)).await;
    let client = server.client();

    let cases: [(&str, TeeFramework, Option<TdxMeasurement>, &str, &str); 4] = [
        (
            "own",
            TeeFramework::Tdx,
            Some(own),
            "REPORT_DATA_MISMATCH",
            "report data",
        ),
        (
            "rtmr1",
            TeeFramework::Tdx,
            Some(rtmr1_off),
            "MEASUREMENT_MISMATCH",
            "RTMR1 mismatch: expected ",
        ),
        (
            "none",
            TeeFramework::Tdx,
            None,
            "MEASUREMENT_MISMATCH",
            "TDX registers mismatch",
        ),
        (
            "sgx",
            TeeFramework::Gramine,
            None,
            "MEASUREMENT_MISMATCH",
            "TEE mismatch: expected sgx evidence, got tdx evidence",
        ),
    ];
    for (id, framework, tdx, code, reason) in cases {
        let session = StoredSession {
            session_id: format!("tdx-{id}"),
            task_id: B256::repeat_byte(7),
            framework,
            worker: Address::repeat_byte(9),
            expires_at: FIXTURE_NOW_MS / 1000 + 600,
            services: vec![StoredService {
                role: EnclaveRole::App,
                // The MRTD as fingerprint: the value today's MRTD-only check compared.
                measurement: Measurement::from_hex(if framework == TeeFramework::Tdx {
                    &mrtd
                } else {
                    &mrtd[..64]
                })
                .unwrap(),
                tdx,
                command: None,
                env: BTreeMap::from([("A".to_owned(), "1".to_owned())]),
            }],
        };
        assert!(
            store_session(&server.server().store, &session)
                .await
                .unwrap()
        );
        let nonce = client
            .provision_nonce(&session.session_id, "app")
            .await
            .unwrap();
        let key = EphemeralKey::generate();
        let request = ReleaseRequest {
            nonce: nonce.nonce,
            public_key: key.public_key_base64(),
            evidence: Evidence::TdxDcap {
                quote: quote.clone(),
            },
        };
        let (status, body) = server
            .call(
                reqwest::Method::POST,
                &format!("/tee/provisioning/{}/app/release", session.session_id),
                None,
                Some(&serde_json::to_vec(&request).unwrap()),
            )
            .await;
        assert_eq!(body["code"], code, "{id}: {body}");
        let expected_status = if code == "REPORT_DATA_MISMATCH" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, expected_status, "{id}");
        let text = body.to_string();
        assert!(text.contains(reason), "{id}: {text}");
        if id == "rtmr1" {
            // Both values, in hex.
            assert!(text.contains(&hex::encode(rtmr1)), "{text}");
            assert!(text.contains(&hex::encode(&quote[424..472])), "{text}");
        }
    }
}

//! Session exporters: golden files of the three upstream formats built from fixed session
//! plans, and the HTTPS poster against a local HTTPS server (certificate and hostname checked).
//!
//! Regenerate the goldens with `UPDATE_GOLDEN=1 cargo nextest run -p sms-server --test tee_export`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use sms_core::deal_params;
use sms_core::ledger::{AppEntry, DatasetEntry, Deal, DealResource, task_id};
use sms_core::pipeline::Pipelines;
use sms_core::secret::{RequesterSecretName, SecretId, SecretValue};
use sms_core::session_plan::{
    SecretValues, SessionInputs, SessionPlan, TaskInput, build_session_plan,
};
use sms_core::tag::TeeFramework;
use sms_core::{Address, B256, U256};
use sms_server::tee::args::SessionExport;
use sms_server::tee::export::scone::{SconeAttestation, cas_session_yaml};
use sms_server::tee::export::{Exporter, ExporterOptions, gramine, tdx};

const CHALLENGE_KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const FP_PRE: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const FP_POST: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";
const FP_APP: &str = "2d4b9efd066d0bb058b8da79bf8551be7d244779bc41d03a12201a4004779609";

fn pipelines(framework: TeeFramework) -> Pipelines {
    let mut text = format!(
        "[[pipelines]]\nversion = \"v5\"\n[pipelines.pre-compute]\nimage = \"reg/pre:5\"\nfingerprint = \"{FP_PRE}\"\nentrypoint = \"/pre\"\nheap-size = \"1GB\"\n[pipelines.post-compute]\nimage = \"reg/post:5\"\nfingerprint = \"{FP_POST}\"\nentrypoint = \"/post\"\nheap-size = \"1GB\"\n"
    );
    if framework == TeeFramework::Tdx {
        // The registers are checked by the provisioner, never exported.
        let mrtd = "ee".repeat(48);
        for table in ["pre-compute.tdx", "post-compute.tdx", "app.tdx"] {
            text.push_str(&format!(
                "[pipelines.{table}]\nmrtd = \"{mrtd}\"\nrtmr0 = \"any\"\nrtmr1 = \"any\"\nrtmr2 = \"any\"\n"
            ));
            if table != "app.tdx" {
                text.push_str("rtmr3 = \"any\"\n");
            }
        }
    }
    Pipelines::from_toml_str(&text, framework).unwrap()
}

fn res(byte: u8) -> DealResource {
    DealResource {
        pointer: Address::repeat_byte(byte),
        owner: Address::repeat_byte(byte + 1),
        price: U256::ZERO,
    }
}

/// A task with a dataset, an input file, a requester secret, an app secret and IPFS storage.
fn plan(framework: TeeFramework) -> SessionPlan {
    let tag_byte = match framework {
        TeeFramework::Scone => 0x03,
        TeeFramework::Gramine => 0x05,
        TeeFramework::Tdx => 0x09,
    };
    let mut tag = B256::ZERO;
    tag[31] = tag_byte;
    let deal_id = B256::repeat_byte(0xde);
    let deal = Deal {
        deal_id,
        app: res(0x10),
        dataset: res(0x20),
        workerpool: res(0x30),
        trust: U256::from(1),
        category: U256::ZERO,
        tag,
        requester: Address::repeat_byte(0x40),
        beneficiary: Address::repeat_byte(0x40),
        callback: Address::ZERO,
        params: r#"{"iexec_args":"--name \"world\"","iexec_input_files":["https://example.com/foo.txt"],"iexec_secrets":{"1":"pass"},"iexec_result_storage_provider":"ipfs"}"#.into(),
        start_time: 1_700_000_000,
        bot_first: 0,
        bot_size: 1,
        worker_stake: U256::ZERO,
        scheduler_reward_ratio: U256::ZERO,
        sponsor: Address::repeat_byte(0x40),
    };
    let mrenclave = match framework {
        TeeFramework::Scone => format!(
            r#"{{"framework":"SCONE","version":"v5","entrypoint":"python /app/app.py","heapSize":1073741824,"fingerprint":"{FP_APP}"}}"#
        ),
        TeeFramework::Gramine => {
            format!(r#"{{"framework":"GRAMINE","version":"v5","fingerprint":"{FP_APP}"}}"#)
        }
        TeeFramework::Tdx => String::new(),
    };
    let app = AppEntry {
        address: deal.app.pointer,
        owner: deal.app.owner,
        name: "app".into(),
        app_type: "DOCKER".into(),
        multiaddr: "docker.io/example/app:1.0.0".into(),
        checksum: B256::repeat_byte(0xcc),
        mrenclave: mrenclave.into_bytes(),
    };
    let dataset = DatasetEntry {
        address: deal.dataset.pointer,
        owner: deal.dataset.owner,
        name: "data".into(),
        multiaddr: "/ipfs/QmW2WQi7j6c7UgJTarActp7tDNikE4B2qXtFCfLPdsgaTQ".into(),
        checksum: B256::repeat_byte(0xdd),
    };
    let worker = Address::repeat_byte(0x50);
    let mut secrets = SecretValues::new();
    secrets.insert(
        SecretId::web3(dataset.address),
        SecretValue::from("ZGF0YXNldC1rZXk="),
    );
    secrets.insert(
        SecretId::app_developer(app.address),
        SecretValue::from("app \"secret\"\nline 2"),
    );
    secrets.insert(
        SecretId::requester(deal.requester, &RequesterSecretName::parse("pass").unwrap()),
        SecretValue::from("p@ss: word"),
    );
    secrets.insert(
        SecretId::web2(worker, "iexec-result-iexec-ipfs-token").unwrap(),
        SecretValue::from("jwt.token"),
    );
    let params = deal_params::parse(&deal.params).params;
    let key = SecretValue::from(CHALLENGE_KEY);
    let challenge: alloy_signer_local::PrivateKeySigner =
        CHALLENGE_KEY.trim_start_matches("0x").parse().unwrap();
    let pipelines = pipelines(framework);
    let inputs = SessionInputs {
        task: TaskInput {
            task_id: task_id(&deal_id, 0),
            task_index: 0,
            deal: &deal,
            params: &params,
            worker,
        },
        sms_framework: framework,
        app: &app,
        dataset: Some(&dataset),
        pipelines: &pipelines,
        enclave_challenge: challenge.address(),
        challenge_private_key: Some(&key),
        secrets: &secrets,
        bulk: None,
    };
    build_session_plan(&inputs).unwrap()
}

fn session_id() -> String {
    format!(
        "abcdefghij0000{}",
        sms_core::hex::encode_prefixed(task_id(&B256::repeat_byte(0xde), 0))
    )
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares byte for byte (JSON goldens are stored pretty and compared as values).
fn check(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = if name.ends_with(".json") {
            serde_json::to_string_pretty(
                &serde_json::from_str::<serde_json::Value>(actual).unwrap(),
            )
            .unwrap()
                + "\n"
        } else {
            actual.to_owned()
        };
        std::fs::write(&path, text).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if name.ends_with(".json") {
        let a: serde_json::Value = serde_json::from_str(actual).unwrap();
        let e: serde_json::Value = serde_json::from_str(&expected).unwrap();
        assert_eq!(a, e, "{name} differs from its golden file");
    } else {
        assert_eq!(actual, expected, "{name} differs from its golden file");
    }
}

fn attestation() -> SconeAttestation {
    SconeAttestation {
        mode: "maa".into(),
        url: Some("https://attestation.example".into()),
        tolerate: vec!["hyperthreading".into(), "software-hardening-needed".into()],
        ignore_advisories: vec!["INTEL-SA-00161".into()],
    }
}

#[test]
fn golden_scone_cas_yaml() {
    let yaml = cas_session_yaml(&session_id(), &plan(TeeFramework::Scone), &attestation());
    check("scone-cas-session.yaml", &yaml);
    // No attestation URL: null.
    let plain = cas_session_yaml(
        &session_id(),
        &plan(TeeFramework::Scone),
        &SconeAttestation {
            mode: "hardware".into(),
            ..Default::default()
        },
    );
    assert!(
        plain.contains(
            "    tolerate: []\n    ignore_advisories: []\n    mode: \"hardware\"\n    url: null\n"
        ),
        "{plain}"
    );
}

#[test]
fn golden_gramine_sps_json() {
    check(
        "gramine-sps-session.json",
        &gramine::sps_session_json(&session_id(), &plan(TeeFramework::Gramine)),
    );
}

#[test]
fn golden_tdx_storage_json() {
    check(
        "tdx-session-storage.json",
        &tdx::tdx_session_json(&session_id(), &plan(TeeFramework::Tdx)),
    );
}

// ---------------------------------------------------------------------------------------------
// HTTPS poster
// ---------------------------------------------------------------------------------------------

struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki(names: &[&str]) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sms test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

type Received = Arc<Mutex<Vec<(String, String, String)>>>;

/// An HTTPS server answering `status` on every POST and recording (path, content type, body).
async fn https_server(
    pki: &Pki,
    status: StatusCode,
) -> (SocketAddr, Received, axum_server::Handle<SocketAddr>) {
    sms_client::install_crypto_provider();
    let received: Received = Arc::default();
    let rec = received.clone();
    let handler = move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
        let rec = rec.clone();
        async move {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            rec.lock().unwrap().push((
                uri.path().to_owned(),
                ct,
                String::from_utf8_lossy(&body).into_owned(),
            ));
            status
        }
    };
    let app = Router::new()
        .route("/session", post(handler.clone()))
        .route("/api/session", post(handler));
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        pki.cert_pem.clone().into_bytes(),
        pki.key_pem.clone().into_bytes(),
    )
    .await
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(listener, tls)
        .unwrap()
        .handle(handle.clone());
    tokio::spawn(server.serve(app.into_make_service()));
    (addr, received, handle)
}

fn ca_file(pki: &Pki) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &pki.ca_pem).unwrap();
    f
}

#[tokio::test]
async fn poster_verifies_certificate_and_hostname() {
    let good = pki(&["localhost"]);
    let (addr, received, handle) = https_server(&good, StatusCode::CREATED).await;
    let ca = ca_file(&good);
    let options = || ExporterOptions {
        ca_file: Some(ca.path()),
        attestation: attestation(),
        ..Default::default()
    };
    let url = format!("https://localhost:{}", addr.port());

    // Trusted CA, right host name: delivered, body as built.
    let cas = Exporter::new(SessionExport::SconeCas, &url, options()).unwrap();
    let p = plan(TeeFramework::Scone);
    cas.deliver(&session_id(), &p).await.unwrap();
    {
        let got = received.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "/session");
        assert_eq!(got[0].1, "application/x-yaml");
        assert_eq!(
            got[0].2,
            cas_session_yaml(&session_id(), &p, &attestation())
        );
    }
    let sps = Exporter::new(SessionExport::GramineSps, &url, options()).unwrap();
    sps.deliver(&session_id(), &plan(TeeFramework::Gramine))
        .await
        .unwrap();
    assert_eq!(received.lock().unwrap()[1].0, "/api/session");

    // The host name is checked: 127.0.0.1 is not in the certificate.
    let by_ip = Exporter::new(
        SessionExport::SconeCas,
        &format!("https://127.0.0.1:{}", addr.port()),
        options(),
    )
    .unwrap();
    let err = by_ip.deliver(&session_id(), &p).await.unwrap_err();
    assert!(err.contains("failed"), "{err}");
    // The certificate is checked: without the CA the server is not trusted.
    let untrusted =
        Exporter::new(SessionExport::SconeCas, &url, ExporterOptions::default()).unwrap();
    assert!(untrusted.deliver(&session_id(), &p).await.is_err());
    assert_eq!(received.lock().unwrap().len(), 2);
    // Plain HTTP is refused at configuration time.
    assert!(
        Exporter::new(
            SessionExport::SconeCas,
            &format!("http://localhost:{}", addr.port()),
            options()
        )
        .is_err()
    );
    handle.shutdown();

    // A certificate for another name fails even with the right CA.
    let other = pki(&["other.example"]);
    let (addr, received, handle) = https_server(&other, StatusCode::CREATED).await;
    let ca = ca_file(&other);
    let wrong = Exporter::new(
        SessionExport::TdxStorage,
        &format!("https://localhost:{}", addr.port()),
        ExporterOptions {
            ca_file: Some(ca.path()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        wrong
            .deliver(&session_id(), &plan(TeeFramework::Tdx))
            .await
            .is_err()
    );
    assert!(received.lock().unwrap().is_empty());
    handle.shutdown();
}

#[tokio::test]
async fn cas_requires_201() {
    let good = pki(&["localhost"]);
    let (addr, _received, handle) = https_server(&good, StatusCode::OK).await;
    let ca = ca_file(&good);
    let url = format!("https://localhost:{}", addr.port());
    let options = || ExporterOptions {
        ca_file: Some(ca.path()),
        ..Default::default()
    };
    let cas = Exporter::new(SessionExport::SconeCas, &url, options()).unwrap();
    let err = cas
        .deliver(&session_id(), &plan(TeeFramework::Scone))
        .await
        .unwrap_err();
    assert!(err.contains("200"), "{err}");
    let tdx = Exporter::new(SessionExport::TdxStorage, &url, options()).unwrap();
    tdx.deliver(&session_id(), &plan(TeeFramework::Tdx))
        .await
        .unwrap();
    handle.shutdown();
}

//! The iExec secret API over HTTP against an in-process `--dev` server: every route, every
//! status, the check order, persistence and encryption at rest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy_signer_local::PrivateKeySigner;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sms_core::challenge;
use sms_core::signature::sign_eip191;
use sms_core::{Address, B256};
use sms_testkit::server::{TestServer, files_under};

struct Api {
    server: TestServer,
    http: reqwest::Client,
}

impl Api {
    async fn new() -> Self {
        Self {
            server: TestServer::dev().await,
            http: reqwest::Client::new(),
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

    async fn status(
        &self,
        method: Method,
        path: &str,
        auth: Option<String>,
        body: Option<&[u8]>,
    ) -> StatusCode {
        self.call(method, path, auth, body).await.0
    }

    async fn deploy(&self, kind: &str, owner: Address) -> Address {
        let body = json!({ "owner": owner }).to_string();
        let (status, answer) = self
            .call(
                Method::POST,
                &format!("/dev/{kind}"),
                None,
                Some(body.as_bytes()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["address"].as_str().unwrap().parse().unwrap()
    }
}

fn sign(signer: &PrivateKeySigner, digest: B256) -> Option<String> {
    Some(sign_eip191(signer, &digest).to_hex())
}

fn requester_path(owner: Address, name: &str) -> String {
    format!("/requesters/{owner}/secrets/{name}")
}

fn requester_sig(signer: &PrivateKeySigner, name: &str, value: &[u8]) -> Option<String> {
    sign(
        signer,
        challenge::named_secret(signer.address().as_slice(), name, value),
    )
}

#[tokio::test]
async fn requester_secret_life_cycle() {
    let api = Api::new().await;
    let alice = PrivateKeySigner::random();
    let path = requester_path(alice.address(), "x1");
    assert_eq!(
        api.status(Method::HEAD, &path, None, None).await,
        StatusCode::NOT_FOUND
    );
    let sig = requester_sig(&alice, "x1", b"2");
    assert_eq!(
        api.status(Method::POST, &path, sig.clone(), Some(b"2"))
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.status(Method::HEAD, &path, None, None).await,
        StatusCode::NO_CONTENT
    );
    let (status, body) = api.call(Method::POST, &path, sig, Some(b"2")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], json!(["Secret already exists"]));
    // Names are case-sensitive; addresses are not.
    assert_eq!(
        api.status(
            Method::HEAD,
            &requester_path(alice.address(), "X1"),
            None,
            None
        )
        .await,
        StatusCode::NOT_FOUND
    );
    let lower = format!(
        "/requesters/{}/secrets/x1",
        format!("{:#x}", alice.address()).to_lowercase()
    );
    assert_eq!(
        api.status(Method::HEAD, &lower, None, None).await,
        StatusCode::NO_CONTENT
    );
}

/// A secret write and its audit entry commit together: while the log refuses entries (an
/// operator hiding what follows), a push answers 503 `AUDIT_LOG_UNAVAILABLE` and stores
/// nothing; once the log accepts entries again the same push is stored and logged.
#[tokio::test]
async fn secret_writes_are_not_done_without_their_audit_entry() {
    let api = Api::new().await;
    let alice = PrivateKeySigner::random();
    let path = requester_path(alice.address(), "hidden");
    let value = b"value-while-unlogged";
    api.server.audit_log_read_only(true).await;
    let (status, body) = api
        .call(
            Method::POST,
            &path,
            requester_sig(&alice, "hidden", value),
            Some(value),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "AUDIT_LOG_UNAVAILABLE", "{body}");
    assert!(!body.to_string().contains("value-while-unlogged"));
    assert_eq!(
        api.status(Method::HEAD, &path, None, None).await,
        StatusCode::NOT_FOUND
    );

    api.server.audit_log_read_only(false).await;
    let status = api
        .status(
            Method::POST,
            &path,
            requester_sig(&alice, "hidden", value),
            Some(value),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.status(Method::HEAD, &path, None, None).await,
        StatusCode::NO_CONTENT
    );
    let store = api.server.server().store.clone();
    let entries = store.audit_entries(0, 100).await.unwrap();
    let writes: Vec<_> = entries
        .iter()
        .filter(|e| e.entry.body.contains("secret-written"))
        .collect();
    assert_eq!(writes.len(), 1, "one write done, one entry");
}

#[tokio::test]
async fn wrong_signer_and_malformed_signatures_are_401() {
    let api = Api::new().await;
    let alice = PrivateKeySigner::random();
    let mallory = PrivateKeySigner::random();
    let path = requester_path(alice.address(), "k");
    let (status, body) = api
        .call(
            Method::POST,
            &path,
            requester_sig(&mallory, "k", b"v"),
            Some(b"v"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], json!(["Invalid authorization"]));
    // Signed by alice but over another value.
    assert_eq!(
        api.status(
            Method::POST,
            &path,
            requester_sig(&alice, "k", b"w"),
            Some(b"v")
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let good = requester_sig(&alice, "k", b"v").unwrap();
    let with_v = |v: &str| format!("{}{v}", &good[..good.len() - 2]);
    for header in [
        "0x1234".to_owned(),
        format!("0x{}", "zz".repeat(65)),
        with_v("00"),
        with_v("01"),
        String::new(),
        "Bearer token".to_owned(),
    ] {
        let status = api
            .status(Method::POST, &path, Some(header.clone()), Some(b"v"))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "header {header:?}");
    }
    assert_eq!(
        api.status(Method::POST, &path, None, Some(b"v")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.status(Method::HEAD, &path, None, None).await,
        StatusCode::NOT_FOUND,
        "nothing stored"
    );
}

#[tokio::test]
async fn size_limit_is_4096_bytes_checked_after_authorization() {
    let api = Api::new().await;
    let alice = PrivateKeySigner::random();
    let exact = "é".repeat(2048); // 4096 bytes of UTF-8
    let over = format!("{exact}x");
    let ok = requester_path(alice.address(), "exact");
    assert_eq!(
        api.status(
            Method::POST,
            &ok,
            requester_sig(&alice, "exact", exact.as_bytes()),
            Some(exact.as_bytes())
        )
        .await,
        StatusCode::NO_CONTENT
    );
    // Requester secrets: 400 (not 413) like iExec.
    let big = requester_path(alice.address(), "big");
    let (status, body) = api
        .call(
            Method::POST,
            &big,
            requester_sig(&alice, "big", over.as_bytes()),
            Some(over.as_bytes()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], json!(["Secret size should not exceed 4 Kb"]));
    // Authorization first: an oversized value with a bad signature is 401.
    let mallory = PrivateKeySigner::random();
    assert_eq!(
        api.status(
            Method::POST,
            &big,
            requester_sig(&mallory, "big", over.as_bytes()),
            Some(over.as_bytes())
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // Web2: 413.
    let web2 = format!(
        "/secrets/web2?ownerAddress={}&secretName=big",
        alice.address()
    );
    let sig = sign(
        &alice,
        challenge::named_secret(alice.address().as_slice(), "big", over.as_bytes()),
    );
    assert_eq!(
        api.status(Method::POST, &web2, sig, Some(over.as_bytes()))
            .await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Far beyond the limit: refused before reading it whole.
    let huge = vec![b'a'; 1 << 20];
    assert_eq!(
        api.status(
            Method::POST,
            &big,
            requester_sig(&alice, "big", &huge),
            Some(&huge)
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn requester_name_format_is_400_after_authorization() {
    let api = Api::new().await;
    let alice = PrivateKeySigner::random();
    for name in [
        "a".repeat(65),
        "bad:name".to_owned(),
        "bad!".to_owned(),
        "bad*".to_owned(),
        "bad~".to_owned(),
    ] {
        let path = requester_path(alice.address(), &name);
        let (status, body) = api
            .call(
                Method::POST,
                &path,
                requester_sig(&alice, &name, b"v"),
                Some(b"v"),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(
            body["error"],
            json!(["Secret key should contain at most 64 characters from [0-9A-Za-z-_]"])
        );
        assert_eq!(
            api.status(Method::HEAD, &path, None, None).await,
            StatusCode::BAD_REQUEST
        );
        let mallory = PrivateKeySigner::random();
        assert_eq!(
            api.status(
                Method::POST,
                &path,
                requester_sig(&mallory, &name, b"v"),
                Some(b"v")
            )
            .await,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn bad_addresses_empty_bodies_and_missing_params_are_400() {
    let api = Api::new().await;
    let alice = PrivateKeySigner::random();
    assert_eq!(
        api.status(Method::HEAD, "/requesters/0x123/secrets/x", None, None)
            .await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.status(Method::HEAD, "/apps/not-an-address/secrets", None, None)
            .await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.status(Method::HEAD, "/secrets/web3", None, None).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.status(Method::HEAD, "/secrets/web2?ownerAddress=0x1", None, None)
            .await,
        StatusCode::BAD_REQUEST
    );
    let path = requester_path(alice.address(), "empty");
    assert_eq!(
        api.status(
            Method::POST,
            &path,
            requester_sig(&alice, "empty", b""),
            Some(b"")
        )
        .await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn web2_insert_update_and_same_value() {
    let api = Api::new().await;
    let owner = PrivateKeySigner::random();
    let path = |name: &str| {
        format!(
            "/secrets/web2?ownerAddress={}&secretName={name}",
            owner.address()
        )
    };
    let sig = |name: &str, v: &[u8]| {
        sign(
            &owner,
            challenge::named_secret(owner.address().as_slice(), name, v),
        )
    };
    assert_eq!(
        api.status(Method::HEAD, &path("Token"), None, None).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.status(
            Method::PUT,
            &path("Token"),
            sig("Token", b"v1"),
            Some(b"v1")
        )
        .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.status(
            Method::POST,
            &path("Token"),
            sig("Token", b"v1"),
            Some(b"v1")
        )
        .await,
        StatusCode::NO_CONTENT
    );
    // Web2 names are case-insensitive.
    assert_eq!(
        api.status(Method::HEAD, &path("token"), None, None).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.status(
            Method::POST,
            &path("TOKEN"),
            sig("TOKEN", b"v1"),
            Some(b"v1")
        )
        .await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        api.status(
            Method::PUT,
            &path("token"),
            sig("token", b"v2"),
            Some(b"v2")
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.status(
            Method::PUT,
            &path("token"),
            sig("token", b"v2"),
            Some(b"v2")
        )
        .await,
        StatusCode::NO_CONTENT,
        "same value"
    );
    let other = PrivateKeySigner::random();
    let forged = sign(
        &other,
        challenge::named_secret(owner.address().as_slice(), "token", b"v3"),
    );
    assert_eq!(
        api.status(Method::PUT, &path("token"), forged, Some(b"v3"))
            .await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn app_secret_follows_ownership_transfers() {
    let api = Api::new().await;
    let (alice, bob) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let app = api.deploy("apps", alice.address()).await;
    let app2 = api.deploy("apps", alice.address()).await;
    let path = |a: Address| format!("/apps/{a}/secrets");
    let sig = |s: &PrivateKeySigner, a: Address, v: &[u8]| {
        sign(s, challenge::app_developer_secret(&a, v))
    };
    assert_eq!(
        api.status(Method::HEAD, &path(app), None, None).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.status(Method::POST, &path(app), sig(&bob, app, b"s"), Some(b"s"))
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.status(Method::POST, &path(app), sig(&alice, app, b"s"), Some(b"s"))
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.status(Method::HEAD, &path(app), None, None).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.status(Method::POST, &path(app), sig(&alice, app, b"s"), Some(b"s"))
            .await,
        StatusCode::CONFLICT
    );
    // Transfer app2 to bob: bob may push, alice may not.
    let transfer = json!({ "entry": app2, "to": bob.address() }).to_string();
    assert_eq!(
        api.status(
            Method::POST,
            "/dev/transfer",
            None,
            Some(transfer.as_bytes())
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        api.status(
            Method::POST,
            &path(app2),
            sig(&alice, app2, b"s"),
            Some(b"s")
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.status(Method::POST, &path(app2), sig(&bob, app2, b"s"), Some(b"s"))
            .await,
        StatusCode::NO_CONTENT
    );
    // An address that is no app.
    let nobody = Address::repeat_byte(0x42);
    let (status, body) = api
        .call(
            Method::POST,
            &path(nobody),
            sig(&alice, nobody, b"s"),
            Some(b"s"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["reason"].as_str().unwrap().contains("not a app"),
        "{body}"
    );
}

#[tokio::test]
async fn dataset_key_needs_the_dataset_owner() {
    let api = Api::new().await;
    let (owner, other) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let dataset = api.deploy("datasets", owner.address()).await;
    let path = format!("/secrets/web3?secretAddress={dataset}");
    let key = b"ubA6H9emVPJT91/flYAmnKHC0phSV3cfuqsLxQfgow0=";
    let sig = |s: &PrivateKeySigner| sign(s, challenge::web3_secret(dataset.as_slice(), key));
    assert_eq!(
        api.status(Method::POST, &path, sig(&other), Some(key))
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.status(Method::POST, &path, sig(&owner), Some(key))
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.status(Method::HEAD, &path, None, None).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.status(Method::POST, &path, sig(&owner), Some(key))
            .await,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn secrets_survive_restart_and_never_reach_disk_in_clear() {
    let mut api = Api::new().await;
    let alice = PrivateKeySigner::random();
    let marker = "sms-at-rest-marker-3b9f21c7";
    let path = requester_path(alice.address(), "persist");
    assert_eq!(
        api.status(
            Method::POST,
            &path,
            requester_sig(&alice, "persist", marker.as_bytes()),
            Some(marker.as_bytes())
        )
        .await,
        StatusCode::NO_CONTENT
    );
    api.server.restart().await;
    assert_eq!(
        api.status(Method::HEAD, &path, None, None).await,
        StatusCode::NO_CONTENT
    );
    for file in files_under(&api.server.data_dir()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{} holds the value",
            file.display()
        );
    }
}

#[tokio::test]
async fn operational_endpoints() {
    let api = Api::new().await;
    let alice = PrivateKeySigner::random();
    let path = requester_path(alice.address(), "m");
    api.status(
        Method::POST,
        &path,
        requester_sig(&alice, "m", b"metric-value"),
        Some(b"metric-value"),
    )
    .await;
    let version: serde_json::Value = api
        .http
        .get(format!("{}/version", api.server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        version,
        serde_json::json!({ "version": env!("CARGO_PKG_VERSION"), "simulatedTee": true })
    );
    // The plain-text form of iExec's SMS, for a client that asks for text first.
    let plain = api
        .http
        .get(format!("{}/version", api.server.url()))
        .header("Accept", "text/plain, application/json, */*")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(plain, env!("CARGO_PKG_VERSION"));
    let (status, health) = api.call(Method::GET, "/health", None, None).await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("UP"))
    );
    let resp = api
        .http
        .get(format!("{}/metrics", api.server.url()))
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let metrics = resp.text().await.unwrap();
    assert!(metrics.contains("sms_http_requests_total{method=\"POST\",route=\"/requesters/{requester}/secrets/{name}\",status=\"204\"}"), "{metrics}");
    assert!(metrics.contains("sms_http_request_duration_seconds_bucket"));
    assert!(metrics.contains("sms_secrets_stored{kind=\"requester\"}"));
    assert!(!metrics.contains("metric-value"));
}

#[tokio::test]
async fn dev_api_validates_its_input() {
    let api = Api::new().await;
    let (status, body) = api
        .call(
            Method::POST,
            "/dev/apps",
            None,
            Some(br#"{"owner":"0x12"}"#),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("owner")
            || body["error"].as_str().unwrap().contains("invalid"),
        "{body}"
    );
    let (status, _) = api
        .call(
            Method::POST,
            "/dev/apps",
            None,
            Some(br#"{"owner":"0x0000000000000000000000000000000000000001","oops":1}"#),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api.call(Method::POST, "/dev/transfer", None, Some(br#"{"entry":"0x0000000000000000000000000000000000000001","to":"0x0000000000000000000000000000000000000002"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn production_mode_refuses_plain_http_off_loopback_and_has_no_dev_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sms_server::ServerConfig::dev_in(dir.path().to_path_buf());
    config.dev = false;
    config.listen = "0.0.0.0:0".parse().unwrap();
    let err = sms_server::Server::start(config.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--insecure-http"), "{err}");
    config.listen = "127.0.0.1:0".parse().unwrap();
    let err = sms_server::Server::start(config)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no ledger"), "{err}");
}

#[tokio::test]
async fn https_with_a_ca_the_client_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let mut config = sms_server::ServerConfig::dev_in(dir.path().join("data"));
    config.tls_cert = Some(cert_path.clone());
    config.tls_key = Some(key_path);
    let server = TestServer::with_config(config, None).await;
    let url = server.url();
    assert!(url.starts_with("https://"));
    let trusted = sms_client::SmsClient::new(
        &url,
        &sms_client::ClientOptions {
            ca_cert: Some(cert_path),
            timeout: None,
        },
    )
    .unwrap();
    assert_eq!(trusted.version().await.unwrap(), env!("CARGO_PKG_VERSION"));
    let untrusted = sms_client::SmsClient::new(&url, &Default::default()).unwrap();
    assert!(
        untrusted.version().await.is_err(),
        "an unknown certificate must be refused"
    );
}

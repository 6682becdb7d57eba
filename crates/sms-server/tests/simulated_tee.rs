//! Simulated TEE evidence is loud, on an in-process server: a `--dev` server (which accepts it)
//! says so in `/version`, `/metrics` and the `X-Sms-Simulated-Tee` header of every `/tee/*`
//! answer; `--dev --dangerous-allow-simulated-tee=false` says nothing and refuses it; the removed
//! switch stops the start. (`sms server` next to a chain: crates/sms/tests/simulated_tee.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use sms_server::{Server, ServerConfig, StartupError};
use sms_testkit::server::TestServer;

const HEADER: &str = "x-sms-simulated-tee";

async fn server(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
    configure(&mut config);
    TestServer::with_config(config, Some(dir)).await
}

/// The header of each answer, by route.
async fn headers(server: &TestServer) -> Vec<(&'static str, Option<String>)> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for (method, path) in [
        (reqwest::Method::GET, "/tee/framework"),
        (reqwest::Method::GET, "/tee/properties/scone/v5"),
        (reqwest::Method::POST, "/tee/challenges/0x01"),
        (reqwest::Method::POST, "/tee/sessions"),
        (reqwest::Method::POST, "/tee/provisioning/none/app/nonce"),
        (reqwest::Method::POST, "/tee/provisioning/none/app/release"),
        (reqwest::Method::GET, "/tee/unknown"),
        (reqwest::Method::GET, "/version"),
        (reqwest::Method::GET, "/health"),
        (reqwest::Method::GET, "/metrics"),
    ] {
        let response = http
            .request(method, format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        let value = response
            .headers()
            .get(HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        out.push((path, value));
    }
    out
}

async fn gauge(server: &TestServer) -> String {
    let text = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        text.matches("# TYPE sms_simulated_tee_enabled gauge")
            .count(),
        1,
        "{text}"
    );
    text.lines()
        .find(|l| l.starts_with("sms_simulated_tee_enabled "))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_dev_server_marks_every_tee_answer() {
    let s = server(|_| {}).await;
    let (status, version) = s.call(reqwest::Method::GET, "/version", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(version["simulatedTee"], true);
    assert_eq!(gauge(&s).await, "sms_simulated_tee_enabled 1");
    for (path, value) in headers(&s).await {
        let expected = path.starts_with("/tee/").then(|| "true".to_owned());
        assert_eq!(value, expected, "{path}");
    }
}

#[tokio::test]
async fn a_dev_server_refusing_simulated_evidence_says_nothing() {
    let s = server(|c| c.attest.dangerous_allow_simulated_tee = Some(false)).await;
    let (_, version) = s.call(reqwest::Method::GET, "/version", None, None).await;
    assert_eq!(version["simulatedTee"], false);
    assert_eq!(gauge(&s).await, "sms_simulated_tee_enabled 0");
    for (path, value) in headers(&s).await {
        assert_eq!(value, None, "{path}");
    }
}

#[tokio::test]
async fn the_removed_switch_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().join("sms"));
    config.attest.removed_allow_simulated_tee = Some("true".into());
    match Server::start(config).await {
        Err(StartupError::Config(message)) => {
            assert!(
                message.contains("--dangerous-allow-simulated-tee"),
                "{message}"
            );
        }
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("started with --allow-simulated-tee"),
    }
    assert!(
        !dir.path().join("sms").exists(),
        "refused before creating anything"
    );
}

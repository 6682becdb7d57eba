//! Bounded everything: metric label sets, `/health` without a store call per request, NUL
//! bytes refused (4xx) on PostgreSQL too (docs/limits.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::Method;
use sms_server::ServerConfig;
use sms_testkit::proxy::{Fault, FaultProxy};
use sms_testkit::server::TestServer;

async fn metrics_text(server: &TestServer) -> String {
    reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn series(text: &str, name: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .count()
}

#[tokio::test]
async fn unknown_methods_and_paths_fold_into_other() {
    let server = TestServer::dev().await;
    let http = reqwest::Client::new();
    // Warm the label sets of the requests the loop makes.
    for method in ["BREW", "PROPFIND"] {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        http.request(m, format!("{}/nope", server.url()))
            .send()
            .await
            .unwrap();
    }
    let before = metrics_text(&server).await;
    for i in 0..300 {
        let method = Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
        let path = format!("/random/{i}/{}", "a".repeat(i % 50));
        let response = http
            .request(method, format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
        let response = http
            .get(format!("{}/unmatched-{i}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }
    let after = metrics_text(&server).await;
    for name in [
        "sms_http_requests_total",
        "sms_http_request_duration_seconds_count",
    ] {
        let (b, a) = (series(&before, name), series(&after, name));
        println!("{name}: {b} series before, {a} after 600 odd requests");
        assert!(a <= b + 4, "{name}: {b} series before, {a} after");
    }
    assert!(
        after.contains(r#"method="other""#),
        "unusual methods are labelled other"
    );
    assert!(
        after.contains(r#"route="other""#),
        "unmatched paths are labelled other"
    );
    assert!(
        !after.contains("X299"),
        "a client's method never becomes a label"
    );
}

async fn postgres_server_behind(proxy: &FaultProxy, url: &str) -> TestServer {
    let proxied = url.replace(
        &url.split('@')
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned(),
        &proxy.addr().to_string(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
    config.database_url = Some(proxied);
    config.database_timeout_ms = 500;
    TestServer::with_config(config, Some(dir)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_from_kept_state_not_a_store_call_per_request() {
    let url = sms_testkit::postgres::fresh_database_url().await;
    let upstream: std::net::SocketAddr = url
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let server = postgres_server_behind(&proxy, &url).await;
    let http = reqwest::Client::new();
    let health = |http: reqwest::Client, url: String| async move {
        let started = Instant::now();
        let response = http.get(format!("{url}/health")).send().await.unwrap();
        (response.status().as_u16(), started.elapsed())
    };
    assert_eq!(health(http.clone(), server.url()).await.0, 200);

    // The database stops answering. Every /health call still answers at once (it reads the
    // kept state; a store call per request would wait for the 500 ms store timeout).
    proxy.set(Fault::Blackhole);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut down_after = None;
    while started.elapsed() < Duration::from_secs(5) {
        let (status, took) = health(http.clone(), server.url()).await;
        slowest = slowest.max(took);
        if status == 503 && down_after.is_none() {
            down_after = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("slowest /health during the outage: {slowest:?}; DOWN after {down_after:?}");
    assert!(slowest < Duration::from_millis(300), "{slowest:?}");
    let down_after = down_after.expect("DOWN during the outage");
    assert!(down_after < Duration::from_secs(3), "{down_after:?}");
    let body: serde_json::Value = http
        .get(format!("{}/health", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["code"], "STORE_UNAVAILABLE");
    assert!(
        body["reason"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );

    proxy.set(Fault::None);
    let healed = Instant::now();
    loop {
        if health(http.clone(), server.url()).await.0 == 200 {
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(10),
            "UP again after the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn nul_bytes_are_refused_with_400_on_postgres() {
    let url = sms_testkit::postgres::fresh_database_url().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
    config.database_url = Some(url);
    let server = TestServer::with_config(config, Some(dir)).await;
    let owner = "0x1111111111111111111111111111111111111111";
    let http = reqwest::Client::new();
    let cases: &[(Method, String)] = &[
        (
            Method::HEAD,
            format!("/secrets/web2?ownerAddress={owner}&secretName=a%00b"),
        ),
        (
            Method::POST,
            format!("/secrets/web2?ownerAddress={owner}&secretName=%00"),
        ),
        (
            Method::PUT,
            format!("/secrets/web2?ownerAddress={owner}&secretName=x%00"),
        ),
        (Method::HEAD, format!("/requesters/{owner}/secrets/a%00b")),
        (Method::POST, format!("/requesters/{owner}/secrets/a%00b")),
        (
            Method::HEAD,
            format!("/secrets/web3?secretAddress={owner}%00"),
        ),
        (Method::HEAD, format!("/apps/{owner}%00/secrets")),
        (
            Method::POST,
            "/tee/provisioning/s%00/pre-compute/nonce".to_owned(),
        ),
        (
            Method::POST,
            "/tee/provisioning/s/pre%00/release".to_owned(),
        ),
        (Method::POST, "/tee/challenges/0x%00".to_owned()),
        (Method::GET, "/tee/properties/SCONE%00".to_owned()),
        (Method::GET, "/dev/tasks/0x%00".to_owned()),
    ];
    for (method, path) in cases {
        let response = http
            .request(method.clone(), format!("{}{path}", server.url()))
            .header("Authorization", format!("0x{}", "11".repeat(65)))
            .body("value")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{method} {path}");
        if *method != Method::HEAD {
            let body: serde_json::Value = response.json().await.unwrap();
            assert!(
                body.to_string().contains("NUL_IN_REQUEST"),
                "{method} {path}: {body}"
            );
        }
    }
}

/// Every answer carries an `x-request-id`: the client's own when it sent one, else a fresh one
/// per request (the request path's layers wrap the router once, `edge.rs`; refusals and the
/// no-such-route answer included).
#[tokio::test]
async fn every_answer_echoes_a_request_id() {
    let server = TestServer::dev().await;
    let http = reqwest::Client::new();
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let mut seen = std::collections::HashSet::new();
    for path in [
        "/health",
        "/nope",
        "/secrets/web3?secretAddress=x%00",
        "/version",
    ] {
        let r = http
            .get(format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        let id = id_of(&r).unwrap_or_else(|| panic!("{path}: no x-request-id"));
        assert!(seen.insert(id), "{path}: a request id was reused");
    }
    let r = http
        .get(format!("{}/health", server.url()))
        .header("x-request-id", "client-chosen-7")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r).as_deref(), Some("client-chosen-7"));
}

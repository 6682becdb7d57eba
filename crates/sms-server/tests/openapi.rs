//! The OpenAPI document (`GET /openapi.json`, committed as `docs/openapi.json`) against the
//! routes the server really serves. Regenerate the committed file with
//! `UPDATE_OPENAPI=1 scripts/test.sh -p sms-server --test openapi`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sms_testkit::server::TestServer;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"];

/// A `--dev` server serves every feature (dev ledger, TEE with the default framework).
async fn served() -> (TestServer, Value) {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "x".repeat(40)).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&token).unwrap().permissions(),
        0o600,
    );
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut config = sms_server::ServerConfig::dev_in(dir.path().join("data"));
    config.keys.admin_token_file = Some(token);
    let server = TestServer::with_config(config, Some(dir)).await;
    let (status, doc) = server.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    (server, doc)
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// A concrete path for a templated one (any value reaches the handler, which may refuse it).
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "1" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Did the request reach a handler of the table? (Not axum's 405, not the table's fallback.)
async fn reaches_handler(http: &reqwest::Client, base: &str, method: &str, path: &str) -> bool {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let response = http
        .request(method, format!("{base}{}", concrete(path)))
        .send()
        .await
        .expect("the server answers");
    let status = response.status();
    let body = response.text().await.unwrap();
    !(status == StatusCode::METHOD_NOT_ALLOWED
        || (status == StatusCode::NOT_FOUND && body.contains("No such route")))
}

#[tokio::test]
async fn document_is_openapi_3_1_with_answers_for_every_operation() {
    let (_server, doc) = served().await;
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            assert!(
                op["operationId"].is_string(),
                "{method} {path}: no operationId"
            );
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let (server, doc) = served().await;
    let http = reqwest::Client::new();
    for (method, path) in operations(&doc) {
        assert!(
            reaches_handler(&http, &server.url(), &method, &path).await,
            "documented but not served: {method} {path}"
        );
    }
}

#[tokio::test]
async fn no_route_is_served_that_the_document_lacks() {
    let (server, doc) = served().await;
    let documented = operations(&doc);
    let http = reqwest::Client::new();
    // Every other method on a documented path is refused (HEAD is implied by GET, as in HTTP).
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in METHODS {
            let implied = method == "HEAD" && documented.contains(&("GET".into(), path.clone()));
            if documented.contains(&(method.into(), path.clone())) || implied {
                continue;
            }
            assert!(
                !reaches_handler(&http, &server.url(), method, path).await,
                "served but not documented: {method} {path}"
            );
        }
    }
    // The fallback is what the probe above relies on.
    assert!(!reaches_handler(&http, &server.url(), "GET", "/no/such/route").await);
    // And no route is mounted outside the table: a handler becomes a route only in
    // `routes/mod.rs` (`axum::routing::on`, once), and no axum `Router` mounts routes of its own
    // (`crate::edge` dispatches to the table's routes).
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    for file in sms_testkit::server::files_under(std::path::Path::new(src)) {
        let text = std::fs::read_to_string(&file).unwrap();
        let count = text.matches(".route(").count() + text.matches("routing::on(").count();
        let expected = if file.ends_with("routes/mod.rs") {
            1
        } else {
            0
        };
        assert_eq!(
            count,
            expected,
            "{}: routes outside the table",
            file.display()
        );
    }
}

#[tokio::test]
async fn the_iexec_routes_are_documented() {
    let (_server, doc) = served().await;
    let documented = operations(&doc);
    for (method, path) in [
        ("HEAD", "/secrets/web3"),
        ("POST", "/secrets/web3"),
        ("HEAD", "/secrets/web2"),
        ("POST", "/secrets/web2"),
        ("PUT", "/secrets/web2"),
        ("HEAD", "/apps/{app}/secrets"),
        ("POST", "/apps/{app}/secrets"),
        ("HEAD", "/requesters/{requester}/secrets/{name}"),
        ("POST", "/requesters/{requester}/secrets/{name}"),
        ("GET", "/version"),
        ("GET", "/actuator/health"),
        ("GET", "/tee/framework"),
        ("GET", "/tee/properties/{framework}/{version}"),
        ("POST", "/tee/challenges/{task}"),
        ("POST", "/tee/sessions"),
    ] {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "{method} {path} missing"
        );
    }
}

#[tokio::test]
async fn committed_document_equals_the_served_one() {
    let (_server, doc) = served().await;
    let pretty = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, &pretty).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == pretty,
        "docs/openapi.json differs from GET /openapi.json; regenerate with \
         UPDATE_OPENAPI=1 scripts/test.sh -p sms-server --test openapi"
    );
}

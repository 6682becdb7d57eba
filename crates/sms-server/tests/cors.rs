//! CORS on the secret routes only (like iExec's SMS), at the header level and in a real
//! browser: headless Chromium loads a page from another loopback origin whose `fetch()` calls
//! use the SDK's headers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy_signer_local::PrivateKeySigner;
use reqwest::{Method, StatusCode};
use sms_core::challenge;
use sms_core::signature::sign_eip191;
use sms_server::{CorsOrigins, ServerConfig};
use sms_testkit::server::TestServer;

const SECRET_PATHS: [&str; 4] = [
    "/secrets/web2?ownerAddress=0x0000000000000000000000000000000000000001&secretName=a",
    "/secrets/web3?secretAddress=0x0000000000000000000000000000000000000001",
    "/apps/0x0000000000000000000000000000000000000001/secrets",
    "/requesters/0x0000000000000000000000000000000000000001/secrets/a",
];
const OTHER_PATHS: [&str; 6] = [
    "/tee/framework",
    "/tee/sessions",
    "/dev/apps",
    "/dev/info",
    "/admin/anything",
    "/version",
];

async fn preflight(base: &str, path: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(Method::OPTIONS, format!("{base}{path}"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
}

#[tokio::test]
async fn secret_routes_answer_preflight_for_any_origin_by_default() {
    let server = TestServer::dev().await;
    for path in SECRET_PATHS {
        let r = preflight(&server.url(), path, "http://page.example:8080").await;
        assert!(r.status().is_success(), "{path}: {}", r.status());
        assert_eq!(
            header(&r, "access-control-allow-origin").as_deref(),
            Some("*")
        );
        let headers = header(&r, "access-control-allow-headers").unwrap();
        assert!(
            headers.contains("authorization") && headers.contains("content-type"),
            "{headers}"
        );
        let methods = header(&r, "access-control-allow-methods").unwrap();
        for m in ["head", "post", "put"] {
            assert!(methods.contains(m), "{path}: {methods}");
        }
        // The actual answer carries the origin header too.
        let head = reqwest::Client::new()
            .head(format!("{}{path}", server.url()))
            .header("Origin", "http://page.example:8080")
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            header(&head, "access-control-allow-origin").as_deref(),
            Some("*")
        );
    }
}

#[tokio::test]
async fn no_cors_outside_the_secret_routes() {
    let server = TestServer::dev().await;
    for path in OTHER_PATHS {
        let r = preflight(&server.url(), path, "http://page.example").await;
        assert!(!r.status().is_success(), "{path}: preflight answered");
        assert_eq!(header(&r, "access-control-allow-origin"), None, "{path}");
        let get = reqwest::Client::new()
            .get(format!("{}{path}", server.url()))
            .header("Origin", "http://page.example")
            .send()
            .await
            .unwrap();
        assert_eq!(header(&get, "access-control-allow-origin"), None, "{path}");
    }
}

#[tokio::test]
async fn configured_origins_are_the_only_ones_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
    config.cors_allowed_origins = "https://app.example, http://127.0.0.1:3000"
        .parse()
        .unwrap();
    let server = TestServer::with_config(config, Some(dir)).await;
    let path = SECRET_PATHS[0];
    let allowed = preflight(&server.url(), path, "http://127.0.0.1:3000").await;
    assert_eq!(
        header(&allowed, "access-control-allow-origin").as_deref(),
        Some("http://127.0.0.1:3000")
    );
    let other = preflight(&server.url(), path, "https://evil.example").await;
    assert_eq!(header(&other, "access-control-allow-origin"), None);
}

/// An answer carries the CORS headers only for a browser (an `Origin`) that is allowed, with
/// the request id exposed; every answer of a secret route says it varies with the origin.
#[tokio::test]
async fn answers_carry_cors_headers_only_for_allowed_origins() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::dev_in(dir.path().to_path_buf());
    config.cors_allowed_origins = "https://app.example".parse().unwrap();
    let server = TestServer::with_config(config, Some(dir)).await;
    let any = TestServer::dev().await;
    let head = |base: String, origin: Option<&'static str>| async move {
        let mut request = reqwest::Client::new().head(format!("{base}{}", SECRET_PATHS[0]));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send().await.unwrap()
    };
    let allowed = head(server.url(), Some("https://app.example")).await;
    assert_eq!(
        header(&allowed, "access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );
    assert_eq!(
        header(&allowed, "access-control-expose-headers").as_deref(),
        Some("x-request-id")
    );
    for (r, what) in [
        (
            head(server.url(), Some("https://evil.example")).await,
            "other origin",
        ),
        (head(server.url(), None).await, "no origin"),
        (head(any.url(), None).await, "no origin, any allowed"),
    ] {
        assert_eq!(header(&r, "access-control-allow-origin"), None, "{what}");
        assert_eq!(header(&r, "access-control-expose-headers"), None, "{what}");
        assert!(
            header(&r, "vary").is_some_and(|v| v.contains("origin")),
            "{what}"
        );
    }
    let from_page = head(any.url(), Some("http://page.example")).await;
    assert_eq!(
        header(&from_page, "access-control-allow-origin").as_deref(),
        Some("*")
    );
}

#[test]
fn origin_list_parsing() {
    assert_eq!("*".parse::<CorsOrigins>(), Ok(CorsOrigins::Any));
    assert!(matches!(
        "https://a.example,http://b.example:81".parse::<CorsOrigins>(),
        Ok(CorsOrigins::List(l)) if l.len() == 2
    ));
    for bad in [
        "",
        "*,https://a.example",
        "a.example",
        "https://a.example/",
        "https://a/b",
        "ftp://a",
    ] {
        let err = bad.parse::<CorsOrigins>().unwrap_err();
        assert!(err.contains("origin") || err.contains('*'), "{bad}: {err}");
    }
}

/// The page: HEAD and POST with the SDK's headers against the SMS, and a fetch of a TEE route
/// that the browser must block; results are posted back to the page's own server.
fn page(sms: &str, owner: &str, signature: &str) -> String {
    format!(
        r#"<!doctype html><html><body><script>
const sms = "{sms}";
const path = "/secrets/web2?ownerAddress={owner}&secretName=browser";
const headers = {{ "Authorization": "{signature}", "Content-Type": "text/plain" }};
async function attempt(f) {{ try {{ const r = await f(); return String(r.status); }} catch (e) {{ return "blocked"; }} }}
(async () => {{
  const results = {{}};
  results.head_before = await attempt(() => fetch(sms + path, {{ method: "HEAD", headers }}));
  results.post = await attempt(() => fetch(sms + path, {{ method: "POST", headers, body: "value-from-browser" }}));
  results.head_after = await attempt(() => fetch(sms + path, {{ method: "HEAD", headers }}));
  results.tee = await attempt(() => fetch(sms + "/tee/framework", {{ headers }}));
  await fetch("/results", {{ method: "POST", body: JSON.stringify(results) }});
}})();
</script></body></html>"#
    )
}

#[tokio::test]
async fn a_browser_on_another_origin_can_use_the_secret_api() {
    let server = TestServer::dev().await;
    let owner = PrivateKeySigner::random();
    let digest =
        challenge::named_secret(owner.address().as_slice(), "browser", b"value-from-browser");
    let signature = sign_eip191(&owner, &digest).to_hex();
    let html = page(&server.url(), &owner.address().to_string(), &signature);

    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1);
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move || async move { axum::response::Html(html) }),
        )
        .route(
            "/results",
            axum::routing::post(move |body: String| async move {
                let _ = tx.send(body).await;
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page_url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let profile = tempfile::tempdir().unwrap();
    let mut chromium = tokio::process::Command::new("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&page_url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("/usr/bin/chromium is required for this test (apt-get install -y chromium)");
    let results = tokio::time::timeout(Duration::from_secs(90), rx.recv())
        .await
        .expect("the page posted its results within 90 s")
        .expect("results");
    let _ = chromium.kill().await;

    let results: serde_json::Value = serde_json::from_str(&results).unwrap();
    assert_eq!(results["head_before"], "404", "{results}");
    assert_eq!(results["post"], "204", "{results}");
    assert_eq!(results["head_after"], "204", "{results}");
    assert_eq!(results["tee"], "blocked", "{results}");
}

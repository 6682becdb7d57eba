//! [`CountingRpc`]: a loopback JSON-RPC proxy that counts the calls it forwards (a batch counts
//! each of its calls), optionally holding each one for a while, to measure what a server costs
//! its chain node.

// Test support: a failure to set up the fixture is a test failure, so panics are intended.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

struct Counts {
    upstream: String,
    http: reqwest::Client,
    total: AtomicU64,
    by_method: Mutex<BTreeMap<String, u64>>,
    /// Added before each forwarded request is sent on, in milliseconds.
    delay_ms: AtomicU64,
}

/// A proxy on `127.0.0.1:<random port>` in front of `upstream`. Stops on drop.
pub struct CountingRpc {
    addr: SocketAddr,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingRpc {
    pub async fn start(upstream: &str) -> Self {
        let counts = Arc::new(Counts {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            total: AtomicU64::new(0),
            by_method: Mutex::new(BTreeMap::new()),
            delay_ms: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(counts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the counting proxy");
        let addr = listener.local_addr().expect("proxy address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, counts, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// JSON-RPC calls forwarded so far.
    pub fn calls(&self) -> u64 {
        self.counts.total.load(Ordering::SeqCst)
    }

    /// Calls forwarded so far, per method.
    pub fn by_method(&self) -> BTreeMap<String, u64> {
        self.counts
            .by_method
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Holds every later request this long before forwarding it (a slow node).
    pub fn set_delay(&self, delay: Duration) {
        self.counts
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for CountingRpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(counts): State<Arc<Counts>>, body: Bytes) -> Response {
    let methods: Vec<String> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(calls)) => calls.iter().map(method).collect(),
        Ok(call) => vec![method(&call)],
        Err(_) => vec!["<not json>".to_owned()],
    };
    counts
        .total
        .fetch_add(methods.len() as u64, Ordering::SeqCst);
    if let Ok(mut by_method) = counts.by_method.lock() {
        for m in methods {
            *by_method.entry(m).or_default() += 1;
        }
    }
    let delay = counts.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let answer = counts
        .http
        .post(&counts.upstream)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    match answer {
        Ok(resp) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            match resp.bytes().await {
                Ok(bytes) => {
                    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
                }
                Err(_) => StatusCode::BAD_GATEWAY.into_response(),
            }
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

fn method(call: &Value) -> String {
    call["method"].as_str().unwrap_or("<no method>").to_owned()
}

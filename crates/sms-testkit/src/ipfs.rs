//! [`FakeIpfsGateway`]: a loopback IPFS path gateway (`GET /ipfs/{cid}`) serving documents
//! added by the test, which can also misbehave per CID: answer other bytes (tampering), never
//! answer (hang), answer more than any bound (an endless body), or answer an error status.

#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::task::JoinHandle;

/// What the gateway answers for one CID.
#[derive(Clone, Debug)]
pub enum Serve {
    /// These bytes, 200.
    Bytes(Vec<u8>),
    /// Headers never come.
    Hang,
    /// 200 with a body that never ends (1 KiB chunks, no length).
    Endless,
    /// This status, empty body.
    Status(u16),
}

#[derive(Default)]
struct Gateway {
    content: Mutex<HashMap<String, Serve>>,
    requests: AtomicU64,
}

/// A gateway on `127.0.0.1:<random port>`; stops on drop.
pub struct FakeIpfsGateway {
    addr: SocketAddr,
    state: Arc<Gateway>,
    task: JoinHandle<()>,
}

impl FakeIpfsGateway {
    pub async fn start() -> Self {
        let state = Arc::new(Gateway::default());
        let app = Router::new()
            .route("/ipfs/{cid}", get(serve))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake IPFS gateway");
        let addr = listener.local_addr().expect("its address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds `content` under its CIDv0 (as kubo's `add` computes it); returns the CID.
    pub fn add(&self, content: &[u8]) -> String {
        let cid = sms_core::cid::cid_v0(content);
        self.set(&cid, Serve::Bytes(content.to_vec()));
        cid
    }

    /// Serves `answer` for `cid`, whatever its content should be.
    pub fn set(&self, cid: &str, answer: Serve) {
        self.state
            .content
            .lock()
            .expect("gateway map")
            .insert(cid.to_owned(), answer);
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FakeIpfsGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(State(state): State<Arc<Gateway>>, Path(cid): Path<String>) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let answer = state
        .content
        .lock()
        .expect("gateway map")
        .get(&cid)
        .cloned();
    match answer {
        None => StatusCode::NOT_FOUND.into_response(),
        Some(Serve::Bytes(bytes)) => bytes.into_response(),
        Some(Serve::Status(code)) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        Some(Serve::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Some(Serve::Endless) => {
            let chunks = futures_util::stream::repeat_with(|| {
                Ok::<_, std::io::Error>(axum::body::Bytes::from_static(&[b' '; 1024]))
            });
            Body::from_stream(chunks).into_response()
        }
    }
}

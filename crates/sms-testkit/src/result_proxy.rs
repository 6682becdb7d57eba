//! [`FakeResultProxy`]: a loopback stand-in for iExec's result proxy, enough for a
//! `storage init` login: it issues EIP-712 challenges and answers a token to a login whose
//! signature recovers to the address the challenge was issued to. It can also answer a hostile
//! challenge (any JSON) to check that clients refuse to sign it.

#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};
use sms_core::Address;
use sms_core::result_proxy::LoginChallenge;
use sms_core::signature::EthSignature;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Proxy {
    chain_id: u64,
    /// Answered instead of an honest challenge when set.
    hostile: Option<Value>,
    /// Challenge text issued to each address (lowercase hex).
    issued: HashMap<String, String>,
    logins: u32,
}

/// A result proxy on `127.0.0.1:<random port>`; stops on drop.
pub struct FakeResultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<Proxy>>,
    task: JoinHandle<()>,
}

impl FakeResultProxy {
    /// An honest proxy for `chain_id`.
    pub async fn start(chain_id: u64) -> Self {
        Self::serve(Proxy {
            chain_id,
            ..Proxy::default()
        })
        .await
    }

    /// A proxy that answers `challenge` verbatim to `GET /results/challenge`.
    pub async fn hostile(chain_id: u64, challenge: Value) -> Self {
        Self::serve(Proxy {
            chain_id,
            hostile: Some(challenge),
            ..Proxy::default()
        })
        .await
    }

    async fn serve(proxy: Proxy) -> Self {
        let state = Arc::new(Mutex::new(proxy));
        let app = Router::new()
            .route("/results/challenge", get(challenge))
            .route("/results/login", post(login))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake result proxy");
        let addr = listener.local_addr().expect("its address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Login requests received (signed or not).
    pub fn logins(&self) -> u32 {
        self.state.lock().map(|s| s.logins).unwrap_or_default()
    }

    /// The token an honest login of `address` gets.
    pub fn token_for(address: Address) -> String {
        format!("proxy-token-{address:x}")
    }
}

impl Drop for FakeResultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = State<Arc<Mutex<Proxy>>>;

async fn challenge(
    State(state): Shared,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let Ok(mut proxy) = state.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
    };
    if let Some(hostile) = &proxy.hostile {
        return (StatusCode::OK, hostile.to_string());
    }
    let (Some(chain), Some(address)) = (query.get("chainId"), query.get("address")) else {
        return (
            StatusCode::BAD_REQUEST,
            "chainId and address expected".into(),
        );
    };
    if chain.parse::<u64>().ok() != Some(proxy.chain_id) {
        return (StatusCode::BAD_REQUEST, "wrong chainId".into());
    }
    let text = format!("0x{}", hex::encode(rand::random::<[u8; 32]>()));
    proxy.issued.insert(address.to_lowercase(), text.clone());
    let typed = LoginChallenge {
        chain_id: proxy.chain_id,
        challenge: text,
    }
    .typed_data();
    (
        StatusCode::OK,
        json!({ "ok": true, "data": typed }).to_string(),
    )
}

/// Body `<digest>_<signature>_<address>`: the digest must be the one of the challenge issued to
/// that address, and the signature over it (no EIP-191 prefix) must recover to the address.
async fn login(State(state): Shared, body: String) -> (StatusCode, String) {
    let Ok(mut proxy) = state.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
    };
    proxy.logins += 1;
    let parts: Vec<&str> = body.trim().split('_').collect();
    let [digest, signature, address] = parts.as_slice() else {
        return (
            StatusCode::BAD_REQUEST,
            "digest_signature_address expected".into(),
        );
    };
    let Some(text) = proxy.issued.remove(&address.to_lowercase()) else {
        return (StatusCode::UNAUTHORIZED, "no challenge issued".into());
    };
    let expected = LoginChallenge {
        chain_id: proxy.chain_id,
        challenge: text,
    }
    .digest();
    let Ok(claimed) = address.parse::<Address>() else {
        return (StatusCode::BAD_REQUEST, "bad address".into());
    };
    let recovered = EthSignature::parse(signature)
        .ok()
        .and_then(|s| s.inner().recover_address_from_prehash(&expected).ok());
    if !digest.eq_ignore_ascii_case(&expected.to_string()) || recovered != Some(claimed) {
        return (StatusCode::UNAUTHORIZED, "bad signature".into());
    }
    (StatusCode::OK, FakeResultProxy::token_for(claimed))
}

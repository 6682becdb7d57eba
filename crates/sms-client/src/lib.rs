//! Typed client of the SMS HTTP API, signing requests like the iExec SDK does. Used by the
//! CLI, the local worker and the tests.

pub mod admin;
pub mod audit;
pub mod provision;
pub mod result_proxy;
pub mod tee;
pub mod v2;
pub mod wallet;

use std::path::Path;
use std::time::Duration;

use alloy_signer_local::PrivateKeySigner;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use sms_core::challenge;
use sms_core::error_chain;
use sms_core::signature::sign_eip191;
use sms_core::{Address, B256};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("invalid SMS URL '{0}': expected http(s)://host[:port]")]
    Url(String),
    #[error("cannot read CA certificate {path}: {reason}")]
    CaCert { path: String, reason: String },
    #[error("Connection to {url} failed with a network error: {reason}")]
    Network { url: String, reason: String },
    #[error("Secret already exists for {target} and can't be updated")]
    AlreadyExists { target: String },
    #[error("Wallet {signer} is not allowed to set secret for {target}{}", reason_suffix(.reason))]
    NotAllowed {
        signer: Address,
        target: String,
        reason: Option<String>,
    },
    #[error("Server at {url} encountered an internal error")]
    Internal { url: String },
    #[error("SMS answered with unexpected status: {status}{}", reason_suffix(.reason))]
    Unexpected {
        status: StatusCode,
        reason: Option<String>,
    },
    #[error("invalid answer from the SMS: {0}")]
    Decode(String),
    /// A coded refusal of the secrets API v2.
    #[error("SMS refused the request: {code}{}: {message}", .field.as_ref().map(|f| format!(" ({f})")).unwrap_or_default())]
    Refused {
        status: StatusCode,
        code: String,
        message: String,
        field: Option<String>,
        /// The live version, on a VERSION_CONFLICT.
        current_version: Option<i64>,
    },
}

fn reason_suffix(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}

/// Installs the ring crypto provider for rustls once (reqwest is built without a provider).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Extra CA certificate (PEM) trusted besides the system roots.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Per-request timeout; default 30 s.
    pub timeout: Option<Duration>,
}

/// How a web2 secret is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Web2Write {
    Create,
    Update,
}

/// A signed secret write.
struct Push<'a> {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    signer: &'a PrivateKeySigner,
    digest: B256,
    value: &'a str,
    /// What the secret belongs to, for error messages.
    target: String,
}

#[derive(Clone)]
pub struct SmsClient {
    base: String,
    http: reqwest::Client,
}

impl SmsClient {
    pub fn new(url: &str, options: &ClientOptions) -> Result<Self, ClientError> {
        install_crypto_provider();
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Url(url.to_owned()));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(options.timeout.unwrap_or(Duration::from_secs(30)));
        if let Some(path) = &options.ca_cert {
            builder = builder.tls_certs_merge([load_ca(path)?]);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Url(format!("{url}: {e}")))?;
        Ok(Self { base, http })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        signature: Option<String>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .query(query);
        if let Some(sig) = signature {
            request = request.header("Authorization", sig);
        }
        if let Some(body) = body {
            request = request.header("Content-Type", "text/plain").body(body);
        }
        let (status, bytes) = self.exchange(request).await?;
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            return Err(ClientError::Internal {
                url: self.base.clone(),
            });
        }
        Ok((status, bytes))
    }

    /// Sends `request` and reads the whole answer; a transport failure names this SMS.
    pub(crate) async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let network = |e: reqwest::Error| ClientError::Network {
            url: self.base.clone(),
            reason: error_chain(&e),
        };
        let response = request.send().await.map_err(network)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(network)?;
        Ok((status, bytes.to_vec()))
    }

    async fn exists(&self, path: &str, query: &[(&str, String)]) -> Result<bool, ClientError> {
        let (status, body) = self.send(Method::HEAD, path, query, None, None).await?;
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(ClientError::Unexpected {
                status: s,
                reason: reason_of(&body),
            }),
        }
    }

    async fn push(&self, push: Push<'_>) -> Result<(), ClientError> {
        let Push {
            method,
            path,
            query,
            signer,
            digest,
            value,
            target,
        } = push;
        let signature = sign_eip191(signer, &digest).to_hex();
        let (status, body) = self
            .send(
                method,
                &path,
                &query,
                Some(signature),
                Some(value.as_bytes().to_vec()),
            )
            .await?;
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::CONFLICT => Err(ClientError::AlreadyExists { target }),
            StatusCode::UNAUTHORIZED => Err(ClientError::NotAllowed {
                signer: signer.address(),
                target,
                reason: reason_of(&body),
            }),
            s => Err(ClientError::Unexpected {
                status: s,
                reason: reason_of(&body),
            }),
        }
    }

    /// The server's version: the `version` of its JSON answer, or the whole body of a server
    /// that answers plain text (iExec's SMS).
    pub async fn version(&self) -> Result<String, ClientError> {
        let (status, body) = self.send(Method::GET, "/version", &[], None, None).await?;
        if !status.is_success() {
            return Err(ClientError::Unexpected {
                status,
                reason: reason_of(&body),
            });
        }
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&body)
            && let Some(serde_json::Value::String(version)) = map.get("version")
        {
            return Ok(version.clone());
        }
        String::from_utf8(body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Whether the server says it is a dev server (`GET /dev/info`, mounted only with `--dev`):
    /// `Ok(false)` when the route does not exist (404), an error for any other answer.
    pub async fn is_dev_server(&self) -> Result<bool, ClientError> {
        let (status, body) = self.send(Method::GET, "/dev/info", &[], None, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        if !status.is_success() {
            return Err(ClientError::Unexpected {
                status,
                reason: reason_of(&body),
            });
        }
        let info: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(info.get("dev") == Some(&serde_json::Value::Bool(true)))
    }

    // ---- app developer secret ----

    pub async fn app_secret_exists(&self, app: Address) -> Result<bool, ClientError> {
        self.exists(&format!("/apps/{app}/secrets"), &[]).await
    }

    pub async fn push_app_secret(
        &self,
        signer: &PrivateKeySigner,
        app: Address,
        value: &str,
    ) -> Result<(), ClientError> {
        let digest = challenge::app_developer_secret(&app, value.as_bytes());
        let path = format!("/apps/{app}/secrets");
        self.push(Push {
            method: Method::POST,
            path,
            query: vec![],
            signer,
            digest,
            value,
            target: app.to_string(),
        })
        .await
    }

    // ---- requester secrets ----

    pub async fn requester_secret_exists(
        &self,
        requester: Address,
        name: &str,
    ) -> Result<bool, ClientError> {
        self.exists(&format!("/requesters/{requester}/secrets/{name}"), &[])
            .await
    }

    pub async fn push_requester_secret(
        &self,
        signer: &PrivateKeySigner,
        name: &str,
        value: &str,
    ) -> Result<(), ClientError> {
        let requester = signer.address();
        let digest = challenge::named_secret(requester.as_slice(), name, value.as_bytes());
        let path = format!("/requesters/{requester}/secrets/{name}");
        self.push(Push {
            method: Method::POST,
            path,
            query: vec![],
            signer,
            digest,
            value,
            target: requester.to_string(),
        })
        .await
    }

    // ---- dataset keys (web3) ----

    pub async fn dataset_secret_exists(&self, dataset: Address) -> Result<bool, ClientError> {
        self.exists("/secrets/web3", &[("secretAddress", dataset.to_string())])
            .await
    }

    pub async fn push_dataset_secret(
        &self,
        signer: &PrivateKeySigner,
        dataset: Address,
        value: &str,
    ) -> Result<(), ClientError> {
        let digest = challenge::web3_secret(dataset.as_slice(), value.as_bytes());
        let query = vec![("secretAddress", dataset.to_string())];
        let path = "/secrets/web3".to_owned();
        self.push(Push {
            method: Method::POST,
            path,
            query,
            signer,
            digest,
            value,
            target: dataset.to_string(),
        })
        .await
    }

    // ---- web2 (owner-named) ----

    pub async fn web2_secret_exists(
        &self,
        owner: Address,
        name: &str,
    ) -> Result<bool, ClientError> {
        self.exists(
            "/secrets/web2",
            &[
                ("ownerAddress", owner.to_string()),
                ("secretName", name.to_owned()),
            ],
        )
        .await
    }

    pub async fn push_web2_secret(
        &self,
        signer: &PrivateKeySigner,
        name: &str,
        value: &str,
        mode: Web2Write,
    ) -> Result<(), ClientError> {
        let owner = signer.address();
        let digest = challenge::named_secret(owner.as_slice(), name, value.as_bytes());
        let query = vec![
            ("ownerAddress", owner.to_string()),
            ("secretName", name.to_owned()),
        ];
        let method = if mode == Web2Write::Create {
            Method::POST
        } else {
            Method::PUT
        };
        let path = "/secrets/web2".to_owned();
        self.push(Push {
            method,
            path,
            query,
            signer,
            digest,
            value,
            target: owner.to_string(),
        })
        .await
    }

    /// Pushes one of the SDK's reserved web2 secrets of the signer (result key, storage tokens):
    /// created when absent, replaced only with `force_update`. Returns whether it existed.
    pub async fn push_reserved_web2(
        &self,
        signer: &PrivateKeySigner,
        name: &str,
        value: &str,
        force_update: bool,
    ) -> anyhow::Result<bool> {
        let owner = signer.address();
        let exists = self.web2_secret_exists(owner, name).await?;
        if exists && !force_update {
            anyhow::bail!(
                "Secret \"{name}\" already exists for {owner} and can't be updated without --force-update"
            );
        }
        let mode = if exists {
            Web2Write::Update
        } else {
            Web2Write::Create
        };
        self.push_web2_secret(signer, name, value, mode).await?;
        Ok(exists)
    }

    // ---- JSON APIs (dev ledger, TEE) ----

    /// POSTs a JSON body and decodes the JSON answer.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .body(bytes);
        let (status, body) = self.exchange(request).await?;
        if !status.is_success() {
            if status == StatusCode::NOT_FOUND && path.starts_with("/dev/") {
                return Err(ClientError::Unexpected {
                    status,
                    reason: Some("this SMS has no dev API: start it with --dev".into()),
                });
            }
            return Err(ClientError::Unexpected {
                status,
                reason: reason_of(&body),
            });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

fn load_ca(path: &Path) -> Result<reqwest::Certificate, ClientError> {
    let err = |reason: String| ClientError::CaCert {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    reqwest::Certificate::from_pem(&pem).map_err(|e| err(e.to_string()))
}

/// `reason` (or `error`) of a JSON error body, if any.
fn reason_of(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let pick = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(items) => {
            items.first().and_then(|i| i.as_str()).map(str::to_owned)
        }
        _ => None,
    };
    value
        .get("reason")
        .and_then(pick)
        .or_else(|| value.get("error").and_then(pick))
}

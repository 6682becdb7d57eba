//! The attested provisioner's wire types and client calls (see docs/provisioning.md):
//! `POST /tee/provisioning/{sessionId}/{service}/nonce` then `.../release`.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sms_attest::{EphemeralKey, Evidence, SealedEnvelope, release_info};
use zeroize::Zeroize;

use crate::{ClientError, SmsClient};

/// Answer of the nonce endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NonceAnswer {
    pub session_id: String,
    pub service: String,
    /// 32 random bytes, standard base64.
    pub nonce: String,
    /// Unix seconds after which the nonce is refused.
    pub expires_at: u64,
}

impl NonceAnswer {
    /// The raw nonce bytes (what the report data binds).
    pub fn nonce_bytes(&self) -> Result<Vec<u8>, ClientError> {
        STANDARD
            .decode(&self.nonce)
            .map_err(|e| ClientError::Decode(format!("nonce: {e}")))
    }
}

/// Body of the release endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseRequest {
    /// The nonce as the nonce endpoint gave it.
    pub nonce: String,
    /// Raw 32-byte X25519 public key, standard base64.
    pub public_key: String,
    pub evidence: Evidence,
}

/// Answer of the release endpoint: the service's environment sealed to the request's key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseAnswer {
    pub session_id: String,
    pub service: String,
    /// 1 for the first release of this service in this session.
    pub release: u32,
    pub limit: u32,
    /// `sgx`, `tdx` or `simulated`.
    pub tee: String,
    /// The verified measurement, lowercase hex.
    pub measurement: String,
    /// HPKE envelope of a [`ReleasedEnv`] in JSON, `info` = `release_info(sessionId, service)`.
    pub sealed: SealedEnvelope,
}

/// What is sealed: the service's environment and its command. Values are secrets: no `Debug`
/// shows them and they are wiped when dropped.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleasedEnv {
    pub env: BTreeMap<String, String>,
    pub command: Option<String>,
}

impl fmt::Debug for ReleasedEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleasedEnv")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("command", &self.command.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Drop for ReleasedEnv {
    fn drop(&mut self) {
        for value in self.env.values_mut() {
            value.zeroize();
        }
        if let Some(command) = self.command.as_mut() {
            command.zeroize();
        }
    }
}

/// Error body of the provisioning endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalBody {
    /// Stable machine-readable reason, e.g. `NONCE_EXPIRED`.
    pub code: String,
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a provisioning call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The SMS refused, with its stable code.
    #[error("SMS refused ({code}, HTTP {status}): {message}")]
    Refused {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the sealed environment cannot be opened: {0}")]
    Open(#[from] sms_attest::SealError),
}

impl ProvisionError {
    /// The refusal code, when the SMS refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            ProvisionError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

fn service_path(session_id: &str, service: &str, action: &str) -> String {
    format!("/tee/provisioning/{session_id}/{service}/{action}")
}

impl SmsClient {
    async fn provision_post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ProvisionError> {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        let (status, bytes) = self.exchange(request).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Decode(e.to_string()).into());
        }
        match serde_json::from_slice::<RefusalBody>(&bytes) {
            Ok(refusal) => {
                let message = match refusal.reason {
                    Some(reason) => format!("{}: {reason}", refusal.error),
                    None => refusal.error,
                };
                Err(ProvisionError::Refused {
                    status,
                    code: refusal.code,
                    message,
                })
            }
            Err(_) if status == StatusCode::NOT_FOUND => Err(ProvisionError::Refused {
                status,
                code: "NOT_FOUND".into(),
                message: "this SMS has no attested provisioner at this path".into(),
            }),
            Err(_) if status.is_server_error() => Err(ClientError::Internal {
                url: self.base.clone(),
            }
            .into()),
            Err(_) => Err(ClientError::Unexpected {
                status,
                reason: None,
            }
            .into()),
        }
    }

    /// Asks for a fresh single-use nonce for `(session_id, service)`.
    pub async fn provision_nonce(
        &self,
        session_id: &str,
        service: &str,
    ) -> Result<NonceAnswer, ProvisionError> {
        self.provision_post(&service_path(session_id, service, "nonce"), None)
            .await
    }

    /// Sends the evidence and returns the sealed answer (not opened).
    pub async fn provision_release(
        &self,
        session_id: &str,
        service: &str,
        request: &ReleaseRequest,
    ) -> Result<ReleaseAnswer, ProvisionError> {
        let body = serde_json::to_vec(request).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.provision_post(&service_path(session_id, service, "release"), Some(body))
            .await
    }
}

/// Opens a release answer with the key whose public half was sent, for the session and
/// service that were asked (not those the answer names).
pub fn open_release(
    key: &EphemeralKey,
    session_id: &str,
    service: &str,
    answer: &ReleaseAnswer,
) -> Result<ReleasedEnv, ProvisionError> {
    let plaintext = key.open(&release_info(session_id, service), &answer.sealed)?;
    serde_json::from_slice(&plaintext).map_err(|e| {
        ClientError::Decode(format!("sealed environment is not the expected JSON: {e}")).into()
    })
}

//! The attested provisioner's wire types and client calls (see docs/provisioning.md):
//! `GET /tee/provisioning/identity`, `POST /tee/provisioning/{sessionId}/{service}/nonce`
//! then `.../release`. [`SmsClient::attested_release`] runs the whole exchange for a launcher
//! and accepts only an answer signed by the SMS key it pins.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sms_attest::{
    AnswerSignature, EphemeralKey, Evidence, IdentityDocument, IdentityError, ReleaseTranscript,
    SealedEnvelope, SmsPublicKey, release_info, report_data_binding, request_sha256,
};
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
    /// The SMS identity's signature over the [`ReleaseTranscript`] of this answer.
    pub signature: AnswerSignature,
}

/// What is sealed: the service's environment. Values are secrets: no `Debug` shows them and
/// they are wiped when dropped. Other fields (an older server's `command`) are ignored: what
/// runs is the launcher's own argv, never something the answer names.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleasedEnv {
    pub env: BTreeMap<String, String>,
}

impl fmt::Debug for ReleasedEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleasedEnv")
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Drop for ReleasedEnv {
    fn drop(&mut self) {
        for value in self.env.values_mut() {
            value.zeroize();
        }
    }
}

/// Names a released environment may never set: they change how the loader, the shell or the
/// program finds code and configuration, so a hostile answer could run code of its choice.
pub const FORBIDDEN_ENV_NAMES: [&str; 6] = ["PATH", "HOME", "SHELL", "IFS", "ENV", "BASH_ENV"];

/// Whether a released variable name is acceptable: `^[A-Z][A-Z0-9_]*$`, not `LD_*`, not one of
/// [`FORBIDDEN_ENV_NAMES`].
pub fn released_name_allowed(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase())
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !name.starts_with("LD_")
        && !FORBIDDEN_ENV_NAMES.contains(&name)
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
    /// The answer is not authenticated by the pinned SMS key: an impostor, or tampered.
    #[error("{0}")]
    NotAuthenticated(#[from] IdentityError),
    /// The environment sets a name a launcher never applies; nothing of it is used.
    #[error(
        "the released environment sets the variable '{0}', which a launcher never applies \
         (allowed: ^[A-Z][A-Z0-9_]*$, not LD_*, PATH, HOME, SHELL, IFS, ENV, BASH_ENV): the whole answer is refused"
    )]
    ForbiddenName(String),
    /// The evidence could not be produced.
    #[error("cannot produce the evidence: {0}")]
    Evidence(String),
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

    /// Sends a release request body as is and returns the answer (neither verified nor
    /// opened: see [`open_release`]).
    pub async fn provision_release(
        &self,
        session_id: &str,
        service: &str,
        body: Vec<u8>,
    ) -> Result<ReleaseAnswer, ProvisionError> {
        self.provision_post(&service_path(session_id, service, "release"), Some(body))
            .await
    }

    /// `GET /tee/provisioning/identity`: the key this SMS signs answers with. What a launcher
    /// pins must come from somewhere it trusts (its measured arguments), not from this call.
    pub async fn provision_identity(&self) -> Result<IdentityDocument, crate::tee::TeeCallError> {
        self.get_json("/tee/provisioning/identity").await
    }

    /// The whole exchange of a launcher: nonce, a fresh ephemeral key, `evidence(report_data)`,
    /// release, then [`open_release`] against `pinned`. Nothing is returned unless the answer
    /// is authenticated by `pinned` for exactly this request.
    pub async fn attested_release(
        &self,
        session_id: &str,
        service: &str,
        pinned: &SmsPublicKey,
        evidence: impl FnOnce(&[u8; 64]) -> Result<Evidence, String>,
    ) -> Result<(ReleaseAnswer, ReleasedEnv), ProvisionError> {
        let nonce = self.provision_nonce(session_id, service).await?;
        let nonce_bytes = nonce.nonce_bytes()?;
        let key = EphemeralKey::generate();
        let report_data = report_data_binding(&nonce_bytes, key.public_key());
        let request = ReleaseRequest {
            nonce: nonce.nonce,
            public_key: key.public_key_base64(),
            evidence: evidence(&report_data).map_err(ProvisionError::Evidence)?,
        };
        let body = serde_json::to_vec(&request).map_err(|e| ClientError::Decode(e.to_string()))?;
        let asked = ReleaseAsk {
            session_id,
            service,
            nonce: &nonce_bytes,
            request_body: &body,
        };
        let answer = self
            .provision_release(session_id, service, body.clone())
            .await?;
        let released = open_release(pinned, &key, &asked, &answer)?;
        Ok((answer, released))
    }
}

/// What the enclave asked, as it asked it (never as an answer repeats it).
#[derive(Debug, Clone, Copy)]
pub struct ReleaseAsk<'a> {
    pub session_id: &'a str,
    pub service: &'a str,
    /// The raw nonce sent.
    pub nonce: &'a [u8],
    /// The exact release request body sent.
    pub request_body: &'a [u8],
}

/// Accepts a release answer only when, in this order: it is signed by `pinned` over the
/// transcript of exactly this request; it opens with `key` for the session and service asked;
/// every variable name is allowed ([`released_name_allowed`]).
pub fn open_release(
    pinned: &SmsPublicKey,
    key: &EphemeralKey,
    asked: &ReleaseAsk<'_>,
    answer: &ReleaseAnswer,
) -> Result<ReleasedEnv, ProvisionError> {
    let key_id = pinned.key_id();
    let transcript = ReleaseTranscript {
        key_id: &key_id,
        session_id: asked.session_id,
        service: asked.service,
        nonce: asked.nonce,
        enclave_public_key: key.public_key(),
        request_sha256: &request_sha256(asked.request_body),
        release: answer.release,
        limit: answer.limit,
        tee: &answer.tee,
        measurement: &answer.measurement,
        sealed: &answer.sealed,
    };
    pinned.verify(&answer.signature, &transcript.to_bytes())?;
    let plaintext = key.open(
        &release_info(asked.session_id, asked.service),
        &answer.sealed,
    )?;
    let released: ReleasedEnv = serde_json::from_slice(&plaintext).map_err(|e| {
        ClientError::Decode(format!("sealed environment is not the expected JSON: {e}"))
    })?;
    if let Some(name) = released.env.keys().find(|n| !released_name_allowed(n)) {
        return Err(ProvisionError::ForbiddenName(
            name.chars().take(64).collect(),
        ));
    }
    Ok(released)
}

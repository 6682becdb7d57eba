//! The attested provisioner's wire types and client calls (see docs/provisioning.md):
//! `GET /tee/provisioning/identity`, `POST /tee/provisioning/{sessionId}/{service}/nonce`
//! then `.../release`. [`SmsClient::attested_release`] runs the whole exchange for a launcher
//! and accepts only an answer signed by the SMS key it pins.

use reqwest::StatusCode;
use sms_attest::{
    EphemeralKey, Evidence, IdentityDocument, IdentityError, ReleaseTranscript, SmsPublicKey,
    release_info, report_data_binding, request_sha256,
};

use crate::{ClientError, SmsClient};

// The messages live below client and server (`sms_attest::provision`); these paths stay.
pub use sms_attest::provision::{
    FORBIDDEN_ENV_NAMES, NonceAnswer, RefusalBody, ReleaseAnswer, ReleaseRequest, ReleasedEnv,
    released_name_allowed,
};

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
        let nonce_bytes = nonce
            .nonce_bytes()
            .map_err(|e| ClientError::Decode(format!("nonce: {e}")))?;
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

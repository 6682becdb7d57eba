//! The messages of the attested provisioner (docs/provisioning.md), shared by the server that
//! answers them and the client that sends them: the nonce answer, the release request and
//! answer, the sealed environment, the refusal body, and which variable names a launcher may
//! apply.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::{AnswerSignature, Evidence, SealedEnvelope};

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
    pub fn nonce_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        STANDARD.decode(&self.nonce)
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

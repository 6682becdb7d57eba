//! Scheduler- and worker-side calls of the TEE API (`/tee/challenges`, `/tee/sessions`,
//! `/tee/properties`) and the dev task description (`GET /dev/tasks/{taskId}`), as the local
//! worker makes them.

use alloy_signer_local::PrivateKeySigner;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use sms_core::authorization::WorkerpoolAuthorization;
use sms_core::signature::sign_eip191;
use sms_core::{Address, B256};

use crate::{ClientError, SmsClient};

/// `POST /tee/sessions` answer, decoded as strictly as the iExec worker does (an unknown key
/// fails the decode).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionAnswer {
    pub session_id: String,
    pub secret_provisioning_url: String,
}

/// A refusal of a `/tee/*` call, with the SMS's error code (e.g. `INVALID_AUTHORIZATION`).
#[derive(Debug, thiserror::Error)]
pub enum TeeCallError {
    #[error("SMS refused ({code}, HTTP {status}){}", .reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Refused {
        status: StatusCode,
        code: String,
        reason: Option<String>,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl TeeCallError {
    pub fn code(&self) -> Option<&str> {
        match self {
            TeeCallError::Refused { code, .. } => Some(code),
            TeeCallError::Client(_) => None,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: serde_json::Value,
    #[serde(default)]
    reason: Option<String>,
}

impl SmsClient {
    async fn tee_call(
        &self,
        method: Method,
        path: &str,
        authorization: Option<String>,
        json_body: Option<String>,
    ) -> Result<Vec<u8>, TeeCallError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(sig) = authorization {
            request = request.header("Authorization", sig);
        }
        if let Some(body) = json_body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        let (status, bytes) = self.exchange(request).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        let (code, reason) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => {
                let code = match body.error {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Array(items) => items
                        .first()
                        .and_then(|i| i.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    _ => String::new(),
                };
                (code, body.reason)
            }
            Err(_) => (String::new(), None),
        };
        let code = if code.is_empty() {
            format!("HTTP_{}", status.as_u16())
        } else {
            code
        };
        Err(TeeCallError::Refused {
            status,
            code,
            reason,
        })
    }

    /// `GET` a JSON document.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, TeeCallError> {
        let bytes = self.tee_call(Method::GET, path, None, None).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()).into())
    }

    /// Scheduler: the task's enclave challenge, asked with the workerpool owner's signature of
    /// `keccak256(taskId)`.
    pub async fn tee_challenge(
        &self,
        pool_owner: &PrivateKeySigner,
        task_id: B256,
    ) -> Result<Address, TeeCallError> {
        let digest = sms_core::hash::keccak_concat(&[task_id.as_slice()]);
        let signature = sign_eip191(pool_owner, &digest).to_hex();
        let bytes = self
            .tee_call(
                Method::POST,
                &format!("/tee/challenges/{task_id}"),
                Some(signature),
                None,
            )
            .await?;
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim().trim_matches('"');
        text.parse()
            .map_err(|_| ClientError::Decode(format!("not an address: {text}")).into())
    }

    /// Worker: a session for the authorization, signed by the worker wallet.
    pub async fn tee_session(
        &self,
        worker: &PrivateKeySigner,
        authorization: &WorkerpoolAuthorization,
    ) -> Result<SessionAnswer, TeeCallError> {
        let signature = sign_eip191(worker, &authorization.hash()).to_hex();
        let bytes = self
            .tee_call(
                Method::POST,
                "/tee/sessions",
                Some(signature),
                Some(authorization.to_json()),
            )
            .await?;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wrapped {
            data: SessionAnswer,
        }
        serde_json::from_slice::<Wrapped>(&bytes)
            .map(|w| w.data)
            .map_err(|e| ClientError::Decode(format!("session answer: {e}")).into())
    }
}

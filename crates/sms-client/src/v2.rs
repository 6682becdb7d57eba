//! Client of the secrets API v2 (docs/secrets-api-v2.md): fetches the SMS's signing domain,
//! signs each operation with EIP-712 typed data (fresh nonce, short expiry) and decodes the
//! typed answers and coded errors.

use std::time::Duration;

use alloy_signer_local::PrivateKeySigner;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use sms_core::Address;
use sms_core::secret::SecretKind;
use sms_core::secret_operation::{
    DomainClaim, Operation, OperationMessage, SecretList, SecretMetadata, SecretVersion,
    ServiceDomain, SignedRequest,
};

use crate::{ClientError, SmsClient};

/// How long a request signed by this client stays valid (the server accepts up to 600 s).
pub const REQUEST_LIFETIME: Duration = Duration::from_secs(120);

/// Which secret an operation names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub kind: SecretKind,
    /// The signer's address (requester, web2), or the app or dataset address.
    pub owner: Address,
    /// Empty for app developer secrets and dataset keys.
    pub name: String,
}

impl SecretRef {
    /// The secret of `kind` named by `id`: a name of the signer's (requester, web2), or the
    /// app or dataset address (app developer secret, dataset key).
    pub fn resolve(kind: SecretKind, signer: Address, id: &str) -> anyhow::Result<Self> {
        Ok(match kind {
            SecretKind::AppDeveloper | SecretKind::Web3 => SecretRef {
                kind,
                owner: sms_core::secret::parse_address(id)?,
                name: String::new(),
            },
            SecretKind::Requester | SecretKind::Web2 => SecretRef {
                kind,
                owner: signer,
                name: id.to_owned(),
            },
        })
    }
}

/// The (kind, owner) lists `sms secret list [kind] [address]` reads: without a kind the
/// signer's requester and web2 secrets; an app's or dataset's with its address.
pub fn list_targets(
    kind: Option<SecretKind>,
    address: Option<&str>,
    signer: Address,
) -> anyhow::Result<Vec<(SecretKind, Address)>> {
    use SecretKind::{AppDeveloper, Requester, Web2, Web3};
    Ok(match (kind, address) {
        (None, None) => vec![(Requester, signer), (Web2, signer)],
        (Some(k @ (Requester | Web2)), None) => vec![(k, signer)],
        (Some(Requester | Web2), Some(_)) => anyhow::bail!(
            "requester and web2 secrets are listed for your own wallet: drop the address"
        ),
        (Some(k @ (AppDeveloper | Web3)), Some(a)) => {
            vec![(k, sms_core::secret::parse_address(a)?)]
        }
        (Some(AppDeveloper | Web3), None) => {
            anyhow::bail!("give the app or dataset address: sms secret list app 0x...")
        }
        (None, Some(_)) => anyhow::bail!("give the kind before the address"),
    })
}

impl SmsClient {
    /// Every secret of these (kind, owner) lists, in order.
    pub async fn v2_list_all(
        &self,
        signer: &PrivateKeySigner,
        lists: &[(SecretKind, Address)],
    ) -> Result<Vec<SecretMetadata>, ClientError> {
        let mut all = Vec::new();
        for &(kind, owner) in lists {
            all.extend(self.v2_list(signer, kind, owner).await?.secrets);
        }
        Ok(all)
    }

    /// The domain this SMS accepts v2 signatures for (`GET /v2/domain`).
    pub async fn v2_domain(&self) -> Result<ServiceDomain, ClientError> {
        let request = self.http.get(format!("{}/v2/domain", self.base));
        let claim: DomainClaim = self.v2_answer(request).await?;
        Ok(ServiceDomain {
            chain_id: claim.chain_id,
            instance: claim.verifying_contract,
        })
    }

    /// Creates (`expected_version` 0) or replaces version `expected_version` of a secret.
    pub async fn v2_put(
        &self,
        signer: &PrivateKeySigner,
        secret: &SecretRef,
        value: &str,
        expected_version: u64,
    ) -> Result<SecretVersion, ClientError> {
        let message = self.v2_message(Operation::Put, secret, Some(value), expected_version);
        self.v2_send(signer, message, Some(value.to_owned())).await
    }

    /// Deletes a secret (`expected_version` 0: whatever its version).
    pub async fn v2_delete(
        &self,
        signer: &PrivateKeySigner,
        secret: &SecretRef,
        expected_version: u64,
    ) -> Result<SecretVersion, ClientError> {
        let message = self.v2_message(Operation::Delete, secret, None, expected_version);
        self.v2_send(signer, message, None).await
    }

    /// The metadata of one secret (never its value).
    pub async fn v2_show(
        &self,
        signer: &PrivateKeySigner,
        secret: &SecretRef,
    ) -> Result<SecretMetadata, ClientError> {
        let message = self.v2_message(Operation::Show, secret, None, 0);
        self.v2_send(signer, message, None).await
    }

    /// The live secrets of one kind and owner: names and versions.
    pub async fn v2_list(
        &self,
        signer: &PrivateKeySigner,
        kind: SecretKind,
        owner: Address,
    ) -> Result<SecretList, ClientError> {
        let secret = SecretRef {
            kind,
            owner,
            name: String::new(),
        };
        let message = self.v2_message(Operation::List, &secret, None, 0);
        self.v2_send(signer, message, None).await
    }

    fn v2_message(
        &self,
        operation: Operation,
        secret: &SecretRef,
        value: Option<&str>,
        expected_version: u64,
    ) -> OperationMessage {
        let now = sms_core::clock::unix_now();
        OperationMessage::new(
            operation,
            secret.kind,
            secret.owner,
            &secret.name,
            value,
            expected_version,
        )
        .valid_for(now, REQUEST_LIFETIME.as_secs())
    }

    /// Signs `message` for this SMS's domain and posts it to the operation's route.
    async fn v2_send<T: DeserializeOwned>(
        &self,
        signer: &PrivateKeySigner,
        message: OperationMessage,
        value: Option<String>,
    ) -> Result<T, ClientError> {
        let domain = self.v2_domain().await?;
        let request = SignedRequest::signed(signer, &domain, message, value);
        self.v2_post(&request).await
    }

    /// Posts an already signed request (e.g. one signed by a browser wallet) as it is.
    pub async fn v2_post<T: DeserializeOwned>(
        &self,
        request: &SignedRequest,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(request).map_err(|e| ClientError::Decode(e.to_string()))?;
        let http = self
            .http
            .post(format!(
                "{}/v2/secrets/{}",
                self.base, request.message.operation
            ))
            .header("Content-Type", "application/json")
            .body(body);
        self.v2_answer(http).await
    }

    async fn v2_answer<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let (status, body) = self.exchange(request).await?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()));
        }
        Err(refusal(status, &body))
    }
}

/// The coded error of a v2 answer (`{"error": {code, message, field, currentVersion?}}`).
fn refusal(status: StatusCode, body: &[u8]) -> ClientError {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error = &value["error"];
    let text = |name: &str| error[name].as_str().map(str::to_owned);
    match text("code") {
        Some(code) => ClientError::Refused {
            status,
            code,
            message: text("message").unwrap_or_default(),
            field: text("field"),
            current_version: error["currentVersion"].as_i64(),
        },
        None if status == StatusCode::NOT_FOUND => ClientError::Unexpected {
            status,
            reason: Some("this SMS does not serve the secrets API v2 (/v2/*)".into()),
        },
        None => ClientError::Unexpected {
            status,
            reason: crate::reason_of(body),
        },
    }
}

/// One line per secret: kind, name, version, updated (UTC), key id.
pub fn metadata_table(rows: &[SecretMetadata]) -> String {
    let mut text = format!(
        "{:<14} {:<42} {:>7}  {:<20} {:>6}",
        "KIND", "NAME", "VERSION", "UPDATED (UTC)", "KEY"
    );
    for m in rows {
        let name = if m.name.is_empty() {
            m.owner.to_string()
        } else {
            m.name.clone()
        };
        text.push_str(&format!(
            "\n{:<14} {:<42} {:>7}  {:<20} {:>6}",
            m.kind.as_str(),
            name,
            m.version,
            sms_core::clock::utc(m.updated_at),
            m.key_id
        ));
    }
    text
}

/// A refusal as the CLI user should read it: the server's code and message, and for a
/// version conflict the flag to pass.
pub fn with_version_hint(error: ClientError) -> anyhow::Error {
    match &error {
        ClientError::Refused {
            code,
            current_version: Some(current),
            ..
        } if code == "VERSION_CONFLICT" => {
            let hint = if *current == 0 {
                "the secret does not exist: pass --expected-version 0 (the default) to create it"
                    .to_owned()
            } else {
                format!(
                    "the current version is {current}: pass --expected-version {current} to replace it"
                )
            };
            anyhow::anyhow!("{error} ({hint})")
        }
        _ => error.into(),
    }
}

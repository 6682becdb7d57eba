//! Owner operations of the secrets API v2 (docs/secrets-api-v2.md): EIP-712 typed data bound
//! to one SMS instance on one chain, with the value's hash, the expected version, a nonce and
//! an expiry. Pure: the caller supplies the clock and records the nonce.
//!
//! Verification is a list of steps, each refusing with its own [`Refusal`]:
//! `ensure_chain → ensure_domain → ensure_not_expired → recover_signer`, then
//! [`VerifiedOperation::target`] turns the message into the secret it names. No chain read
//! happens before these steps pass.

use std::borrow::Cow;

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{Eip712Domain, SolStruct, sol};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::secret::{RequesterSecretName, SecretId, SecretKind};
use crate::signature::EthSignature;

sol! {
    /// The EIP-712 primary type every v2 request signs.
    #[derive(Debug, PartialEq, Eq)]
    struct SecretOperation {
        string operation;
        string kind;
        address owner;
        string name;
        bytes32 valueHash;
        uint64 expectedVersion;
        bytes32 nonce;
        uint64 expiry;
    }
}

/// `name` of the EIP-712 domain.
pub const DOMAIN_NAME: &str = "iExec SMS";
/// `version` of the EIP-712 domain.
pub const DOMAIN_VERSION: &str = "2";
/// How far ahead of the server's clock an expiry may be; also how long a nonce is remembered.
pub const MAX_LIFETIME_SECS: u64 = 600;

/// The domain this SMS accepts signatures for: its chain and its instance id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceDomain {
    pub chain_id: u64,
    /// `verifyingContract`: `--instance-id`, or derived from the identity key id.
    pub instance: Address,
}

impl ServiceDomain {
    /// The default instance id of an SMS: the last 20 bytes of
    /// `keccak256("iexec-sms-instance:" ‖ identity key id)`. Replicas share the identity, hence
    /// the id; another SMS has another one.
    pub fn instance_of_identity(key_id: &str) -> Address {
        let hash = keccak256(format!("iexec-sms-instance:{key_id}"));
        Address::from_slice(&hash[12..])
    }

    pub fn eip712(&self) -> Eip712Domain {
        Eip712Domain::new(
            Some(Cow::Borrowed(DOMAIN_NAME)),
            Some(Cow::Borrowed(DOMAIN_VERSION)),
            Some(U256::from(self.chain_id)),
            Some(self.instance),
            None,
        )
    }

    /// The domain as a request carries it (and as `GET /v2/domain` publishes it).
    pub fn claim(&self) -> DomainClaim {
        DomainClaim {
            name: Some(DOMAIN_NAME.to_owned()),
            version: Some(DOMAIN_VERSION.to_owned()),
            chain_id: self.chain_id,
            verifying_contract: self.instance,
        }
    }
}

/// The domain a request says it was signed for (name and version may be left out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DomainClaim {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub chain_id: u64,
    pub verifying_contract: Address,
}

/// What an operation does; the route it is sent to must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Put,
    Delete,
    List,
    Show,
}

impl Operation {
    pub const ALL: [Operation; 4] = [Self::Put, Self::Delete, Self::List, Self::Show];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Delete => "delete",
            Self::List => "list",
            Self::Show => "show",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == text)
    }
}

/// The signed message as JSON (field names of the typed data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationMessage {
    pub operation: String,
    pub kind: String,
    pub owner: Address,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value_hash: B256,
    #[serde(default)]
    pub expected_version: u64,
    pub nonce: B256,
    pub expiry: u64,
}

impl OperationMessage {
    fn typed(&self) -> SecretOperation {
        SecretOperation {
            operation: self.operation.clone(),
            kind: self.kind.clone(),
            owner: self.owner,
            name: self.name.clone(),
            valueHash: self.value_hash,
            expectedVersion: self.expected_version,
            nonce: self.nonce,
            expiry: self.expiry,
        }
    }

    /// The digest a wallet signs (`eth_signTypedData_v4`, ethers `signTypedData`).
    pub fn signing_hash(&self, domain: &ServiceDomain) -> B256 {
        self.typed().eip712_signing_hash(&domain.eip712())
    }
}

/// A v2 request body: the domain and message signed, the claimed signer, the signature, and for
/// `put` the value.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedRequest {
    pub domain: DomainClaim,
    pub message: OperationMessage,
    pub signer: Address,
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl SignedRequest {
    /// A request signed by `signer` for `domain` (a put carries `value`; its hash must already
    /// be `message.value_hash`, see [`OperationMessage::new`]).
    pub fn signed(
        signer: &PrivateKeySigner,
        domain: &ServiceDomain,
        message: OperationMessage,
        value: Option<String>,
    ) -> Self {
        Self {
            domain: domain.claim(),
            signature: sign(signer, domain, &message),
            message,
            signer: signer.address(),
            value,
        }
    }
}

impl OperationMessage {
    /// A message with a fresh random nonce; the value hash is that of `value` (a put) or
    /// zero. Set the expiry with [`Self::valid_for`].
    pub fn new(
        operation: Operation,
        kind: SecretKind,
        owner: Address,
        name: &str,
        value: Option<&str>,
        expected_version: u64,
    ) -> Self {
        Self {
            operation: operation.as_str().to_owned(),
            kind: kind.as_str().to_owned(),
            owner,
            name: name.to_owned(),
            value_hash: value.map_or(B256::ZERO, |v| value_hash(v.as_bytes())),
            expected_version,
            nonce: random_nonce(),
            expiry: 0,
        }
    }

    /// Expires `lifetime_secs` after `now` (unix seconds).
    pub fn valid_for(mut self, now: u64, lifetime_secs: u64) -> Self {
        self.expiry = now.saturating_add(lifetime_secs);
        self
    }
}

/// The answer of a put or a delete: the secret and the version it has now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVersion {
    pub kind: SecretKind,
    pub owner: Address,
    /// Empty for app developer secrets and dataset keys (named by their owner address).
    pub name: String,
    pub version: i64,
}

/// What `show` and `list` tell about a secret: never its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretMetadata {
    pub kind: SecretKind,
    pub owner: Address,
    pub name: String,
    pub version: i64,
    /// Unix seconds of the first write of the current life (after a delete, the re-creation).
    pub created_at: i64,
    pub updated_at: i64,
    /// The data key the value is sealed with.
    pub key_id: i64,
}

/// The answer of `list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretList {
    pub kind: SecretKind,
    pub owner: Address,
    pub secrets: Vec<SecretMetadata>,
}

/// The name a secret is shown with: app developer secrets and dataset keys have none.
pub fn public_name(kind: SecretKind, stored: &str) -> &str {
    match kind {
        SecretKind::AppDeveloper | SecretKind::Web3 => "",
        SecretKind::Requester | SecretKind::Web2 => stored,
    }
}

/// Why a signed request is refused before anything is read. Each has a stable code and names
/// the request field at fault.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("signed for chain {claimed}, this SMS serves chain {expected}")]
    WrongChain { claimed: u64, expected: u64 },
    #[error("signed for {field} {claimed}, this SMS is {expected} (GET /v2/domain)")]
    WrongDomain {
        field: &'static str,
        claimed: String,
        expected: String,
    },
    #[error("expired at {expiry}, it is {now} (unix seconds): sign the request again")]
    Expired { expiry: u64, now: u64 },
    #[error(
        "expiry {expiry} is more than {MAX_LIFETIME_SECS} s after the server's clock ({now}): sign with a nearer expiry"
    )]
    TooFarAhead { expiry: u64, now: u64 },
    #[error("{0}")]
    BadSignature(String),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Self::WrongChain { .. } => "WRONG_CHAIN",
            Self::WrongDomain { .. } => "WRONG_DOMAIN",
            Self::Expired { .. } | Self::TooFarAhead { .. } => "SIGNATURE_EXPIRED",
            Self::BadSignature(_) => "BAD_SIGNATURE",
        }
    }

    /// The request field at fault (JSON path).
    pub fn field(&self) -> &'static str {
        match self {
            Self::WrongChain { .. } => "domain.chainId",
            Self::WrongDomain { field, .. } => field,
            Self::Expired { .. } | Self::TooFarAhead { .. } => "message.expiry",
            Self::BadSignature(_) => "signature",
        }
    }
}

/// A request whose signature holds under this SMS's domain, not expired. The nonce is still to
/// be recorded by the caller ([`VerifiedOperation::nonce`]).
#[derive(Clone, Debug)]
pub struct VerifiedOperation {
    pub signer: Address,
    pub message: OperationMessage,
}

/// Steps 1–4 of every v2 request.
pub fn verify(
    request: &SignedRequest,
    domain: &ServiceDomain,
    now: u64,
) -> Result<VerifiedOperation, Refusal> {
    ensure_chain(&request.domain, domain)?;
    ensure_domain(&request.domain, domain)?;
    ensure_not_expired(&request.message, now)?;
    let signer = recover_signer(request, domain)?;
    Ok(VerifiedOperation {
        signer,
        message: request.message.clone(),
    })
}

/// Step 1: signed for the chain this SMS serves.
fn ensure_chain(claim: &DomainClaim, domain: &ServiceDomain) -> Result<(), Refusal> {
    if claim.chain_id != domain.chain_id {
        return Err(Refusal::WrongChain {
            claimed: claim.chain_id,
            expected: domain.chain_id,
        });
    }
    Ok(())
}

/// Step 2: signed for this SMS (instance id), this API (name, version).
fn ensure_domain(claim: &DomainClaim, domain: &ServiceDomain) -> Result<(), Refusal> {
    if claim.verifying_contract != domain.instance {
        return Err(Refusal::WrongDomain {
            field: "domain.verifyingContract",
            claimed: claim.verifying_contract.to_string(),
            expected: domain.instance.to_string(),
        });
    }
    let fixed = [
        ("domain.name", claim.name.as_deref(), DOMAIN_NAME),
        ("domain.version", claim.version.as_deref(), DOMAIN_VERSION),
    ];
    for (field, claimed, expected) in fixed {
        if let Some(claimed) = claimed
            && claimed != expected
        {
            return Err(Refusal::WrongDomain {
                field,
                claimed: claimed.chars().take(64).collect(),
                expected: expected.to_owned(),
            });
        }
    }
    Ok(())
}

/// Step 3: not expired, and not valid for longer than the nonce is remembered.
fn ensure_not_expired(message: &OperationMessage, now: u64) -> Result<(), Refusal> {
    let expiry = message.expiry;
    if expiry <= now {
        return Err(Refusal::Expired { expiry, now });
    }
    if expiry > now.saturating_add(MAX_LIFETIME_SECS) {
        return Err(Refusal::TooFarAhead { expiry, now });
    }
    Ok(())
}

/// Step 4: the signature recovers, under this domain, to the claimed signer.
fn recover_signer(request: &SignedRequest, domain: &ServiceDomain) -> Result<Address, Refusal> {
    let signature = EthSignature::parse(&request.signature)
        .map_err(|e| Refusal::BadSignature(e.to_string()))?;
    let digest = request.message.signing_hash(domain);
    let recovered = signature
        .recover_prehash(&digest)
        .map_err(|_| Refusal::BadSignature("the signature does not recover".to_owned()))?;
    if recovered != request.signer {
        return Err(Refusal::BadSignature(format!(
            "the signature is not by {} over this message and domain",
            request.signer
        )));
    }
    Ok(recovered)
}

/// A message that does not describe a valid operation; names the field.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
}

impl FieldError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// What a verified message asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One secret (`put`, `delete`, `show`).
    Secret(SecretId),
    /// The secrets of one kind and owner (`list`).
    List { kind: SecretKind, owner: Address },
}

impl Target {
    pub fn kind(&self) -> SecretKind {
        match self {
            Self::Secret(id) => id.kind,
            Self::List { kind, .. } => *kind,
        }
    }

    pub fn owner(&self) -> Address {
        match self {
            Self::Secret(id) => id.owner,
            Self::List { owner, .. } => *owner,
        }
    }
}

impl VerifiedOperation {
    /// The operation, checked against the route's (`expected`).
    pub fn operation(&self, expected: Operation) -> Result<Operation, FieldError> {
        match Operation::parse(&self.message.operation) {
            Some(op) if op == expected => Ok(op),
            Some(op) => Err(FieldError::new(
                "message.operation",
                format!("'{}' sent to the {} route", op.as_str(), expected.as_str()),
            )),
            None => Err(FieldError::new(
                "message.operation",
                "expected one of put, delete, list, show",
            )),
        }
    }

    /// The secret (or list) the message names, with the naming rules of its kind.
    pub fn target(&self, operation: Operation) -> Result<Target, FieldError> {
        let message = &self.message;
        let kind = SecretKind::parse(&message.kind).ok_or_else(|| {
            FieldError::new(
                "message.kind",
                "expected one of web2, web3, app-developer, requester",
            )
        })?;
        let owner = message.owner;
        let name = message.name.as_str();
        if operation == Operation::List {
            if !name.is_empty() {
                return Err(FieldError::new("message.name", "must be empty for list"));
            }
            return Ok(Target::List { kind, owner });
        }
        let id = match kind {
            SecretKind::Requester => RequesterSecretName::parse(name)
                .map(|n| SecretId::requester(owner, &n))
                .map_err(|e| FieldError::new("message.name", e.to_string()))?,
            SecretKind::Web2 => SecretId::web2(owner, name)
                .map_err(|e| FieldError::new("message.name", e.to_string()))?,
            SecretKind::AppDeveloper | SecretKind::Web3 => {
                if !name.is_empty() {
                    return Err(FieldError::new(
                        "message.name",
                        format!(
                            "must be empty for {kind}: the secret is named by its owner address"
                        ),
                    ));
                }
                if kind == SecretKind::Web3 {
                    SecretId::web3(owner)
                } else {
                    SecretId::app_developer(owner)
                }
            }
        };
        Ok(Target::Secret(id))
    }

    /// The bound a nonce must be remembered until.
    pub fn nonce(&self) -> (B256, u64) {
        (self.message.nonce, self.message.expiry)
    }
}

/// `valueHash` of a `put`: keccak256 of the value's bytes.
pub fn value_hash(value: &[u8]) -> B256 {
    keccak256(value)
}

/// Signs `message` for `domain` (what `sms secret` and the tests do; wallets use
/// `eth_signTypedData_v4`).
pub fn sign(
    signer: &PrivateKeySigner,
    domain: &ServiceDomain,
    message: &OperationMessage,
) -> String {
    crate::signature::sign_prehash(signer, &message.signing_hash(domain)).to_hex()
}

/// A fresh random nonce.
pub fn random_nonce() -> B256 {
    B256::from(rand::random::<[u8; 32]>())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn domain() -> ServiceDomain {
        ServiceDomain {
            chain_id: 134,
            instance: Address::repeat_byte(0x5a),
        }
    }

    fn request(signer: &PrivateKeySigner, expiry: u64) -> SignedRequest {
        let message = OperationMessage {
            operation: "put".into(),
            kind: "requester".into(),
            owner: signer.address(),
            name: "alpha".into(),
            value_hash: value_hash(b"v"),
            expected_version: 0,
            nonce: B256::repeat_byte(7),
            expiry,
        };
        SignedRequest::signed(signer, &domain(), message, Some("v".into()))
    }

    #[test]
    fn type_string_is_the_documented_one() {
        assert_eq!(
            SecretOperation::eip712_encode_type(),
            "SecretOperation(string operation,string kind,address owner,string name,bytes32 valueHash,\
             uint64 expectedVersion,bytes32 nonce,uint64 expiry)"
        );
    }

    #[test]
    fn each_step_refuses_with_its_own_code() {
        let wallet = PrivateKeySigner::random();
        let good = request(&wallet, 1_100);
        assert_eq!(
            verify(&good, &domain(), 1_000).unwrap().signer,
            wallet.address()
        );

        let mut other_chain = good.clone();
        other_chain.domain.chain_id = 1;
        let mut other_instance = good.clone();
        other_instance.domain.verifying_contract = Address::repeat_byte(1);
        let mut other_name = good.clone();
        other_name.domain.name = Some("Vault".into());
        let mut tampered = good.clone();
        tampered.message.expected_version = 3;
        let mut impostor = good.clone();
        impostor.signer = Address::repeat_byte(9);
        let cases = [
            (&other_chain, 1_000, "WRONG_CHAIN", "domain.chainId"),
            (
                &other_instance,
                1_000,
                "WRONG_DOMAIN",
                "domain.verifyingContract",
            ),
            (&other_name, 1_000, "WRONG_DOMAIN", "domain.name"),
            (&good, 1_100, "SIGNATURE_EXPIRED", "message.expiry"),
            (&good, 400, "SIGNATURE_EXPIRED", "message.expiry"),
            (&tampered, 1_000, "BAD_SIGNATURE", "signature"),
            (&impostor, 1_000, "BAD_SIGNATURE", "signature"),
        ];
        for (req, now, code, field) in cases {
            let refusal = verify(req, &domain(), now).unwrap_err();
            assert_eq!(
                (refusal.code(), refusal.field()),
                (code, field),
                "{refusal}"
            );
        }
    }

    #[test]
    fn targets_follow_the_naming_rules_of_each_kind() {
        let wallet = PrivateKeySigner::random();
        let mut op = VerifiedOperation {
            signer: wallet.address(),
            message: request(&wallet, 1_100).message,
        };
        assert!(matches!(op.target(Operation::Put), Ok(Target::Secret(id)) if id.name == "alpha"));
        op.message.name = "bad name!".into();
        assert_eq!(op.target(Operation::Put).unwrap_err().field, "message.name");
        op.message.kind = "web3".into();
        assert_eq!(op.target(Operation::Put).unwrap_err().field, "message.name");
        op.message.name.clear();
        assert_eq!(
            op.target(Operation::Put).unwrap(),
            Target::Secret(SecretId::web3(wallet.address()))
        );
        op.message.kind = "vault".into();
        assert_eq!(
            op.target(Operation::List).unwrap_err().field,
            "message.kind"
        );
        assert_eq!(
            op.operation(Operation::Delete).unwrap_err().field,
            "message.operation"
        );
    }
}

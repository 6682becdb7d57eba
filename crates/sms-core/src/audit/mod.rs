//! The audit log, pure part (docs/audit.md): what one entry says ([`AuditEvent`]), how it is
//! encoded and hashed ([`AuditEntry::hash`]), the chain link, the Merkle tree over the
//! entries (RFC 6962 hashing: leaf prefix 0x00, node prefix 0x01), inclusion proofs, the
//! payload a signed tree head signs, the whole-log check ([`verify_log`]) and which entries
//! an owner's receipts hold ([`receipts_for`]). No I/O: the store appends, the server signs.
//!
//! An entry never carries a secret value nor a hash of one: secrets are named by identity
//! (namespace, owner, name) and version.

mod merkle;
mod receipts;
mod verify;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use merkle::{Frontier, inclusion_proof, merkle_root, node_hash, verify_inclusion};
pub use receipts::{OwnedAssets, receipts_for, referenced_assets};
pub use verify::{LogError, verify_log};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The `prev` of entry 0.
pub const GENESIS: Hash = [0; 32];

/// Domain separation of an entry's encoding (inside the RFC 6962 leaf).
pub const ENTRY_CONTEXT: &[u8] = b"iexec-sms/audit/entry/v1";
/// Domain separation of a signed tree head's payload.
pub const HEAD_CONTEXT: &[u8] = b"iexec-sms/audit/tree-head/v1";

/// A secret, named by its identity (never its value).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SecretRef {
    /// `web2`, `web3`, `app-developer`, `requester`.
    pub namespace: String,
    /// Lowercase 0x address: the owner for web2/requester, the app or dataset otherwise.
    pub owner: String,
    pub name: String,
}

impl From<&crate::secret::SecretId> for SecretRef {
    fn from(id: &crate::secret::SecretId) -> Self {
        Self {
            namespace: id.kind.as_str().to_owned(),
            owner: id.owner_hex(),
            name: id.name.clone(),
        }
    }
}

/// What happened to a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretAction {
    Created,
    Updated,
    Deleted,
}

/// One security event. Addresses and ids are lowercase 0x hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AuditEvent {
    /// A secret was pushed, updated or deleted (v1 or v2 API).
    #[serde(rename_all = "camelCase")]
    SecretWritten {
        secret: SecretRef,
        action: SecretAction,
        /// Who signed the request.
        signer: String,
        /// The version the secret has now.
        version: i64,
        /// `v1` or `v2`.
        api: String,
    },
    /// A task's enclave challenge was created (its address, never its key).
    #[serde(rename_all = "camelCase")]
    ChallengeIssued {
        task: String,
        challenge: String,
        workerpool: String,
    },
    /// A TEE session was created: what it holds, by identity.
    #[serde(rename_all = "camelCase")]
    SessionCreated {
        task: String,
        deal: String,
        session: String,
        app: String,
        dataset: Option<String>,
        requester: String,
        workerpool: String,
        worker: String,
        /// The secrets put in the session.
        secrets: Vec<SecretRef>,
    },
    /// An enclave received a service's environment.
    #[serde(rename_all = "camelCase")]
    ReleaseGranted {
        task: String,
        session: String,
        service: String,
        worker: String,
        tee: String,
        measurement: String,
        tcb_status: Option<String>,
        advisories: Vec<String>,
        /// 1 for the service's first release.
        release: u32,
    },
    /// A release was refused after its nonce was accepted and its session found.
    #[serde(rename_all = "camelCase")]
    ReleaseRefused {
        task: String,
        session: String,
        service: String,
        worker: String,
        /// The refusal's wire code.
        code: String,
        tee: Option<String>,
        measurement: Option<String>,
        tcb_status: Option<String>,
        advisories: Vec<String>,
    },
    /// An admin API call that changed something (never key material).
    #[serde(rename_all = "camelCase")]
    AdminAction { action: String, detail: String },
}

impl AuditEvent {
    /// The canonical body of the entry: compact JSON, fields in declaration order. The body is
    /// stored and exported as these exact bytes; the hash covers them, not a re-encoding.
    pub fn body(&self) -> String {
        // Serialising these plain structs cannot fail; an empty body would fail verification.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The event's task, for the receipts table.
    pub fn task(&self) -> Option<&str> {
        match self {
            AuditEvent::ChallengeIssued { task, .. }
            | AuditEvent::SessionCreated { task, .. }
            | AuditEvent::ReleaseGranted { task, .. }
            | AuditEvent::ReleaseRefused { task, .. } => Some(task),
            _ => None,
        }
    }

    /// The kind, as in the `type` field.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::SecretWritten { .. } => "secret-written",
            AuditEvent::ChallengeIssued { .. } => "challenge-issued",
            AuditEvent::SessionCreated { .. } => "session-created",
            AuditEvent::ReleaseGranted { .. } => "release-granted",
            AuditEvent::ReleaseRefused { .. } => "release-refused",
            AuditEvent::AdminAction { .. } => "admin-action",
        }
    }
}

/// One entry of the log: position, time, predecessor's hash, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// 0-based position in the log.
    pub index: u64,
    /// Unix seconds when it was appended.
    pub at: u64,
    /// [`AuditEntry::hash`] of entry `index - 1`; [`GENESIS`] for entry 0.
    pub prev: Hash,
    /// [`AuditEvent::body`].
    pub body: String,
}

impl AuditEntry {
    /// `ENTRY_CONTEXT ‖ index (u64 BE) ‖ at (u64 BE) ‖ prev (32) ‖ body (UTF-8)`: everything
    /// before the body has a fixed length, so the encoding is unambiguous.
    pub fn encoding(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENTRY_CONTEXT.len() + 48 + self.body.len());
        out.extend_from_slice(ENTRY_CONTEXT);
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.at.to_be_bytes());
        out.extend_from_slice(&self.prev);
        out.extend_from_slice(self.body.as_bytes());
        out
    }

    /// The RFC 6962 leaf hash `SHA-256(0x00 ‖ encoding)`: both the chain link (the next
    /// entry's `prev`) and the Merkle leaf.
    pub fn hash(&self) -> Hash {
        let mut hasher = Sha256::new();
        hasher.update([0u8]);
        hasher.update(self.encoding());
        hasher.finalize().into()
    }

    /// The entry that follows `prev_entry_hash` at `index`.
    pub fn next(index: u64, at: u64, prev: Hash, event: &AuditEvent) -> Self {
        Self {
            index,
            at,
            prev,
            body: event.body(),
        }
    }

    pub fn event(&self) -> Result<AuditEvent, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

/// What a signed tree head states: the first `size` entries have Merkle root `root`, at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
    /// Unix seconds when it was signed.
    pub at: u64,
}

impl TreeHead {
    /// `HEAD_CONTEXT ‖ size (u64 BE) ‖ root (32) ‖ at (u64 BE)`: the bytes the identity signs.
    pub fn signing_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD_CONTEXT.len() + 48);
        out.extend_from_slice(HEAD_CONTEXT);
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.root);
        out.extend_from_slice(&self.at.to_be_bytes());
        out
    }
}

/// Lowercase hex of a hash (no prefix), as exported.
pub fn hash_hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A hash from 64 hex characters (a 0x prefix is accepted).
pub fn parse_hash(text: &str) -> Option<Hash> {
    let bytes = crate::hex::decode_lenient(text).ok()?;
    bytes.try_into().ok()
}

/// The text an owner signs (EIP-191 over its keccak) to read their receipts: bound to the
/// owner, to this SMS instance (`ServiceDomain::instance`) and to a time.
pub fn receipts_challenge(owner: &str, instance: &str, timestamp: u64) -> String {
    format!(
        "iexec-sms audit receipts\nowner: {}\ninstance: {}\ntimestamp: {timestamp}",
        owner.to_lowercase(),
        instance.to_lowercase()
    )
}

/// The digest signed for [`receipts_challenge`].
pub fn receipts_digest(owner: &str, instance: &str, timestamp: u64) -> crate::B256 {
    crate::hash::keccak_utf8(&receipts_challenge(owner, instance, timestamp))
}

/// How old a receipts request may be, and how far in the future (clock skew).
pub const RECEIPTS_MAX_AGE_SECS: u64 = 300;
pub const RECEIPTS_MAX_SKEW_SECS: u64 = 30;

/// Whether a receipts request signed at `timestamp` is acceptable at `now`.
pub fn receipts_timestamp_fresh(timestamp: u64, now: u64) -> bool {
    timestamp <= now.saturating_add(RECEIPTS_MAX_SKEW_SECS)
        && now.saturating_sub(timestamp) <= RECEIPTS_MAX_AGE_SECS
}

#[cfg(test)]
mod tests;

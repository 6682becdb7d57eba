//! The audit log over HTTP (docs/audit.md): wire types shared with the server, the owner's
//! signed receipts request, the export (JSON lines) and its verification against the SMS
//! identity key. Hashing and proofs are `sms_core::audit`.

use std::path::Path;

use alloy_signer_local::PrivateKeySigner;
use anyhow::Context;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sms_attest::{AnswerSignature, IdentityDocument, SmsPublicKey};
use sms_core::audit::{
    AuditEntry, AuditEvent, Hash, LogError, TreeHead, hash_hex, inclusion_proof, parse_hash,
    receipts_digest, verify_inclusion, verify_log,
};
use sms_core::signature::sign_eip191;

use crate::{ClientError, SmsClient};

/// Most entries or heads one page of `/audit/entries` or `/audit/heads` holds.
pub const MAX_PAGE: u32 = 1000;

/// One entry as served and exported: the body is the exact bytes that were hashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEntry {
    pub index: u64,
    pub at: u64,
    /// Hex of the previous entry's hash.
    pub prev: String,
    /// Hex of this entry's hash, as the log recorded it.
    pub hash: String,
    pub body: String,
}

impl WireEntry {
    pub fn from_parts(entry: &AuditEntry, hash: &Hash) -> Self {
        Self {
            index: entry.index,
            at: entry.at,
            prev: hash_hex(&entry.prev),
            hash: hash_hex(hash),
            body: entry.body.clone(),
        }
    }

    /// The entry and its recorded hash; an error names the field that is not 32 bytes of hex.
    pub fn to_parts(&self) -> Result<(AuditEntry, Hash), String> {
        let field = |name: &str, text: &str| {
            parse_hash(text)
                .ok_or_else(|| format!("entry {}: {name} is not 64 hex characters", self.index))
        };
        Ok((
            AuditEntry {
                index: self.index,
                at: self.at,
                prev: field("prev", &self.prev)?,
                body: self.body.clone(),
            },
            field("hash", &self.hash)?,
        ))
    }
}

/// A signed tree head as served and exported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireHead {
    pub size: u64,
    /// Hex of the Merkle root of the first `size` entries.
    pub root: String,
    pub at: u64,
    /// The identity's signature over [`TreeHead::signing_payload`].
    pub signature: AnswerSignature,
    /// In an export: the inclusion proof of entry `size - 1` under this head (hex hashes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_entry_proof: Option<Vec<String>>,
}

impl WireHead {
    pub fn from_parts(head: &TreeHead, signature: AnswerSignature) -> Self {
        Self {
            size: head.size,
            root: hash_hex(&head.root),
            at: head.at,
            signature,
            last_entry_proof: None,
        }
    }

    pub fn head(&self) -> Result<TreeHead, String> {
        Ok(TreeHead {
            size: self.size,
            root: parse_hash(&self.root)
                .ok_or_else(|| format!("head {}: root is not 64 hex characters", self.size))?,
            at: self.at,
        })
    }

    /// The head, if `key` signed it.
    pub fn verified(&self, key: &SmsPublicKey) -> Result<TreeHead, String> {
        let head = self.head()?;
        key.verify(&self.signature, &head.signing_payload())
            .map_err(|e| format!("head of size {}: {e}", self.size))?;
        Ok(head)
    }
}

/// `GET /audit/entries`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntriesPage {
    /// Entries in the whole log now.
    pub size: u64,
    pub entries: Vec<WireEntry>,
}

/// `GET /audit/heads`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadsPage {
    pub heads: Vec<WireHead>,
}

/// One receipt: an entry that touched the owner's secrets, and its proof under `head`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub entry: WireEntry,
    pub event: AuditEvent,
    /// Inclusion proof under the answer's head; `None` for entries after it (not signed yet).
    pub proof: Option<Vec<String>>,
}

/// `GET /audit/receipts`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptsAnswer {
    pub owner: String,
    /// The latest signed head, which the proofs are against.
    pub head: Option<WireHead>,
    pub receipts: Vec<Receipt>,
}

impl ReceiptsAnswer {
    /// Checks the head's signature and every proof; the number of receipts proven.
    pub fn check(&self, key: &SmsPublicKey) -> Result<usize, String> {
        let Some(head) = &self.head else {
            return Ok(0);
        };
        let head = head.verified(key)?;
        let mut proven = 0;
        for receipt in &self.receipts {
            let Some(path) = &receipt.proof else { continue };
            let (entry, recorded) = receipt.entry.to_parts()?;
            let index = entry.index;
            if entry.hash() != recorded {
                return Err(format!(
                    "receipt {index}: the entry does not hash to its hash"
                ));
            }
            let path = decode_path(path, index)?;
            if !verify_inclusion(&recorded, index, head.size, &path, &head.root) {
                return Err(format!(
                    "receipt {index}: its proof does not lead to the head of size {}",
                    head.size
                ));
            }
            proven += 1;
        }
        Ok(proven)
    }
}

fn decode_path(path: &[String], index: u64) -> Result<Vec<Hash>, String> {
    path.iter()
        .map(|h| parse_hash(h).ok_or_else(|| format!("entry {index}: a proof hash is not hex")))
        .collect()
}

/// One line of an export.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ExportLine {
    /// The identity the heads were signed by, as the SMS published it.
    Identity(IdentityDocument),
    Entry(WireEntry),
    Head(WireHead),
}

/// A whole log: entries in order, heads by size.
#[derive(Clone, Debug, Default)]
pub struct Export {
    pub identity: Option<IdentityDocument>,
    pub entries: Vec<WireEntry>,
    pub heads: Vec<WireHead>,
}

impl Export {
    /// Writes [`Export::to_json_lines`] to `path`.
    pub fn write_json_lines(&self, path: &Path) -> anyhow::Result<()> {
        let text = self.to_json_lines().map_err(anyhow::Error::msg)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// JSON lines: the identity, every entry, every head with the proof of its last entry.
    pub fn to_json_lines(&self) -> Result<String, String> {
        let leaves: Vec<Hash> = self
            .entries
            .iter()
            .map(|e| e.to_parts().map(|(_, h)| h))
            .collect::<Result<_, _>>()?;
        let mut out = String::new();
        let mut push = |line: &ExportLine| -> Result<(), String> {
            out.push_str(&serde_json::to_string(line).map_err(|e| e.to_string())?);
            out.push('\n');
            Ok(())
        };
        if let Some(identity) = &self.identity {
            push(&ExportLine::Identity(identity.clone()))?;
        }
        for entry in &self.entries {
            push(&ExportLine::Entry(entry.clone()))?;
        }
        for head in &self.heads {
            let mut head = head.clone();
            let size = usize::try_from(head.size).unwrap_or(usize::MAX);
            head.last_entry_proof = leaves
                .get(..size)
                .and_then(|prefix| inclusion_proof(prefix, size.checked_sub(1)?))
                .map(|path| path.iter().map(hash_hex).collect());
            push(&ExportLine::Head(head))?;
        }
        Ok(out)
    }

    /// Reads JSON lines; an error names the line.
    pub fn from_json_lines(text: &str) -> Result<Self, String> {
        let mut export = Export::default();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<ExportLine>(line)
                .map_err(|e| format!("line {}: not an audit export line: {e}", n + 1))?
            {
                ExportLine::Identity(identity) => export.identity = Some(identity),
                ExportLine::Entry(entry) => export.entries.push(entry),
                ExportLine::Head(head) => export.heads.push(head),
            }
        }
        Ok(export)
    }
}

/// What a verification found wrong first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The entry named, when the failure is one entry's.
    pub entry: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a verification checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifySummary {
    pub entries: u64,
    pub heads: u64,
    /// The largest size signed.
    pub signed_size: u64,
    pub key_id: String,
}

/// Recomputes the chain and every head's root, and checks every head's signature by `key`
/// and every exported proof.
pub fn verify_export(export: &Export, key: &SmsPublicKey) -> Result<VerifySummary, VerifyFailure> {
    let failure = |entry: Option<u64>, message: String| VerifyFailure { entry, message };
    let mut entries = Vec::with_capacity(export.entries.len());
    for wire in &export.entries {
        let (entry, hash) = wire.to_parts().map_err(|m| failure(Some(wire.index), m))?;
        entries.push((entry, Some(hash)));
    }
    let mut heads = Vec::with_capacity(export.heads.len());
    for wire in &export.heads {
        heads.push(wire.verified(key).map_err(|m| failure(None, m))?);
    }
    let leaves =
        verify_log(&entries, &heads).map_err(|e: LogError| failure(e.entry(), e.to_string()))?;
    for wire in &export.heads {
        let (Some(path), Some(last)) = (&wire.last_entry_proof, wire.size.checked_sub(1)) else {
            continue;
        };
        let head = wire.head().map_err(|m| failure(None, m))?;
        let path = decode_path(path, last).map_err(|m| failure(Some(last), m))?;
        let leaf = leaves.get(last as usize).copied().unwrap_or_default();
        if !verify_inclusion(&leaf, last, head.size, &path, &head.root) {
            return Err(failure(
                Some(last),
                format!(
                    "the proof of entry {last} under the head of size {} fails",
                    head.size
                ),
            ));
        }
    }
    Ok(VerifySummary {
        entries: entries.len() as u64,
        heads: heads.len() as u64,
        signed_size: heads.iter().map(|h| h.size).max().unwrap_or(0),
        key_id: key.key_id(),
    })
}

/// The `Authorization` of a receipts request: the owner's EIP-191 signature of
/// [`sms_core::audit::receipts_challenge`].
pub fn sign_receipts_request(signer: &PrivateKeySigner, instance: &str, timestamp: u64) -> String {
    let owner = sms_core::hex::encode_prefixed(signer.address());
    sign_eip191(signer, &receipts_digest(&owner, instance, timestamp)).to_hex()
}

impl SmsClient {
    async fn audit_get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        authorization: Option<String>,
    ) -> Result<T, ClientError> {
        let mut request = self.http.get(format!("{}{path}", self.base)).query(query);
        if let Some(auth) = authorization {
            request = request.header("Authorization", auth);
        }
        let (status, body) = self.exchange(request).await?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()));
        }
        Err(ClientError::Unexpected {
            status,
            reason: crate::reason_of(&body).or_else(|| {
                (status == StatusCode::NOT_FOUND)
                    .then(|| "this SMS does not serve the audit log (/audit/*)".to_owned())
            }),
        })
    }

    /// `GET /audit/entries?from=&limit=`.
    pub async fn audit_entries(&self, from: u64, limit: u32) -> Result<EntriesPage, ClientError> {
        self.audit_get(
            "/audit/entries",
            &[("from", from.to_string()), ("limit", limit.to_string())],
            None,
        )
        .await
    }

    /// `GET /audit/heads?from=&limit=` (from a size).
    pub async fn audit_heads(&self, from: u64, limit: u32) -> Result<HeadsPage, ClientError> {
        self.audit_get(
            "/audit/heads",
            &[("from", from.to_string()), ("limit", limit.to_string())],
            None,
        )
        .await
    }

    /// The whole log, page by page, with the identity the SMS publishes.
    pub async fn audit_export(&self) -> Result<Export, ClientError> {
        let identity = self
            .provision_identity()
            .await
            .map_err(|e| ClientError::Decode(format!("identity: {e}")))?;
        let mut export = Export {
            identity: Some(identity),
            ..Export::default()
        };
        loop {
            // From after the last entry read, not from the count: a log with a gap pages on.
            let from = export.entries.last().map_or(0, |e| e.index + 1);
            let page = self.audit_entries(from, MAX_PAGE).await?;
            if page.entries.is_empty() {
                break;
            }
            export.entries.extend(page.entries);
        }
        loop {
            let from = export.heads.last().map_or(0, |h| h.size + 1);
            let page = self.audit_heads(from, MAX_PAGE).await?;
            if page.heads.is_empty() {
                break;
            }
            export.heads.extend(page.heads);
        }
        Ok(export)
    }

    /// The owner's receipts, signed now for this SMS instance (`GET /v2/domain`).
    pub async fn audit_receipts(
        &self,
        signer: &PrivateKeySigner,
    ) -> Result<ReceiptsAnswer, ClientError> {
        let instance = sms_core::hex::encode_prefixed(self.v2_domain().await?.instance);
        let timestamp = sms_core::clock::unix_now();
        self.audit_receipts_signed(
            signer.address(),
            timestamp,
            sign_receipts_request(signer, &instance, timestamp),
        )
        .await
    }

    /// A receipts request with a signature made elsewhere.
    pub async fn audit_receipts_signed(
        &self,
        owner: sms_core::Address,
        timestamp: u64,
        signature: String,
    ) -> Result<ReceiptsAnswer, ClientError> {
        self.audit_get(
            "/audit/receipts",
            &[
                ("owner", sms_core::hex::encode_prefixed(owner)),
                ("timestamp", timestamp.to_string()),
            ],
            Some(signature),
        )
        .await
    }
}

/// A log to verify (`sms audit verify`): an export file or the SMS's live log, and the key
/// its heads are checked against.
pub struct LoadedLog {
    pub export: Export,
    pub key: SmsPublicKey,
    /// The file or the SMS URL, as the messages name it.
    pub source: String,
    /// Printed before the verification: the key came from the export itself.
    pub note: Option<String>,
}

impl LoadedLog {
    /// An export file, checked against `pinned`, or else the key the export names.
    pub fn from_file(path: &Path, pinned: Option<SmsPublicKey>) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let export = Export::from_json_lines(&text).map_err(anyhow::Error::msg)?;
        let (key, note) = match (pinned, &export.identity) {
            (Some(key), _) => (key, None),
            (None, Some(document)) => (
                SmsPublicKey::from_base64(&document.public_key)?,
                Some(format!(
                    "note: checking heads against the key named in the export itself ({}); pin it with --identity",
                    document.key_id
                )),
            ),
            (None, None) => anyhow::bail!(
                "{} names no identity: give --identity <base64 public key>",
                path.display()
            ),
        };
        Ok(Self {
            export,
            key,
            source: path.display().to_string(),
            note,
        })
    }

    /// The SMS's live log, checked against the key it publishes (which must be `pinned`).
    pub async fn from_sms(
        client: &SmsClient,
        pinned: Option<SmsPublicKey>,
    ) -> anyhow::Result<Self> {
        let export = client.audit_export().await?;
        let published = client.published_key().await?;
        if let Some(pinned) = pinned
            && pinned != published
        {
            anyhow::bail!(
                "the SMS publishes key {}, not the pinned {}",
                published.key_id(),
                pinned.key_id()
            );
        }
        Ok(Self {
            export,
            key: published,
            source: client.url().to_owned(),
            note: None,
        })
    }

    /// [`verify_export`], the failure naming the source.
    pub fn verify(&self) -> anyhow::Result<VerifySummary> {
        verify_export(&self.export, &self.key).map_err(|failure| {
            anyhow::anyhow!("audit log of {} fails verification: {failure}", self.source)
        })
    }
}

impl SmsClient {
    /// The owner's receipts, checked under the key the SMS publishes; with how many are proven.
    pub async fn proven_receipts(
        &self,
        signer: &PrivateKeySigner,
    ) -> anyhow::Result<(ReceiptsAnswer, usize)> {
        let answer = self.audit_receipts(signer).await?;
        let key = self.published_key().await?;
        let proven = answer.check(&key).map_err(anyhow::Error::msg)?;
        Ok((answer, proven))
    }

    /// The identity key the SMS publishes (`/tee/provisioning/identity`).
    pub async fn published_key(&self) -> anyhow::Result<SmsPublicKey> {
        let document = self
            .provision_identity()
            .await
            .context("cannot read the SMS identity (/tee/provisioning/identity)")?;
        Ok(SmsPublicKey::from_base64(&document.public_key)?)
    }
}

fn outcome(event: &AuditEvent) -> String {
    match event {
        AuditEvent::ReleaseGranted { release, .. } => format!("granted (release {release})"),
        AuditEvent::ReleaseRefused { code, .. } => format!("refused ({code})"),
        AuditEvent::SecretWritten {
            action, version, ..
        } => format!("{action:?} v{version}").to_lowercase(),
        AuditEvent::SessionCreated { secrets, .. } => format!("{} secrets", secrets.len()),
        AuditEvent::ChallengeIssued { .. } | AuditEvent::AdminAction { .. } => "-".into(),
    }
}

fn row(receipt: &Receipt) -> [String; 7] {
    let e = &receipt.event;
    let (worker, measurement) = match e {
        AuditEvent::ReleaseGranted {
            worker,
            measurement,
            service,
            ..
        } => (worker.clone(), format!("{service} {measurement}")),
        AuditEvent::ReleaseRefused {
            worker,
            measurement,
            service,
            ..
        } => (
            worker.clone(),
            format!("{service} {}", measurement.as_deref().unwrap_or("-")),
        ),
        AuditEvent::SessionCreated { worker, .. } => (worker.clone(), "-".into()),
        AuditEvent::SecretWritten { secret, .. } => (
            "-".into(),
            format!("{}/{}/{}", secret.namespace, secret.owner, secret.name),
        ),
        _ => ("-".into(), "-".into()),
    };
    [
        sms_core::clock::utc(i64::try_from(receipt.entry.at).unwrap_or(i64::MAX)),
        e.kind().to_owned(),
        e.task().unwrap_or("-").to_owned(),
        worker,
        measurement,
        outcome(e),
        if receipt.proof.is_some() {
            "yes".into()
        } else {
            "pending".into()
        },
    ]
}

impl ReceiptsAnswer {
    /// The table `sms audit receipts` prints: a heading line, then one row per receipt.
    pub fn table(&self, proven: usize) -> String {
        let answer = self;
        let mut rows = vec![[
            "WHEN (UTC)".to_owned(),
            "EVENT".into(),
            "TASK".into(),
            "WORKER".into(),
            "ENCLAVE MEASUREMENT / SECRET".into(),
            "OUTCOME".into(),
            "PROVEN".into(),
        ]];
        rows.extend(answer.receipts.iter().map(row));
        let widths: Vec<usize> = (0..7)
            .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
            .collect();
        let mut text = format!(
            "{} receipts for {} ({proven} proven under the head of size {})\n",
            answer.receipts.len(),
            answer.owner,
            answer.head.as_ref().map_or(0, |h| h.size)
        );
        for r in &rows {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            text.push_str(cells.join("  ").trim_end());
            text.push('\n');
        }
        text.trim_end().to_owned()
    }
}

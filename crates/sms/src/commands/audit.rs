//! `sms audit`: check the SMS's audit log, export it, and read an owner's receipts
//! (docs/audit.md).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use sms_attest::SmsPublicKey;
use sms_client::audit::{Export, Receipt, ReceiptsAnswer, verify_export};
use sms_core::audit::AuditEvent;

use crate::commands::common::{SmsArgs, WalletArgs, utc};
use crate::output::Output;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain and every signed tree head's Merkle root, and check each
    /// head's signature by the SMS identity; names the first bad entry (non-zero exit).
    ///
    /// Examples:
    ///   sms audit verify --sms-url https://sms.example
    ///   sms audit verify --from audit.jsonl --identity <base64 public key>
    Verify {
        /// An export (`sms audit export`) instead of the SMS's live log.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// The SMS public key to check heads against (base64, as `/tee/provisioning/identity`
        /// publishes it). Default: the SMS's published key, or for --from the export's own.
        #[arg(long, value_name = "BASE64")]
        identity: Option<String>,
        #[command(flatten)]
        sms: SmsArgs,
    },
    /// Write the whole log as JSON lines: the identity, the entries, the signed heads with
    /// the inclusion proof of each head's last entry.
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        sms: SmsArgs,
    },
    /// Every event that touched your secrets (requester secrets; the app secret and dataset
    /// key of the apps and datasets you own), each proven under the latest signed head.
    Receipts {
        #[command(flatten)]
        wallet: WalletArgs,
        #[command(flatten)]
        sms: SmsArgs,
    },
}

pub async fn run(cmd: AuditCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify {
            from,
            identity,
            sms,
        } => verify(from, identity, &sms, out).await,
        AuditCommand::Export { out: file, sms } => {
            let export = sms.client()?.audit_export().await?;
            let text = export.to_json_lines().map_err(anyhow::Error::msg)?;
            std::fs::write(&file, text)
                .with_context(|| format!("cannot write {}", file.display()))?;
            out.done(
                format!(
                    "{} entries and {} signed heads written to {}",
                    export.entries.len(),
                    export.heads.len(),
                    file.display()
                ),
                json!({
                    "ok": true,
                    "entries": export.entries.len(),
                    "heads": export.heads.len(),
                    "out": file.display().to_string(),
                }),
            );
            Ok(())
        }
        AuditCommand::Receipts { wallet, sms } => {
            let signer = wallet.signer()?;
            let client = sms.client()?;
            let answer = client.audit_receipts(&signer).await?;
            let key = published_key(&client).await?;
            let proven = answer.check(&key).map_err(anyhow::Error::msg)?;
            out.done(
                receipts_table(&answer, proven),
                json!({
                    "ok": true,
                    "owner": answer.owner,
                    "proven": proven,
                    "head": answer.head,
                    "receipts": answer.receipts,
                }),
            );
            Ok(())
        }
    }
}

async fn published_key(client: &sms_client::SmsClient) -> anyhow::Result<SmsPublicKey> {
    let document = client
        .provision_identity()
        .await
        .context("cannot read the SMS identity (/tee/provisioning/identity)")?;
    Ok(SmsPublicKey::from_base64(&document.public_key)?)
}

async fn verify(
    from: Option<PathBuf>,
    identity: Option<String>,
    sms: &SmsArgs,
    out: &Output,
) -> anyhow::Result<()> {
    let pinned = identity
        .as_deref()
        .map(SmsPublicKey::from_base64)
        .transpose()
        .context("--identity")?;
    let (export, key, source) = match from {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let export = Export::from_json_lines(&text).map_err(anyhow::Error::msg)?;
            let key = match (pinned, &export.identity) {
                (Some(key), _) => key,
                (None, Some(document)) => {
                    eprintln!(
                        "note: checking heads against the key named in the export itself ({}); pin it with --identity",
                        document.key_id
                    );
                    SmsPublicKey::from_base64(&document.public_key)?
                }
                (None, None) => anyhow::bail!(
                    "{} names no identity: give --identity <base64 public key>",
                    path.display()
                ),
            };
            (export, key, path.display().to_string())
        }
        None => {
            let client = sms.client()?;
            let export = client.audit_export().await?;
            let published = published_key(&client).await?;
            if let Some(pinned) = pinned
                && pinned != published
            {
                anyhow::bail!(
                    "the SMS publishes key {}, not the pinned {}",
                    published.key_id(),
                    pinned.key_id()
                );
            }
            (export, published, client.url().to_owned())
        }
    };
    let summary = verify_export(&export, &key).map_err(|failure| {
        anyhow::anyhow!("audit log of {source} fails verification: {failure}")
    })?;
    out.done(
        format!(
            "audit log of {source}: {} entries, {} signed heads (largest {}) by key {}: valid",
            summary.entries, summary.heads, summary.signed_size, summary.key_id
        ),
        json!({ "ok": true, "source": source, "summary": summary }),
    );
    Ok(())
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
        utc(i64::try_from(receipt.entry.at).unwrap_or(i64::MAX)),
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

fn receipts_table(answer: &ReceiptsAnswer, proven: usize) -> String {
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

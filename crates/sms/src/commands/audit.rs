//! `sms audit`: check the SMS's audit log, export it, and read an owner's receipts
//! (docs/audit.md).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use sms_attest::SmsPublicKey;
use sms_client::audit::LoadedLog;

use crate::commands::common::{SmsArgs, WalletArgs};
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
            export.write_json_lines(&file)?;
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
            let (answer, proven) = sms.client()?.proven_receipts(&signer).await?;
            out.done(
                answer.table(proven),
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
    let log = match from {
        Some(path) => LoadedLog::from_file(&path, pinned)?,
        None => LoadedLog::from_sms(&sms.client()?, pinned).await?,
    };
    if let Some(note) = &log.note {
        eprintln!("{note}");
    }
    let summary = log.verify()?;
    let source = log.source;
    out.done(
        format!(
            "audit log of {source}: {} entries, {} signed heads (largest {}) by key {}: valid",
            summary.entries, summary.heads, summary.signed_size, summary.key_id
        ),
        json!({ "ok": true, "source": source, "summary": summary }),
    );
    Ok(())
}

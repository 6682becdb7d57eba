//! `sms secret put|delete|list|show`: the secrets API v2 (EIP-712 signed, replay-proof,
//! versioned). The SDK-shaped commands (`sms app|requester|dataset|result ...`) keep using the
//! iExec API; both reach the same stored secrets.

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use sms_client::ClientError;
use sms_client::v2::SecretRef;
use sms_core::Address;
use sms_core::secret::SecretKind;
use sms_core::secret_operation::{SecretMetadata, SecretVersion};

use crate::commands::common::{Signed, secret_value};
use crate::output::Output;
use sms_core::clock::utc;

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Create or replace a secret. Without --expected-version it only creates: an existing
    /// secret is never overwritten by accident.
    ///
    /// Examples:
    ///   sms secret put requester my-api-key --value s3cr3t
    ///   sms secret put requester my-api-key --value n3w --expected-version 1
    ///   sms secret put app 0xAPP... < app-secret.txt
    Put {
        #[command(flatten)]
        target: Target,
        /// The value (read from standard input, or prompted for, when absent).
        #[arg(long)]
        value: Option<String>,
        /// The version being replaced (see `sms secret show`); 0 = create only.
        #[arg(long, default_value_t = 0)]
        expected_version: u64,
        #[command(flatten)]
        signed: Signed,
    },
    /// Delete a secret: releases stop at once; the name can be created again later.
    Delete {
        #[command(flatten)]
        target: Target,
        /// Delete only if the secret is still at this version (0 = whatever its version).
        #[arg(long, default_value_t = 0)]
        expected_version: u64,
        #[command(flatten)]
        signed: Signed,
    },
    /// Version, creation and update times and key id of a secret (never its value).
    Show {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        signed: Signed,
    },
    /// Names and versions of your secrets (never values). Without a kind: your requester and
    /// web2 secrets; `app <address>` or `dataset <address>` for an app or dataset you own.
    List {
        kind: Option<Kind>,
        /// The app or dataset address (for `app` and `dataset`).
        address: Option<String>,
        #[command(flatten)]
        signed: Signed,
    },
}

/// Which secret: a kind and its name (requester, web2) or address (app, dataset).
#[derive(Args)]
pub struct Target {
    kind: Kind,
    /// The secret name (requester, web2) or the app or dataset address (app, dataset).
    id: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    /// A named requester secret (IEXEC_REQUESTER_SECRET_<n>).
    Requester,
    /// An owner-named web2 secret (e.g. iexec-result-encryption-public-key).
    Web2,
    /// The app developer secret of an app you own.
    App,
    /// The encryption key of a dataset you own.
    Dataset,
}

impl Kind {
    fn secret_kind(self) -> SecretKind {
        match self {
            Kind::Requester => SecretKind::Requester,
            Kind::Web2 => SecretKind::Web2,
            Kind::App => SecretKind::AppDeveloper,
            Kind::Dataset => SecretKind::Web3,
        }
    }
}

impl Target {
    fn resolve(&self, signer: Address) -> anyhow::Result<SecretRef> {
        let kind = self.kind.secret_kind();
        Ok(match self.kind {
            Kind::Requester | Kind::Web2 => SecretRef {
                kind,
                owner: signer,
                name: self.id.clone(),
            },
            Kind::App | Kind::Dataset => SecretRef {
                kind,
                owner: sms_core::secret::parse_address(&self.id)?,
                name: String::new(),
            },
        })
    }
}

pub async fn run(cmd: SecretCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        SecretCommand::Put {
            target,
            value,
            expected_version,
            signed,
        } => {
            let signer = signed.wallet.signer()?;
            let secret = target.resolve(signer.address())?;
            let value = secret_value(value)?;
            let written = signed
                .sms
                .client()?
                .v2_put(&signer, &secret, &value, expected_version)
                .await
                .map_err(explain)?;
            written_out(out, "written", &written);
        }
        SecretCommand::Delete {
            target,
            expected_version,
            signed,
        } => {
            let signer = signed.wallet.signer()?;
            let secret = target.resolve(signer.address())?;
            let deleted = signed
                .sms
                .client()?
                .v2_delete(&signer, &secret, expected_version)
                .await
                .map_err(explain)?;
            written_out(out, "deleted", &deleted);
        }
        SecretCommand::Show { target, signed } => {
            let signer = signed.wallet.signer()?;
            let secret = target.resolve(signer.address())?;
            let meta = signed
                .sms
                .client()?
                .v2_show(&signer, &secret)
                .await
                .map_err(explain)?;
            out.done(table(std::slice::from_ref(&meta)), json!(meta));
        }
        SecretCommand::List {
            kind,
            address,
            signed,
        } => {
            let signer = signed.wallet.signer()?;
            let client = signed.sms.client()?;
            let lists: Vec<(SecretKind, Address)> = match (kind, address) {
                (None, None) => vec![
                    (SecretKind::Requester, signer.address()),
                    (SecretKind::Web2, signer.address()),
                ],
                (Some(k @ (Kind::Requester | Kind::Web2)), None) => {
                    vec![(k.secret_kind(), signer.address())]
                }
                (Some(Kind::Requester | Kind::Web2), Some(_)) => bail!(
                    "requester and web2 secrets are listed for your own wallet: drop the address"
                ),
                (Some(k @ (Kind::App | Kind::Dataset)), Some(a)) => {
                    vec![(k.secret_kind(), sms_core::secret::parse_address(&a)?)]
                }
                (Some(Kind::App | Kind::Dataset), None) => {
                    bail!("give the app or dataset address: sms secret list app 0x...")
                }
                (None, Some(_)) => bail!("give the kind before the address"),
            };
            let mut all: Vec<SecretMetadata> = Vec::new();
            for (kind, owner) in lists {
                let list = client
                    .v2_list(&signer, kind, owner)
                    .await
                    .map_err(explain)?;
                all.extend(list.secrets);
            }
            let human = if all.is_empty() {
                "No secrets".to_owned()
            } else {
                table(&all)
            };
            out.done(human, json!({ "secrets": all }));
        }
    }
    Ok(())
}

fn written_out(out: &Output, what: &str, v: &SecretVersion) {
    let name = if v.name.is_empty() {
        format!("{} of {}", v.kind, v.owner)
    } else {
        format!("{} '{}' of {}", v.kind, v.name, v.owner)
    };
    out.done(
        format!("Secret {name} {what}: version {}", v.version),
        json!(v),
    );
}

/// One line per secret: kind, name, version, updated (UTC), key id.
fn table(rows: &[SecretMetadata]) -> String {
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
            utc(m.updated_at),
            m.key_id
        ));
    }
    text
}

/// A refusal as the CLI user should read it: the server's code and message, and for a
/// version conflict the flag to pass.
fn explain(error: ClientError) -> anyhow::Error {
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

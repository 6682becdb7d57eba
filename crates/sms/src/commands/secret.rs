//! `sms secret put|delete|list|show`: the secrets API v2 (EIP-712 signed, replay-proof,
//! versioned). The SDK-shaped commands (`sms app|requester|dataset|result ...`) keep using the
//! iExec API; both reach the same stored secrets.

use alloy_signer_local::PrivateKeySigner;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use sms_client::v2::{SecretRef, list_targets, metadata_table, with_version_hint};
use sms_core::secret::SecretKind;
use sms_core::secret_operation::SecretVersion;

use crate::commands::common::{Signed, secret_value};
use crate::output::Output;

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
    /// The wallet's signer and the secret it names.
    fn signed(&self, signed: &Signed) -> anyhow::Result<(PrivateKeySigner, SecretRef)> {
        let signer = signed.wallet.signer()?;
        let secret = SecretRef::resolve(self.kind.secret_kind(), signer.address(), &self.id)?;
        Ok((signer, secret))
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
            let (signer, secret) = target.signed(&signed)?;
            let value = secret_value(value)?;
            let written = signed
                .sms
                .client()?
                .v2_put(&signer, &secret, &value, expected_version)
                .await
                .map_err(with_version_hint)?;
            written_out(out, "written", &written);
        }
        SecretCommand::Delete {
            target,
            expected_version,
            signed,
        } => {
            let (signer, secret) = target.signed(&signed)?;
            let deleted = signed
                .sms
                .client()?
                .v2_delete(&signer, &secret, expected_version)
                .await
                .map_err(with_version_hint)?;
            written_out(out, "deleted", &deleted);
        }
        SecretCommand::Show { target, signed } => {
            let (signer, secret) = target.signed(&signed)?;
            let meta = signed
                .sms
                .client()?
                .v2_show(&signer, &secret)
                .await
                .map_err(with_version_hint)?;
            out.done(metadata_table(std::slice::from_ref(&meta)), json!(meta));
        }
        SecretCommand::List {
            kind,
            address,
            signed,
        } => {
            let signer = signed.wallet.signer()?;
            let client = signed.sms.client()?;
            let kind = kind.map(Kind::secret_kind);
            let lists = list_targets(kind, address.as_deref(), signer.address())?;
            let all = client
                .v2_list_all(&signer, &lists)
                .await
                .map_err(with_version_hint)?;
            let human = if all.is_empty() {
                "No secrets".to_owned()
            } else {
                metadata_table(&all)
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

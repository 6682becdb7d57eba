//! Dev ledger commands (the server must run with `--dev`).

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::SmsArgs;
use crate::output::Output;

#[derive(Subcommand)]
pub enum DevCommand {
    /// Apps of the dev ledger.
    #[command(subcommand)]
    App(DevAppCommand),
    /// Datasets of the dev ledger.
    #[command(subcommand)]
    Dataset(DevDatasetCommand),
    /// Workerpools of the dev ledger.
    #[command(subcommand)]
    Workerpool(DevWorkerpoolCommand),
    /// Transfer an app, dataset or workerpool to a new owner (like the ERC-721 transfer).
    Transfer {
        /// Entry address.
        entry: String,
        /// New owner.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        sms: SmsArgs,
    },
}

#[derive(Args)]
pub struct Owned {
    /// Owner address.
    #[arg(long)]
    owner: String,
    #[command(flatten)]
    sms: SmsArgs,
}

#[derive(Subcommand)]
pub enum DevAppCommand {
    /// Register an app; prints its address.
    Deploy {
        #[command(flatten)]
        owned: Owned,
        #[arg(long, default_value = "")]
        name: String,
        /// Enclave configuration JSON, e.g. '{"framework":"SCONE","version":"v5","entrypoint":"node /app/app.js","heapSize":1073741824,"fingerprint":"<64 hex>"}'.
        #[arg(long, default_value = "")]
        mrenclave: String,
        /// Docker image or other multiaddr.
        #[arg(long, default_value = "")]
        multiaddr: String,
        /// 0x-prefixed bytes32 checksum.
        #[arg(long)]
        checksum: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum DevDatasetCommand {
    /// Register a dataset; prints its address.
    Deploy {
        #[command(flatten)]
        owned: Owned,
        #[arg(long, default_value = "")]
        name: String,
        /// Where the encrypted dataset is (URL, file path, /ipfs/…).
        #[arg(long, default_value = "")]
        multiaddr: String,
        /// 0x + sha256 of the encrypted file (`sms dataset encrypt` prints it).
        #[arg(long)]
        checksum: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum DevWorkerpoolCommand {
    /// Register a workerpool; prints its address.
    Deploy {
        #[command(flatten)]
        owned: Owned,
        #[arg(long, default_value = "")]
        description: String,
    },
}

async fn deploy(sms: &SmsArgs, path: &str, body: Value, what: &str, out: &Output) -> anyhow::Result<()> {
    let answer: Value = sms.client()?.post_json(path, &body).await?;
    let address = answer
        .get("address")
        .and_then(Value::as_str)
        .and_then(|a| sms_core::secret::parse_address(a).ok())
        .ok_or_else(|| anyhow::anyhow!("the SMS answered without an address: {answer}"))?
        .to_string();
    out.done(format!("Deployed new {what} at address {address}"), json!({ "address": address }));
    Ok(())
}

fn with_checksum(mut body: Value, checksum: Option<String>) -> Value {
    if let Some(c) = checksum {
        body["checksum"] = json!(c);
    }
    body
}

pub async fn run(cmd: DevCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        DevCommand::App(DevAppCommand::Deploy { owned, name, mrenclave, multiaddr, checksum }) => {
            let body = json!({ "owner": owned.owner, "name": name, "mrenclave": mrenclave, "multiaddr": multiaddr });
            deploy(&owned.sms, "/dev/apps", with_checksum(body, checksum), "app", out).await
        }
        DevCommand::Dataset(DevDatasetCommand::Deploy { owned, name, multiaddr, checksum }) => {
            let body = json!({ "owner": owned.owner, "name": name, "multiaddr": multiaddr });
            deploy(&owned.sms, "/dev/datasets", with_checksum(body, checksum), "dataset", out).await
        }
        DevCommand::Workerpool(DevWorkerpoolCommand::Deploy { owned, description }) => {
            let body = json!({ "owner": owned.owner, "description": description });
            deploy(&owned.sms, "/dev/workerpools", body, "workerpool", out).await
        }
        DevCommand::Transfer { entry, to, sms } => {
            let answer: Value = sms.client()?.post_json("/dev/transfer", &json!({ "entry": entry, "to": to })).await?;
            let kind = answer.get("kind").and_then(Value::as_str).unwrap_or("entry");
            out.done(format!("Transferred {kind} {entry} to {to}"), answer);
            Ok(())
        }
    }
}

//! Secret commands, mirroring `iexec app|requester|dataset|result push-secret/check-secret`.

pub mod app_run;
pub mod dataset_files;
pub mod result_files;

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;
use sms_client::result_proxy;
use sms_core::secret::{
    RESULT_DROPBOX_TOKEN, RESULT_ENCRYPTION_PUBLIC_KEY, RESULT_IPFS_TOKEN, parse_address,
};

use crate::commands::common::{Signed, SmsArgs, WalletArgs, address_or_wallet, secret_value};
use crate::output::Output;

fn pushed(out: &Output) {
    out.done("Secret successfully pushed", json!({ "isPushed": true }));
}

fn checked(out: &Output, exists: bool, what: String) {
    let human = if exists {
        format!("Secret exists for {what}")
    } else {
        format!("No secret found for {what}")
    };
    out.done(human, json!({ "isSecretSet": exists }));
}

// ---- app ----

#[derive(Subcommand)]
pub enum AppCommand {
    /// Run a confidential app end to end with the local worker (like `iexec app run`).
    Run(Box<app_run::RunArgs>),
    /// Push the app developer secret (once; it cannot be updated). Signed by the app owner.
    PushSecret {
        /// App address.
        app: String,
        /// The secret (prompted for, or read from standard input, when absent).
        #[arg(long)]
        secret_value: Option<String>,
        #[command(flatten)]
        signed: Signed,
    },
    /// Check whether the app has a developer secret.
    CheckSecret {
        app: String,
        #[command(flatten)]
        sms: SmsArgs,
    },
}

pub async fn run_app(cmd: AppCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        AppCommand::Run(args) => app_run::run(*args, out).await?,
        AppCommand::PushSecret {
            app,
            secret_value: value,
            signed,
        } => {
            let app = parse_address(&app)?;
            let (client, signer) = signed.connect()?;
            let value = secret_value(value)?;
            client.push_app_secret(&signer, app, &value).await?;
            pushed(out);
        }
        AppCommand::CheckSecret { app, sms } => {
            let app = parse_address(&app)?;
            let exists = sms.client()?.app_secret_exists(app).await?;
            checked(out, exists, format!("app {app}"));
        }
    }
    Ok(())
}

// ---- requester ----

#[derive(Subcommand)]
pub enum RequesterCommand {
    /// Push a named requester secret (once; names are case-sensitive, [A-Za-z0-9_-]{1,64}).
    PushSecret {
        /// Secret name, used in `--secret <n>=<name>` when running an app.
        name: String,
        #[arg(long)]
        secret_value: Option<String>,
        #[command(flatten)]
        signed: Signed,
    },
    /// Check whether a requester secret exists (default requester: your wallet).
    CheckSecret {
        name: String,
        /// Requester address (default: the wallet's address).
        address: Option<String>,
        #[command(flatten)]
        sms: SmsArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
}

pub async fn run_requester(cmd: RequesterCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        RequesterCommand::PushSecret {
            name,
            secret_value: value,
            signed,
        } => {
            sms_core::secret::RequesterSecretName::parse(&name)?;
            let (client, signer) = signed.connect()?;
            let value = secret_value(value)?;
            client.push_requester_secret(&signer, &name, &value).await?;
            pushed(out);
        }
        RequesterCommand::CheckSecret {
            name,
            address,
            sms,
            wallet,
        } => {
            sms_core::secret::RequesterSecretName::parse(&name)?;
            let requester = address_or_wallet(address.as_deref(), &wallet)?;
            let exists = sms
                .client()?
                .requester_secret_exists(requester, &name)
                .await?;
            checked(
                out,
                exists,
                format!("requester {requester} and name \"{name}\""),
            );
        }
    }
    Ok(())
}

// ---- dataset ----

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Encrypt files in the iExec dataset format (one new key per file).
    Encrypt(dataset_files::EncryptArgs),
    /// Decrypt a file encrypted by `sms dataset encrypt` (or the iExec SDK).
    Decrypt(dataset_files::DecryptArgs),
    /// Push the encryption key of a dataset (once). Signed by the dataset owner.
    PushSecret {
        dataset: String,
        /// File holding the base64 key (trimmed).
        #[arg(long, default_value = ".secrets/datasets/dataset.key")]
        secret_path: PathBuf,
        #[command(flatten)]
        signed: Signed,
    },
    /// Check whether a dataset has its key in the SMS.
    CheckSecret {
        dataset: String,
        #[command(flatten)]
        sms: SmsArgs,
    },
}

pub async fn run_dataset(cmd: DatasetCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        DatasetCommand::Encrypt(args) => dataset_files::encrypt(args, out)?,
        DatasetCommand::Decrypt(args) => dataset_files::decrypt(args, out)?,
        DatasetCommand::PushSecret {
            dataset,
            secret_path,
            signed,
        } => {
            let dataset = parse_address(&dataset)?;
            let key = sms_worker::files::read_dataset_key_file(&secret_path)?;
            let (client, signer) = signed.connect()?;
            client.push_dataset_secret(&signer, dataset, &key).await?;
            pushed(out);
        }
        DatasetCommand::CheckSecret { dataset, sms } => {
            let dataset = parse_address(&dataset)?;
            let exists = sms.client()?.dataset_secret_exists(dataset).await?;
            checked(out, exists, format!("dataset {dataset}"));
        }
    }
    Ok(())
}

// ---- result storage (iexec storage init|check) ----

/// Where results are stored; each provider's token is a reserved web2 secret.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum StorageProvider {
    /// The iExec result proxy (IPFS): a token the result proxy issues.
    Ipfs,
    /// Dropbox: an access token of your Dropbox app.
    Dropbox,
}

impl StorageProvider {
    fn secret_name(self) -> &'static str {
        match self {
            StorageProvider::Ipfs => RESULT_IPFS_TOKEN,
            StorageProvider::Dropbox => RESULT_DROPBOX_TOKEN,
        }
    }
}

#[derive(Subcommand)]
pub enum StorageCommand {
    /// Push your result storage token (like `iexec storage init`).
    Init {
        #[arg(long, value_enum, default_value = "ipfs")]
        provider: StorageProvider,
        /// The token. Dropbox: prompted for, or read from standard input, when absent. Ipfs:
        /// when absent, `sms` logs in to the result proxy with your wallet (it signs the proxy's
        /// EIP-712 challenge, nothing else) and pushes the token the proxy issues, as
        /// `iexec storage init` does.
        #[arg(long)]
        token: Option<String>,
        /// Result proxy to log in to (ipfs without --token). Default: iExec's result proxy of
        /// the chain, known for bellecour (134) only.
        #[arg(long, env = "IEXEC_RESULT_PROXY_URL")]
        result_proxy_url: Option<String>,
        /// Chain id the result proxy login is signed for. Default: the SMS's chain
        /// (`GET /v2/domain`).
        #[arg(long, env = "IEXEC_CHAIN_ID")]
        chain_id: Option<u64>,
        /// Replace the token if one is already set.
        #[arg(long)]
        force_update: bool,
        #[command(flatten)]
        signed: Signed,
    },
    /// Check whether a result storage token is set (default: your wallet).
    Check {
        #[arg(long, value_enum, default_value = "ipfs")]
        provider: StorageProvider,
        /// Owner address (default: the wallet's address).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        sms: SmsArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
}

pub async fn run_storage(cmd: StorageCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        StorageCommand::Init {
            provider,
            token,
            result_proxy_url,
            chain_id,
            force_update,
            signed,
        } => {
            let (client, signer) = signed.connect()?;
            let token = match (provider, token) {
                (StorageProvider::Ipfs, None) => {
                    result_proxy::token_for(&client, &signer, result_proxy_url, chain_id).await?
                }
                (_, token) => secret_value(token)?,
            };
            if token.trim().is_empty() {
                anyhow::bail!("the {provider:?} storage token is empty (give it with --token)");
            }
            let name = provider.secret_name();
            let exists = client
                .push_reserved_web2(&signer, name, &token, force_update)
                .await?;
            let human = if exists {
                format!("Storage token \"{name}\" successfully updated")
            } else {
                format!("Storage token \"{name}\" successfully pushed")
            };
            out.done(human, json!({ "isPushed": true, "isUpdated": exists }));
        }
        StorageCommand::Check {
            provider,
            user,
            sms,
            wallet,
        } => {
            let owner = address_or_wallet(user.as_deref(), &wallet)?;
            let name = provider.secret_name();
            let exists = sms.client()?.web2_secret_exists(owner, name).await?;
            let human = if exists {
                format!("Storage token \"{name}\" is set for {owner}")
            } else {
                format!("No storage token \"{name}\" for {owner}")
            };
            out.done(human, json!({ "isInitialized": exists }));
        }
    }
    Ok(())
}

// ---- result encryption key ----

#[derive(Subcommand)]
pub enum ResultCommand {
    /// Generate a beneficiary RSA-4096 key pair to encrypt your results.
    #[command(alias = "generate-keys")]
    GenerateEncryptionKeypair(result_files::KeypairArgs),
    /// Decrypt an encrypted result archive with your private key.
    Decrypt(result_files::DecryptArgs),
    /// Push your result encryption public key (RSA, SPKI PEM) for the tasks you are beneficiary of.
    #[command(alias = "push-secret")]
    PushEncryptionKey {
        /// Replace the key if one is already set.
        #[arg(long)]
        force_update: bool,
        /// Public key file (default: .secrets/beneficiary/<address>_key.pub).
        #[arg(long)]
        secret_path: Option<PathBuf>,
        #[command(flatten)]
        signed: Signed,
    },
    /// Check whether a beneficiary has a result encryption key (default: your wallet).
    #[command(alias = "check-secret")]
    CheckEncryptionKey {
        address: Option<String>,
        #[command(flatten)]
        sms: SmsArgs,
        #[command(flatten)]
        wallet: WalletArgs,
    },
}

pub async fn run_result(cmd: ResultCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        ResultCommand::GenerateEncryptionKeypair(args) => {
            result_files::generate_keypair(args, out)?
        }
        ResultCommand::Decrypt(args) => result_files::decrypt(args, out)?,
        ResultCommand::PushEncryptionKey {
            force_update,
            secret_path,
            signed,
        } => {
            let (client, signer) = signed.connect()?;
            let owner = signer.address();
            let path = secret_path
                .unwrap_or_else(|| PathBuf::from(format!(".secrets/beneficiary/{owner}_key.pub")));
            let value = sms_worker::files::read_result_public_key(&path)?;
            let exists = client
                .push_reserved_web2(&signer, RESULT_ENCRYPTION_PUBLIC_KEY, &value, force_update)
                .await?;
            let human = if exists {
                "Encryption key successfully updated"
            } else {
                "Encryption key successfully pushed"
            };
            out.done(human, json!({ "isPushed": true, "isUpdated": exists }));
        }
        ResultCommand::CheckEncryptionKey {
            address,
            sms,
            wallet,
        } => {
            let owner = address_or_wallet(address.as_deref(), &wallet)?;
            let exists = sms
                .client()?
                .web2_secret_exists(owner, RESULT_ENCRYPTION_PUBLIC_KEY)
                .await?;
            checked(out, exists, format!("beneficiary {owner}"));
        }
    }
    Ok(())
}

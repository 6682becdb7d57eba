pub mod app_run;
pub mod attest;
pub mod audit;
pub mod bench;
pub mod bulk;
pub mod dataset_files;
pub mod demo;
pub mod dev;
pub mod enclave;
pub mod explain;
pub mod local_worker;
pub mod operator;
pub mod result_files;
pub mod secret;
pub mod secrets;
pub mod server;
pub mod wallet;
pub mod worker;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sms_client::{ClientOptions, SmsClient};

/// Where the SMS is and how to trust it.
#[derive(Clone, Debug, Args)]
pub struct SmsArgs {
    /// URL of the SMS.
    #[arg(long, env = "SMS_URL", default_value = "http://127.0.0.1:13300")]
    pub sms_url: String,
    /// Extra CA certificate (PEM) to trust for an HTTPS SMS.
    #[arg(long, env = "SMS_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

impl SmsArgs {
    pub fn client(&self) -> anyhow::Result<SmsClient> {
        let options = ClientOptions {
            ca_cert: self.ca_cert.clone(),
            timeout: None,
        };
        Ok(SmsClient::new(&self.sms_url, &options)?)
    }
}

/// The wallet that signs requests.
#[derive(Clone, Debug, Args)]
pub struct WalletArgs {
    /// Keystore V3 file (ethers / iExec SDK format). Default: ~/.config/sms/wallet.json.
    #[arg(long, env = "SMS_WALLET_FILE")]
    pub wallet_file: Option<PathBuf>,
    /// Wallet password (prompted for when absent and a terminal is attached).
    #[arg(long, env = "SMS_WALLET_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

impl WalletArgs {
    pub fn path(&self) -> PathBuf {
        self.wallet_file
            .clone()
            .unwrap_or_else(sms_client::wallet::default_path)
    }

    pub fn password(&self, prompt: &str) -> anyhow::Result<String> {
        match &self.password {
            Some(p) => Ok(p.clone()),
            None => prompt_hidden(prompt),
        }
    }

    pub fn signer(&self) -> anyhow::Result<alloy_signer_local::PrivateKeySigner> {
        let path = self.path();
        if !path.exists() {
            return Err(sms_client::wallet::WalletError::Missing(path).into());
        }
        let password = self.password(&format!("Password of wallet {}: ", path.display()))?;
        Ok(sms_client::wallet::load(&path, &password)?)
    }
}

/// Reads a hidden line from the terminal; refuses when there is none (scripts must pass it).
pub fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "{} needed but no terminal is attached: pass it as an option or environment variable",
            prompt.trim_end_matches([':', ' '])
        );
    }
    rpassword::prompt_password(prompt).context("cannot read from the terminal")
}

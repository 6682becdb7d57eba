//! What the commands share: the SMS and wallet arguments, the local worker's options,
//! hidden prompts and the run report's printing.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sms_client::{ClientOptions, SmsClient};
use sms_core::Address;
use sms_worker::dev_deal::DevPool;
use sms_worker::local::{RunReport, WorkerSetup};

use crate::output::Output;

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

/// An SMS and the wallet that signs the requests to it.
#[derive(Args)]
pub struct Signed {
    #[command(flatten)]
    pub sms: SmsArgs,
    #[command(flatten)]
    pub wallet: WalletArgs,
}

impl Signed {
    /// The SMS client, then the wallet's signer.
    pub fn connect(&self) -> anyhow::Result<(SmsClient, alloy_signer_local::PrivateKeySigner)> {
        let client = self.sms.client()?;
        Ok((client, self.wallet.signer()?))
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

    /// The wallet's address, read from the keystore file without its password when possible.
    pub fn address(&self) -> anyhow::Result<Address> {
        match sms_client::wallet::address_of(&self.path())? {
            Some(a) => Ok(sms_core::secret::parse_address(&a)?),
            None => Ok(self.signer()?.address()),
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
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "{} needed but no terminal is attached: pass it as an option or environment variable",
            prompt.trim_end_matches([':', ' '])
        );
    }
    rpassword::prompt_password(prompt).context("cannot read from the terminal")
}

/// An explicit address, or the wallet's.
pub fn address_or_wallet(given: Option<&str>, wallet: &WalletArgs) -> anyhow::Result<Address> {
    match given {
        Some(a) => Ok(sms_core::secret::parse_address(a)?),
        None => wallet.address(),
    }
}

/// Secret value from the option, the terminal (hidden), or standard input.
pub fn secret_value(given: Option<String>) -> anyhow::Result<String> {
    use std::io::Read;
    if let Some(v) = given {
        return Ok(v);
    }
    if std::io::stdin().is_terminal() {
        return prompt_hidden("Paste your secret: ");
    }
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("cannot read the secret from standard input")?;
    Ok(value.trim_end_matches(['\n', '\r']).to_owned())
}

/// Options of the local worker shared by `app run`, `worker run` and `demo`.
#[derive(Args, Clone)]
pub struct LocalWorkerArgs {
    /// Where results are stored: <taskId>.zip and <taskId>.computed.json.
    #[arg(long, env = "SMS_RESULTS_DIR", default_value = "results")]
    pub results_dir: PathBuf,
    /// Where the per-task workspaces are created (default: the system temporary directory).
    /// A workspace is removed after the run.
    #[arg(long, env = "SMS_WORKSPACE_ROOT")]
    pub workspace_root: Option<PathBuf>,
    /// Time limit of each stage, in seconds.
    #[arg(long, default_value_t = 600)]
    pub stage_timeout: u64,
    /// File keeping the dev workerpool and worker wallets (default: <config dir>/dev-workerpool.json).
    #[arg(long, env = "SMS_DEV_WORKERPOOL_FILE")]
    pub workerpool_file: Option<PathBuf>,
    /// Print each stage's output (the app's included) on stderr after it ends. Off by default:
    /// the stage logs stay in the workspace and are removed with it.
    #[arg(long)]
    pub show_logs: bool,
    /// The SMS public key the stages' launchers pin (base64, `sms server identity`). Default:
    /// the key the SMS announces at `GET /tee/provisioning/identity` (fine for a local run; a
    /// real enclave image carries its pinned key in its measured entrypoint).
    #[arg(long, env = "SMS_PUBLIC_KEY", value_name = "BASE64")]
    pub sms_public_key: Option<String>,
}

/// The local worker of these options, playing the dev workerpool `pool`.
pub fn worker_setup(
    sms: &SmsArgs,
    pool: &DevPool,
    args: &LocalWorkerArgs,
    watch: bool,
) -> anyhow::Result<WorkerSetup> {
    Ok(WorkerSetup {
        client: sms.client()?,
        sms_url: sms.sms_url.clone(),
        ca_cert: sms.ca_cert.clone(),
        pool_owner: pool.owner.clone(),
        worker: pool.worker.clone(),
        results_dir: args.results_dir.clone(),
        workspace_root: args.workspace_root.clone(),
        stage_timeout: Duration::from_secs(args.stage_timeout.max(1)),
        watch,
        show_logs: args.show_logs,
        sms_public_key: args.sms_public_key.clone(),
        chain: None,
    })
}

/// Prints the report; a failed task exits with code 1 after printing it.
pub fn print_report(report: &RunReport, out: &Output) -> anyhow::Result<()> {
    let data = serde_json::to_value(report)?;
    if !report.ok {
        // The report (with ok: false and the stage causes) is the output: exit 1 without a
        // second message.
        out.done_failing(report.human(), data);
    }
    out.done(report.human(), data);
    Ok(())
}

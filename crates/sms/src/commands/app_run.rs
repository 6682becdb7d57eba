//! `sms app run <app> --dev …`: the SDK's `iexec app run` against a `--dev` SMS, executed by the
//! local worker (see `local_worker`).
//!
//! The dev workerpool: created once per SMS URL, owned by a wallet of its own; that wallet and the
//! worker's are kept in `<config dir>/dev-workerpool.json` (`~/.config/sms/` unless
//! `XDG_CONFIG_HOME` is set; file readable by you only). They are dev keys: never fund them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_signer_local::PrivateKeySigner;
use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sms_core::deal_params::ParamsBuilder;
use sms_core::tag::parse_tag;

use super::local_worker::{RunReport, WorkerSetup};
use super::{SmsArgs, WalletArgs};
use crate::output::Output;

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

#[derive(Args)]
#[command(after_help = "\
Against a dev server (started with --dev; asked with GET /dev/info, or asserted with
--dev), nothing else is needed: a dev workerpool with its own
wallet is created once (kept in ~/.config/sms/dev-workerpool.json), then the deal and its
task on the dev ledger; the local worker plays the scheduler and the worker and runs
pre-compute (with a dataset or input files), the app (its enclave configuration's
entrypoint followed by --args, both split on whitespace and run without a shell, so --args
are literal words, in a per-task workspace where IEXEC_IN and
IEXEC_OUT are real directories) and post-compute, each through `sms enclave run` with
simulated evidence. The result archive and the completed computed.json are stored in
--results-dir; the workspace is removed. The run is always followed to its end; --watch
prints each stage as it starts and ends. Against a chain, create the deal with the iExec
SDK and run its task with `sms worker run --task <taskId>` on a --dev server reading that
chain (--chain-rpc, --hub).")]
pub struct RunArgs {
    /// App address.
    pub app: String,
    /// Dataset address.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Datasets processed together in bulk (comma-separated; dev servers): each gets an open
    /// bulk order signed by --wallet (their owner), and the deal's bulk_cid lists them
    /// (docs/bulk-processing.md).
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "dataset",
        value_name = "DATASET"
    )]
    pub bulk: Vec<String>,
    /// Requester secrets for the app: <appSecretIndex>=<requesterSecretName>, e.g. 1=x1.
    #[arg(long, num_args = 1.., value_name = "K=NAME")]
    pub secret: Vec<String>,
    /// Arguments appended to the app's entrypoint (iexec_args).
    #[arg(long)]
    pub args: Option<String>,
    /// Input file URLs, comma-separated (iexec_input_files).
    #[arg(long, value_delimiter = ',')]
    pub input_files: Vec<String>,
    /// Encrypt the result for the beneficiary (push its key first: sms result push-encryption-key).
    #[arg(long)]
    pub encrypt_result: bool,
    /// Request params JSON, merged under the options above.
    #[arg(long)]
    pub params: Option<String>,
    /// Deal tag.
    #[arg(long, default_value = "tee,scone")]
    pub tag: String,
    /// Beneficiary (default: the requester).
    #[arg(long)]
    pub beneficiary: Option<String>,
    /// Run on the SMS's dev ledger without asking the server first (by default the server is
    /// asked, GET /dev/info, and must be a dev server).
    #[arg(long)]
    pub dev: bool,
    /// Print the stages as they run.
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub sms: SmsArgs,
    #[command(flatten)]
    pub wallet: WalletArgs,
    #[command(flatten)]
    pub worker: LocalWorkerArgs,
}

/// The dev workerpool file.
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DevPoolFile {
    owner_private_key: String,
    worker_private_key: String,
    /// SMS URL → workerpool address on that server's dev ledger.
    #[serde(default)]
    workerpools: BTreeMap<String, String>,
}

/// The dev workerpool of one SMS: its owner's and its worker's wallets.
pub struct DevPool {
    pub owner: PrivateKeySigner,
    pub worker: PrivateKeySigner,
    file: DevPoolFile,
    path: PathBuf,
}

fn default_pool_file() -> PathBuf {
    let wallet = sms_client::wallet::default_path();
    wallet
        .parent()
        .unwrap_or(Path::new("."))
        .join("dev-workerpool.json")
}

impl DevPool {
    pub fn load_or_create(path: Option<&Path>) -> anyhow::Result<Self> {
        let path = path
            .map(Path::to_path_buf)
            .unwrap_or_else(default_pool_file);
        let file: DevPoolFile = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a dev workerpool file", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = |s: &PrivateKeySigner| sms_core::hex::encode_prefixed(s.to_bytes());
                DevPoolFile {
                    owner_private_key: key(&PrivateKeySigner::random()),
                    worker_private_key: key(&PrivateKeySigner::random()),
                    workerpools: BTreeMap::new(),
                }
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let owner = sms_client::wallet::parse_private_key(&file.owner_private_key)?;
        let worker = sms_client::wallet::parse_private_key(&file.worker_private_key)?;
        let pool = Self {
            owner,
            worker,
            file,
            path,
        };
        pool.save()?;
        Ok(pool)
    }

    fn save(&self) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.file)?;
        super::dataset_files::write_private(&self.path, &bytes, true)
    }

    /// The workerpool address on the SMS at `url`, deployed when unknown (or `redeploy`).
    pub async fn workerpool(&mut self, sms: &SmsArgs, redeploy: bool) -> anyhow::Result<String> {
        let key = sms.sms_url.trim_end_matches('/').to_owned();
        if !redeploy && let Some(a) = self.file.workerpools.get(&key) {
            return Ok(a.clone());
        }
        let body = json!({ "owner": self.owner.address().to_string(), "description": "sms local dev workerpool" });
        let answer: Value = sms.client()?.post_json("/dev/workerpools", &body).await?;
        let address = answer
            .get("address")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("the SMS answered without an address: {answer}"))?
            .to_owned();
        self.file.workerpools.insert(key, address.clone());
        self.save()?;
        Ok(address)
    }
}

pub fn setup(
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
    out.done(report.human(), data);
    if !report.ok {
        // The report (with ok: false and the stage causes) is the output: exit 1 without a
        // second message.
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(1);
    }
    Ok(())
}

fn requester_address(wallet: &WalletArgs) -> anyhow::Result<String> {
    let path = wallet.path();
    let address = match sms_client::wallet::address_of(&path)? {
        Some(a) => a,
        None => wallet.signer()?.address().to_string(),
    };
    Ok(sms_core::secret::parse_address(&address)?.to_string())
}

/// A deal to create on the dev ledger.
pub struct DealRequest {
    pub app: String,
    pub dataset: Option<String>,
    pub requester: String,
    pub beneficiary: String,
    pub tag: sms_core::B256,
    pub params: String,
}

/// Creates the deal on the dev ledger with the dev workerpool; returns (dealId, first taskId).
pub async fn create_dev_deal(
    sms: &SmsArgs,
    pool: &mut DevPool,
    deal: &DealRequest,
) -> anyhow::Result<(String, String)> {
    for attempt in 0..2 {
        let workerpool = pool.workerpool(sms, attempt > 0).await?;
        let mut body = json!({
            "app": deal.app,
            "workerpool": workerpool,
            "requester": deal.requester,
            "beneficiary": deal.beneficiary,
            "tag": sms_core::hex::encode_prefixed(deal.tag),
            "params": deal.params,
        });
        if let Some(d) = &deal.dataset {
            body["dataset"] = json!(d);
        }
        match sms.client()?.post_json::<Value>("/dev/deals", &body).await {
            Ok(answer) => {
                let deal_id = answer
                    .get("dealId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let task = answer
                    .get("taskIds")
                    .and_then(|t| t.get(0))
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow!("the SMS answered without a task: {answer}"))?
                    .to_owned();
                return Ok((deal_id, task));
            }
            // A workerpool remembered from another dev server at the same URL: deploy again.
            Err(e) if attempt == 0 && e.to_string().contains("is not a workerpool") => continue,
            Err(e) => return Err(e).context("cannot create the deal"),
        }
    }
    bail!("cannot create the deal")
}

/// The params string of `app run`'s options (the SDK's merge rules, known keys only).
fn params_of(args: &RunArgs, tee: bool, bulk_cid: Option<String>) -> anyhow::Result<String> {
    let mut builder = match &args.params {
        Some(p) => ParamsBuilder::from_params(p)?,
        None => ParamsBuilder::new(),
    };
    if let Some(a) = &args.args {
        builder = builder.args(a.clone());
    }
    if !args.input_files.is_empty() {
        builder = builder.input_files(args.input_files.iter().map(String::as_str))?;
    }
    if !args.secret.is_empty() {
        builder = builder.secret_mappings(args.secret.iter().map(String::as_str))?;
    }
    if args.encrypt_result {
        builder = builder.encrypt_result(true);
    }
    if let Some(cid) = bulk_cid {
        builder = builder.bulk_cid(cid);
    }
    Ok(builder.build(tee, false)?)
}

/// `sms app run` needs the server's dev ledger: `--dev` asserts it, otherwise the server is
/// asked (`GET /dev/info`) and must say that it is a dev server.
async fn ensure_dev_server(args: &RunArgs) -> anyhow::Result<()> {
    if args.dev {
        return Ok(());
    }
    let client = args.sms.client()?;
    let dev = client.is_dev_server().await.with_context(|| {
        format!(
            "cannot ask {} whether it is a dev server (GET /dev/info)",
            client.url()
        )
    })?;
    if !dev {
        bail!(
            "sms app run needs a dev server, and {} is not one (it has no GET /dev/info: it was not started with --dev): against a chain, create the deal with the iExec SDK and run its task with `sms worker run --task <taskId>`",
            client.url()
        );
    }
    Ok(())
}

pub async fn run(args: RunArgs, out: &Output) -> anyhow::Result<()> {
    ensure_dev_server(&args).await?;
    let requester = requester_address(&args.wallet)?;
    let tag = parse_tag(&args.tag).map_err(|e| anyhow!("--tag: {e}"))?;
    let tee = tag.as_slice()[31] & 1 == 1;
    let bulk_cid = if args.bulk.is_empty() {
        None
    } else {
        let owner = args.wallet.signer()?;
        Some(super::bulk::publish_dev_bulk(&args.sms, &owner, &args.bulk, tag).await?)
    };
    let request = DealRequest {
        app: args.app.clone(),
        dataset: args.dataset.clone(),
        beneficiary: args
            .beneficiary
            .clone()
            .unwrap_or_else(|| requester.clone()),
        requester,
        tag,
        params: params_of(&args, tee, bulk_cid)?,
    };
    let mut pool = DevPool::load_or_create(args.worker.workerpool_file.as_deref())?;
    let (deal, task) = create_dev_deal(&args.sms, &mut pool, &request).await?;
    if args.watch {
        eprintln!("[sms app run] deal {deal}, task {task}");
    }
    let setup = setup(&args.sms, &pool, &args.worker, args.watch)?;
    let report = setup
        .run_task(super::local_worker::parse_task_id(&task)?)
        .await?;
    print_report(&report, out)
}

//! `sms app run <app> --dev …`: the SDK's `iexec app run` against a `--dev` SMS, executed by the
//! local worker (`sms_worker::local`) on a dev deal (`sms_worker::dev_deal`).

use clap::Args;
use sms_core::deal_params::RunOptions;
use sms_worker::dev_deal::{AppRunDeal, DevPool, create_dev_deal, ensure_dev_server};

use crate::commands::common::{LocalWorkerArgs, SmsArgs, WalletArgs, print_report, worker_setup};
use crate::output::Output;

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

pub async fn run(args: RunArgs, out: &Output) -> anyhow::Result<()> {
    if !args.dev {
        ensure_dev_server(&args.sms.client()?).await?;
    }
    let deal = AppRunDeal {
        app: &args.app,
        dataset: args.dataset.as_deref(),
        requester: args.wallet.address()?.to_string(),
        beneficiary: args.beneficiary.clone(),
        tag: &args.tag,
        bulk: &args.bulk,
        options: RunOptions {
            params: args.params.as_deref(),
            args: args.args.as_deref(),
            input_files: &args.input_files,
            secrets: &args.secret,
            encrypt_result: args.encrypt_result,
        },
    };
    let request = deal
        .request(&args.sms.client()?, || args.wallet.signer())
        .await?;
    let mut pool = DevPool::load_or_create(args.worker.workerpool_file.as_deref())?;
    let client = args.sms.client()?;
    let (deal, task) = create_dev_deal(&client, &args.sms.sms_url, &mut pool, &request).await?;
    if args.watch {
        eprintln!("[sms app run] deal {deal}, task {task}");
    }
    let setup = worker_setup(&args.sms, &pool, &args.worker, args.watch)?;
    let report = setup
        .run_task(sms_worker::local::parse_task_id(&task)?)
        .await?;
    print_report(&report, out)
}

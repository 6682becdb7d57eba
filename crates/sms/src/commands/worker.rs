//! `sms worker …`: the built-in pipeline stages and the local worker.

use clap::Subcommand;
use sms_worker::stage::{
    ENV_EXIT_CAUSE_FILE, ENV_LOCAL_IEXEC_IN, ENV_LOCAL_IEXEC_OUT, ENV_RESULT_DIR, ExitCode,
    ProcessEnv,
};

use crate::commands::common::{LocalWorkerArgs, SmsArgs, print_report, worker_setup};
use crate::output::Output;
use sms_worker::dev_deal::DevPool;

#[derive(Subcommand)]
pub enum WorkerCommand {
    /// Built-in pre-compute stage: fetch, verify and decrypt the dataset, fetch input files.
    #[command(after_help = STAGE_HELP)]
    PreCompute,
    /// Built-in post-compute stage: digest, enclave signature, zip, encryption, storage.
    #[command(after_help = STAGE_HELP)]
    PostCompute,
    /// Run an existing task with the local worker: from the SMS's dev ledger, or from the chain
    /// with --chain-rpc/--hub (the deal's workerpool must be owned by the worker's pool wallet).
    Run(Box<RunTaskArgs>),
    /// Inside the app enclave: point IEXEC_IN/IEXEC_OUT at the local task directories and exec
    /// the app command (used by the local worker).
    #[command(hide = true)]
    ExecApp {
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(clap::Args)]
pub struct RunTaskArgs {
    /// Task id.
    #[arg(long)]
    pub task: String,
    /// Print the stages as they run.
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub sms: SmsArgs,
    #[command(flatten)]
    pub worker: LocalWorkerArgs,
    /// Read the task from the PoCo contracts at this JSON-RPC URL (with --hub) instead of the
    /// SMS's dev ledger. The SMS must read the same chain.
    #[arg(long, env = "SMS_CHAIN_RPC", requires = "hub")]
    pub chain_rpc: Option<String>,
    /// PoCo hub (diamond proxy) address.
    #[arg(long, env = "SMS_HUB", requires = "chain_rpc")]
    pub hub: Option<String>,
    /// Chain id the RPC must answer.
    #[arg(long, env = "SMS_CHAIN_ID", default_value_t = 134)]
    pub chain_id: u64,
}

const STAGE_HELP: &str = "\
Reads only its environment: the session variables of the upstream stage (IEXEC_TASK_ID,
IEXEC_PRE_COMPUTE_OUT, IS_DATASET_REQUIRED, IEXEC_DATASET_URL/KEY/CHECKSUM/FILENAME,
IEXEC_INPUT_FILES_NUMBER, IEXEC_INPUT_FILE_URL_<i>, SIGN_WORKER_ADDRESS,
SIGN_TEE_CHALLENGE_PRIVATE_KEY, RESULT_STORAGE_CALLBACK, RESULT_ENCRYPTION,
RESULT_ENCRYPTION_PUBLIC_KEY, …), normally released by `sms enclave run`, and these local
worker variables (no secret in them):
  SMS_WORKER_IEXEC_IN    real directory standing for /iexec_in
  SMS_WORKER_IEXEC_OUT   real directory standing for /iexec_out
  SMS_RESULT_DIR         post-compute stores <taskId>.zip and <taskId>.computed.json there
                         (the local replacement of the IPFS/Dropbox upload)
  SMS_POST_COMPUTE_TMP   post-compute scratch directory (default: inside SMS_RESULT_DIR)
  SMS_EXIT_CAUSE_FILE    receives the failure causes as [{\"cause\",\"message\"}]
  SMS_DOWNLOAD_TIMEOUT_SECS  download timeout (default 300)
A failure is printed on standard error as {\"stage\",\"cause\",\"message\"} with the upstream
cause name. Exit codes: 0 success, 1 failure reported, 2 failure without the sign tokens
to report it, 3 IEXEC_TASK_ID missing. No secret or variable value is ever printed.";

pub async fn run(cmd: WorkerCommand, out: &Output) -> anyhow::Result<()> {
    // Referenced so the help text and the code cannot drift apart.
    let _ = (
        ENV_LOCAL_IEXEC_IN,
        ENV_LOCAL_IEXEC_OUT,
        ENV_RESULT_DIR,
        ENV_EXIT_CAUSE_FILE,
    );
    match cmd {
        WorkerCommand::Run(args) => {
            let pool = DevPool::load_or_create(args.worker.workerpool_file.as_deref())?;
            let mut setup = worker_setup(&args.sms, &pool, &args.worker, args.watch)?;
            if let (Some(rpc), Some(hub)) = (&args.chain_rpc, &args.hub) {
                setup.chain = Some(sms_worker::local::connect_poco(rpc, hub, args.chain_id).await?);
            }
            let task = sms_worker::local::parse_task_id(&args.task)?;
            let report = setup.run_task(task).await?;
            print_report(&report, out)?;
        }
        WorkerCommand::ExecApp { command } => sms_worker::stage::exec_app(&command)?,
        WorkerCommand::PreCompute => {
            let (code, output) = sms_worker::pre_compute::run(&ProcessEnv).await;
            if let Some(o) = output {
                out.done(o.human(), o.report());
            }
            if code != ExitCode::Success {
                crate::output::exit(code.code());
            }
        }
        WorkerCommand::PostCompute => {
            let (code, output) = sms_worker::post_compute::run(&ProcessEnv);
            if let Some(o) = output {
                out.done(o.human(), o.report());
            }
            if code != ExitCode::Success {
                crate::output::exit(code.code());
            }
        }
    }
    Ok(())
}

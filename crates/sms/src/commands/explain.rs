//! `sms explain task <taskId>`: asks the SMS which checks a session of the task passes, fails
//! or skips, and what the release will require (`GET /tee/explain/{taskId}`, signed by the
//! workerpool owner's wallet). Prints one line per check; exits 1 when a check fails.

use anyhow::Context;
use clap::Subcommand;
use sms_core::secret::parse_address;

use crate::output::Output;

#[derive(Subcommand)]
pub enum ExplainCommand {
    /// Every check of session creation and release for a task, without side effects.
    Task(TaskArgs),
}

#[derive(clap::Args)]
pub struct TaskArgs {
    /// Task id (0x + 64 hex).
    pub task_id: String,
    /// Run the checks for this worker address (its result storage token, the live session).
    #[arg(long)]
    pub worker: Option<String>,
    #[command(flatten)]
    pub sms: crate::commands::common::SmsArgs,
    /// The workerpool owner's wallet.
    #[command(flatten)]
    pub wallet: crate::commands::common::WalletArgs,
}

pub async fn run(command: ExplainCommand, out: &Output) -> anyhow::Result<()> {
    let ExplainCommand::Task(args) = command;
    let task_id = args
        .task_id
        .trim()
        .parse()
        .ok()
        .filter(|_| args.task_id.trim().len() == 66)
        .with_context(|| format!("task id '{}': expected 0x + 64 hex", args.task_id))?;
    let worker = args
        .worker
        .as_deref()
        .map(|w| parse_address(w).map_err(|e| anyhow::anyhow!("--worker: {e}")))
        .transpose()?;
    let signer = args.wallet.signer()?;
    let explanation = args
        .sms
        .client()?
        .tee_explain(&signer, task_id, worker)
        .await?;
    let data = serde_json::to_value(&explanation)?;
    if explanation.first_failure().is_none() {
        out.done(explanation.human(), data);
        return Ok(());
    }
    // The checks are the output: exit 1 without a second message (one JSON object in --json).
    out.done_failing(explanation.human(), data)
}

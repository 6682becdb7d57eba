//! Dev ledger commands (the server must run with `--dev`).

use clap::{Args, Subcommand};
use serde_json::json;

use sms_worker::dev_deal::{
    DevEntry, NewDevDeal, create_deal_as_given, deploy_checksummed, set_task_status, transfer,
};

use crate::commands::common::SmsArgs;
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
    /// Deals of the dev ledger (their tasks are ACTIVE at once).
    #[command(subcommand)]
    Deal(DevDealCommand),
    /// Tasks of the dev ledger.
    #[command(subcommand)]
    Task(DevTaskCommand),
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

/// An owned entry with a name (apps, datasets).
#[derive(Args)]
pub struct Named {
    #[command(flatten)]
    owned: Owned,
    #[arg(long, default_value = "")]
    name: String,
}

#[derive(Subcommand)]
pub enum DevAppCommand {
    /// Register an app; prints its address.
    Deploy {
        #[command(flatten)]
        entry: Named,
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
        entry: Named,
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

pub async fn run(cmd: DevCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        DevCommand::App(DevAppCommand::Deploy {
            entry: Named { owned, name },
            mrenclave,
            multiaddr,
            checksum,
        }) => {
            let app = DevEntry::App {
                owner: owned.owner,
                name,
                mrenclave,
                multiaddr,
                checksum,
            };
            deploy(&owned.sms, &app, out).await
        }
        DevCommand::Dataset(DevDatasetCommand::Deploy {
            entry: Named { owned, name },
            multiaddr,
            checksum,
        }) => {
            let dataset = DevEntry::Dataset {
                owner: owned.owner,
                name,
                multiaddr,
                checksum,
            };
            deploy(&owned.sms, &dataset, out).await
        }
        DevCommand::Workerpool(DevWorkerpoolCommand::Deploy { owned, description }) => {
            let owner = owned.owner;
            let pool = DevEntry::Workerpool { owner, description };
            deploy(&owned.sms, &pool, out).await
        }
        DevCommand::Deal(DevDealCommand::Create(deal)) => create_deal(deal, out).await,
        DevCommand::Task(DevTaskCommand::SetStatus { task, status, sms }) => {
            let status = status.to_ascii_uppercase();
            let answer = set_task_status(&sms.client()?, &task, &status).await?;
            out.done(format!("Task {task} is now {status}"), answer);
            Ok(())
        }
        DevCommand::Transfer { entry, to, sms } => {
            let (kind, answer) = transfer(&sms.client()?, &entry, &to).await?;
            out.done(format!("Transferred {kind} {entry} to {to}"), answer);
            Ok(())
        }
    }
}

#[derive(Subcommand)]
pub enum DevDealCommand {
    /// Record a deal and its tasks (ids as PoCo computes them); prints the deal and task ids.
    Create(NewDeal),
}

#[derive(Args)]
pub struct NewDeal {
    /// App address (registered with `sms dev app deploy`).
    #[arg(long)]
    app: String,
    /// Dataset address.
    #[arg(long)]
    dataset: Option<String>,
    /// Workerpool address.
    #[arg(long)]
    workerpool: String,
    /// Requester address.
    #[arg(long)]
    requester: String,
    /// Beneficiary address (default: the requester).
    #[arg(long)]
    beneficiary: Option<String>,
    /// Callback address (default: none).
    #[arg(long)]
    callback: Option<String>,
    /// Tag: comma-separated names (tee, scone, gramine, tdx, gpu) or a 0x bytes32.
    #[arg(long, default_value = "tee,scone")]
    tag: String,
    /// Deal params: a JSON object such as '{"iexec_args":"x","iexec_secrets":{"1":"foo"}}',
    /// or any other string, stored verbatim.
    #[arg(long)]
    params: Option<String>,
    /// Number of tasks.
    #[arg(long, default_value_t = 1)]
    volume: u64,
    /// Category 0 (XS, 300 s) to 4 (XL, 36000 s): the deadlines' time reference.
    #[arg(long, default_value_t = 0)]
    category: u64,
    #[command(flatten)]
    sms: SmsArgs,
}

#[derive(Subcommand)]
pub enum DevTaskCommand {
    /// Set a task's status.
    SetStatus {
        /// Task id (0x + 64 hex).
        task: String,
        /// UNSET, ACTIVE, REVEALING, COMPLETED or FAILED.
        #[arg(value_parser = ["UNSET", "ACTIVE", "REVEALING", "COMPLETED", "FAILED"], ignore_case = true)]
        status: String,
        #[command(flatten)]
        sms: SmsArgs,
    },
}

async fn create_deal(deal: NewDeal, out: &Output) -> anyhow::Result<()> {
    let request = NewDevDeal {
        app: deal.app,
        dataset: deal.dataset,
        workerpool: deal.workerpool,
        requester: deal.requester,
        beneficiary: deal.beneficiary,
        callback: deal.callback,
        tag: deal.tag,
        params: deal.params,
        volume: deal.volume,
        category: deal.category,
    };
    let (deal_id, tasks) = create_deal_as_given(&deal.sms.client()?, &request).await?;
    let human = format!("Created deal {deal_id} with task(s):\n{}", tasks.join("\n"));
    out.done(human, json!({ "dealId": deal_id, "taskIds": tasks }));
    Ok(())
}

/// Registers an entry and prints its address.
async fn deploy(sms: &SmsArgs, entry: &DevEntry, out: &Output) -> anyhow::Result<()> {
    let address = deploy_checksummed(&sms.client()?, entry).await?;
    out.done(
        format!("Deployed new {} at address {address}", entry.kind()),
        json!({ "address": address }),
    );
    Ok(())
}

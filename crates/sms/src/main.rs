//! `sms`: the Secret Management Service for iExec confidential computing — server and client
//! in one binary. `sms --help` lists the commands; each has its own `--help`.

mod commands;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: measurably less CPU per request than the system allocator (`sms bench`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use crate::commands::{
    attest, audit, bench, demo, dev, enclave, explain, operator, secret, secrets, server, wallet,
    worker,
};
use crate::output::Output;

#[derive(Parser)]
#[command(name = "sms", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Print one JSON object instead of human-readable text.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SMS server (`sms server --dev` for a local, embedded setup).
    Server(Box<server::ServerArgs>),
    /// Create, import or show the wallet that signs your requests.
    #[command(subcommand)]
    Wallet(wallet::WalletCommand),
    /// App developer secret (IEXEC_APP_DEVELOPER_SECRET).
    #[command(subcommand)]
    App(secrets::AppCommand),
    /// Requester secrets (IEXEC_REQUESTER_SECRET_<n>, mapped with --secret n=name).
    #[command(subcommand)]
    Requester(secrets::RequesterCommand),
    /// Dataset files (encrypt, decrypt) and their encryption keys.
    #[command(subcommand)]
    Dataset(secrets::DatasetCommand),
    /// Result encryption keys of a beneficiary and encrypted result archives.
    #[command(subcommand)]
    Result(secrets::ResultCommand),
    /// Any secret through the secrets API v2: put with check-and-set, delete, list, show
    /// (EIP-712 signed, replay-proof; the commands above use the iExec API).
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Result storage tokens (ipfs result proxy, dropbox), like `iexec storage init|check`.
    #[command(subcommand)]
    Storage(secrets::StorageCommand),
    /// Register apps, datasets and workerpools on a `--dev` server's embedded ledger.
    #[command(subcommand)]
    Dev(dev::DevCommand),
    /// Verify TEE attestation evidence (DCAP quotes) offline.
    #[command(subcommand)]
    Attest(attest::AttestCommand),
    /// Run inside an enclave: attest to the SMS and exec the workload with its environment.
    #[command(subcommand)]
    Enclave(enclave::EnclaveCommand),
    /// Measure this service against the limits of the machine (loopback only; see BENCHMARKS.md).
    #[command(disable_help_flag = true)]
    Bench(bench::BenchArgs),
    /// The local worker and its built-in pre-compute and post-compute stages.
    #[command(subcommand)]
    Worker(worker::WorkerCommand),
    /// Keys and backups: data-key rotation, rewrap, master-key rotation, backup, restore.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Which checks a TEE session of a task passes or fails, and why (workerpool owner).
    #[command(subcommand)]
    Explain(explain::ExplainCommand),
    /// The audit log: verify it, export it, read the receipts of your secrets.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The requester-secrets tutorial end to end on a throw-away dev server: prints f(2) = 15.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output::new(cli.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return out.fail(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server::run(*args, &out).await,
            Command::Wallet(cmd) => wallet::run(cmd, &out),
            Command::App(cmd) => secrets::run_app(cmd, &out).await,
            Command::Requester(cmd) => secrets::run_requester(cmd, &out).await,
            Command::Dataset(cmd) => secrets::run_dataset(cmd, &out).await,
            Command::Result(cmd) => secrets::run_result(cmd, &out).await,
            Command::Storage(cmd) => secrets::run_storage(cmd, &out).await,
            Command::Secret(cmd) => secret::run(cmd, &out).await,
            Command::Dev(cmd) => dev::run(cmd, &out).await,
            Command::Attest(cmd) => attest::run(cmd, &out, cli.json),
            Command::Enclave(cmd) => enclave::run(cmd).await,
            Command::Bench(args) => bench::run(args, cli.json),
            Command::Worker(cmd) => worker::run(cmd, &out).await,
            Command::Demo(args) => demo::run(args, &out).await,
            Command::Operator(cmd) => operator::run(cmd, cli.json, &out).await,
            Command::Explain(cmd) => explain::run(cmd, &out).await,
            Command::Audit(cmd) => audit::run(cmd, &out).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => out.fail(&e),
    }
}

//! `sms enclave run`: the launcher that runs inside the enclave. It proves the enclave to the
//! SMS's attested provisioner and execs the workload with the released environment: nothing
//! of that environment is written to disk, printed or logged.
//!
//! It trusts only what is measured: the SMS key it pins comes from its own arguments (part of
//! the measured entrypoint in a real image), the command is its own argv after `--`, and an
//! answer is applied only when signed by the pinned key over this exchange and when every
//! variable name is allowed (`sms_client::provision::open_release`).
//!
//! Evidence sources:
//! - `sgx`: Gramine's `/dev/attestation` pseudo-files (`user_report_data` then `quote`);
//! - `tdx`: the Linux configfs-tsm interface (`/sys/kernel/config/tsm/report/<entry>/inblob`
//!   then `outblob`);
//! - `simulated`: a bare claim of `--measurement` (accepted only by a server that allows it).

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use sms_worker::launcher::{self, EvidenceSource, Launch};

use crate::commands::common::SmsArgs;

#[derive(Subcommand)]
pub enum EnclaveCommand {
    /// Attest this enclave to the SMS, receive the service's environment sealed to an
    /// ephemeral key and signed by the pinned SMS key, and exec the command given after `--`
    /// with it (Unix exec: this process becomes the command). Refuses, running nothing, an
    /// answer not signed by the pinned key or one setting a forbidden variable name.
    Run(RunArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EvidenceKind {
    /// Intel SGX DCAP quote through Gramine's /dev/attestation.
    Sgx,
    /// Intel TDX quote through configfs-tsm.
    Tdx,
    /// No hardware: claims --measurement (development servers only).
    Simulated,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sms: SmsArgs,
    /// Session id given by /tee/sessions.
    #[arg(long, env = "SMS_SESSION_ID")]
    pub session: String,
    /// Service of the session: pre-compute, app or post-compute.
    #[arg(long, env = "SMS_SERVICE")]
    pub service: String,
    /// The SMS public key to trust (base64 Ed25519, as `GET /tee/provisioning/identity` and
    /// `sms server identity` print it). In an enclave image it belongs to the measured
    /// entrypoint, so it is attested with the code. Required (or --sms-public-key-file).
    #[arg(
        long,
        value_name = "BASE64",
        conflicts_with = "sms_public_key_file",
        required_unless_present = "sms_public_key_file"
    )]
    pub sms_public_key: Option<String>,
    /// File holding the SMS public key: base64, or the identity JSON document.
    #[arg(long, value_name = "PATH")]
    pub sms_public_key_file: Option<PathBuf>,
    /// Where the evidence comes from.
    #[arg(long, value_enum, default_value_t = EvidenceKind::Sgx)]
    pub evidence: EvidenceKind,
    /// Measurement claimed by simulated evidence, hex (required with --evidence simulated).
    #[arg(long, value_name = "HEX")]
    pub measurement: Option<String>,
    /// Gramine's attestation directory.
    #[arg(long, hide = true, default_value = "/dev/attestation")]
    pub gramine_attestation_dir: PathBuf,
    /// configfs-tsm report directory.
    #[arg(long, hide = true, default_value = "/sys/kernel/config/tsm/report")]
    pub tsm_report_dir: PathBuf,
    /// When the SMS refuses the release, write its refusal code there as JSON (for the local
    /// worker, which must not parse this launcher's output).
    #[arg(long, hide = true, value_name = "PATH")]
    pub refusal_file: Option<PathBuf>,
    /// The command and its arguments (run as given: no shell).
    #[arg(last = true, value_name = "COMMAND", required = true)]
    pub command: Vec<String>,
}

pub async fn run(cmd: EnclaveCommand) -> anyhow::Result<()> {
    match cmd {
        EnclaveCommand::Run(args) => run_enclave(args).await,
    }
}

async fn run_enclave(args: RunArgs) -> anyhow::Result<()> {
    let pinned = launcher::pinned_key(
        args.sms_public_key.clone(),
        args.sms_public_key_file.as_deref(),
    )?;
    let source = match (args.evidence, &args.measurement) {
        (EvidenceKind::Simulated, Some(hex)) => EvidenceSource::Simulated {
            measurement: sms_core::hex::decode_lenient(hex)
                .map_err(|e| anyhow::anyhow!("--measurement: {e}"))?,
        },
        (EvidenceKind::Simulated, None) => bail!("--evidence simulated needs --measurement <hex>"),
        (_, Some(_)) => {
            bail!("--measurement is only for --evidence simulated (hardware reports its own)")
        }
        (EvidenceKind::Sgx, None) => EvidenceSource::Gramine(args.gramine_attestation_dir),
        (EvidenceKind::Tdx, None) => EvidenceSource::ConfigfsTsm(args.tsm_report_dir),
    };
    let launch = Launch {
        session: args.session,
        service: args.service,
        pinned,
        source,
        refusal_file: args.refusal_file,
    };
    launcher::attest_and_exec(&args.sms.client()?, &launch, &args.command).await
}

//! `sms enclave run`: the launcher that runs inside the enclave. It proves the enclave to the
//! SMS's attested provisioner and execs the workload with the released environment: nothing
//! of that environment is written to disk, printed or logged.
//!
//! Evidence sources:
//! - `sgx`: Gramine's `/dev/attestation` pseudo-files (`user_report_data` then `quote`);
//! - `tdx`: the Linux configfs-tsm interface (`/sys/kernel/config/tsm/report/<entry>/inblob`
//!   then `outblob`);
//! - `simulated`: a bare claim of `--measurement` (accepted only by a server that allows it).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use sms_attest::{EphemeralKey, Evidence, report_data_binding};
use sms_client::provision::{ReleaseRequest, open_release};

use crate::commands::SmsArgs;

#[derive(Subcommand)]
pub enum EnclaveCommand {
    /// Attest this enclave to the SMS, receive the service's environment sealed to an
    /// ephemeral key, and exec the command with it (Unix exec: this process becomes the
    /// command). Without a command, the session's command runs with `/bin/sh -c`.
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
    /// The command and its arguments.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

pub async fn run(cmd: EnclaveCommand) -> anyhow::Result<()> {
    match cmd {
        EnclaveCommand::Run(args) => run_enclave(args).await,
    }
}

async fn run_enclave(args: RunArgs) -> anyhow::Result<()> {
    let measurement = match (args.evidence, &args.measurement) {
        (EvidenceKind::Simulated, Some(hex)) => Some(
            sms_core::hex::decode_lenient(hex)
                .map_err(|e| anyhow::anyhow!("--measurement: {e}"))?,
        ),
        (EvidenceKind::Simulated, None) => bail!("--evidence simulated needs --measurement <hex>"),
        (_, Some(_)) => {
            bail!("--measurement is only for --evidence simulated (hardware reports its own)")
        }
        (_, None) => None,
    };
    let client = args.sms.client()?;
    let nonce = client.provision_nonce(&args.session, &args.service).await?;
    let key = EphemeralKey::generate();
    let report_data = report_data_binding(&nonce.nonce_bytes()?, key.public_key());
    let evidence = match args.evidence {
        EvidenceKind::Simulated => Evidence::Simulated {
            measurement: measurement.unwrap_or_default(),
            report_data,
            debug: false,
        },
        EvidenceKind::Sgx => Evidence::SgxDcap {
            quote: gramine_quote(&args.gramine_attestation_dir, &report_data)?,
        },
        EvidenceKind::Tdx => Evidence::TdxDcap {
            quote: tsm_quote(&args.tsm_report_dir, &report_data)?,
        },
    };
    let request = ReleaseRequest {
        nonce: nonce.nonce.clone(),
        public_key: key.public_key_base64(),
        evidence,
    };
    let answer = client
        .provision_release(&args.session, &args.service, &request)
        .await?;
    let released = open_release(&key, &args.session, &args.service, &answer)?;
    drop(key);

    let argv: Vec<String> = if args.command.is_empty() {
        match &released.command {
            Some(command) if !command.trim().is_empty() => {
                vec!["/bin/sh".into(), "-c".into(), command.clone()]
            }
            _ => bail!(
                "no command: give one after `--` (the session has none for {})",
                args.service
            ),
        }
    } else {
        args.command.clone()
    };
    for name in released.env.keys() {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            bail!("the released environment has an invalid variable name; nothing was run");
        }
    }
    eprintln!(
        "sms enclave run: {} attested ({} evidence, release {}/{}), {} variables released; starting the command",
        args.service,
        answer.tee,
        answer.release,
        answer.limit,
        released.env.len()
    );
    exec(&argv, &released.env)
}

#[cfg(unix)]
fn exec(argv: &[String], env: &std::collections::BTreeMap<String, String>) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let Some((program, rest)) = argv.split_first() else {
        bail!("empty command")
    };
    let mut command = std::process::Command::new(program);
    command.args(rest).envs(env);
    // Returns only when the exec failed.
    let error = command.exec();
    Err(anyhow::anyhow!("cannot exec {program}: {error}"))
}

#[cfg(not(unix))]
fn exec(_: &[String], _: &std::collections::BTreeMap<String, String>) -> anyhow::Result<()> {
    bail!("sms enclave run needs a Unix system (exec)")
}

/// Gramine (DCAP): write the 64-byte report data, read the quote the QE signed over it.
fn gramine_quote(dir: &Path, report_data: &[u8; 64]) -> anyhow::Result<Vec<u8>> {
    let kind_file = dir.join("attestation_type");
    if let Ok(kind) = std::fs::read_to_string(&kind_file)
        && kind.trim() != "dcap"
    {
        bail!(
            "Gramine attestation type is '{}', not 'dcap' (set sgx.remote_attestation = \"dcap\")",
            kind.trim()
        );
    }
    let user_report_data = dir.join("user_report_data");
    std::fs::write(&user_report_data, report_data).with_context(|| {
        format!(
            "cannot write {} (is this running inside a Gramine SGX enclave?)",
            user_report_data.display()
        )
    })?;
    let quote_file = dir.join("quote");
    let quote = std::fs::read(&quote_file)
        .with_context(|| format!("cannot read {}", quote_file.display()))?;
    if quote.is_empty() {
        bail!("{} is empty", quote_file.display());
    }
    Ok(quote)
}

/// configfs-tsm: a fresh report entry, inblob = report data, outblob = the quote. The entry's
/// `generation` must not change while reading, or another writer raced us.
fn tsm_quote(dir: &Path, report_data: &[u8; 64]) -> anyhow::Result<Vec<u8>> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let entry = dir.join(format!("sms-{}-{nanos:09}", std::process::id()));
    std::fs::create_dir(&entry).with_context(|| {
        format!(
            "cannot create {} (is configfs-tsm available in this TD?)",
            entry.display()
        )
    })?;
    let result = (|| {
        if let Ok(provider) = std::fs::read_to_string(entry.join("provider"))
            && !provider.trim().starts_with("tdx")
        {
            bail!("configfs-tsm provider is '{}', not TDX", provider.trim());
        }
        std::fs::write(entry.join("inblob"), report_data).context("cannot write inblob")?;
        let before =
            std::fs::read_to_string(entry.join("generation")).context("cannot read generation")?;
        let quote = std::fs::read(entry.join("outblob")).context("cannot read outblob")?;
        let after =
            std::fs::read_to_string(entry.join("generation")).context("cannot read generation")?;
        if before.trim() != after.trim() {
            bail!("the report entry changed while it was read (concurrent writer); retry");
        }
        if quote.is_empty() {
            bail!("outblob is empty");
        }
        Ok(quote)
    })();
    let _ = std::fs::remove_dir(&entry);
    result
}

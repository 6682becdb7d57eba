//! The enclave launcher's platform side (`sms enclave run`): the pinned SMS key, the hardware
//! quotes over the report data (Gramine SGX, configfs-tsm TDX), and the exec of the workload
//! with its released environment (never a shell).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sms_attest::{Evidence, SmsPublicKey};

/// The pinned SMS key from its text: base64, or the identity JSON (`sms server identity`).
pub fn parse_pinned_key(text: String) -> anyhow::Result<SmsPublicKey> {
    let base64 = match serde_json::from_str::<sms_attest::IdentityDocument>(&text) {
        Ok(document) => document.public_key,
        Err(_) => text,
    };
    SmsPublicKey::from_base64(&base64).map_err(|e| anyhow::anyhow!("the pinned SMS key: {e}"))
}

/// The pinned SMS key of `sms enclave run`: `--sms-public-key` (base64), or the file of
/// `--sms-public-key-file` (base64 or the identity JSON).
pub fn pinned_key(text: Option<String>, file: Option<&Path>) -> anyhow::Result<SmsPublicKey> {
    let text = match (text, file) {
        (Some(text), _) => text,
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("--sms-public-key-file {}", path.display()))?,
        (None, None) => bail!("--sms-public-key or --sms-public-key-file is required"),
    };
    parse_pinned_key(text)
}

/// Replaces this process with `argv` and `env` added to the environment; returns only when
/// the exec failed.
#[cfg(unix)]
pub fn exec(argv: &[String], env: &BTreeMap<String, String>) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let Some((program, rest)) = argv.split_first() else {
        bail!("empty command")
    };
    let mut command = std::process::Command::new(program);
    command.args(rest).envs(env);
    let error = command.exec();
    Err(anyhow::anyhow!("cannot exec {program}: {error}"))
}

#[cfg(not(unix))]
pub fn exec(_: &[String], _: &BTreeMap<String, String>) -> anyhow::Result<()> {
    bail!("sms enclave run needs a Unix system (exec)")
}

/// Gramine (DCAP): write the 64-byte report data, read the quote the QE signed over it.
pub fn gramine_quote(dir: &Path, report_data: &[u8; 64]) -> anyhow::Result<Vec<u8>> {
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
pub fn tsm_quote(dir: &Path, report_data: &[u8; 64]) -> anyhow::Result<Vec<u8>> {
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

/// Where an enclave's evidence comes from.
pub enum EvidenceSource {
    /// Gramine's attestation pseudo-files in this directory (SGX DCAP quote).
    Gramine(PathBuf),
    /// The configfs-tsm report directory (TDX quote).
    ConfigfsTsm(PathBuf),
    /// No hardware: a bare claim of this measurement (development servers only).
    Simulated { measurement: Vec<u8> },
}

impl EvidenceSource {
    /// The evidence binding `report_data`.
    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, String> {
        Ok(match self {
            EvidenceSource::Simulated { measurement } => Evidence::Simulated {
                measurement: measurement.clone(),
                report_data: *report_data,
                debug: false,
            },
            EvidenceSource::Gramine(dir) => Evidence::SgxDcap {
                quote: gramine_quote(dir, report_data).map_err(|e| format!("{e:#}"))?,
            },
            EvidenceSource::ConfigfsTsm(dir) => Evidence::TdxDcap {
                quote: tsm_quote(dir, report_data).map_err(|e| format!("{e:#}"))?,
            },
        })
    }
}

/// One release for one service of a session (`sms enclave run`).
pub struct Launch {
    pub session: String,
    /// pre-compute, app or post-compute.
    pub service: String,
    /// The SMS key the answer must be signed by (from the measured arguments).
    pub pinned: SmsPublicKey,
    pub source: EvidenceSource,
    /// Receives the SMS's refusal code as JSON (for the local worker, which never parses
    /// this launcher's output).
    pub refusal_file: Option<PathBuf>,
}

/// Attests to the SMS, opens the release signed by the pinned key, and execs `command` with
/// the released environment (nothing of it written, printed or logged). A refusal is written
/// to the refusal file before the error is returned.
pub async fn attest_and_exec(
    client: &sms_client::SmsClient,
    launch: &Launch,
    command: &[String],
) -> anyhow::Result<()> {
    let pinned = &launch.pinned;
    let (answer, released) = match client
        .attested_release(
            &launch.session,
            &launch.service,
            pinned,
            |report_data: &[u8; 64]| launch.source.evidence(report_data),
        )
        .await
    {
        Ok(release) => release,
        Err(e) => {
            if let (Some(path), Some(code)) = (&launch.refusal_file, e.code()) {
                let refusal = crate::local::LaunchRefusal {
                    code: code.to_owned(),
                    message: e.to_string(),
                };
                if let Err(write) = refusal.write(path) {
                    eprintln!("sms enclave run: cannot write {}: {write}", path.display());
                }
            }
            return Err(e.into());
        }
    };
    eprintln!(
        "sms enclave run: {} attested ({} evidence, release {}/{}), answer signed by SMS key {}, {} variables released; starting the command",
        launch.service,
        answer.tee,
        answer.release,
        answer.limit,
        pinned.key_id(),
        released.env.len()
    );
    exec(command, &released.env)
}

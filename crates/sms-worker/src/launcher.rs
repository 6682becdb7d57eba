//! The enclave launcher's platform side (`sms enclave run`): the pinned SMS key, the hardware
//! quotes over the report data (Gramine SGX, configfs-tsm TDX), and the exec of the workload
//! with its released environment (never a shell).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use sms_attest::SmsPublicKey;

/// The pinned SMS key from its text: base64, or the identity JSON (`sms server identity`).
pub fn parse_pinned_key(text: String) -> anyhow::Result<SmsPublicKey> {
    let base64 = match serde_json::from_str::<sms_attest::IdentityDocument>(&text) {
        Ok(document) => document.public_key,
        Err(_) => text,
    };
    SmsPublicKey::from_base64(&base64).map_err(|e| anyhow::anyhow!("the pinned SMS key: {e}"))
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

//! `sms attest verify`: offline verification of a DCAP quote against its collateral.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use sms_attest::{
    Collateral, ExpectedMeasurement, Policy, QuoteInspection, Register, TdxMeasurement,
    TdxRegister, inspect_quote, parse_status_list,
};

use crate::output::Output;

#[derive(Subcommand)]
pub enum AttestCommand {
    /// Verify an SGX (v3) or TDX (v4/v5) DCAP quote against collateral, offline. Exit 0 when
    /// the quote and its collateral are valid at that time and the measurement (if given)
    /// matches; non-zero with the reason otherwise. The TCB status is always reported, and
    /// judged only with --accept-status or --policy.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The quote: raw bytes, or hex text.
    #[arg(long, value_name = "FILE")]
    pub quote: PathBuf,
    /// Collateral JSON (the format of `--collateral-dir` files).
    #[arg(long, value_name = "FILE")]
    pub collateral: PathBuf,
    /// Verification time, unix seconds. Default: now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub at: Option<u64>,
    /// Expected MRENCLAVE (SGX, 64 hex characters) or MRTD (TDX, 96 hex characters; the RTMRs
    /// are printed, not compared).
    #[arg(long, value_name = "HEX")]
    pub expect_measurement: Option<String>,
    /// Judge the TCB status: accept exactly these statuses (comma-separated Intel names, e.g.
    /// UpToDate,SWHardeningNeeded); debug enclaves are refused.
    #[arg(long, value_name = "LIST", conflicts_with = "policy")]
    pub accept_status: Option<String>,
    /// Judge the TCB status with a policy file (the server's `--attest-policy` format).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

pub fn run(cmd: AttestCommand, out: &Output, json_mode: bool) -> anyhow::Result<()> {
    match cmd {
        AttestCommand::Verify(args) => verify(args, out, json_mode),
    }
}

/// Raw bytes, or the bytes of hex text (with or without 0x, surrounding whitespace allowed).
fn read_quote(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read quote {}", path.display()))?;
    if let Ok(text) = std::str::from_utf8(&bytes) {
        let text = text.trim();
        let digits = text.strip_prefix("0x").unwrap_or(text);
        if !digits.is_empty()
            && digits.len() % 2 == 0
            && digits.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return sms_core::hex::decode_lenient(text)
                .map_err(|e| anyhow::anyhow!("quote hex: {e}"));
        }
    }
    Ok(bytes)
}

/// `--expect-measurement`: MRENCLAVE by its 32 bytes, MRTD (only) by its 48.
fn expected_measurement(text: &str) -> anyhow::Result<ExpectedMeasurement> {
    let bytes = sms_core::hex::decode_lenient(text)
        .map_err(|e| anyhow::anyhow!("--expect-measurement: {e}"))?;
    if let Ok(mr_enclave) = <[u8; 32]>::try_from(bytes.as_slice()) {
        return Ok(ExpectedMeasurement::Sgx { mr_enclave });
    }
    let Ok(mrtd) = <[u8; 48]>::try_from(bytes.as_slice()) else {
        anyhow::bail!(
            "--expect-measurement: expected 64 hex characters (MRENCLAVE) or 96 (MRTD), got {} bytes",
            bytes.len()
        );
    };
    let only_mrtd = TdxMeasurement::from_fn(|register| match register {
        TdxRegister::Mrtd => Register::Exact(mrtd),
        _ => Register::Any,
    });
    Ok(ExpectedMeasurement::Tdx {
        registers: Some(only_mrtd),
        fingerprint: Vec::new(),
    })
}

fn verify(args: VerifyArgs, out: &Output, json_mode: bool) -> anyhow::Result<()> {
    let quote = read_quote(&args.quote)?;
    let collateral = Collateral::load(&args.collateral)
        .map_err(|e| anyhow::anyhow!("{:#}", anyhow::Error::new(e)))
        .with_context(|| format!("collateral {}", args.collateral.display()))?;
    let expected = args
        .expect_measurement
        .as_deref()
        .map(expected_measurement)
        .transpose()?;
    let policy = match (&args.accept_status, &args.policy) {
        (Some(list), _) => Some(Policy::accepting(parse_status_list(list)?)),
        (None, Some(path)) => {
            let text = std::fs::read(path)
                .with_context(|| format!("cannot read policy {}", path.display()))?;
            Some(
                serde_json::from_slice::<Policy>(&text)
                    .with_context(|| format!("policy {}", path.display()))?,
            )
        }
        (None, None) => None,
    };
    let at = args.at.unwrap_or_else(sms_core::clock::unix_now);
    let inspection = inspect_quote(&quote, &collateral, at, expected.as_ref(), policy.as_ref());
    let accepted = inspection.verdict.accepted;
    let mut data = serde_json::to_value(&inspection)?;
    if let Some(map) = data.as_object_mut() {
        map.insert("ok".into(), json!(accepted));
        map.insert("at".into(), json!(at));
    }
    if accepted {
        out.done(human(&inspection, at), data);
        return Ok(());
    }
    if json_mode {
        // One JSON object, then the failure exit status.
        println!("{data}");
        std::process::exit(1);
    }
    println!("{}", human(&inspection, at));
    let code = inspection.verdict.code.unwrap_or("REFUSED");
    let reason = inspection.verdict.reason.clone().unwrap_or_default();
    Err(anyhow::anyhow!("refused ({code}): {reason}"))
}

fn human(inspection: &QuoteInspection, at: u64) -> String {
    let mut lines = Vec::new();
    match &inspection.report {
        Some(r) => {
            lines.push(format!("TEE:              {}", r.tee));
            let judged = if inspection.verdict.policy_applied {
                ""
            } else {
                " (reported, not judged: pass --accept-status to judge it)"
            };
            let status = r
                .tcb_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into());
            lines.push(format!("TCB status:       {status}{judged}"));
            let advisories = if r.advisory_ids.is_empty() {
                "none".to_owned()
            } else {
                r.advisory_ids.join(", ")
            };
            lines.push(format!("Advisories:       {advisories}"));
            lines.push(format!(
                "Debug:            {}",
                if r.debug { "YES" } else { "no" }
            ));
            if let Some(v) = &r.mr_enclave {
                lines.push(format!("MRENCLAVE:        {v}"));
            }
            if let Some(v) = &r.mr_signer {
                lines.push(format!("MRSIGNER:         {v}"));
            }
            if let (Some(prod), Some(svn)) = (r.isv_prod_id, r.isv_svn) {
                lines.push(format!("ISV prod id/SVN:  {prod}/{svn}"));
            }
            if let Some(v) = &r.mr_td {
                lines.push(format!("MRTD:             {v}"));
            }
            if let Some(rtmrs) = &r.rtmrs {
                for (i, v) in rtmrs.iter().enumerate() {
                    lines.push(format!("RTMR{i}:            {v}"));
                }
            }
            lines.push(format!("Report data:      {}", r.report_data));
            if let Some(expires) = r.collateral_expires_at {
                lines.push(format!("Collateral until: {expires} (unix seconds)"));
            }
        }
        None => lines.push("Quote:            not verified".into()),
    }
    lines.push(format!("Verified at:      {at} (unix seconds)"));
    let verdict = match (&inspection.verdict.code, inspection.verdict.accepted) {
        (_, true) => "VALID".to_owned(),
        (Some(code), false) => format!("REFUSED ({code})"),
        (None, false) => "REFUSED".to_owned(),
    };
    lines.push(format!("Verdict:          {verdict}"));
    lines.join("\n")
}

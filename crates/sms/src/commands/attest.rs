//! `sms attest verify`: offline verification of a DCAP quote against its collateral.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use sms_attest::inspect::QuoteFiles;

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

fn verify(args: VerifyArgs, out: &Output, json_mode: bool) -> anyhow::Result<()> {
    let at = args.at.unwrap_or_else(sms_core::clock::unix_now);
    let files = QuoteFiles {
        quote: &args.quote,
        collateral: &args.collateral,
        expect_measurement: args.expect_measurement.as_deref(),
        accept_status: args.accept_status.as_deref(),
        policy: args.policy.as_deref(),
    };
    let inspection = files.inspect(at)?;
    let accepted = inspection.verdict.accepted;
    let data = inspection.report(at)?;
    if accepted {
        out.done(inspection.human(at), data);
        return Ok(());
    }
    if json_mode {
        // One JSON object, then the failure exit status.
        println!("{data}");
        std::process::exit(1);
    }
    println!("{}", inspection.human(at));
    let code = inspection.verdict.code.unwrap_or("REFUSED");
    let reason = inspection.verdict.reason.clone().unwrap_or_default();
    Err(anyhow::anyhow!("refused ({code}): {reason}"))
}

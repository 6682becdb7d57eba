//! `sms bench …`: runs the benchmark harness, the `sms-bench` executable installed next to this
//! one, with the same arguments (its load generator, ceilings and bare-handler server are not
//! part of the `sms` binary). `sms bench --help` is the harness's help.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct BenchArgs {
    /// Options of the benchmark harness (`sms bench --help` lists them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// The harness: `sms-bench` beside the running `sms` (a cargo build of the workspace, or an
/// install of both binaries into one directory).
fn harness() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the sms executable")?;
    let harness = exe.with_file_name("sms-bench");
    anyhow::ensure!(
        harness.is_file(),
        "`sms bench` runs {}, which is missing: build it with `cargo build --release --workspace` \
         (or install the sms-bench crate next to sms)",
        harness.display()
    );
    Ok(harness)
}

/// Replaces this process with the harness (same stdout, stderr and exit status).
pub fn run(args: BenchArgs, json: bool) -> anyhow::Result<()> {
    let harness = harness()?;
    let mut cmd = Command::new(&harness);
    if json && !args.args.iter().any(|a| a == "--json") {
        cmd.arg("--json");
    }
    cmd.args(&args.args);
    let error = cmd.exec();
    Err(error).with_context(|| format!("cannot run {}", harness.display()))
}

//! `sms-bench`: the benchmark harness of the SMS, run as `sms bench …` (the `sms` binary hands
//! its arguments to this executable, installed next to it). See BENCHMARKS.md.

use std::process::ExitCode;

use clap::Parser;
use serde_json::json;

/// The load generator's allocator, as in the `sms` server it measures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure this service against the limits of the machine (loopback only; see BENCHMARKS.md).
#[derive(Parser)]
#[command(name = "sms-bench", bin_name = "sms bench", version, long_about = None)]
struct Cli {
    /// Print one JSON object per line instead of human-readable text.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    bench: sms_bench::BenchArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
        .and_then(|rt| rt.block_on(sms_bench::run(cli.bench, json)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The same shape as every `sms` command's failure.
            let reason = format!("{e:#}");
            if json {
                println!("{}", json!({ "ok": false, "error": reason }));
            } else {
                eprintln!("Error: {reason}");
            }
            ExitCode::FAILURE
        }
    }
}

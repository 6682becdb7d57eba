//! `sms demo`: the requester-secrets tutorial in one command. Starts a `--dev` server in a
//! temporary directory (unless `--sms-url`), deploys the polynomial app f(x) = ax³+bx²+cx+d,
//! pushes its app developer secret `1;1;1;1` and a requester secret `x1` = `2`, runs it with
//! `--secret 1=x1` through the local worker, and prints the result: f(2) = 15.

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use sms_worker::demo::Demo;

use crate::commands::common::SmsArgs;
use crate::output::Output;

#[derive(Args)]
#[command(after_help = "\
Everything the demo creates (server data, wallets, workspace, result) lives in a temporary
directory removed at the end; with --sms-url the app, its secrets and the deal are created on
that --dev server with throw-away wallets. The app is the JavaScript one of
examples/requester-secrets (node), or its Python twin when node is not installed.")]
pub struct DemoArgs {
    /// Use this --dev SMS instead of starting one.
    #[arg(long)]
    pub sms_url: Option<String>,
    /// Print the stages as they run.
    #[arg(long)]
    pub watch: bool,
    /// Run the Python app even when node is installed.
    #[arg(long)]
    pub python: bool,
}

pub async fn run(args: DemoArgs, out: &Output) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("sms-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let server = match &args.sms_url {
        Some(_) => None,
        None => Some(
            sms_server::start_dev(&dir.path().join("data"))
                .await
                .context("the dev server did not start")?,
        ),
    };
    let sms = SmsArgs {
        sms_url: args
            .sms_url
            .clone()
            .or_else(|| server.as_ref().map(|s| s.url()))
            .unwrap_or_default(),
        ca_cert: None,
    };
    let demo = Demo {
        client: sms.client()?,
        sms_url: sms.sms_url,
        dir: dir.path(),
        watch: args.watch,
        python: args.python,
    };
    let report = sms_worker::demo::run(demo).await;
    if let Some(server) = server {
        server.shutdown().await;
    }
    let report = report?;
    let ok = report.ok;
    let mut data = serde_json::to_value(&report)?;
    data["note"] =
        json!("the demo's temporary directory (server, workspace, result archive) is removed");
    out.done(report.human(), data);
    drop(dir);
    if !ok {
        bail!(
            "the demo task failed: {}",
            report.cause.as_deref().unwrap_or("unknown cause")
        );
    }
    Ok(())
}

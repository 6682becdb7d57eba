//! `sms demo`: the requester-secrets tutorial in one command. Starts a `--dev` server in a
//! temporary directory (unless `--sms-url`), deploys the polynomial app f(x) = ax³+bx²+cx+d,
//! pushes its app developer secret `1;1;1;1` and a requester secret `x1` = `2`, runs it with
//! `--secret 1=x1` through the local worker, and prints the result: f(2) = 15.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use alloy_signer_local::PrivateKeySigner;
use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};
use sms_core::deal_params::ParamsBuilder;

use sms_worker::dev_deal::{DealRequest, DevPool, create_dev_deal, deploy_dev_entry};

use crate::commands::common::{LocalWorkerArgs, SmsArgs, worker_setup};
use crate::output::Output;

const APP_JS: &str = include_str!("../../../../examples/requester-secrets/js/app.js");
const APP_PY: &str = include_str!("../../../../examples/requester-secrets/python/app.py");

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

/// The `sms server --dev` child, killed when dropped.
struct DevServer {
    child: Child,
    url: String,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path) -> anyhow::Result<DevServer> {
    let exe = std::env::current_exe().context("cannot find the sms executable")?;
    let mut child = std::process::Command::new(exe)
        .args([
            "server",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--data-dir",
        ])
        .arg(dir.join("data"))
        .env("SMS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start `sms server --dev`")?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no server output"))?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("cannot read the server's start-up line")?;
    let started: Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(_) => {
            let _ = child.kill();
            bail!("the dev server did not start")
        }
    };
    let url = started
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(DevServer { child, url })
}

fn has(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub async fn run(args: DemoArgs, out: &Output) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("sms-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let server = match &args.sms_url {
        Some(_) => None,
        None => Some(start_server(dir.path())?),
    };
    let sms = SmsArgs {
        sms_url: args
            .sms_url
            .clone()
            .or_else(|| server.as_ref().map(|s| s.url.clone()))
            .unwrap_or_default(),
        ca_cert: None,
    };
    let client = sms.client()?;
    // Wait until the server answers.
    let mut ready = false;
    for _ in 0..50 {
        if client.version().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !ready {
        bail!("the SMS at {} does not answer", sms.sms_url);
    }

    let (interpreter, file, source) = if !args.python && has("node") {
        ("node", "app.js", APP_JS)
    } else if has("python3") {
        ("python3", "app.py", APP_PY)
    } else {
        bail!("the demo app needs node or python3");
    };
    let app_path = dir.path().join(file);
    std::fs::write(&app_path, source).context("cannot write the demo app")?;
    let fingerprint = sms_core::hex::encode_prefixed(sms_core::hash::sha256(source.as_bytes()));
    let config = json!({
        "framework": "SCONE",
        "version": "v5",
        "entrypoint": format!("{interpreter} {}", app_path.display()),
        "heapSize": 1_073_741_824u64,
        "fingerprint": fingerprint.trim_start_matches("0x"),
    });

    let owner = PrivateKeySigner::random();
    let requester = PrivateKeySigner::random();
    let say = |text: &str| {
        if args.watch {
            eprintln!("[sms demo] {text}");
        }
    };
    let app = deploy_dev_entry(
        &client,
        "/dev/apps",
        &json!({ "owner": owner.address().to_string(), "name": "polynomial", "mrenclave": config.to_string(), "multiaddr": "" }),
    )
    .await?;
    say(&format!(
        "deployed the polynomial app at {app} ({interpreter})"
    ));
    let app_address = sms_core::secret::parse_address(&app)?;
    client
        .push_app_secret(&owner, app_address, "1;1;1;1")
        .await?;
    say("pushed the app developer secret a;b;c;d");
    client.push_requester_secret(&requester, "x1", "2").await?;
    say("pushed the requester secret x1");

    let params = ParamsBuilder::new().secret("1", "x1")?.build(true, false)?;
    let request = DealRequest {
        app,
        dataset: None,
        requester: requester.address().to_string(),
        beneficiary: requester.address().to_string(),
        tag: sms_core::tag::parse_tag("tee,scone").map_err(|e| anyhow!("{e}"))?,
        params,
    };
    let worker_args = LocalWorkerArgs {
        results_dir: dir.path().join("results"),
        workspace_root: Some(dir.path().join("workspaces")),
        stage_timeout: 120,
        workerpool_file: Some(dir.path().join("dev-workerpool.json")),
        show_logs: false,
        sms_public_key: None,
    };
    let mut pool = DevPool::load_or_create(worker_args.workerpool_file.as_deref())?;
    let (_, task) = create_dev_deal(&client, &sms.sms_url, &mut pool, &request).await?;
    say(&format!("running task {task} with --secret 1=x1"));
    let setup = worker_setup(&sms, &pool, &worker_args, args.watch)?;
    let report = setup
        .run_task(sms_worker::local::parse_task_id(&task)?)
        .await?;
    drop(server);
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

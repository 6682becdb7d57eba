//! `sms demo`: the requester-secrets tutorial on a `--dev` SMS. Deploys the polynomial app
//! f(x) = ax³+bx²+cx+d (the JavaScript app of examples/requester-secrets, or its Python twin),
//! pushes its app developer secret `1;1;1;1` and a requester secret `x1` = `2` with throw-away
//! wallets, and runs it with `--secret 1=x1` through the local worker: f(2) = 15.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use alloy_signer_local::PrivateKeySigner;
use anyhow::{Context, anyhow, bail};
use serde_json::json;
use sms_client::SmsClient;
use sms_core::deal_params::ParamsBuilder;

use crate::dev_deal::{DealRequest, DevPool, create_dev_deal, deploy_dev_entry};
use crate::local::{RunReport, WorkerSetup};

const APP_JS: &str = include_str!("../../../examples/requester-secrets/js/app.js");
const APP_PY: &str = include_str!("../../../examples/requester-secrets/python/app.py");

/// How the demo runs.
pub struct Demo<'a> {
    /// The `--dev` SMS, and its URL as given.
    pub client: SmsClient,
    pub sms_url: String,
    /// Where the app, the dev workerpool file, the workspaces and the result go.
    pub dir: &'a Path,
    /// Print the stages as they run.
    pub watch: bool,
    /// Run the Python app even when node is installed.
    pub python: bool,
}

fn has(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits until the SMS answers (5 s at most).
async fn wait_ready(client: &SmsClient, sms_url: &str) -> anyhow::Result<()> {
    for _ in 0..50 {
        if client.version().await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the SMS at {sms_url} does not answer");
}

/// Runs the demo's task to its end; the report says whether it succeeded.
pub async fn run(demo: Demo<'_>) -> anyhow::Result<RunReport> {
    let Demo {
        client,
        sms_url,
        dir,
        watch,
        python,
    } = demo;
    wait_ready(&client, &sms_url).await?;

    let (interpreter, file, source) = if !python && has("node") {
        ("node", "app.js", APP_JS)
    } else if has("python3") {
        ("python3", "app.py", APP_PY)
    } else {
        bail!("the demo app needs node or python3");
    };
    let app_path = dir.join(file);
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
        if watch {
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
    let mut pool = DevPool::load_or_create(Some(&dir.join("dev-workerpool.json")))?;
    let (_, task) = create_dev_deal(&client, &sms_url, &mut pool, &request).await?;
    say(&format!("running task {task} with --secret 1=x1"));
    let setup = WorkerSetup {
        client,
        sms_url,
        ca_cert: None,
        pool_owner: pool.owner.clone(),
        worker: pool.worker.clone(),
        results_dir: dir.join("results"),
        workspace_root: Some(dir.join("workspaces")),
        stage_timeout: Duration::from_secs(120),
        watch,
        show_logs: false,
        sms_public_key: None,
        chain: None,
    };
    setup.run_task(crate::local::parse_task_id(&task)?).await
}

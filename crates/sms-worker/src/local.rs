//! The local worker: plays the scheduler and the worker for one TEE task against an SMS, and runs
//! the three stages as separate processes through `sms enclave run` with simulated evidence.
//!
//! 1. reads the task description (`GET /dev/tasks/{taskId}`: task, deal, app enclave config,
//!    dataset) and the pipeline (`GET /tee/properties/{framework}/{version}`);
//! 2. scheduler: asks the enclave challenge (`POST /tee/challenges/{taskId}`, signed by the
//!    workerpool owner) and signs the WorkerpoolAuthorization with the same wallet;
//! 3. worker: pushes its result-storage token (web2 `iexec-result-iexec-ipfs-token`, as the
//!    upstream worker does; unused by the local storage), requests the session
//!    (`POST /tee/sessions`, signed by the worker wallet);
//! 4. pins the SMS key (`--sms-public-key`, else the key the SMS announces), and
//!    creates a per-task workspace (`iexec_in/`, `iexec_out/`, `post-compute-tmp/`, logs) and
//!    runs, each as `sms enclave run --evidence simulated --measurement <expected> -- …`:
//!    pre-compute (`sms worker pre-compute`, only with a dataset or input files), the app
//!    (`sms worker exec-app -- <entrypoint words> <args words>` in the workspace: argv, no
//!    shell, see `sms_core::deal_params::app_argv`), post-compute
//!    (`sms worker post-compute`), with an environment cleared of everything but `PATH`, `HOME`,
//!    locale variables and the local-worker directories;
//! 5. checks the enclave signature as a worker does (it must recover to the challenge), and
//!    removes the workspace: only `<results>/<taskId>.zip` and `<taskId>.computed.json` remain.
//!
//! A stage's failure cause comes from structured channels only, never from its output: the
//! cause file the built-in stages write ([`ENV_EXIT_CAUSE_FILE`]), the refusal file the
//! launcher writes when the SMS refuses the release ([`LaunchRefusal`]), else the exit code
//! or the timeout ([`ExitCause::unreported`], [`ExitCause::timeout`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use alloy_signer_local::PrivateKeySigner;
use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use sms_client::SmsClient;
use sms_client::tee::TeeCallError;
use sms_core::authorization::WorkerpoolAuthorization;
use sms_core::enclave_config::TeeEnclaveConfiguration;
use sms_core::ledger::{Deal, Task};
use sms_core::pipeline::TeeProperties;
use sms_core::session_plan::EnclaveRole;
use sms_core::signature::{EthSignature, sign_eip191};
use sms_core::{Address, B256};

use crate::exit_cause::{ExitCause, ExitCauseReport};
use crate::stage::{
    ENV_EXIT_CAUSE_FILE, ENV_LOCAL_IEXEC_IN, ENV_LOCAL_IEXEC_OUT, ENV_POST_COMPUTE_TMP,
    ENV_RESULT_DIR,
};

/// What the local worker needs besides the task id.
pub struct WorkerSetup {
    pub client: SmsClient,
    pub sms_url: String,
    pub ca_cert: Option<PathBuf>,
    pub pool_owner: PrivateKeySigner,
    pub worker: PrivateKeySigner,
    pub results_dir: PathBuf,
    pub workspace_root: Option<PathBuf>,
    pub stage_timeout: Duration,
    /// Print each stage as it starts and ends (stderr).
    pub watch: bool,
    /// Copy each stage's output (the app's included) to stderr after it ends. What an app
    /// prints is then outside the enclave workspace: apps must not print secrets.
    pub show_logs: bool,
    /// The SMS key the launchers pin (base64); `None`: the key the SMS announces.
    pub sms_public_key: Option<String>,
    /// Read the task from this PoCo ledger instead of the SMS's `GET /dev/tasks`.
    pub chain: Option<std::sync::Arc<dyn sms_chain::Ledger>>,
}

/// The outcome of one stage.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageReport {
    pub stage: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub seconds: f64,
}

/// The outcome of a task run.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub task_id: String,
    pub deal_id: String,
    pub ok: bool,
    pub stages: Vec<StageReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_archive: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub computed_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enclave_signature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enclave_challenge: Option<String>,
    pub signature_verified: bool,
    pub encrypted: bool,
    /// The deterministic output file when it is a small UTF-8 file of a plain result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

impl RunReport {
    fn new(task_id: B256, deal_id: B256) -> Self {
        Self {
            task_id: task_id.to_string(),
            deal_id: deal_id.to_string(),
            ok: false,
            stages: Vec::new(),
            cause: None,
            result_archive: None,
            computed_file: None,
            result_digest: None,
            enclave_signature: None,
            enclave_challenge: None,
            signature_verified: false,
            encrypted: false,
            result: None,
        }
    }

    /// Human-readable summary.
    pub fn human(&self) -> String {
        let mut text = format!("Task {} (deal {})\n", self.task_id, self.deal_id);
        for s in &self.stages {
            let status = if s.ok {
                "ok".to_owned()
            } else {
                format!("FAILED {}", s.cause.as_deref().unwrap_or(""))
            };
            text.push_str(&format!("  {:<13} {status} ({:.1} s)", s.stage, s.seconds));
            if let Some(m) = s.message.as_deref().filter(|_| !s.ok) {
                text.push_str(&format!(": {m}"));
            }
            text.push('\n');
        }
        if self.ok {
            if let Some(a) = &self.result_archive {
                text.push_str(&format!(
                    "Result archive:    {}{}\n",
                    a.display(),
                    if self.encrypted { " (encrypted)" } else { "" }
                ));
            }
            if let Some(c) = &self.computed_file {
                text.push_str(&format!("Computed file:     {}\n", c.display()));
            }
            text.push_str(&format!(
                "Result digest:     {}\n",
                self.result_digest.as_deref().unwrap_or("")
            ));
            text.push_str(&format!(
                "Enclave signature: {} ({})\n",
                self.enclave_signature.as_deref().unwrap_or(""),
                if self.signature_verified {
                    "verified against the enclave challenge"
                } else {
                    "NOT verified"
                }
            ));
            if let Some(r) = &self.result {
                text.push_str(&format!("Result:            {}\n", r.trim_end()));
            }
        } else {
            text.push_str(&format!(
                "Task failed: {}\n",
                self.cause.as_deref().unwrap_or("unknown cause")
            ));
        }
        text.trim_end().to_owned()
    }
}

/// `GET /dev/tasks/{taskId}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskDescription {
    task: Task,
    deal: Deal,
    app_enclave_config: String,
}

/// What the launcher (`sms enclave run --refusal-file <path>`) writes when the SMS refuses to
/// release a service's environment, so that its orchestrator learns the refusal code without
/// reading the launcher's output: `{"code":"RELEASE_LIMIT_REACHED","message":"…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchRefusal {
    /// The SMS's stable refusal code, e.g. `MEASUREMENT_MISMATCH`.
    pub code: String,
    pub message: String,
}

impl LaunchRefusal {
    /// Writes the refusal for the orchestrator (best effort: the launcher fails either way).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, serde_json::to_vec(self)?)
    }

    /// The refusal a launcher wrote, `None` when it wrote none (or an unreadable one).
    pub fn read(path: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
}

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn create(root: Option<&Path>) -> anyhow::Result<Self> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("sms-task-");
        let dir = match root {
            Some(r) => {
                std::fs::create_dir_all(r)
                    .with_context(|| format!("cannot create {}", r.display()))?;
                builder.tempdir_in(r)
            }
            None => builder.tempdir(),
        }
        .context("cannot create the task workspace")?;
        for sub in ["iexec_in", "iexec_out", "post-compute-tmp", "logs"] {
            std::fs::create_dir(dir.path().join(sub))
                .context("cannot create the task workspace")?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700));
        }
        Ok(Self { dir })
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }
}

/// How a stage ended when it did not exit by itself.
enum StageEnd {
    /// Over its time limit: ended, with its process group.
    TimedOut,
    /// Could not be started or waited for.
    Broken(String),
}

/// Environment variables passed from the worker's own environment to the stages.
const PASSED_THROUGH: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT"];

struct StageSpec<'a> {
    role: EnclaveRole,
    measurement: &'a str,
    command: Vec<String>,
}

impl WorkerSetup {
    async fn describe(&self, task_id: B256) -> anyhow::Result<TaskDescription> {
        if let Some(ledger) = &self.chain {
            let task = ledger.task(task_id).await?.ok_or_else(|| {
                anyhow!("task {task_id} is not on the chain (initialize it first)")
            })?;
            let deal = ledger
                .deal(task.deal_id)
                .await?
                .ok_or_else(|| anyhow!("deal {} is not on the chain", task.deal_id))?;
            let app = ledger
                .app(deal.app.pointer)
                .await?
                .ok_or_else(|| anyhow!("app {} is not on the chain", deal.app.pointer))?;
            return Ok(TaskDescription {
                task,
                deal,
                app_enclave_config: String::from_utf8_lossy(&app.mrenclave).into_owned(),
            });
        }
        self.client
            .get_json(&format!("/dev/tasks/{task_id}"))
            .await
            .map_err(|e| match e.code() {
                Some("HTTP_404") => anyhow!("the SMS has no dev task API (start it with --dev) or the task does not exist: {e}"),
                _ => anyhow!("cannot read task {task_id}: {e}"),
            })
    }

    /// Runs the task; errors are failures before any stage (the report says which stage failed).
    pub async fn run_task(&self, task_id: B256) -> anyhow::Result<RunReport> {
        let exe = std::env::current_exe().context("cannot find the sms executable")?;
        let description = self.describe(task_id).await?;
        let deal = &description.deal;
        let mut report = RunReport::new(task_id, deal.deal_id);
        if deal.workerpool.owner != self.pool_owner.address() {
            bail!(
                "the deal's workerpool {} is owned by {}, not by the workerpool wallet of this worker ({}): put the owner's key in the workerpool file",
                deal.workerpool.pointer,
                deal.workerpool.owner,
                self.pool_owner.address()
            );
        }
        let Some(config) =
            TeeEnclaveConfiguration::from_mrenclave(description.app_enclave_config.as_bytes())
                .map_err(|e| anyhow!("the app's enclave configuration is invalid: {e}"))?
        else {
            bail!(
                "the app has no enclave configuration (APP_COMPUTE_NO_ENCLAVE_CONFIG): deploy it with --mrenclave"
            );
        };
        let valid = config
            .validate()
            .map_err(|e| anyhow!("the app's enclave configuration is invalid: {e}"))?;
        let properties: TeeProperties = self
            .client
            .get_json(&format!(
                "/tee/properties/{}/{}",
                valid.framework.as_str(),
                valid.version
            ))
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot read the SMS pipeline for {} {}: {e}",
                    valid.framework.as_str(),
                    valid.version
                )
            })?;

        // Scheduler.
        self.progress(&format!("task {task_id}: asking the enclave challenge"));
        let challenge = match self.client.tee_challenge(&self.pool_owner, task_id).await {
            Ok(c) => c,
            Err(e) => return Ok(self.fail_before(report, "scheduler", "challenge", &e)),
        };
        report.enclave_challenge = Some(challenge.to_string());
        let authorization = self.authorization(&description.task, deal, challenge);

        // Worker.
        self.push_storage_token().await?;
        let session = match self.client.tee_session(&self.worker, &authorization).await {
            Ok(s) => s,
            Err(e) => return Ok(self.fail_before(report, "worker", "session", &e)),
        };
        self.progress("session created; running the stages");

        let params = sms_core::deal_params::parse(&deal.params).params;
        let needs_pre = deal.has_dataset() || params.has_input_files() || params.has_bulk();
        let workspace = Workspace::create(self.workspace_root.as_deref())?;
        std::fs::create_dir_all(&self.results_dir)
            .with_context(|| format!("cannot create {}", self.results_dir.display()))?;
        let results_dir = self
            .results_dir
            .canonicalize()
            .unwrap_or_else(|_| self.results_dir.clone());

        let Some(entrypoint) = valid.entrypoint.as_deref() else {
            bail!(
                "the app's enclave configuration has no entrypoint: the local worker cannot start it"
            );
        };
        let app_argv = sms_core::deal_params::app_argv(entrypoint, params.iexec_args.as_deref());
        let pinned = self.pinned_key().await?;
        let exe_s = exe.display().to_string();
        let mut stages = Vec::new();
        if needs_pre {
            stages.push(StageSpec {
                role: EnclaveRole::PreCompute,
                measurement: &properties.pre_compute_properties.fingerprint,
                command: vec![exe_s.clone(), "worker".into(), "pre-compute".into()],
            });
        }
        stages.push(StageSpec {
            role: EnclaveRole::App,
            measurement: valid.measurement().as_hex(),
            command: [
                exe_s.clone(),
                "worker".into(),
                "exec-app".into(),
                "--".into(),
            ]
            .into_iter()
            .chain(app_argv)
            .collect(),
        });
        stages.push(StageSpec {
            role: EnclaveRole::PostCompute,
            measurement: &properties.post_compute_properties.fingerprint,
            command: vec![exe_s.clone(), "worker".into(), "post-compute".into()],
        });

        let mut failed = false;
        for spec in &stages {
            let stage = self
                .run_stage(
                    &exe,
                    &session.session_id,
                    &pinned,
                    spec,
                    &workspace,
                    &results_dir,
                )
                .await;
            failed = !stage.ok;
            if failed {
                report.cause = Some(format!(
                    "{}: {}",
                    stage.stage,
                    stage.cause.clone().unwrap_or_default()
                ));
            }
            report.stages.push(stage);
            if failed {
                break;
            }
        }
        drop(workspace);
        if failed {
            return Ok(report);
        }
        self.collect(&mut report, task_id, challenge, &results_dir);
        Ok(report)
    }

    fn progress(&self, text: &str) {
        if self.watch {
            eprintln!("[sms worker] {text}");
        }
    }

    fn fail_before(
        &self,
        mut report: RunReport,
        actor: &str,
        step: &str,
        e: &TeeCallError,
    ) -> RunReport {
        let cause = match (step, e.code()) {
            ("session", Some(code)) => format!("TEE_SESSION_GENERATION_{code}"),
            (_, Some(code)) => code.to_owned(),
            _ => "UNKNOWN".to_owned(),
        };
        report.stages.push(StageReport {
            stage: format!("{actor} ({step})"),
            ok: false,
            exit_code: None,
            cause: Some(cause.clone()),
            message: Some(e.to_string()),
            seconds: 0.0,
        });
        report.cause = Some(format!("{step}: {cause}: {e}"));
        report
    }

    fn authorization(
        &self,
        task: &Task,
        deal: &Deal,
        challenge: Address,
    ) -> WorkerpoolAuthorization {
        let mut authorization = WorkerpoolAuthorization {
            chain_task_id: task.task_id,
            deal_id: deal.deal_id,
            task_index: task.index,
            worker_wallet: self.worker.address(),
            enclave_challenge: challenge,
            signature: sign_eip191(&self.pool_owner, &B256::ZERO),
        };
        authorization.signature = sign_eip191(&self.pool_owner, &authorization.hash());
        authorization
    }

    /// Upstream workers push a result-proxy token under their own address before asking a
    /// session; the session requires a storage token. The local storage ignores its value.
    async fn push_storage_token(&self) -> anyhow::Result<()> {
        use sms_client::Web2Write;
        let name = sms_core::session_plan::WEB2_IPFS_TOKEN;
        let exists = self
            .client
            .web2_secret_exists(self.worker.address(), name)
            .await?;
        if !exists {
            self.client
                .push_web2_secret(&self.worker, name, "sms-local-worker", Web2Write::Create)
                .await
                .context("cannot push the worker's result storage token")?;
        }
        Ok(())
    }

    /// The key the launchers pin: the configured one, else the one the SMS announces.
    async fn pinned_key(&self) -> anyhow::Result<String> {
        let text = match &self.sms_public_key {
            Some(key) => key.clone(),
            None => {
                self.client
                    .provision_identity()
                    .await
                    .map_err(|e| {
                        anyhow!(
                            "cannot read the SMS identity (GET /tee/provisioning/identity): {e}"
                        )
                    })?
                    .public_key
            }
        };
        let key = sms_attest::SmsPublicKey::from_base64(&text)
            .map_err(|e| anyhow!("--sms-public-key: {e}"))?;
        self.progress(&format!("stages pin the SMS key {}", key.key_id()));
        Ok(key.to_base64())
    }

    async fn run_stage(
        &self,
        exe: &Path,
        session_id: &str,
        pinned: &str,
        spec: &StageSpec<'_>,
        ws: &Workspace,
        results: &Path,
    ) -> StageReport {
        let name = spec.role.name();
        self.progress(&format!("{name}: starting"));
        let started = std::time::Instant::now();
        let cause_file = ws.path(&format!("logs/{name}.causes.json"));
        let refusal_file = ws.path(&format!("logs/{name}.refusal.json"));
        let log_path = ws.path(&format!("logs/{name}.log"));
        let mut report = StageReport {
            stage: name.to_owned(),
            ok: false,
            exit_code: None,
            cause: None,
            message: None,
            seconds: 0.0,
        };
        let log = match std::fs::File::create(&log_path).and_then(|f| Ok((f.try_clone()?, f))) {
            Ok(pair) => pair,
            Err(e) => {
                report.cause = Some(ExitCause::unreported(spec.role, None).name());
                report.message = Some(format!("cannot create the stage log: {e}"));
                return report;
            }
        };
        let mut command = tokio::process::Command::new(exe);
        command
            .arg("enclave")
            .arg("run")
            .arg("--sms-url")
            .arg(&self.sms_url)
            .arg("--session")
            .arg(session_id)
            .arg("--service")
            .arg(name)
            .arg("--sms-public-key")
            .arg(pinned)
            .arg("--refusal-file")
            .arg(&refusal_file)
            .arg("--evidence")
            .arg("simulated")
            .arg("--measurement")
            .arg(spec.measurement)
            .arg("--")
            .args(&spec.command)
            .env_clear()
            .current_dir(ws.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.0))
            .stderr(Stdio::from(log.1))
            .kill_on_drop(true);
        // Its own process group, so a timeout ends the app's children too.
        #[cfg(unix)]
        command.process_group(0);
        for var in PASSED_THROUGH {
            if let Some(v) = std::env::var_os(var) {
                command.env(var, v);
            }
        }
        if let Some(ca) = &self.ca_cert {
            command.env("SMS_CA_CERT", ca);
        }
        let locals: BTreeMap<&str, PathBuf> = BTreeMap::from([
            (ENV_LOCAL_IEXEC_IN, ws.path("iexec_in")),
            (ENV_LOCAL_IEXEC_OUT, ws.path("iexec_out")),
            (ENV_POST_COMPUTE_TMP, ws.path("post-compute-tmp")),
            (ENV_RESULT_DIR, results.to_path_buf()),
            (ENV_EXIT_CAUSE_FILE, cause_file.clone()),
        ]);
        command.envs(locals);
        let status = match command.spawn() {
            Ok(mut child) => match tokio::time::timeout(self.stage_timeout, child.wait()).await {
                Ok(Ok(status)) => Ok(status),
                Ok(Err(e)) => Err(StageEnd::Broken(format!("cannot wait for the stage: {e}"))),
                Err(_) => {
                    #[cfg(unix)]
                    if let Some(pid) = child.id() {
                        let _ = std::process::Command::new("kill")
                            .args(["-s", "KILL", "--", &format!("-{pid}")])
                            .stderr(Stdio::null())
                            .status();
                    }
                    let _ = child.kill().await;
                    Err(StageEnd::TimedOut)
                }
            },
            Err(e) => Err(StageEnd::Broken(format!("cannot start the stage: {e}"))),
        };
        report.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        if self.show_logs {
            for line in std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .lines()
            {
                eprintln!("[{name}] {line}");
            }
        }
        match status {
            Ok(s) if s.success() => report.ok = true,
            Ok(s) => {
                report.exit_code = s.code();
                let causes: Option<Vec<ExitCauseReport>> =
                    crate::stage::read_cause_file(&cause_file);
                if let Some(first) = causes.as_ref().and_then(|c| c.first()) {
                    report.cause = Some(first.cause.name());
                    report.message = Some(first.message.clone());
                } else if let Some(refusal) = LaunchRefusal::read(&refusal_file) {
                    let code = refusal.code;
                    report.cause = Some(format!("ATTESTATION_REFUSED_{code}"));
                    report.message = Some(format!(
                        "the SMS refused to release the {name} environment ({code})"
                    ));
                } else {
                    report.cause = Some(ExitCause::unreported(spec.role, s.code()).name());
                    report.message = Some(format!(
                        "exit code {}",
                        s.code()
                            .map(|c| c.to_string())
                            .unwrap_or_else(|| "none (killed)".into())
                    ));
                }
            }
            Err(StageEnd::TimedOut) => {
                report.cause = Some(ExitCause::timeout(spec.role).name());
                report.message = Some(format!("no exit after {} s", self.stage_timeout.as_secs()));
            }
            Err(StageEnd::Broken(reason)) => {
                report.cause = Some(ExitCause::unreported(spec.role, None).name());
                report.message = Some(reason);
            }
        }
        self.progress(&format!(
            "{name}: {} ({:.1} s)",
            if report.ok {
                "ok".to_owned()
            } else {
                format!("failed {}", report.cause.as_deref().unwrap_or(""))
            },
            report.seconds
        ));
        report
    }

    /// Reads what post-compute stored and checks the enclave signature as a worker does.
    fn collect(&self, report: &mut RunReport, task_id: B256, challenge: Address, results: &Path) {
        let stem = crate::post_compute::file_stem(&task_id.to_string());
        let computed_path = results.join(format!("{stem}.computed.json"));
        let archive = results.join(format!("{stem}.zip"));
        let computed = match crate::computed::ComputedFile::read(&computed_path) {
            Ok(c) => c,
            Err(e) => {
                report.cause = Some(format!(
                    "post-compute: the computed file is unreadable: {e}"
                ));
                return;
            }
        };
        let digest = computed.result_digest.clone().unwrap_or_default();
        let signature = computed.enclave_signature.clone().unwrap_or_default();
        let worker = self.worker.address().to_string();
        report.signature_verified =
            crate::enclave_signature::enclave_message(&task_id.to_string(), &worker, &digest)
                .ok()
                .and_then(|(_, _, message)| {
                    EthSignature::parse(&signature)
                        .ok()?
                        .recover_eip191(&message)
                        .ok()
                })
                .is_some_and(|signer| signer == challenge);
        report.result_digest = Some(digest);
        report.enclave_signature = Some(signature);
        report.computed_file = Some(computed_path);
        if archive.is_file() {
            report.encrypted = archive_is_encrypted(&archive);
            if !report.encrypted {
                report.result =
                    small_result(&archive, computed.deterministic_output_path.as_deref());
            }
            report.result_archive = Some(archive);
        }
        report.ok = report.signature_verified;
        if !report.ok {
            report.cause =
                Some("the enclave signature does not recover to the enclave challenge".into());
        }
    }
}

fn archive_is_encrypted(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    zip::ZipArchive::new(file)
        .map(|z| z.index_for_name(crate::result_archive::KEY_ENTRY).is_some())
        .unwrap_or(false)
}

/// The deterministic output file of a plain result archive, when small UTF-8 text.
fn small_result(path: &Path, declared: Option<&str>) -> Option<String> {
    use std::io::Read;
    let declared = declared?;
    let name = declared
        .strip_prefix("/iexec_out/")
        .or_else(|| Path::new(declared).file_name()?.to_str())?;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).ok()?).ok()?;
    let entry = zip.by_name(name).ok()?;
    if entry.size() > 64 * 1024 {
        return None;
    }
    let mut text = String::new();
    entry.take(64 * 1024).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Reads a dev task id argument.
pub fn parse_task_id(text: &str) -> anyhow::Result<B256> {
    text.trim()
        .parse()
        .map_err(|_| anyhow!("task id: expected 0x followed by 64 hex digits"))
}

/// The PoCo ledger at `rpc` (hub `hub`, chain `chain_id`), for a task read from the chain
/// (`sms worker run --chain-rpc --hub`).
pub async fn connect_poco(
    rpc: &str,
    hub: &str,
    chain_id: u64,
) -> anyhow::Result<std::sync::Arc<dyn sms_chain::Ledger>> {
    let hub = sms_core::secret::parse_address(hub)?;
    let config = sms_chain::poco::PocoConfig::new(rpc.to_owned(), hub, chain_id);
    let ledger = sms_chain::poco::PocoLedger::connect(config)
        .await
        .map_err(|e| anyhow::anyhow!("chain: {e}"))?;
    Ok(std::sync::Arc::new(ledger))
}

//! What the built-in pre-compute and post-compute stages share: where they read their inputs
//! (the environment only), how enclave paths map to the local worker's directories, and how a
//! failure is reported.
//!
//! ## Environment
//!
//! The session variables are the upstream ones (`IEXEC_TASK_ID`, `IEXEC_PRE_COMPUTE_OUT`,
//! `SIGN_WORKER_ADDRESS`, `RESULT_ENCRYPTION`, …). A missing or empty variable is "missing".
//!
//! ## Local directories
//!
//! The SMS session names the enclave paths `/iexec_in` and `/iexec_out`. A local worker has
//! no such mounts, so it tells the stages (outside the session, in variables that hold no
//! secret) which real directories stand for them:
//!
//! | variable | meaning |
//! |---|---|
//! | [`ENV_LOCAL_IEXEC_IN`] | the real directory behind `/iexec_in` |
//! | [`ENV_LOCAL_IEXEC_OUT`] | the real directory behind `/iexec_out` |
//! | [`ENV_POST_COMPUTE_TMP`] | post-compute scratch directory (default: a temporary directory inside the result directory) |
//! | [`ENV_RESULT_DIR`] | where post-compute "uploads": `<taskId>.zip` and `<taskId>.computed.json` |
//! | [`ENV_EXIT_CAUSE_FILE`] | optional file receiving the failure causes as a JSON list |
//!
//! A session path equal to `/iexec_in` or below it is rebased onto the real directory; any
//! other path is used as is (so a stage run by hand can be given real paths directly).
//!
//! ## Reporting
//!
//! Upstream stages POST their failure cause to the worker, authenticated with the enclave
//! challenge key. Locally the cause is written as one JSON line on standard error,
//! `{"stage":"pre-compute","cause":"PRE_COMPUTE_…","message":"…"}`, and, when
//! [`ENV_EXIT_CAUSE_FILE`] is set, as `[{"cause":…,"message":…}]` into that file. Exit codes
//! are upstream's: 0 success, 1 failure reported, 2 failure that could not be reported with
//! the enclave's authority (sign tokens missing or unusable: the cause is still printed, but
//! a worker must not trust it), 3 task id missing. Messages never contain a secret or the
//! value of a session variable other than public identifiers (checksums, URLs, file names).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::enclave_signature::{parse_challenge_key, sign_worker_api_auth};
use crate::exit_cause::{ExitCause, ExitCauseReport};

/// Real directory standing for the enclave's `/iexec_in`.
pub const ENV_LOCAL_IEXEC_IN: &str = "SMS_WORKER_IEXEC_IN";
/// Real directory standing for the enclave's `/iexec_out`.
pub const ENV_LOCAL_IEXEC_OUT: &str = "SMS_WORKER_IEXEC_OUT";
/// Post-compute scratch directory.
pub const ENV_POST_COMPUTE_TMP: &str = "SMS_POST_COMPUTE_TMP";
/// Local "upload" target of post-compute.
pub const ENV_RESULT_DIR: &str = "SMS_RESULT_DIR";
/// Optional file receiving the failure causes.
pub const ENV_EXIT_CAUSE_FILE: &str = "SMS_EXIT_CAUSE_FILE";
/// Download timeout in seconds (default 300).
pub const ENV_DOWNLOAD_TIMEOUT: &str = "SMS_DOWNLOAD_TIMEOUT_SECS";

/// Where a stage reads its variables.
pub trait EnvSource {
    /// The value, `None` when unset or not UTF-8.
    fn raw(&self, name: &str) -> Option<String>;

    /// The value, `None` when unset or empty (upstream "missing or empty").
    fn var(&self, name: &str) -> Option<String> {
        self.raw(name).filter(|v| !v.is_empty())
    }
}

/// The process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn raw(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn raw(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl EnvSource for BTreeMap<&str, String> {
    fn raw(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// A pipeline stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    PreCompute,
    PostCompute,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::PreCompute => "pre-compute",
            Stage::PostCompute => "post-compute",
        }
    }

    fn task_id_missing(self) -> ExitCause {
        match self {
            Stage::PreCompute => ExitCause::PreComputeTaskIdMissing,
            Stage::PostCompute => ExitCause::PostComputeTaskIdMissing,
        }
    }

    fn worker_address_missing(self) -> ExitCause {
        match self {
            Stage::PreCompute => ExitCause::PreComputeWorkerAddressMissing,
            Stage::PostCompute => ExitCause::PostComputeWorkerAddressMissing,
        }
    }

    fn challenge_key_missing(self) -> ExitCause {
        match self {
            Stage::PreCompute => ExitCause::PreComputeTeeChallengePrivateKeyMissing,
            Stage::PostCompute => ExitCause::PostComputeTeeChallengePrivateKeyMissing,
        }
    }

    fn invalid_signature(self) -> ExitCause {
        match self {
            Stage::PreCompute => ExitCause::PreComputeInvalidTeeSignature,
            Stage::PostCompute => ExitCause::PostComputeInvalidTeeSignature,
        }
    }
}

/// A failure: the upstream cause and a message free of secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub cause: ExitCause,
    pub message: String,
}

impl Failure {
    pub fn new(cause: ExitCause, message: impl Into<String>) -> Self {
        Self {
            cause,
            message: message.into(),
        }
    }
}

impl From<ExitCause> for Failure {
    fn from(cause: ExitCause) -> Self {
        Self::new(cause, cause.to_string())
    }
}

/// Upstream exit codes of the stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Success = 0,
    ReportedFailure = 1,
    UnreportedFailure = 2,
    TaskIdMissing = 3,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Rebases `/iexec_in…` and `/iexec_out…` onto the local directories when they are set.
pub fn local_path(env: &dyn EnvSource, path: &str) -> PathBuf {
    for (enclave_dir, var) in [
        (sms_core::session_plan::IEXEC_IN_DIR, ENV_LOCAL_IEXEC_IN),
        (sms_core::session_plan::IEXEC_OUT_DIR, ENV_LOCAL_IEXEC_OUT),
    ] {
        let Some(real) = env.var(var) else { continue };
        if path == enclave_dir {
            return PathBuf::from(real);
        }
        if let Some(rest) = path
            .strip_prefix(enclave_dir)
            .and_then(|r| r.strip_prefix('/'))
        {
            return Path::new(&real).join(rest);
        }
    }
    PathBuf::from(path)
}

#[derive(Serialize)]
struct CauseLine<'a> {
    stage: &'a str,
    cause: ExitCause,
    message: &'a str,
}

/// Reports `failure` (stderr line and optional cause file) and returns the exit code: 1 when
/// the stage holds the sign tokens to authenticate its report, 2 otherwise.
pub fn report_failure(
    env: &dyn EnvSource,
    stage: Stage,
    task_id: &str,
    failure: &Failure,
) -> ExitCode {
    let signed = authenticate(env, stage, task_id);
    let mut failures = vec![failure.clone()];
    if let Err(report_failure) = &signed {
        failures.push(report_failure.clone());
    }
    let mut stderr = std::io::stderr().lock();
    for f in &failures {
        let line = CauseLine {
            stage: stage.name(),
            cause: f.cause,
            message: &f.message,
        };
        if let Ok(json) = serde_json::to_string(&line) {
            let _ = writeln!(stderr, "{json}");
        }
    }
    let written = write_cause_file(env, &failures);
    if signed.is_ok() && written {
        ExitCode::ReportedFailure
    } else {
        ExitCode::UnreportedFailure
    }
}

/// Reports a missing task id (exit 3).
pub fn report_task_id_missing(env: &dyn EnvSource, stage: Stage) -> ExitCode {
    let failure = Failure::from(stage.task_id_missing());
    let line = CauseLine {
        stage: stage.name(),
        cause: failure.cause,
        message: &failure.message,
    };
    if let Ok(json) = serde_json::to_string(&line) {
        eprintln!("{json}");
    }
    write_cause_file(env, &[failure]);
    ExitCode::TaskIdMissing
}

/// Signs the worker-API authorization as upstream does before posting a cause; only the
/// ability to sign matters locally.
fn authenticate(env: &dyn EnvSource, stage: Stage, task_id: &str) -> Result<(), Failure> {
    let worker = env
        .var(sms_core::session_plan::SIGN_WORKER_ADDRESS)
        .ok_or_else(|| Failure::from(stage.worker_address_missing()))?;
    let key = env
        .var(sms_core::session_plan::SIGN_TEE_CHALLENGE_PRIVATE_KEY)
        .ok_or_else(|| Failure::from(stage.challenge_key_missing()))?;
    let signer = parse_challenge_key(&key).map_err(|_| Failure::from(stage.invalid_signature()))?;
    sign_worker_api_auth(task_id, &worker, &signer)
        .map(|_| ())
        .map_err(|_| Failure::from(stage.invalid_signature()))
}

fn write_cause_file(env: &dyn EnvSource, failures: &[Failure]) -> bool {
    let Some(path) = env.var(ENV_EXIT_CAUSE_FILE) else {
        return true;
    };
    let list: Vec<ExitCauseReport> = failures
        .iter()
        .map(|f| ExitCauseReport {
            cause: f.cause,
            message: f.message.clone(),
        })
        .collect();
    match serde_json::to_vec(&list) {
        Ok(bytes) => std::fs::write(path, bytes).is_ok(),
        Err(_) => false,
    }
}

/// Reads the causes a stage wrote into its cause file (for the orchestrator).
pub fn read_cause_file(path: &Path) -> Option<Vec<ExitCauseReport>> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Rebases the app's directory variables onto the local task directories, drops the local
/// worker's own variables, and execs the app command in the current directory.
pub fn exec_app(command: &[String]) -> anyhow::Result<()> {
    use sms_core::session_plan::{IEXEC_IN, IEXEC_INPUT_FILES_FOLDER, IEXEC_OUT};
    let Some((program, rest)) = command.split_first() else {
        anyhow::bail!("no app command")
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    for var in [IEXEC_IN, IEXEC_OUT, IEXEC_INPUT_FILES_FOLDER] {
        if let Ok(value) = std::env::var(var) {
            cmd.env(var, local_path(&ProcessEnv, &value));
        }
    }
    for var in [
        ENV_LOCAL_IEXEC_IN,
        ENV_LOCAL_IEXEC_OUT,
        ENV_RESULT_DIR,
        ENV_EXIT_CAUSE_FILE,
        ENV_POST_COMPUTE_TMP,
    ] {
        cmd.env_remove(var);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let error = cmd.exec();
        Err(anyhow::anyhow!("cannot exec {program}: {error}"))
    }
    #[cfg(not(unix))]
    {
        let status = cmd
            .status()
            .map_err(|e| anyhow::anyhow!("cannot run {program}: {e}"))?;
        std::process::exit(status.code().unwrap_or(1))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rebases_enclave_paths_only_when_configured() {
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        assert_eq!(local_path(&env, "/iexec_in"), PathBuf::from("/iexec_in"));
        env.insert(ENV_LOCAL_IEXEC_IN.into(), "/tmp/t/in".into());
        env.insert(ENV_LOCAL_IEXEC_OUT.into(), "/tmp/t/out".into());
        assert_eq!(local_path(&env, "/iexec_in"), PathBuf::from("/tmp/t/in"));
        assert_eq!(
            local_path(&env, "/iexec_out/result.txt"),
            PathBuf::from("/tmp/t/out/result.txt")
        );
        assert_eq!(
            local_path(&env, "/iexec_outside"),
            PathBuf::from("/iexec_outside")
        );
        assert_eq!(local_path(&env, "/data/x"), PathBuf::from("/data/x"));
    }

    #[test]
    fn cause_file_and_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("causes.json");
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert(ENV_EXIT_CAUSE_FILE.into(), file.display().to_string());
        let failure = Failure::from(ExitCause::PreComputeInvalidDatasetChecksum);
        // No sign tokens: unreported (2), both causes listed.
        assert_eq!(
            report_failure(&env, Stage::PreCompute, "0x01", &failure),
            ExitCode::UnreportedFailure
        );
        let causes = read_cause_file(&file).unwrap();
        assert_eq!(causes[0].cause, ExitCause::PreComputeInvalidDatasetChecksum);
        assert_eq!(causes[1].cause, ExitCause::PreComputeWorkerAddressMissing);
        env.insert(
            "SIGN_WORKER_ADDRESS".into(),
            "0x1234567890abcdef1234567890abcdef12345678".into(),
        );
        env.insert(
            "SIGN_TEE_CHALLENGE_PRIVATE_KEY".into(),
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80".into(),
        );
        assert_eq!(
            report_failure(&env, Stage::PreCompute, "0x01", &failure),
            ExitCode::ReportedFailure
        );
        assert_eq!(read_cause_file(&file).unwrap().len(), 1);
        assert_eq!(
            report_task_id_missing(&env, Stage::PostCompute),
            ExitCode::TaskIdMissing
        );
        assert_eq!(
            read_cause_file(&file).unwrap()[0].cause,
            ExitCause::PostComputeTaskIdMissing
        );
    }
}

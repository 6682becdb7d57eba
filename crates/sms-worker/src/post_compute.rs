//! The built-in post-compute stage (`sms worker post-compute`), reading only its environment.
//!
//! 1. `IEXEC_TASK_ID` missing → exit 3.
//! 2. `RESULT_STORAGE_CALLBACK` must be `true`/`false` (any case).
//! 3. `computed.json` is read from the output directory (`/iexec_out`, see [`crate::stage`]);
//!    `task-id` is overwritten with the task id; the result digest is computed: web3
//!    (keccak256 of the hex-decoded `callback-data` bytes, as the contract checks — not the
//!    upstream Rust bug that hashes the text) in callback mode, web2 otherwise. A
//!    `deterministic-output-path` under `/iexec_out` is read in the local output directory, and
//!    it must stay inside it.
//! 4. The digest is signed with `SIGN_TEE_CHALLENGE_PRIVATE_KEY` for `SIGN_WORKER_ADDRESS`
//!    (see [`crate::enclave_signature`]).
//! 5. Web2 only: result file names are checked (≤ 31 bytes), the output directory is zipped,
//!    and when `RESULT_ENCRYPTION` is `true` encrypted for `RESULT_ENCRYPTION_PUBLIC_KEY`.
//! 6. "Upload" of this local worker: the archive is stored as `<SMS_RESULT_DIR>/<taskId>.zip`
//!    (no IPFS or Dropbox; `RESULT_STORAGE_TOKEN`/`PROXY` are not needed), and the completed
//!    computed file (what upstream posts to the worker) as `<SMS_RESULT_DIR>/<taskId>.computed.json`.
//!    Both are written to temporary files and renamed, so a reader never sees half a result.

use std::fs;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sms_core::session_plan::{
    IEXEC_OUT_DIR, IEXEC_TASK_ID, RESULT_ENCRYPTION, RESULT_ENCRYPTION_PUBLIC_KEY,
    RESULT_STORAGE_CALLBACK, SIGN_TEE_CHALLENGE_PRIVATE_KEY, SIGN_WORKER_ADDRESS,
};
use zeroize::Zeroizing;

use crate::computed::ComputedFile;
use crate::enclave_signature::{parse_challenge_key, sign_result};
use crate::exit_cause::ExitCause;
use crate::result_archive::{self, ArchiveError, ResultPublicKey};
use crate::result_digest::result_digest;
use crate::stage::{
    ENV_POST_COMPUTE_TMP, ENV_RESULT_DIR, EnvSource, ExitCode, Failure, Stage, local_path,
    report_failure, report_task_id_missing,
};

/// What a successful post-compute produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostComputeOutput {
    pub task_id: String,
    pub result_digest: String,
    pub enclave_signature: String,
    /// The stored archive (web2 only).
    pub archive: Option<PathBuf>,
    pub encrypted: bool,
    /// The completed computed file.
    pub computed_file: PathBuf,
    pub callback: bool,
}

impl PostComputeOutput {
    /// The lines `sms worker post-compute` prints.
    pub fn human(&self) -> String {
        format!(
            "post-compute done\n  result digest:     {}\n  enclave signature: {}\n  archive:           {}{}\n  computed file:     {}",
            self.result_digest,
            self.enclave_signature,
            self.archive
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "none (callback)".into()),
            if self.encrypted { " (encrypted)" } else { "" },
            self.computed_file.display()
        )
    }

    /// The JSON object `sms worker post-compute --json` prints.
    pub fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "stage": "post-compute",
            "taskId": self.task_id,
            "resultDigest": self.result_digest,
            "enclaveSignature": self.enclave_signature,
            "archive": self.archive,
            "encrypted": self.encrypted,
            "computedFile": self.computed_file,
            "callback": self.callback,
        })
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The output directory: the local `/iexec_out`.
pub fn output_dir(env: &dyn EnvSource) -> PathBuf {
    local_path(env, IEXEC_OUT_DIR)
}

/// Resolves the app's `deterministic-output-path` in the local output directory and refuses
/// paths leaving it.
fn resolve_output_path(
    env: &dyn EnvSource,
    out: &Path,
    declared: &str,
) -> Result<PathBuf, Failure> {
    let fail = |m: String| Failure::new(ExitCause::PostComputeResultDigestComputationFailed, m);
    let path = local_path(env, declared.trim());
    let path = if path.is_relative() {
        out.join(path)
    } else {
        path
    };
    let real = path.canonicalize().map_err(|_| {
        fail(format!(
            "the deterministic output path {declared} does not exist"
        ))
    })?;
    let root = out
        .canonicalize()
        .map_err(|e| fail(format!("the output directory cannot be read: {e}")))?;
    if !real.starts_with(&root) {
        return Err(fail(format!(
            "the deterministic output path {declared} is outside the output directory"
        )));
    }
    Ok(real)
}

struct Signed {
    digest: String,
    signature: String,
}

fn sign(env: &dyn EnvSource, task_id: &str, digest: &str) -> Result<Signed, Failure> {
    let worker = env
        .var(SIGN_WORKER_ADDRESS)
        .ok_or_else(|| Failure::from(ExitCause::PostComputeWorkerAddressMissing))?;
    let key = Zeroizing::new(
        env.var(SIGN_TEE_CHALLENGE_PRIVATE_KEY)
            .ok_or_else(|| Failure::from(ExitCause::PostComputeTeeChallengePrivateKeyMissing))?,
    );
    let signer = parse_challenge_key(&key)
        .map_err(|_| Failure::from(ExitCause::PostComputeInvalidEnclaveChallengePrivateKey))?;
    let signature = sign_result(task_id, &worker, digest, &signer)
        .map_err(|e| Failure::new(ExitCause::PostComputeInvalidTeeSignature, e.to_string()))?;
    Ok(Signed {
        digest: digest.to_owned(),
        signature: signature.to_hex(),
    })
}

/// The task id reduced to characters safe in a file name (a task id is `0x` + hex).
pub fn file_stem(task_id: &str) -> String {
    task_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(80)
        .collect()
}

fn temp_in(dir: &Path, label: &str) -> PathBuf {
    let suffix: u64 = rand::random();
    dir.join(format!(".{label}.{suffix:016x}.part"))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_in(dir, "write");
    let result = fs::write(&tmp, bytes).and_then(|_| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Zips the output directory (and encrypts it when asked) into `<result_dir>/<task>.zip`.
fn package(
    env: &dyn EnvSource,
    out: &Path,
    result_dir: &Path,
    task_id: &str,
) -> Result<(PathBuf, bool), Failure> {
    match result_archive::check_result_file_names(out) {
        Ok(()) => {}
        Err(ArchiveError::FileNameTooLong { len, .. }) => {
            return Err(Failure::new(
                ExitCause::PostComputeTooLongResultFileName,
                format!("a result file name is {len} bytes long (at most 31)"),
            ));
        }
        Err(e) => {
            return Err(Failure::new(
                ExitCause::PostComputeFailedUnknownIssue,
                e.to_string(),
            ));
        }
    }
    let encrypt = match env.raw(RESULT_ENCRYPTION) {
        None => {
            return Err(Failure::new(
                ExitCause::PostComputeFailedUnknownIssue,
                format!("{RESULT_ENCRYPTION} is missing"),
            ));
        }
        // Upstream: an unparsable value means no encryption.
        Some(v) => parse_bool(&v).unwrap_or(false),
    };
    let public_key = if encrypt {
        let value = env
            .var(RESULT_ENCRYPTION_PUBLIC_KEY)
            .ok_or_else(|| Failure::from(ExitCause::PostComputeEncryptionPublicKeyMissing))?;
        Some(
            ResultPublicKey::from_push_format(&value)
                .map_err(|_| Failure::from(ExitCause::PostComputeMalformedEncryptionPublicKey))?,
        )
    } else {
        None
    };

    let scratch_root = env.var(ENV_POST_COMPUTE_TMP).map(PathBuf::from);
    let scratch = match &scratch_root {
        Some(dir) => tempfile::Builder::new()
            .prefix("post-compute")
            .tempdir_in(dir),
        None => tempfile::Builder::new()
            .prefix(".post-compute")
            .tempdir_in(result_dir),
    }
    .map_err(|e| {
        Failure::new(
            ExitCause::PostComputeFailedUnknownIssue,
            format!("no scratch directory: {e}"),
        )
    })?;

    let zip_failed =
        |e: ArchiveError| Failure::new(ExitCause::PostComputeOutFolderZipFailed, e.to_string());
    let plain_path = scratch.path().join("iexec_out.zip");
    let mut plain = fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&plain_path)
        .map_err(|e| zip_failed(e.into()))?;
    result_archive::zip_directory(out, BufWriter::new(&mut plain)).map_err(zip_failed)?;

    let staged = scratch.path().join("archive.zip");
    if let Some(key) = &public_key {
        let enc_failed = |m: String| Failure::new(ExitCause::PostComputeEncryptionFailed, m);
        plain
            .seek(SeekFrom::Start(0))
            .map_err(|e| enc_failed(e.to_string()))?;
        let archive = fs::File::create(&staged).map_err(|e| enc_failed(e.to_string()))?;
        let mut writer = BufWriter::new(archive);
        result_archive::encrypt_result_zip(BufReader::new(&mut plain), key, &mut writer)
            .map_err(|e| enc_failed(e.to_string()))?;
        writer.flush().map_err(|e| enc_failed(e.to_string()))?;
    } else {
        fs::rename(&plain_path, &staged).map_err(|e| zip_failed(e.into()))?;
    }
    let target = result_dir.join(format!("{}.zip", file_stem(task_id)));
    let stored = fs::rename(&staged, &target).or_else(|_| {
        // Scratch on another file system: copy next to the target, then rename.
        let tmp = temp_in(result_dir, "archive");
        fs::copy(&staged, &tmp)
            .and_then(|_| fs::rename(&tmp, &target))
            .inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })
    });
    stored.map_err(|e| {
        Failure::new(
            ExitCause::PostComputeFailedUnknownIssue,
            format!("cannot store the result archive in {ENV_RESULT_DIR}: {e}"),
        )
    })?;
    Ok((target, encrypt))
}

/// Runs the stage after the task id was read.
pub fn execute(env: &dyn EnvSource, task_id: &str) -> Result<PostComputeOutput, Failure> {
    let callback = env
        .var(RESULT_STORAGE_CALLBACK)
        .and_then(|v| parse_bool(&v))
        .ok_or_else(|| {
            Failure::new(
                ExitCause::PostComputeFailedUnknownIssue,
                format!("{RESULT_STORAGE_CALLBACK} is missing or not a boolean"),
            )
        })?;
    let out = output_dir(env);
    let result_dir = env.var(ENV_RESULT_DIR).map(PathBuf::from).ok_or_else(|| {
        Failure::new(
            ExitCause::PostComputeFailedUnknownIssue,
            format!("{ENV_RESULT_DIR} is not set: this local worker stores results there"),
        )
    })?;
    fs::create_dir_all(&result_dir).map_err(|e| {
        Failure::new(
            ExitCause::PostComputeFailedUnknownIssue,
            format!("cannot create {ENV_RESULT_DIR}: {e}"),
        )
    })?;

    let mut computed = ComputedFile::read_from_dir(&out)
        .map_err(|e| Failure::new(ExitCause::PostComputeComputedFileNotFound, e.to_string()))?;
    computed.task_id = Some(task_id.to_owned());
    computed.validate(callback).map_err(|e| {
        Failure::new(
            ExitCause::PostComputeResultDigestComputationFailed,
            e.to_string(),
        )
    })?;

    let mut for_digest = computed.clone();
    if !callback {
        let declared = computed
            .deterministic_output_path
            .clone()
            .unwrap_or_default();
        let resolved = resolve_output_path(env, &out, &declared)?;
        for_digest.deterministic_output_path = Some(resolved.display().to_string());
    }
    let digest = result_digest(&for_digest, callback).map_err(|e| {
        Failure::new(
            ExitCause::PostComputeResultDigestComputationFailed,
            e.to_string(),
        )
    })?;
    let signed = sign(env, task_id, &digest.to_string())?;
    computed.result_digest = Some(signed.digest.clone());
    computed.enclave_signature = Some(signed.signature.clone());

    let (archive, encrypted) = if callback {
        (None, false)
    } else {
        let (path, encrypted) = package(env, &out, &result_dir, task_id)?;
        (Some(path), encrypted)
    };

    let computed_file = result_dir.join(format!("{}.computed.json", file_stem(task_id)));
    write_atomic(&computed_file, computed.to_json().as_bytes())
        .map_err(|e| Failure::new(ExitCause::PostComputeSendComputedFileFailed, e.to_string()))?;
    Ok(PostComputeOutput {
        task_id: task_id.to_owned(),
        result_digest: signed.digest,
        enclave_signature: signed.signature,
        archive,
        encrypted,
        computed_file,
        callback,
    })
}

/// The whole stage: reads the environment, runs, reports; returns the exit code.
pub fn run(env: &dyn EnvSource) -> (ExitCode, Option<PostComputeOutput>) {
    let Some(task_id) = env.var(IEXEC_TASK_ID) else {
        return (report_task_id_missing(env, Stage::PostCompute), None);
    };
    match execute(env, &task_id) {
        Ok(output) => (ExitCode::Success, Some(output)),
        Err(failure) => (
            report_failure(env, Stage::PostCompute, &task_id, &failure),
            None,
        ),
    }
}

//! The built-in pre-compute stage (`sms worker pre-compute`), reading only its environment.
//!
//! 1. `IEXEC_TASK_ID` missing → exit 3.
//! 2. Variables: `IEXEC_PRE_COMPUTE_OUT`, `IS_DATASET_REQUIRED` (`true`/`false`, any case); when
//!    a dataset is required `IEXEC_DATASET_URL`, `IEXEC_DATASET_KEY`, `IEXEC_DATASET_CHECKSUM`,
//!    `IEXEC_DATASET_FILENAME`; `IEXEC_INPUT_FILES_NUMBER` and `IEXEC_INPUT_FILE_URL_1..N` — each
//!    missing one with its own upstream cause.
//! 3. The output directory must exist.
//! 4. Dataset: downloaded (HTTP(S), `file://`, local path, `/ipfs/…` through public gateways)
//!    into a hidden temporary file of the output directory; its sha256 is compared with the
//!    checksum **before** any decryption (`PRE_COMPUTE_INVALID_DATASET_CHECKSUM`); then
//!    decrypted (`PRE_COMPUTE_DATASET_DECRYPTION_FAILED` for a bad key or file) and renamed to
//!    `<out>/<IEXEC_DATASET_FILENAME>` only once complete.
//! 5. Bulk datasets (`IEXEC_BULK_SLICE_SIZE`, `IEXEC_DATASET_<i>_*`, see `pre_compute_bulk`),
//!    each like the dataset, in index order.
//! 6. Input files, in order, to `<out>/0x<sha256(url)>` (`PRE_COMPUTE_INPUT_FILE_DOWNLOAD_FAILED`).
//!
//! Unlike upstream, the real cause is reported (upstream always reports
//! `PRE_COMPUTE_FAILED_UNKNOWN_ISSUE`), and the dataset file name must be a plain file name.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sms_core::session_plan::{
    IEXEC_DATASET_CHECKSUM, IEXEC_DATASET_FILENAME, IEXEC_DATASET_KEY, IEXEC_DATASET_URL,
    IEXEC_INPUT_FILE_URL_PREFIX, IEXEC_INPUT_FILES_NUMBER, IEXEC_PRE_COMPUTE_OUT, IEXEC_TASK_ID,
    IS_DATASET_REQUIRED,
};
use zeroize::Zeroizing;

pub use crate::dataset::DatasetArgs;
use crate::dataset::{self, DatasetKey};
use crate::exit_cause::ExitCause;
use crate::fetch;
use crate::stage::{
    ENV_DOWNLOAD_TIMEOUT, EnvSource, ExitCode, Failure, Stage, local_path, report_failure,
    report_task_id_missing,
};

/// Everything pre-compute reads from its environment.
pub struct PreComputeArgs {
    pub task_id: String,
    pub output_dir: PathBuf,
    pub dataset: Option<DatasetArgs>,
    /// The datasets of a bulk slice ([`crate::pre_compute_bulk`]), written like the dataset.
    pub bulk: Vec<DatasetArgs>,
    pub input_files: Vec<String>,
    pub timeout: Duration,
}

fn required(env: &dyn EnvSource, name: &str, cause: ExitCause) -> Result<String, Failure> {
    env.var(name)
        .ok_or_else(|| Failure::new(cause, format!("{name} is missing or empty")))
}

impl PreComputeArgs {
    /// Reads the arguments (the task id is read separately, see [`run`]).
    pub fn from_env(env: &dyn EnvSource, task_id: String) -> Result<Self, Failure> {
        let output = required(
            env,
            IEXEC_PRE_COMPUTE_OUT,
            ExitCause::PreComputeOutputPathMissing,
        )?;
        let required_flag = required(
            env,
            IS_DATASET_REQUIRED,
            ExitCause::PreComputeIsDatasetRequiredMissing,
        )?;
        let dataset_required = match required_flag.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(Failure::new(
                    ExitCause::PreComputeIsDatasetRequiredMissing,
                    format!("{IS_DATASET_REQUIRED} is not true or false"),
                ));
            }
        };
        let dataset = if dataset_required {
            Some(DatasetArgs {
                url: required(
                    env,
                    IEXEC_DATASET_URL,
                    ExitCause::PreComputeDatasetUrlMissing,
                )?,
                key: Zeroizing::new(required(
                    env,
                    IEXEC_DATASET_KEY,
                    ExitCause::PreComputeDatasetKeyMissing,
                )?),
                checksum: required(
                    env,
                    IEXEC_DATASET_CHECKSUM,
                    ExitCause::PreComputeDatasetChecksumMissing,
                )?,
                filename: required(
                    env,
                    IEXEC_DATASET_FILENAME,
                    ExitCause::PreComputeDatasetFilenameMissing,
                )?,
            })
        } else {
            None
        };
        let count = required(
            env,
            IEXEC_INPUT_FILES_NUMBER,
            ExitCause::PreComputeInputFilesNumberMissing,
        )?
        .trim()
        .parse::<u32>()
        .map_err(|_| {
            Failure::new(
                ExitCause::PreComputeInputFilesNumberMissing,
                format!("{IEXEC_INPUT_FILES_NUMBER} is not an unsigned integer"),
            )
        })?;
        let mut input_files = Vec::new();
        for i in 1..=count {
            input_files.push(required(
                env,
                &format!("{IEXEC_INPUT_FILE_URL_PREFIX}{i}"),
                ExitCause::PreComputeAtLeastOneInputFileUrlMissing,
            )?);
        }
        let timeout = env
            .var(ENV_DOWNLOAD_TIMEOUT)
            .and_then(|t| t.trim().parse::<u64>().ok())
            .filter(|t| *t > 0)
            .unwrap_or(300);
        Ok(Self {
            task_id,
            output_dir: local_path(env, &output),
            dataset,
            bulk: crate::pre_compute_bulk::datasets(env)?,
            input_files,
            timeout: Duration::from_secs(timeout),
        })
    }
}

/// What a successful pre-compute wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreComputeOutput {
    pub dataset: Option<PathBuf>,
    pub bulk: Vec<PathBuf>,
    pub input_files: Vec<PathBuf>,
}

impl PreComputeOutput {
    /// The line `sms worker pre-compute` prints.
    pub fn human(&self) -> String {
        format!(
            "pre-compute done: dataset {}, {} input file(s)",
            if self.dataset.is_some() {
                "decrypted"
            } else {
                "none"
            },
            self.input_files.len()
        )
    }

    /// The JSON object `sms worker pre-compute --json` prints.
    pub fn report(&self) -> serde_json::Value {
        let files: Vec<_> = self
            .input_files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        serde_json::json!({ "stage": "pre-compute", "dataset": self.dataset, "inputFiles": files })
    }
}

/// A temporary file removed on drop unless kept.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn new(dir: &Path, label: &str) -> Self {
        let suffix: u64 = rand::random();
        Self(Some(dir.join(format!(".{label}.{suffix:016x}.part"))))
    }

    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    fn persist(mut self, to: &Path) -> std::io::Result<()> {
        let from = self.0.take().unwrap_or_default();
        fs::rename(&from, to).inspect_err(|_| {
            let _ = fs::remove_file(&from);
        })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
}

/// Downloads, verifies and decrypts the dataset into `<out>/<filename>`.
pub async fn fetch_dataset(
    args: &DatasetArgs,
    out: &Path,
    timeout: Duration,
) -> Result<PathBuf, Failure> {
    if !plain_file_name(&args.filename) {
        return Err(Failure::new(
            ExitCause::PreComputeSavingPlainDatasetFailed,
            "the dataset file name is not a plain file name",
        ));
    }
    let encrypted = TempFile::new(out, "dataset-encrypted");
    let digest = fetch::fetch_to_file(&args.url, encrypted.path(), timeout)
        .await
        .map_err(|e| Failure::new(ExitCause::PreComputeDatasetDownloadFailed, e.to_string()))?;
    let actual = sms_core::hex::encode_prefixed(digest);
    if actual != args.checksum {
        return Err(Failure::new(
            ExitCause::PreComputeInvalidDatasetChecksum,
            format!(
                "the downloaded dataset has checksum {actual}, the deal expects {}; not decrypted",
                args.checksum
            ),
        ));
    }
    let key = DatasetKey::from_base64(&args.key)
        .map_err(|e| Failure::new(ExitCause::PreComputeDatasetDecryptionFailed, e.to_string()))?;
    let plain = TempFile::new(out, "dataset-plain");
    let decrypted = (|| -> Result<(), String> {
        let input = fs::File::open(encrypted.path()).map_err(|e| e.to_string())?;
        let output = fs::File::create(plain.path()).map_err(|e| e.to_string())?;
        let mut output = std::io::BufWriter::new(output);
        dataset::decrypt(std::io::BufReader::new(input), &mut output, &key)
            .map_err(|e| e.to_string())?;
        std::io::Write::flush(&mut output).map_err(|e| e.to_string())
    })();
    decrypted.map_err(|reason| {
        Failure::new(
            ExitCause::PreComputeDatasetDecryptionFailed,
            format!("the dataset cannot be decrypted: {reason}"),
        )
    })?;
    drop(encrypted);
    let target = out.join(&args.filename);
    plain.persist(&target).map_err(|e| {
        Failure::new(
            ExitCause::PreComputeSavingPlainDatasetFailed,
            format!("cannot write the dataset: {e}"),
        )
    })?;
    Ok(target)
}

/// `0x` + sha256 hex of the URL text: the file name of an input file.
pub fn input_file_name(url: &str) -> String {
    sms_core::hex::encode_prefixed(sms_core::hash::sha256(url.as_bytes()))
}

/// Runs the stage with parsed arguments.
pub async fn execute(args: &PreComputeArgs) -> Result<PreComputeOutput, Failure> {
    if !args.output_dir.is_dir() {
        return Err(Failure::new(
            ExitCause::PreComputeOutputFolderNotFound,
            format!("{} is not a directory", args.output_dir.display()),
        ));
    }
    let mut output = PreComputeOutput::default();
    if let Some(dataset) = &args.dataset {
        output.dataset = Some(fetch_dataset(dataset, &args.output_dir, args.timeout).await?);
    }
    for dataset in &args.bulk {
        output
            .bulk
            .push(fetch_dataset(dataset, &args.output_dir, args.timeout).await?);
    }
    for url in &args.input_files {
        fs::create_dir_all(&args.output_dir).map_err(|e| {
            Failure::new(ExitCause::PreComputeInputFileDownloadFailed, e.to_string())
        })?;
        let part = TempFile::new(&args.output_dir, "input");
        fetch::fetch_to_file(url, part.path(), args.timeout)
            .await
            .map_err(|e| {
                Failure::new(ExitCause::PreComputeInputFileDownloadFailed, e.to_string())
            })?;
        let target = args.output_dir.join(input_file_name(url));
        part.persist(&target).map_err(|e| {
            Failure::new(ExitCause::PreComputeInputFileDownloadFailed, e.to_string())
        })?;
        output.input_files.push(target);
    }
    Ok(output)
}

/// The whole stage: reads the environment, runs, reports; returns the exit code.
pub async fn run(env: &dyn EnvSource) -> (ExitCode, Option<PreComputeOutput>) {
    let Some(task_id) = env.var(IEXEC_TASK_ID) else {
        return (report_task_id_missing(env, Stage::PreCompute), None);
    };
    let result = match PreComputeArgs::from_env(env, task_id.clone()) {
        Ok(args) => execute(&args).await,
        Err(failure) => Err(failure),
    };
    match result {
        Ok(output) => (ExitCode::Success, Some(output)),
        Err(failure) => (
            report_failure(env, Stage::PreCompute, &task_id, &failure),
            None,
        ),
    }
}

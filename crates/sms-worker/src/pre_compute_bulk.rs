//! The bulk part of pre-compute's arguments (docs/bulk-processing.md): `IEXEC_BULK_SLICE_SIZE`
//! datasets, each `IEXEC_DATASET_<i>_FILENAME`, `_URL`, `_CHECKSUM` and `_KEY`, `i` from 1.
//!
//! An empty value is the SMS's mark of an order it did not accept: the stage fails with that
//! variable's cause, naming the dataset (upstream's pre-compute also downloads the other
//! datasets before failing; the task fails either way).

use sms_core::bulk::{IEXEC_BULK_SLICE_SIZE, MAX_ORDERS_PER_SLICE, dataset_variable};
use zeroize::Zeroizing;

use crate::dataset::DatasetArgs;
use crate::exit_cause::ExitCause;
use crate::stage::{EnvSource, Failure};

/// The slice's datasets, in index order; empty when the task is not a bulk task.
pub fn datasets(env: &dyn EnvSource) -> Result<Vec<DatasetArgs>, Failure> {
    let Some(size) = env.var(IEXEC_BULK_SLICE_SIZE) else {
        return Ok(Vec::new());
    };
    let size: usize = size
        .trim()
        .parse()
        .ok()
        .filter(|n| *n <= MAX_ORDERS_PER_SLICE)
        .ok_or_else(|| {
            Failure::new(
                ExitCause::PreComputeFailedUnknownIssue,
                format!(
                    "{IEXEC_BULK_SLICE_SIZE} is not a number of at most {MAX_ORDERS_PER_SLICE}"
                ),
            )
        })?;
    (1..=size).map(|i| dataset(env, i)).collect()
}

fn dataset(env: &dyn EnvSource, index: usize) -> Result<DatasetArgs, Failure> {
    let filename_var = dataset_variable(index, "FILENAME");
    let filename = env.var(&filename_var).ok_or_else(|| {
        Failure::new(
            ExitCause::PreComputeDatasetFilenameMissing,
            format!("{filename_var} is missing or empty"),
        )
    })?;
    let read = |suffix: &str, cause: ExitCause| {
        let name = dataset_variable(index, suffix);
        env.var(&name).ok_or_else(|| {
            Failure::new(
                cause,
                format!(
                    "{name} is missing or empty: dataset {filename} was not accepted by the SMS"
                ),
            )
        })
    };
    Ok(DatasetArgs {
        url: read("URL", ExitCause::PreComputeDatasetUrlMissing)?,
        checksum: read("CHECKSUM", ExitCause::PreComputeDatasetChecksumMissing)?,
        key: Zeroizing::new(read("KEY", ExitCause::PreComputeDatasetKeyMissing)?),
        filename,
    })
}

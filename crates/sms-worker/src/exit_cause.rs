//! Failure causes reported by the pre-compute and post-compute stages to the worker.
//!
//! The serialized names are the wire names of the worker's `ReplicateStatusCause` enum
//! (`SCREAMING_SNAKE_CASE`, e.g. `PRE_COMPUTE_DATASET_DECRYPTION_FAILED`). They are posted as
//! `{"cause":"<NAME>"}` to `/compute/{pre|post}/{taskId}/exit`.

use serde::{Deserialize, Serialize};
use sms_core::session_plan::EnclaveRole;
use thiserror::Error;

/// A pre-compute or post-compute failure cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(clippy::enum_variant_names)]
pub enum ExitCause {
    // ---- pre-compute --------------------------------------------------------------------
    #[error("the task id variable is missing or empty")]
    PreComputeTaskIdMissing,
    #[error("the pre-compute output path variable is missing or empty")]
    PreComputeOutputPathMissing,
    #[error("the IS_DATASET_REQUIRED variable is missing or not a boolean")]
    PreComputeIsDatasetRequiredMissing,
    #[error("the dataset URL variable is missing or empty")]
    PreComputeDatasetUrlMissing,
    #[error("the dataset key variable is missing or empty")]
    PreComputeDatasetKeyMissing,
    #[error("the dataset checksum variable is missing or empty")]
    PreComputeDatasetChecksumMissing,
    #[error("the dataset file name variable is missing or empty")]
    PreComputeDatasetFilenameMissing,
    #[error("the input files number variable is missing or not an unsigned integer")]
    PreComputeInputFilesNumberMissing,
    #[error("an input file URL variable is missing or empty")]
    PreComputeAtLeastOneInputFileUrlMissing,
    #[error("the pre-compute output folder does not exist")]
    PreComputeOutputFolderNotFound,
    #[error("the encrypted dataset could not be downloaded")]
    PreComputeDatasetDownloadFailed,
    #[error("the encrypted dataset does not match its on-chain checksum")]
    PreComputeInvalidDatasetChecksum,
    #[error("the dataset could not be decrypted")]
    PreComputeDatasetDecryptionFailed,
    #[error("the decrypted dataset could not be written")]
    PreComputeSavingPlainDatasetFailed,
    #[error("an input file could not be downloaded")]
    PreComputeInputFileDownloadFailed,
    #[error("the worker address variable is missing or empty")]
    PreComputeWorkerAddressMissing,
    #[error("the enclave challenge private key variable is missing or empty")]
    PreComputeTeeChallengePrivateKeyMissing,
    #[error("the enclave challenge signature could not be produced")]
    PreComputeInvalidTeeSignature,
    #[error("pre-compute failed for an unexpected reason")]
    PreComputeFailedUnknownIssue,
    #[error("pre-compute could not report its failure")]
    PreComputeExitReportingFailed,
    #[error("pre-compute did not finish in time")]
    PreComputeTimeout,

    // ---- post-compute -------------------------------------------------------------------
    #[error("the task id variable is missing or empty")]
    PostComputeTaskIdMissing,
    #[error("computed.json is missing, empty or invalid")]
    PostComputeComputedFileNotFound,
    #[error("the result digest could not be computed")]
    PostComputeResultDigestComputationFailed,
    #[error("the worker address variable is missing or empty")]
    PostComputeWorkerAddressMissing,
    #[error("the enclave challenge private key variable is missing or empty")]
    PostComputeTeeChallengePrivateKeyMissing,
    #[error("the enclave challenge private key is not a valid secp256k1 key")]
    PostComputeInvalidEnclaveChallengePrivateKey,
    #[error("the enclave signature could not be produced")]
    PostComputeInvalidTeeSignature,
    #[error("a result file name is longer than 31 bytes")]
    PostComputeTooLongResultFileName,
    #[error("the result file was not found")]
    PostComputeResultFileNotFound,
    #[error("the result folder could not be zipped")]
    PostComputeOutFolderZipFailed,
    #[error("the result encryption public key variable is missing or empty")]
    PostComputeEncryptionPublicKeyMissing,
    #[error("the result encryption public key is not a base64 SPKI PEM RSA key")]
    PostComputeMalformedEncryptionPublicKey,
    #[error("the result could not be encrypted")]
    PostComputeEncryptionFailed,
    #[error("the result storage token variable is missing or empty")]
    PostComputeStorageTokenMissing,
    #[error("the result could not be uploaded to Dropbox")]
    PostComputeDropboxUploadFailed,
    #[error("the result could not be uploaded to IPFS")]
    PostComputeIpfsUploadFailed,
    #[error("computed.json could not be sent to the worker")]
    PostComputeSendComputedFileFailed,
    #[error("post-compute failed for an unexpected reason")]
    PostComputeFailedUnknownIssue,
    #[error("post-compute could not report its failure")]
    PostComputeExitReportingFailed,
    #[error("post-compute did not finish in time")]
    PostComputeTimeout,

    // ---- app (given by the worker: the app reports nothing itself) --------------------------
    #[error("the app failed")]
    AppComputeFailed,
    #[error("the app did not finish in time")]
    AppComputeTimeout,
}

impl ExitCause {
    /// The wire name, e.g. `POST_COMPUTE_TOO_LONG_RESULT_FILE_NAME`.
    pub fn name(self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => s,
            // A unit variant always serializes to a string.
            _ => format!("{self:?}"),
        }
    }
}

impl ExitCause {
    /// The cause a worker gives a stage that ended with `exit_code` without reporting a cause
    /// (`None`: killed, or never started): the upstream exit codes 2 (failure not reported)
    /// and 3 (task id missing), else the stage's unknown issue. The app has one failure cause.
    pub fn unreported(role: EnclaveRole, exit_code: Option<i32>) -> Self {
        match (role, exit_code) {
            (EnclaveRole::App, _) => Self::AppComputeFailed,
            (EnclaveRole::PreCompute, Some(2)) => Self::PreComputeExitReportingFailed,
            (EnclaveRole::PreCompute, Some(3)) => Self::PreComputeTaskIdMissing,
            (EnclaveRole::PreCompute, _) => Self::PreComputeFailedUnknownIssue,
            (EnclaveRole::PostCompute, Some(2)) => Self::PostComputeExitReportingFailed,
            (EnclaveRole::PostCompute, Some(3)) => Self::PostComputeTaskIdMissing,
            (EnclaveRole::PostCompute, _) => Self::PostComputeFailedUnknownIssue,
        }
    }

    /// The cause a worker gives a stage it ended because it ran over its time limit.
    pub fn timeout(role: EnclaveRole) -> Self {
        match role {
            EnclaveRole::PreCompute => Self::PreComputeTimeout,
            EnclaveRole::App => Self::AppComputeTimeout,
            EnclaveRole::PostCompute => Self::PostComputeTimeout,
        }
    }
}

/// The single-cause body posted to `/compute/{stage}/{taskId}/exit`: `{"cause":"<NAME>"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitMessage {
    pub cause: ExitCause,
}

/// One element of the list posted to `/compute/{stage}/{taskId}/exit-causes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitCauseReport {
    pub cause: ExitCause,
    pub message: String,
}

impl From<ExitCause> for ExitCauseReport {
    fn from(cause: ExitCause) -> Self {
        Self {
            cause,
            message: cause.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_message_json_vectors() {
        // reference/iexec-client-chain.md §14.
        for (cause, json) in [
            (
                ExitCause::PreComputeInvalidTeeSignature,
                r#"{"cause":"PRE_COMPUTE_INVALID_TEE_SIGNATURE"}"#,
            ),
            (
                ExitCause::PreComputeWorkerAddressMissing,
                r#"{"cause":"PRE_COMPUTE_WORKER_ADDRESS_MISSING"}"#,
            ),
            (
                ExitCause::PreComputeFailedUnknownIssue,
                r#"{"cause":"PRE_COMPUTE_FAILED_UNKNOWN_ISSUE"}"#,
            ),
        ] {
            let msg = ExitMessage { cause };
            assert_eq!(serde_json::to_string(&msg).unwrap(), json);
            assert_eq!(serde_json::from_str::<ExitMessage>(json).unwrap(), msg);
        }
    }

    #[test]
    fn wire_names() {
        for (cause, name) in [
            (
                ExitCause::PreComputeDatasetDecryptionFailed,
                "PRE_COMPUTE_DATASET_DECRYPTION_FAILED",
            ),
            (
                ExitCause::PreComputeInvalidDatasetChecksum,
                "PRE_COMPUTE_INVALID_DATASET_CHECKSUM",
            ),
            (
                ExitCause::PreComputeAtLeastOneInputFileUrlMissing,
                "PRE_COMPUTE_AT_LEAST_ONE_INPUT_FILE_URL_MISSING",
            ),
            (
                ExitCause::PreComputeIsDatasetRequiredMissing,
                "PRE_COMPUTE_IS_DATASET_REQUIRED_MISSING",
            ),
            (
                ExitCause::PostComputeComputedFileNotFound,
                "POST_COMPUTE_COMPUTED_FILE_NOT_FOUND",
            ),
            (
                ExitCause::PostComputeTooLongResultFileName,
                "POST_COMPUTE_TOO_LONG_RESULT_FILE_NAME",
            ),
            (
                ExitCause::PostComputeInvalidEnclaveChallengePrivateKey,
                "POST_COMPUTE_INVALID_ENCLAVE_CHALLENGE_PRIVATE_KEY",
            ),
            (
                ExitCause::PostComputeMalformedEncryptionPublicKey,
                "POST_COMPUTE_MALFORMED_ENCRYPTION_PUBLIC_KEY",
            ),
            (
                ExitCause::PostComputeOutFolderZipFailed,
                "POST_COMPUTE_OUT_FOLDER_ZIP_FAILED",
            ),
            (
                ExitCause::PostComputeIpfsUploadFailed,
                "POST_COMPUTE_IPFS_UPLOAD_FAILED",
            ),
        ] {
            assert_eq!(cause.name(), name);
        }
    }

    #[test]
    fn causes_given_by_the_worker() {
        use EnclaveRole::*;
        for (role, code, name) in [
            (App, Some(1), "APP_COMPUTE_FAILED"),
            (App, Some(2), "APP_COMPUTE_FAILED"),
            (App, None, "APP_COMPUTE_FAILED"),
            (PreCompute, Some(2), "PRE_COMPUTE_EXIT_REPORTING_FAILED"),
            (PreCompute, Some(3), "PRE_COMPUTE_TASK_ID_MISSING"),
            (PreCompute, Some(1), "PRE_COMPUTE_FAILED_UNKNOWN_ISSUE"),
            (PostCompute, Some(2), "POST_COMPUTE_EXIT_REPORTING_FAILED"),
            (PostCompute, Some(3), "POST_COMPUTE_TASK_ID_MISSING"),
            (PostCompute, None, "POST_COMPUTE_FAILED_UNKNOWN_ISSUE"),
        ] {
            assert_eq!(ExitCause::unreported(role, code).name(), name);
        }
        assert_eq!(ExitCause::timeout(PreCompute).name(), "PRE_COMPUTE_TIMEOUT");
        assert_eq!(ExitCause::timeout(App).name(), "APP_COMPUTE_TIMEOUT");
        assert_eq!(
            ExitCause::timeout(PostCompute).name(),
            "POST_COMPUTE_TIMEOUT"
        );
    }

    #[test]
    fn cause_list_form_and_unknown_names() {
        let list = vec![ExitCauseReport::from(
            ExitCause::PostComputeStorageTokenMissing,
        )];
        let json = serde_json::to_string(&list).unwrap();
        assert!(json.starts_with(r#"[{"cause":"POST_COMPUTE_STORAGE_TOKEN_MISSING","message":""#));
        assert!(serde_json::from_str::<ExitMessage>(r#"{"cause":"NOT_A_CAUSE"}"#).is_err());
        // Variant names in Rust case are not wire names.
        assert!(serde_json::from_str::<ExitMessage>(r#"{"cause":"PostComputeTimeout"}"#).is_err());
    }
}

//! Failure causes reported by the pre-compute and post-compute stages to the worker.
//!
//! The serialized names are the wire names of the worker's `ReplicateStatusCause` enum
//! (`SCREAMING_SNAKE_CASE`, e.g. `PRE_COMPUTE_DATASET_DECRYPTION_FAILED`). They are posted as
//! `{"cause":"<NAME>"}` to `/compute/{pre|post}/{taskId}/exit`.

use serde::{Deserialize, Serialize};
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

//! The error codes of `POST /tee/sessions` (reference: SMS behaviour §4.7).
//!
//! The wire form is the SCREAMING_SNAKE_CASE name of the variant, sent as
//! `{"error":"<CODE>"}`. Workers turn it into the replicate cause
//! `TEE_SESSION_GENERATION_<CODE>`, so the spellings of the upstream codes are a contract and are
//! pinned by tests.
//!
//! Status codes of the upstream codes are kept: `INVALID_AUTHORIZATION` and every
//! `EXECUTION_NOT_AUTHORIZED_*` are 401, everything else is 500. This implementation adds a few
//! codes for checks upstream does not make; they are client errors (4xx) except
//! [`TeeSessionGenerationError::PreComputeBulkProcessingNotSupported`], which is a limitation of
//! this server (501):
//!
//! An iExec worker decodes the body into its own enum of upstream codes and fails the whole
//! decode on an unknown name, so the body carries [`TeeSessionGenerationError::wire_code`]: an
//! added code is written as the nearest upstream code (the "worker sees" column), and the
//! precise code is sent in the `X-Sms-Error` header, the human reason in `X-Sms-Reason`.
//!
//! | code (`X-Sms-Error`) | status | when | the iExec worker sees |
//! |---|---|---|---|
//! | `MALFORMED_SESSION_REQUEST` | 400 | the body is not a well-formed WorkerpoolAuthorization | `NO_SESSION_REQUEST` |
//! | `EXECUTION_NOT_AUTHORIZED_ENCLAVE_CHALLENGE_MISMATCH` | 401 | `enclaveChallenge` is not the address this SMS issued for the task | `GET_SIGNATURE_TOKENS_FAILED_EMPTY_PUBLIC_ENCLAVE_CHALLENGE` |
//! | `EXECUTION_NOT_AUTHORIZED_TEE_FRAMEWORK_MISMATCH` | 409 | the deal's framework is not the one this SMS serves | `SECURE_SESSION_NO_TEE_FRAMEWORK` |
//! | `EXECUTION_NOT_AUTHORIZED_TASK_SESSION_TAKEN` | 409 | the task already has a live session for another worker (one task, one session, one release budget) | `SECURE_SESSION_GENERATION_FAILED` |
//! | `PRE_COMPUTE_BULK_PROCESSING_NOT_SUPPORTED` | 501 | the deal params carry a `bulk_cid` and no IPFS gateway is configured | `SECURE_SESSION_GENERATION_FAILED` |
//! | `PRE_COMPUTE_BULK_GATEWAY_FAILED` | 503 | the IPFS gateway did not answer a bulk document in time, or with an error | `SECURE_SESSION_GENERATION_FAILED` |
//! | `PRE_COMPUTE_BULK_CID_MISMATCH` | 502 | the gateway's bytes do not hash to the document's CID | `SECURE_SESSION_GENERATION_FAILED` |
//! | `PRE_COMPUTE_BULK_DOCUMENT_INVALID` | 422 | unsupported CID, document too large or malformed, no slice for the task | `SECURE_SESSION_GENERATION_FAILED` |

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Every error code `/tee/sessions` can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TeeSessionGenerationError {
    // Worker signature (401).
    InvalidAuthorization,
    // On-chain authorization (401).
    ExecutionNotAuthorizedEmptyParamsUnauthorized,
    ExecutionNotAuthorizedNoMatchOnchainType,
    ExecutionNotAuthorizedGetChainTaskFailed,
    ExecutionNotAuthorizedTaskNotActive,
    ExecutionNotAuthorizedGetChainDealFailed,
    ExecutionNotAuthorizedInvalidSignature,
    // Sign tokens (500).
    GetSignatureTokensFailedEmptyWorkerAddress,
    GetSignatureTokensFailedEmptyPublicEnclaveChallenge,
    GetSignatureTokensFailedEmptyTeeChallenge,
    GetSignatureTokensFailedEmptyTeeCredentials,
    // Per-enclave environment (500).
    PreComputeGetDatasetSecretFailed,
    AppComputeNoEnclaveConfig,
    AppComputeInvalidEnclaveConfig,
    PostComputeGetEncryptionTokensFailedEmptyBeneficiaryKey,
    PostComputeGetStorageTokensFailed,
    // Session storage and generic failures (500).
    SecureSessionStorageCallFailed,
    SecureSessionGenerationFailed,
    SecureSessionNoTeeFramework,
    GetTaskDescriptionFailed,
    NoSessionRequest,
    NoTaskDescription,
    /// Only produced worker-side; accepted when parsing.
    UnknownIssue,
    // Codes added by this implementation.
    /// The request body is not a well-formed WorkerpoolAuthorization (400).
    MalformedSessionRequest,
    /// `enclaveChallenge` is not the challenge this SMS issued for the task (401).
    ExecutionNotAuthorizedEnclaveChallengeMismatch,
    /// The deal tag selects a TEE framework this SMS does not serve (409).
    ExecutionNotAuthorizedTeeFrameworkMismatch,
    /// The deal has a `bulk_cid` and this SMS has no IPFS gateway (`--ipfs-gateway`) (501).
    PreComputeBulkProcessingNotSupported,
    /// The task already has a live session, created for another worker (409).
    ExecutionNotAuthorizedTaskSessionTaken,
    /// The IPFS gateway did not answer a bulk document in time, could not be reached or
    /// answered an error status (503, retryable).
    PreComputeBulkGatewayFailed,
    /// The bytes the gateway answered do not hash to the document's CID (502).
    PreComputeBulkCidMismatch,
    /// The bulk document is not usable: unsupported CID, too large, not the expected JSON, no
    /// slice for the task, too many orders (422).
    PreComputeBulkDocumentInvalid,
}

use TeeSessionGenerationError as E;

impl TeeSessionGenerationError {
    pub const ALL: [Self; 31] = [
        E::InvalidAuthorization,
        E::ExecutionNotAuthorizedEmptyParamsUnauthorized,
        E::ExecutionNotAuthorizedNoMatchOnchainType,
        E::ExecutionNotAuthorizedGetChainTaskFailed,
        E::ExecutionNotAuthorizedTaskNotActive,
        E::ExecutionNotAuthorizedGetChainDealFailed,
        E::ExecutionNotAuthorizedInvalidSignature,
        E::GetSignatureTokensFailedEmptyWorkerAddress,
        E::GetSignatureTokensFailedEmptyPublicEnclaveChallenge,
        E::GetSignatureTokensFailedEmptyTeeChallenge,
        E::GetSignatureTokensFailedEmptyTeeCredentials,
        E::PreComputeGetDatasetSecretFailed,
        E::AppComputeNoEnclaveConfig,
        E::AppComputeInvalidEnclaveConfig,
        E::PostComputeGetEncryptionTokensFailedEmptyBeneficiaryKey,
        E::PostComputeGetStorageTokensFailed,
        E::SecureSessionStorageCallFailed,
        E::SecureSessionGenerationFailed,
        E::SecureSessionNoTeeFramework,
        E::GetTaskDescriptionFailed,
        E::NoSessionRequest,
        E::NoTaskDescription,
        E::UnknownIssue,
        E::MalformedSessionRequest,
        E::ExecutionNotAuthorizedEnclaveChallengeMismatch,
        E::ExecutionNotAuthorizedTeeFrameworkMismatch,
        E::PreComputeBulkProcessingNotSupported,
        E::ExecutionNotAuthorizedTaskSessionTaken,
        E::PreComputeBulkGatewayFailed,
        E::PreComputeBulkCidMismatch,
        E::PreComputeBulkDocumentInvalid,
    ];

    /// The exact wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            E::InvalidAuthorization => "INVALID_AUTHORIZATION",
            E::ExecutionNotAuthorizedEmptyParamsUnauthorized => {
                "EXECUTION_NOT_AUTHORIZED_EMPTY_PARAMS_UNAUTHORIZED"
            }
            E::ExecutionNotAuthorizedNoMatchOnchainType => {
                "EXECUTION_NOT_AUTHORIZED_NO_MATCH_ONCHAIN_TYPE"
            }
            E::ExecutionNotAuthorizedGetChainTaskFailed => {
                "EXECUTION_NOT_AUTHORIZED_GET_CHAIN_TASK_FAILED"
            }
            E::ExecutionNotAuthorizedTaskNotActive => "EXECUTION_NOT_AUTHORIZED_TASK_NOT_ACTIVE",
            E::ExecutionNotAuthorizedGetChainDealFailed => {
                "EXECUTION_NOT_AUTHORIZED_GET_CHAIN_DEAL_FAILED"
            }
            E::ExecutionNotAuthorizedInvalidSignature => {
                "EXECUTION_NOT_AUTHORIZED_INVALID_SIGNATURE"
            }
            E::GetSignatureTokensFailedEmptyWorkerAddress => {
                "GET_SIGNATURE_TOKENS_FAILED_EMPTY_WORKER_ADDRESS"
            }
            E::GetSignatureTokensFailedEmptyPublicEnclaveChallenge => {
                "GET_SIGNATURE_TOKENS_FAILED_EMPTY_PUBLIC_ENCLAVE_CHALLENGE"
            }
            E::GetSignatureTokensFailedEmptyTeeChallenge => {
                "GET_SIGNATURE_TOKENS_FAILED_EMPTY_TEE_CHALLENGE"
            }
            E::GetSignatureTokensFailedEmptyTeeCredentials => {
                "GET_SIGNATURE_TOKENS_FAILED_EMPTY_TEE_CREDENTIALS"
            }
            E::PreComputeGetDatasetSecretFailed => "PRE_COMPUTE_GET_DATASET_SECRET_FAILED",
            E::AppComputeNoEnclaveConfig => "APP_COMPUTE_NO_ENCLAVE_CONFIG",
            E::AppComputeInvalidEnclaveConfig => "APP_COMPUTE_INVALID_ENCLAVE_CONFIG",
            E::PostComputeGetEncryptionTokensFailedEmptyBeneficiaryKey => {
                "POST_COMPUTE_GET_ENCRYPTION_TOKENS_FAILED_EMPTY_BENEFICIARY_KEY"
            }
            E::PostComputeGetStorageTokensFailed => "POST_COMPUTE_GET_STORAGE_TOKENS_FAILED",
            E::SecureSessionStorageCallFailed => "SECURE_SESSION_STORAGE_CALL_FAILED",
            E::SecureSessionGenerationFailed => "SECURE_SESSION_GENERATION_FAILED",
            E::SecureSessionNoTeeFramework => "SECURE_SESSION_NO_TEE_FRAMEWORK",
            E::GetTaskDescriptionFailed => "GET_TASK_DESCRIPTION_FAILED",
            E::NoSessionRequest => "NO_SESSION_REQUEST",
            E::NoTaskDescription => "NO_TASK_DESCRIPTION",
            E::UnknownIssue => "UNKNOWN_ISSUE",
            E::MalformedSessionRequest => "MALFORMED_SESSION_REQUEST",
            E::ExecutionNotAuthorizedEnclaveChallengeMismatch => {
                "EXECUTION_NOT_AUTHORIZED_ENCLAVE_CHALLENGE_MISMATCH"
            }
            E::ExecutionNotAuthorizedTeeFrameworkMismatch => {
                "EXECUTION_NOT_AUTHORIZED_TEE_FRAMEWORK_MISMATCH"
            }
            E::PreComputeBulkProcessingNotSupported => "PRE_COMPUTE_BULK_PROCESSING_NOT_SUPPORTED",
            E::ExecutionNotAuthorizedTaskSessionTaken => {
                "EXECUTION_NOT_AUTHORIZED_TASK_SESSION_TAKEN"
            }
            E::PreComputeBulkGatewayFailed => "PRE_COMPUTE_BULK_GATEWAY_FAILED",
            E::PreComputeBulkCidMismatch => "PRE_COMPUTE_BULK_CID_MISMATCH",
            E::PreComputeBulkDocumentInvalid => "PRE_COMPUTE_BULK_DOCUMENT_INVALID",
        }
    }

    /// Parses a wire spelling (exact, case-sensitive).
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == code)
    }

    /// The HTTP status `/tee/sessions` answers with.
    pub fn http_status(self) -> u16 {
        match self {
            E::MalformedSessionRequest => 400,
            E::InvalidAuthorization
            | E::ExecutionNotAuthorizedEmptyParamsUnauthorized
            | E::ExecutionNotAuthorizedNoMatchOnchainType
            | E::ExecutionNotAuthorizedGetChainTaskFailed
            | E::ExecutionNotAuthorizedTaskNotActive
            | E::ExecutionNotAuthorizedGetChainDealFailed
            | E::ExecutionNotAuthorizedInvalidSignature
            | E::ExecutionNotAuthorizedEnclaveChallengeMismatch => 401,
            E::ExecutionNotAuthorizedTeeFrameworkMismatch
            | E::ExecutionNotAuthorizedTaskSessionTaken => 409,
            E::PreComputeBulkProcessingNotSupported => 501,
            E::PreComputeBulkDocumentInvalid => 422,
            E::PreComputeBulkCidMismatch => 502,
            E::PreComputeBulkGatewayFailed => 503,
            _ => 500,
        }
    }

    /// The code written in the JSON body: the upstream code itself, or, for a code this
    /// implementation adds, the upstream code an iExec worker will decode and report instead
    /// (the worker's enum knows only upstream's names; an unknown name makes it fail the whole
    /// decode). The precise code travels in the `X-Sms-Error` header.
    pub fn wire_code(self) -> Self {
        match self {
            E::MalformedSessionRequest => E::NoSessionRequest,
            E::ExecutionNotAuthorizedEnclaveChallengeMismatch => {
                E::GetSignatureTokensFailedEmptyPublicEnclaveChallenge
            }
            E::ExecutionNotAuthorizedTeeFrameworkMismatch => E::SecureSessionNoTeeFramework,
            E::PreComputeBulkProcessingNotSupported
            | E::ExecutionNotAuthorizedTaskSessionTaken
            | E::PreComputeBulkGatewayFailed
            | E::PreComputeBulkCidMismatch
            | E::PreComputeBulkDocumentInvalid => E::SecureSessionGenerationFailed,
            upstream => upstream,
        }
    }

    /// True for 4xx codes: the caller, not the SMS, must change something.
    pub fn is_client_error(self) -> bool {
        (400..500).contains(&self.http_status())
    }

    /// True for the codes this implementation adds to the upstream set.
    pub fn is_extension(self) -> bool {
        matches!(
            self,
            E::MalformedSessionRequest
                | E::ExecutionNotAuthorizedEnclaveChallengeMismatch
                | E::ExecutionNotAuthorizedTeeFrameworkMismatch
                | E::PreComputeBulkProcessingNotSupported
                | E::ExecutionNotAuthorizedTaskSessionTaken
                | E::PreComputeBulkGatewayFailed
                | E::PreComputeBulkCidMismatch
                | E::PreComputeBulkDocumentInvalid
        )
    }
}

impl fmt::Display for TeeSessionGenerationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session failure: the wire code plus a detail for logs. The detail never contains a secret
/// value, only names, addresses and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{code}: {detail}")]
pub struct SessionError {
    pub code: TeeSessionGenerationError,
    pub detail: String,
    /// The chain could not be read in time: same code, but HTTP 503 so callers retry.
    pub unavailable: bool,
}

impl SessionError {
    pub fn new(code: TeeSessionGenerationError, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            unavailable: false,
        }
    }

    /// A refusal caused by an unreadable ledger rather than by the request.
    pub fn unavailable(code: TeeSessionGenerationError, detail: impl Into<String>) -> Self {
        Self {
            unavailable: true,
            ..Self::new(code, detail)
        }
    }

    pub fn http_status(&self) -> u16 {
        if self.unavailable {
            503
        } else {
            self.code.http_status()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_and_as_str_agree_for_every_code() {
        for code in TeeSessionGenerationError::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(
                serde_json::from_str::<TeeSessionGenerationError>(&json).unwrap(),
                code
            );
            assert_eq!(TeeSessionGenerationError::parse(code.as_str()), Some(code));
            assert_eq!(code.to_string(), code.as_str());
        }
        assert_eq!(
            TeeSessionGenerationError::parse("invalid_authorization"),
            None
        );
    }

    #[test]
    fn every_body_code_is_an_upstream_code() {
        for code in TeeSessionGenerationError::ALL {
            let wire = code.wire_code();
            assert!(
                !wire.is_extension(),
                "{code} is sent as {wire}, unknown upstream"
            );
            assert_eq!(wire == code, !code.is_extension(), "{code}");
            if code != TeeSessionGenerationError::UnknownIssue {
                assert_ne!(wire, TeeSessionGenerationError::UnknownIssue, "{code}");
            }
        }
    }

    #[test]
    fn upstream_spellings_are_exact() {
        let upstream = [
            "INVALID_AUTHORIZATION",
            "EXECUTION_NOT_AUTHORIZED_EMPTY_PARAMS_UNAUTHORIZED",
            "EXECUTION_NOT_AUTHORIZED_NO_MATCH_ONCHAIN_TYPE",
            "EXECUTION_NOT_AUTHORIZED_GET_CHAIN_TASK_FAILED",
            "EXECUTION_NOT_AUTHORIZED_TASK_NOT_ACTIVE",
            "EXECUTION_NOT_AUTHORIZED_GET_CHAIN_DEAL_FAILED",
            "EXECUTION_NOT_AUTHORIZED_INVALID_SIGNATURE",
            "GET_SIGNATURE_TOKENS_FAILED_EMPTY_WORKER_ADDRESS",
            "GET_SIGNATURE_TOKENS_FAILED_EMPTY_PUBLIC_ENCLAVE_CHALLENGE",
            "GET_SIGNATURE_TOKENS_FAILED_EMPTY_TEE_CHALLENGE",
            "GET_SIGNATURE_TOKENS_FAILED_EMPTY_TEE_CREDENTIALS",
            "PRE_COMPUTE_GET_DATASET_SECRET_FAILED",
            "APP_COMPUTE_NO_ENCLAVE_CONFIG",
            "APP_COMPUTE_INVALID_ENCLAVE_CONFIG",
            "POST_COMPUTE_GET_ENCRYPTION_TOKENS_FAILED_EMPTY_BENEFICIARY_KEY",
            "POST_COMPUTE_GET_STORAGE_TOKENS_FAILED",
            "SECURE_SESSION_STORAGE_CALL_FAILED",
            "SECURE_SESSION_GENERATION_FAILED",
            "SECURE_SESSION_NO_TEE_FRAMEWORK",
            "GET_TASK_DESCRIPTION_FAILED",
            "NO_SESSION_REQUEST",
            "NO_TASK_DESCRIPTION",
            "UNKNOWN_ISSUE",
        ];
        let parsed: Vec<_> = upstream
            .iter()
            .map(|s| TeeSessionGenerationError::parse(s).unwrap())
            .collect();
        assert!(parsed.iter().all(|c| !c.is_extension()));
        assert_eq!(
            TeeSessionGenerationError::ALL
                .iter()
                .filter(|c| c.is_extension())
                .count(),
            8
        );
    }

    #[test]
    fn statuses() {
        use TeeSessionGenerationError as E;
        let of = |s: &str| TeeSessionGenerationError::parse(s).unwrap().http_status();
        assert_eq!(of("INVALID_AUTHORIZATION"), 401);
        for c in E::ALL
            .iter()
            .filter(|c| c.as_str().starts_with("EXECUTION_NOT_AUTHORIZED_") && !c.is_extension())
        {
            assert_eq!(c.http_status(), 401, "{c}");
        }
        for s in [
            "GET_SIGNATURE_TOKENS_FAILED_EMPTY_TEE_CHALLENGE",
            "PRE_COMPUTE_GET_DATASET_SECRET_FAILED",
            "APP_COMPUTE_NO_ENCLAVE_CONFIG",
            "POST_COMPUTE_GET_STORAGE_TOKENS_FAILED",
            "SECURE_SESSION_GENERATION_FAILED",
            "GET_TASK_DESCRIPTION_FAILED",
        ] {
            assert_eq!(of(s), 500, "{s}");
        }
        for c in E::ALL.iter().filter(|c| c.is_extension()) {
            assert_ne!(c.http_status(), 500, "{c}");
        }
        assert_eq!(E::MalformedSessionRequest.http_status(), 400);
        assert_eq!(
            E::ExecutionNotAuthorizedEnclaveChallengeMismatch.http_status(),
            401
        );
        assert_eq!(
            E::ExecutionNotAuthorizedTeeFrameworkMismatch.http_status(),
            409
        );
        assert!(E::ExecutionNotAuthorizedTeeFrameworkMismatch.is_client_error());
        assert!(!E::PreComputeBulkProcessingNotSupported.is_client_error());
        assert!(!E::SecureSessionGenerationFailed.is_client_error());
    }

    #[test]
    fn session_error_display() {
        let e = SessionError::new(
            TeeSessionGenerationError::AppComputeNoEnclaveConfig,
            "app 0x12 has no mrenclave",
        );
        assert_eq!(
            e.to_string(),
            "APP_COMPUTE_NO_ENCLAVE_CONFIG: app 0x12 has no mrenclave"
        );
        assert_eq!(e.http_status(), 500);
    }
}

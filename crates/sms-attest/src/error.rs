//! Why evidence was refused, with a stable machine-readable code per reason.

use std::fmt;

use crate::report::TeeKind;
use crate::status::TcbStatus;

/// The detail of a failure in a lower layer: the DCAP library's error with its context chain
/// flattened into one message, or a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail(pub String);

impl Detail {
    pub(crate) fn new(e: &anyhow::Error) -> Self {
        Detail(format!("{e:#}"))
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Detail {}

/// Why collateral could not be loaded, fetched or used.
#[derive(Debug, thiserror::Error)]
pub enum CollateralError {
    #[error("cannot read collateral file {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("collateral is not valid JSON of the expected shape")]
    Json(#[source] serde_json::Error),
    #[error("collateral is malformed: {0}")]
    Malformed(String),
    #[error("no collateral for {tee} FMSPC {fmspc}")]
    NotFound { tee: TeeKind, fmspc: String },
    #[error(
        "quote carries PCK certification data of type {0}; only type 5 (PCK chain in the quote) is supported"
    )]
    UnsupportedCertType(u16),
    #[error("cannot read the PCK certificate of the quote")]
    Pck(#[source] Detail),
    #[error("collateral request to {url} failed")]
    Http {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("collateral request to {url} answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("collateral answer from {url} is missing header {header}")]
    MissingHeader { url: String, header: &'static str },
    #[error("collateral source is not usable: {0}")]
    Config(String),
}

/// Why evidence was refused. [`VerifyError::code`] gives a stable code for each variant.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The evidence cannot even be decoded (truncated quote, unsupported version, bad fields).
    #[error("evidence is malformed")]
    EvidenceMalformed(#[source] Detail),
    /// The evidence says one TEE kind and its content another (e.g. a TDX quote sent as SGX).
    #[error("evidence declared as {declared} contains a {actual} quote")]
    TeeMismatch { declared: TeeKind, actual: TeeKind },
    /// The quote does not verify: a signature, the certificate chain, the QE identity or the
    /// TCB matching failed (one flipped byte ends here).
    #[error("quote verification failed")]
    QuoteInvalid(#[source] Detail),
    /// No collateral was given for DCAP evidence.
    #[error("no collateral was provided for {0} evidence")]
    CollateralMissing(TeeKind),
    /// Collateral could not be obtained (file, PCCS).
    #[error("collateral is unavailable")]
    CollateralUnavailable(#[source] CollateralError),
    /// Collateral is malformed or does not belong to this quote (other TEE, other FMSPC).
    #[error("collateral is invalid for this quote")]
    CollateralInvalid(#[source] CollateralError),
    #[error("collateral expired at {expired_at} (now {now})")]
    CollateralExpired { expired_at: u64, now: u64 },
    #[error("collateral is not valid before {valid_from} (now {now})")]
    CollateralNotYetValid { valid_from: u64, now: u64 },
    #[error("enclave runs in debug mode")]
    DebugEnclave,
    #[error("TCB status {status} is not accepted by the policy (advisories: {advisories:?})")]
    TcbStatusRejected {
        status: TcbStatus,
        advisories: Vec<String>,
    },
    #[error("advisory {advisory} is rejected by the policy")]
    AdvisoryRejected { advisory: String },
    /// The evidence does not prove the expected measurement. `register` names what differed:
    /// `MRENCLAVE`, a TDX register (`MRTD`, `RTMR0`..`RTMR3`, `MRCONFIGID`), the simulated
    /// claim, or `TEE` when the evidence is of another TEE than the expected measurement.
    #[error("{register} mismatch: expected {expected}, got {actual}")]
    MeasurementMismatch {
        register: &'static str,
        expected: String,
        actual: String,
    },
    #[error("report data does not bind the expected nonce and public key")]
    ReportDataMismatch,
    #[error("simulated evidence is refused by this verifier")]
    SimulatedEvidenceRefused,
}

impl VerifyError {
    /// A stable, machine-readable code for the reason, e.g. `"QUOTE_INVALID"`.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::EvidenceMalformed(_) => "EVIDENCE_MALFORMED",
            VerifyError::TeeMismatch { .. } => "TEE_MISMATCH",
            VerifyError::QuoteInvalid(_) => "QUOTE_INVALID",
            VerifyError::CollateralMissing(_) => "COLLATERAL_MISSING",
            VerifyError::CollateralUnavailable(_) => "COLLATERAL_UNAVAILABLE",
            VerifyError::CollateralInvalid(_) => "COLLATERAL_INVALID",
            VerifyError::CollateralExpired { .. } => "COLLATERAL_EXPIRED",
            VerifyError::CollateralNotYetValid { .. } => "COLLATERAL_NOT_YET_VALID",
            VerifyError::DebugEnclave => "DEBUG_ENCLAVE",
            VerifyError::TcbStatusRejected { .. } => "TCB_STATUS_REJECTED",
            VerifyError::AdvisoryRejected { .. } => "ADVISORY_REJECTED",
            VerifyError::MeasurementMismatch { .. } => "MEASUREMENT_MISMATCH",
            VerifyError::ReportDataMismatch => "REPORT_DATA_MISMATCH",
            VerifyError::SimulatedEvidenceRefused => "SIMULATED_EVIDENCE_REFUSED",
        }
    }

    /// Every code [`code`](Self::code) can return.
    pub const CODES: [&'static str; 14] = [
        "EVIDENCE_MALFORMED",
        "TEE_MISMATCH",
        "QUOTE_INVALID",
        "COLLATERAL_MISSING",
        "COLLATERAL_UNAVAILABLE",
        "COLLATERAL_INVALID",
        "COLLATERAL_EXPIRED",
        "COLLATERAL_NOT_YET_VALID",
        "DEBUG_ENCLAVE",
        "TCB_STATUS_REJECTED",
        "ADVISORY_REJECTED",
        "MEASUREMENT_MISMATCH",
        "REPORT_DATA_MISMATCH",
        "SIMULATED_EVIDENCE_REFUSED",
    ];

    /// The message with its `source` chain, `": "`-separated (for logs and HTTP bodies).
    pub fn full_message(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            out.push_str(": ");
            out.push_str(&s.to_string());
            source = s.source();
        }
        out
    }
}

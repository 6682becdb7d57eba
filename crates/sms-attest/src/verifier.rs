//! The whole check: authenticity, policy, measurement and report-data binding.

use crate::binding::report_data_eq;
use crate::collateral::{Collateral, CollateralSource};
use crate::error::VerifyError;
use crate::evidence::Evidence;
use crate::policy::Policy;
use crate::report::VerifiedReport;
use crate::tee::TeeVerifier;
use crate::tee::dcap::DcapQuote;
use crate::tee::sgx::SgxVerifier;
use crate::tee::simulated::SimulatedVerifier;
use crate::tee::tdx::TdxVerifier;

/// Verifies evidence end to end. Pure: the clock is the `now` argument (unix seconds).
///
/// Checks, in order: the TEE-specific appraisal ([`TeeVerifier`]: signatures, certificate
/// chain, collateral validity), the [`Policy`] (debug, advisories, TCB status), the
/// measurement, then the report data. The first failure is returned.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    policy: Policy,
    allow_simulated: bool,
}

impl Verifier {
    pub fn new(policy: Policy) -> Self {
        Verifier {
            policy,
            allow_simulated: false,
        }
    }

    /// Accepts [`Evidence::Simulated`], which proves nothing. For development and tests only;
    /// without this switch simulated evidence is refused with `SIMULATED_EVIDENCE_REFUSED`.
    pub fn dangerous_allow_simulated(mut self) -> Self {
        self.allow_simulated = true;
        self
    }

    pub fn allows_simulated(&self) -> bool {
        self.allow_simulated
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Authenticity only: the TEE-specific appraisal, without policy nor expected values.
    pub fn appraise(
        &self,
        evidence: &Evidence,
        collateral: Option<&Collateral>,
        now: u64,
    ) -> Result<VerifiedReport, VerifyError> {
        match evidence {
            Evidence::SgxDcap { .. } => SgxVerifier.appraise(evidence, collateral, now),
            Evidence::TdxDcap { .. } => TdxVerifier.appraise(evidence, collateral, now),
            Evidence::Simulated { .. } if self.allow_simulated => {
                SimulatedVerifier.appraise(evidence, collateral, now)
            }
            Evidence::Simulated { .. } => Err(VerifyError::SimulatedEvidenceRefused),
        }
    }

    /// Full verification. `expected_measurement` is MRENCLAVE for SGX, MRTD for TDX (see
    /// [`VerifiedReport::measurement`]); `expected_report_data` is normally
    /// [`report_data_binding`](crate::report_data_binding)`(nonce, public_key)`.
    pub fn verify(
        &self,
        evidence: &Evidence,
        collateral: Option<&Collateral>,
        expected_measurement: &[u8],
        expected_report_data: &[u8; 64],
        now: u64,
    ) -> Result<VerifiedReport, VerifyError> {
        let report = self.appraise(evidence, collateral, now)?;
        check_report(
            &report,
            &self.policy,
            Some(expected_measurement),
            Some(expected_report_data),
        )?;
        Ok(report)
    }

    /// [`verify`](Self::verify) with collateral taken from `source` (fetched and cached for a
    /// PCCS source). Simulated evidence needs no collateral.
    pub async fn verify_with_source(
        &self,
        evidence: &Evidence,
        source: &CollateralSource,
        expected_measurement: &[u8],
        expected_report_data: &[u8; 64],
        now: u64,
    ) -> Result<VerifiedReport, VerifyError> {
        let collateral = match evidence {
            Evidence::SgxDcap { quote } | Evidence::TdxDcap { quote } => {
                let parsed = DcapQuote::parse(quote)?;
                let collateral = source
                    .collateral_for(&parsed, now)
                    .await
                    .map_err(VerifyError::CollateralUnavailable)?;
                Some(collateral)
            }
            Evidence::Simulated { .. } => None,
        };
        self.verify(
            evidence,
            collateral.as_deref(),
            expected_measurement,
            expected_report_data,
            now,
        )
    }
}

/// The checks [`Verifier::verify`] applies after authenticity: the policy, then the
/// measurement and report data when given.
pub fn check_report(
    report: &VerifiedReport,
    policy: &Policy,
    expected_measurement: Option<&[u8]>,
    expected_report_data: Option<&[u8; 64]>,
) -> Result<(), VerifyError> {
    policy.check(report)?;
    if let Some(expected) = expected_measurement
        && report.measurement() != expected
    {
        return Err(VerifyError::MeasurementMismatch {
            expected: hex::encode(expected),
            actual: report.measurement_hex(),
        });
    }
    if let Some(expected) = expected_report_data
        && !report_data_eq(&report.report_data, expected)
    {
        return Err(VerifyError::ReportDataMismatch);
    }
    Ok(())
}

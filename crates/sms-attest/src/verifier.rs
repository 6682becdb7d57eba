//! The whole check: authenticity, policy, measurement and report-data binding.

use sms_core::measurement::{ExpectedMeasurement, TdxMeasurement};

use crate::binding::report_data_eq;
use crate::collateral::Collateral;
use crate::collateral_source::CollateralSource;
use crate::error::VerifyError;
use crate::evidence::Evidence;
use crate::policy::Policy;
use crate::report::{TdxClaims, TeeClaims, TeeKind, VerifiedReport};
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

    /// Full verification. `expected_measurement` says what the evidence must prove (see
    /// [`check_measurement`]); `expected_report_data` is normally
    /// [`report_data_binding`](crate::report_data_binding)`(nonce, public_key)`.
    pub fn verify(
        &self,
        evidence: &Evidence,
        collateral: Option<&Collateral>,
        expected_measurement: &ExpectedMeasurement,
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
        expected_measurement: &ExpectedMeasurement,
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
    expected_measurement: Option<&ExpectedMeasurement>,
    expected_report_data: Option<&[u8; 64]>,
) -> Result<(), VerifyError> {
    policy.check(report)?;
    if let Some(expected) = expected_measurement {
        check_measurement(report, expected)?;
    }
    if let Some(expected) = expected_report_data
        && !report_data_eq(&report.report_data, expected)
    {
        return Err(VerifyError::ReportDataMismatch);
    }
    Ok(())
}

/// Whether the report proves `expected`, failing closed:
///
/// - an SGX report: MRENCLAVE equals the expected one;
/// - a TDX report: every register of the expected [`TdxMeasurement`] is satisfied (`any` only
///   where the expectation says so); without registers, no TDX report matches;
/// - simulated evidence: its claim equals [`ExpectedMeasurement::simulated_claim`];
/// - SGX evidence for a TDX expectation, or TDX evidence for an SGX one, never matches.
///
/// A mismatch names the register, with the expected and the actual value in hex.
pub fn check_measurement(
    report: &VerifiedReport,
    expected: &ExpectedMeasurement,
) -> Result<(), VerifyError> {
    match (&report.claims, expected) {
        (TeeClaims::Sgx(claims), ExpectedMeasurement::Sgx { mr_enclave }) => {
            if claims.mr_enclave != *mr_enclave {
                return Err(VerifyError::MeasurementMismatch {
                    register: "MRENCLAVE",
                    expected: hex::encode(mr_enclave),
                    actual: hex::encode(claims.mr_enclave),
                });
            }
            Ok(())
        }
        (TeeClaims::Tdx(claims), ExpectedMeasurement::Tdx { registers, .. }) => match registers {
            Some(registers) => check_tdx_registers(claims, registers),
            None => Err(VerifyError::MeasurementMismatch {
                register: "TDX registers",
                expected: "a register expectation, and this service has none (its pipeline \
                           stage has no tdx table)"
                    .into(),
                actual: "a TDX quote".into(),
            }),
        },
        (TeeClaims::Simulated { measurement }, expected) => {
            let claim = expected.simulated_claim();
            if measurement.as_slice() != claim {
                return Err(VerifyError::MeasurementMismatch {
                    register: "simulated measurement",
                    expected: hex::encode(claim),
                    actual: hex::encode(measurement),
                });
            }
            Ok(())
        }
        (TeeClaims::Sgx(_), ExpectedMeasurement::Tdx { .. }) => {
            Err(other_tee(TeeKind::Tdx, report))
        }
        (TeeClaims::Tdx(_), ExpectedMeasurement::Sgx { .. }) => {
            Err(other_tee(TeeKind::Sgx, report))
        }
    }
}

fn other_tee(expected: TeeKind, report: &VerifiedReport) -> VerifyError {
    VerifyError::MeasurementMismatch {
        register: "TEE",
        expected: format!("{expected} evidence"),
        actual: format!("{} evidence", report.tee),
    }
}

fn check_tdx_registers(claims: &TdxClaims, expected: &TdxMeasurement) -> Result<(), VerifyError> {
    match expected.first_mismatch(|register| claims.register(register)) {
        None => Ok(()),
        Some((register, bytes)) => Err(VerifyError::MeasurementMismatch {
            register: register.name(),
            expected: hex::encode(bytes),
            actual: hex::encode(claims.register(register)),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use sms_core::measurement::{Register, TdxRegister};

    use super::*;
    use crate::report::SgxClaims;
    use crate::status::TcbStatus;

    fn tdx_claims() -> TdxClaims {
        TdxClaims {
            mr_td: [0x10; 48],
            rtmr0: [0x20; 48],
            rtmr1: [0x21; 48],
            rtmr2: [0x22; 48],
            rtmr3: [0x23; 48],
            mr_config_id: [0x30; 48],
            mr_owner: [0x40; 48],
            mr_seam: [0x50; 48],
            td_attributes: [0; 8],
            quote_version: 4,
        }
    }

    fn report(claims: TeeClaims) -> VerifiedReport {
        let tee = match &claims {
            TeeClaims::Sgx(_) => TeeKind::Sgx,
            TeeClaims::Tdx(_) => TeeKind::Tdx,
            TeeClaims::Simulated { .. } => TeeKind::Simulated,
        };
        VerifiedReport {
            tee,
            tcb_status: Some(TcbStatus::UpToDate),
            advisory_ids: Vec::new(),
            debug: false,
            report_data: [9; 64],
            collateral_expires_at: None,
            claims,
        }
    }

    /// The expectation of exactly the TD of [`tdx_claims`].
    fn own() -> TdxMeasurement {
        let claims = tdx_claims();
        TdxMeasurement::from_fn(|r| Register::Exact(claims.register(r)))
    }

    fn tdx(registers: TdxMeasurement) -> ExpectedMeasurement {
        ExpectedMeasurement::Tdx {
            registers: Some(registers),
            fingerprint: vec![1; 32],
        }
    }

    fn check(claims: TeeClaims, expected: &ExpectedMeasurement) -> Result<(), VerifyError> {
        check_report(
            &report(claims),
            &Policy::default(),
            Some(expected),
            Some(&[9; 64]),
        )
    }

    fn mismatch(result: Result<(), VerifyError>) -> (&'static str, String, String) {
        match result {
            Err(VerifyError::MeasurementMismatch {
                register,
                expected,
                actual,
            }) => (register, expected, actual),
            other => panic!("expected MEASUREMENT_MISMATCH, got {other:?}"),
        }
    }

    #[test]
    fn right_mrtd_and_one_wrong_rtmr_is_refused_naming_the_rtmr() {
        assert!(check(TeeClaims::Tdx(tdx_claims()), &tdx(own())).is_ok());
        for (register, set) in [
            (
                TdxRegister::Rtmr0,
                (|c: &mut TdxClaims| c.rtmr0[0] ^= 1) as fn(&mut TdxClaims),
            ),
            (TdxRegister::Rtmr1, |c| c.rtmr1[10] ^= 1),
            (TdxRegister::Rtmr2, |c| c.rtmr2[47] ^= 1),
            (TdxRegister::Rtmr3, |c| c.rtmr3 = [0; 48]),
            (TdxRegister::MrConfigId, |c| c.mr_config_id[5] ^= 0x80),
        ] {
            let mut claims = tdx_claims();
            set(&mut claims);
            assert_eq!(claims.mr_td, tdx_claims().mr_td, "MRTD stays right");
            let actual = claims.register(register);
            let (name, expected, got) = mismatch(check(TeeClaims::Tdx(claims), &tdx(own())));
            assert_eq!(name, register.name());
            assert_eq!(expected, hex::encode(tdx_claims().register(register)));
            assert_eq!(got, hex::encode(actual));
        }
    }

    #[test]
    fn any_is_accepted_only_where_written() {
        let mut claims = tdx_claims();
        claims.rtmr2 = [0xee; 48];
        claims.rtmr3 = [0xef; 48];
        let mut m = own();
        m.rtmr2 = Register::Any;
        // RTMR2 is not compared, RTMR3 still is.
        let (name, ..) = mismatch(check(TeeClaims::Tdx(claims.clone()), &tdx(m.clone())));
        assert_eq!(name, "RTMR3");
        m.rtmr3 = Register::Any;
        assert!(check(TeeClaims::Tdx(claims), &tdx(m)).is_ok());
        // MROWNER and MRSEAM are not part of the expectation.
        let mut other = tdx_claims();
        other.mr_owner = [0; 48];
        assert!(check(TeeClaims::Tdx(other), &tdx(own())).is_ok());
    }

    #[test]
    fn evidence_of_another_tee_never_matches() {
        let sgx = TeeClaims::Sgx(SgxClaims {
            mr_enclave: [0x10; 32],
            mr_signer: [0; 32],
            isv_prod_id: 0,
            isv_svn: 0,
            attributes: [0; 16],
        });
        let sgx_expected = ExpectedMeasurement::Sgx {
            mr_enclave: [0x10; 32],
        };
        assert!(check(sgx.clone(), &sgx_expected).is_ok());
        assert_eq!(mismatch(check(sgx, &tdx(own()))).0, "TEE");
        let (name, expected, actual) = mismatch(check(TeeClaims::Tdx(tdx_claims()), &sgx_expected));
        assert_eq!(
            (name, expected.as_str(), actual.as_str()),
            ("TEE", "sgx evidence", "tdx evidence")
        );
        // A TDX service without registers refuses every TD.
        let none = ExpectedMeasurement::Tdx {
            registers: None,
            fingerprint: tdx_claims().mr_td.to_vec(),
        };
        assert_eq!(
            mismatch(check(TeeClaims::Tdx(tdx_claims()), &none)).0,
            "TDX registers"
        );
        // Simulated evidence is compared with the stage's fingerprint only.
        let simulated = |m: &[u8]| TeeClaims::Simulated {
            measurement: m.to_vec(),
        };
        assert!(check(simulated(&tdx_claims().mr_td), &none).is_ok());
        assert!(check(simulated(&[1; 32]), &tdx(own())).is_ok());
        assert_eq!(
            mismatch(check(simulated(&tdx_claims().mr_td), &tdx(own()))).0,
            "simulated measurement"
        );
        assert!(check(simulated(&[0x10; 32]), &sgx_expected).is_ok());
    }
}

//! A fake TEE for development and tests: no signature, but the same binding checks.

use super::TeeVerifier;
use crate::collateral::Collateral;
use crate::error::{Detail, VerifyError};
use crate::evidence::Evidence;
use crate::report::{TeeClaims, TeeKind, VerifiedReport};

/// Accepts [`Evidence::Simulated`] at face value. Only reachable through a
/// [`Verifier`](crate::Verifier) built with `dangerous_allow_simulated`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimulatedVerifier;

impl TeeVerifier for SimulatedVerifier {
    fn tee(&self) -> TeeKind {
        TeeKind::Simulated
    }

    fn appraise(
        &self,
        evidence: &Evidence,
        _collateral: Option<&Collateral>,
        _now: u64,
    ) -> Result<VerifiedReport, VerifyError> {
        let Evidence::Simulated {
            measurement,
            report_data,
            debug,
        } = evidence
        else {
            return Err(VerifyError::TeeMismatch {
                declared: evidence.tee(),
                actual: TeeKind::Simulated,
            });
        };
        if measurement.is_empty() || measurement.len() > 64 {
            return Err(VerifyError::EvidenceMalformed(Detail(format!(
                "simulated measurement must have 1 to 64 bytes, not {}",
                measurement.len()
            ))));
        }
        Ok(VerifiedReport {
            tee: TeeKind::Simulated,
            tcb_status: None,
            advisory_ids: Vec::new(),
            debug: *debug,
            report_data: *report_data,
            collateral_expires_at: None,
            claims: TeeClaims::Simulated {
                measurement: measurement.clone(),
            },
        })
    }
}

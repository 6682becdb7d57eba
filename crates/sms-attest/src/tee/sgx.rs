//! Intel SGX, ECDSA quotes version 3 (DCAP).

use super::{TeeVerifier, appraise_dcap};
use crate::collateral::Collateral;
use crate::error::VerifyError;
use crate::evidence::Evidence;
use crate::report::{TeeKind, VerifiedReport};

/// Verifies [`Evidence::SgxDcap`] against Intel's production root CA.
#[derive(Debug, Clone, Copy, Default)]
pub struct SgxVerifier;

impl TeeVerifier for SgxVerifier {
    fn tee(&self) -> TeeKind {
        TeeKind::Sgx
    }

    fn appraise(
        &self,
        evidence: &Evidence,
        collateral: Option<&Collateral>,
        now: u64,
    ) -> Result<VerifiedReport, VerifyError> {
        appraise_dcap(TeeKind::Sgx, evidence, collateral, now)
    }
}

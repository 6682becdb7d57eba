//! Intel TDX, ECDSA quotes version 4 and 5 (DCAP).

use super::{TeeVerifier, appraise_dcap};
use crate::collateral::Collateral;
use crate::error::VerifyError;
use crate::evidence::Evidence;
use crate::report::{TeeKind, VerifiedReport};

/// Verifies [`Evidence::TdxDcap`] against Intel's production root CA.
#[derive(Debug, Clone, Copy, Default)]
pub struct TdxVerifier;

impl TeeVerifier for TdxVerifier {
    fn tee(&self) -> TeeKind {
        TeeKind::Tdx
    }

    fn appraise(
        &self,
        evidence: &Evidence,
        collateral: Option<&Collateral>,
        now: u64,
    ) -> Result<VerifiedReport, VerifyError> {
        appraise_dcap(TeeKind::Tdx, evidence, collateral, now)
    }
}

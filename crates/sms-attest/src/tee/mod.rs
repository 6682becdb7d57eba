//! One verifier per TEE kind, behind one trait.

pub mod dcap;
pub mod sgx;
pub mod simulated;
pub mod tdx;

use crate::collateral::Collateral;
use crate::error::VerifyError;
use crate::evidence::Evidence;
use crate::report::{TeeKind, VerifiedReport};

/// Appraises the evidence of one TEE kind: checks that it is authentic and fresh enough to
/// trust what it says, and returns what it says. Neither the policy nor the expected
/// measurement and report data are applied here: [`Verifier`](crate::Verifier) does that
/// identically for every kind, the simulated one included.
pub trait TeeVerifier {
    fn tee(&self) -> TeeKind;

    /// `collateral` is required by DCAP kinds and ignored by the simulated one; `now` is unix
    /// seconds, injected so that verification is a pure function.
    fn appraise(
        &self,
        evidence: &Evidence,
        collateral: Option<&Collateral>,
        now: u64,
    ) -> Result<VerifiedReport, VerifyError>;
}

/// Shared by the SGX and TDX verifiers.
pub(crate) fn appraise_dcap(
    expected: TeeKind,
    evidence: &Evidence,
    collateral: Option<&Collateral>,
    now: u64,
) -> Result<VerifiedReport, VerifyError> {
    let quote = match evidence {
        Evidence::SgxDcap { quote } | Evidence::TdxDcap { quote } if evidence.tee() == expected => {
            quote
        }
        other => {
            return Err(VerifyError::TeeMismatch {
                declared: other.tee(),
                actual: expected,
            });
        }
    };
    let quote = dcap::DcapQuote::parse(quote)?;
    if quote.tee() != expected {
        return Err(VerifyError::TeeMismatch {
            declared: expected,
            actual: quote.tee(),
        });
    }
    let collateral = collateral.ok_or(VerifyError::CollateralMissing(expected))?;
    quote.verify(collateral, now)
}

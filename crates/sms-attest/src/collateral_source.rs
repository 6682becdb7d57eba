//! Where a verifier gets collateral for a quote: fixed files, or a PCCS. Kept apart from the
//! collateral model (`collateral.rs`), which the PCCS client and the quote verifier both use.

use std::path::Path;
use std::sync::Arc;

use crate::collateral::{Collateral, CollateralBundle};
use crate::error::CollateralError;
use crate::tee::dcap::DcapQuote;

/// Where a verifier gets collateral for a quote.
pub enum CollateralSource {
    /// Fixed collateral loaded from files (air-gapped deployments, tests).
    Offline(CollateralBundle),
    /// Fetched from a PCCS (or Intel PCS) and cached per FMSPC until it expires.
    #[cfg(feature = "pccs")]
    Pccs(crate::pccs::PccsClient),
}

impl CollateralSource {
    /// Offline source from a JSON file or a directory of them.
    pub fn offline(path: impl AsRef<Path>) -> Result<Self, CollateralError> {
        CollateralBundle::load(path).map(CollateralSource::Offline)
    }

    /// The collateral for a quote (TEE kind and FMSPC read from its PCK certificate). `now`
    /// decides whether cached PCCS collateral must be refreshed.
    pub async fn collateral_for(
        &self,
        quote: &DcapQuote,
        now: u64,
    ) -> Result<Arc<Collateral>, CollateralError> {
        let fmspc = quote.fmspc()?;
        match self {
            CollateralSource::Offline(bundle) => {
                let _ = now; // offline collateral is never refreshed
                bundle
                    .get(quote.tee(), &fmspc)
                    .ok_or(CollateralError::NotFound {
                        tee: quote.tee(),
                        fmspc,
                    })
            }
            #[cfg(feature = "pccs")]
            CollateralSource::Pccs(client) => {
                client
                    .collateral(quote.tee(), &fmspc, quote.pck_ca()?, now)
                    .await
            }
        }
    }

    /// Seconds until the first held collateral expires (negative if one already has), `None`
    /// when nothing is held yet. The number to export as a metric.
    pub fn seconds_until_expiry(&self, now: u64) -> Option<i64> {
        match self {
            CollateralSource::Offline(bundle) => {
                bundle.iter().map(|c| c.seconds_until_expiry(now)).min()
            }
            #[cfg(feature = "pccs")]
            CollateralSource::Pccs(client) => client.seconds_until_expiry(now),
        }
    }
}

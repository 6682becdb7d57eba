//! Intel TCB statuses, under the names Intel's collateral uses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The TCB status of a verified platform, converged over the platform, the quoting enclave and
/// (TDX) the TDX module, as Intel's quote verification library does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TcbStatus {
    UpToDate,
    SWHardeningNeeded,
    ConfigurationNeeded,
    ConfigurationAndSWHardeningNeeded,
    OutOfDate,
    OutOfDateConfigurationNeeded,
    TDRelaunchAdvised,
    TDRelaunchAdvisedConfigurationNeeded,
    /// Never accepted: the verifier refuses a revoked platform before any policy runs.
    Revoked,
}

impl TcbStatus {
    pub const ALL: [TcbStatus; 9] = [
        TcbStatus::UpToDate,
        TcbStatus::SWHardeningNeeded,
        TcbStatus::ConfigurationNeeded,
        TcbStatus::ConfigurationAndSWHardeningNeeded,
        TcbStatus::OutOfDate,
        TcbStatus::OutOfDateConfigurationNeeded,
        TcbStatus::TDRelaunchAdvised,
        TcbStatus::TDRelaunchAdvisedConfigurationNeeded,
        TcbStatus::Revoked,
    ];

    /// Intel's name for the status, e.g. `"SWHardeningNeeded"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TcbStatus::UpToDate => "UpToDate",
            TcbStatus::SWHardeningNeeded => "SWHardeningNeeded",
            TcbStatus::ConfigurationNeeded => "ConfigurationNeeded",
            TcbStatus::ConfigurationAndSWHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            TcbStatus::OutOfDate => "OutOfDate",
            TcbStatus::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            TcbStatus::TDRelaunchAdvised => "TDRelaunchAdvised",
            TcbStatus::TDRelaunchAdvisedConfigurationNeeded => {
                "TDRelaunchAdvisedConfigurationNeeded"
            }
            TcbStatus::Revoked => "Revoked",
        }
    }

    /// Statuses that mean "the platform is patched, but Intel advises software hardening and/or a
    /// configuration change", each reason listed as an advisory id. Only these may be waived by
    /// ignoring advisories; see [`Policy`](crate::Policy).
    pub fn is_advisory_only(self) -> bool {
        matches!(
            self,
            TcbStatus::SWHardeningNeeded
                | TcbStatus::ConfigurationNeeded
                | TcbStatus::ConfigurationAndSWHardeningNeeded
        )
    }
}

impl From<dcap_qvl::TcbStatus> for TcbStatus {
    fn from(s: dcap_qvl::TcbStatus) -> Self {
        use dcap_qvl::TcbStatus as D;
        match s {
            D::UpToDate => TcbStatus::UpToDate,
            D::SWHardeningNeeded => TcbStatus::SWHardeningNeeded,
            D::ConfigurationNeeded => TcbStatus::ConfigurationNeeded,
            D::ConfigurationAndSWHardeningNeeded => TcbStatus::ConfigurationAndSWHardeningNeeded,
            D::OutOfDate => TcbStatus::OutOfDate,
            D::OutOfDateConfigurationNeeded => TcbStatus::OutOfDateConfigurationNeeded,
            D::TDRelaunchAdvised => TcbStatus::TDRelaunchAdvised,
            D::TDRelaunchAdvisedConfigurationNeeded => {
                TcbStatus::TDRelaunchAdvisedConfigurationNeeded
            }
            D::Revoked => TcbStatus::Revoked,
        }
    }
}

impl fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown TCB status name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown TCB status '{0}' (expected one of UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded, TDRelaunchAdvised, TDRelaunchAdvisedConfigurationNeeded)"
)]
pub struct UnknownTcbStatus(pub String);

impl FromStr for TcbStatus {
    type Err = UnknownTcbStatus;

    /// Intel's names, compared case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        TcbStatus::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownTcbStatus(s.to_owned()))
    }
}

/// Parses a comma-separated list such as `UpToDate,SWHardeningNeeded` (the CLI's
/// `--accept-status`). Empty items are skipped.
pub fn parse_status_list(list: &str) -> Result<Vec<TcbStatus>, UnknownTcbStatus> {
    list.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in TcbStatus::ALL {
            assert_eq!(status.as_str().parse::<TcbStatus>().unwrap(), status);
            assert_eq!(status.to_string(), dcap_status_name(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
        }
        assert_eq!(
            "uptodate".parse::<TcbStatus>().unwrap(),
            TcbStatus::UpToDate
        );
        assert!("Fine".parse::<TcbStatus>().is_err());
        assert_eq!(
            parse_status_list("UpToDate, SWHardeningNeeded,").unwrap(),
            vec![TcbStatus::UpToDate, TcbStatus::SWHardeningNeeded]
        );
    }

    fn dcap_status_name(status: TcbStatus) -> String {
        // The dcap-qvl names are the same: Display of its enum prints the variant.
        let d = match status {
            TcbStatus::UpToDate => dcap_qvl::TcbStatus::UpToDate,
            TcbStatus::SWHardeningNeeded => dcap_qvl::TcbStatus::SWHardeningNeeded,
            TcbStatus::ConfigurationNeeded => dcap_qvl::TcbStatus::ConfigurationNeeded,
            TcbStatus::ConfigurationAndSWHardeningNeeded => {
                dcap_qvl::TcbStatus::ConfigurationAndSWHardeningNeeded
            }
            TcbStatus::OutOfDate => dcap_qvl::TcbStatus::OutOfDate,
            TcbStatus::OutOfDateConfigurationNeeded => {
                dcap_qvl::TcbStatus::OutOfDateConfigurationNeeded
            }
            TcbStatus::TDRelaunchAdvised => dcap_qvl::TcbStatus::TDRelaunchAdvised,
            TcbStatus::TDRelaunchAdvisedConfigurationNeeded => {
                dcap_qvl::TcbStatus::TDRelaunchAdvisedConfigurationNeeded
            }
            TcbStatus::Revoked => dcap_qvl::TcbStatus::Revoked,
        };
        assert_eq!(TcbStatus::from(d), status);
        d.to_string()
    }
}

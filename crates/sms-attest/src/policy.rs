//! What a verified enclave must additionally satisfy to be trusted.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::VerifyError;
use crate::report::VerifiedReport;
use crate::status::TcbStatus;

/// Appraisal policy, secure by default and configurable with serde (unknown fields refused).
///
/// ```json
/// {
///   "accepted_tcb_statuses": ["UpToDate", "SWHardeningNeeded"],
///   "ignored_advisories": ["INTEL-SA-00615"],
///   "rejected_advisories": [],
///   "dangerous_allow_debug": false
/// }
/// ```
///
/// Rules, applied in this order to a report whose signatures and collateral already verified
/// (expired collateral and a `Revoked` platform are refused before any policy, whatever it says):
///
/// 1. **Debug**: a debug enclave is refused unless `dangerous_allow_debug`.
/// 2. **Rejected advisories**: if any advisory of the report is in `rejected_advisories`, refused.
/// 3. **TCB status**: accepted if it is in `accepted_tcb_statuses` (default `UpToDate` and
///    `SWHardeningNeeded`). Otherwise it is still accepted when it is an *advisory-only* status
///    (`SWHardeningNeeded`, `ConfigurationNeeded`, `ConfigurationAndSWHardeningNeeded`: the
///    platform is patched but Intel lists reasons to harden or reconfigure it), the report lists
///    at least one advisory, and **every** listed advisory is in `ignored_advisories`: the status
///    is below `UpToDate` only for reasons the operator has explicitly waived (the meaning of
///    iExec's `IEXEC_IGNORED_SGX_ADVISORIES`). `OutOfDate*`, `TDRelaunchAdvised*` and `Revoked`
///    are never waived by ignoring advisories: an out-of-date platform must be accepted by name.
///
/// Advisories of an *accepted* status are reported but do not matter (except rule 2).
/// Advisory ids are compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    pub accepted_tcb_statuses: BTreeSet<TcbStatus>,
    pub ignored_advisories: BTreeSet<String>,
    pub rejected_advisories: BTreeSet<String>,
    pub dangerous_allow_debug: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            accepted_tcb_statuses: [TcbStatus::UpToDate, TcbStatus::SWHardeningNeeded].into(),
            ignored_advisories: BTreeSet::new(),
            rejected_advisories: BTreeSet::new(),
            dangerous_allow_debug: false,
        }
    }
}

impl Policy {
    /// A policy accepting exactly these statuses (the CLI's `--accept-status`), debug refused.
    pub fn accepting(statuses: impl IntoIterator<Item = TcbStatus>) -> Self {
        Policy {
            accepted_tcb_statuses: statuses.into_iter().collect(),
            ..Policy::default()
        }
    }

    /// Adds an accepted status.
    pub fn accept_status(mut self, status: TcbStatus) -> Self {
        self.accepted_tcb_statuses.insert(status);
        self
    }

    /// Adds ignored advisories (see the type's documentation for what ignoring means).
    pub fn ignore_advisories<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Self {
        self.ignored_advisories
            .extend(ids.into_iter().map(Into::into));
        self
    }

    /// Adds advisories that refuse the platform whatever its status.
    pub fn reject_advisories<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Self {
        self.rejected_advisories
            .extend(ids.into_iter().map(Into::into));
        self
    }

    /// Accepts debug enclaves. Never in production: the host can read a debug enclave's memory.
    pub fn dangerous_allow_debug(mut self) -> Self {
        self.dangerous_allow_debug = true;
        self
    }

    /// Parses a comma-separated advisory list, as in `IEXEC_IGNORED_SGX_ADVISORIES`.
    pub fn parse_advisory_list(list: &str) -> BTreeSet<String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Applies the policy to a verified report. Simulated reports have no TCB status: only the
    /// debug rule applies to them.
    pub fn check(&self, report: &VerifiedReport) -> Result<(), VerifyError> {
        if report.debug && !self.dangerous_allow_debug {
            return Err(VerifyError::DebugEnclave);
        }
        if let Some(advisory) = report
            .advisory_ids
            .iter()
            .find(|id| contains_ci(&self.rejected_advisories, id))
        {
            return Err(VerifyError::AdvisoryRejected {
                advisory: advisory.clone(),
            });
        }
        let Some(status) = report.tcb_status else {
            return Ok(());
        };
        if status == TcbStatus::Revoked {
            return Err(self.status_rejected(status, report));
        }
        if self.accepted_tcb_statuses.contains(&status) {
            return Ok(());
        }
        let waived = status.is_advisory_only()
            && !report.advisory_ids.is_empty()
            && report
                .advisory_ids
                .iter()
                .all(|id| contains_ci(&self.ignored_advisories, id));
        if waived {
            Ok(())
        } else {
            Err(self.status_rejected(status, report))
        }
    }

    fn status_rejected(&self, status: TcbStatus, report: &VerifiedReport) -> VerifyError {
        VerifyError::TcbStatusRejected {
            status,
            advisories: report.advisory_ids.clone(),
        }
    }
}

fn contains_ci(set: &BTreeSet<String>, id: &str) -> bool {
    set.iter().any(|s| s.eq_ignore_ascii_case(id))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::report::{TeeClaims, TeeKind};

    fn report(status: TcbStatus, advisories: &[&str], debug: bool) -> VerifiedReport {
        VerifiedReport {
            tee: TeeKind::Simulated,
            tcb_status: Some(status),
            advisory_ids: advisories.iter().map(|s| s.to_string()).collect(),
            debug,
            report_data: [0; 64],
            collateral_expires_at: None,
            claims: TeeClaims::Simulated {
                measurement: vec![1],
            },
        }
    }

    #[test]
    fn default_accepts_up_to_date_and_sw_hardening_only() {
        let p = Policy::default();
        assert!(p.check(&report(TcbStatus::UpToDate, &[], false)).is_ok());
        assert!(
            p.check(&report(
                TcbStatus::SWHardeningNeeded,
                &["INTEL-SA-00334"],
                false
            ))
            .is_ok()
        );
        for s in [
            TcbStatus::ConfigurationNeeded,
            TcbStatus::OutOfDate,
            TcbStatus::Revoked,
            TcbStatus::TDRelaunchAdvised,
        ] {
            let e = p.check(&report(s, &["INTEL-SA-1"], false)).unwrap_err();
            assert_eq!(e.code(), "TCB_STATUS_REJECTED");
        }
        let e = p
            .check(&report(TcbStatus::UpToDate, &[], true))
            .unwrap_err();
        assert_eq!(e.code(), "DEBUG_ENCLAVE");
    }

    #[test]
    fn ignored_advisories_waive_only_advisory_only_statuses() {
        let p = Policy::default().ignore_advisories(["intel-sa-00289", "INTEL-SA-00615"]);
        let both = ["INTEL-SA-00289", "INTEL-SA-00615"];
        assert!(
            p.check(&report(
                TcbStatus::ConfigurationAndSWHardeningNeeded,
                &both,
                false
            ))
            .is_ok()
        );
        assert!(
            p.check(&report(TcbStatus::ConfigurationNeeded, &both, false))
                .is_ok()
        );
        // One advisory not ignored.
        let e = p
            .check(&report(
                TcbStatus::ConfigurationNeeded,
                &["INTEL-SA-00289", "INTEL-SA-9"],
                false,
            ))
            .unwrap_err();
        assert_eq!(e.code(), "TCB_STATUS_REJECTED");
        // No advisory at all: nothing was waived.
        assert!(
            p.check(&report(TcbStatus::ConfigurationNeeded, &[], false))
                .is_err()
        );
        // Out of date is never waived.
        assert!(
            p.check(&report(TcbStatus::OutOfDate, &both, false))
                .is_err()
        );
        // ... unless accepted by name; Revoked never.
        let p = p
            .accept_status(TcbStatus::OutOfDate)
            .accept_status(TcbStatus::Revoked);
        assert!(p.check(&report(TcbStatus::OutOfDate, &both, false)).is_ok());
        assert!(p.check(&report(TcbStatus::Revoked, &[], false)).is_err());
    }

    #[test]
    fn rejected_advisory_wins_and_serde_is_strict() {
        let p = Policy::default().reject_advisories(["INTEL-SA-00334"]);
        let e = p
            .check(&report(
                TcbStatus::SWHardeningNeeded,
                &["INTEL-SA-00334"],
                false,
            ))
            .unwrap_err();
        assert_eq!(e.code(), "ADVISORY_REJECTED");

        let parsed: Policy = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, Policy::default());
        let parsed: Policy = serde_json::from_str(
            r#"{"accepted_tcb_statuses":["UpToDate"],"ignored_advisories":["INTEL-SA-00615"]}"#,
        )
        .unwrap();
        assert_eq!(parsed.accepted_tcb_statuses.len(), 1);
        assert!(serde_json::from_str::<Policy>(r#"{"accepted_tcb_statuses":["Fine"]}"#).is_err());
        assert!(serde_json::from_str::<Policy>(r#"{"allow_debug":true}"#).is_err());
        assert_eq!(Policy::parse_advisory_list(" A, B,,").len(), 2);
    }
}

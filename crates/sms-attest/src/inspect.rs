//! `sms attest verify`: verify one quote file against one collateral file and say why.

use serde::Serialize;
use sms_core::measurement::ExpectedMeasurement;

use crate::collateral::Collateral;
use crate::policy::Policy;
use crate::report::{TeeClaims, TeeKind, VerifiedReport};
use crate::status::TcbStatus;
use crate::tee::dcap::DcapQuote;
use crate::verifier::{check_measurement, check_report};

/// What the CLI prints, as JSON or text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuoteInspection {
    /// Present when the quote verified cryptographically against the collateral.
    pub report: Option<QuoteSummary>,
    pub verdict: Verdict,
}

/// The verified claims, flattened for display. Byte strings are lowercase hex.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuoteSummary {
    pub tee: TeeKind,
    /// Always reported; judged only when a policy is given.
    pub tcb_status: Option<TcbStatus>,
    pub advisory_ids: Vec<String>,
    pub debug: bool,
    /// MRENCLAVE (SGX) or MRTD (TDX).
    pub measurement: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mr_enclave: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mr_signer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isv_prod_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isv_svn: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mr_td: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtmrs: Option<[String; 4]>,
    pub report_data: String,
    pub collateral_expires_at: Option<u64>,
}

impl From<&VerifiedReport> for QuoteSummary {
    fn from(r: &VerifiedReport) -> Self {
        let mut s = QuoteSummary {
            tee: r.tee,
            tcb_status: r.tcb_status,
            advisory_ids: r.advisory_ids.clone(),
            debug: r.debug,
            measurement: r.measurement_hex(),
            mr_enclave: None,
            mr_signer: None,
            isv_prod_id: None,
            isv_svn: None,
            mr_td: None,
            rtmrs: None,
            report_data: hex::encode(r.report_data),
            collateral_expires_at: r.collateral_expires_at,
        };
        match &r.claims {
            TeeClaims::Sgx(c) => {
                s.mr_enclave = Some(hex::encode(c.mr_enclave));
                s.mr_signer = Some(hex::encode(c.mr_signer));
                s.isv_prod_id = Some(c.isv_prod_id);
                s.isv_svn = Some(c.isv_svn);
            }
            TeeClaims::Tdx(c) => {
                s.mr_td = Some(hex::encode(c.mr_td));
                s.rtmrs = Some([c.rtmr0, c.rtmr1, c.rtmr2, c.rtmr3].map(hex::encode));
            }
            TeeClaims::Simulated { .. } => {}
        }
        s
    }
}

/// Accepted or not, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub accepted: bool,
    /// The [`VerifyError::code`](crate::VerifyError::code) of the refusal.
    pub code: Option<&'static str>,
    /// The refusal with its cause chain.
    pub reason: Option<String>,
    /// Whether the TCB status, advisories and debug flag were judged (a policy was given).
    pub policy_applied: bool,
}

/// Verifies `quote` against `collateral` at `at` (unix seconds). The measurement is compared
/// when `expect_measurement` is given ([`check_measurement`]); the policy (TCB status,
/// advisories, debug) applies only when `policy` is given (build it from `--accept-status` with
/// [`Policy::accepting`]).
pub fn inspect_quote(
    quote: &[u8],
    collateral: &Collateral,
    at: u64,
    expect_measurement: Option<&ExpectedMeasurement>,
    policy: Option<&Policy>,
) -> QuoteInspection {
    let refused = |e: crate::VerifyError, report: Option<QuoteSummary>| QuoteInspection {
        report,
        verdict: Verdict {
            accepted: false,
            code: Some(e.code()),
            reason: Some(e.full_message()),
            policy_applied: policy.is_some(),
        },
    };
    let report = match DcapQuote::parse(quote).and_then(|q| q.verify(collateral, at)) {
        Ok(report) => report,
        Err(e) => return refused(e, None),
    };
    let summary = QuoteSummary::from(&report);
    let outcome = match policy {
        Some(policy) => check_report(&report, policy, expect_measurement, None),
        None => expect_measurement.map_or(Ok(()), |e| check_measurement(&report, e)),
    };
    match outcome {
        Ok(()) => QuoteInspection {
            report: Some(summary),
            verdict: Verdict {
                accepted: true,
                code: None,
                reason: None,
                policy_applied: policy.is_some(),
            },
        },
        Err(e) => refused(e, Some(summary)),
    }
}

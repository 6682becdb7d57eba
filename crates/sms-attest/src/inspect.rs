//! `sms attest verify`: verify one quote file against one collateral file and say why.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use sms_core::measurement::{ExpectedMeasurement, Register, TdxMeasurement, TdxRegister};

use crate::collateral::Collateral;
use crate::policy::Policy;
use crate::report::{TeeClaims, TeeKind, VerifiedReport};
use crate::status::{TcbStatus, parse_status_list};
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

/// Raw bytes, or the bytes of hex text (with or without 0x, surrounding whitespace allowed).
fn read_quote_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read quote {}", path.display()))?;
    if let Ok(text) = std::str::from_utf8(&bytes) {
        let text = text.trim();
        let digits = text.strip_prefix("0x").unwrap_or(text);
        if !digits.is_empty()
            && digits.len() % 2 == 0
            && digits.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return sms_core::hex::decode_lenient(text)
                .map_err(|e| anyhow::anyhow!("quote hex: {e}"));
        }
    }
    Ok(bytes)
}

/// `--expect-measurement`: MRENCLAVE by its 32 bytes, MRTD (only) by its 48.
fn expected_measurement_hex(text: &str) -> anyhow::Result<ExpectedMeasurement> {
    let bytes = sms_core::hex::decode_lenient(text)
        .map_err(|e| anyhow::anyhow!("--expect-measurement: {e}"))?;
    if let Ok(mr_enclave) = <[u8; 32]>::try_from(bytes.as_slice()) {
        return Ok(ExpectedMeasurement::Sgx { mr_enclave });
    }
    let Ok(mrtd) = <[u8; 48]>::try_from(bytes.as_slice()) else {
        anyhow::bail!(
            "--expect-measurement: expected 64 hex characters (MRENCLAVE) or 96 (MRTD), got {} bytes",
            bytes.len()
        );
    };
    let only_mrtd = TdxMeasurement::from_fn(|register| match register {
        TdxRegister::Mrtd => Register::Exact(mrtd),
        _ => Register::Any,
    });
    Ok(ExpectedMeasurement::Tdx {
        registers: Some(only_mrtd),
        fingerprint: Vec::new(),
    })
}

/// Collateral JSON (the format of `--collateral-dir` files), named in the error.
fn load_collateral(path: &Path) -> anyhow::Result<Collateral> {
    Collateral::load(path)
        .map_err(|e| anyhow::anyhow!("{:#}", anyhow::Error::new(e)))
        .with_context(|| format!("collateral {}", path.display()))
}

/// The TCB judgement asked for: exactly the statuses of `accept_status` (comma-separated
/// Intel names), or the policy file at `policy` (the server's `--attest-policy` format).
fn load_policy(
    accept_status: Option<&str>,
    policy: Option<&Path>,
) -> anyhow::Result<Option<Policy>> {
    Ok(match (accept_status, policy) {
        (Some(list), _) => Some(Policy::accepting(parse_status_list(list)?)),
        (None, Some(path)) => {
            let text = std::fs::read(path)
                .with_context(|| format!("cannot read policy {}", path.display()))?;
            Some(
                serde_json::from_slice::<Policy>(&text)
                    .with_context(|| format!("policy {}", path.display()))?,
            )
        }
        (None, None) => None,
    })
}

/// The inputs of `sms attest verify`: the quote and collateral files and the judgement asked.
pub struct QuoteFiles<'a> {
    /// Raw bytes, or hex text.
    pub quote: &'a Path,
    pub collateral: &'a Path,
    /// MRENCLAVE or MRTD, hex.
    pub expect_measurement: Option<&'a str>,
    pub accept_status: Option<&'a str>,
    pub policy: Option<&'a Path>,
}

impl QuoteFiles<'_> {
    /// Reads the files and inspects the quote at `at` (Unix seconds).
    pub fn inspect(&self, at: u64) -> anyhow::Result<QuoteInspection> {
        let quote = read_quote_file(self.quote)?;
        let collateral = load_collateral(self.collateral)?;
        let expected = self
            .expect_measurement
            .map(expected_measurement_hex)
            .transpose()?;
        let policy = load_policy(self.accept_status, self.policy)?;
        Ok(inspect_quote(
            &quote,
            &collateral,
            at,
            expected.as_ref(),
            policy.as_ref(),
        ))
    }
}

impl QuoteInspection {
    /// The JSON object `sms attest verify --json` prints: the inspection with `ok` and `at`.
    pub fn report(&self, at: u64) -> serde_json::Result<serde_json::Value> {
        let mut data = serde_json::to_value(self)?;
        if let Some(map) = data.as_object_mut() {
            map.insert("ok".into(), serde_json::json!(self.verdict.accepted));
            map.insert("at".into(), serde_json::json!(at));
        }
        Ok(data)
    }

    /// The text `sms attest verify` prints: one line per claim, then the verdict.
    pub fn human(&self, at: u64) -> String {
        let inspection = self;
        let mut lines = Vec::new();
        match &inspection.report {
            Some(r) => {
                lines.push(format!("TEE:              {}", r.tee));
                let judged = if inspection.verdict.policy_applied {
                    ""
                } else {
                    " (reported, not judged: pass --accept-status to judge it)"
                };
                let status = r
                    .tcb_status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into());
                lines.push(format!("TCB status:       {status}{judged}"));
                let advisories = if r.advisory_ids.is_empty() {
                    "none".to_owned()
                } else {
                    r.advisory_ids.join(", ")
                };
                lines.push(format!("Advisories:       {advisories}"));
                lines.push(format!(
                    "Debug:            {}",
                    if r.debug { "YES" } else { "no" }
                ));
                if let Some(v) = &r.mr_enclave {
                    lines.push(format!("MRENCLAVE:        {v}"));
                }
                if let Some(v) = &r.mr_signer {
                    lines.push(format!("MRSIGNER:         {v}"));
                }
                if let (Some(prod), Some(svn)) = (r.isv_prod_id, r.isv_svn) {
                    lines.push(format!("ISV prod id/SVN:  {prod}/{svn}"));
                }
                if let Some(v) = &r.mr_td {
                    lines.push(format!("MRTD:             {v}"));
                }
                if let Some(rtmrs) = &r.rtmrs {
                    for (i, v) in rtmrs.iter().enumerate() {
                        lines.push(format!("RTMR{i}:            {v}"));
                    }
                }
                lines.push(format!("Report data:      {}", r.report_data));
                if let Some(expires) = r.collateral_expires_at {
                    lines.push(format!("Collateral until: {expires} (unix seconds)"));
                }
            }
            None => lines.push("Quote:            not verified".into()),
        }
        lines.push(format!("Verified at:      {at} (unix seconds)"));
        let verdict = match (&inspection.verdict.code, inspection.verdict.accepted) {
            (_, true) => "VALID".to_owned(),
            (Some(code), false) => format!("REFUSED ({code})"),
            (None, false) => "REFUSED".to_owned(),
        };
        lines.push(format!("Verdict:          {verdict}"));
        lines.join("\n")
    }
}

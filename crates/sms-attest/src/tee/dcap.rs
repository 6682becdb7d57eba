//! DCAP quotes (SGX v3, TDX v4/v5), verified with the pure-Rust `dcap-qvl`.

use dcap_qvl::quote::{Quote, Report};
use dcap_qvl::verify::QuoteVerifier;
use dcap_qvl::{QuotePolicy, config::PckCa};

use crate::collateral::Collateral;
use crate::error::{CollateralError, Detail, VerifyError};
use crate::report::{SgxClaims, TdxClaims, TeeClaims, TeeKind, VerifiedReport};

const TEE_TYPE_SGX: u32 = 0x0000_0000;
const TEE_TYPE_TDX: u32 = 0x0000_0081;
/// Certification data type: PCK certificate chain embedded in the quote.
const PCK_CERT_CHAIN: u16 = 5;

/// A decoded DCAP quote, ready to verify against preloaded collateral. Parsing once and calling
/// [`verify`](Self::verify) is the hot path a benchmark should time.
#[derive(Debug, Clone)]
pub struct DcapQuote {
    raw: Vec<u8>,
    parsed: Quote,
    tee: TeeKind,
}

impl DcapQuote {
    /// Decodes the quote; refuses unknown TEE types and quote versions other than SGX v3 and
    /// TDX v4/v5.
    pub fn parse(raw: &[u8]) -> Result<Self, VerifyError> {
        let malformed = |msg: String| VerifyError::EvidenceMalformed(Detail(msg));
        let parsed =
            Quote::parse(raw).map_err(|e| malformed(format!("cannot decode quote: {e:#}")))?;
        let version = parsed.header.version;
        let tee = match (parsed.header.tee_type, version) {
            (TEE_TYPE_SGX, 3) => TeeKind::Sgx,
            (TEE_TYPE_TDX, 4 | 5) => TeeKind::Tdx,
            (tee_type, version) => {
                return Err(malformed(format!(
                    "unsupported quote: TEE type {tee_type:#x}, version {version}"
                )));
            }
        };
        Ok(DcapQuote {
            raw: raw.to_vec(),
            parsed,
            tee,
        })
    }

    pub fn tee(&self) -> TeeKind {
        self.tee
    }

    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The platform's FMSPC in uppercase hex, from the PCK certificate in the quote.
    pub fn fmspc(&self) -> Result<String, CollateralError> {
        self.ensure_pck_chain()?;
        dcap_qvl::intel::quote_fmspc(&self.parsed)
            .map(hex::encode_upper)
            .map_err(|e| CollateralError::Pck(Detail::new(&e)))
    }

    /// The PCK CA that issued the quote's PCK certificate: `"processor"` or `"platform"`.
    pub fn pck_ca(&self) -> Result<&'static str, CollateralError> {
        self.ensure_pck_chain()?;
        match dcap_qvl::intel::quote_ca(&self.parsed) {
            Ok(PckCa::Processor) => Ok("processor"),
            Ok(PckCa::Platform) => Ok("platform"),
            Err(e) => Err(CollateralError::Pck(Detail::new(&e))),
        }
    }

    fn ensure_pck_chain(&self) -> Result<(), CollateralError> {
        match self.parsed.inner_cert_type() {
            PCK_CERT_CHAIN => Ok(()),
            other => Err(CollateralError::UnsupportedCertType(other)),
        }
    }

    /// Verifies the quote against the collateral at time `now` (unix seconds): Intel root CA →
    /// PCK chain (with CRLs) → QE report → attestation key → report signature; TCB info and QE
    /// identity signatures and TCB level matching. A `Revoked` platform fails here.
    ///
    /// No policy is applied (debug, TCB status and advisories are only reported).
    pub fn verify(&self, collateral: &Collateral, now: u64) -> Result<VerifiedReport, VerifyError> {
        if collateral.tee() != self.tee {
            return Err(VerifyError::CollateralInvalid(CollateralError::Malformed(
                format!(
                    "collateral is for {}, the quote is {}",
                    collateral.tee(),
                    self.tee
                ),
            )));
        }
        let fmspc = self.fmspc().map_err(VerifyError::CollateralInvalid)?;
        if fmspc != collateral.fmspc() {
            return Err(VerifyError::CollateralInvalid(CollateralError::NotFound {
                tee: self.tee,
                fmspc,
            }));
        }
        if now < collateral.valid_from() {
            return Err(VerifyError::CollateralNotYetValid {
                valid_from: collateral.valid_from(),
                now,
            });
        }
        if now > collateral.expires_at() {
            return Err(VerifyError::CollateralExpired {
                expired_at: collateral.expires_at(),
                now,
            });
        }

        // Debug enclaves pass this step on purpose so that the policy refuses them with their
        // own reason; `Policy::check` always looks at `debug`.
        let claims = QuoteVerifier::new_prod()
            .allow_debug(true)
            .verify_with_policy(
                &self.raw,
                collateral.as_dcap(),
                now,
                &QuotePolicy::claims_only(now),
            )
            .map_err(|e| VerifyError::QuoteInvalid(Detail::new(&e)))?;
        if now > claims.earliest_expiration_date {
            return Err(VerifyError::CollateralExpired {
                expired_at: claims.earliest_expiration_date,
                now,
            });
        }

        let (claims_body, debug, report_data) = match &claims.report {
            Report::SgxEnclave(r) => {
                let debug = r.attributes.first().is_some_and(|b| b & 0x02 != 0);
                let body = TeeClaims::Sgx(SgxClaims {
                    mr_enclave: r.mr_enclave,
                    mr_signer: r.mr_signer,
                    isv_prod_id: r.isv_prod_id,
                    isv_svn: r.isv_svn,
                    attributes: r.attributes,
                });
                (body, debug, r.report_data)
            }
            report => {
                let Some(td) = report.as_td10() else {
                    return Err(VerifyError::QuoteInvalid(Detail(
                        "unknown report body".into(),
                    )));
                };
                // Byte 0 of TD ATTRIBUTES is "TD under debug": DEBUG (bit 0) and profiling bits.
                let debug = td.td_attributes.first().is_some_and(|b| *b != 0);
                let body = TeeClaims::Tdx(TdxClaims {
                    mr_td: td.mr_td,
                    rtmr0: td.rt_mr0,
                    rtmr1: td.rt_mr1,
                    rtmr2: td.rt_mr2,
                    rtmr3: td.rt_mr3,
                    mr_config_id: td.mr_config_id,
                    mr_owner: td.mr_owner,
                    mr_seam: td.mr_seam,
                    td_attributes: td.td_attributes,
                    quote_version: claims.header.version,
                });
                (body, debug, td.report_data)
            }
        };
        let tee = match claims_body {
            TeeClaims::Sgx(_) => TeeKind::Sgx,
            _ => TeeKind::Tdx,
        };
        if tee != self.tee {
            return Err(VerifyError::TeeMismatch {
                declared: self.tee,
                actual: tee,
            });
        }
        Ok(VerifiedReport {
            tee,
            tcb_status: Some(claims.tcb.status.into()),
            advisory_ids: claims.tcb.advisory_ids.clone(),
            debug,
            report_data,
            collateral_expires_at: Some(claims.earliest_expiration_date),
            claims: claims_body,
        })
    }
}

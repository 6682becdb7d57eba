//! DCAP collateral: the Intel-signed TCB info, QE identity, CRLs and issuer chains a quote is
//! checked against, and where it comes from.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use dcap_qvl::QuoteCollateralV3;
use der::Decode as _;
use serde::Deserialize;

use crate::error::CollateralError;
use crate::report::TeeKind;

/// Collateral for one (TEE kind, FMSPC), parsed once and ready for repeated verifications.
///
/// The JSON form is the one of the fixture files: an object with `tcb_info` and `qe_identity`
/// (the signed JSON texts), `tcb_info_signature` / `qe_identity_signature` / `root_ca_crl` /
/// `pck_crl` in hex, and the three PEM issuer chains (`tcb_info_issuer_chain`,
/// `qe_identity_issuer_chain`, `pck_crl_issuer_chain`).
#[derive(Debug, Clone)]
pub struct Collateral {
    inner: QuoteCollateralV3,
    tee: TeeKind,
    fmspc: String,
    valid_from: u64,
    expires_at: u64,
}

#[derive(Deserialize)]
struct DatedJson {
    id: String,
    #[serde(rename = "issueDate")]
    issue_date: String,
    #[serde(rename = "nextUpdate")]
    next_update: String,
    #[serde(default)]
    fmspc: Option<String>,
}

fn rfc3339(value: &str, what: &str) -> Result<u64, CollateralError> {
    let t = chrono::DateTime::parse_from_rfc3339(value)
        .map_err(|e| CollateralError::Malformed(format!("{what} '{value}': {e}")))?;
    u64::try_from(t.timestamp())
        .map_err(|_| CollateralError::Malformed(format!("{what} '{value}' is before 1970")))
}

/// `(thisUpdate, nextUpdate)` of a DER CRL, in unix seconds.
fn crl_window(der_bytes: &[u8], what: &str) -> Result<(u64, Option<u64>), CollateralError> {
    let crl =
        x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der_bytes)
            .map_err(|e| CollateralError::Malformed(format!("{what} is not a DER CRL: {e}")))?;
    let this_update = crl.tbs_cert_list.this_update.to_unix_duration().as_secs();
    let next_update = crl
        .tbs_cert_list
        .next_update
        .map(|t| t.to_unix_duration().as_secs());
    Ok((this_update, next_update))
}

impl Collateral {
    /// Wraps collateral in dcap-qvl's form, reading its identity and validity window.
    pub fn from_dcap(inner: QuoteCollateralV3) -> Result<Self, CollateralError> {
        let tcb: DatedJson =
            serde_json::from_str(&inner.tcb_info).map_err(CollateralError::Json)?;
        let qe: DatedJson =
            serde_json::from_str(&inner.qe_identity).map_err(CollateralError::Json)?;
        let tee = match (tcb.id.as_str(), qe.id.as_str()) {
            ("SGX", "QE") => TeeKind::Sgx,
            ("TDX", "TD_QE") => TeeKind::Tdx,
            (t, q) => {
                return Err(CollateralError::Malformed(format!(
                    "TCB info id '{t}' and QE identity id '{q}' do not describe one TEE"
                )));
            }
        };
        let fmspc = tcb
            .fmspc
            .ok_or_else(|| CollateralError::Malformed("TCB info has no fmspc".into()))?
            .to_ascii_uppercase();
        let mut valid_from = rfc3339(&tcb.issue_date, "TCB info issueDate")?
            .max(rfc3339(&qe.issue_date, "QE identity issueDate")?);
        let mut expires_at = rfc3339(&tcb.next_update, "TCB info nextUpdate")?
            .min(rfc3339(&qe.next_update, "QE identity nextUpdate")?);
        for (crl, what) in [
            (&inner.root_ca_crl, "root CA CRL"),
            (&inner.pck_crl, "PCK CRL"),
        ] {
            let (this_update, next_update) = crl_window(crl, what)?;
            valid_from = valid_from.max(this_update);
            if let Some(next) = next_update {
                expires_at = expires_at.min(next);
            }
        }
        Ok(Collateral {
            inner,
            tee,
            fmspc,
            valid_from,
            expires_at,
        })
    }

    /// Parses the JSON form (see the type's documentation).
    pub fn from_json(bytes: &[u8]) -> Result<Self, CollateralError> {
        let inner: QuoteCollateralV3 =
            serde_json::from_slice(bytes).map_err(CollateralError::Json)?;
        Self::from_dcap(inner)
    }

    /// Serialises to the JSON form.
    pub fn to_json(&self) -> Result<String, CollateralError> {
        serde_json::to_string(&self.inner).map_err(CollateralError::Json)
    }

    /// Reads a JSON collateral file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, CollateralError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| CollateralError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&bytes)
    }

    pub fn tee(&self) -> TeeKind {
        self.tee
    }

    /// FMSPC (platform family) in uppercase hex, e.g. `00A067110000`.
    pub fn fmspc(&self) -> &str {
        &self.fmspc
    }

    /// Unix seconds from which every dated part is issued (latest `issueDate`/`thisUpdate`).
    pub fn valid_from(&self) -> u64 {
        self.valid_from
    }

    /// Unix seconds after which some part must be refreshed: the earliest `nextUpdate` of the
    /// TCB info, QE identity and both CRLs. (Certificate `notAfter` dates, years away, are
    /// checked at verification time.)
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Seconds from `now` until [`expires_at`](Self::expires_at); negative once expired.
    pub fn seconds_until_expiry(&self, now: u64) -> i64 {
        i64::try_from(self.expires_at).unwrap_or(i64::MAX) - i64::try_from(now).unwrap_or(i64::MAX)
    }

    /// The same in days (fractional), for a metric.
    pub fn days_until_expiry(&self, now: u64) -> f64 {
        self.seconds_until_expiry(now) as f64 / 86_400.0
    }

    pub fn as_dcap(&self) -> &QuoteCollateralV3 {
        &self.inner
    }
}

/// A set of collateral, looked up by (TEE kind, FMSPC).
#[derive(Debug, Clone, Default)]
pub struct CollateralBundle {
    entries: BTreeMap<(TeeKind, String), Arc<Collateral>>,
}

impl CollateralBundle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the collateral of its (TEE, FMSPC).
    pub fn insert(&mut self, collateral: Collateral) {
        let key = (collateral.tee(), collateral.fmspc().to_owned());
        self.entries.insert(key, Arc::new(collateral));
    }

    /// One JSON file, or a directory whose `*.json` files are each one collateral (files that
    /// are not collateral make the load fail, so a typo does not go unnoticed).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, CollateralError> {
        let path = path.as_ref();
        let mut bundle = Self::new();
        if path.is_dir() {
            let io = |source| CollateralError::Io {
                path: path.display().to_string(),
                source,
            };
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path).map_err(io)? {
                let file = entry.map_err(io)?.path();
                if file.extension().is_some_and(|e| e == "json") {
                    files.push(file);
                }
            }
            files.sort();
            for file in files {
                bundle.insert(Collateral::load(&file)?);
            }
        } else {
            bundle.insert(Collateral::load(path)?);
        }
        if bundle.entries.is_empty() {
            return Err(CollateralError::Config(format!(
                "no collateral (*.json) in {}",
                path.display()
            )));
        }
        Ok(bundle)
    }

    pub fn get(&self, tee: TeeKind, fmspc: &str) -> Option<Arc<Collateral>> {
        self.entries
            .get(&(tee, fmspc.to_ascii_uppercase()))
            .cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Collateral>> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

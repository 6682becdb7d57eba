//! Collateral from a PCCS (Intel's Provisioning Certificate Caching Service, or Intel PCS
//! itself), cached per (TEE kind, FMSPC, PCK CA) until it expires.
//!
//! dcap-qvl's own collateral client needs its `report` feature (another reqwest major line,
//! hickory DNS, a full tokio); this client uses the workspace reqwest with rustls and ring, and
//! keeps the signed JSON texts byte for byte as served (no re-serialisation).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::collateral::Collateral;
use crate::error::CollateralError;
use crate::report::TeeKind;

/// Where Intel publishes the root CA CRL, used when the PCCS has no `rootcacrl` endpoint
/// (Intel PCS).
pub const INTEL_ROOT_CA_CRL_URL: &str =
    "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";

/// PCCS client settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PccsConfig {
    /// Base URL, e.g. `https://pccs.example:8081` (a trailing `/sgx/certification/v4` is
    /// tolerated).
    pub url: String,
    /// Whole-request timeout, every request.
    pub timeout_secs: u64,
    pub connect_timeout_secs: u64,
    /// Refetch cached collateral this long before it expires (a failed refetch keeps serving
    /// the cached collateral until it actually expires).
    pub refresh_before_secs: u64,
    /// Root CA CRL location when `{url}/sgx/certification/v4/rootcacrl` is not served.
    pub root_ca_crl_url: String,
}

impl Default for PccsConfig {
    fn default() -> Self {
        PccsConfig {
            url: String::new(),
            timeout_secs: 10,
            connect_timeout_secs: 5,
            refresh_before_secs: 3600,
            root_ca_crl_url: INTEL_ROOT_CA_CRL_URL.to_owned(),
        }
    }
}

impl PccsConfig {
    pub fn new(url: impl Into<String>) -> Self {
        PccsConfig {
            url: url.into(),
            ..PccsConfig::default()
        }
    }
}

type CacheKey = (TeeKind, String, &'static str);

/// Fetches collateral from a PCCS and caches it.
pub struct PccsClient {
    config: PccsConfig,
    base: String,
    http: reqwest::Client,
    cache: Mutex<HashMap<CacheKey, Arc<Collateral>>>,
}

impl std::fmt::Debug for PccsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PccsClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct SignedTcbInfo<'a> {
    #[serde(rename = "tcbInfo", borrow)]
    tcb_info: &'a RawValue,
    signature: String,
}

#[derive(Deserialize)]
struct SignedQeIdentity<'a> {
    #[serde(rename = "enclaveIdentity", borrow)]
    enclave_identity: &'a RawValue,
    signature: String,
}

impl PccsClient {
    /// Builds the HTTP client (rustls with the ring provider, installed process-wide if no
    /// provider is yet).
    pub fn new(config: PccsConfig) -> Result<Self, CollateralError> {
        if config.url.trim().is_empty() {
            return Err(CollateralError::Config("PCCS URL is empty".into()));
        }
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another installer is fine: some provider is then installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            .build()
            .map_err(|e| CollateralError::Config(format!("cannot build HTTP client: {e}")))?;
        let base = config
            .url
            .trim()
            .trim_end_matches('/')
            .trim_end_matches("/sgx/certification/v4")
            .trim_end_matches("/tdx/certification/v4")
            .to_owned();
        Ok(PccsClient {
            config,
            base,
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &PccsConfig {
        &self.config
    }

    /// Cached collateral if still fresh at `now` (more than `refresh_before_secs` left),
    /// otherwise fetched. When fetching fails, still-valid cached collateral is served.
    pub async fn collateral(
        &self,
        tee: TeeKind,
        fmspc: &str,
        pck_ca: &'static str,
        now: u64,
    ) -> Result<Arc<Collateral>, CollateralError> {
        let key = (tee, fmspc.to_ascii_uppercase(), pck_ca);
        let cached = self.lock().get(&key).cloned();
        if let Some(c) = &cached
            && c.expires_at() > now.saturating_add(self.config.refresh_before_secs)
        {
            return Ok(Arc::clone(c));
        }
        match self.fetch(tee, &key.1, pck_ca).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                self.lock().insert(key, Arc::clone(&fresh));
                Ok(fresh)
            }
            Err(e) => match cached {
                Some(c) if c.expires_at() >= now => {
                    tracing::warn!(error = %e, fmspc, %tee, "collateral refresh failed, serving the cached one");
                    Ok(c)
                }
                _ => Err(e),
            },
        }
    }

    /// Seconds until the first cached collateral expires; `None` with an empty cache.
    pub fn seconds_until_expiry(&self, now: u64) -> Option<i64> {
        self.lock()
            .values()
            .map(|c| c.seconds_until_expiry(now))
            .min()
    }

    /// Number of cached (TEE, FMSPC, CA) entries.
    pub fn cached_entries(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Arc<Collateral>>> {
        // The map stays consistent even if a holder panicked: every write is one insert.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fetches the collateral of one (TEE kind, FMSPC, PCK CA) without the cache.
    pub async fn fetch(
        &self,
        tee: TeeKind,
        fmspc: &str,
        pck_ca: &'static str,
    ) -> Result<Collateral, CollateralError> {
        let kind = match tee {
            TeeKind::Sgx => "sgx",
            TeeKind::Tdx => "tdx",
            TeeKind::Simulated => {
                return Err(CollateralError::Config(
                    "simulated evidence has no collateral".into(),
                ));
            }
        };
        let v4 = |tee_path: &str, rest: &str| {
            format!("{}/{tee_path}/certification/v4/{rest}", self.base)
        };

        let url = v4("sgx", &format!("pckcrl?ca={pck_ca}&encoding=der"));
        let (headers, body) = self.get(&url).await?;
        let pck_crl_issuer_chain = header(&headers, &url, "SGX-PCK-CRL-Issuer-Chain")?;
        let pck_crl = crl_bytes(&body, &url)?;

        let url = v4(kind, &format!("tcb?fmspc={fmspc}"));
        let (headers, body) = self.get(&url).await?;
        let tcb_info_issuer_chain = header(&headers, &url, "TCB-Info-Issuer-Chain")
            .or_else(|_| header(&headers, &url, "SGX-TCB-Info-Issuer-Chain"))?;
        let signed: SignedTcbInfo<'_> =
            serde_json::from_slice(&body).map_err(CollateralError::Json)?;
        let tcb_info = signed.tcb_info.get().to_owned();
        let tcb_info_signature = signature_bytes(&signed.signature, &url)?;

        let url = v4(kind, "qe/identity");
        let (headers, body) = self.get(&url).await?;
        let qe_identity_issuer_chain = header(&headers, &url, "SGX-Enclave-Identity-Issuer-Chain")?;
        let signed: SignedQeIdentity<'_> =
            serde_json::from_slice(&body).map_err(CollateralError::Json)?;
        let qe_identity = signed.enclave_identity.get().to_owned();
        let qe_identity_signature = signature_bytes(&signed.signature, &url)?;

        let url = v4("sgx", "rootcacrl");
        let root_ca_crl = match self
            .get(&url)
            .await
            .and_then(|(_, body)| crl_bytes(&body, &url))
        {
            Ok(crl) => crl,
            Err(e) => {
                tracing::debug!(error = %e, "no root CA CRL from the PCCS, using the Intel location");
                let url = self.config.root_ca_crl_url.clone();
                let (_, body) = self.get(&url).await?;
                crl_bytes(&body, &url)?
            }
        };

        let collateral = Collateral::from_dcap(dcap_qvl::QuoteCollateralV3 {
            pck_crl_issuer_chain,
            root_ca_crl,
            pck_crl,
            tcb_info_issuer_chain,
            tcb_info,
            tcb_info_signature,
            qe_identity_issuer_chain,
            qe_identity,
            qe_identity_signature,
            pck_certificate_chain: None,
        })?;
        if collateral.tee() != tee || !collateral.fmspc().eq_ignore_ascii_case(fmspc) {
            return Err(CollateralError::Malformed(format!(
                "PCCS answered collateral for {} FMSPC {}, asked {tee} FMSPC {fmspc}",
                collateral.tee(),
                collateral.fmspc()
            )));
        }
        Ok(collateral)
    }

    async fn get(
        &self,
        url: &str,
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>), CollateralError> {
        let http_err = |e: reqwest::Error| CollateralError::Http {
            url: url.to_owned(),
            source: Box::new(e),
        };
        let response = self.http.get(url).send().await.map_err(http_err)?;
        let status = response.status();
        if !status.is_success() {
            return Err(CollateralError::HttpStatus {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(http_err)?;
        Ok((headers, body.to_vec()))
    }
}

/// A header value, percent-decoded (issuer chains are URL-encoded PEM).
fn header(
    headers: &reqwest::header::HeaderMap,
    url: &str,
    name: &'static str,
) -> Result<String, CollateralError> {
    let missing = || CollateralError::MissingHeader {
        url: url.to_owned(),
        header: name,
    };
    let raw = headers
        .get(name)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    percent_decode(raw).ok_or_else(|| {
        CollateralError::Malformed(format!(
            "header {name} from {url} is not valid percent-encoding"
        ))
    })
}

fn percent_decode(input: &str) -> Option<String> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

fn signature_bytes(hex_sig: &str, url: &str) -> Result<Vec<u8>, CollateralError> {
    hex::decode(hex_sig.trim())
        .map_err(|e| CollateralError::Malformed(format!("signature from {url} is not hex: {e}")))
}

/// A CRL body as served: DER, hex-encoded DER (PCCS `rootcacrl`) or PEM.
fn crl_bytes(body: &[u8], url: &str) -> Result<Vec<u8>, CollateralError> {
    if body.first() == Some(&0x30) {
        return Ok(body.to_vec());
    }
    let malformed =
        || CollateralError::Malformed(format!("CRL from {url} is neither DER, hex nor PEM"));
    let text = std::str::from_utf8(body).map_err(|_| malformed())?.trim();
    if text.starts_with("-----BEGIN") {
        use base64::Engine as _;
        let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        return base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| malformed());
    }
    hex::decode(text).map_err(|_| malformed())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_headers_and_crl_encodings() {
        assert_eq!(
            percent_decode("-----BEGIN%20CERTIFICATE-----%0AAB%2Bc").unwrap(),
            "-----BEGIN CERTIFICATE-----\nAB+c"
        );
        assert!(percent_decode("%G0").is_none());
        assert!(percent_decode("%4").is_none());
        assert_eq!(crl_bytes(&[0x30, 0x01], "u").unwrap(), vec![0x30, 0x01]);
        assert_eq!(crl_bytes(b"3001\n", "u").unwrap(), vec![0x30, 0x01]);
        assert_eq!(
            crl_bytes(
                b"-----BEGIN X509 CRL-----\nMAE=\n-----END X509 CRL-----\n",
                "u"
            )
            .unwrap(),
            vec![0x30, 0x01]
        );
        assert!(crl_bytes(b"nope", "u").is_err());
    }

    #[test]
    fn base_url_is_normalised_and_empty_refused() {
        let c = PccsClient::new(PccsConfig::new(
            "https://pccs.local:8081/sgx/certification/v4/",
        ))
        .unwrap();
        assert_eq!(c.base, "https://pccs.local:8081");
        assert!(PccsClient::new(PccsConfig::new(" ")).is_err());
        let cfg: PccsConfig =
            serde_json::from_str(r#"{"url":"http://x","timeout_secs":3}"#).unwrap();
        assert_eq!(cfg.timeout_secs, 3);
        assert_eq!(cfg.refresh_before_secs, 3600);
    }
}

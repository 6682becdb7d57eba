//! The IPFS gateway bulk sessions read their documents from (`--ipfs-gateway`): bounded in
//! time and size, every document checked against its CID (the gateway is not trusted).

use std::time::Duration;

use sms_core::bulk::{self, DocumentError};
use sms_core::cid::{Cid, CidError};
use sms_core::tee_error::{SessionError, TeeSessionGenerationError as E};

use super::args::TeeArgs;

/// The configured gateway: one bounded `GET <base>/ipfs/<cid>` per document.
#[derive(Debug)]
pub struct IpfsGateway {
    base: String,
    http: reqwest::Client,
    timeout: Duration,
}

impl IpfsGateway {
    /// `--ipfs-gateway` and `--ipfs-timeout-ms`; `None` without a gateway.
    pub fn from_args(args: &TeeArgs) -> Result<Option<Self>, String> {
        match args.ipfs_gateway.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(url) => Self::new(url, Duration::from_millis(args.ipfs_timeout_ms)).map(Some),
        }
    }

    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let base = url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| format!("--ipfs-gateway '{base}' is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "--ipfs-gateway '{base}' must be an http(s) URL with a host"
            ));
        }
        if timeout.is_zero() {
            return Err("--ipfs-timeout-ms must be greater than 0".into());
        }
        sms_client::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            // A CID names content, not a place: a redirect is the gateway's business, not ours.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("--ipfs-gateway: {e}"))?;
        Ok(Self {
            base,
            http,
            timeout,
        })
    }

    /// The verified bytes of `cid`: at most [`bulk::MAX_DOCUMENT_BYTES`], read within the
    /// timeout, hashing to the CID.
    pub async fn fetch(&self, cid: &Cid) -> Result<Vec<u8>, SessionError> {
        let url = format!("{}/ipfs/{cid}", self.base);
        let bytes = tokio::time::timeout(self.timeout, self.download(&url, cid))
            .await
            .map_err(|_| {
                gateway_failed(format!(
                    "{url}: no complete answer within {} ms",
                    self.timeout.as_millis()
                ))
            })??;
        bulk::verify_document(cid, &bytes).map_err(document_error)?;
        Ok(bytes)
    }

    async fn download(&self, url: &str, cid: &Cid) -> Result<Vec<u8>, SessionError> {
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| gateway_failed(format!("{url}: {}", e.without_url())))?;
        if !response.status().is_success() {
            return Err(gateway_failed(format!(
                "{url}: the gateway answered {}",
                response.status()
            )));
        }
        let too_large = || {
            document_error(DocumentError::TooLarge {
                cid: cid.to_string(),
            })
        };
        if response
            .content_length()
            .is_some_and(|n| n > bulk::MAX_DOCUMENT_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| gateway_failed(format!("{url}: {}", e.without_url())))?
        {
            if body.len() + chunk.len() > bulk::MAX_DOCUMENT_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn gateway_failed(detail: String) -> SessionError {
    SessionError::new(E::PreComputeBulkGatewayFailed, detail)
}

pub(super) fn document_error(error: DocumentError) -> SessionError {
    let code = match &error {
        DocumentError::Cid(CidError::Mismatch { .. }) => E::PreComputeBulkCidMismatch,
        _ => E::PreComputeBulkDocumentInvalid,
    };
    SessionError::new(code, error.to_string())
}

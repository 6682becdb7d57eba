//! Session step 4d for bulk deals (docs/bulk-processing.md): read the bulk root and the task's
//! slice from the IPFS gateway, each checked against its CID (the gateway is not trusted), then
//! check every order against the deal on the ledger. An order that fails a check keeps its
//! index with empty values, as upstream; a document that cannot be read or verified refuses
//! the session.

use std::time::Duration;

use sms_core::bulk::{
    self, BulkDataset, BulkSlice, DocumentError, SignedDatasetOrder, ValidDataset,
};
use sms_core::cid::{Cid, CidError};
use sms_core::deal_params::DealParams;
use sms_core::ledger::Deal;
use sms_core::tee_error::{SessionError, TeeSessionGenerationError as E};

use super::args::TeeArgs;
use super::task::AuthorizedTask;
use crate::state::AppState;

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

fn document_error(error: DocumentError) -> SessionError {
    let code = match &error {
        DocumentError::Cid(CidError::Mismatch { .. }) => E::PreComputeBulkCidMismatch,
        _ => E::PreComputeBulkDocumentInvalid,
    };
    SessionError::new(code, error.to_string())
}

/// Step 4d: the checked slice of a bulk deal, `None` for any other deal.
pub async fn resolve_slice(
    state: &AppState,
    task: &AuthorizedTask,
    params: &DealParams,
) -> Result<Option<BulkSlice>, SessionError> {
    if !params.has_bulk() {
        return Ok(None);
    }
    let dev_gateway;
    let gateway = match (&state.tee.ipfs, &state.dev_ledger) {
        (Some(configured), _) => configured,
        // `--dev` without a gateway: the server's own dev IPFS (`GET /dev/ipfs/{cid}`), read
        // over loopback HTTP like any gateway.
        (None, Some(_)) => {
            dev_gateway = IpfsGateway::new(
                &format!("{}/dev", state.tee.public_url()),
                Duration::from_millis(super::args::DEFAULT_IPFS_TIMEOUT_MS),
            )
            .map_err(|e| SessionError::new(E::PreComputeBulkProcessingNotSupported, e))?;
            &dev_gateway
        }
        (None, None) => {
            return Err(SessionError::new(
                E::PreComputeBulkProcessingNotSupported,
                "the deal has a bulk_cid and this SMS has no --ipfs-gateway",
            ));
        }
    };
    let root_cid = bulk::parse_bulk_cid(&params.bulk_cid).map_err(document_error)?;
    let root = gateway.fetch(&root_cid).await?;
    let slice_cid = bulk::slice_cid(&root_cid, &root, task.task.index).map_err(document_error)?;
    let bytes = gateway.fetch(&slice_cid).await?;
    let orders = bulk::parse_slice(&slice_cid, &bytes).map_err(document_error)?;
    let mut datasets = Vec::with_capacity(orders.len());
    for (i, order) in orders.iter().enumerate() {
        datasets.push(check_order(state, task, &task.deal, i + 1, order).await?);
    }
    let slice = BulkSlice {
        cid: slice_cid.to_string(),
        datasets,
    };
    tracing::info!(task = %task.task_id, bulk = %slice, "bulk slice checked");
    Ok(Some(slice))
}

/// One order: its dataset entry, PoCo's compatibility with the deal, the bulk volume. A broken
/// rule gives an invalid entry (logged); an unreadable chain refuses the session (503).
async fn check_order(
    state: &AppState,
    task: &AuthorizedTask,
    deal: &Deal,
    index: usize,
    order: &SignedDatasetOrder,
) -> Result<BulkDataset, SessionError> {
    let address = order.order.dataset;
    let unavailable = |e: sms_chain::LedgerError| {
        SessionError::unavailable(
            E::GetTaskDescriptionFailed,
            format!("bulk order {index} (dataset {address}): {e}"),
        )
    };
    let verdict = match state.ledger.dataset(address).await.map_err(unavailable)? {
        None => Err(bulk::OrderRejection::UnknownDataset(address)),
        Some(entry) => state
            .ledger
            .check_dataset_order(order, deal)
            .await
            .map_err(unavailable)?
            .and_then(|()| bulk::ensure_bulk_volume(order))
            .map(|()| entry),
    };
    let valid = match verdict {
        Ok(entry) => Some(ValidDataset {
            multiaddr: entry.multiaddr,
            checksum: entry.checksum,
        }),
        Err(rejection) => {
            tracing::warn!(task = %task.task_id, index, dataset = %address, reason = %rejection, "bulk order not usable: its index gets empty values");
            None
        }
    };
    Ok(BulkDataset { address, valid })
}

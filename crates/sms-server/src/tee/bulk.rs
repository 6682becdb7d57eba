//! Session step 4d for bulk deals (docs/bulk-processing.md): read the bulk root and the task's
//! slice from the IPFS gateway, each checked against its CID (the gateway is not trusted), then
//! check every order against the deal on the ledger. An order that fails a check keeps its
//! index with empty values, as upstream; a document that cannot be read or verified refuses
//! the session.

use std::time::Duration;

use sms_core::bulk::{self, BulkDataset, BulkSlice, SignedDatasetOrder, ValidDataset};
use sms_core::deal_params::DealParams;
use sms_core::ledger::Deal;
use sms_core::tee_error::{SessionError, TeeSessionGenerationError as E};

use super::ipfs::{IpfsGateway, document_error};
use super::task::AuthorizedTask;
use crate::state::AppState;

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

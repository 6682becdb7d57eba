//! Who owns what, and which tasks exist: the `Ledger` trait and its implementations.
//!
//! - [`dev::DevLedger`]: an embedded ledger persisted in the data directory, for `--dev` only.
//! - `poco`: the iExec PoCo contracts read over JSON-RPC (production).

pub mod dev;
pub mod poco;
pub mod shared;

use async_trait::async_trait;
use sms_core::bulk::{OrderRejection, SignedDatasetOrder};
use sms_core::ledger::{AppEntry, DatasetEntry, Deal, Task, WorkerpoolEntry};
use sms_core::{Address, B256};
use thiserror::Error;

#[derive(Clone, Debug, Error)]
pub enum LedgerError {
    /// The chain could not be read in time (node down, timeout, garbage answer): HTTP 503.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// The request names something the ledger cannot hold (e.g. an invalid dev entry).
    #[error("{0}")]
    Rejected(String),
}

/// Read access to the iExec registries, deals and tasks.
///
/// `Ok(None)` means "does not exist"; `Err` means "could not find out".
#[async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Current owner of an app, dataset or workerpool entry (ERC-721 `owner()`).
    async fn owner_of(&self, entry: Address) -> Result<Option<Address>, LedgerError>;
    async fn app(&self, address: Address) -> Result<Option<AppEntry>, LedgerError>;
    async fn dataset(&self, address: Address) -> Result<Option<DatasetEntry>, LedgerError>;
    async fn workerpool(&self, address: Address) -> Result<Option<WorkerpoolEntry>, LedgerError>;
    async fn deal(&self, deal_id: B256) -> Result<Option<Deal>, LedgerError>;
    async fn task(&self, task_id: B256) -> Result<Option<Task>, LedgerError>;
    /// Whether `deal` may consume a bulk dataset order, as PoCo's
    /// `assertDatasetDealCompatibility` decides (docs/bulk-processing.md): `Ok(Err(_))` names
    /// the rule the order breaks. A ledger that cannot decide says so as unavailable.
    async fn check_dataset_order(
        &self,
        order: &SignedDatasetOrder,
        deal: &Deal,
    ) -> Result<Result<(), OrderRejection>, LedgerError> {
        let _ = (order, deal);
        Err(LedgerError::Unavailable(format!(
            "{} cannot check dataset orders",
            self.describe()
        )))
    }
    /// A short description for logs and `/version`-like endpoints.
    fn describe(&self) -> String;
}

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sms_chain::Ledger;
use sms_chain::dev::DevLedger;
use sms_store::Store;

/// Shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub ledger: Arc<dyn Ledger>,
    /// Present only in `--dev`: the writable embedded ledger behind `/dev/*`.
    pub dev_ledger: Option<Arc<DevLedger>>,
    pub max_secret_bytes: usize,
    pub metrics: PrometheusHandle,
    /// TEE framework, pipelines, session settings (`/tee/*`).
    pub tee: Arc<crate::tee::TeeState>,
    /// The built-in attested provisioner (`/tee/provisioning`).
    pub provisioner: Arc<crate::provision::Provisioner>,
}

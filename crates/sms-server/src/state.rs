use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sms_chain::Ledger;
use sms_chain::dev::DevLedger;
use sms_store::Store;

/// Shared by every request handler. Cloned (at least twice) per request by axum, so it is one
/// `Arc`: one reference count instead of one per field (measured with `sms bench`).
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl AppState {
    pub fn new(inner: AppStateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct AppStateInner {
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
    /// Origins allowed by CORS on the secret routes.
    pub cors: crate::routes::cors::CorsOrigins,
    /// The signing domain of the secrets API v2 (chain id and instance id).
    pub domain: sms_core::secret_operation::ServiceDomain,
    /// Present only with `--admin-token-file`: the admin API (`/admin/*`).
    pub admin: Option<Arc<crate::admin_config::AdminState>>,
    /// The store's health, kept up to date in the background (`/health`).
    pub health: Arc<crate::health::Health>,
    /// Where every expiry and window of a handler reads the time (`ServerConfig::attest.clock`, set by tests).
    pub clock: sms_core::clock::Clock,
    /// Request-rate buckets; the handlers check the per-signer ones (docs/limits.md).
    pub rates: Arc<crate::limits::rate::RateLimits>,
}

//! Start-up: configuration checks, store, ledger, router, listener (HTTP or HTTPS).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::accept::DefaultAcceptor;
use sms_core::secret_operation::ServiceDomain;
use sms_store::postgres::{PostgresBackend, PostgresSettings};
use sms_store::sqlite::SqliteBackend;
use sms_store::{Backend, MasterKey, Store};

use crate::config::ServerConfig;
use crate::dev_wallets::{self, DevWallet};
use crate::limits::conn::LimitedAcceptor;
use crate::startup::StartupError;
use crate::state::{AppState, AppStateInner};

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    pub local_addr: SocketAddr,
    pub tls: bool,
    pub data_dir: PathBuf,
    pub store_description: String,
    pub ledger_description: String,
    /// Dev wallets (only with `--dev`).
    pub dev_wallets: Vec<DevWallet>,
    /// Whether the master key file was created by this start.
    pub master_key_created: bool,
    /// The key release answers are signed with (enclaves pin it).
    pub identity: sms_attest::IdentityDocument,
    /// Whether this start created the identity (first start on this store).
    pub identity_created: bool,
    /// Whether simulated TEE evidence is accepted (`--dev` or `--dangerous-allow-simulated-tee`).
    pub simulated_tee: bool,
    /// The store this server uses (tests seed it directly).
    pub store: Store,
    /// The writable dev ledger (only with `--dev`; tests seed it directly).
    pub dev_ledger: Option<Arc<sms_chain::dev::DevLedger>>,
    /// Signs the audit log's tree heads (tests call it to sign now).
    pub audit_signer: Arc<crate::audit::HeadSigner>,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    health_task: tokio::task::AbortHandle,
    rates_task: tokio::task::AbortHandle,
    audit_task: tokio::task::AbortHandle,
}

impl Server {
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    pub async fn start(config: ServerConfig) -> Result<Self, StartupError> {
        sms_client::install_crypto_provider();
        check_listen_policy(&config)?;
        config
            .attest
            .check_removed_flags()
            .map_err(StartupError::Config)?;
        let data_dir = config.data_dir();
        let OpenedStore {
            store,
            description: store_description,
            master_key_created,
        } = open_store(&config).await?;

        let (ledger, dev_ledger) = crate::ledger::build(&config, &data_dir).await?;
        let rates = Arc::new(config.limits.rate_limits());
        let rates_task = rates.spawn_shrinker();
        let dev_wallets = if config.dev {
            dev_wallets::load_or_create(&data_dir)
                .map_err(|e| StartupError::Io(format!("dev wallets: {e}")))?
        } else {
            Vec::new()
        };

        let metrics = crate::metrics_layer::recorder().map_err(StartupError::Config)?;
        let clock = config.attest.clock.clone().unwrap_or_default();
        let tee =
            crate::tee::TeeState::build(&config.tee, config.dev, store.clone(), clock.clone())?;
        let started = std::time::Instant::now();
        let (identity, identity_created) = loop {
            match crate::identity::load_or_create(&store).await {
                Err(e) if retry_at_startup(&e, started).await => continue,
                loaded => break loaded?,
            }
        };
        let identity_document = identity.public_key().document();
        // A second handle on the same key (the provisioner owns the first), from its seed.
        let head_identity = sms_attest::SmsIdentity::from_seed(identity.seed())
            .map_err(|e| StartupError::Config(format!("SMS identity: {e}")))?;
        let audit_signer = Arc::new(crate::audit::HeadSigner::new(store.clone(), head_identity));
        let audit_task = audit_signer
            .clone()
            .spawn(Duration::from_millis(config.audit_head_interval_ms));
        let domain = ServiceDomain {
            chain_id: crate::ledger::chain_id(&config.chain, |name| std::env::var(name).ok())
                .map_err(StartupError::Config)?,
            instance: config
                .instance_id
                .unwrap_or_else(|| ServiceDomain::instance_of_identity(&identity_document.key_id)),
        };
        let provisioner = Arc::new(crate::provision::Provisioner::build(
            &config.attest,
            config.dev,
            identity,
        )?);
        let simulated_tee = provisioner.allows_simulated();
        let server_store = store.clone();
        let (health, health_task) = crate::health::Health::start(
            store.clone(),
            Duration::from_millis(config.database_timeout_ms),
        )
        .await;
        let state = AppState::new(AppStateInner {
            store,
            ledger: ledger.clone(),
            dev_ledger: dev_ledger.clone(),
            max_secret_bytes: config.max_secret_bytes,
            metrics,
            tee: tee.clone(),
            provisioner,
            clock,
            cors: config.cors_allowed_origins.clone(),
            domain,
            admin: crate::admin_config::AdminState::load(&config.keys, &data_dir)
                .map_err(StartupError::Config)?,
            health,
            rates: rates.clone(),
        });
        // Counting is a full scan of the records (19 s for 1,000,000 secrets on a loaded 2-core
        // machine, `sms bench --scenario scale`): the gauge is set in the background instead of
        // delaying start-up (it is a metric, never used for decisions).
        let counting = state.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::routes::secrets::publish_counts(&counting).await {
                tracing::warn!(error = %e, "cannot count the stored secrets (sms_secrets_stored)");
            }
        });
        let families = crate::limits::family::Families::new(
            crate::routes::table().iter().map(|r| (r.path, r.feature)),
        );
        let limits = Arc::new(crate::limits::Limits::new(&config.limits, families, rates));
        let (routes, fallback) = crate::routes::services(state);
        let routes =
            crate::edge::RouteTable::new(routes, fallback).map_err(StartupError::Config)?;
        let edge = crate::edge::EdgeLayer::new(limits, simulated_tee, rand::random());
        let service = crate::edge::Connections::new(routes, edge);

        let handle: Handle<SocketAddr> = Handle::new();
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|e| StartupError::Listen {
                addr: config.listen,
                reason: e.to_string(),
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| StartupError::Io(e.to_string()))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| StartupError::Io(e.to_string()))?;
        let scheme = if config.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        tee.set_listen_url(&format!("{scheme}://{local_addr}"));
        let tls = config.tls_cert.is_some();
        // Connection limits sit below TLS: a stalled handshake is on the connection's clock.
        let limited = LimitedAcceptor::new(
            DefaultAcceptor,
            config.limits.max_connections,
            config.limits.connection_timeouts(),
        );
        let task = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                let tls_config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .map_err(|e| StartupError::Config(format!("TLS certificate or key: {e}")))?;
                let server = axum_server::from_tcp_rustls(listener, tls_config)
                    .map_err(|e| StartupError::Listen {
                        addr: config.listen,
                        reason: e.to_string(),
                    })?
                    .map(|tls| {
                        tls.handshake_timeout(config.limits.connection_timeouts().header_read)
                            .acceptor(limited)
                    })
                    .handle(handle.clone());
                tokio::spawn(server.serve(service))
            }
            _ => {
                let server = axum_server::from_tcp(listener)
                    .map_err(|e| StartupError::Listen {
                        addr: config.listen,
                        reason: e.to_string(),
                    })?
                    .acceptor(limited)
                    .handle(handle.clone());
                tokio::spawn(server.serve(service))
            }
        };
        Ok(Self {
            local_addr,
            tls,
            data_dir,
            store_description,
            ledger_description: ledger.describe(),
            dev_wallets,
            master_key_created,
            identity: identity_document,
            identity_created,
            simulated_tee,
            store: server_store,
            dev_ledger,
            audit_signer,
            handle,
            task,
            health_task,
            rates_task,
            audit_task,
        })
    }

    /// Stops accepting, lets in-flight requests finish (bounded), and waits.
    pub async fn shutdown(self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(10)));
        let _ = self.task.await;
        self.health_task.abort();
        self.rates_task.abort();
        self.audit_task.abort();
    }

    /// Waits until the server stops by itself (it normally does not).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// The store a configuration names, opened with its master key.
pub struct OpenedStore {
    pub store: Store,
    pub description: String,
    /// Whether the master key file was created by this call.
    pub master_key_created: bool,
}

/// Opens the configured store (SQLite in the data dir, or PostgreSQL) with the master key
/// (`SMS_MASTER_KEY`, or the key file, created on first use).
pub async fn open_store(config: &ServerConfig) -> Result<OpenedStore, StartupError> {
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir).map_err(|e| {
        StartupError::Io(format!(
            "cannot create data directory {}: {e}",
            data_dir.display()
        ))
    })?;
    let (mut master, master_key_created) =
        MasterKey::from_env_or_file(&config.master_key_file(), true)?;
    let backend: Arc<dyn Backend> = match &config.database_url {
        Some(url) => Arc::new(
            PostgresBackend::open(&PostgresSettings {
                url: url.clone(),
                max_connections: config.database_max_connections,
                timeout: Duration::from_millis(config.database_timeout_ms),
            })
            .await?,
        ),
        None => Arc::new(SqliteBackend::open(&data_dir.join("sms.db")).await?),
    };
    let description = backend.describe();
    let started = std::time::Instant::now();
    let store = loop {
        let clock = config.attest.clock.clone().unwrap_or_default();
        match Store::open_clocked(backend.clone(), master, config.keys.policy(), clock).await {
            Err(e) if retry_at_startup(&e, started).await => {
                master = MasterKey::from_env_or_file(&config.master_key_file(), false)?.0;
            }
            opened => break opened?,
        }
    };
    Ok(OpenedStore {
        store,
        description,
        master_key_created,
    })
}

/// How long start-up keeps retrying store calls that meet an outage (several replicas
/// starting at once share a database that may be busy migrating or full of connections).
const STARTUP_RETRY: Duration = Duration::from_secs(30);

/// Whether a start-up store call that failed with `error` is tried again: an outage, within
/// [`STARTUP_RETRY`] of `started`, after a short pause (logged). Anything else fails start-up.
async fn retry_at_startup(error: &sms_store::StoreError, started: std::time::Instant) -> bool {
    if !error.is_unavailable() || started.elapsed() >= STARTUP_RETRY {
        return false;
    }
    tracing::warn!(%error, "the database is unavailable at start-up: retrying");
    tokio::time::sleep(Duration::from_millis(250)).await;
    true
}

/// Outside --dev, plain HTTP only on loopback unless explicitly allowed.
fn check_listen_policy(config: &ServerConfig) -> Result<(), StartupError> {
    if config.tls_cert.is_none()
        && !config.listen.ip().is_loopback()
        && !config.dev
        && !config.insecure_http
    {
        return Err(StartupError::Config(format!(
            "refusing to serve secrets over plain HTTP on {}: give --tls-cert and --tls-key, listen on loopback, \
             or pass --insecure-http if a TLS proxy terminates connections in front of this server",
            config.listen
        )));
    }
    Ok(())
}

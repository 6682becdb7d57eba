//! The `sms server` process around a [`Server`]: logs on standard error (`SMS_LOG`, text or
//! JSON), start, the start-up report, then serving until Ctrl-C or SIGTERM and a graceful
//! shutdown.

use serde_json::json;

use crate::config::LogFormat;
use crate::config::ServerConfig;
use crate::server::{Server, open_store};
use crate::startup::StartupError;

/// Sets up the logs, starts the server of `config`, hands it to `started` (which reports it),
/// and serves until Ctrl-C or SIGTERM.
pub async fn serve(
    config: ServerConfig,
    started: impl FnOnce(&Server),
) -> Result<(), StartupError> {
    init_logs(config.log_format);
    let dev = config.dev;
    let server = Server::start(config).await?;
    if dev {
        tracing::warn!(
            ledger = %server.ledger_description,
            simulated_tee = server.simulated_tee,
            "DEVELOPMENT MODE: dev wallets; never store real secrets here"
        );
    }
    started(&server);
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// Logs on standard error, filtered by `SMS_LOG` (default `info`).
pub fn init_logs(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SMS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: log files stay plain (and formatting costs less per request).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // The request span's fields are recorded only when something is logged inside it, by the
    // layer below the fmt layer (crate::request_log).
    let logs = tracing_subscriber::registry()
        .with(filter)
        .with(crate::request_log::RequestFieldsLayer::default());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => logs.with(fmt).try_init(),
        LogFormat::Json => logs.with(fmt.json()).try_init(),
    };
}

/// Ctrl-C, or SIGTERM on Unix.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A throw-away `--dev` server on a free loopback port, its data in `data_dir`: what
/// `sms server --dev --listen 127.0.0.1:0 --data-dir <data_dir>` starts, without logs
/// (`sms demo`). Other options come from the environment, as for `sms server`.
pub async fn start_dev(data_dir: &std::path::Path) -> anyhow::Result<Server> {
    #[derive(clap::Parser)]
    struct Dev {
        #[command(flatten)]
        config: ServerConfig,
    }
    let args = [
        std::ffi::OsStr::new("sms"),
        "--dev".as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ];
    let dev = <Dev as clap::Parser>::try_parse_from(args)?;
    Ok(Server::start(dev.config).await?)
}

impl Server {
    /// What `sms server` prints once listening: the text, and the JSON object of `--json`.
    pub fn startup_report(&self) -> (String, serde_json::Value) {
        let wallets: Vec<_> = self
        .dev_wallets
        .iter()
        .map(|w| json!({ "name": w.name, "address": w.address.to_string(), "privateKey": w.private_key, "walletFile": w.keystore, "password": crate::dev_wallets::DEV_WALLET_PASSWORD }))
        .collect();
        let mut human = format!(
            "SMS {} listening on {}\n  data directory: {}\n  store:          {}\n  ledger:         {}",
            env!("CARGO_PKG_VERSION"),
            self.url(),
            self.data_dir.display(),
            self.store_description,
            self.ledger_description,
        );
        human.push('\n');
        human.push_str(&crate::identity::pin_line(&self.identity));
        if self.simulated_tee {
            human.push_str(
            "\n  simulated TEE:  ACCEPTED: /tee/provisioning releases secrets without any hardware proof \
             (--dev or --dangerous-allow-simulated-tee); never with real secrets",
        );
        }
        if self.master_key_created {
            human.push_str(
                "\n  master key:     created (back it up: without it the store cannot be read)",
            );
        }
        if !self.dev_wallets.is_empty() {
            human.push_str(&format!(
                "\n\nDev wallets (keystore password \"{}\"):",
                crate::dev_wallets::DEV_WALLET_PASSWORD
            ));
            for w in &self.dev_wallets {
                human.push_str(&format!(
                    "\n  {:<11} {}  key {}\n              --wallet-file {}",
                    w.name,
                    w.address,
                    w.private_key,
                    w.keystore.display()
                ));
            }
            human.push_str(&format!(
                "\n\nTry: export SMS_URL={} SMS_WALLET_PASSWORD=dev",
                self.url()
            ));
        }
        (
            human,
            json!({ "url": self.url(), "dataDir": self.data_dir, "store": self.store_description, "ledger": self.ledger_description, "identity": self.identity, "simulatedTee": self.simulated_tee, "devWallets": wallets }),
        )
    }
}

/// The identity of the store `config` names (created if it has none yet, as `sms server
/// identity` does).
pub async fn store_identity(config: &ServerConfig) -> anyhow::Result<StoreIdentity> {
    let opened = open_store(config).await?;
    let (identity, created) = crate::identity::load_or_create(&opened.store).await?;
    Ok(StoreIdentity {
        description: opened.description,
        document: identity.public_key().document(),
        created,
    })
}

/// A store's identity, as `sms server identity` reports it.
pub struct StoreIdentity {
    /// Which store.
    pub description: String,
    pub document: sms_attest::IdentityDocument,
    /// Created now: the store had none.
    pub created: bool,
}

impl StoreIdentity {
    pub fn human(&self) -> String {
        let mut human = format!(
            "SMS identity of {}\n{}",
            self.description,
            crate::identity::pin_line(&self.document)
        );
        if self.created {
            human.push_str("\n  (created now: this store had none)");
        }
        human
    }

    pub fn report(&self) -> serde_json::Value {
        let doc = &self.document;
        serde_json::json!({ "keyId": doc.key_id, "algorithm": doc.algorithm, "publicKey": doc.public_key, "created": self.created })
    }
}

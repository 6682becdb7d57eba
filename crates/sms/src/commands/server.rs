use clap::{Args, Subcommand};
use serde_json::json;
use sms_server::config::LogFormat;
use sms_server::{Server, ServerConfig};

use crate::output::Output;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub command: Option<ServerCommand>,
    #[command(flatten)]
    pub config: ServerConfig,
}

#[derive(Subcommand)]
pub enum ServerCommand {
    /// Print the SMS identity (the key release answers are signed with, which enclaves pin)
    /// from the store, without starting the server; creates it if this store has none yet.
    /// Takes the same store options as `sms server` (--data-dir, --database-url, ...).
    Identity(IdentityArgs),
}

#[derive(Args)]
pub struct IdentityArgs {
    #[command(flatten)]
    pub config: ServerConfig,
}

fn identity_text(doc: &sms_attest::IdentityDocument) -> String {
    format!(
        "  identity:       {} key {} (pin with --sms-public-key {})",
        doc.algorithm, doc.key_id, doc.public_key
    )
}

async fn identity(args: IdentityArgs, out: &Output) -> anyhow::Result<()> {
    let opened = sms_server::open_store(&args.config).await?;
    let (identity, created) = sms_server::identity::load_or_create(&opened.store).await?;
    let doc = identity.public_key().document();
    let mut human = format!(
        "SMS identity of {}\n{}",
        opened.description,
        identity_text(&doc)
    );
    if created {
        human.push_str("\n  (created now: this store had none)");
    }
    out.done(
        human,
        json!({ "keyId": doc.key_id, "algorithm": doc.algorithm, "publicKey": doc.public_key, "created": created }),
    );
    Ok(())
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SMS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: log files stay plain (and formatting costs less per request).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // The request span's fields are recorded only when something is logged inside it, by the
    // layer below the fmt layer (sms_server::request_log).
    let logs = tracing_subscriber::registry()
        .with(filter)
        .with(sms_server::request_log::RequestFieldsLayer::default());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => logs.with(fmt).try_init(),
        LogFormat::Json => logs.with(fmt.json()).try_init(),
    };
}

pub async fn run(args: ServerArgs, out: &Output) -> anyhow::Result<()> {
    if let Some(ServerCommand::Identity(identity_args)) = args.command {
        return identity(identity_args, out).await;
    }
    init_logs(args.config.log_format);
    let dev = args.config.dev;
    let server = Server::start(args.config).await?;
    if dev {
        tracing::warn!(
            ledger = %server.ledger_description,
            simulated_tee = server.simulated_tee,
            "DEVELOPMENT MODE: dev wallets; never store real secrets here"
        );
    }
    let wallets: Vec<_> = server
        .dev_wallets
        .iter()
        .map(|w| json!({ "name": w.name, "address": w.address.to_string(), "privateKey": w.private_key, "walletFile": w.keystore, "password": sms_server::dev_wallets::DEV_WALLET_PASSWORD }))
        .collect();
    let mut human = format!(
        "SMS {} listening on {}\n  data directory: {}\n  store:          {}\n  ledger:         {}",
        env!("CARGO_PKG_VERSION"),
        server.url(),
        server.data_dir.display(),
        server.store_description,
        server.ledger_description,
    );
    human.push('\n');
    human.push_str(&identity_text(&server.identity));
    if server.simulated_tee {
        human.push_str(
            "\n  simulated TEE:  ACCEPTED: /tee/provisioning releases secrets without any hardware proof \
             (--dev or --dangerous-allow-simulated-tee); never with real secrets",
        );
    }
    if server.master_key_created {
        human.push_str(
            "\n  master key:     created (back it up: without it the store cannot be read)",
        );
    }
    if !server.dev_wallets.is_empty() {
        human.push_str(&format!(
            "\n\nDev wallets (keystore password \"{}\"):",
            sms_server::dev_wallets::DEV_WALLET_PASSWORD
        ));
        for w in &server.dev_wallets {
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
            server.url()
        ));
    }
    out.done(
        human,
        json!({ "url": server.url(), "dataDir": server.data_dir, "store": server.store_description, "ledger": server.ledger_description, "identity": server.identity, "simulatedTee": server.simulated_tee, "devWallets": wallets }),
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
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

//! The `sms server` process around a [`Server`]: logs on standard error (`SMS_LOG`, text or
//! JSON), start, the start-up report, then serving until Ctrl-C or SIGTERM and a graceful
//! shutdown.

use crate::config::LogFormat;
use crate::{Server, ServerConfig, StartupError};

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
    let filter = tracing_subscriber::EnvFilter::try_from_env("SMS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: log files stay plain (and formatting costs less per request).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
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

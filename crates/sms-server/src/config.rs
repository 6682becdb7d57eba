//! Server configuration: every flag has an environment equivalent (`sms server --help`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use sms_core::secret::{DEFAULT_MAX_SECRET_BYTES, MAX_SECRET_BYTES_LIMIT};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Args)]
pub struct ServerConfig {
    /// Address to listen on. Outside --dev, a non-loopback address needs TLS or --insecure-http.
    #[arg(long, env = "SMS_LISTEN", default_value = "127.0.0.1:13300")]
    pub listen: SocketAddr,

    /// Directory holding the SQLite database, the master key file and (dev) the dev ledger.
    /// Default: $XDG_DATA_HOME/sms or ~/.local/share/sms.
    #[arg(long, env = "SMS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// PostgreSQL URL (postgres://user@host/db) to share the store between replicas.
    /// Default: SQLite in the data directory.
    #[arg(long, env = "SMS_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Maximum connections to PostgreSQL.
    #[arg(long, env = "SMS_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// File holding the base64 master key that wraps the data keys; created (mode 0600) on
    /// first start. Ignored when SMS_MASTER_KEY is set. Default: <data-dir>/master.key.
    #[arg(long, env = "SMS_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,

    /// Largest accepted secret value, in bytes of UTF-8. iExec clients expect 4096; Linux caps
    /// one environment variable at 131072.
    #[arg(long, env = "SMS_MAX_SECRET_BYTES", default_value_t = DEFAULT_MAX_SECRET_BYTES,
          value_parser = parse_max_secret_bytes)]
    pub max_secret_bytes: usize,

    /// PEM certificate chain: serve HTTPS.
    #[arg(long, env = "SMS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "SMS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Allow plain HTTP on a non-loopback address (e.g. behind a TLS-terminating proxy).
    #[arg(long, env = "SMS_INSECURE_HTTP")]
    pub insecure_http: bool,

    /// Development mode: embedded dev ledger with its API under /dev, dev wallets, simulated
    /// TEE accepted. Never use it for real secrets.
    #[arg(long, env = "SMS_DEV")]
    pub dev: bool,

    /// Log format.
    #[arg(long, env = "SMS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub chain: ChainArgs,

    #[command(flatten)]
    pub tee: crate::tee::args::TeeArgs,

    #[command(flatten)]
    pub attest: crate::attest_args::AttestArgs,
}

/// Where the iExec PoCo contracts are read (production ledger).
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Chain")]
pub struct ChainArgs {}

fn parse_max_secret_bytes(text: &str) -> Result<usize, String> {
    let n: usize = text.parse().map_err(|_| format!("'{text}' is not a number of bytes"))?;
    if (1..=MAX_SECRET_BYTES_LIMIT).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be between 1 and {MAX_SECRET_BYTES_LIMIT} (the Linux limit of one environment variable)"))
    }
}

impl ServerConfig {
    /// A configuration for tests and embedding: dev mode on loopback port 0 in `data_dir`.
    pub fn dev_in(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: Some(data_dir),
            database_url: None,
            database_max_connections: 16,
            master_key_file: None,
            max_secret_bytes: DEFAULT_MAX_SECRET_BYTES,
            tls_cert: None,
            tls_key: None,
            insecure_http: false,
            dev: true,
            log_format: LogFormat::Text,
            chain: ChainArgs::default(),
            tee: crate::tee::args::TeeArgs::defaults(),
            attest: crate::attest_args::AttestArgs::default(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("sms")
    }

    pub fn master_key_file(&self) -> PathBuf {
        self.master_key_file.clone().unwrap_or_else(|| self.data_dir().join("master.key"))
    }
}

//! Server configuration: every flag has an environment equivalent (`sms server --help`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use sms_core::Address;
use sms_core::secret::{DEFAULT_MAX_SECRET_BYTES, MAX_SECRET_BYTES_LIMIT, parse_address};

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

    /// PostgreSQL URL (postgres://user@host/db) to share the store between replicas; takes the
    /// standard TLS parameters, e.g. `?sslmode=verify-full&sslrootcert=/etc/sms/pg-ca.pem`
    /// (use them in production, docs/operations.md). Default: SQLite in the data directory.
    #[arg(long, env = "SMS_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Maximum connections of this replica to PostgreSQL (its pool). 1 to 1000.
    #[arg(long, env = "SMS_DATABASE_MAX_CONNECTIONS", default_value_t = sms_store::postgres::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,

    /// Upper bound of one PostgreSQL call, in milliseconds: the wait for a pooled connection,
    /// the server-side statement_timeout, and the whole round trip. Past it the request gets
    /// 503 STORE_UNAVAILABLE. 50 to 60000.
    #[arg(long, env = "SMS_DATABASE_TIMEOUT_MS", value_name = "MS", default_value_t = DEFAULT_DATABASE_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub database_timeout_ms: u64,

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

    /// Origins allowed by CORS on the secret routes (`/secrets/*`, `/apps/*`, `/requesters/*`):
    /// a comma-separated list of `scheme://host[:port]`, or `*`.
    #[arg(long, env = "SMS_CORS_ALLOWED_ORIGINS", default_value = "*")]
    pub cors_allowed_origins: crate::routes::CorsOrigins,

    /// Instance id of this SMS in the secrets API v2 signing domain (`verifyingContract`,
    /// 0x + 40 hex): a signature made for another instance is refused. Default: derived from
    /// the SMS identity key, which replicas share. Set it only to keep the id across an
    /// identity change; every replica must use the same value.
    #[arg(long, env = "SMS_INSTANCE_ID", value_name = "ADDRESS", value_parser = parse_address_arg)]
    pub instance_id: Option<Address>,

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

    #[command(flatten)]
    pub keys: crate::admin_config::KeyArgs,

    #[command(flatten)]
    pub limits: crate::limits::LimitsArgs,

    /// How often the audit log's tree head is signed when entries were appended since the
    /// last one (docs/audit.md). 100 ms to 1 h.
    #[arg(long, env = "SMS_AUDIT_HEAD_INTERVAL_MS", value_name = "MS",
          default_value_t = crate::audit::DEFAULT_HEAD_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub audit_head_interval_ms: u64,
}

/// Where the iExec PoCo contracts are read (the production ledger). See docs/chain.md.
///
/// clap reads only the `SMS_*` variables; the iExec names (`IEXEC_BLOCKCHAIN_NODE_ADDRESS`,
/// `IEXEC_HUB_ADDRESS`, `IEXEC_CHAIN_ID`) are applied at start-up when neither the flag nor its
/// `SMS_*` variable is given.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Chain")]
pub struct ChainArgs {
    /// JSON-RPC endpoint (http or https) of the chain holding the iExec PoCo contracts; never
    /// logged whole (it may carry an API key). Needs --hub. Env fallback:
    /// IEXEC_BLOCKCHAIN_NODE_ADDRESS. With --dev, the chain replaces the embedded dev ledger:
    /// dev wallets stay, but the /dev ledger API is not served (it cannot write the chain).
    #[arg(long, env = "SMS_CHAIN_RPC", value_name = "URL")]
    pub chain_rpc: Option<String>,

    /// Address of the PoCo hub (the diamond proxy); start-up checks that it holds a contract.
    /// Needs --chain-rpc. Env fallback: IEXEC_HUB_ADDRESS.
    #[arg(long, env = "SMS_HUB", value_name = "ADDRESS", value_parser = parse_address_arg)]
    pub hub: Option<Address>,

    /// Chain id the RPC must serve; a mismatch stops start-up. Env fallback: IEXEC_CHAIN_ID.
    /// Default: 134 (Bellecour)
    #[arg(long, env = "SMS_CHAIN_ID", value_name = "ID")]
    pub chain_id: Option<u64>,

    /// Upper bound of one ledger read, retries included, in milliseconds: past it the request
    /// gets 503 with the reason. 1 to 60000.
    #[arg(long, env = "SMS_CHAIN_TIMEOUT_MS", value_name = "MS", default_value_t = DEFAULT_CHAIN_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub chain_timeout_ms: u64,

    /// Extra attempts after a failed RPC request (connection refused, garbage answer), within
    /// --chain-timeout-ms. 0 to 10.
    #[arg(long, env = "SMS_CHAIN_RETRIES", value_name = "N", default_value_t = DEFAULT_CHAIN_RETRIES,
          value_parser = clap::value_parser!(u32).range(0..=10))]
    pub chain_retries: u32,

    /// Maximum age, in milliseconds, of an entry owner or a task status served from memory.
    /// The default, 1000, is less than one block of Bellecour (5 s blocks); use a lower value on
    /// faster chains, 0 to read them from the chain on every request. Immutable facts (deals,
    /// app checksum and enclave configuration, final task statuses) are cached without expiry
    /// in a bounded cache.
    #[arg(long, env = "SMS_CHAIN_FRESH_MS", value_name = "MS", default_value_t = DEFAULT_CHAIN_FRESH_MS,
          value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub chain_fresh_ms: u64,
}

/// `--chain-id` when neither it, SMS_CHAIN_ID nor IEXEC_CHAIN_ID is given (Bellecour).
pub const DEFAULT_CHAIN_ID: u64 = 134;
pub const DEFAULT_CHAIN_TIMEOUT_MS: u64 = 2000;
/// Default `--database-timeout-ms`: a store outage is answered (503) well within 2 s.
pub const DEFAULT_DATABASE_TIMEOUT_MS: u64 = 1000;
pub const DEFAULT_CHAIN_RETRIES: u32 = 2;
pub const DEFAULT_CHAIN_FRESH_MS: u64 = 1000;

impl Default for ChainArgs {
    fn default() -> Self {
        Self {
            chain_rpc: None,
            hub: None,
            chain_id: None,
            chain_timeout_ms: DEFAULT_CHAIN_TIMEOUT_MS,
            chain_retries: DEFAULT_CHAIN_RETRIES,
            chain_fresh_ms: DEFAULT_CHAIN_FRESH_MS,
        }
    }
}

/// A 0x-prefixed, 40-hex-digit address (any letter case).
pub(crate) fn parse_address_arg(text: &str) -> Result<Address, String> {
    parse_address(text.trim())
        .map_err(|_| format!("'{text}' is not an address (0x followed by 40 hex digits)"))
}

fn parse_max_secret_bytes(text: &str) -> Result<usize, String> {
    let n: usize = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of bytes"))?;
    if (1..=MAX_SECRET_BYTES_LIMIT).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "must be between 1 and {MAX_SECRET_BYTES_LIMIT} (the Linux limit of one environment variable)"
        ))
    }
}

impl ServerConfig {
    /// A configuration for tests and embedding: dev mode on loopback port 0 in `data_dir`.
    pub fn dev_in(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: Some(data_dir),
            database_url: None,
            database_max_connections: sms_store::postgres::DEFAULT_MAX_CONNECTIONS,
            database_timeout_ms: DEFAULT_DATABASE_TIMEOUT_MS,
            master_key_file: None,
            max_secret_bytes: DEFAULT_MAX_SECRET_BYTES,
            tls_cert: None,
            tls_key: None,
            insecure_http: false,
            cors_allowed_origins: crate::routes::CorsOrigins::Any,
            instance_id: None,
            dev: true,
            log_format: LogFormat::Text,
            chain: ChainArgs::default(),
            tee: crate::tee::args::TeeArgs::defaults(),
            attest: crate::attest_args::AttestArgs::default(),
            keys: crate::admin_config::KeyArgs::default(),
            limits: crate::limits::LimitsArgs::default(),
            audit_head_interval_ms: crate::audit::DEFAULT_HEAD_INTERVAL_MS,
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
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir().join("master.key"))
    }
}

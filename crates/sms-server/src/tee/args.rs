//! Configuration of the TEE endpoints (`/tee/*`): framework, pipelines, session lifetime,
//! provisioning URL, challenge sweep and session exporters. Flattened into `ServerConfig`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Env var the upstream SMS reads its framework from; accepted when `SMS_TEE_FRAMEWORK` is unset.
pub const UPSTREAM_FRAMEWORK_ENV: &str = "IEXEC_SMS_TEE_RUNTIME_FRAMEWORK";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FrameworkArg {
    Scone,
    Gramine,
    Tdx,
}

/// Where sessions are delivered besides the built-in store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum SessionExport {
    /// Sessions are only stored for the built-in attested provisioner.
    #[default]
    None,
    /// POST the SCONE CAS session YAML to `<url>/session`.
    SconeCas,
    /// POST the Gramine SPS session JSON to `<url>/api/session`.
    GramineSps,
    /// POST the TDX session-storage JSON to `<url>/session`.
    TdxStorage,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum SconeAttestationMode {
    #[default]
    Hardware,
    Maa,
}

impl SconeAttestationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hardware => "hardware",
            Self::Maa => "maa",
        }
    }
}

#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "TEE sessions")]
pub struct TeeArgs {
    /// TEE framework this SMS serves. Also read from IEXEC_SMS_TEE_RUNTIME_FRAMEWORK. Default:
    /// scone with --dev; outside --dev, without it the /tee API is not served.
    #[arg(long, env = "SMS_TEE_FRAMEWORK", value_enum)]
    pub tee_framework: Option<FrameworkArg>,

    /// Pipelines file (TOML, or JSON when the name ends in .json): pre- and post-compute images,
    /// fingerprints, entrypoints and heap sizes per framework version. See docs/tee-sessions.md.
    /// Required with --tee-framework outside --dev (in --dev a built-in pipeline serves any
    /// version).
    #[arg(long, env = "SMS_PIPELINES")]
    pub pipelines: Option<PathBuf>,

    /// LAS image announced in SCONE /tee/properties answers. Required for SCONE outside --dev.
    #[arg(long, env = "SMS_LAS_IMAGE")]
    pub las_image: Option<String>,

    /// Public base URL of this server (as workers and enclaves reach it). Default: the URL the
    /// server listens on.
    #[arg(long, env = "SMS_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// `secretProvisioningUrl` answered by /tee/sessions. Default: the public URL (the built-in
    /// provisioner under /tee/provisioning).
    #[arg(long, env = "SMS_SECRET_PROVISIONING_URL")]
    pub secret_provisioning_url: Option<String>,

    /// Lifetime of a stored session (never beyond the task's final deadline), e.g. 3600, 90m, 1h.
    #[arg(long, env = "SMS_SESSION_TTL", default_value = "1h", value_parser = parse_duration)]
    pub session_ttl: Duration,

    /// How often expired enclave challenges and sessions are deleted, e.g. 60s, 1h.
    #[arg(long, env = "SMS_CHALLENGE_SWEEP_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub challenge_sweep_interval: Duration,

    /// Also deliver each session to an external provisioner.
    #[arg(long, env = "SMS_SESSION_EXPORT", value_enum, default_value_t = SessionExport::None)]
    pub session_export: SessionExport,

    /// HTTPS base URL of the external provisioner (CAS, SPS or session storage).
    #[arg(long, env = "SMS_SESSION_EXPORT_URL")]
    pub session_export_url: Option<String>,

    /// PEM CA certificate(s) trusted, besides the system roots, for the export URL.
    #[arg(long, env = "SMS_SESSION_EXPORT_CA_FILE")]
    pub session_export_ca_file: Option<PathBuf>,

    /// PEM file holding the client certificate and its private key (mutual TLS, e.g. SCONE CAS).
    #[arg(long, env = "SMS_SESSION_EXPORT_CLIENT_IDENTITY")]
    pub session_export_client_identity: Option<PathBuf>,

    /// HTTP Basic login for the export URL (Gramine SPS).
    #[arg(
        long,
        env = "SMS_SESSION_EXPORT_LOGIN",
        requires = "session_export_password"
    )]
    pub session_export_login: Option<String>,

    /// HTTP Basic password for the export URL.
    #[arg(long, env = "SMS_SESSION_EXPORT_PASSWORD", hide_env_values = true)]
    pub session_export_password: Option<String>,

    /// SCONE CAS sessions: attestation mode.
    #[arg(long, env = "SMS_SCONE_ATTESTATION_MODE", value_enum, default_value_t = SconeAttestationMode::Hardware)]
    pub scone_attestation_mode: SconeAttestationMode,

    /// SCONE CAS sessions: attestation service URL (required with mode maa).
    #[arg(long, env = "SMS_SCONE_ATTESTATION_URL")]
    pub scone_attestation_url: Option<String>,

    /// SCONE CAS sessions: tolerated insecure options (comma-separated, e.g. hyperthreading,debug-mode).
    #[arg(long, env = "SMS_SCONE_TOLERATE", value_delimiter = ',')]
    pub scone_tolerate: Vec<String>,

    /// SCONE CAS sessions: ignored SGX advisories (comma-separated).
    #[arg(long, env = "SMS_SCONE_IGNORE_ADVISORIES", value_delimiter = ',')]
    pub scone_ignore_advisories: Vec<String>,
    /// IPFS gateway (http or https base URL) the bulk documents of `bulk_cid` deals are read
    /// from; every document is checked against its CID. Without it, bulk tasks are refused
    /// (PRE_COMPUTE_BULK_PROCESSING_NOT_SUPPORTED). See docs/bulk-processing.md.
    #[arg(long, env = "SMS_IPFS_GATEWAY")]
    pub ipfs_gateway: Option<String>,

    /// Upper bound of one IPFS gateway request, body included, in milliseconds.
    #[arg(long, env = "SMS_IPFS_TIMEOUT_MS", default_value_t = DEFAULT_IPFS_TIMEOUT_MS)]
    pub ipfs_timeout_ms: u64,
}

/// Default of `--ipfs-timeout-ms`.
pub const DEFAULT_IPFS_TIMEOUT_MS: u64 = 10_000;

/// `3600`, `3600s`, `90m`, `1h`, `2d` (a positive number of seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (e.g. 3600, 90m, 1h)"))?;
    let factor = match unit.trim() {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}' (use s, m, h or d)"
            ));
        }
    };
    let secs = n
        .checked_mul(factor)
        .ok_or_else(|| format!("'{text}' is too large"))?;
    if secs == 0 {
        return Err("must be greater than 0".into());
    }
    Ok(Duration::from_secs(secs))
}

impl TeeArgs {
    /// Defaults for tests and embedding (what clap gives with no flag).
    pub fn defaults() -> Self {
        Self {
            session_ttl: Duration::from_secs(3600),
            challenge_sweep_interval: Duration::from_secs(3600),
            ipfs_timeout_ms: DEFAULT_IPFS_TIMEOUT_MS,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }
}

//! The admin API's configuration: data-key rotation settings, the bearer token file and the
//! state the admin routes (`routes/admin.rs`) check calls against. Apart from the routes so
//! that the configuration and the application state do not depend on handlers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use sha2::{Digest, Sha256};
use sms_store::RotationPolicy;
use zeroize::Zeroizing;

/// Data-key rotation and the admin API (`sms server --help`).
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Keys and admin API")]
pub struct KeyArgs {
    /// File holding the bearer token of the admin API (/admin/*: key status, rotation,
    /// rewrap, backup); mode 0600, at least 32 characters. Without it the admin API is off
    /// (404). `sms operator` commands read the same file.
    #[arg(long, env = "SMS_ADMIN_TOKEN_FILE", value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,

    /// Encryptions under one data key before a new one is created (AES-GCM with random
    /// nonces must stay far below 2^32 per key). 4096 to 2^31.
    #[arg(long, env = "SMS_DATA_KEY_MAX_ENCRYPTIONS", value_name = "N",
          default_value_t = sms_store::DEFAULT_MAX_ENCRYPTIONS,
          value_parser = clap::value_parser!(u64).range(4096..=(1u64 << 31)))]
    pub data_key_max_encryptions: u64,

    /// Age in days after which a new data key is created (default: no age limit). 1 to 3650.
    #[arg(long, env = "SMS_DATA_KEY_MAX_AGE_DAYS", value_name = "DAYS",
          value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub data_key_max_age_days: Option<u64>,
}

impl Default for KeyArgs {
    fn default() -> Self {
        Self {
            admin_token_file: None,
            data_key_max_encryptions: sms_store::DEFAULT_MAX_ENCRYPTIONS,
            data_key_max_age_days: None,
        }
    }
}

impl KeyArgs {
    pub fn policy(&self) -> RotationPolicy {
        RotationPolicy {
            max_encryptions: self.data_key_max_encryptions,
            max_age: self
                .data_key_max_age_days
                .map(|d| std::time::Duration::from_secs(d * 86_400)),
            ..RotationPolicy::default()
        }
    }
}

/// Shortest accepted admin token.
pub const MIN_TOKEN_LEN: usize = 32;

/// Reads an admin token file: trimmed, at least [`MIN_TOKEN_LEN`] characters, not readable
/// by group or others. Shared with `sms operator`.
pub fn read_token_file(path: &Path) -> Result<Zeroizing<String>, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read admin token file {}: {e}", path.display()))?,
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "admin token file {} is readable by group or others (mode {:o}); run chmod 600 on it",
                path.display(),
                mode & 0o777
            ));
        }
    }
    let token = text.trim();
    if token.len() < MIN_TOKEN_LEN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "admin token in {} must be one line of at least {MIN_TOKEN_LEN} characters without spaces",
            path.display()
        ));
    }
    Ok(Zeroizing::new(token.to_owned()))
}

/// The admin API's configuration, when it is on.
pub struct AdminState {
    pub(crate) token_digest: [u8; 32],
    /// One backup at a time (iExec answers 429 when busy, so does this).
    pub(crate) backup: tokio::sync::Mutex<()>,
    pub(crate) data_dir: PathBuf,
}

impl AdminState {
    /// `None` when no token file is configured (the admin API is off).
    pub fn load(args: &KeyArgs, data_dir: &Path) -> Result<Option<Arc<Self>>, String> {
        let Some(path) = &args.admin_token_file else {
            return Ok(None);
        };
        let token = read_token_file(path)?;
        Ok(Some(Arc::new(Self {
            token_digest: digest(token.as_bytes()),
            backup: tokio::sync::Mutex::new(()),
            data_dir: data_dir.to_path_buf(),
        })))
    }
}

pub(crate) fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest([b"sms-admin-token".as_slice(), bytes].concat()).into()
}

/// Equality of two digests without an early exit.
pub(crate) fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_compare_equal_only_when_equal() {
        let a = digest(b"a-token");
        assert!(same_digest(&a, &digest(b"a-token")));
        assert!(!same_digest(&a, &digest(b"b-token")));
    }
}

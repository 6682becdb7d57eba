//! Ethereum keystore V3 wallets (scrypt + AES-128-CTR), as written by ethers and the iExec SDK.

use std::path::{Path, PathBuf};

use alloy_signer_local::PrivateKeySigner;
use thiserror::Error;
use zeroize::Zeroizing;

#[derive(Debug, Error)]
pub enum WalletError {
    #[error(
        "no wallet at {0}: create one with `sms wallet create` or `sms wallet import <private-key>`"
    )]
    Missing(PathBuf),
    #[error("a wallet already exists at {0}: choose another --wallet-file")]
    Exists(PathBuf),
    #[error("cannot open wallet {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("cannot write wallet {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("invalid private key: expected 0x followed by 64 hex characters")]
    PrivateKey,
}

/// Default wallet location: `$XDG_CONFIG_HOME/sms/wallet.json` or `~/.config/sms/wallet.json`.
pub fn default_path() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("sms")
        .join("wallet.json")
}

pub fn parse_private_key(text: &str) -> Result<PrivateKeySigner, WalletError> {
    let text = Zeroizing::new(text.trim().to_owned());
    let digits = text.strip_prefix("0x").unwrap_or(&text);
    if digits.len() != 64 {
        return Err(WalletError::PrivateKey);
    }
    digits.parse().map_err(|_| WalletError::PrivateKey)
}

/// Writes `signer` as a keystore at `path`; never overwrites an existing file.
pub fn save(path: &Path, signer: &PrivateKeySigner, password: &str) -> Result<(), WalletError> {
    if path.exists() {
        return Err(WalletError::Exists(path.to_owned()));
    }
    let write_err = |reason: String| WalletError::Write {
        path: path.to_owned(),
        reason,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| write_err("not a file name".into()))?;
    std::fs::create_dir_all(&dir).map_err(|e| write_err(e.to_string()))?;
    let mut rng = rand08::thread_rng();
    let key = Zeroizing::new(signer.to_bytes().0);
    PrivateKeySigner::encrypt_keystore(&dir, &mut rng, key.as_slice(), password, Some(name))
        .map_err(|e| write_err(e.to_string()))?;
    restrict(path).map_err(|e| write_err(e.to_string()))?;
    add_address(path, signer).map_err(write_err)
}

/// Records the (public) address in the keystore, as ethers and geth do, so commands that only
/// need the address do not ask for the password.
fn add_address(path: &Path, signer: &PrivateKeySigner) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    json["address"] = serde_json::Value::String(format!("{:x}", signer.address()));
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json.to_string()).map_err(|e| e.to_string())?;
    restrict(&tmp).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Decrypts the keystore at `path`.
pub fn load(path: &Path, password: &str) -> Result<PrivateKeySigner, WalletError> {
    if !path.exists() {
        return Err(WalletError::Missing(path.to_owned()));
    }
    PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| WalletError::Open {
        path: path.to_owned(),
        reason: match e.to_string() {
            s if s.contains("Mac Mismatch") || s.contains("MacMismatch") => {
                "wrong password".to_owned()
            }
            s => s,
        },
    })
}

/// The address recorded in a keystore file, without decrypting it.
pub fn address_of(path: &Path) -> Result<Option<String>, WalletError> {
    let text = std::fs::read_to_string(path).map_err(|_| WalletError::Missing(path.to_owned()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| WalletError::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(json
        .get("address")
        .and_then(|a| a.as_str())
        .map(|a| format!("0x{}", a.trim_start_matches("0x"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_refuses_overwrite_and_bad_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        let signer = PrivateKeySigner::random();
        save(&path, &signer, "pw").unwrap();
        assert_eq!(load(&path, "pw").unwrap().address(), signer.address());
        assert!(matches!(
            save(&path, &signer, "pw"),
            Err(WalletError::Exists(_))
        ));
        let err = load(&path, "nope").unwrap_err().to_string();
        assert!(err.contains("wrong password"), "{err}");
    }

    #[test]
    fn private_keys() {
        assert!(
            parse_private_key("0x564a9db84969c8159f7aa3d5393c5ecd014fce6a375842a45b12af6677b12407")
                .is_ok()
        );
        assert!(
            parse_private_key("564a9db84969c8159f7aa3d5393c5ecd014fce6a375842a45b12af6677b12407")
                .is_ok()
        );
        assert!(parse_private_key("0x1234").is_err());
    }
}

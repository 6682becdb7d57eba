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

/// Decrypts the keystore at `path`, after [`check_keystore`] has accepted its parameters (the
/// decryption library would otherwise panic on short fields or spend unbounded memory and time
/// on the cost parameters a hostile file declares).
pub fn load(path: &Path, password: &str) -> Result<PrivateKeySigner, WalletError> {
    if !path.exists() {
        return Err(WalletError::Missing(path.to_owned()));
    }
    let open_err = |reason: String| WalletError::Open {
        path: path.to_owned(),
        reason,
    };
    let text = read_bounded(path).map_err(open_err)?;
    check_keystore(&text).map_err(open_err)?;
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

/// Longest keystore file read: a V3 keystore is well under 1 KiB.
const MAX_KEYSTORE_BYTES: u64 = 64 * 1024;
/// scrypt needs 128·n·r bytes: up to 256 MiB, geth's "standard" parameters (n = 2^18, r = 8).
const MAX_SCRYPT_MEMORY: u64 = 256 << 20;
/// scrypt time grows with n·r·p: up to twice geth's standard cost.
const MAX_SCRYPT_WORK: u64 = 1 << 22;
/// PBKDF2-HMAC-SHA256 rounds: 8 times geth's 262,144 (a few seconds at most).
const MAX_PBKDF2_ROUNDS: u32 = 1 << 21;

/// The key derivation a keystore file asks for, within the bounds [`check_keystore`] enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeystoreKdf {
    Scrypt { n: u32, r: u32, p: u32 },
    Pbkdf2 { rounds: u32 },
}

#[derive(serde::Deserialize)]
struct KeystoreJson {
    version: u64,
    crypto: CryptoJson,
}

#[derive(serde::Deserialize)]
struct CryptoJson {
    cipher: String,
    cipherparams: CipherParamsJson,
    ciphertext: String,
    kdf: String,
    kdfparams: serde_json::Value,
    mac: String,
}

#[derive(serde::Deserialize)]
struct CipherParamsJson {
    iv: String,
}

// Unknown fields are refused: the decryption library picks the KDF from the shape of these
// parameters, so a scrypt object that also carried PBKDF2's fields would run PBKDF2 unchecked.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScryptJson {
    dklen: u64,
    n: u32,
    r: u32,
    p: u32,
    salt: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Pbkdf2Json {
    dklen: u64,
    c: u32,
    prf: String,
    salt: String,
}

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(MAX_KEYSTORE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("not a text file: {e}"))?;
    if text.len() as u64 > MAX_KEYSTORE_BYTES {
        return Err(format!(
            "larger than {MAX_KEYSTORE_BYTES} bytes: not a keystore"
        ));
    }
    Ok(text)
}

/// Hex field `field` of `len` bytes.
fn ensure_hex_len(field: &str, text: &str, len: usize) -> Result<(), String> {
    let bytes =
        sms_core::hex::decode_lenient(text).map_err(|_| format!("{field} must be hexadecimal"))?;
    if bytes.len() != len {
        return Err(format!("{field} must be {len} bytes, got {}", bytes.len()));
    }
    Ok(())
}

/// Checks a keystore V3 document before any key derivation: AES-128-CTR with a 16-byte IV, a
/// 32-byte key and MAC, and a KDF whose cost stays within fixed bounds. Parse only: no
/// password, no derivation.
pub fn check_keystore(text: &str) -> Result<KeystoreKdf, String> {
    let doc: KeystoreJson =
        serde_json::from_str(text).map_err(|e| format!("not a keystore V3 file: {e}"))?;
    if doc.version != 3 {
        return Err(format!("version must be 3, got {}", doc.version));
    }
    let crypto = doc.crypto;
    if crypto.cipher != "aes-128-ctr" {
        return Err(format!(
            "cipher must be aes-128-ctr, got '{}'",
            crypto.cipher.chars().take(32).collect::<String>()
        ));
    }
    ensure_hex_len("crypto.cipherparams.iv", &crypto.cipherparams.iv, 16)?;
    ensure_hex_len("crypto.ciphertext", &crypto.ciphertext, 32)?;
    ensure_hex_len("crypto.mac", &crypto.mac, 32)?;
    let params_err = |e: serde_json::Error| format!("crypto.kdfparams: {e}");
    match crypto.kdf.as_str() {
        "scrypt" => {
            let params: ScryptJson =
                serde_json::from_value(crypto.kdfparams).map_err(params_err)?;
            ensure_dklen(params.dklen)?;
            ensure_salt(&params.salt)?;
            ensure_scrypt_cost(params.n, params.r, params.p)?;
            Ok(KeystoreKdf::Scrypt {
                n: params.n,
                r: params.r,
                p: params.p,
            })
        }
        "pbkdf2" => {
            let params: Pbkdf2Json =
                serde_json::from_value(crypto.kdfparams).map_err(params_err)?;
            ensure_dklen(params.dklen)?;
            ensure_salt(&params.salt)?;
            if params.prf != "hmac-sha256" {
                return Err("crypto.kdfparams.prf must be hmac-sha256".into());
            }
            if params.c == 0 || params.c > MAX_PBKDF2_ROUNDS {
                return Err(format!(
                    "crypto.kdfparams.c must be 1 to {MAX_PBKDF2_ROUNDS}, got {}",
                    params.c
                ));
            }
            Ok(KeystoreKdf::Pbkdf2 { rounds: params.c })
        }
        other => Err(format!(
            "crypto.kdf must be scrypt or pbkdf2, got '{}'",
            other.chars().take(32).collect::<String>()
        )),
    }
}

/// The derived key is split in an AES key (16 bytes) and a MAC key (16 bytes).
fn ensure_dklen(dklen: u64) -> Result<(), String> {
    if dklen != 32 {
        return Err(format!("crypto.kdfparams.dklen must be 32, got {dklen}"));
    }
    Ok(())
}

fn ensure_salt(salt: &str) -> Result<(), String> {
    let bytes = sms_core::hex::decode_lenient(salt)
        .map_err(|_| "crypto.kdfparams.salt must be hexadecimal".to_owned())?;
    if bytes.len() > 1024 {
        return Err("crypto.kdfparams.salt is longer than 1024 bytes".into());
    }
    Ok(())
}

fn ensure_scrypt_cost(n: u32, r: u32, p: u32) -> Result<(), String> {
    if n < 2 || !n.is_power_of_two() {
        return Err(format!(
            "crypto.kdfparams.n must be a power of two from 2, got {n}"
        ));
    }
    if r == 0 || p == 0 {
        return Err("crypto.kdfparams.r and p must be at least 1".into());
    }
    let (n, r, p) = (u64::from(n), u64::from(r), u64::from(p));
    let memory = 128u64.saturating_mul(n).saturating_mul(r);
    if memory > MAX_SCRYPT_MEMORY {
        return Err(format!(
            "crypto.kdfparams: scrypt n = {n}, r = {r} needs {} MiB, more than {} MiB",
            memory >> 20,
            MAX_SCRYPT_MEMORY >> 20
        ));
    }
    if n.saturating_mul(r).saturating_mul(p) > MAX_SCRYPT_WORK {
        return Err(format!(
            "crypto.kdfparams: scrypt n·r·p = {n}·{r}·{p} is over {MAX_SCRYPT_WORK}"
        ));
    }
    Ok(())
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

    /// A keystore written by `save`, with `edit` applied to its JSON.
    fn edited_keystore(edit: impl FnOnce(&mut serde_json::Value)) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        save(&path, &PrivateKeySigner::random(), "pw").unwrap();
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut json);
        std::fs::write(&path, json.to_string()).unwrap();
        (dir, path)
    }

    fn refusal(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let (_dir, path) = edited_keystore(edit);
        match load(&path, "pw") {
            Err(WalletError::Open { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    // Each of these made the keystore library panic (slice out of range) or spend unbounded
    // memory or time before the parameters were checked (found while writing the keystore fuzz
    // target, fuzz/fuzz_targets/keystore.rs).
    #[test]
    fn hostile_keystores_are_refused_before_any_derivation() {
        let reason = refusal(|j| j["crypto"]["kdfparams"]["dklen"] = 16.into());
        assert!(reason.contains("dklen must be 32"), "{reason}");
        let reason = refusal(|j| j["crypto"]["cipherparams"]["iv"] = "00".into());
        assert!(reason.contains("iv must be 16 bytes"), "{reason}");
        let reason = refusal(|j| j["crypto"]["kdfparams"]["n"] = (1u64 << 31).into());
        assert!(reason.contains("MiB"), "{reason}");
        let reason = refusal(|j| j["crypto"]["kdfparams"]["p"] = u32::MAX.into());
        assert!(reason.contains("n·r·p"), "{reason}");
        let reason = refusal(|j| j["crypto"]["kdfparams"]["n"] = 1000.into());
        assert!(reason.contains("power of two"), "{reason}");
        let reason = refusal(|j| {
            j["crypto"]["kdfparams"]["c"] = u32::MAX.into();
            j["crypto"]["kdfparams"]["prf"] = "hmac-sha256".into();
        });
        assert!(reason.contains("kdfparams"), "{reason}");
        let reason = refusal(|j| {
            j["crypto"]["kdf"] = "pbkdf2".into();
            j["crypto"]["kdfparams"] = serde_json::json!({
                "c": u32::MAX, "dklen": 32, "prf": "hmac-sha256", "salt": "00"
            });
        });
        assert!(reason.contains("kdfparams.c must be"), "{reason}");
        let reason = refusal(|j| j["version"] = 4.into());
        assert!(reason.contains("version must be 3"), "{reason}");
    }

    #[test]
    fn keystores_from_the_usual_tools_pass_the_check() {
        let (_dir, path) = edited_keystore(|_| {});
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(matches!(
            check_keystore(&text),
            Ok(KeystoreKdf::Scrypt { r: 8, p: 1, .. })
        ));
        // geth's standard scrypt cost and an iExec SDK (ethers) one.
        for n in [1u64 << 18, 1 << 17] {
            let (_dir, path) = edited_keystore(|j| j["crypto"]["kdfparams"]["n"] = n.into());
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(check_keystore(&text).is_ok(), "n = {n}");
        }
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

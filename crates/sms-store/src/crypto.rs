//! Envelope encryption: a master key (file or environment) wraps data keys stored in the
//! database; data keys seal rows with AES-256-GCM, a fresh 96-bit nonce per value, and the
//! row identity as associated data.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{Backend, Insert, StoreError, WrappedDataKey};

const NONCE_LEN: usize = 12;

/// The 256-bit key that wraps data keys. Never stored in the database.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// Parses standard base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, StoreError> {
        let bytes = Zeroizing::new(
            B64.decode(text.trim())
                .map_err(|e| StoreError::Key(format!("master key is not base64: {e}")))?,
        );
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            StoreError::Key(format!(
                "master key must decode to 32 bytes, got {}",
                bytes.len()
            ))
        })?;
        Ok(Self(Zeroizing::new(key)))
    }

    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(key.as_mut());
        Self(key)
    }

    /// Reads the key file, or creates it (mode 0600, `create_new`) when absent.
    /// Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), StoreError> {
        let io = |what: &str, e: std::io::Error| {
            StoreError::Key(format!(
                "cannot {what} master key file {}: {e}",
                path.display()
            ))
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_permissions(path)?;
                Ok((Self::from_base64(&text)?, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(|e| io("create", e))?;
                let encoded = Zeroizing::new(B64.encode(key.0.as_slice()));
                file.write_all(encoded.as_bytes())
                    .map_err(|e| io("write", e))?;
                file.sync_all().map_err(|e| io("sync", e))?;
                Ok((key, true))
            }
            Err(e) => Err(io("read", e)),
        }
    }

    /// A short public fingerprint, safe to log and store.
    pub fn fingerprint(&self) -> String {
        let digest =
            Sha256::digest([b"sms-master-key-fingerprint".as_slice(), self.0.as_slice()].concat());
        alloy_hex(&digest[..8])
    }

    fn cipher(&self) -> Aes256Gcm {
        // A 32-byte slice is always a valid AES-256 key.
        match Aes256Gcm::new_from_slice(self.0.as_slice()) {
            Ok(c) => c,
            Err(_) => unreachable!("32-byte key"),
        }
    }
}

fn alloy_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| StoreError::Key(format!("cannot stat {}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(StoreError::Key(format!(
            "master key file {} is readable by group or others (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &Path) -> Result<(), StoreError> {
    Ok(())
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    nonce
}

fn nonce_of(bytes: &[u8]) -> Result<Nonce<aes_gcm::aead::consts::U12>, StoreError> {
    let array: [u8; NONCE_LEN] = bytes
        .try_into()
        .map_err(|_| StoreError::Integrity(format!("nonce of {} bytes", bytes.len())))?;
    Ok(Nonce::from(array))
}

/// The unwrapped data keys, by id; new values are sealed with the highest id.
pub struct KeyRing {
    keys: BTreeMap<i64, Aes256Gcm>,
    current: i64,
}

impl KeyRing {
    pub async fn load_or_create(
        backend: &dyn Backend,
        master: MasterKey,
    ) -> Result<Self, StoreError> {
        let fingerprint = master.fingerprint();
        let wrapper = master.cipher();
        let mut stored = backend.data_keys().await?;
        if stored.is_empty() {
            let mut key = Zeroizing::new([0u8; 32]);
            rand::rng().fill_bytes(key.as_mut());
            let nonce = random_nonce();
            let wrapped = wrapper
                .encrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: key.as_slice(),
                        aad: &data_key_aad(1),
                    },
                )
                .map_err(|_| StoreError::Key("cannot wrap the data key".into()))?;
            let row = WrappedDataKey {
                id: 1,
                wrapped,
                nonce: nonce.to_vec(),
                master_fingerprint: fingerprint.clone(),
            };
            // Two replicas starting at once: the loser of the race simply loads the winner's key.
            if backend.insert_data_key(row).await? == Insert::AlreadyExists {
                tracing::info!("another instance created the data key first");
            }
            stored = backend.data_keys().await?;
        }
        let mut keys = BTreeMap::new();
        for row in stored {
            let plain = Zeroizing::new(
                wrapper
                    .decrypt(&nonce_of(&row.nonce)?, Payload { msg: &row.wrapped, aad: &data_key_aad(row.id) })
                    .map_err(|_| {
                        StoreError::Key(format!(
                            "the master key (fingerprint {fingerprint}) cannot unwrap data key {} wrapped by master key {}: \
                             wrong SMS_MASTER_KEY or key file for this database",
                            row.id, row.master_fingerprint
                        ))
                    })?,
            );
            let cipher = Aes256Gcm::new_from_slice(&plain)
                .map_err(|_| StoreError::Key(format!("data key {} has a bad length", row.id)))?;
            keys.insert(row.id, cipher);
        }
        let current = *keys
            .keys()
            .next_back()
            .ok_or_else(|| StoreError::Key("no data key".into()))?;
        Ok(Self { keys, current })
    }

    /// Seals `value` under the current data key; returns (key id, nonce, ciphertext‖tag).
    pub fn seal(&self, aad: &[u8], value: &[u8]) -> Result<(i64, Vec<u8>, Vec<u8>), StoreError> {
        let cipher = self
            .keys
            .get(&self.current)
            .ok_or_else(|| StoreError::Key("current data key missing".into()))?;
        let nonce = random_nonce();
        let ciphertext = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: value, aad })
            .map_err(|_| StoreError::Key("encryption failed".into()))?;
        Ok((self.current, nonce.to_vec(), ciphertext))
    }

    pub fn open(
        &self,
        key_id: i64,
        aad: &[u8],
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<sms_core::secret::SecretValue, StoreError> {
        let cipher = self
            .keys
            .get(&key_id)
            .ok_or_else(|| StoreError::Key(format!("unknown data key {key_id}")))?;
        let plain = cipher
            .decrypt(
                &nonce_of(nonce)?,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| StoreError::Integrity(String::new()))?;
        Ok(sms_core::secret::SecretValue::new(plain))
    }
}

fn data_key_aad(id: i64) -> Vec<u8> {
    format!("sms/data-key/v1/{id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (k1, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (k2, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(k1.fingerprint(), k2.fingerprint());
    }

    #[test]
    fn world_readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create(&path).err().unwrap().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn master_key_must_be_32_bytes() {
        assert!(MasterKey::from_base64("AAAA").is_err());
        assert!(MasterKey::from_base64(&B64.encode([7u8; 32])).is_ok());
    }
}

//! Envelope encryption: a master key (file or environment) wraps data keys stored in the
//! database; data keys seal rows with AES-256-GCM, a fresh 96-bit nonce per value, and the
//! row's identity and version as associated data (docs/keys-and-backups.md).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use sms_core::clock::Clock;

use crate::backend::{
    Backend, Insert, RecordKey, SealedRow, StoreError, WrappedDataKey, clock_secs,
};

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

    /// Reads an existing key file (never creates one).
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            StoreError::Key(format!(
                "cannot read master key file {}: {e}",
                path.display()
            ))
        })?);
        check_permissions(path)?;
        Self::from_base64(&text)
    }

    /// `SMS_MASTER_KEY` when set, else the key file (created when `create` and absent).
    /// Returns the key and whether a file was created.
    pub fn from_env_or_file(path: &Path, create: bool) -> Result<(Self, bool), StoreError> {
        match std::env::var("SMS_MASTER_KEY") {
            Ok(text) => Ok((Self::from_base64(&Zeroizing::new(text))?, false)),
            Err(_) if create => Self::load_or_create(path),
            Err(_) => Ok((Self::load(path)?, false)),
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
    sms_core::hex::encode(bytes)
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

/// How a row was sealed (`records.seal_format`).
pub mod seal_format {
    /// Before migration 0003: the associated data is the identity only. Opened only under a
    /// legacy data key ([`super::wrap_format::LEGACY`]); `sms operator rewrap` re-seals them.
    pub const LEGACY: i64 = 1;
    /// Identity and version as associated data: an older copy of the row does not open.
    pub const VERSIONED: i64 = 2;
}

/// How a data key is wrapped (`data_keys.wrap_format`); authenticated by the unwrap itself.
pub mod wrap_format {
    /// Created before migration 0003: may open [`super::seal_format::LEGACY`] rows.
    pub const LEGACY: i64 = 1;
    /// Opens versioned rows only.
    pub const VERSIONED: i64 = 2;
}

/// Associated data of a row: its identity and its version, each field length-prefixed.
pub fn row_aad(key: &RecordKey, version: i64) -> Vec<u8> {
    let mut aad =
        Vec::with_capacity(16 + key.namespace.len() + key.owner.len() + key.name.len() + 3 * 4 + 8);
    aad.extend_from_slice(b"sms/row/v2");
    for part in [&key.namespace, &key.owner, &key.name] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

fn data_key_aad(id: i64, format: i64) -> Vec<u8> {
    if format == wrap_format::LEGACY {
        format!("sms/data-key/v1/{id}").into_bytes()
    } else {
        format!("sms/data-key/v{format}/{id}").into_bytes()
    }
}

/// When a new data key replaces the current one (`sms server --data-key-max-*`).
#[derive(Clone, Debug)]
pub struct RotationPolicy {
    /// Encryptions under one data key before a new one is created. AES-GCM with random
    /// 96-bit nonces must stay far below 2^32 per key.
    pub max_encryptions: u64,
    /// Age after which a new data key is created (none: no age limit).
    pub max_age: Option<Duration>,
    /// Encryptions reserved in the database per round trip (shared between replicas).
    pub block: u64,
    /// How often a replica looks for a data key created by another one.
    pub refresh: Duration,
}

/// Default [`RotationPolicy::max_encryptions`]: 2^28, a sixteenth of the AES-GCM bound.
pub const DEFAULT_MAX_ENCRYPTIONS: u64 = 1 << 28;

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            max_encryptions: DEFAULT_MAX_ENCRYPTIONS,
            max_age: None,
            block: 1024,
            refresh: Duration::from_secs(5),
        }
    }
}

/// An unwrapped data key.
struct DataKey {
    cipher: Arc<Aes256Gcm>,
    wrap_format: i64,
}

/// Encryptions this process may still do under `key_id` (reserved in the database), and when
/// it next looks for a newer data key.
struct Lease {
    key_id: i64,
    remaining: u64,
    refresh_at: Instant,
}

/// The unwrapped data keys, by id. New values are sealed with the newest key, within a block
/// of encryptions reserved in the database, so the count per key is right across replicas.
pub struct KeyRing {
    master: MasterKey,
    fingerprint: String,
    policy: RotationPolicy,
    /// Data-key creation times and age rotation read it.
    clock: Clock,
    keys: RwLock<BTreeMap<i64, DataKey>>,
    lease: Mutex<Lease>,
    /// One refill (database round trip) at a time; holds the last one's outage, if it met
    /// one, so the callers that waited for it fail with it instead of each trying in turn.
    refill: tokio::sync::Mutex<Option<FailedRefill>>,
}

/// A refill that found the database unavailable.
struct FailedRefill {
    at: Instant,
    reason: String,
}

/// Whether a stored key must be replaced before more encryptions are reserved under it.
fn exhausted(key: &WrappedDataKey, policy: &RotationPolicy, now: i64) -> bool {
    let by_count = key.encryptions.max(0) as u64 + policy.block > policy.max_encryptions;
    let by_age = policy
        .max_age
        .is_some_and(|age| now.saturating_sub(key.created_at) > age.as_secs() as i64);
    by_count || by_age
}

impl KeyRing {
    pub async fn load_or_create(
        backend: &dyn Backend,
        master: MasterKey,
    ) -> Result<Self, StoreError> {
        Self::open(backend, master, RotationPolicy::default(), Clock::system()).await
    }

    /// Unwraps every data key (creating the first one on a new database); fails when the
    /// master key cannot unwrap them.
    pub async fn open(
        backend: &dyn Backend,
        master: MasterKey,
        policy: RotationPolicy,
        clock: Clock,
    ) -> Result<Self, StoreError> {
        let fingerprint = master.fingerprint();
        let ring = Self {
            master,
            fingerprint,
            policy,
            clock,
            keys: RwLock::new(BTreeMap::new()),
            lease: Mutex::new(Lease {
                key_id: 0,
                remaining: 0,
                refresh_at: Instant::now(),
            }),
            refill: tokio::sync::Mutex::new(None),
        };
        let mut stored = backend.data_keys().await?;
        if stored.is_empty() {
            // Two replicas starting at once: the loser of the race loads the winner's key.
            if ring.create_key(backend, 1).await? == Insert::AlreadyExists {
                tracing::info!("another instance created the data key first");
            }
            stored = backend.data_keys().await?;
        }
        for row in &stored {
            ring.unwrap_into_ring(row)?;
        }
        if ring.newest().is_none() {
            return Err(StoreError::Key("no data key".into()));
        }
        Ok(ring)
    }

    pub fn master_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn policy(&self) -> &RotationPolicy {
        &self.policy
    }

    fn newest(&self) -> Option<i64> {
        self.keys.read().ok()?.keys().next_back().copied()
    }

    /// The id new values are sealed with now.
    pub fn current(&self) -> Option<i64> {
        let lease = self.lease.lock().ok()?.key_id;
        if lease > 0 {
            Some(lease)
        } else {
            self.newest()
        }
    }

    fn unwrap_into_ring(&self, row: &WrappedDataKey) -> Result<(), StoreError> {
        let plain = unwrap_data_key(&self.master, row).map_err(|_| {
            StoreError::Key(format!(
                "the master key (fingerprint {}) cannot unwrap data key {} wrapped by master key {}: \
                 wrong SMS_MASTER_KEY or key file for this database",
                self.fingerprint, row.id, row.master_fingerprint
            ))
        })?;
        let cipher = Aes256Gcm::new_from_slice(plain.as_slice())
            .map_err(|_| StoreError::Key(format!("data key {} has a bad length", row.id)))?;
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(
                row.id,
                DataKey {
                    cipher: Arc::new(cipher),
                    wrap_format: row.wrap_format,
                },
            );
        }
        Ok(())
    }

    /// Creates data key `id` wrapped by this master key; `AlreadyExists` when the id is taken
    /// or a key wrapped by another master key exists (rotated elsewhere: restart needed).
    async fn create_key(&self, backend: &dyn Backend, id: i64) -> Result<Insert, StoreError> {
        let key = Zeroizing::new(random_key());
        let wrapped = wrap_data_key(&self.master, id, wrap_format::VERSIONED, key.as_slice())?;
        let row = WrappedDataKey {
            id,
            wrapped: wrapped.1,
            nonce: wrapped.0,
            master_fingerprint: self.fingerprint.clone(),
            created_at: clock_secs(&self.clock),
            encryptions: 0,
            wrap_format: wrap_format::VERSIONED,
        };
        backend.insert_data_key(row).await
    }

    /// Reads the stored keys and unwraps those this process does not hold yet. A key wrapped
    /// by another master key (rotated by another process) is skipped with a warning.
    async fn refresh(&self, backend: &dyn Backend) -> Result<Vec<WrappedDataKey>, StoreError> {
        let stored = backend.data_keys().await?;
        for row in &stored {
            let known = self
                .keys
                .read()
                .map(|k| k.contains_key(&row.id))
                .unwrap_or(false);
            if !known && let Err(e) = self.unwrap_into_ring(row) {
                tracing::warn!(data_key = row.id, error = %e, "data key not usable by this process");
            }
        }
        Ok(stored)
    }

    /// Takes one encryption under the current key: the key id and its cipher.
    ///
    /// During a database outage the callers waiting for a refill do not queue one bounded
    /// round trip each (the last would wait for all of them): a refill that failed after a
    /// caller began waiting fails that caller too, at once.
    async fn slot(&self, backend: &dyn Backend) -> Result<(i64, Arc<Aes256Gcm>), StoreError> {
        let waiting_since = Instant::now();
        loop {
            if let Some(slot) = self.try_slot() {
                return Ok(slot);
            }
            let mut last = self.refill.lock().await;
            if let Some(slot) = self.try_slot() {
                return Ok(slot);
            }
            if let Some(failed) = last.as_ref()
                && failed.at >= waiting_since
            {
                return Err(StoreError::Unavailable(failed.reason.clone()));
            }
            match self.renew(backend, false).await {
                Ok(_) => *last = None,
                Err(e) => {
                    if let StoreError::Unavailable(reason) = &e {
                        *last = Some(FailedRefill {
                            at: Instant::now(),
                            reason: reason.clone(),
                        });
                    }
                    return Err(e);
                }
            }
        }
    }

    fn try_slot(&self) -> Option<(i64, Arc<Aes256Gcm>)> {
        let mut lease = self.lease.lock().ok()?;
        if lease.remaining == 0 || Instant::now() >= lease.refresh_at {
            return None;
        }
        let cipher = self.keys.read().ok()?.get(&lease.key_id)?.cipher.clone();
        lease.remaining -= 1;
        Some((lease.key_id, cipher))
    }

    /// Looks for a newer key, creates one when the current is spent (or `force`), and
    /// reserves a block of encryptions when the lease has none left. Returns the current id.
    async fn renew(&self, backend: &dyn Backend, force: bool) -> Result<i64, StoreError> {
        let mut stored = self.refresh(backend).await?;
        let usable = |stored: &[WrappedDataKey]| -> Option<WrappedDataKey> {
            let keys = self.keys.read().ok()?;
            stored
                .iter()
                .rev()
                .find(|k| keys.contains_key(&k.id))
                .cloned()
        };
        let mut current =
            usable(&stored).ok_or_else(|| StoreError::Key("no usable data key".into()))?;
        let now = clock_secs(&self.clock);
        if force || exhausted(&current, &self.policy, now) {
            let next = stored.iter().map(|k| k.id).max().unwrap_or(0) + 1;
            match self.create_key(backend, next).await? {
                Insert::Inserted => {
                    tracing::info!(
                        data_key = next,
                        previous = current.id,
                        forced = force,
                        "new data key"
                    );
                    metrics::counter!("sms_store_data_key_rotations_total").increment(1);
                }
                Insert::AlreadyExists => {
                    tracing::info!(
                        data_key = next,
                        "another instance created the next data key"
                    );
                }
            }
            stored = self.refresh(backend).await?;
            let newest =
                usable(&stored).ok_or_else(|| StoreError::Key("no usable data key".into()))?;
            if newest.id == current.id {
                // A key this process cannot unwrap was created, or it could not create one.
                tracing::error!(
                    data_key = current.id,
                    "cannot move to a new data key: the master key was rotated by another process; restart with the new master key"
                );
                if force {
                    return Err(StoreError::Key(format!(
                        "cannot create a data key: keys wrapped by another master key exist (this process has {})",
                        self.fingerprint
                    )));
                }
            }
            current = newest;
        }
        let (switch, remaining) = {
            let lease = self
                .lease
                .lock()
                .map_err(|_| StoreError::Key("key lease poisoned".into()))?;
            (lease.key_id != current.id, lease.remaining)
        };
        let remaining = if switch || remaining == 0 {
            backend
                .reserve_encryptions(current.id, self.policy.block)
                .await?;
            self.policy.block
        } else {
            remaining
        };
        let mut lease = self
            .lease
            .lock()
            .map_err(|_| StoreError::Key("key lease poisoned".into()))?;
        *lease = Lease {
            key_id: current.id,
            remaining,
            refresh_at: Instant::now() + self.policy.refresh,
        };
        Ok(current.id)
    }

    /// Creates a new data key now and seals new values with it; its id.
    pub async fn rotate(&self, backend: &dyn Backend) -> Result<i64, StoreError> {
        let _one = self.refill.lock().await;
        self.renew(backend, true).await
    }

    /// Looks for keys created by another process now (after a rotation elsewhere).
    pub async fn reload(&self, backend: &dyn Backend) -> Result<(), StoreError> {
        let _one = self.refill.lock().await;
        self.renew(backend, false).await.map(|_| ())
    }

    pub fn knows(&self, key_id: i64) -> bool {
        self.keys
            .read()
            .map(|k| k.contains_key(&key_id))
            .unwrap_or(false)
    }

    /// Seals `value` as row `key` at `version` under the current data key; returns
    /// (key id, nonce, ciphertext‖tag).
    pub async fn seal(
        &self,
        backend: &dyn Backend,
        key: &RecordKey,
        version: i64,
        value: &[u8],
    ) -> Result<(i64, Vec<u8>, Vec<u8>), StoreError> {
        let (key_id, cipher) = self.slot(backend).await?;
        let nonce = random_nonce();
        let aad = row_aad(key, version);
        let ciphertext = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: value,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Key("encryption failed".into()))?;
        Ok((key_id, nonce.to_vec(), ciphertext))
    }

    /// Opens a row; `Integrity` (without detail) when the ciphertext does not belong to this
    /// identity at this version under this key.
    pub fn open_row(&self, row: &SealedRow) -> Result<sms_core::secret::SecretValue, StoreError> {
        let (cipher, key_format) = {
            let keys = self
                .keys
                .read()
                .map_err(|_| StoreError::Key("key ring poisoned".into()))?;
            let key = keys
                .get(&row.key_id)
                .ok_or_else(|| StoreError::Key(format!("unknown data key {}", row.key_id)))?;
            (key.cipher.clone(), key.wrap_format)
        };
        let aad = match row.seal_format {
            seal_format::VERSIONED => row_aad(&row.key, row.version),
            // Rows sealed before versions were bound, under a key of that time only.
            seal_format::LEGACY if key_format == wrap_format::LEGACY => row.key.binding(),
            _ => return Err(StoreError::Integrity(String::new())),
        };
        let plain = cipher
            .decrypt(
                &nonce_of(&row.nonce)?,
                Payload {
                    msg: &row.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Integrity(String::new()))?;
        Ok(sms_core::secret::SecretValue::new(plain))
    }
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    key
}

/// (nonce, wrapped key) of a data key under `master`.
fn wrap_data_key(
    master: &MasterKey,
    id: i64,
    format: i64,
    key: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    let nonce = random_nonce();
    let wrapped = master
        .cipher()
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: key,
                aad: &data_key_aad(id, format),
            },
        )
        .map_err(|_| StoreError::Key("cannot wrap the data key".into()))?;
    Ok((nonce.to_vec(), wrapped))
}

fn unwrap_data_key(
    master: &MasterKey,
    row: &WrappedDataKey,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    master
        .cipher()
        .decrypt(
            &nonce_of(&row.nonce)?,
            Payload {
                msg: &row.wrapped,
                aad: &data_key_aad(row.id, row.wrap_format),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| StoreError::Key(format!("cannot unwrap data key {}", row.id)))
}

/// What [`rotate_master_key`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterKeyRotation {
    pub data_keys: usize,
    pub old_fingerprint: String,
    pub new_fingerprint: String,
}

/// Re-wraps every data key under `new`, in one transaction: afterwards `old` is not needed.
/// Fails without changing anything when `old` cannot unwrap a key, or when the keys change
/// meanwhile. Running again after success is a no-op.
pub async fn rotate_master_key(
    backend: &dyn Backend,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<MasterKeyRotation, StoreError> {
    let (old_fp, new_fp) = (old.fingerprint(), new.fingerprint());
    if old_fp == new_fp {
        return Err(StoreError::Key(
            "the new master key is the current one".into(),
        ));
    }
    let stored = backend.data_keys().await?;
    let mut rewrapped = Vec::new();
    for row in &stored {
        if row.master_fingerprint == new_fp && unwrap_data_key(new, row).is_ok() {
            continue;
        }
        let plain = unwrap_data_key(old, row).map_err(|_| {
            StoreError::Key(format!(
                "the current master key (fingerprint {old_fp}) cannot unwrap data key {} (wrapped by {}): \
                 give the master key this database uses",
                row.id, row.master_fingerprint
            ))
        })?;
        let (nonce, wrapped) = wrap_data_key(new, row.id, row.wrap_format, plain.as_slice())?;
        rewrapped.push(WrappedDataKey {
            wrapped,
            nonce,
            master_fingerprint: new_fp.clone(),
            ..row.clone()
        });
    }
    let count = rewrapped.len();
    if count > 0
        && !backend
            .rewrap_data_keys(rewrapped, &old_fp, &new_fp)
            .await?
    {
        return Err(StoreError::Key(
            "the data keys changed during the rotation (another process created one): nothing was changed, run it again".into(),
        ));
    }
    Ok(MasterKeyRotation {
        data_keys: count,
        old_fingerprint: old_fp,
        new_fingerprint: new_fp,
    })
}

/// Entry points for the fuzz targets (`fuzz/`): a key ring built without a database, so that
/// `open_row` and the data-key unwrap run on hostile rows at fuzzing speed. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// A ring over `master` holding the data keys `(id, wrap format, key)`, each wrapped and
    /// unwrapped as start-up does.
    pub fn ring(master: MasterKey, keys: &[(i64, i64, [u8; 32])]) -> Result<KeyRing, StoreError> {
        let ring = KeyRing {
            fingerprint: master.fingerprint(),
            master,
            policy: RotationPolicy::default(),
            clock: Clock::system(),
            keys: RwLock::new(BTreeMap::new()),
            lease: Mutex::new(Lease {
                key_id: 0,
                remaining: 0,
                refresh_at: Instant::now(),
            }),
            refill: tokio::sync::Mutex::new(None),
        };
        for &(id, format, key) in keys {
            let (nonce, wrapped) = wrap_data_key(&ring.master, id, format, &key)?;
            ring.unwrap_into_ring(&WrappedDataKey {
                id,
                wrapped,
                nonce,
                master_fingerprint: ring.fingerprint.clone(),
                created_at: 0,
                encryptions: 0,
                wrap_format: format,
            })?;
        }
        Ok(ring)
    }

    /// Unwraps a stored data-key row into `ring`, as start-up does.
    pub fn unwrap_row(ring: &KeyRing, row: &WrappedDataKey) -> Result<(), StoreError> {
        ring.unwrap_into_ring(row)
    }

    /// Seals `value` as `key` at `version` under data key `key_id` of `ring` with `nonce`
    /// (the store itself always draws a random nonce).
    pub fn seal(
        ring: &KeyRing,
        key_id: i64,
        key: &RecordKey,
        version: i64,
        nonce: [u8; NONCE_LEN],
        value: &[u8],
    ) -> Result<SealedRow, StoreError> {
        let cipher = ring
            .keys
            .read()
            .map_err(|_| StoreError::Key("key ring poisoned".into()))?
            .get(&key_id)
            .map(|k| k.cipher.clone())
            .ok_or_else(|| StoreError::Key(format!("unknown data key {key_id}")))?;
        let aad = row_aad(key, version);
        let ciphertext = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: value,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Key("encryption failed".into()))?;
        Ok(SealedRow {
            key: key.clone(),
            key_id,
            nonce: nonce.to_vec(),
            ciphertext,
            version,
            expires_at: None,
            seal_format: seal_format::VERSIONED,
        })
    }
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

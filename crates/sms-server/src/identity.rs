//! The SMS identity key (docs/provisioning.md, "SMS identity"): created by the first server
//! that starts on a store, kept sealed in that store like any secret, so every replica on one
//! PostgreSQL database signs with the same key.
//!
//! Record: `RecordKey("sms-identity", "", "current")`, JSON `{keyId, algorithm, seed,
//! createdAt}`. Insert-once: replicas starting together agree on one key. Rotation (planned):
//! a new record becomes `current` by check-and-set and the old one moves to
//! `retired/<keyId>`; enclaves pin by key id, so both are named in the docs' procedure.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sms_attest::{IDENTITY_ALGORITHM, SmsIdentity};
use sms_core::secret::SecretValue;
use sms_store::{Insert, Namespace, Records, Store, StoreError};
use zeroize::Zeroizing;

const CURRENT: &str = "current";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredIdentity {
    key_id: String,
    algorithm: String,
    /// The 32-byte Ed25519 seed, standard base64.
    seed: String,
    created_at: u64,
}

impl Drop for StoredIdentity {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.seed);
    }
}

/// The identity's rows: one, `("", "current")`.
fn records(store: &Store) -> Records<'_> {
    store.records(Namespace::SmsIdentity)
}

fn corrupt(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Key(format!("the stored SMS identity is not usable: {detail}"))
}

fn decode(value: &SecretValue) -> Result<SmsIdentity, StoreError> {
    let stored: StoredIdentity = serde_json::from_slice(value.as_bytes()).map_err(corrupt)?;
    if stored.algorithm != IDENTITY_ALGORITHM {
        return Err(corrupt(format!("algorithm '{}'", stored.algorithm)));
    }
    let seed = Zeroizing::new(STANDARD.decode(&stored.seed).map_err(corrupt)?);
    let identity = SmsIdentity::from_seed(&seed).map_err(corrupt)?;
    if identity.public_key().key_id() != stored.key_id {
        return Err(corrupt("its key id does not match its key"));
    }
    Ok(identity)
}

/// The store's identity, if one was created.
pub async fn load(store: &Store) -> Result<Option<SmsIdentity>, StoreError> {
    match records(store).get("", CURRENT).await? {
        Some(found) => decode(&found.value).map(Some),
        None => Ok(None),
    }
}

/// The identity line of the start-up report: what enclaves pin.
pub fn pin_line(doc: &sms_attest::IdentityDocument) -> String {
    format!(
        "  identity:       {} key {} (pin with --sms-public-key {})",
        doc.algorithm, doc.key_id, doc.public_key
    )
}

pub async fn load_or_create(store: &Store) -> Result<(SmsIdentity, bool), StoreError> {
    if let Some(identity) = load(store).await? {
        return Ok((identity, false));
    }
    let fresh = SmsIdentity::generate().map_err(corrupt)?;
    let record = StoredIdentity {
        key_id: fresh.public_key().key_id(),
        algorithm: IDENTITY_ALGORITHM.to_owned(),
        seed: STANDARD.encode(fresh.seed()),
        created_at: store.clock().now(),
    };
    let json = Zeroizing::new(serde_json::to_vec(&record).map_err(corrupt)?);
    match records(store)
        .insert("", CURRENT, &SecretValue::new(json.to_vec()), None)
        .await?
    {
        Insert::Inserted => Ok((fresh, true)),
        Insert::AlreadyExists => load(store)
            .await?
            .map(|identity| (identity, false))
            .ok_or_else(|| corrupt("it vanished right after another replica created it")),
    }
}

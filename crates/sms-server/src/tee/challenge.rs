//! Enclave challenges: one secp256k1 key per task, created once and kept sealed in the store
//! under `RecordKey("tee-challenge", "", <taskId>)` until the task's final deadline.
//!
//! Uniqueness comes from the store's primary key: concurrent first calls each generate a key
//! and try to insert it; one insert wins, the others re-read the winner.

use std::time::Duration;

use sms_core::clock::Clock;
use sms_core::secret::SecretValue;
use sms_core::{Address, B256};
use sms_store::{Insert, Namespace, Records, Store, StoreError};
use zeroize::Zeroizing;

/// Expiry used when the ledger gives no final deadline (upstream's retention, 5 days).
pub const MISSING_DEADLINE_RETENTION_SECS: u64 = 5 * 86_400;

/// The challenges' rows: `("", <taskId>)`.
fn records(store: &Store) -> Records<'_> {
    store.records(Namespace::TeeChallenge)
}

fn name_of(task_id: &B256) -> String {
    sms_core::hex::encode_prefixed(task_id)
}

/// The record of a task's challenge.
pub fn key(task_id: &B256) -> sms_store::RecordKey {
    Namespace::TeeChallenge.key("", name_of(task_id))
}

/// The 32 bytes of a stored key (hex text, `0x` optional), `None` if it is not a secp256k1 key.
pub fn key_of(value: &SecretValue) -> Option<Zeroizing<[u8; 32]>> {
    let text = std::str::from_utf8(value.as_bytes()).ok()?;
    let raw = sms_core::hex::decode_key32(text)?;
    sms_core::signature::is_private_key(&raw).then_some(raw)
}

/// The address of a stored key, `None` if unusable (derived with libsecp256k1).
pub fn address_of(value: &SecretValue) -> Option<Address> {
    sms_core::signature::address_of_key(&*key_of(value)?)
}

/// A new random challenge key (the thread's CSPRNG, seeded by the OS) and its address.
fn new_key() -> (Zeroizing<[u8; 32]>, Address) {
    loop {
        let raw = Zeroizing::new(rand::random::<[u8; 32]>());
        // Not a key: a chance of about 2^-128.
        if let Some(address) = sms_core::signature::address_of_key(&raw) {
            return (raw, address);
        }
    }
}

/// The issued challenge of a task: its stored key (possibly unusable), if any.
pub async fn get(store: &Store, task_id: &B256) -> Result<Option<SecretValue>, StoreError> {
    Ok(records(store)
        .get("", &name_of(task_id))
        .await?
        .map(|v| v.value))
}

#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored enclave challenge of the task is not a usable key")]
    Corrupt,
}

/// Gets or creates the challenge of a task; its address. A new challenge commits with the
/// audit entry `issued` builds from its address, or is not created.
pub async fn get_or_create(
    store: &Store,
    task_id: &B256,
    expires_at: u64,
    issued: impl Fn(Address) -> sms_core::audit::AuditEvent,
) -> Result<Address, ChallengeError> {
    // Insert first: a task's challenge is nearly always asked for once, and a second ask
    // finds the existing key as a lost race would.
    let (records, name) = (records(store), name_of(task_id));
    let (raw, address) = new_key();
    let hex = Zeroizing::new(sms_core::hex::encode_prefixed(raw.as_slice()));
    let value = SecretValue::new(hex.as_bytes().to_vec());
    let expires = i64::try_from(expires_at).unwrap_or(i64::MAX);
    // The new challenge commits with its audit entry, or not at all.
    let event = issued(address);
    let event = |_| event.clone();
    match records
        .audited(&event)
        .insert("", &name, &value, Some(expires))
        .await?
    {
        Insert::Inserted => {
            metrics::counter!("sms_tee_challenges_created_total").increment(1);
            Ok(address)
        }
        Insert::AlreadyExists => {
            // Asked before, or lost the race: the stored key is the task's challenge.
            let winner = records
                .get("", &name)
                .await?
                .ok_or(ChallengeError::Corrupt)?;
            address_of(&winner.value).ok_or(ChallengeError::Corrupt)
        }
    }
}

/// Deletes expired challenges and sessions once; returns how many rows went.
pub async fn sweep_once(store: &Store, now: u64) -> Result<u64, StoreError> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let mut deleted = 0;
    for namespace in [
        Namespace::TeeChallenge,
        Namespace::TeeSession,
        Namespace::TeeTaskSession,
    ] {
        deleted += store.records(namespace).delete_expired(now).await?;
    }
    Ok(deleted)
}

/// Runs [`sweep_once`] every `interval` (first run after one interval).
pub fn spawn_sweeper(store: Store, interval: Duration, clock: Clock) -> tokio::task::AbortHandle {
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match sweep_once(&store, clock.now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    deleted = n,
                    "expired enclave challenges and sessions deleted"
                ),
                Err(e) => tracing::warn!(error = %e, "challenge sweep failed"),
            }
        }
    });
    task.abort_handle()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signer_round_trip() {
        let s = alloy_signer_local::PrivateKeySigner::random();
        let v = SecretValue::new(sms_core::hex::encode_prefixed(s.to_bytes()).into_bytes());
        assert_eq!(address_of(&v), Some(s.address()));
        assert!(address_of(&SecretValue::new(Vec::new())).is_none());
        assert!(address_of(&SecretValue::new(b"0x1234".to_vec())).is_none());
        let zero = SecretValue::new(sms_core::hex::encode_prefixed([0u8; 32]).into_bytes());
        assert!(key_of(&zero).is_none() && address_of(&zero).is_none());
    }

    /// New keys are keys, each with the address alloy/k256 derives for it.
    #[test]
    fn new_keys_have_their_k256_address() {
        for _ in 0..20 {
            let (raw, address) = new_key();
            let k256 = alloy_signer_local::PrivateKeySigner::from_slice(raw.as_slice()).unwrap();
            assert_eq!(address, k256.address());
        }
    }
}

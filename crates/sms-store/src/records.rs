//! A store handle bound to one [`Namespace`]. The subsystem that owns a record kind takes its
//! handle once (`store.records(Namespace::TeeChallenge)`) and names its rows by owner and name
//! only: no call site spells a namespace, and a handle cannot reach another kind's rows.

use sms_core::secret::SecretValue;

use crate::{AuditFn, Insert, Namespace, RecordKey, Store, StoreError, Versioned};

/// The rows of one namespace ([`Store::records`]).
#[derive(Clone, Copy)]
pub struct Records<'a> {
    store: &'a Store,
    namespace: Namespace,
}

impl Store {
    /// This store, bound to `namespace`.
    pub fn records(&self, namespace: Namespace) -> Records<'_> {
        Records {
            store: self,
            namespace,
        }
    }
}

impl<'a> Records<'a> {
    /// The key of `(owner, name)` in this handle's namespace.
    pub fn key(&self, owner: &str, name: &str) -> RecordKey {
        self.namespace.key(owner, name)
    }

    /// [`Store::get`].
    pub async fn get(&self, owner: &str, name: &str) -> Result<Option<Versioned>, StoreError> {
        self.store.get(&self.key(owner, name)).await
    }

    /// [`Store::insert`].
    pub async fn insert(
        &self,
        owner: &str,
        name: &str,
        value: &SecretValue,
        expires_at: Option<i64>,
    ) -> Result<Insert, StoreError> {
        self.store
            .insert(&self.key(owner, name), value, expires_at)
            .await
    }

    /// [`Store::take`].
    pub async fn take(&self, owner: &str, name: &str) -> Result<Option<Versioned>, StoreError> {
        self.store.take(&self.key(owner, name)).await
    }

    /// [`Store::delete`].
    pub async fn delete(&self, owner: &str, name: &str) -> Result<bool, StoreError> {
        self.store.delete(&self.key(owner, name)).await
    }

    /// [`Store::delete_expired`] of this namespace, at `now` (Unix seconds).
    pub async fn delete_expired(&self, now: i64) -> Result<u64, StoreError> {
        self.store
            .delete_expired(self.namespace.as_str(), now)
            .await
    }

    /// [`Store::audited`], bound to this namespace.
    pub fn audited(&self, event: AuditFn<'a>) -> AuditedRecords<'a> {
        AuditedRecords {
            records: *self,
            event,
        }
    }
}

/// Audited writes of one namespace ([`Records::audited`]).
pub struct AuditedRecords<'a> {
    records: Records<'a>,
    event: AuditFn<'a>,
}

impl AuditedRecords<'_> {
    /// [`crate::Audited::insert`].
    pub async fn insert(
        &self,
        owner: &str,
        name: &str,
        value: &SecretValue,
        expires_at: Option<i64>,
    ) -> Result<Insert, StoreError> {
        let key = self.records.key(owner, name);
        self.records
            .store
            .audited(self.event)
            .insert(&key, value, expires_at)
            .await
    }

    /// [`crate::Audited::compare_and_set`].
    pub async fn compare_and_set(
        &self,
        owner: &str,
        name: &str,
        value: &SecretValue,
        expected_version: i64,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let key = self.records.key(owner, name);
        self.records
            .store
            .audited(self.event)
            .compare_and_set(&key, value, expected_version, expires_at)
            .await
    }
}

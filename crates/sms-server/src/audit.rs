//! The audit log's server side (docs/audit.md): recording events in the store, signing tree
//! heads with the SMS identity in the background, and the owner receipts. The encoding,
//! hashing and proofs are `sms_core::audit`; the wire types `sms_client::audit`.

use std::sync::Arc;
use std::time::Duration;

use sms_attest::SmsIdentity;
use sms_client::audit::{WireEntry, WireHead};
use sms_core::audit::{AuditEvent, Frontier, GENESIS, Hash, TreeHead};
use sms_store::{Store, StoreError, StoredTreeHead};

/// Default `--audit-head-interval-ms`.
pub const DEFAULT_HEAD_INTERVAL_MS: u64 = 10_000;
/// Entries read per page by the head signer and the receipts.
pub const PAGE: u32 = 1000;

/// Appends `event` and waits for it; a failure is logged (and counted by the store) and
/// returned: the caller decides whether its action may stand without its entry (a release
/// may not).
pub async fn record(store: &Store, event: &AuditEvent) -> Result<u64, StoreError> {
    store.audit_append(event).await.inspect_err(|e| {
        tracing::error!(error = %e, event = event.kind(), "audit log append failed");
    })
}

/// Queues `event` for an outcome that writes nothing else (a refused release): its answer
/// does not wait on the log; a failed append is logged and counted
/// (`sms_audit_write_failures_total`). Actions that write commit their entry with the write
/// ([`sms_store::Store::audited`]).
pub async fn record_after(store: &Store, event: &AuditEvent) {
    store.audit_append_detached(event);
}

/// The head signer of one replica: reads each new entry once, checks it links to the one
/// before, and signs the root of the log when it grew. Replicas sign the same sizes with the
/// same key; a size already signed is kept as first stored.
pub struct HeadSigner {
    store: Store,
    identity: SmsIdentity,
    state: tokio::sync::Mutex<SignerState>,
}

struct SignerState {
    frontier: Frontier,
    last_hash: Hash,
    /// The chain failed its check at this index: nothing more is signed (an operator looks).
    broken: Option<u64>,
}

impl HeadSigner {
    pub fn new(store: Store, identity: SmsIdentity) -> Self {
        Self {
            store,
            identity,
            state: tokio::sync::Mutex::new(SignerState {
                frontier: Frontier::default(),
                last_hash: GENESIS,
                broken: None,
            }),
        }
    }

    /// Runs [`Self::sign_once`] every `interval` until aborted.
    pub fn spawn(self: Arc<Self>, interval: Duration) -> tokio::task::AbortHandle {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(e) = self.sign_once().await {
                    tracing::warn!(error = %e, "audit tree head not signed this time");
                }
            }
        })
        .abort_handle()
    }

    /// Reads the entries appended since the last call and, if there are any, stores a signed
    /// head over the whole log; the head stored, if any.
    pub async fn sign_once(&self) -> Result<Option<StoredTreeHead>, StoreError> {
        let mut state = self.state.lock().await;
        let size = self.store.audit_size().await?;
        self.publish_lag(size).await;
        if state.broken.is_some() || size <= state.frontier.size() {
            return Ok(None);
        }
        while state.frontier.size() < size {
            let page = self
                .store
                .audit_entries(state.frontier.size(), PAGE)
                .await?;
            if page.is_empty() {
                break;
            }
            for stored in page {
                let expected = state.frontier.size();
                let entry = &stored.entry;
                let hash = entry.hash();
                if entry.index != expected || entry.prev != state.last_hash || hash != stored.hash {
                    tracing::error!(
                        index = expected,
                        "the audit log fails its check (an entry was edited, removed or reordered): \
                         no more tree heads are signed; run `sms audit verify`"
                    );
                    metrics::counter!("sms_audit_verification_failures_total").increment(1);
                    state.broken = Some(expected);
                    return Ok(None);
                }
                state.frontier.push(hash);
                state.last_hash = hash;
                if state.frontier.size() >= size {
                    break;
                }
            }
        }
        let head = TreeHead {
            size: state.frontier.size(),
            root: state.frontier.root(),
            at: self.store.clock().now(),
        };
        let signature = self.identity.sign(&head.signing_payload());
        let stored = StoredTreeHead {
            head,
            signature: serde_json::to_string(&signature)
                .map_err(|e| StoreError::Key(format!("head signature encoding: {e}")))?,
        };
        self.store.insert_audit_head(stored.clone()).await?;
        metrics::gauge!("sms_audit_head_lag_seconds").set(0.0);
        metrics::gauge!("sms_audit_signed_size").set(head.size as f64);
        tracing::debug!(size = head.size, "audit tree head signed");
        Ok(Some(stored))
    }

    /// Seconds since the latest head while entries wait for one (0 when none waits).
    async fn publish_lag(&self, size: u64) {
        let lag = match self.store.latest_audit_head().await {
            Ok(Some(latest)) if latest.head.size >= size => 0,
            Ok(Some(latest)) => self.store.clock().now().saturating_sub(latest.head.at),
            Ok(None) if size == 0 => 0,
            // No head yet: the lag counts from the first entry's time.
            Ok(None) => match self.store.audit_entries(0, 1).await {
                Ok(first) => first
                    .first()
                    .map_or(0, |e| self.store.clock().now().saturating_sub(e.entry.at)),
                Err(_) => return,
            },
            Err(_) => return,
        };
        metrics::gauge!("sms_audit_head_lag_seconds").set(lag as f64);
    }
}

/// An entry as served.
pub fn wire_entry(stored: &sms_store::StoredAuditEntry) -> WireEntry {
    WireEntry::from_parts(&stored.entry, &stored.hash)
}

/// A head as served; `None` when its stored signature is not decodable (logged).
pub fn wire_head(stored: &StoredTreeHead) -> Option<WireHead> {
    match serde_json::from_str(&stored.signature) {
        Ok(signature) => Some(WireHead::from_parts(&stored.head, signature)),
        Err(e) => {
            tracing::error!(size = stored.head.size, error = %e, "stored audit head has an undecodable signature");
            metrics::counter!("sms_audit_verification_failures_total").increment(1);
            None
        }
    }
}

//! `/audit/*` (docs/audit.md): the log's entries and signed heads, public and paged, and the
//! receipts of one owner, answered only to that owner's fresh signature.
//!
//! Public, because an entry holds no value and no hash of one, only identities that are on
//! chain (tasks, deals, apps, datasets, workers) or already answerable by anyone (whether a
//! named secret exists: `GET /secrets/web2` is unauthenticated), and because a log only
//! deters tampering when people other than the operator can read and check it.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use sms_client::audit::{EntriesPage, HeadsPage, MAX_PAGE, Receipt, ReceiptsAnswer};
use sms_core::Address;
use sms_core::audit::{
    AuditEvent, OwnedAssets, hash_hex, inclusion_proof, receipts_digest, receipts_for,
    receipts_timestamp_fresh, referenced_assets,
};
use sms_core::secret::parse_address;
use sms_core::signature::EthSignature;

use super::{Body, Feature, Operation, Route, Verb, route};
use crate::audit::{PAGE, wire_entry, wire_head};
use crate::error::ApiError;
use crate::state::AppState;

/// Most distinct apps and datasets whose owner one receipts request asks the chain.
pub const MAX_ASSET_LOOKUPS: usize = 512;

fn number(query: &HashMap<String, String>, name: &str, default: u64) -> Result<u64, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{name}: expected a whole number"))),
    }
}

fn page_limit(query: &HashMap<String, String>) -> Result<u32, ApiError> {
    let limit = number(query, "limit", u64::from(MAX_PAGE))?;
    u32::try_from(limit)
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| ApiError::bad_request(format!("limit: expected 1 to {MAX_PAGE}")))
}

/// `GET /audit/entries?from=&limit=`.
pub async fn entries(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<EntriesPage>, ApiError> {
    let from = number(&query, "from", 0)?;
    let limit = page_limit(&query)?;
    let size = state.store.audit_size().await?;
    let entries = state.store.audit_entries(from, limit).await?;
    Ok(Json(EntriesPage {
        size,
        entries: entries.iter().map(wire_entry).collect(),
    }))
}

/// `GET /audit/heads?from=&limit=` (from a size).
pub async fn heads(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<HeadsPage>, ApiError> {
    let from = number(&query, "from", 0)?;
    let limit = page_limit(&query)?;
    let heads = state.store.audit_heads(from, limit).await?;
    Ok(Json(HeadsPage {
        heads: heads.iter().filter_map(wire_head).collect(),
    }))
}

/// Step 1 of a receipts request: the owner signed the challenge for this SMS instance within
/// the last 5 minutes (30 s of clock skew allowed); the owner it names.
fn ensure_owner_signed(
    state: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Address, ApiError> {
    let owner = parse_address(
        query
            .get("owner")
            .ok_or_else(|| ApiError::bad_request("missing query parameter 'owner'"))?,
    )
    .map_err(|e| ApiError::bad_request(format!("owner: {e}")))?;
    let timestamp = query
        .get("timestamp")
        .ok_or_else(|| ApiError::bad_request("missing query parameter 'timestamp'"))?
        .parse::<u64>()
        .map_err(|_| ApiError::bad_request("timestamp: expected unix seconds"))?;
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::unauthorized("missing Authorization header (the owner's EIP-191 signature)")
        })?;
    let signature =
        EthSignature::parse(header).map_err(|e| ApiError::unauthorized(e.to_string()))?;
    let now = state.clock.now();
    if !receipts_timestamp_fresh(timestamp, now) {
        return Err(ApiError::unauthorized(format!(
            "timestamp {timestamp} is not within {} s before now ({now}) nor {} s after",
            sms_core::audit::RECEIPTS_MAX_AGE_SECS,
            sms_core::audit::RECEIPTS_MAX_SKEW_SECS
        )));
    }
    use sms_core::hex::encode_prefixed as hex;
    let digest = receipts_digest(&hex(owner), &hex(state.domain.instance), timestamp);
    let signer = signature
        .recover_eip191(&digest)
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    if signer != owner {
        return Err(ApiError::unauthorized(format!(
            "signer {signer} is not {owner} (or the challenge was signed for another SMS instance)"
        )));
    }
    Ok(owner)
}

/// Step 2: the apps and datasets named by the log that `owner` owns on chain now.
async fn owned_assets(
    state: &AppState,
    owner: Address,
    events: &[(u64, AuditEvent)],
) -> Result<OwnedAssets, ApiError> {
    use sms_core::hex::encode_prefixed as hex;
    let mut owned = OwnedAssets {
        owner: hex(owner),
        ..OwnedAssets::default()
    };
    let assets = referenced_assets(events.iter().map(|(_, e)| e));
    if assets.len() > MAX_ASSET_LOOKUPS {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many assets to look up",
        )
        .with_reason(format!(
            "the log names {} apps and datasets, more than the {MAX_ASSET_LOOKUPS} one request looks up",
            assets.len()
        )));
    }
    for asset in assets {
        let Ok(address) = parse_address(&asset) else {
            continue;
        };
        if state.ledger.owner_of(address).await? == Some(owner) {
            // An address is an app or a dataset, never both: it may stand in both sets.
            owned.apps.insert(asset.clone());
            owned.datasets.insert(asset);
        }
    }
    Ok(owned)
}

/// `GET /audit/receipts?owner=&timestamp=`: every entry that touched the owner's secrets,
/// with its inclusion proof under the latest signed head.
pub async fn receipts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<ReceiptsAnswer>, ApiError> {
    let owner = ensure_owner_signed(&state, &headers, &query)?;
    let mut stored = Vec::new();
    loop {
        let page = state.store.audit_entries(stored.len() as u64, PAGE).await?;
        if page.is_empty() {
            break;
        }
        stored.extend(page);
    }
    let events: Vec<(u64, AuditEvent)> = stored
        .iter()
        .filter_map(|s| s.entry.event().ok().map(|e| (s.entry.index, e)))
        .collect();
    let owned = owned_assets(&state, owner, &events).await?;
    let mine = receipts_for(&events, &owned);
    let head = state.store.latest_audit_head().await?;
    let leaves = match &head {
        Some(h) => state.store.audit_leaves(h.head.size).await?,
        None => Vec::new(),
    };
    let entries: HashMap<u64, &sms_store::StoredAuditEntry> =
        stored.iter().map(|s| (s.entry.index, s)).collect();
    let events_by_index: HashMap<u64, &AuditEvent> = events.iter().map(|(i, e)| (*i, e)).collect();
    let receipts = mine
        .iter()
        .filter_map(|index| {
            let position = usize::try_from(*index).ok()?;
            Some(Receipt {
                entry: wire_entry(entries.get(index)?),
                event: (*events_by_index.get(index)?).clone(),
                proof: inclusion_proof(&leaves, position)
                    .map(|path| path.iter().map(hash_hex).collect()),
            })
        })
        .collect();
    Ok(Json(ReceiptsAnswer {
        owner: owned.owner,
        head: head.as_ref().and_then(wire_head),
        receipts,
    }))
}

const PAGE_QUERY: &[super::Query] = &[
    (
        "from",
        "first index (entries) or size (heads), default 0",
        false,
    ),
    (
        "limit",
        "at most this many, 1 to 1000 (default 1000)",
        false,
    ),
];

/// The audit routes (docs/audit.md).
pub(super) fn table() -> Vec<Route> {
    use Verb::Get;
    vec![
        route(
            Feature::Audit,
            Get,
            "/audit/entries",
            entries,
            Operation {
                summary: "Entries of the audit log, in order (no value, no hash of one)",
                query: PAGE_QUERY,
                request: Body::None,
                responses: &[
                    (
                        200,
                        "a page of entries and the log's size",
                        Body::Json("Object"),
                    ),
                    (400, "bad from or limit", super::PLAIN_ERROR),
                ],
            },
        ),
        route(
            Feature::Audit,
            Get,
            "/audit/heads",
            heads,
            Operation {
                summary: "Signed tree heads of the audit log, by size",
                query: PAGE_QUERY,
                request: Body::None,
                responses: &[
                    (200, "a page of signed heads", Body::Json("Object")),
                    (400, "bad from or limit", super::PLAIN_ERROR),
                ],
            },
        ),
        route(
            Feature::Audit,
            Get,
            "/audit/receipts",
            receipts,
            Operation {
                summary: "Every audit entry that touched the owner's secrets, with inclusion proofs",
                query: &[
                    ("owner", "the owner's address (0x + 40 hex)", true),
                    ("timestamp", "unix seconds signed in the challenge", true),
                ],
                request: Body::None,
                responses: &[
                    (
                        200,
                        "the receipts and the head they are proven under",
                        Body::Json("Object"),
                    ),
                    (400, "malformed owner or timestamp", super::PLAIN_ERROR),
                    (
                        401,
                        "not signed by the owner for this SMS, or older than 5 minutes",
                        super::PLAIN_ERROR,
                    ),
                    (503, "store or ledger unavailable", super::PLAIN_ERROR),
                ],
            },
        ),
    ]
}

//! The whole-log check: every entry at its position, hashing to its stored hash, linked to
//! its predecessor, and every tree head's root equal to the root recomputed over its prefix.
//! Signatures are checked by the caller (the identity key is not this crate's).

use thiserror::Error;

use super::{AuditEntry, Frontier, GENESIS, Hash, TreeHead, hash_hex};

/// The first thing wrong with a log; entries are named by index.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LogError {
    #[error("entry {expected} is missing: the entry at that position has index {found}")]
    Missing { expected: u64, found: u64 },
    #[error("entry {index}: its content does not hash to its recorded hash (edited)")]
    Edited { index: u64 },
    #[error(
        "entry {index}: its prev is not the hash of entry {} (entry {} or {index} was changed)",
        index.saturating_sub(1), index.saturating_sub(1)
    )]
    BrokenLink { index: u64 },
    #[error("entry {index}: its body is not an audit event: {reason}")]
    Unreadable { index: u64, reason: String },
    #[error(
        "the tree head of size {head_size} covers more entries than the log has ({log_size}): \
         the log was truncated"
    )]
    Truncated { head_size: u64, log_size: u64 },
    #[error(
        "the tree head of size {head_size} has root {signed}, the entries give {computed}: \
         an entry before {head_size} was changed or removed"
    )]
    RootMismatch {
        head_size: u64,
        signed: String,
        computed: String,
    },
}

impl LogError {
    /// The entry named, when one is.
    pub fn entry(&self) -> Option<u64> {
        match self {
            LogError::Missing { expected, .. } => Some(*expected),
            LogError::Edited { index }
            | LogError::BrokenLink { index }
            | LogError::Unreadable { index, .. } => Some(*index),
            LogError::Truncated { .. } | LogError::RootMismatch { .. } => None,
        }
    }
}

/// Checks `entries` (in order, each with the hash the log recorded for it, `None` when the
/// source has none) and the roots of `heads`; the leaf hashes on success.
pub fn verify_log(
    entries: &[(AuditEntry, Option<Hash>)],
    heads: &[TreeHead],
) -> Result<Vec<Hash>, LogError> {
    let mut leaves = Vec::with_capacity(entries.len());
    let mut prev = GENESIS;
    for (position, (entry, recorded)) in entries.iter().enumerate() {
        let expected = position as u64;
        if entry.index != expected {
            return Err(LogError::Missing {
                expected,
                found: entry.index,
            });
        }
        let hash = entry.hash();
        if recorded.is_some_and(|r| r != hash) {
            return Err(LogError::Edited { index: entry.index });
        }
        if entry.prev != prev {
            return Err(LogError::BrokenLink { index: entry.index });
        }
        entry.event().map_err(|e| LogError::Unreadable {
            index: entry.index,
            reason: e.to_string(),
        })?;
        leaves.push(hash);
        prev = hash;
    }
    let mut sorted: Vec<&TreeHead> = heads.iter().collect();
    sorted.sort_by_key(|h| h.size);
    let mut frontier = Frontier::default();
    for head in sorted {
        if head.size > leaves.len() as u64 {
            return Err(LogError::Truncated {
                head_size: head.size,
                log_size: leaves.len() as u64,
            });
        }
        while frontier.size() < head.size {
            // size() < head.size ≤ leaves.len(), so the leaf exists.
            let Some(leaf) = leaves.get(frontier.size() as usize) else {
                break;
            };
            frontier.push(*leaf);
        }
        let computed = frontier.root();
        if computed != head.root {
            return Err(LogError::RootMismatch {
                head_size: head.size,
                signed: hash_hex(&head.root),
                computed: hash_hex(&computed),
            });
        }
    }
    Ok(leaves)
}

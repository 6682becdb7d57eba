//! Which entries are an owner's receipts: every event that touched a secret the owner
//! controls (their web2 and requester secrets; the app secret and dataset key of the apps and
//! datasets they own on chain now), and every release of a session that held one.

use std::collections::{BTreeSet, HashSet};

use super::{AuditEvent, SecretRef};

/// An owner and the apps and datasets the chain says they own now (lowercase 0x hex).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnedAssets {
    pub owner: String,
    pub apps: BTreeSet<String>,
    pub datasets: BTreeSet<String>,
}

impl OwnedAssets {
    /// Whether the secret is one this owner controls.
    pub fn controls(&self, secret: &SecretRef) -> bool {
        match secret.namespace.as_str() {
            "web2" | "requester" => secret.owner == self.owner,
            "app-developer" => self.apps.contains(&secret.owner),
            "web3" => self.datasets.contains(&secret.owner),
            _ => false,
        }
    }
}

/// The apps and datasets named by `events` (whose ownership the caller then asks the chain).
pub fn referenced_assets<'a>(events: impl IntoIterator<Item = &'a AuditEvent>) -> BTreeSet<String> {
    let mut assets = BTreeSet::new();
    let add_secret = |s: &SecretRef, assets: &mut BTreeSet<String>| {
        if matches!(s.namespace.as_str(), "app-developer" | "web3") {
            assets.insert(s.owner.clone());
        }
    };
    for event in events {
        match event {
            AuditEvent::SecretWritten { secret, .. } => add_secret(secret, &mut assets),
            AuditEvent::SessionCreated { secrets, .. } => {
                for s in secrets {
                    add_secret(s, &mut assets);
                }
            }
            _ => {}
        }
    }
    assets
}

/// The indexes of `entries` (index, event; in log order) that are `owned`'s receipts.
pub fn receipts_for(entries: &[(u64, AuditEvent)], owned: &OwnedAssets) -> Vec<u64> {
    let mut sessions: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for (index, event) in entries {
        let mine = match event {
            AuditEvent::SecretWritten { secret, .. } => owned.controls(secret),
            AuditEvent::SessionCreated {
                session, secrets, ..
            } => {
                let held = secrets.iter().any(|s| owned.controls(s));
                if held {
                    sessions.insert(session);
                }
                held
            }
            AuditEvent::ReleaseGranted { session, .. }
            | AuditEvent::ReleaseRefused { session, .. } => sessions.contains(session.as_str()),
            AuditEvent::ChallengeIssued { .. } | AuditEvent::AdminAction { .. } => false,
        };
        if mine {
            out.push(*index);
        }
    }
    out
}

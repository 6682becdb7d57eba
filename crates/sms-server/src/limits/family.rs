//! Route families: the unit of in-flight limits, rate limits and their metrics. A family is a
//! `&'static str` from a fixed list, so metric labels stay bounded.

use std::collections::HashMap;

use axum::http::Method;

use crate::routes::feature::Feature;

/// The expensive unauthenticated entry points have a family of their own (tighter budgets).
pub const TEE_CHALLENGE: &str = "tee-challenge";
pub const TEE_SESSION: &str = "tee-session";
pub const PROVISIONING_NONCE: &str = "provisioning-nonce";
/// Pushes that read the chain (`owner()` of a dataset or an app).
pub const CHAIN_PUSH: &str = "chain-push";
/// Requests no route serves.
pub const OTHER: &str = "other";

/// Every family name a limit can be given for: the special ones, then one per feature of the
/// route table (`secrets`, `ops`, `tee`, `provisioning`, `dev`, …), then `other`.
pub fn names() -> Vec<&'static str> {
    let mut names = vec![TEE_CHALLENGE, TEE_SESSION, PROVISIONING_NONCE, CHAIN_PUSH];
    names.extend(Feature::ALL.iter().map(|f| f.tag()));
    names.push(OTHER);
    names
}

/// Maps a matched route (method, path pattern) to its family.
#[derive(Debug, Default)]
pub struct Families {
    features: HashMap<&'static str, &'static str>,
}

impl Families {
    /// The families of the routes `(path pattern, feature)` (the route table's entries).
    pub fn new(routes: impl IntoIterator<Item = (&'static str, Feature)>) -> Self {
        Self {
            features: routes
                .into_iter()
                .map(|(path, feature)| (path, feature.tag()))
                .collect(),
        }
    }

    pub fn classify(&self, method: &Method, matched: Option<&str>) -> &'static str {
        let Some(path) = matched else { return OTHER };
        if *method == Method::POST {
            match path {
                "/tee/challenges/{task}" => return TEE_CHALLENGE,
                "/tee/sessions" => return TEE_SESSION,
                "/tee/provisioning/{session}/{service}/nonce" => return PROVISIONING_NONCE,
                "/secrets/web3" | "/apps/{app}/secrets" => return CHAIN_PUSH,
                _ => {}
            }
        }
        self.features.get(path).copied().unwrap_or(OTHER)
    }
}

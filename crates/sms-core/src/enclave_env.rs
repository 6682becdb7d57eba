//! The environment an enclave receives, and the secret values a session is built from: below
//! both the session plan and bulk processing, which fill it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;
use serde::ser::SerializeMap;
use zeroize::Zeroizing;

use crate::secret::{SecretId, SecretValue};

// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct EnvValue {
    value: Zeroizing<String>,
    sensitive: bool,
}

/// The environment of one enclave: names in sorted order, secret values zeroized on drop and
/// redacted from `Debug`. `Serialize` writes the plain `{name: value}` map for the provisioner.
#[derive(Clone, Default)]
pub struct EnclaveEnv(BTreeMap<String, EnvValue>);

impl EnclaveEnv {
    pub(crate) fn public(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(
            name.into(),
            EnvValue {
                value: Zeroizing::new(value.into()),
                sensitive: false,
            },
        );
    }

    pub(crate) fn secret(&mut self, name: impl Into<String>, value: Zeroizing<String>) {
        self.0.insert(
            name.into(),
            EnvValue {
                value,
                sensitive: true,
            },
        );
    }

    pub(crate) fn extend(&mut self, other: &EnclaveEnv) {
        for (k, v) in &other.0 {
            self.0.insert(
                k.clone(),
                EnvValue {
                    value: v.value.clone(),
                    sensitive: v.sensitive,
                },
            );
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.value.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// True when the variable holds a secret (dataset key, compute secrets, tokens, keys).
    pub fn is_sensitive(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| v.sensitive)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Every `(name, value)`, secrets included: for building provisioner payloads only.
    pub fn iter_exposed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.value.as_str()))
    }

    /// The whole map with secret values in clear: for payloads and tests only.
    pub fn expose(&self) -> BTreeMap<&str, &str> {
        self.iter_exposed().collect()
    }
}

impl fmt::Debug for EnclaveEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.0 {
            if v.sensitive {
                m.entry(k, &format_args!("<redacted>"));
            } else {
                m.entry(k, &v.value.as_str());
            }
        }
        m.finish()
    }
}

impl Serialize for EnclaveEnv {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v.value.as_str())?;
        }
        map.end()
    }
}

/// The values the server found, keyed by identity.
pub type SecretValues = HashMap<SecretId, SecretValue>;

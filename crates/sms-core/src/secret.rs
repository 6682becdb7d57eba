//! Secret identities, names and values. Normalisation rules follow the iExec SMS: addresses are
//! lowercased, web2 names are lowercased, requester names are case-sensitive.

use std::fmt;

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

/// What the iExec clients expect: 4096 bytes of UTF-8, inclusive.
pub const DEFAULT_MAX_SECRET_BYTES: usize = 4096;
/// Linux refuses a single environment string over 128 KiB (MAX_ARG_STRLEN).
pub const MAX_SECRET_BYTES_LIMIT: usize = 131_072;

/// Web2 names used by the iExec stack.
pub const RESULT_ENCRYPTION_PUBLIC_KEY: &str = "iexec-result-encryption-public-key";
pub const RESULT_DROPBOX_TOKEN: &str = "iexec-result-dropbox-token";
pub const RESULT_IPFS_TOKEN: &str = "iexec-result-iexec-ipfs-token";
pub const RESULT_PROXY_URL: &str = "iexec-result-iexec-result-proxy-url";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    /// Owner-named secret (`/secrets/web2`), updatable.
    Web2,
    /// Dataset key (`/secrets/web3`), owned by the dataset's on-chain owner.
    Web3,
    /// The single app developer secret of an app (`/apps/{app}/secrets`).
    AppDeveloper,
    /// Named secret of a requester (`/requesters/{addr}/secrets/{name}`).
    Requester,
}

impl SecretKind {
    pub const ALL: [SecretKind; 4] = [Self::Web2, Self::Web3, Self::AppDeveloper, Self::Requester];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web2 => "web2",
            Self::Web3 => "web3",
            Self::AppDeveloper => "app-developer",
            Self::Requester => "requester",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("Secret key should contain at most 64 characters from [0-9A-Za-z-_]")]
    Requester,
    #[error("secret name must be 1 to 256 bytes without control characters")]
    Web2,
}

/// A requester secret name: `^[A-Za-z0-9_-]{1,64}$`, case-sensitive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequesterSecretName(String);

impl RequesterSecretName {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(NameError::Requester)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The stored identity of a secret. Two requests name the same secret iff their ids are equal;
/// the id is also bound into the ciphertext so rows cannot be swapped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretId {
    pub kind: SecretKind,
    pub owner: Address,
    pub name: String,
}

impl SecretId {
    pub fn web3(dataset: Address) -> Self {
        Self {
            kind: SecretKind::Web3,
            owner: dataset,
            name: String::new(),
        }
    }

    pub fn app_developer(app: Address) -> Self {
        Self {
            kind: SecretKind::AppDeveloper,
            owner: app,
            name: crate::challenge::APP_DEVELOPER_SECRET_INDEX.to_owned(),
        }
    }

    pub fn requester(requester: Address, name: &RequesterSecretName) -> Self {
        Self {
            kind: SecretKind::Requester,
            owner: requester,
            name: name.as_str().to_owned(),
        }
    }

    /// Web2 names are case-insensitive: the stored name is lowercased.
    pub fn web2(owner: Address, name: &str) -> Result<Self, NameError> {
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(NameError::Web2);
        }
        Ok(Self {
            kind: SecretKind::Web2,
            owner,
            name: name.to_lowercase(),
        })
    }

    /// Lowercase 0x-hex owner, as stored.
    pub fn owner_hex(&self) -> String {
        crate::hex::encode_prefixed(self.owner)
    }

    /// Bytes that bind a ciphertext to this identity.
    pub fn binding(&self) -> Vec<u8> {
        format!("sms/v1/{}/{}/{}", self.kind, self.owner_hex(), self.name).into_bytes()
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} secret {}", self.kind, self.owner_hex())?;
        if !self.name.is_empty() {
            write!(f, "/{}", self.name)?;
        }
        Ok(())
    }
}

/// A secret value. Zeroized on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value as UTF-8 text, if it is.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl From<&str> for SecretValue {
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes().to_vec())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<{} bytes redacted>)", self.0.len())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("'{0}' is not an Ethereum address (expected 0x followed by 40 hex characters)")]
pub struct AddressError(pub String);

/// Parses `0x` + 40 hex characters, any case (EIP-55 checksums are not enforced, as upstream).
pub fn parse_address(s: &str) -> Result<Address, AddressError> {
    let err = || AddressError(s.chars().take(64).collect());
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(err)?;
    if digits.len() != 40 {
        return Err(err());
    }
    let mut raw = [0u8; 20];
    alloy_primitives::hex::decode_to_slice(digits, &mut raw).map_err(|_| err())?;
    Ok(Address::from(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requester_names() {
        assert!(RequesterSecretName::parse("x1").is_ok());
        assert!(RequesterSecretName::parse(&"a".repeat(64)).is_ok());
        assert!(RequesterSecretName::parse(&"a".repeat(65)).is_err());
        assert!(RequesterSecretName::parse("").is_err());
        for bad in [":", "!", "*", "~", "a b", "é"] {
            assert!(RequesterSecretName::parse(bad).is_err(), "{bad}");
        }
        assert_ne!(
            RequesterSecretName::parse("Foo").unwrap(),
            RequesterSecretName::parse("foo").unwrap()
        );
    }

    #[test]
    fn web2_names_are_lowercased() {
        let owner = Address::repeat_byte(1);
        assert_eq!(
            SecretId::web2(owner, "My-Key").unwrap(),
            SecretId::web2(owner, "my-key").unwrap()
        );
        assert!(SecretId::web2(owner, "").is_err());
    }

    #[test]
    fn addresses() {
        let a = parse_address("0x7bd4783FDCAD405A28052a0d1f11236A741da593").unwrap();
        assert_eq!(
            a,
            parse_address("0x7bd4783fdcad405a28052a0d1f11236a741da593").unwrap()
        );
        for bad in [
            "",
            "0x123",
            "7bd4783fdcad405a28052a0d1f11236a741da593",
            "0xzzd4783fdcad405a28052a0d1f11236a741da593",
        ] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_redacted_in_debug() {
        let v = SecretValue::from("hunter2");
        assert_eq!(format!("{v:?}"), "SecretValue(<7 bytes redacted>)");
    }
}

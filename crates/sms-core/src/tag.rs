//! Deal tags (bytes32 bit sets) and the TEE framework they select (reference: client §6).

use std::fmt;
use std::str::FromStr;

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TeeFramework {
    Scone,
    Gramine,
    Tdx,
}

impl TeeFramework {
    /// Exact match on the low nibble of the tag, as the worker and SMS do.
    pub fn from_tag(tag: &B256) -> Option<Self> {
        match tag[31] & 0x0f {
            0x03 => Some(Self::Scone),
            0x05 => Some(Self::Gramine),
            0x09 => Some(Self::Tdx),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scone => "SCONE",
            Self::Gramine => "GRAMINE",
            Self::Tdx => "TDX",
        }
    }

    pub fn is_sgx(self) -> bool {
        matches!(self, Self::Scone | Self::Gramine)
    }
}

impl fmt::Display for TeeFramework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown TEE framework '{0}' (expected scone, gramine or tdx)")]
pub struct UnknownFramework(pub String);

impl FromStr for TeeFramework {
    type Err = UnknownFramework;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "SCONE" => Ok(Self::Scone),
            "GRAMINE" => Ok(Self::Gramine),
            "TDX" => Ok(Self::Tdx),
            _ => Err(UnknownFramework(s.to_owned())),
        }
    }
}

const TAG_BITS: [(&str, u32); 5] = [
    ("tee", 0),
    ("scone", 1),
    ("gramine", 2),
    ("tdx", 3),
    ("gpu", 8),
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TagError {
    #[error(
        "unknown tag '{0}' (expected a comma-separated list of tee, scone, gramine, tdx, gpu or a 0x-prefixed bytes32)"
    )]
    UnknownName(String),
    #[error("'{0}' is not a bytes32 hex tag")]
    BadHex(String),
}

/// Parses `tee,scone`, `["tee","scone"]`-like lists or a `0x` bytes32 into a tag.
pub fn parse_tag(input: &str) -> Result<B256, TagError> {
    let input = input.trim();
    if input.starts_with("0x") {
        return input
            .parse::<B256>()
            .map_err(|_| TagError::BadHex(input.to_owned()));
    }
    let mut tag = B256::ZERO;
    for name in input.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let (_, bit) = TAG_BITS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .ok_or_else(|| TagError::UnknownName(name.to_owned()))?;
        let byte = 31 - (bit / 8) as usize;
        tag[byte] |= 1 << (bit % 8);
    }
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let low = |t: B256| (t[30], t[31]);
        assert_eq!(low(parse_tag("tee").unwrap()), (0, 0x01));
        assert_eq!(low(parse_tag("tee,scone").unwrap()), (0, 0x03));
        assert_eq!(low(parse_tag("tee,gramine").unwrap()), (0, 0x05));
        assert_eq!(low(parse_tag("tee,tdx").unwrap()), (0, 0x09));
        assert_eq!(low(parse_tag("gpu,tee,tee").unwrap()), (1, 0x01));
        assert!(parse_tag("tee,sgx").is_err());
    }

    #[test]
    fn framework_uses_exact_low_nibble() {
        let tag = |b: u8| {
            let mut t = B256::ZERO;
            t[31] = b;
            t
        };
        assert_eq!(
            TeeFramework::from_tag(&tag(0x03)),
            Some(TeeFramework::Scone)
        );
        assert_eq!(
            TeeFramework::from_tag(&tag(0xf3)),
            Some(TeeFramework::Scone)
        );
        assert_eq!(
            TeeFramework::from_tag(&tag(0x05)),
            Some(TeeFramework::Gramine)
        );
        assert_eq!(TeeFramework::from_tag(&tag(0x09)), Some(TeeFramework::Tdx));
        assert_eq!(TeeFramework::from_tag(&tag(0x01)), None);
        assert_eq!(TeeFramework::from_tag(&tag(0x0f)), None);
    }
}

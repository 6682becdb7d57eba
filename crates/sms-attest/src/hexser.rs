//! Serde helpers: bytes as lowercase hex strings (an optional `0x` prefix is accepted on input),
//! and quotes as standard base64.

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

pub(crate) fn decode_hex(s: &str) -> Result<Vec<u8>, hex::FromHexError> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    hex::decode(digits)
}

pub(crate) mod hex_bytes {
    use super::*;

    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(value.as_ref()))
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<Vec<u8>>,
    {
        let s = String::deserialize(d)?;
        let bytes = decode_hex(&s).map_err(D::Error::custom)?;
        let len = bytes.len();
        T::try_from(bytes).map_err(|_| D::Error::custom(format!("unexpected byte length {len}")))
    }
}

pub(crate) mod base64_bytes {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: Serializer>(value: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s.trim()).map_err(D::Error::custom)
    }
}

//! Hex helpers with the lenient decoding rules of the iExec hashing helpers.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("'{input}' is not hexadecimal (expected an optional 0x prefix followed by hex digits)")]
pub struct HexError {
    pub input: String,
}

/// Decodes hex the way iExec's "concatenate and hash" helper does: optional `0x`, any case,
/// an odd length is read as if left-padded with one `0` nibble, and `""` is zero bytes.
pub fn decode_lenient(input: &str) -> Result<Vec<u8>, HexError> {
    let digits = input
        .strip_prefix("0x")
        .or_else(|| input.strip_prefix("0X"))
        .unwrap_or(input);
    let err = || HexError {
        input: input.chars().take(80).collect(),
    };
    let nibble = |c: u8| -> Result<u8, HexError> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(err()),
        }
    };
    let bytes = digits.as_bytes();
    let mut out = Vec::with_capacity(bytes.len().div_ceil(2));
    let (head, rest) = if bytes.len() % 2 == 1 {
        bytes.split_at(1)
    } else {
        bytes.split_at(0)
    };
    for &c in head {
        out.push(nibble(c)?);
    }
    for pair in rest.chunks_exact(2) {
        if let [hi, lo] = pair {
            out.push(nibble(*hi)? << 4 | nibble(*lo)?);
        }
    }
    Ok(out)
}

/// Lowercase `0x`-prefixed hex.
pub fn encode_prefixed(bytes: impl AsRef<[u8]>) -> String {
    format!("0x{}", encode(bytes))
}

/// Lowercase hex without a prefix (record names, digests in text).
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    alloy_primitives::hex::encode(bytes)
}

/// A 32-byte secret written as hex (`0x` optional, surrounding white space ignored), the way
/// enclave challenge keys are stored and delivered; `None` unless exactly 64 hex digits. The
/// bytes are wiped when dropped.
pub fn decode_key32(text: &str) -> Option<zeroize::Zeroizing<[u8; 32]>> {
    let text = text.trim();
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.len() != 64 {
        return None;
    }
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    alloy_primitives::hex::decode_to_slice(digits, raw.as_mut_slice()).ok()?;
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key32_is_exactly_64_hex_digits() {
        let digits = "11".repeat(32);
        assert_eq!(decode_key32(&digits).map(|k| *k), Some([0x11; 32]));
        assert_eq!(
            decode_key32(&format!(" 0x{digits}\n")).map(|k| *k),
            Some([0x11; 32])
        );
        assert!(decode_key32(&digits[2..]).is_none());
        assert!(decode_key32(&format!("0x0x{}", &digits[4..])).is_none());
        assert!(decode_key32(&"zz".repeat(32)).is_none());
        assert_eq!(encode([0xab, 0x01]), "ab01");
    }

    #[test]
    fn decodes_odd_length_as_left_padded() {
        assert_eq!(decode_lenient("0x123").unwrap(), vec![0x01, 0x23]);
        assert_eq!(decode_lenient("").unwrap(), Vec::<u8>::new());
        assert_eq!(decode_lenient("0xABcd").unwrap(), vec![0xab, 0xcd]);
        assert!(decode_lenient("0xzz").is_err());
    }
}

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
    format!("0x{}", alloy_primitives::hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_odd_length_as_left_padded() {
        assert_eq!(decode_lenient("0x123").unwrap(), vec![0x01, 0x23]);
        assert_eq!(decode_lenient("").unwrap(), Vec::<u8>::new());
        assert_eq!(decode_lenient("0xABcd").unwrap(), vec![0xab, 0xcd]);
        assert!(decode_lenient("0xzz").is_err());
    }
}

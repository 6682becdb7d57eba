//! Hash helpers shared by every challenge and id computation.

use alloy_primitives::{B256, keccak256};
use sha2::{Digest, Sha256};

use crate::hex::{HexError, decode_lenient};

/// keccak256 of the concatenation of the hex-decoded arguments ("concatenate and hash").
pub fn concat_and_hash(parts: &[&str]) -> Result<B256, HexError> {
    let mut buf = Vec::with_capacity(parts.len() * 32);
    for part in parts {
        buf.extend(decode_lenient(part)?);
    }
    Ok(keccak256(&buf))
}

/// keccak256 of the concatenation of raw byte slices.
pub fn keccak_concat(parts: &[&[u8]]) -> B256 {
    let mut hasher = alloy_primitives::Keccak256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

/// keccak256 of the UTF-8 bytes of `s`.
pub fn keccak_utf8(s: &str) -> B256 {
    keccak256(s.as_bytes())
}

/// sha256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> B256 {
    B256::from_slice(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> B256 {
        s.parse().unwrap()
    }

    // Vectors from reference/iexec-client-chain.md §14.
    #[test]
    fn concat_and_hash_vectors() {
        assert_eq!(
            concat_and_hash(&["0x748e091bf16048cb5103E0E10F9D5a8b7fBDd860"]).unwrap(),
            h("0x7ec1be13dbade2e3bfde8c2bdf68859dfff4ea620b3340c451ec56b5fa505ab1")
        );
        assert_eq!(
            concat_and_hash(&[
                "0x748e091bf16048cb5103E0E10F9D5a8b7fBDd860",
                "0xd94b63fc2d3ec4b96daf84b403bbafdc8c8517e8e2addd51fec0fa4e67801be8"
            ])
            .unwrap(),
            h("0x9ca8cbf81a285c62778678c874dae13fdc6857566b67a9a825434dd557e18a8d")
        );
        assert_eq!(
            concat_and_hash(&[
                "0x748e091bf16048cb5103E0E10F9D5a8b7fBDd860",
                "0xd94b63fc2d3ec4b96daf84b403bbafdc8c8517e8e2addd51fec0fa4e67801be8",
                "0x9a43BB008b7A657e1936ebf5d8e28e5c5E021596"
            ])
            .unwrap(),
            h("0x54a76d209e8167e1ffa3bde8e3e7b30068423ca9554e1d605d8ee8fd0f165562")
        );
    }

    #[test]
    fn sha256_and_keccak_vectors() {
        assert_eq!(
            sha256(b"utf8String"),
            h("0xb33845db05fb0822f1f1e3677cc6787b8a1a7a21f3c12f9e97c70cb596222218")
        );
        assert_eq!(
            sha256(b"hello"),
            h("0x2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        assert_eq!(
            keccak_utf8("utf8String"),
            h("0x234b7550275b36696569d306216e035df78db522674abecff884c64e7558ef17")
        );
    }
}

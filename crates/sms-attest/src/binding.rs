//! The value an enclave must put in its 64-byte report data.

use sha2::{Digest, Sha512};

/// Domain-separation context of [`report_data_binding`], version 1.
pub const REPORT_DATA_CONTEXT: &[u8] = b"iexec-sms/attest/report-data/v1";

/// Binds a server nonce and the enclave's ephemeral public key into 64 bytes of report data.
///
/// ```text
/// SHA-512( "iexec-sms/attest/report-data/v1" || 0x00
///          || u64_be(len(nonce)) || nonce
///          || u64_be(len(public_key)) || public_key )
/// ```
///
/// The context string is ASCII without a terminator, followed by one zero byte; both inputs
/// are length-prefixed with an 8-byte big-endian length so no two `(nonce, public_key)` pairs
/// share an encoding. The 64-byte SHA-512 output fills the whole SGX/TDX report data field.
pub fn report_data_binding(nonce: &[u8], public_key: &[u8]) -> [u8; 64] {
    let mut hasher = Sha512::new();
    hasher.update(REPORT_DATA_CONTEXT);
    hasher.update([0u8]);
    hasher.update((nonce.len() as u64).to_be_bytes());
    hasher.update(nonce);
    hasher.update((public_key.len() as u64).to_be_bytes());
    hasher.update(public_key);
    hasher.finalize().into()
}

/// Compares two report-data values without an early exit on the first differing byte.
pub(crate) fn report_data_eq(a: &[u8; 64], b: &[u8; 64]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_is_deterministic_and_length_prefixed() {
        let a = report_data_binding(b"nonce", b"key");
        assert_eq!(a, report_data_binding(b"nonce", b"key"));
        // Moving a byte across the boundary changes the result.
        assert_ne!(a, report_data_binding(b"nonc", b"ekey"));
        assert_ne!(a, report_data_binding(b"nonce", b"kez"));
        assert!(report_data_eq(&a, &a));
        assert!(!report_data_eq(&a, &report_data_binding(b"", b"")));
    }

    #[test]
    fn binding_matches_its_documented_construction() {
        let mut input = Vec::new();
        input.extend_from_slice(b"iexec-sms/attest/report-data/v1\0");
        input.extend_from_slice(&3u64.to_be_bytes());
        input.extend_from_slice(b"abc");
        input.extend_from_slice(&2u64.to_be_bytes());
        input.extend_from_slice(b"pk");
        let expected: [u8; 64] = Sha512::digest(&input).into();
        assert_eq!(report_data_binding(b"abc", b"pk"), expected);
    }
}

//! EIP-191 `personal_sign` over 32-byte digests: the only signature scheme of the SMS API.

use alloy_primitives::{Address, B256, Signature, eip191_hash_message};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error(
        "signature must be 0x followed by 130 hex characters (65 bytes r||s||v), got {0} characters"
    )]
    Length(usize),
    #[error("signature is not hexadecimal")]
    NotHex,
    #[error("signature recovery byte v must be 27 or 28, got {0}")]
    RecoveryByte(u8),
    #[error("signature does not recover to any address")]
    Unrecoverable,
}

/// A 65-byte `r ‖ s ‖ v` signature as sent in the `Authorization` header, v ∈ {27, 28}.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthSignature(Signature);

impl EthSignature {
    /// Parses the raw hex header value. Anything but 65 bytes with v ∈ {27, 28} is refused.
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        let digits = header.trim();
        let digits = digits.strip_prefix("0x").unwrap_or(digits);
        if digits.len() != 130 {
            return Err(SignatureError::Length(header.trim().len()));
        }
        let mut raw = [0u8; 65];
        alloy_primitives::hex::decode_to_slice(digits, &mut raw)
            .map_err(|_| SignatureError::NotHex)?;
        let v = raw[64];
        let parity = match v {
            27 => false,
            28 => true,
            other => return Err(SignatureError::RecoveryByte(other)),
        };
        let sig = Signature::from_bytes_and_parity(&raw[..64], parity);
        Ok(Self(sig))
    }

    /// Recovers the signer of `keccak256("\x19Ethereum Signed Message:\n32" ‖ digest)`.
    pub fn recover_eip191(&self, digest: &B256) -> Result<Address, SignatureError> {
        let prehash = eip191_hash_message(digest.as_slice());
        self.0
            .recover_address_from_prehash(&prehash)
            .map_err(|_| SignatureError::Unrecoverable)
    }

    /// `0x` + r ‖ s ‖ v with v = 27/28, lowercase.
    pub fn to_hex(&self) -> String {
        crate::hex::encode_prefixed(self.0.as_bytes())
    }

    pub fn inner(&self) -> &Signature {
        &self.0
    }
}

impl From<Signature> for EthSignature {
    fn from(sig: Signature) -> Self {
        Self(sig)
    }
}

/// True when `signature` is a valid EIP-191 signature of `digest` by `expected`.
pub fn is_signed_by(signature: &EthSignature, digest: &B256, expected: Address) -> bool {
    signature
        .recover_eip191(digest)
        .is_ok_and(|signer| signer == expected)
}

/// Signs the 32 raw bytes of `digest` with the EIP-191 prefix (ethers `signMessage(getBytes(d))`).
pub fn sign_eip191(signer: &PrivateKeySigner, digest: &B256) -> EthSignature {
    // Signing a 32-byte prehash with a valid in-memory key cannot fail.
    let prehash = eip191_hash_message(digest.as_slice());
    match signer.sign_hash_sync(&prehash) {
        Ok(sig) => EthSignature(sig),
        Err(e) => unreachable!("local secp256k1 signing failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_commons_poco_vector() {
        // reference/iexec-client-chain.md §14
        let sig = EthSignature::parse("0x7e78fbf387024f96211345c9caae47bafccf9a992fbf7924b3473d133f73c02a32204b44309bb2eaba2fcfa3be726c2c1d19f4ca560ba0c82dbd18b724ea52a11b").unwrap();
        let digest: B256 = "0xe6fe0ad9cc7e30e83c9f9b6ce818ad20d576a496dd332cb1a257e85a7ebf2ca3"
            .parse()
            .unwrap();
        let expected: Address = "0x043B9300356351419d9F63E818054E99e6c831b2"
            .parse()
            .unwrap();
        assert!(is_signed_by(&sig, &digest, expected));
    }

    #[test]
    fn refuses_malformed_headers() {
        assert_eq!(
            EthSignature::parse("0x1234"),
            Err(SignatureError::Length(6))
        );
        let non_hex = format!("0x{}", "zz".repeat(65));
        assert_eq!(EthSignature::parse(&non_hex), Err(SignatureError::NotHex));
        for v in ["00", "01", "1d"] {
            let sig = format!("0x{}{}", "11".repeat(64), v);
            assert!(matches!(
                EthSignature::parse(&sig),
                Err(SignatureError::RecoveryByte(_))
            ));
        }
    }

    #[test]
    fn sign_then_recover_round_trips() {
        let signer = PrivateKeySigner::random();
        let digest = B256::repeat_byte(7);
        let sig = sign_eip191(&signer, &digest);
        assert_eq!(EthSignature::parse(&sig.to_hex()).unwrap(), sig);
        assert_eq!(sig.recover_eip191(&digest).unwrap(), signer.address());
    }
}

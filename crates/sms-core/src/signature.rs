//! EIP-191 `personal_sign` over 32-byte digests: the only signature scheme of the SMS API.

use alloy_primitives::{Address, B256, Signature, eip191_hash_message};
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
        self.recover_prehash(&eip191_hash_message(digest.as_slice()))
    }

    /// Recovers the address that signed the 32-byte `prehash` (an EIP-191 or EIP-712 digest),
    /// with libsecp256k1: the one recovery of every server hot path. Accepts what `ecrecover`
    /// accepts (high-s included, as alloy/k256 do); refuses r or s of zero or not below n.
    pub fn recover_prehash(&self, prehash: &B256) -> Result<Address, SignatureError> {
        use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
        static CONTEXT: std::sync::LazyLock<secp256k1::Secp256k1<secp256k1::VerifyOnly>> =
            std::sync::LazyLock::new(secp256k1::Secp256k1::verification_only);

        let bytes = self.0.as_bytes();
        let parity = i32::from(self.0.v());
        let recovered = RecoveryId::try_from(parity)
            .and_then(|id| RecoverableSignature::from_compact(&bytes[..64], id))
            .and_then(|sig| CONTEXT.recover_ecdsa(secp256k1::Message::from_digest(prehash.0), &sig))
            .map_err(|_| SignatureError::Unrecoverable)?;
        let point = recovered.serialize_uncompressed();
        let hash = alloy_primitives::keccak256(&point[1..]);
        Ok(Address::from_slice(&hash[12..]))
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

/// libsecp256k1's signing context (signing and key derivation), built once.
static SIGNING: std::sync::LazyLock<secp256k1::Secp256k1<secp256k1::SignOnly>> =
    std::sync::LazyLock::new(secp256k1::Secp256k1::signing_only);

/// Signs the 32 raw bytes of `digest` with the EIP-191 prefix (ethers `signMessage(getBytes(d))`).
pub fn sign_eip191(signer: &PrivateKeySigner, digest: &B256) -> EthSignature {
    sign_prehash(signer, &eip191_hash_message(digest.as_slice()))
}

/// Signs a 32-byte prehash with libsecp256k1: RFC 6979 nonces and low s, so the very
/// signature alloy/k256 makes (`SignerSync::sign_hash_sync`), in a fraction of its time.
pub fn sign_prehash(signer: &PrivateKeySigner, prehash: &B256) -> EthSignature {
    let key: [u8; 32] = signer.to_bytes().0;
    let secret = match secp256k1::SecretKey::from_byte_array(key) {
        Ok(secret) => secret,
        // A PrivateKeySigner always holds a valid scalar.
        Err(e) => unreachable!("a local signer's key is not a secp256k1 key: {e}"),
    };
    let message = secp256k1::Message::from_digest(prehash.0);
    let (id, compact) = SIGNING
        .sign_ecdsa_recoverable(message, &secret)
        .serialize_compact();
    EthSignature(Signature::from_bytes_and_parity(
        &compact,
        i32::from(id) == 1,
    ))
}

/// The address of the secp256k1 private key `key` (32 bytes, big-endian), derived with
/// libsecp256k1 (the enclave challenges of every session); `None` when the bytes are not a key
/// (zero, or not below the curve order).
pub fn address_of_key(key: &[u8; 32]) -> Option<Address> {
    let secret = secp256k1::SecretKey::from_byte_array(*key).ok()?;
    let point = secp256k1::PublicKey::from_secret_key(&SIGNING, &secret).serialize_uncompressed();
    let hash = alloy_primitives::keccak256(&point[1..]);
    Some(Address::from_slice(&hash[12..]))
}

/// Whether `key` is a secp256k1 private key (not zero, below the curve order), without deriving
/// its public key.
pub fn is_private_key(key: &[u8; 32]) -> bool {
    secp256k1::SecretKey::from_byte_array(*key).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_signer::SignerSync;

    /// Signing with libsecp256k1 makes exactly the signature alloy/k256 makes (RFC 6979,
    /// low s), for random keys and messages and for the smallest and largest keys.
    #[test]
    fn libsecp256k1_signs_what_k256_signs() {
        let mut one = [0u8; 32];
        one[31] = 1;
        let mut last = ORDER;
        last[31] -= 1;
        let fixed = [one, last].map(|k| PrivateKeySigner::from_slice(&k).unwrap());
        let random = (0..200).map(|_| PrivateKeySigner::random());
        for signer in fixed.into_iter().chain(random) {
            let prehash = B256::from(rand::random::<[u8; 32]>());
            let k256 = EthSignature(signer.sign_hash_sync(&prehash).unwrap());
            assert_eq!(sign_prehash(&signer, &prehash), k256);
            let digest = B256::from(rand::random::<[u8; 32]>());
            let signed = sign_eip191(&signer, &digest);
            assert_eq!(signed.recover_eip191(&digest).unwrap(), signer.address());
            assert_eq!(
                signed,
                EthSignature(
                    signer
                        .sign_hash_sync(&eip191_hash_message(digest.as_slice()))
                        .unwrap()
                )
            );
        }
    }

    /// alloy/k256's recovery, the reference libsecp256k1 must agree with.
    fn k256_recover(sig: &EthSignature, prehash: &B256) -> Option<Address> {
        sig.inner().recover_address_from_prehash(prehash).ok()
    }

    fn raw_signature(r: [u8; 32], s: [u8; 32], parity: bool) -> EthSignature {
        let mut rs = [0u8; 64];
        rs[..32].copy_from_slice(&r);
        rs[32..].copy_from_slice(&s);
        EthSignature(Signature::from_bytes_and_parity(&rs, parity))
    }

    /// The curve order n, big-endian.
    const ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ];

    fn order_minus(s: &[u8; 32]) -> [u8; 32] {
        let n = alloy_primitives::U256::from_be_bytes(ORDER);
        (n - alloy_primitives::U256::from_be_bytes(*s)).to_be_bytes()
    }

    #[test]
    fn libsecp256k1_agrees_with_k256_on_random_keys_and_messages() {
        for _ in 0..200 {
            let signer = PrivateKeySigner::random();
            let prehash = B256::from(rand::random::<[u8; 32]>());
            let sig = EthSignature(signer.sign_hash_sync(&prehash).unwrap());
            assert_eq!(sig.recover_prehash(&prehash).unwrap(), signer.address());
            assert_eq!(k256_recover(&sig, &prehash), Some(signer.address()));
            // Another message: both recover the same (other) address.
            let other = B256::from(rand::random::<[u8; 32]>());
            assert_eq!(sig.recover_prehash(&other).ok(), k256_recover(&sig, &other));
            // The high-s twin (s' = n - s, parity flipped) is the same signature to ecrecover.
            let bytes = sig.inner().as_bytes();
            let (r, s): ([u8; 32], [u8; 32]) = (
                bytes[..32].try_into().unwrap(),
                bytes[32..64].try_into().unwrap(),
            );
            let high = raw_signature(r, order_minus(&s), !sig.inner().v());
            assert_eq!(
                high.recover_prehash(&prehash).ok(),
                k256_recover(&high, &prehash)
            );
        }
    }

    /// Key derivation with libsecp256k1 agrees with alloy/k256's signer: the same address for
    /// random keys, the same refusal of bytes that are not keys.
    #[test]
    fn libsecp256k1_derives_the_addresses_k256_derives() {
        for _ in 0..200 {
            let signer = PrivateKeySigner::random();
            let key: [u8; 32] = signer.to_bytes().into();
            assert!(is_private_key(&key));
            assert_eq!(address_of_key(&key), Some(signer.address()));
        }
        let mut below = ORDER;
        below[31] -= 1;
        let mut over = ORDER;
        over[31] += 1;
        let mut one = [0u8; 32];
        one[31] = 1;
        for key in [[0u8; 32], ORDER, over, [0xff; 32], below, one] {
            let k256 = PrivateKeySigner::from_slice(&key).ok().map(|s| s.address());
            assert_eq!(
                address_of_key(&key),
                k256,
                "{}",
                crate::hex::encode_prefixed(key)
            );
            assert_eq!(is_private_key(&key), k256.is_some());
        }
        for _ in 0..200 {
            let key: [u8; 32] = rand::random();
            let k256 = PrivateKeySigner::from_slice(&key).ok().map(|s| s.address());
            assert_eq!(address_of_key(&key), k256);
        }
    }

    #[test]
    fn libsecp256k1_and_k256_refuse_the_same_invalid_signatures() {
        let prehash = B256::from(rand::random::<[u8; 32]>());
        let one = {
            let mut b = [0u8; 32];
            b[31] = 1;
            b
        };
        let mut over = ORDER;
        over[31] += 1;
        let cases = [
            ([0u8; 32], one),
            (one, [0u8; 32]),
            (ORDER, one),
            (one, ORDER),
            (over, one),
            (one, over),
            ([0xff; 32], [0xff; 32]),
            // r is not the x of any curve point for many values; try a few.
            ([0x05; 32], one),
            ([0x07; 32], [0x07; 32]),
        ];
        for (r, s) in cases {
            for parity in [false, true] {
                let sig = raw_signature(r, s, parity);
                assert_eq!(
                    sig.recover_prehash(&prehash).ok(),
                    k256_recover(&sig, &prehash),
                    "r={} s={} parity={parity}",
                    crate::hex::encode_prefixed(r),
                    crate::hex::encode_prefixed(s)
                );
            }
        }
        for _ in 0..500 {
            let sig = raw_signature(rand::random(), rand::random(), rand::random());
            assert_eq!(
                sig.recover_prehash(&prehash).ok(),
                k256_recover(&sig, &prehash)
            );
        }
    }

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

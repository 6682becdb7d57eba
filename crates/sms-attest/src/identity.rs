//! The SMS's long-term identity: an Ed25519 key that signs every release answer, so an
//! enclave that pins the public key can tell the real SMS from an impostor that relays or
//! forges answers (docs/provisioning.md, "SMS identity").
//!
//! The signature covers a [`ReleaseTranscript`]: everything the enclave asked (session,
//! service, nonce, its ephemeral public key, a hash of its request, hence of its evidence)
//! and everything the answer says (release number, limit, TEE, measurement, the sealed
//! envelope). Any byte changed on the way, or an answer made for another request, fails.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::seal::SealedEnvelope;

/// The signature scheme of the identity, as named on the wire (`algorithm`).
pub const IDENTITY_ALGORITHM: &str = "Ed25519";
/// Length of an Ed25519 public key, private seed and signature.
pub const PUBLIC_KEY_LEN: usize = 32;
pub const SEED_LEN: usize = 32;
pub const SIGNATURE_LEN: usize = 64;
/// Domain-separation context of [`ReleaseTranscript::to_bytes`], version 2 of the protocol.
pub const ANSWER_CONTEXT: &[u8] = b"iexec-sms/provision/answer/v2";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("an SMS public key is {PUBLIC_KEY_LEN} bytes of Ed25519 in standard base64: {0}")]
    PublicKey(String),
    #[error("an SMS identity seed is {SEED_LEN} bytes, got {0}")]
    Seed(usize),
    #[error("no random bytes from the operating system")]
    Random,
    #[error("the answer is signed by key {actual}, not by the pinned SMS key {expected}: refused")]
    WrongKey { expected: String, actual: String },
    #[error("the answer's signature uses '{0}', not {IDENTITY_ALGORITHM}: refused")]
    Algorithm(String),
    #[error("the answer's signature does not verify with the pinned SMS key: refused")]
    BadSignature,
}

/// An SMS public key, the value an enclave pins.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SmsPublicKey([u8; PUBLIC_KEY_LEN]);

impl std::fmt::Debug for SmsPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmsPublicKey({})", self.key_id())
    }
}

impl SmsPublicKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let raw: [u8; PUBLIC_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| IdentityError::PublicKey(format!("got {} bytes", bytes.len())))?;
        Ok(Self(raw))
    }

    /// Standard base64 of the raw 32 bytes (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, IdentityError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| IdentityError::PublicKey(format!("not base64 ({e})")))?;
        Self::from_bytes(&bytes)
    }

    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The first 8 bytes of SHA-256 of the raw key, lowercase hex: short, stable, and
    /// different for every key in practice (it names a key; it is not what is trusted).
    pub fn key_id(&self) -> String {
        let digest: [u8; 32] = Sha256::digest(self.0).into();
        let (id, _) = digest.split_at(8);
        hex::encode(id)
    }

    /// The identity document of `GET /tee/provisioning/identity`.
    pub fn document(&self) -> IdentityDocument {
        IdentityDocument {
            key_id: self.key_id(),
            algorithm: IDENTITY_ALGORITHM.to_owned(),
            public_key: self.to_base64(),
        }
    }

    /// Checks an answer signature: made by this key, with this algorithm, over `message`.
    pub fn verify(&self, signature: &AnswerSignature, message: &[u8]) -> Result<(), IdentityError> {
        if signature.algorithm != IDENTITY_ALGORITHM {
            return Err(IdentityError::Algorithm(
                signature.algorithm.chars().take(32).collect(),
            ));
        }
        if signature.key_id != self.key_id() {
            return Err(IdentityError::WrongKey {
                expected: self.key_id(),
                actual: signature.key_id.chars().take(32).collect(),
            });
        }
        UnparsedPublicKey::new(&ED25519, self.0)
            .verify(message, &signature.value)
            .map_err(|_| IdentityError::BadSignature)
    }
}

/// `{"keyId", "algorithm", "publicKey"}`: how the SMS names its identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityDocument {
    pub key_id: String,
    pub algorithm: String,
    /// Raw 32-byte Ed25519 public key, standard base64.
    pub public_key: String,
}

/// The signature of a release answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerSignature {
    pub key_id: String,
    pub algorithm: String,
    /// 64 bytes, standard base64.
    #[serde(with = "crate::hexser::base64_bytes")]
    pub value: Vec<u8>,
}

/// The SMS's signing key. The seed never leaves this value except through [`Self::seed`],
/// which the server uses to keep it sealed in its store.
pub struct SmsIdentity {
    seed: Zeroizing<[u8; SEED_LEN]>,
    pair: Ed25519KeyPair,
    public: SmsPublicKey,
}

impl std::fmt::Debug for SmsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsIdentity")
            .field("key_id", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl SmsIdentity {
    /// A fresh identity from the operating system's random generator.
    pub fn generate() -> Result<Self, IdentityError> {
        let rng = ring::rand::SystemRandom::new();
        let seed: [u8; SEED_LEN] = ring::rand::generate(&rng)
            .map_err(|_| IdentityError::Random)?
            .expose();
        Self::from_seed(&Zeroizing::new(seed)[..])
    }

    pub fn from_seed(seed: &[u8]) -> Result<Self, IdentityError> {
        let seed: Zeroizing<[u8; SEED_LEN]> = Zeroizing::new(
            seed.try_into()
                .map_err(|_| IdentityError::Seed(seed.len()))?,
        );
        let pair =
            Ed25519KeyPair::from_seed_unchecked(&seed[..]).map_err(|_| IdentityError::Seed(0))?;
        let public = SmsPublicKey::from_bytes(pair.public_key().as_ref())?;
        Ok(Self { seed, pair, public })
    }

    pub fn seed(&self) -> &[u8; SEED_LEN] {
        &self.seed
    }

    pub fn public_key(&self) -> &SmsPublicKey {
        &self.public
    }

    pub fn sign(&self, message: &[u8]) -> AnswerSignature {
        AnswerSignature {
            key_id: self.public.key_id(),
            algorithm: IDENTITY_ALGORITHM.to_owned(),
            value: self.pair.sign(message).as_ref().to_vec(),
        }
    }
}

/// What a release answer's signature covers.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseTranscript<'a> {
    pub key_id: &'a str,
    pub session_id: &'a str,
    pub service: &'a str,
    /// The raw nonce the request presented.
    pub nonce: &'a [u8],
    /// The raw X25519 key the environment is sealed to.
    pub enclave_public_key: &'a [u8],
    /// SHA-256 of the exact request body (nonce, public key and evidence).
    pub request_sha256: &'a [u8; 32],
    pub release: u32,
    pub limit: u32,
    pub tee: &'a str,
    pub measurement: &'a str,
    pub sealed: &'a SealedEnvelope,
}

impl ReleaseTranscript<'_> {
    /// ```text
    /// "iexec-sms/provision/answer/v2" || 0x00
    ///   || lp(keyId) || lp(sessionId) || lp(service) || lp(nonce) || lp(enclavePublicKey)
    ///   || lp(requestSha256) || u32_be(release) || u32_be(limit) || lp(tee) || lp(measurement)
    ///   || lp(suite) || lp(enc) || lp(ciphertext)
    /// ```
    /// where `lp(x) = u64_be(len(x)) || x`.
    pub fn to_bytes(&self) -> Vec<u8> {
        fn lp(out: &mut Vec<u8>, bytes: &[u8]) {
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        let mut out = Vec::with_capacity(256 + self.sealed.ciphertext.len());
        out.extend_from_slice(ANSWER_CONTEXT);
        out.push(0);
        lp(&mut out, self.key_id.as_bytes());
        lp(&mut out, self.session_id.as_bytes());
        lp(&mut out, self.service.as_bytes());
        lp(&mut out, self.nonce);
        lp(&mut out, self.enclave_public_key);
        lp(&mut out, self.request_sha256);
        out.extend_from_slice(&self.release.to_be_bytes());
        out.extend_from_slice(&self.limit.to_be_bytes());
        lp(&mut out, self.tee.as_bytes());
        lp(&mut out, self.measurement.as_bytes());
        lp(&mut out, self.sealed.suite.as_bytes());
        lp(&mut out, &self.sealed.enc);
        lp(&mut out, &self.sealed.ciphertext);
        out
    }
}

/// SHA-256 of a request body, as [`ReleaseTranscript::request_sha256`] wants it.
pub fn request_sha256(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn envelope() -> SealedEnvelope {
        SealedEnvelope {
            suite: crate::seal::HPKE_SUITE.to_owned(),
            enc: vec![1; 32],
            ciphertext: vec![2; 40],
        }
    }

    fn transcript<'a>(key_id: &'a str, sealed: &'a SealedEnvelope) -> ReleaseTranscript<'a> {
        ReleaseTranscript {
            key_id,
            session_id: "s1",
            service: "app",
            nonce: &[3; 32],
            enclave_public_key: &[4; 32],
            request_sha256: &[5; 32],
            release: 1,
            limit: 1,
            tee: "sgx",
            measurement: "aa",
            sealed,
        }
    }

    #[test]
    fn signs_and_verifies_only_with_the_pinned_key_and_the_same_transcript() {
        let id = SmsIdentity::generate().unwrap();
        let key_id = id.public_key().key_id();
        let sealed = envelope();
        let message = transcript(&key_id, &sealed).to_bytes();
        let sig = id.sign(&message);
        assert_eq!(sig.value.len(), SIGNATURE_LEN);
        id.public_key().verify(&sig, &message).unwrap();

        let impostor = SmsIdentity::generate().unwrap();
        assert!(matches!(
            impostor.public_key().verify(&sig, &message),
            Err(IdentityError::WrongKey { .. })
        ));
        // An impostor that copies the pinned key id still cannot sign.
        let mut forged = impostor.sign(&message);
        forged.key_id = key_id.clone();
        assert_eq!(
            id.public_key().verify(&forged, &message),
            Err(IdentityError::BadSignature)
        );
        // One byte of the transcript changed.
        for i in [0, ANSWER_CONTEXT.len() + 10, message.len() - 1] {
            let mut changed = message.clone();
            changed[i] ^= 1;
            assert_eq!(
                id.public_key().verify(&sig, &changed),
                Err(IdentityError::BadSignature)
            );
        }
        let mut other_alg = sig.clone();
        other_alg.algorithm = "none".into();
        assert!(matches!(
            id.public_key().verify(&other_alg, &message),
            Err(IdentityError::Algorithm(_))
        ));
    }

    #[test]
    fn every_transcript_field_is_covered() {
        let sealed = envelope();
        let base = transcript("k", &sealed);
        let reference = base.to_bytes();
        let other_sealed = SealedEnvelope {
            ciphertext: vec![2; 41],
            ..envelope()
        };
        let variants = [
            ReleaseTranscript {
                session_id: "s2",
                ..base
            },
            ReleaseTranscript {
                service: "post-compute",
                ..base
            },
            ReleaseTranscript {
                nonce: &[9; 32],
                ..base
            },
            ReleaseTranscript {
                enclave_public_key: &[9; 32],
                ..base
            },
            ReleaseTranscript {
                request_sha256: &[9; 32],
                ..base
            },
            ReleaseTranscript { release: 2, ..base },
            ReleaseTranscript { limit: 2, ..base },
            ReleaseTranscript { tee: "tdx", ..base },
            ReleaseTranscript {
                measurement: "ab",
                ..base
            },
            ReleaseTranscript {
                sealed: &other_sealed,
                ..base
            },
            ReleaseTranscript {
                key_id: "k2",
                ..base
            },
        ];
        for v in variants {
            assert_ne!(v.to_bytes(), reference, "{v:?}");
        }
    }

    #[test]
    fn seeds_round_trip_and_keys_parse() {
        let id = SmsIdentity::generate().unwrap();
        let again = SmsIdentity::from_seed(id.seed()).unwrap();
        assert_eq!(again.public_key(), id.public_key());
        let pk =
            SmsPublicKey::from_base64(&format!(" {} \n", id.public_key().to_base64())).unwrap();
        assert_eq!(&pk, id.public_key());
        assert_eq!(pk.key_id().len(), 16);
        assert!(SmsPublicKey::from_base64("AAAA").is_err());
        assert!(SmsPublicKey::from_base64("not base64!").is_err());
        assert_eq!(
            SmsIdentity::from_seed(&[0; 31]).unwrap_err(),
            IdentityError::Seed(31)
        );
        let doc = id.public_key().document();
        assert_eq!(doc.algorithm, "Ed25519");
        assert_eq!(doc.key_id, id.public_key().key_id());
    }
}

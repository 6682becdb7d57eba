//! Sealing what is released to an attested enclave: HPKE (RFC 9180), base mode, with the
//! suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM.
//!
//! The enclave generates an [`EphemeralKey`], binds its public key into its evidence with
//! [`report_data_binding`](crate::report_data_binding), and opens the answer with
//! [`EphemeralKey::open`]. The server seals with [`seal`]. The HPKE `info` is
//! [`release_info`]`(session_id, service)`, so an envelope sealed for one service of one
//! session does not open as another; the AAD is empty.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

type Kem = X25519HkdfSha256;

/// The HPKE suite, as named in the JSON answer (`suite`).
pub const HPKE_SUITE: &str = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM";

/// Length of an X25519 public key and of the HPKE encapsulated key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// Domain-separation context of [`release_info`], version 1.
pub const RELEASE_INFO_CONTEXT: &[u8] = b"iexec-sms/provision/release/v1";

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("public key must be {PUBLIC_KEY_LEN} bytes of X25519, got {0} bytes")]
    PublicKeyLength(usize),
    #[error("public key is not a valid X25519 key")]
    PublicKeyInvalid,
    #[error("encapsulated key is not valid")]
    EncappedKeyInvalid,
    #[error("HPKE sealing failed")]
    Seal,
    /// Wrong key, wrong session or service, or a tampered envelope.
    #[error("the envelope does not open with this key for this session and service")]
    Open,
}

/// The HPKE `info` of a release:
///
/// ```text
/// "iexec-sms/provision/release/v1" || 0x00
///   || u64_be(len(session_id)) || session_id || u64_be(len(service)) || service
/// ```
pub fn release_info(session_id: &str, service: &str) -> Vec<u8> {
    let mut info =
        Vec::with_capacity(RELEASE_INFO_CONTEXT.len() + 17 + session_id.len() + service.len());
    info.extend_from_slice(RELEASE_INFO_CONTEXT);
    info.push(0);
    for part in [session_id.as_bytes(), service.as_bytes()] {
        info.extend_from_slice(&(part.len() as u64).to_be_bytes());
        info.extend_from_slice(part);
    }
    info
}

/// An HPKE envelope: the encapsulated key and the ciphertext (with its 16-byte tag), both in
/// standard base64 in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedEnvelope {
    /// The HPKE suite; [`HPKE_SUITE`].
    pub suite: String,
    #[serde(with = "crate::hexser::base64_bytes")]
    pub enc: Vec<u8>,
    #[serde(with = "crate::hexser::base64_bytes")]
    pub ciphertext: Vec<u8>,
}

/// Parses a raw 32-byte X25519 public key.
pub fn parse_public_key(bytes: &[u8]) -> Result<<Kem as hpke::Kem>::PublicKey, SealError> {
    if bytes.len() != PUBLIC_KEY_LEN {
        return Err(SealError::PublicKeyLength(bytes.len()));
    }
    <Kem as hpke::Kem>::PublicKey::from_bytes(bytes).map_err(|_| SealError::PublicKeyInvalid)
}

/// Seals `plaintext` to the raw X25519 `public_key` with `info` (see [`release_info`]).
pub fn seal(public_key: &[u8], info: &[u8], plaintext: &[u8]) -> Result<SealedEnvelope, SealError> {
    let pk = parse_public_key(public_key)?;
    let (enc, ciphertext) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, Kem>(
        &OpModeS::Base,
        &pk,
        info,
        plaintext,
        b"",
    )
    .map_err(|_| SealError::Seal)?;
    Ok(SealedEnvelope {
        suite: HPKE_SUITE.to_owned(),
        enc: enc.to_bytes().to_vec(),
        ciphertext,
    })
}

/// The enclave's ephemeral key pair. The private key never leaves this value (it is wiped
/// when dropped by the HPKE crate); the public key goes into the request and the report data.
pub struct EphemeralKey {
    private: <Kem as hpke::Kem>::PrivateKey,
    public: [u8; PUBLIC_KEY_LEN],
}

impl std::fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralKey")
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

impl EphemeralKey {
    /// A fresh key pair from the operating system's random generator.
    pub fn generate() -> Self {
        let (private, public) = Kem::gen_keypair();
        let mut raw = [0u8; PUBLIC_KEY_LEN];
        raw.copy_from_slice(&public.to_bytes());
        EphemeralKey {
            private,
            public: raw,
        }
    }

    /// The raw 32-byte X25519 public key.
    pub fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public
    }

    /// The public key in standard base64, as the release request carries it.
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.public)
    }

    /// Opens an envelope sealed to this key with `info`.
    pub fn open(
        &self,
        info: &[u8],
        envelope: &SealedEnvelope,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if envelope.suite != HPKE_SUITE {
            return Err(SealError::Open);
        }
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&envelope.enc)
            .map_err(|_| SealError::EncappedKeyInvalid)?;
        hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.private,
            &enc,
            info,
            &envelope.ciphertext,
            b"",
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_right_key_and_info() {
        let key = EphemeralKey::generate();
        let info = release_info("s1", "app");
        let envelope = seal(key.public_key(), &info, b"{\"env\":{}}").unwrap();
        assert_eq!(envelope.enc.len(), PUBLIC_KEY_LEN);
        assert_eq!(
            key.open(&info, &envelope).unwrap().as_slice(),
            b"{\"env\":{}}"
        );

        let other = EphemeralKey::generate();
        assert_eq!(other.open(&info, &envelope).unwrap_err(), SealError::Open);
        assert_eq!(
            key.open(&release_info("s1", "post-compute"), &envelope)
                .unwrap_err(),
            SealError::Open
        );
        assert_eq!(
            key.open(&release_info("s2", "app"), &envelope).unwrap_err(),
            SealError::Open
        );

        let mut tampered = envelope.clone();
        if let Some(b) = tampered.ciphertext.first_mut() {
            *b ^= 1;
        }
        assert_eq!(key.open(&info, &tampered).unwrap_err(), SealError::Open);

        let json = serde_json::to_string(&envelope).unwrap();
        let back: SealedEnvelope = serde_json::from_str(&json).unwrap();
        assert_eq!(key.open(&info, &back).unwrap().as_slice(), b"{\"env\":{}}");
    }

    #[test]
    fn info_is_length_prefixed_and_keys_are_checked() {
        assert_ne!(release_info("ab", "c"), release_info("a", "bc"));
        let mut expected = b"iexec-sms/provision/release/v1\0".to_vec();
        expected.extend_from_slice(&1u64.to_be_bytes());
        expected.push(b's');
        expected.extend_from_slice(&3u64.to_be_bytes());
        expected.extend_from_slice(b"app");
        assert_eq!(release_info("s", "app"), expected);
        assert_eq!(
            seal(&[1; 31], b"", b"x").unwrap_err(),
            SealError::PublicKeyLength(31)
        );
        let key = EphemeralKey::generate();
        assert_eq!(
            STANDARD.decode(key.public_key_base64()).unwrap(),
            key.public_key()
        );
    }
}

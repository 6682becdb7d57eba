//! Dataset keys and the encrypted dataset file format.
//!
//! An encrypted dataset is `IV(16) ‖ AES-256-CBC-PKCS7(plaintext)` with nothing else around it
//! (no header, no MAC). The key is 32 random bytes, carried as standard padded base64 (44
//! characters; that string is the SMS web3 secret of the dataset). The on-chain checksum is
//! `0x` + lowercase hex of the sha256 of the *encrypted* file bytes, compared as a string.

use std::fmt;
use std::io::{self, Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use sms_core::B256;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::cbc_stream::{self, BLOCK, CbcError, KEY_LEN};

/// Length of the base64 form of a dataset key.
pub const KEY_BASE64_LEN: usize = 44;

/// Dataset key or format failure.
#[derive(Debug, Error)]
pub enum DatasetError {
    #[error("dataset key is not standard padded base64")]
    KeyNotBase64,
    #[error("dataset key must decode to exactly 32 bytes, got {0}")]
    KeyLength(usize),
    #[error(transparent)]
    Cipher(#[from] CbcError),
}

impl From<io::Error> for DatasetError {
    fn from(e: io::Error) -> Self {
        Self::Cipher(CbcError::Io(e))
    }
}

/// The dataset part of pre-compute's arguments. The key is wiped on drop and never printed.
pub struct DatasetArgs {
    pub url: String,
    pub key: Zeroizing<String>,
    pub checksum: String,
    pub filename: String,
}

/// A 32-byte AES-256 dataset key, wiped from memory on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct DatasetKey(Zeroizing<[u8; KEY_LEN]>);

impl DatasetKey {
    /// 32 fresh bytes from a CSPRNG seeded by the operating system.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(key.as_mut_slice());
        Self(key)
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Parses the standard padded base64 form (surrounding whitespace ignored); the decoded
    /// value must be exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, DatasetError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| DatasetError::KeyNotBase64)?,
        );
        if decoded.len() != KEY_LEN {
            return Err(DatasetError::KeyLength(decoded.len()));
        }
        // Copy straight into the wiped buffer (no stray stack copy of the key).
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&decoded);
        Ok(Self(key))
    }

    /// The 44-character standard padded base64 form.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_slice()))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DatasetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatasetKey(<redacted>)")
    }
}

/// sha256 of an encrypted dataset file; displays as `0x` + 64 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Checksum(pub B256);

impl Checksum {
    /// `0x` + 64 lowercase hex digits: the on-chain dataset checksum.
    pub fn to_hex(&self) -> String {
        sms_core::hex::encode_prefixed(self.0)
    }

    /// Exact string comparison with an expected checksum, as pre-compute does.
    pub fn matches(&self, expected: &str) -> bool {
        self.to_hex() == expected
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Outcome of [`encrypt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encrypted {
    /// Checksum of the bytes written (IV included).
    pub checksum: Checksum,
    /// Bytes written: 16 + padded ciphertext length.
    pub encrypted_len: u64,
}

/// Outcome of [`decrypt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decrypted {
    /// Checksum of the encrypted bytes read, to compare with the on-chain checksum.
    pub checksum: Checksum,
    pub plaintext_len: u64,
}

/// Writer adapter hashing everything written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reader adapter hashing everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn finish(hasher: Sha256) -> Checksum {
    Checksum(B256::from_slice(&hasher.finalize()))
}

/// Encrypts `reader` into `writer` as `IV ‖ AES-256-CBC-PKCS7` with a fresh random IV, in
/// constant memory, and returns the checksum of the written bytes.
pub fn encrypt<R: Read, W: Write>(
    reader: R,
    writer: W,
    key: &DatasetKey,
) -> Result<Encrypted, DatasetError> {
    encrypt_with_progress(reader, writer, key, &mut |_| {})
}

/// [`encrypt`] calling `progress` with the cumulative number of plaintext bytes consumed.
pub fn encrypt_with_progress<R: Read, W: Write>(
    reader: R,
    writer: W,
    key: &DatasetKey,
    progress: &mut dyn FnMut(u64),
) -> Result<Encrypted, DatasetError> {
    let mut iv = [0u8; BLOCK];
    rand::rng().fill_bytes(&mut iv);
    encrypt_with_iv(reader, writer, key, &iv, progress)
}

/// [`encrypt`] with a caller-chosen IV. Only for reproducing known vectors: an IV must never be
/// reused with the same key.
pub fn encrypt_with_iv<R: Read, W: Write>(
    mut reader: R,
    writer: W,
    key: &DatasetKey,
    iv: &[u8; BLOCK],
    progress: &mut dyn FnMut(u64),
) -> Result<Encrypted, DatasetError> {
    let mut out = HashingWriter {
        inner: writer,
        hasher: Sha256::new(),
    };
    let encrypted_len = cbc_stream::encrypt(&mut reader, &mut out, key.as_bytes(), iv, progress)?;
    Ok(Encrypted {
        checksum: finish(out.hasher),
        encrypted_len,
    })
}

/// Decrypts an `IV ‖ ciphertext` stream into `writer` in constant memory, hashing the encrypted
/// bytes on the way. Input shorter than 16 bytes, a ciphertext that is not whole blocks, and
/// a wrong key or corrupted last block (invalid padding) are errors.
///
/// The plaintext is streamed before the final padding check: on error, discard the output.
/// Without a MAC a wrong key is only detected through the padding, so about 1 in 256 wrong
/// keys goes unnoticed; compare [`Decrypted::checksum`] with the expected one.
pub fn decrypt<R: Read, W: Write>(
    reader: R,
    writer: W,
    key: &DatasetKey,
) -> Result<Decrypted, DatasetError> {
    decrypt_with_progress(reader, writer, key, &mut |_| {})
}

/// [`decrypt`] calling `progress` with the cumulative number of encrypted bytes consumed.
pub fn decrypt_with_progress<R: Read, W: Write>(
    reader: R,
    mut writer: W,
    key: &DatasetKey,
    progress: &mut dyn FnMut(u64),
) -> Result<Decrypted, DatasetError> {
    let mut input = HashingReader {
        inner: reader,
        hasher: Sha256::new(),
    };
    let plaintext_len = cbc_stream::decrypt(&mut input, &mut writer, key.as_bytes(), progress)?;
    // Hash anything after the last block boundary that was not consumed (nothing, normally).
    io::copy(&mut input, &mut io::sink())?;
    Ok(Decrypted {
        checksum: finish(input.hasher),
        plaintext_len,
    })
}

/// Checksum of already-encrypted bytes (`0x` + sha256).
pub fn checksum<R: Read>(mut reader: R) -> io::Result<Checksum> {
    let mut hasher = HashingWriter {
        inner: io::sink(),
        hasher: Sha256::new(),
    };
    io::copy(&mut reader, &mut hasher)?;
    Ok(finish(hasher.hasher))
}

#[cfg(test)]
mod tests {
    use super::*;

    // reference/iexec-client-chain.md §3 (pre-compute `encrypted-data.bin`).
    const VECTOR_KEY: &str = "ubA6H9emVPJT91/flYAmnKHC0phSV3cfuqsLxQfgow0=";
    const VECTOR_KEY_HEX: &str = "b9b03a1fd7a654f253f75fdf9580269ca1c2d2985257771fbaab0bc507e0a30d";
    const VECTOR_FILE_HEX: &str = "78ab4c3200a47fafad8e9b58c24004f6 3876 39f4 a680 10f0 038d 45fd 48be ffa8 95bc e705 6c2f 37c9 2624 52c6 63fa 545b";
    const VECTOR_CHECKSUM: &str =
        "0x02a12ef127dcfbdb294a090c8f0b69a0ca30b7940fc36cabf971f488efd374d7";
    const VECTOR_PLAIN: &[u8] = b"Some very useful data.";

    fn vector_file() -> Vec<u8> {
        let compact: String = VECTOR_FILE_HEX.split_whitespace().collect();
        let bytes = sms_core::hex::decode_lenient(&compact).unwrap();
        assert_eq!(bytes.len(), 48);
        bytes
    }

    #[test]
    fn key_vector_parses() {
        let key = DatasetKey::from_base64(VECTOR_KEY).unwrap();
        assert_eq!(
            sms_core::hex::encode_prefixed(key.as_bytes()),
            format!("0x{VECTOR_KEY_HEX}")
        );
        assert_eq!(key.to_base64().as_str(), VECTOR_KEY);
    }

    #[test]
    fn decrypts_upstream_vector_and_checks_checksum() {
        let key = DatasetKey::from_base64(VECTOR_KEY).unwrap();
        let file = vector_file();
        assert!(checksum(file.as_slice()).unwrap().matches(VECTOR_CHECKSUM));
        let mut plain = Vec::new();
        let out = decrypt(file.as_slice(), &mut plain, &key).unwrap();
        assert_eq!(plain, VECTOR_PLAIN);
        assert_eq!(out.plaintext_len, 22);
        assert_eq!(out.checksum.to_string(), VECTOR_CHECKSUM);
    }

    #[test]
    fn encrypting_with_the_vector_iv_reproduces_the_file() {
        let key = DatasetKey::from_base64(VECTOR_KEY).unwrap();
        let file = vector_file();
        let iv: [u8; 16] = file[..16].try_into().unwrap();
        let mut out = Vec::new();
        let enc = encrypt_with_iv(VECTOR_PLAIN, &mut out, &key, &iv, &mut |_| {}).unwrap();
        assert_eq!(out, file);
        assert_eq!(enc.encrypted_len, 48);
        assert_eq!(enc.checksum.to_hex(), VECTOR_CHECKSUM);
    }

    #[test]
    fn generated_keys_are_44_chars_and_round_trip() {
        let a = DatasetKey::generate();
        let b = DatasetKey::generate();
        assert_ne!(a, b);
        let text = a.to_base64();
        assert_eq!(text.len(), KEY_BASE64_LEN);
        assert!(text.ends_with('='));
        assert_eq!(DatasetKey::from_base64(&text).unwrap(), a);
        assert_eq!(format!("{a:?}"), "DatasetKey(<redacted>)");
    }

    #[test]
    fn key_parsing_errors() {
        assert!(matches!(
            DatasetKey::from_base64("not base64!"),
            Err(DatasetError::KeyNotBase64)
        ));
        // 16 bytes (an AES-128 key) is refused.
        assert!(matches!(
            DatasetKey::from_base64("AAAAAAAAAAAAAAAAAAAAAA=="),
            Err(DatasetError::KeyLength(16))
        ));
        // URL-safe alphabet is not the standard one.
        assert!(matches!(
            DatasetKey::from_base64("ubA6H9emVPJT91_flYAmnKHC0phSV3cfuqsLxQfgow0="),
            Err(DatasetError::KeyNotBase64)
        ));
        // Missing padding.
        assert!(DatasetKey::from_base64(VECTOR_KEY.trim_end_matches('=')).is_err());
        assert!(DatasetKey::from_base64(&format!(" {VECTOR_KEY}\n")).is_ok());
    }

    #[test]
    fn round_trip_with_random_iv_and_checksum() {
        let key = DatasetKey::generate();
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut enc = Vec::new();
        let mut last = 0;
        let out =
            encrypt_with_progress(plain.as_slice(), &mut enc, &key, &mut |n| last = n).unwrap();
        assert_eq!(last, plain.len() as u64);
        assert_eq!(out.encrypted_len, enc.len() as u64);
        assert_eq!(out.checksum, checksum(enc.as_slice()).unwrap());
        let mut enc2 = Vec::new();
        encrypt(plain.as_slice(), &mut enc2, &key).unwrap();
        assert_ne!(enc[..16], enc2[..16], "IV must be fresh");
        let mut dec = Vec::new();
        let d = decrypt(enc.as_slice(), &mut dec, &key).unwrap();
        assert_eq!(dec, plain);
        assert_eq!(d.checksum, out.checksum);
    }

    #[test]
    fn wrong_key_fails_on_padding() {
        let wrong = DatasetKey::from_bytes([0x11; 32]);
        let err = decrypt(vector_file().as_slice(), io::sink(), &wrong).unwrap_err();
        assert!(
            matches!(err, DatasetError::Cipher(CbcError::BadPadding)),
            "{err}"
        );
    }

    #[test]
    fn corrupted_last_block_fails_on_padding() {
        let key = DatasetKey::from_base64(VECTOR_KEY).unwrap();
        let mut file = vector_file();
        file[47] ^= 0xff;
        let err = decrypt(file.as_slice(), io::sink(), &key).unwrap_err();
        assert!(
            matches!(err, DatasetError::Cipher(CbcError::BadPadding)),
            "{err}"
        );
    }

    #[test]
    fn truncated_files_fail() {
        let key = DatasetKey::from_base64(VECTOR_KEY).unwrap();
        let file = vector_file();
        for (len, expected) in [
            (0, "shorter"),
            (10, "shorter"),
            (16, "no ciphertext"),
            (40, "multiple of 16"),
        ] {
            let err = decrypt(&file[..len], io::sink(), &key).unwrap_err();
            assert!(err.to_string().contains(expected), "{len}: {err}");
        }
        // Dropping a whole block leaves a valid length but a wrong last block.
        assert!(decrypt(&file[..32], io::sink(), &key).is_err());
    }
}

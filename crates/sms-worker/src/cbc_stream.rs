//! Streaming `IV(16) ‖ AES-256-CBC/PKCS#7` encryption and decryption in constant memory.
//!
//! Shared by the dataset format and the result archive payload (`iexec_out.zip.aes`); plus the
//! in-memory AES-128-ECB of legacy result archives.

use std::io::{self, Read, Write};

use aes::Aes256;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use thiserror::Error;
use zeroize::Zeroizing;

pub(crate) const BLOCK: usize = 16;
pub(crate) const KEY_LEN: usize = 32;
/// Plaintext/ciphertext processed per step (a multiple of [`BLOCK`]).
const CHUNK: usize = 64 * 1024;

type Enc = cbc::Encryptor<Aes256>;
type Dec = cbc::Decryptor<Aes256>;

/// Progress hook: called with the cumulative number of *input* bytes consumed so far.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// Failure of a streaming CBC operation.
#[derive(Debug, Error)]
pub enum CbcError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("encrypted input is {0} bytes, shorter than the 16-byte IV")]
    MissingIv(u64),
    #[error("encrypted input has no ciphertext after the IV")]
    EmptyCiphertext,
    #[error("ciphertext length {0} is not a multiple of 16 bytes (truncated file?)")]
    NotBlockAligned(u64),
    #[error("invalid PKCS#7 padding (wrong key or corrupted file)")]
    BadPadding,
}

/// Reads until `buf` is full or the reader reports end of input; returns the bytes read.
fn read_full<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn blocks_mut(buf: &mut [u8]) -> &mut [aes::Block] {
    aes::Block::slice_as_chunks_mut(buf).0
}

/// Writes `iv ‖ AES-256-CBC-PKCS7(reader)` to `writer`. Returns the number of bytes written.
pub(crate) fn encrypt<R: Read + ?Sized, W: Write + ?Sized>(
    reader: &mut R,
    writer: &mut W,
    key: &[u8; KEY_LEN],
    iv: &[u8; BLOCK],
    progress: Progress<'_>,
) -> Result<u64, CbcError> {
    let mut cipher = Enc::new(key.into(), iv.into());
    writer.write_all(iv)?;
    let mut written = BLOCK as u64;
    let mut consumed = 0u64;
    let mut buf = Zeroizing::new(vec![0u8; CHUNK + BLOCK]);
    loop {
        let n = read_full(reader, &mut buf[..CHUNK])?;
        consumed += n as u64;
        let len = if n == CHUNK {
            n
        } else {
            // End of input: PKCS#7 always adds 1..=16 bytes.
            let pad = BLOCK - n % BLOCK;
            buf[n..n + pad].fill(pad as u8);
            n + pad
        };
        cipher.encrypt_blocks(blocks_mut(&mut buf[..len]));
        writer.write_all(&buf[..len])?;
        written += len as u64;
        progress(consumed);
        if n < CHUNK {
            break;
        }
    }
    writer.flush()?;
    Ok(written)
}

/// Reads `iv ‖ ciphertext` from `reader` and writes the unpadded plaintext to `writer`.
/// Returns the number of plaintext bytes written.
///
/// Plaintext is streamed out before the padding of the last block is checked: on error the
/// caller must discard what was written.
pub(crate) fn decrypt<R: Read + ?Sized, W: Write + ?Sized>(
    reader: &mut R,
    writer: &mut W,
    key: &[u8; KEY_LEN],
    progress: Progress<'_>,
) -> Result<u64, CbcError> {
    let mut iv = [0u8; BLOCK];
    let n = read_full(reader, &mut iv)?;
    if n < BLOCK {
        return Err(CbcError::MissingIv(n as u64));
    }
    let mut cipher = Dec::new(key.into(), (&iv).into());
    let mut consumed = BLOCK as u64;
    let mut written = 0u64;
    let mut buf = Zeroizing::new(vec![0u8; CHUNK + BLOCK]);
    let mut filled = 0usize;
    loop {
        let n = read_full(reader, &mut buf[filled..])?;
        consumed += n as u64;
        filled += n;
        let eof = filled < buf.len();
        if eof {
            if filled == 0 {
                return Err(CbcError::EmptyCiphertext);
            }
            if !filled.is_multiple_of(BLOCK) {
                return Err(CbcError::NotBlockAligned(consumed - BLOCK as u64));
            }
            cipher.decrypt_blocks(blocks_mut(&mut buf[..filled]));
            let pad = pkcs7_pad_len(&buf[filled - BLOCK..filled])?;
            let plain = filled - pad;
            writer.write_all(&buf[..plain])?;
            written += plain as u64;
            progress(consumed);
            break;
        }
        // Keep the last complete block (it may hold the padding) and any partial block.
        let process = (filled / BLOCK - 1) * BLOCK;
        cipher.decrypt_blocks(blocks_mut(&mut buf[..process]));
        writer.write_all(&buf[..process])?;
        written += process as u64;
        buf.copy_within(process..filled, 0);
        filled -= process;
        progress(consumed);
    }
    writer.flush()?;
    Ok(written)
}

/// Length of the PKCS#7 padding ending `last_block`, checked strictly.
/// Legacy result payloads (the SDK's first format): `AES-128-ECB/PKCS#7(plaintext)` under a
/// 16-byte key, in memory (those archives were small and the SDK read them whole).
pub(crate) fn decrypt_ecb_128(ciphertext: &[u8], key: &[u8; 16]) -> Result<Vec<u8>, CbcError> {
    use aes::cipher::{BlockCipherDecrypt, KeyInit};
    if ciphertext.is_empty() {
        return Err(CbcError::EmptyCiphertext);
    }
    if !ciphertext.len().is_multiple_of(BLOCK) {
        return Err(CbcError::NotBlockAligned(ciphertext.len() as u64));
    }
    let cipher = aes::Aes128::new(key.into());
    let mut plain = ciphertext.to_vec();
    cipher.decrypt_blocks(blocks_mut(&mut plain));
    let pad = pkcs7_pad_len(&plain[plain.len() - BLOCK..])?;
    plain.truncate(plain.len() - pad);
    Ok(plain)
}

fn pkcs7_pad_len(last_block: &[u8]) -> Result<usize, CbcError> {
    let pad = usize::from(*last_block.last().ok_or(CbcError::BadPadding)?);
    if pad == 0 || pad > BLOCK || pad > last_block.len() {
        return Err(CbcError::BadPadding);
    }
    let tail = &last_block[last_block.len() - pad..];
    // Fold over the whole tail so timing does not depend on where a mismatch is.
    let diff = tail.iter().fold(0u8, |acc, &b| acc | (b ^ pad as u8));
    if diff != 0 {
        return Err(CbcError::BadPadding);
    }
    Ok(pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_progress() -> impl FnMut(u64) {
        |_| {}
    }

    fn round_trip(len: usize) {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let key = [9u8; KEY_LEN];
        let iv = [4u8; BLOCK];
        let mut enc = Vec::new();
        let n = encrypt(
            &mut plain.as_slice(),
            &mut enc,
            &key,
            &iv,
            &mut no_progress(),
        )
        .unwrap();
        assert_eq!(n as usize, enc.len());
        assert_eq!(enc.len(), BLOCK + (len / BLOCK + 1) * BLOCK);
        let mut dec = Vec::new();
        let m = decrypt(&mut enc.as_slice(), &mut dec, &key, &mut no_progress()).unwrap();
        assert_eq!(m as usize, len);
        assert_eq!(dec, plain);
    }

    #[test]
    fn round_trips_around_block_and_chunk_boundaries() {
        for len in [
            0,
            1,
            15,
            16,
            17,
            31,
            32,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            CHUNK + BLOCK,
            2 * CHUNK + 5,
            3 * CHUNK,
        ] {
            round_trip(len);
        }
    }

    /// A reader returning at most 7 bytes per call, to exercise partial reads.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn handles_short_reads_and_reports_progress() {
        let plain = vec![0xa5u8; CHUNK * 2 + 100];
        let key = [1u8; KEY_LEN];
        let mut enc = Vec::new();
        let mut seen = Vec::new();
        encrypt(
            &mut Trickle(&plain),
            &mut enc,
            &key,
            &[2u8; BLOCK],
            &mut |n| seen.push(n),
        )
        .unwrap();
        assert_eq!(seen.last().copied(), Some(plain.len() as u64));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        let mut dec = Vec::new();
        let mut seen = Vec::new();
        decrypt(&mut Trickle(&enc), &mut dec, &key, &mut |n| seen.push(n)).unwrap();
        assert_eq!(seen.last().copied(), Some(enc.len() as u64));
        assert_eq!(dec, plain);
    }

    #[test]
    fn refuses_short_or_misaligned_input() {
        let key = [0u8; KEY_LEN];
        let mut out = Vec::new();
        assert!(matches!(
            decrypt(&mut &[0u8; 15][..], &mut out, &key, &mut no_progress()),
            Err(CbcError::MissingIv(15))
        ));
        assert!(matches!(
            decrypt(&mut &[0u8; 16][..], &mut out, &key, &mut no_progress()),
            Err(CbcError::EmptyCiphertext)
        ));
        assert!(matches!(
            decrypt(&mut &[0u8; 40][..], &mut out, &key, &mut no_progress()),
            Err(CbcError::NotBlockAligned(24))
        ));
    }

    #[test]
    fn strict_padding_check() {
        assert_eq!(pkcs7_pad_len(&[3u8; 16]).unwrap(), 3);
        assert_eq!(pkcs7_pad_len(&[16u8; 16]).unwrap(), 16);
        assert!(pkcs7_pad_len(&[0u8; 16]).is_err());
        assert!(pkcs7_pad_len(&[17u8; 16]).is_err());
        let mut b = [2u8; 16];
        b[14] = 1;
        assert!(pkcs7_pad_len(&b).is_err());
    }
}

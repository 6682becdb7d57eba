//! Result digests (the `result-digest` of computed.json and the contribution's `resultDigest`).
//!
//! - web2: the sha256 of the deterministic output file, or for a directory the keccak256 of
//!   the concatenated sha256 digests of its direct children sorted by name (sub-directories
//!   and empty files contribute nothing);
//! - web3 (callback): keccak256 of the hex-*decoded* `callback-data` bytes, which is what the
//!   contract checks (`keccak256(resultsCallback) == resultDigest`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sms_core::B256;
use sms_core::hash::keccak_concat;
use thiserror::Error;

use crate::computed::ComputedFile;

/// Why no digest could be computed (`POST_COMPUTE_RESULT_DIGEST_COMPUTATION_FAILED`).
#[derive(Debug, Error)]
pub enum DigestError {
    #[error("deterministic-output-path is missing or empty")]
    NoOutputPath,
    #[error("{0} does not exist")]
    NotFound(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0} is an empty file")]
    EmptyFile(PathBuf),
    #[error("{0} is an empty directory")]
    EmptyDirectory(PathBuf),
    #[error("{0} is neither a file nor a directory")]
    NotFileOrDirectory(PathBuf),
    #[error("callback-data is missing or empty")]
    NoCallbackData,
    #[error("callback-data is not hexadecimal")]
    CallbackDataNotHex,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DigestError + '_ {
    move |source| DigestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// sha256 of a file's content, streamed; `None` for an empty file.
pub fn file_sha256(path: &Path) -> Result<Option<B256>, DigestError> {
    let mut file = fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let len = io::copy(&mut file, &mut hasher).map_err(io_err(path))?;
    Ok((len > 0).then(|| B256::from_slice(&hasher.finalize())))
}

/// Web2 digest of a file or directory (symbolic links are followed).
pub fn web2_digest(path: &Path) -> Result<B256, DigestError> {
    if path.as_os_str().is_empty() {
        return Err(DigestError::NoOutputPath);
    }
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(DigestError::NotFound(path.to_path_buf()));
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    if meta.is_file() {
        return file_sha256(path)?.ok_or_else(|| DigestError::EmptyFile(path.to_path_buf()));
    }
    if !meta.is_dir() {
        return Err(DigestError::NotFileOrDirectory(path.to_path_buf()));
    }
    let mut children = Vec::new();
    for entry in fs::read_dir(path).map_err(io_err(path))? {
        children.push(entry.map_err(io_err(path))?.path());
    }
    if children.is_empty() {
        return Err(DigestError::EmptyDirectory(path.to_path_buf()));
    }
    children.sort();
    let mut digests = Vec::with_capacity(children.len());
    for child in &children {
        let is_file = fs::metadata(child).map_err(io_err(child))?.is_file();
        if is_file && let Some(digest) = file_sha256(child)? {
            digests.push(digest);
        }
    }
    let parts: Vec<&[u8]> = digests.iter().map(|d| d.as_slice()).collect();
    Ok(keccak_concat(&parts))
}

/// Web3 digest: keccak256 of the hex-decoded callback data (`0x` optional; an odd number of
/// digits is read as if left-padded with `0`).
pub fn web3_digest(callback_data: &str) -> Result<B256, DigestError> {
    let text = callback_data.trim();
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.is_empty() {
        return Err(DigestError::NoCallbackData);
    }
    let bytes =
        sms_core::hex::decode_lenient(digits).map_err(|_| DigestError::CallbackDataNotHex)?;
    Ok(sms_core::hash::keccak_concat(&[&bytes]))
}

/// The digest of a computed file: web3 in callback mode, web2 of its output path otherwise.
pub fn result_digest(computed: &ComputedFile, callback_mode: bool) -> Result<B256, DigestError> {
    if callback_mode {
        web3_digest(
            computed
                .callback_data
                .as_deref()
                .ok_or(DigestError::NoCallbackData)?,
        )
    } else {
        let path = computed.deterministic_output_path.as_deref().unwrap_or("");
        web2_digest(Path::new(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: B256) -> String {
        d.to_string()
    }

    // Vectors from reference/iexec-client-chain.md §13.3.
    #[test]
    fn web2_file_vector() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("result.txt");
        fs::write(&file, "test content").unwrap();
        assert_eq!(
            hex(web2_digest(&file).unwrap()),
            "0x6ae8a75555209fd6c44157c0aed8016e763ff435a19cf186f76863140143ff72"
        );
    }

    #[test]
    fn web2_directory_vector_ignores_subdirs_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        // Written out of order on purpose: the digest sorts by name.
        fs::write(dir.path().join("file2.txt"), "content 2").unwrap();
        fs::write(dir.path().join("file1.txt"), "content 1").unwrap();
        let expected = "0x72c4f24e985ca67e658310fbbb4d408369cba553676d625cb5bf74391f22f010";
        assert_eq!(hex(web2_digest(dir.path()).unwrap()), expected);
        fs::write(dir.path().join("empty.txt"), "").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub").join("file0.txt"), "ignored").unwrap();
        assert_eq!(hex(web2_digest(dir.path()).unwrap()), expected);
        // The concatenation is of the two sha256 digests, in name order.
        let d1 = sms_core::hash::sha256(b"content 1");
        let d2 = sms_core::hash::sha256(b"content 2");
        assert_eq!(
            hex(keccak_concat(&[d1.as_slice(), d2.as_slice()])),
            expected
        );
    }

    #[test]
    fn web2_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            web2_digest(dir.path()),
            Err(DigestError::EmptyDirectory(_))
        ));
        assert!(matches!(
            web2_digest(&dir.path().join("missing")),
            Err(DigestError::NotFound(_))
        ));
        let empty = dir.path().join("empty");
        fs::write(&empty, "").unwrap();
        assert!(matches!(
            web2_digest(&empty),
            Err(DigestError::EmptyFile(_))
        ));
        assert!(matches!(
            web2_digest(Path::new("")),
            Err(DigestError::NoOutputPath)
        ));
    }

    #[test]
    fn web3_digest_hashes_decoded_bytes() {
        let data = format!("0x{}01", "00".repeat(31));
        assert_eq!(
            hex(web3_digest(&data).unwrap()),
            "0xb10e2d527612073b26eecdfd717e6a320cf44b4afac2b0732d9fcbe2b7fa0cf6"
        );
        // Not the upstream Rust post-compute bug (keccak of the 66-character text).
        assert_ne!(
            hex(web3_digest(&data).unwrap()),
            "0xcb371be217faa47dab94e0d0ff0840c6cbf41645f0dc1a6ae3f34447155a76f3"
        );
        assert_eq!(
            hex(sms_core::hash::keccak_utf8(&data)),
            "0xcb371be217faa47dab94e0d0ff0840c6cbf41645f0dc1a6ae3f34447155a76f3"
        );
        assert!(matches!(
            web3_digest("0x"),
            Err(DigestError::NoCallbackData)
        ));
        assert!(matches!(web3_digest(""), Err(DigestError::NoCallbackData)));
        assert!(matches!(
            web3_digest("0xzz"),
            Err(DigestError::CallbackDataNotHex)
        ));
    }

    #[test]
    fn digest_of_computed_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("result.txt");
        fs::write(&file, "test content").unwrap();
        let computed = ComputedFile {
            deterministic_output_path: Some(file.display().to_string()),
            callback_data: Some(format!("0x{}01", "00".repeat(31))),
            ..Default::default()
        };
        assert_eq!(
            result_digest(&computed, false).unwrap(),
            web2_digest(&file).unwrap()
        );
        assert_eq!(
            hex(result_digest(&computed, true).unwrap()),
            "0xb10e2d527612073b26eecdfd717e6a320cf44b4afac2b0732d9fcbe2b7fa0cf6"
        );
        assert!(result_digest(&ComputedFile::default(), true).is_err());
        assert!(result_digest(&ComputedFile::default(), false).is_err());
    }
}

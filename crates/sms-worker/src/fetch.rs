//! Downloads for pre-compute: `http(s)://` URLs, `file://` URLs, local paths and IPFS paths,
//! streamed to a file with the sha256 of the bytes computed on the way.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sms_core::B256;
use sms_core::error_chain;
use thiserror::Error;

/// Public IPFS gateways tried in order for `/ipfs/…` locations (upstream's list).
pub const IPFS_GATEWAYS: [&str; 3] = [
    "https://ipfs-gateway.v8-bellecour.iex.ec",
    "https://gateway.ipfs.io",
    "https://gateway.pinata.cloud",
];

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("{location}: HTTP status {status}")]
    Status { location: String, status: u16 },
    #[error("{location}: {reason}")]
    Transport { location: String, reason: String },
    #[error("{location}: {source}")]
    Local { location: String, source: io::Error },
    #[error("cannot write the download: {0}")]
    Write(io::Error),
}

/// Where a location points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Http(String),
    File(PathBuf),
    Ipfs(String),
}

impl Location {
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if text.starts_with("http://") || text.starts_with("https://") {
            Location::Http(text.to_owned())
        } else if let Some(path) = text.strip_prefix("file://") {
            Location::File(PathBuf::from(path))
        } else if text.starts_with("/ipfs/") || text.starts_with("/ipns/") {
            Location::Ipfs(text.to_owned())
        } else {
            Location::File(PathBuf::from(text))
        }
    }
}

/// Streams `location` into `dest` (created or truncated) and returns the sha256 of the bytes.
pub async fn fetch_to_file(
    location: &str,
    dest: &Path,
    timeout: Duration,
) -> Result<B256, FetchError> {
    match Location::parse(location) {
        Location::Http(url) => http_to_file(&url, dest, timeout).await,
        Location::File(path) => copy_local(&path, dest),
        Location::Ipfs(path) => {
            let mut last = None;
            for gateway in IPFS_GATEWAYS {
                match http_to_file(&format!("{gateway}{path}"), dest, timeout).await {
                    Ok(digest) => return Ok(digest),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| FetchError::Transport {
                location: path,
                reason: "no IPFS gateway".into(),
            }))
        }
    }
}

struct HashingFile {
    file: fs::File,
    hasher: Sha256,
}

impl HashingFile {
    fn create(path: &Path) -> Result<Self, FetchError> {
        Ok(Self {
            file: fs::File::create(path).map_err(FetchError::Write)?,
            hasher: Sha256::new(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), FetchError> {
        self.hasher.update(bytes);
        self.file.write_all(bytes).map_err(FetchError::Write)
    }

    fn finish(mut self) -> Result<B256, FetchError> {
        self.file.flush().map_err(FetchError::Write)?;
        self.file.sync_all().map_err(FetchError::Write)?;
        Ok(B256::from_slice(&self.hasher.finalize()))
    }
}

fn copy_local(path: &Path, dest: &Path) -> Result<B256, FetchError> {
    let local = |source| FetchError::Local {
        location: path.display().to_string(),
        source,
    };
    let mut input = fs::File::open(path).map_err(local)?;
    let mut out = HashingFile::create(dest)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = input.read(&mut buf).map_err(local)?;
        if n == 0 {
            break;
        }
        out.write(&buf[..n])?;
    }
    out.finish()
}

/// The HTTP client of the stages: rustls with the system's web PKI roots, timeouts.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())
}

async fn http_to_file(url: &str, dest: &Path, timeout: Duration) -> Result<B256, FetchError> {
    let transport = |reason: String| FetchError::Transport {
        location: url.to_owned(),
        reason,
    };
    let client = http_client(timeout).map_err(transport)?;
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| transport(error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status {
            location: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let mut out = HashingFile::create(dest)?;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport(error_chain(&e)))?
    {
        out.write(&chunk)?;
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            Location::parse("https://x/y"),
            Location::Http("https://x/y".into())
        );
        assert_eq!(
            Location::parse("file:///tmp/a"),
            Location::File("/tmp/a".into())
        );
        assert_eq!(
            Location::parse("/ipfs/Qm1"),
            Location::Ipfs("/ipfs/Qm1".into())
        );
        assert_eq!(
            Location::parse("data/a.enc"),
            Location::File("data/a.enc".into())
        );
    }

    #[tokio::test]
    async fn local_copy_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::write(&src, b"hello").unwrap();
        let dest = dir.path().join("dest");
        let digest = fetch_to_file(
            &format!("file://{}", src.display()),
            &dest,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(
            digest.to_string(),
            "0x2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(fs::read(&dest).unwrap(), b"hello");
        assert!(matches!(
            fetch_to_file("/does/not/exist", &dest, Duration::from_secs(5)).await,
            Err(FetchError::Local { .. })
        ));
    }
}

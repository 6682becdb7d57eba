//! `computed.json`: the file the application writes to `/iexec_out` and the post-compute
//! completes (task id, result digest, enclave signature) before posting it to the worker.

use std::fs;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// File name of the computed file inside the output folder.
pub const COMPUTED_FILE_NAME: &str = "computed.json";
/// Larger computed files are refused rather than read into memory.
pub const MAX_COMPUTED_FILE_LEN: u64 = 16 * 1024 * 1024;

/// Reading or validation failure (all mapped to `POST_COMPUTE_COMPUTED_FILE_NOT_FOUND`).
#[derive(Debug, Error)]
pub enum ComputedError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("computed file is empty")]
    Empty,
    #[error("computed file is larger than {MAX_COMPUTED_FILE_LEN} bytes")]
    TooLarge,
    #[error("computed file is not a valid JSON object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("computed file is not a JSON object")]
    NotAnObject,
    #[error("computed file has no {0}")]
    MissingField(&'static str),
    #[error("callback-data is not 0x-prefixed hexadecimal")]
    CallbackDataNotHex,
}

/// The computed file. Every key is optional, unknown keys are ignored, and absent values are
/// written back as `null`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ComputedFile {
    #[serde(default)]
    pub deterministic_output_path: Option<String>,
    #[serde(default)]
    pub callback_data: Option<String>,
    #[serde(default)]
    pub task_id: Option<String>,
    #[serde(default)]
    pub result_digest: Option<String>,
    #[serde(default)]
    pub enclave_signature: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ComputedFile {
    /// Parses the JSON text; an empty (or blank) document is an error.
    pub fn parse(bytes: &[u8]) -> Result<Self, ComputedError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ComputedError::Empty);
        }
        // Only a JSON object is a computed file (serde would also accept a sequence).
        match serde_json::from_slice::<serde_json::Value>(bytes)? {
            value @ serde_json::Value::Object(_) => Ok(serde_json::from_value(value)?),
            _ => Err(ComputedError::NotAnObject),
        }
    }

    /// Reads `<output_dir>/computed.json`.
    pub fn read_from_dir(output_dir: &Path) -> Result<Self, ComputedError> {
        Self::read(&output_dir.join(COMPUTED_FILE_NAME))
    }

    /// Reads and parses a computed file, refusing files over [`MAX_COMPUTED_FILE_LEN`].
    pub fn read(path: &Path) -> Result<Self, ComputedError> {
        let read_err = |source| ComputedError::Read {
            path: path.display().to_string(),
            source,
        };
        let file = fs::File::open(path).map_err(read_err)?;
        let mut bytes = Vec::new();
        file.take(MAX_COMPUTED_FILE_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_COMPUTED_FILE_LEN {
            return Err(ComputedError::TooLarge);
        }
        Self::parse(&bytes)
    }

    /// Checks what the post-compute needs: a deterministic output path for web2 results, or
    /// hex `callback-data` in callback mode.
    pub fn validate(&self, callback_mode: bool) -> Result<(), ComputedError> {
        if callback_mode {
            let data = non_empty(&self.callback_data)
                .ok_or(ComputedError::MissingField("callback-data"))?;
            let digits = data
                .strip_prefix("0x")
                .ok_or(ComputedError::CallbackDataNotHex)?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ComputedError::CallbackDataNotHex);
            }
        } else if non_empty(&self.deterministic_output_path).is_none() {
            return Err(ComputedError::MissingField("deterministic-output-path"));
        }
        Ok(())
    }

    /// Serializes with all six keys, absent ones as `null` (the body posted to the worker).
    pub fn to_json(&self) -> String {
        // Serializing a struct of optional strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kebab_case_and_ignores_unknown_keys() {
        let file = ComputedFile::parse(
            br#"{"deterministic-output-path":"/iexec_out/result.txt","callback-data":null,"foo":1}"#,
        )
        .unwrap();
        assert_eq!(
            file.deterministic_output_path.as_deref(),
            Some("/iexec_out/result.txt")
        );
        assert_eq!(file.callback_data, None);
        file.validate(false).unwrap();
        assert!(file.validate(true).is_err());
    }

    #[test]
    fn serializes_all_keys_with_nulls() {
        let file = ComputedFile {
            task_id: Some("0x01".into()),
            result_digest: Some("0x02".into()),
            ..Default::default()
        };
        assert_eq!(
            file.to_json(),
            r#"{"deterministic-output-path":null,"callback-data":null,"task-id":"0x01","result-digest":"0x02","enclave-signature":null,"error-message":null}"#
        );
        assert_eq!(
            ComputedFile::parse(file.to_json().as_bytes()).unwrap(),
            file
        );
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(
            ComputedFile::parse(b""),
            Err(ComputedError::Empty)
        ));
        assert!(matches!(
            ComputedFile::parse(b" \n"),
            Err(ComputedError::Empty)
        ));
        assert!(matches!(
            ComputedFile::parse(b"{"),
            Err(ComputedError::Json(_))
        ));
        assert!(matches!(
            ComputedFile::parse(b"[]"),
            Err(ComputedError::NotAnObject)
        ));
        assert!(matches!(
            ComputedFile::parse(b"null"),
            Err(ComputedError::NotAnObject)
        ));
        assert!(matches!(
            ComputedFile::parse(br#"{"task-id":5}"#),
            Err(ComputedError::Json(_))
        ));
    }

    #[test]
    fn validation() {
        let mut file = ComputedFile::default();
        assert!(matches!(
            file.validate(false),
            Err(ComputedError::MissingField(_))
        ));
        file.deterministic_output_path = Some("  ".into());
        assert!(file.validate(false).is_err());
        file.callback_data = Some("0x".into());
        assert!(matches!(
            file.validate(true),
            Err(ComputedError::CallbackDataNotHex)
        ));
        file.callback_data = Some("abcd".into());
        assert!(matches!(
            file.validate(true),
            Err(ComputedError::CallbackDataNotHex)
        ));
        file.callback_data = Some("0x00ff".into());
        file.validate(true).unwrap();
    }

    #[test]
    fn reads_from_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            ComputedFile::read_from_dir(dir.path()),
            Err(ComputedError::Read { .. })
        ));
        fs::write(
            dir.path().join(COMPUTED_FILE_NAME),
            br#"{"deterministic-output-path": "/iexec_out/result.txt"}"#,
        )
        .unwrap();
        let file = ComputedFile::read_from_dir(dir.path()).unwrap();
        assert_eq!(
            file.deterministic_output_path.as_deref(),
            Some("/iexec_out/result.txt")
        );
    }
}

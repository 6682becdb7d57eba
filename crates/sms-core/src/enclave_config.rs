//! The app's enclave configuration, stored on chain in `m_appMREnclave` (reference: client §9;
//! docs/iexec-compatibility.md §4, §5).
//!
//! The bytes are UTF-8 JSON with exactly these keys: `framework` (alias `provider`), `version`,
//! `entrypoint`, `heapSize`, `fingerprint`. The framework is an uppercase `SCONE`, `GRAMINE` or
//! `TDX`; any other key makes the configuration invalid. Empty bytes mean "no configuration".
//!
//! [`TeeEnclaveConfiguration::validate`] applies the session rules: the fingerprint is 32 bytes
//! of hex, SCONE needs a non-empty entrypoint and a heap size > 0, GRAMINE needs only framework,
//! version and fingerprint. SCONE and GRAMINE need a non-empty version (it selects the pipeline).
//!
//! ## Legacy SCONE fingerprints
//!
//! Old SCONE apps were registered with the fingerprint `FSPF_KEY|FSPF_TAG|MRENCLAVE` (SCONE file
//! system protection key, 64 hex characters; its tag, 32 hex characters; the MRENCLAVE, 64 hex
//! characters). It is accepted for SCONE only: the expected measurement is the MRENCLAVE part, and
//! the key and tag are delivered to the app enclave as [`ENV_SCONE_FSPF_KEY`] and
//! [`ENV_SCONE_FSPF_TAG`], the names the SCONE runtime reads them from.

use std::fmt;

use alloy_primitives::B256;
use serde_json::Value;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::tag::TeeFramework;

/// App enclave variable carrying the legacy SCONE file-system protection key.
pub const ENV_SCONE_FSPF_KEY: &str = "SCONE_FSPF_KEY";
/// App enclave variable carrying the legacy SCONE file-system protection tag.
pub const ENV_SCONE_FSPF_TAG: &str = "SCONE_FSPF_TAG";

const KNOWN_KEYS: [&str; 6] = [
    "framework",
    "provider",
    "version",
    "entrypoint",
    "heapSize",
    "fingerprint",
];

/// An expected enclave measurement: lowercase hex without `0x`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Measurement(String);

impl Measurement {
    /// Normalises hex text (optional `0x`, any case). `None` unless it is hex of `byte_lens` bytes.
    pub fn parse(text: &str, byte_lens: &[usize]) -> Option<Self> {
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        let ok = byte_lens.iter().any(|n| digits.len() == n * 2)
            && digits.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| Self(digits.to_ascii_lowercase()))
    }

    pub fn from_b256(value: &B256) -> Self {
        Self(alloy_primitives::hex::encode(value))
    }

    /// Any hex text (optional `0x`, any case, any length): how stored sessions are read.
    pub fn from_hex(text: &str) -> Result<Self, crate::hex::HexError> {
        crate::hex::decode_lenient(text).map(|bytes| Self::from_bytes(&bytes))
    }

    /// The measurement of these bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(alloy_primitives::hex::encode(bytes))
    }

    /// 64 (or 96) lowercase hex characters, no prefix.
    pub fn as_hex(&self) -> &str {
        &self.0
    }

    /// The bytes the hex stands for.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Hex by construction: the fallback is never taken.
        crate::hex::decode_lenient(&self.0).unwrap_or_default()
    }

    /// `0x` + lowercase hex.
    pub fn to_prefixed(&self) -> String {
        format!("0x{}", self.0)
    }
}

/// Written as it reads ([`Measurement::as_hex`]); read from any hex text (optional `0x`, any
/// case), so every stored session decodes as it was written.
impl serde::Serialize for Measurement {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Measurement {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The file-system protection key and tag of a legacy SCONE fingerprint. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct FspfSecrets {
    key: Zeroizing<String>,
    tag: String,
}

impl FspfSecrets {
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }
}

impl fmt::Debug for FspfSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FspfSecrets(<redacted>)")
    }
}

/// The decoded `fingerprint` field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fingerprint {
    /// 32 bytes of hex: the enclave measurement.
    Mrenclave(Measurement),
    /// `FSPF_KEY|FSPF_TAG|MRENCLAVE` (SCONE only).
    LegacyScone {
        mrenclave: Measurement,
        fspf: FspfSecrets,
    },
}

impl Fingerprint {
    pub fn measurement(&self) -> &Measurement {
        match self {
            Self::Mrenclave(m) | Self::LegacyScone { mrenclave: m, .. } => m,
        }
    }

    pub fn fspf(&self) -> Option<&FspfSecrets> {
        match self {
            Self::Mrenclave(_) => None,
            Self::LegacyScone { fspf, .. } => Some(fspf),
        }
    }
}

/// Which field is wrong and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EnclaveConfigError {
    #[error("enclave configuration is not UTF-8")]
    NotUtf8,
    #[error("enclave configuration is not a JSON object: {0}")]
    NotJson(String),
    #[error(
        "enclave configuration: unknown key '{0}' (expected framework, version, entrypoint, heapSize, fingerprint)"
    )]
    UnknownKey(String),
    #[error("enclave configuration: both 'framework' and 'provider' are set (expected only one)")]
    DuplicateFramework,
    #[error("enclave configuration: {field} is required")]
    Missing { field: &'static str },
    #[error("enclave configuration: {field}: expected {expected}")]
    Invalid {
        field: &'static str,
        expected: String,
    },
}

fn invalid(field: &'static str, expected: impl Into<String>) -> EnclaveConfigError {
    EnclaveConfigError::Invalid {
        field,
        expected: expected.into(),
    }
}

/// The app enclave configuration as read from chain (types checked, rules not yet applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeeEnclaveConfiguration {
    pub framework: TeeFramework,
    pub version: Option<String>,
    pub entrypoint: Option<String>,
    pub heap_size: Option<u64>,
    /// The fingerprint text as written on chain.
    pub fingerprint: Option<String>,
}

/// A configuration that passed [`TeeEnclaveConfiguration::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidEnclaveConfig {
    pub framework: TeeFramework,
    /// Empty only for TDX.
    pub version: String,
    /// `Some` for SCONE; whatever was given otherwise.
    pub entrypoint: Option<String>,
    /// `Some(> 0)` for SCONE; whatever was given otherwise.
    pub heap_size: Option<u64>,
    pub fingerprint: Fingerprint,
}

impl ValidEnclaveConfig {
    pub fn measurement(&self) -> &Measurement {
        self.fingerprint.measurement()
    }
}

fn opt_string(
    obj: &serde_json::Map<String, Value>,
    key: &'static str,
) -> Result<Option<String>, EnclaveConfigError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(key, "a string")),
    }
}

impl TeeEnclaveConfiguration {
    /// Reads the raw `m_appMREnclave` bytes. Empty (or whitespace-only) bytes → `Ok(None)`.
    pub fn from_mrenclave(bytes: &[u8]) -> Result<Option<Self>, EnclaveConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|_| EnclaveConfigError::NotUtf8)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        Self::from_json(text).map(Some)
    }

    /// Parses the JSON text of a configuration.
    pub fn from_json(text: &str) -> Result<Self, EnclaveConfigError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| EnclaveConfigError::NotJson(e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(EnclaveConfigError::NotJson("expected an object".into()));
        };
        if let Some(unknown) = obj.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(EnclaveConfigError::UnknownKey(unknown.clone()));
        }
        let framework_text = match (
            opt_string(&obj, "framework")?,
            opt_string(&obj, "provider")?,
        ) {
            (Some(_), Some(_)) => return Err(EnclaveConfigError::DuplicateFramework),
            (Some(f), None) | (None, Some(f)) => f,
            (None, None) => return Err(EnclaveConfigError::Missing { field: "framework" }),
        };
        let framework = match framework_text.as_str() {
            "SCONE" => TeeFramework::Scone,
            "GRAMINE" => TeeFramework::Gramine,
            "TDX" => TeeFramework::Tdx,
            other => {
                return Err(invalid(
                    "framework",
                    format!(
                        "one of \"SCONE\", \"GRAMINE\", \"TDX\" (uppercase), got \"{}\"",
                        truncate(other)
                    ),
                ));
            }
        };
        let heap_size = match obj.get("heapSize") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_u64()
                    .ok_or_else(|| invalid("heapSize", "a non-negative integer (bytes)"))?,
            ),
            Some(_) => return Err(invalid("heapSize", "a non-negative integer (bytes)")),
        };
        Ok(Self {
            framework,
            version: opt_string(&obj, "version")?,
            entrypoint: opt_string(&obj, "entrypoint")?,
            heap_size,
            fingerprint: opt_string(&obj, "fingerprint")?,
        })
    }

    /// Applies the session rules.
    pub fn validate(&self) -> Result<ValidEnclaveConfig, EnclaveConfigError> {
        let version = self.version.clone().unwrap_or_default();
        if version.trim().is_empty() && self.framework.is_sgx() {
            return Err(EnclaveConfigError::Missing { field: "version" });
        }
        let fingerprint_text = self
            .fingerprint
            .as_deref()
            .filter(|f| !f.is_empty())
            .ok_or(EnclaveConfigError::Missing {
                field: "fingerprint",
            })?;
        let fingerprint = parse_fingerprint(fingerprint_text, self.framework)?;
        if self.framework == TeeFramework::Scone {
            if self
                .entrypoint
                .as_deref()
                .is_none_or(|e| e.trim().is_empty())
            {
                return Err(invalid("entrypoint", "a non-empty command for a SCONE app"));
            }
            if self.heap_size.is_none_or(|h| h == 0) {
                return Err(invalid(
                    "heapSize",
                    "a heap size in bytes greater than 0 for a SCONE app",
                ));
            }
        }
        Ok(ValidEnclaveConfig {
            framework: self.framework,
            version,
            entrypoint: self.entrypoint.clone(),
            heap_size: self.heap_size,
            fingerprint,
        })
    }

    /// The JSON written on chain: keys in the order framework, version, entrypoint, heapSize,
    /// fingerprint; absent fields omitted.
    pub fn to_json(&self) -> String {
        let mut parts = vec![format!("\"framework\":\"{}\"", self.framework.as_str())];
        let s = |v: &str| serde_json::Value::String(v.to_owned()).to_string();
        if let Some(v) = &self.version {
            parts.push(format!("\"version\":{}", s(v)));
        }
        if let Some(v) = &self.entrypoint {
            parts.push(format!("\"entrypoint\":{}", s(v)));
        }
        if let Some(v) = self.heap_size {
            parts.push(format!("\"heapSize\":{v}"));
        }
        if let Some(v) = &self.fingerprint {
            parts.push(format!("\"fingerprint\":{}", s(v)));
        }
        format!("{{{}}}", parts.join(","))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn parse_fingerprint(
    text: &str,
    framework: TeeFramework,
) -> Result<Fingerprint, EnclaveConfigError> {
    if !text.contains('|') {
        return Measurement::parse(text, &[32])
            .map(Fingerprint::Mrenclave)
            .ok_or_else(|| {
                invalid(
                    "fingerprint",
                    "64 hex characters (32 bytes), or FSPF_KEY|FSPF_TAG|MRENCLAVE for SCONE",
                )
            });
    }
    if framework != TeeFramework::Scone {
        return Err(invalid(
            "fingerprint",
            format!(
                "64 hex characters (32 bytes); the FSPF_KEY|FSPF_TAG|MRENCLAVE form is SCONE only, not {framework}"
            ),
        ));
    }
    let parts: Vec<&str> = text.split('|').collect();
    let [key, tag, mrenclave] = parts.as_slice() else {
        return Err(invalid(
            "fingerprint",
            format!(
                "FSPF_KEY|FSPF_TAG|MRENCLAVE (3 parts), got {} parts",
                parts.len()
            ),
        ));
    };
    let key = Measurement::parse(key, &[32]).ok_or_else(|| {
        invalid(
            "fingerprint",
            "FSPF_KEY|FSPF_TAG|MRENCLAVE with FSPF_KEY = 64 hex characters",
        )
    })?;
    let tag = Measurement::parse(tag, &[16]).ok_or_else(|| {
        invalid(
            "fingerprint",
            "FSPF_KEY|FSPF_TAG|MRENCLAVE with FSPF_TAG = 32 hex characters",
        )
    })?;
    let mrenclave = Measurement::parse(mrenclave, &[32]).ok_or_else(|| {
        invalid(
            "fingerprint",
            "FSPF_KEY|FSPF_TAG|MRENCLAVE with MRENCLAVE = 64 hex characters",
        )
    })?;
    Ok(Fingerprint::LegacyScone {
        mrenclave,
        fspf: FspfSecrets {
            key: Zeroizing::new(key.0),
            tag: tag.0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "01ba4719c80b6fe911b091a7c05124b64eeece964e09c058ef8f9805daca546b";
    const UPSTREAM: &str = r#"{"framework":"SCONE","version":"v1.0.0","entrypoint":"python /app/app.py","heapSize":4294967296,"fingerprint":"01ba4719c80b6fe911b091a7c05124b64eeece964e09c058ef8f9805daca546b"}"#;

    fn parse(text: &str) -> Result<TeeEnclaveConfiguration, EnclaveConfigError> {
        TeeEnclaveConfiguration::from_json(text)
    }

    #[test]
    fn parses_upstream_example_and_provider_alias() {
        let c = parse(UPSTREAM).unwrap();
        assert_eq!(
            c,
            TeeEnclaveConfiguration {
                framework: TeeFramework::Scone,
                version: Some("v1.0.0".into()),
                entrypoint: Some("python /app/app.py".into()),
                heap_size: Some(4294967296),
                fingerprint: Some(FP.into()),
            }
        );
        assert_eq!(
            parse(&UPSTREAM.replace("framework", "provider")).unwrap(),
            c
        );
        assert_eq!(c.to_json(), UPSTREAM);
        let v = c.validate().unwrap();
        assert_eq!(v.measurement().as_hex(), FP);
        assert_eq!(v.version, "v1.0.0");
        assert!(v.fingerprint.fspf().is_none());
    }

    #[test]
    fn empty_bytes_mean_no_config() {
        assert_eq!(TeeEnclaveConfiguration::from_mrenclave(b"").unwrap(), None);
        assert_eq!(
            TeeEnclaveConfiguration::from_mrenclave(b" \n").unwrap(),
            None
        );
        assert!(
            TeeEnclaveConfiguration::from_mrenclave(UPSTREAM.as_bytes())
                .unwrap()
                .is_some()
        );
        assert_eq!(
            TeeEnclaveConfiguration::from_mrenclave(&[0xff, 0xfe]),
            Err(EnclaveConfigError::NotUtf8)
        );
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(parse("{"), Err(EnclaveConfigError::NotJson(_))));
        assert!(matches!(parse("[]"), Err(EnclaveConfigError::NotJson(_))));
        assert_eq!(
            parse(&UPSTREAM.replace("}", r#","extra":1}"#)),
            Err(EnclaveConfigError::UnknownKey("extra".into()))
        );
        assert_eq!(
            parse(&UPSTREAM.replace("{", r#"{"provider":"SCONE","#)),
            Err(EnclaveConfigError::DuplicateFramework)
        );
        let lower = parse(&UPSTREAM.replace("SCONE", "scone")).unwrap_err();
        assert!(
            matches!(
                lower,
                EnclaveConfigError::Invalid {
                    field: "framework",
                    ..
                }
            ),
            "{lower}"
        );
        assert!(lower.to_string().contains("uppercase"), "{lower}");
        assert_eq!(
            parse(r#"{"version":"v1"}"#),
            Err(EnclaveConfigError::Missing { field: "framework" })
        );
        assert!(matches!(
            parse(&UPSTREAM.replace("4294967296", "\"4GB\"")),
            Err(EnclaveConfigError::Invalid {
                field: "heapSize",
                ..
            })
        ));
        assert!(matches!(
            parse(&UPSTREAM.replace("4294967296", "-1")),
            Err(EnclaveConfigError::Invalid {
                field: "heapSize",
                ..
            })
        ));
        assert!(matches!(
            parse(r#"{"framework":"GRAMINE","version":3}"#),
            Err(EnclaveConfigError::Invalid {
                field: "version",
                ..
            })
        ));
    }

    #[test]
    fn validation_rules() {
        let field_of = |json: &str| match parse(json).unwrap().validate() {
            Err(
                EnclaveConfigError::Invalid { field, .. } | EnclaveConfigError::Missing { field },
            ) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field_of(&UPSTREAM.replace(FP, &FP[2..])), "fingerprint");
        assert_eq!(
            field_of(&UPSTREAM.replace(FP, &format!("{FP}00"))),
            "fingerprint"
        );
        assert_eq!(
            field_of(&UPSTREAM.replace(FP, &FP.replace('a', "g"))),
            "fingerprint"
        );
        assert_eq!(field_of(&UPSTREAM.replace(FP, "")), "fingerprint");
        assert_eq!(
            field_of(&UPSTREAM.replace("python /app/app.py", " ")),
            "entrypoint"
        );
        assert_eq!(field_of(&UPSTREAM.replace("4294967296", "0")), "heapSize");
        assert_eq!(
            field_of(&UPSTREAM.replace(r#""heapSize":4294967296,"#, "")),
            "heapSize"
        );
        assert_eq!(field_of(&UPSTREAM.replace("v1.0.0", "")), "version");
        // 0x prefix and uppercase hex are accepted and normalised.
        let v = parse(&UPSTREAM.replace(FP, &format!("0x{}", FP.to_uppercase())))
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(v.measurement().as_hex(), FP);
        assert_eq!(v.measurement().to_prefixed(), format!("0x{FP}"));
    }

    #[test]
    fn gramine_needs_only_framework_version_fingerprint() {
        let c = parse(&format!(
            r#"{{"framework":"GRAMINE","version":"v5","fingerprint":"{FP}"}}"#
        ))
        .unwrap();
        let v = c.validate().unwrap();
        assert_eq!(v.framework, TeeFramework::Gramine);
        assert_eq!((v.entrypoint, v.heap_size), (None, None));
        let no_version = parse(&format!(
            r#"{{"framework":"GRAMINE","fingerprint":"{FP}"}}"#
        ))
        .unwrap();
        assert_eq!(
            no_version.validate(),
            Err(EnclaveConfigError::Missing { field: "version" })
        );
    }

    #[test]
    fn legacy_scone_fingerprint() {
        let key = "a".repeat(64);
        let tag = "B".repeat(32);
        let legacy = format!("{key}|{tag}|{FP}");
        let v = parse(&UPSTREAM.replace(FP, &legacy))
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(v.measurement().as_hex(), FP);
        let fspf = v.fingerprint.fspf().unwrap();
        assert_eq!(fspf.key(), key);
        assert_eq!(fspf.tag(), "b".repeat(32));
        assert!(!format!("{v:?}").contains(&key), "FSPF key leaked in Debug");

        let err_of = |fp: &str| {
            parse(&UPSTREAM.replace(FP, fp))
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert!(err_of(&format!("{key}|{FP}")).contains("3 parts"));
        assert!(err_of(&format!("{key}|{tag}|{FP}|x")).contains("3 parts"));
        assert!(err_of(&format!("{}|{tag}|{FP}", &key[1..])).contains("FSPF_KEY = 64"));
        assert!(err_of(&format!("{key}|{key}|{FP}")).contains("FSPF_TAG = 32"));
        assert!(err_of(&format!("{key}|{tag}|{}", &FP[..10])).contains("MRENCLAVE = 64"));
        // SCONE only.
        let gramine =
            format!(r#"{{"framework":"GRAMINE","version":"v5","fingerprint":"{legacy}"}}"#);
        assert!(
            parse(&gramine)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
                .contains("SCONE only")
        );
    }
}

//! What an enclave sends to prove what it runs.

use serde::{Deserialize, Serialize};

use crate::report::TeeKind;

/// Attestation evidence, as it travels in an HTTP body.
///
/// JSON form (`kind` tag, quotes in standard base64, simulated fields in hex):
///
/// ```json
/// {"kind":"sgx_dcap","quote":"AwACAAAAAAAKAA8Ak5pyM/ecTKmUCg2zlX8GBzmHYi7..."}
/// {"kind":"tdx_dcap","quote":"BAACAIEAAAAAAAAAk5pyM/ecTKmUCg2zlX8GB..."}
/// {"kind":"simulated","measurement":"00…","report_data":"a1b2…(128 hex digits)"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Evidence {
    /// An Intel SGX ECDSA (DCAP) quote, version 3.
    SgxDcap {
        #[serde(with = "crate::hexser::base64_bytes")]
        quote: Vec<u8>,
    },
    /// An Intel TDX ECDSA (DCAP) quote, version 4 or 5.
    TdxDcap {
        #[serde(with = "crate::hexser::base64_bytes")]
        quote: Vec<u8>,
    },
    /// A fake TEE for development: no signature at all, only the claimed measurement and
    /// report data. Accepted only by a verifier built with
    /// [`Verifier::dangerous_allow_simulated`](crate::Verifier::dangerous_allow_simulated).
    Simulated {
        /// Claimed measurement, 1 to 64 bytes (32 to look like MRENCLAVE, 48 like MRTD).
        #[serde(with = "crate::hexser::hex_bytes")]
        measurement: Vec<u8>,
        #[serde(with = "crate::hexser::hex_bytes")]
        report_data: [u8; 64],
        /// Whether the fake enclave claims to run in debug mode (to exercise the policy).
        #[serde(default)]
        debug: bool,
    },
}

impl Evidence {
    /// The TEE this evidence claims to come from.
    pub fn tee(&self) -> TeeKind {
        match self {
            Evidence::SgxDcap { .. } => TeeKind::Sgx,
            Evidence::TdxDcap { .. } => TeeKind::Tdx,
            Evidence::Simulated { .. } => TeeKind::Simulated,
        }
    }

    /// Parses the JSON form.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Serialises to the JSON form.
    pub fn to_json(&self) -> String {
        // Serialising this enum cannot fail: every field is a string, bool or byte string.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip() {
        let e = Evidence::SgxDcap {
            quote: vec![3, 0, 2, 0],
        };
        let json = e.to_json();
        assert_eq!(json, r#"{"kind":"sgx_dcap","quote":"AwACAA=="}"#);
        assert_eq!(Evidence::from_json(json.as_bytes()).unwrap(), e);

        let s = Evidence::Simulated {
            measurement: vec![0xab; 32],
            report_data: [7; 64],
            debug: false,
        };
        let json = s.to_json();
        assert!(json.contains(&"ab".repeat(32)));
        assert_eq!(Evidence::from_json(json.as_bytes()).unwrap(), s);
        assert_eq!(s.tee(), TeeKind::Simulated);
    }

    #[test]
    fn rejects_bad_report_data_length_and_unknown_kind() {
        let bad = r#"{"kind":"simulated","measurement":"00","report_data":"0011"}"#;
        assert!(Evidence::from_json(bad.as_bytes()).is_err());
        let unknown = r#"{"kind":"sev_snp","report":"00"}"#;
        assert!(Evidence::from_json(unknown.as_bytes()).is_err());
    }
}

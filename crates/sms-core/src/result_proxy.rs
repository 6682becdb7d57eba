//! Logging in to an iExec result proxy (the IPFS result storage), as `iexec storage init` does:
//! the proxy hands out an EIP-712 challenge, the wallet signs its digest, the proxy answers a
//! token that becomes the requester's `iexec-result-iexec-ipfs-token` secret.
//!
//! The proxy is not trusted to choose what the wallet signs: [`LoginChallenge::parse`] accepts
//! only the exact typed-data shape of a result-proxy challenge for the expected chain, and the
//! digest is recomputed here from the challenge text alone. Facts: docs/iexec-storage.md.

use alloy_primitives::{Address, B256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{Eip712Domain, SolStruct, sol};
use serde_json::Value;
use thiserror::Error;

use crate::signature::EthSignature;

sol! {
    /// The one type a result-proxy login signs.
    #[derive(Debug, PartialEq, Eq)]
    struct Challenge {
        string challenge;
    }
}

/// `name` of the result proxy's EIP-712 domain.
pub const DOMAIN_NAME: &str = "iExec Result Repository";
/// `version` of the result proxy's EIP-712 domain.
pub const DOMAIN_VERSION: &str = "1";
/// Longest challenge text accepted (upstream sends a 32-byte hex string).
pub const MAX_CHALLENGE_LEN: usize = 256;

/// Why a challenge answer was not signed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChallengeError {
    #[error("the result proxy's challenge is not JSON typed data: {0}")]
    NotTypedData(String),
    #[error("the result proxy's challenge has {field} = {found}, expected {expected}")]
    Unexpected {
        field: &'static str,
        found: String,
        expected: String,
    },
}

/// A result-proxy challenge, checked: only its text is kept, the rest must match exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginChallenge {
    pub chain_id: u64,
    pub challenge: String,
}

fn unexpected(
    field: &'static str,
    found: Option<&Value>,
    expected: impl Into<String>,
) -> ChallengeError {
    ChallengeError::Unexpected {
        field,
        found: found.map_or_else(|| "nothing".to_owned(), Value::to_string),
        expected: expected.into(),
    }
}

fn ensure_eq(
    field: &'static str,
    found: Option<&Value>,
    expected: &Value,
) -> Result<(), ChallengeError> {
    if found == Some(expected) {
        Ok(())
    } else {
        Err(unexpected(field, found, expected.to_string()))
    }
}

/// A JSON number or decimal string equal to `chain_id` (the proxy sends a number).
fn ensure_chain_id(found: Option<&Value>, chain_id: u64) -> Result<(), ChallengeError> {
    let matches = match found {
        Some(Value::Number(n)) => n.as_u64() == Some(chain_id),
        Some(Value::String(s)) => s.parse::<u64>().ok() == Some(chain_id),
        _ => false,
    };
    if matches {
        Ok(())
    } else {
        Err(unexpected("domain.chainId", found, chain_id.to_string()))
    }
}

impl LoginChallenge {
    /// Checks the proxy's answer to `GET /results/challenge` (bare typed data, or wrapped in
    /// `{"data": …}`) step by step: primary type, types, domain, then the message.
    pub fn parse(body: &[u8], chain_id: u64) -> Result<Self, ChallengeError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ChallengeError::NotTypedData(e.to_string()))?;
        let typed = match value.get("data") {
            Some(inner) if value.get("types").is_none() => inner,
            _ => &value,
        };
        if !typed.is_object() {
            return Err(ChallengeError::NotTypedData("not a JSON object".into()));
        }
        ensure_eq(
            "primaryType",
            typed.get("primaryType"),
            &Value::from("Challenge"),
        )?;
        ensure_types(typed.get("types"))?;
        let domain = typed.get("domain");
        ensure_domain_keys(domain)?;
        ensure_eq(
            "domain.name",
            domain.and_then(|d| d.get("name")),
            &Value::from(DOMAIN_NAME),
        )?;
        ensure_eq(
            "domain.version",
            domain.and_then(|d| d.get("version")),
            &Value::from(DOMAIN_VERSION),
        )?;
        ensure_chain_id(domain.and_then(|d| d.get("chainId")), chain_id)?;
        let challenge = ensure_message(typed.get("message"))?;
        Ok(Self {
            chain_id,
            challenge,
        })
    }

    /// The typed data a result proxy answers for this challenge (the only shape [`Self::parse`]
    /// accepts).
    pub fn typed_data(&self) -> Value {
        serde_json::json!({
            "types": challenge_types(),
            "domain": { "name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": self.chain_id },
            "primaryType": "Challenge",
            "message": { "challenge": self.challenge },
        })
    }

    fn domain(&self) -> Eip712Domain {
        Eip712Domain {
            name: Some(DOMAIN_NAME.into()),
            version: Some(DOMAIN_VERSION.into()),
            chain_id: Some(alloy_primitives::U256::from(self.chain_id)),
            verifying_contract: None,
            salt: None,
        }
    }

    /// The EIP-712 digest the wallet signs (no EIP-191 prefix: it is typed data).
    pub fn digest(&self) -> B256 {
        Challenge {
            challenge: self.challenge.clone(),
        }
        .eip712_signing_hash(&self.domain())
    }

    /// The `text/plain` body of `POST /results/login`: `<digest>_<signature>_<address>`.
    pub fn login_body(&self, signer: &PrivateKeySigner) -> Result<String, alloy_signer::Error> {
        let digest = self.digest();
        let signature = EthSignature::from(signer.sign_hash_sync(&digest)?);
        Ok(format!(
            "{digest}_{}_{}",
            signature.to_hex(),
            address_text(signer.address())
        ))
    }
}

fn address_text(address: Address) -> String {
    address.to_checksum(None)
}

/// The `types` member of a result-proxy challenge.
fn challenge_types() -> Value {
    serde_json::json!({
        "EIP712Domain": [
            { "name": "name", "type": "string" },
            { "name": "version", "type": "string" },
            { "name": "chainId", "type": "uint256" },
        ],
        "Challenge": [{ "name": "challenge", "type": "string" }],
    })
}

fn ensure_types(types: Option<&Value>) -> Result<(), ChallengeError> {
    let expected = challenge_types();
    // The domain type may be left out (ethers derives it from the domain).
    let mut found = types.cloned();
    if let Some(Value::Object(map)) = found.as_mut()
        && !map.contains_key("EIP712Domain")
    {
        map.insert("EIP712Domain".into(), expected["EIP712Domain"].clone());
    }
    ensure_eq("types", found.as_ref(), &expected)
}

fn ensure_domain_keys(domain: Option<&Value>) -> Result<(), ChallengeError> {
    let keys: Option<Vec<&str>> = domain
        .and_then(Value::as_object)
        .map(|d| d.keys().map(String::as_str).collect());
    match keys {
        Some(mut k) => {
            k.sort_unstable();
            if k == ["chainId", "name", "version"] {
                Ok(())
            } else {
                Err(unexpected("domain", domain, "{name, version, chainId}"))
            }
        }
        None => Err(unexpected("domain", domain, "an object")),
    }
}

fn ensure_message(message: Option<&Value>) -> Result<String, ChallengeError> {
    let text = message
        .and_then(Value::as_object)
        .filter(|m| m.len() == 1)
        .and_then(|m| m.get("challenge"))
        .and_then(Value::as_str)
        .ok_or_else(|| unexpected("message", message, "{challenge: <text>}"))?;
    if text.is_empty() || text.len() > MAX_CHALLENGE_LEN {
        return Err(unexpected(
            "message.challenge",
            message.and_then(|m| m.get("challenge")),
            format!("1 to {MAX_CHALLENGE_LEN} characters"),
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    const VECTOR_CHALLENGE: &str =
        "0x10ff103511e3e233033628dbd641136d4670c16c33a4ce11950ab316ef18bce9";

    fn typed(chain_id: Value, challenge: &str) -> Value {
        let mut typed = LoginChallenge {
            chain_id: 0,
            challenge: challenge.to_owned(),
        }
        .typed_data();
        typed["domain"]["chainId"] = chain_id;
        typed
    }

    fn parse(value: &Value, chain_id: u64) -> Result<LoginChallenge, ChallengeError> {
        LoginChallenge::parse(value.to_string().as_bytes(), chain_id)
    }

    #[test]
    fn digest_matches_the_result_proxy_vector() {
        let challenge = parse(&typed(json!(17), VECTOR_CHALLENGE), 17).unwrap();
        assert_eq!(
            challenge.digest().to_string(),
            "0x3bb958b947bc47479a7ee767d74a45146e41ac703d989d72f2b9c8f1aaf00a13"
        );
    }

    #[test]
    fn wrapped_answers_and_string_chain_ids_are_accepted() {
        let wrapped = json!({ "ok": true, "data": typed(json!("17"), VECTOR_CHALLENGE) });
        assert_eq!(parse(&wrapped, 17).unwrap().challenge, VECTOR_CHALLENGE);
        // ethers-style typed data without the domain type.
        let mut bare = typed(json!(17), VECTOR_CHALLENGE);
        bare["types"]
            .as_object_mut()
            .unwrap()
            .remove("EIP712Domain");
        assert!(parse(&bare, 17).is_ok());
    }

    #[test]
    fn login_body_is_digest_signature_address_and_recovers() {
        let signer = PrivateKeySigner::random();
        let challenge = parse(&typed(json!(134), VECTOR_CHALLENGE), 134).unwrap();
        let body = challenge.login_body(&signer).unwrap();
        let parts: Vec<&str> = body.split('_').collect();
        let [digest, signature, address] = parts.as_slice() else {
            panic!("three parts expected: {body}");
        };
        assert_eq!(*digest, challenge.digest().to_string());
        assert_eq!(address.parse::<Address>().unwrap(), signer.address());
        let recovered = EthSignature::parse(signature)
            .unwrap()
            .inner()
            .recover_address_from_prehash(&challenge.digest())
            .unwrap();
        assert_eq!(recovered, signer.address());
    }

    /// A proxy that tries to get something else signed (another chain, another domain such as
    /// an order's, another type, extra fields) is refused, naming the field.
    #[test]
    fn anything_but_a_result_proxy_challenge_is_refused() {
        let honest = typed(json!(17), VECTOR_CHALLENGE);
        let mut cases: Vec<(&str, Value)> = Vec::new();
        let mut v = honest.clone();
        v["domain"]["chainId"] = json!(1);
        cases.push(("domain.chainId", v));
        let mut v = honest.clone();
        v["domain"]["name"] = json!("iExecODB");
        cases.push(("domain.name", v));
        let mut v = honest.clone();
        v["domain"]["version"] = json!("5.0.0");
        cases.push(("domain.version", v));
        let mut v = honest.clone();
        v["domain"]["verifyingContract"] = json!(Address::repeat_byte(1));
        cases.push(("domain", v));
        let mut v = honest.clone();
        v["primaryType"] = json!("DatasetOrder");
        cases.push(("primaryType", v));
        let mut v = honest.clone();
        v["types"]["Challenge"] = json!([{ "name": "challenge", "type": "bytes32" }]);
        cases.push(("types", v));
        let mut v = honest.clone();
        v["message"]["extra"] = json!("x");
        cases.push(("message", v));
        let mut v = honest.clone();
        v["message"]["challenge"] = json!("x".repeat(MAX_CHALLENGE_LEN + 1));
        cases.push(("message.challenge", v));
        let mut v = honest;
        v["message"]["challenge"] = json!("");
        cases.push(("message.challenge", v));
        for (field, value) in cases {
            match parse(&value, 17) {
                Err(ChallengeError::Unexpected { field: f, .. }) => assert_eq!(f, field, "{value}"),
                other => panic!("{field}: {other:?}"),
            }
        }
        for body in [&b"not json"[..], b"[]", b"\"text\""] {
            assert!(matches!(
                LoginChallenge::parse(body, 17),
                Err(ChallengeError::NotTypedData(_))
            ));
        }
    }
}

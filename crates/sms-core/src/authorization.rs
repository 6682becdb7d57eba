//! The WorkerpoolAuthorization a worker sends to `POST /tee/sessions` (reference: client §10.1;
//! docs/iexec-compatibility.md §3, §4).
//!
//! JSON, camelCase:
//! `{"chainTaskId","dealId","taskIndex","workerWallet","enclaveChallenge","signature":{"value"}}`.
//! `dealId` defaults to 32 zero bytes and `taskIndex` to 0 (both are only logged upstream).
//! Parsing is strict about the format of every field it reads (each error names the field and
//! what was expected) and tolerant of unknown fields, as the upstream JSON reader is.
//!
//! The signed hash is `keccak(workerWallet ‖ chainTaskId ‖ enclaveChallenge)`
//! ([`crate::challenge::workerpool_authorization`]); the worker signs it in the `Authorization`
//! header and the workerpool owner in `signature.value`.

use alloy_primitives::{Address, B256};
use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::signature::{EthSignature, is_signed_by};
use crate::tee_error::{SessionError, TeeSessionGenerationError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerpoolAuthorization {
    pub chain_task_id: B256,
    pub deal_id: B256,
    pub task_index: u64,
    pub worker_wallet: Address,
    pub enclave_challenge: Address,
    /// The workerpool owner's EIP-191 signature of [`Self::hash`].
    pub signature: EthSignature,
}

/// Why a session request body was refused. Every variant is a client error.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AuthorizationParseError {
    #[error("request body is empty")]
    EmptyBody,
    #[error("request body is not a JSON object: {0}")]
    NotJson(String),
    #[error("{field}: field is required")]
    Missing { field: &'static str },
    #[error("{field}: expected {expected}")]
    Invalid {
        field: &'static str,
        expected: &'static str,
    },
}

impl AuthorizationParseError {
    /// The session error code for this failure. A missing or empty `chainTaskId` keeps the
    /// upstream code (401 `EXECUTION_NOT_AUTHORIZED_EMPTY_PARAMS_UNAUTHORIZED`); everything else
    /// is 400 `MALFORMED_SESSION_REQUEST`.
    pub fn code(&self) -> TeeSessionGenerationError {
        match self {
            Self::Missing {
                field: "chainTaskId",
            } => TeeSessionGenerationError::ExecutionNotAuthorizedEmptyParamsUnauthorized,
            _ => TeeSessionGenerationError::MalformedSessionRequest,
        }
    }

    pub fn to_session_error(&self) -> SessionError {
        SessionError::new(self.code(), self.to_string())
    }
}

const HASH_EXPECTED: &str = "a string of 0x followed by 64 hex characters";
const ADDRESS_EXPECTED: &str = "a string of 0x followed by 40 hex characters";
const SIGNATURE_EXPECTED: &str =
    "a string of 0x followed by 130 hex characters (r||s||v, v = 27 or 28)";

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

/// A required non-empty string field. An empty string counts as missing, as upstream.
fn required_str<'a>(
    obj: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, AuthorizationParseError> {
    match field(obj, name) {
        None => Err(AuthorizationParseError::Missing { field: name }),
        Some(Value::String(s)) if s.is_empty() => {
            Err(AuthorizationParseError::Missing { field: name })
        }
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(AuthorizationParseError::Invalid {
            field: name,
            expected: "a string",
        }),
    }
}

fn parse_b256(s: &str, name: &'static str) -> Result<B256, AuthorizationParseError> {
    let invalid = || AuthorizationParseError::Invalid {
        field: name,
        expected: HASH_EXPECTED,
    };
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(invalid)?;
    if digits.len() != 64 {
        return Err(invalid());
    }
    let mut raw = [0u8; 32];
    alloy_primitives::hex::decode_to_slice(digits, &mut raw).map_err(|_| invalid())?;
    Ok(B256::from(raw))
}

fn parse_addr(s: &str, name: &'static str) -> Result<Address, AuthorizationParseError> {
    crate::secret::parse_address(s).map_err(|_| AuthorizationParseError::Invalid {
        field: name,
        expected: ADDRESS_EXPECTED,
    })
}

impl WorkerpoolAuthorization {
    /// Parses a request body. Never panics; every failure names the offending field.
    pub fn from_json_bytes(body: &[u8]) -> Result<Self, AuthorizationParseError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(AuthorizationParseError::EmptyBody);
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| AuthorizationParseError::NotJson(e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(AuthorizationParseError::NotJson(
                "expected an object".into(),
            ));
        };
        Self::from_json_object(&obj)
    }

    pub fn from_json_str(body: &str) -> Result<Self, AuthorizationParseError> {
        Self::from_json_bytes(body.as_bytes())
    }

    fn from_json_object(obj: &Map<String, Value>) -> Result<Self, AuthorizationParseError> {
        let chain_task_id = parse_b256(required_str(obj, "chainTaskId")?, "chainTaskId")?;
        let deal_id = match field(obj, "dealId") {
            None => B256::ZERO,
            Some(Value::String(s)) => parse_b256(s, "dealId")?,
            Some(_) => {
                return Err(AuthorizationParseError::Invalid {
                    field: "dealId",
                    expected: HASH_EXPECTED,
                });
            }
        };
        let task_index = match field(obj, "taskIndex") {
            None => 0,
            Some(Value::Number(n)) => n.as_u64().ok_or(AuthorizationParseError::Invalid {
                field: "taskIndex",
                expected: "a non-negative integer",
            })?,
            Some(_) => {
                return Err(AuthorizationParseError::Invalid {
                    field: "taskIndex",
                    expected: "a non-negative integer",
                });
            }
        };
        let worker_wallet = parse_addr(required_str(obj, "workerWallet")?, "workerWallet")?;
        let enclave_challenge =
            parse_addr(required_str(obj, "enclaveChallenge")?, "enclaveChallenge")?;
        let signature = match field(obj, "signature") {
            None => return Err(AuthorizationParseError::Missing { field: "signature" }),
            Some(Value::Object(sig)) => {
                let value = required_str(sig, "value").map_err(|e| match e {
                    AuthorizationParseError::Missing { .. } => AuthorizationParseError::Missing {
                        field: "signature.value",
                    },
                    _ => AuthorizationParseError::Invalid {
                        field: "signature.value",
                        expected: SIGNATURE_EXPECTED,
                    },
                })?;
                if !value.starts_with("0x") && !value.starts_with("0X") {
                    return Err(AuthorizationParseError::Invalid {
                        field: "signature.value",
                        expected: SIGNATURE_EXPECTED,
                    });
                }
                EthSignature::parse(value).map_err(|_| AuthorizationParseError::Invalid {
                    field: "signature.value",
                    expected: SIGNATURE_EXPECTED,
                })?
            }
            Some(_) => {
                return Err(AuthorizationParseError::Invalid {
                    field: "signature",
                    expected: "an object {\"value\": \"0x…\"}",
                });
            }
        };
        Ok(Self {
            chain_task_id,
            deal_id,
            task_index,
            worker_wallet,
            enclave_challenge,
            signature,
        })
    }

    /// `keccak(workerWallet ‖ chainTaskId ‖ enclaveChallenge)`.
    pub fn hash(&self) -> B256 {
        crate::challenge::workerpool_authorization(
            &self.worker_wallet,
            &self.chain_task_id,
            &self.enclave_challenge,
        )
    }

    /// True when `header` (the `Authorization` header of the request) is the worker's signature.
    pub fn is_signed_by_worker(&self, header: &EthSignature) -> bool {
        is_signed_by(header, &self.hash(), self.worker_wallet)
    }

    /// True when the body signature was made by `workerpool_owner` (the deal's pool owner).
    pub fn is_signed_by_workerpool_owner(&self, workerpool_owner: Address) -> bool {
        is_signed_by(&self.signature, &self.hash(), workerpool_owner)
    }

    /// The JSON the worker sends: lowercase hex, the same camelCase keys.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            chain_task_id: String,
            deal_id: String,
            task_index: u64,
            worker_wallet: String,
            enclave_challenge: String,
            signature: Sig<'a>,
        }
        #[derive(Serialize)]
        struct Sig<'a> {
            value: &'a str,
        }
        let sig = self.signature.to_hex();
        let wire = Wire {
            chain_task_id: crate::hex::encode_prefixed(self.chain_task_id),
            deal_id: crate::hex::encode_prefixed(self.deal_id),
            task_index: self.task_index,
            worker_wallet: crate::hex::encode_prefixed(self.worker_wallet),
            enclave_challenge: crate::hex::encode_prefixed(self.enclave_challenge),
            signature: Sig { value: &sig },
        };
        // Serialising plain strings and integers into a String cannot fail.
        serde_json::to_string(&wire).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::sign_eip191;
    use alloy_signer_local::PrivateKeySigner;

    const TASK: &str = "0xe06c86d6bb750dbd9be9e002482854b3b3f21550dbe37236767b9cac29e3ce28";
    const WORKER: &str = "0x1234567890abcdef1234567890abcdef12345678";
    const ENCLAVE: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

    fn sig_hex() -> String {
        format!("0x{}1b", "11".repeat(64))
    }

    fn body(extra: &str) -> String {
        format!(
            r#"{{"chainTaskId":"{TASK}","workerWallet":"{WORKER}","enclaveChallenge":"{ENCLAVE}","signature":{{"value":"{}"}}{extra}}}"#,
            sig_hex()
        )
    }

    #[test]
    fn parses_with_defaults_and_hashes_vector() {
        let a = WorkerpoolAuthorization::from_json_str(&body("")).unwrap();
        assert_eq!(a.chain_task_id, TASK.parse::<B256>().unwrap());
        assert_eq!(a.deal_id, B256::ZERO);
        assert_eq!(a.task_index, 0);
        assert_eq!(a.worker_wallet, WORKER.parse::<Address>().unwrap());
        assert_eq!(a.enclave_challenge, ENCLAVE.parse::<Address>().unwrap());
        // reference/iexec-client-chain.md §10.1
        assert_eq!(
            a.hash(),
            "0x82cbc20d9305d484942c6204c6ab73294778624b7deb800795ebc2a4dfbe9427"
                .parse::<B256>()
                .unwrap()
        );
    }

    #[test]
    fn parses_full_body_and_ignores_unknown_fields() {
        let deal = "0xa0b0fd396b0f79f14e4d6b34af7180bd9e80e2d86afda91c6127c5c17a268e66";
        let a = WorkerpoolAuthorization::from_json_str(&body(&format!(
            r#","dealId":"{deal}","taskIndex":3,"somethingNew":[1]"#
        )))
        .unwrap();
        assert_eq!(a.deal_id, deal.parse::<B256>().unwrap());
        assert_eq!(a.task_index, 3);
        let nulls =
            WorkerpoolAuthorization::from_json_str(&body(r#","dealId":null,"taskIndex":null"#))
                .unwrap();
        assert_eq!((nulls.deal_id, nulls.task_index), (B256::ZERO, 0));
    }

    #[test]
    fn json_round_trip() {
        let a = WorkerpoolAuthorization::from_json_str(&body(r#","taskIndex":7"#)).unwrap();
        let json = a.to_json();
        assert!(
            json.contains(r#""workerWallet":"0x1234567890abcdef1234567890abcdef12345678""#),
            "{json}"
        );
        assert!(json.contains(r#""signature":{"value":"0x1111"#), "{json}");
        assert_eq!(WorkerpoolAuthorization::from_json_str(&json).unwrap(), a);
    }

    #[test]
    fn errors_name_the_field() {
        use AuthorizationParseError as P;
        let cases: Vec<(String, P)> = vec![
            (String::new(), P::EmptyBody),
            ("  \n".into(), P::EmptyBody),
            (r#"{"chainTaskId":"#.into(), P::NotJson(String::new())),
            ("[1]".into(), P::NotJson(String::new())),
            (
                body("").replace(TASK, ""),
                P::Missing {
                    field: "chainTaskId",
                },
            ),
            (
                body("").replace(TASK, "0x1234"),
                P::Invalid {
                    field: "chainTaskId",
                    expected: HASH_EXPECTED,
                },
            ),
            (
                body("").replace(WORKER, "nope"),
                P::Invalid {
                    field: "workerWallet",
                    expected: ADDRESS_EXPECTED,
                },
            ),
            (
                body("").replace(ENCLAVE, ""),
                P::Missing {
                    field: "enclaveChallenge",
                },
            ),
            (
                body(r#","taskIndex":-1"#),
                P::Invalid {
                    field: "taskIndex",
                    expected: "a non-negative integer",
                },
            ),
            (
                body(r#","taskIndex":"1""#),
                P::Invalid {
                    field: "taskIndex",
                    expected: "a non-negative integer",
                },
            ),
            (
                body(r#","dealId":"0x12""#),
                P::Invalid {
                    field: "dealId",
                    expected: HASH_EXPECTED,
                },
            ),
            (
                body("").replace(&sig_hex(), "0x1234"),
                P::Invalid {
                    field: "signature.value",
                    expected: SIGNATURE_EXPECTED,
                },
            ),
            (
                body("").replace(&sig_hex(), &sig_hex()[2..]),
                P::Invalid {
                    field: "signature.value",
                    expected: SIGNATURE_EXPECTED,
                },
            ),
            (
                body("").replace(&sig_hex(), ""),
                P::Missing {
                    field: "signature.value",
                },
            ),
        ];
        for (input, expected) in cases {
            let err = WorkerpoolAuthorization::from_json_str(&input).unwrap_err();
            match (&err, &expected) {
                (P::NotJson(_), P::NotJson(_)) => {}
                _ => assert_eq!(err, expected, "{input}"),
            }
        }
        let no_sig = format!(
            r#"{{"chainTaskId":"{TASK}","workerWallet":"{WORKER}","enclaveChallenge":"{ENCLAVE}"}}"#
        );
        assert_eq!(
            WorkerpoolAuthorization::from_json_str(&no_sig).unwrap_err(),
            P::Missing { field: "signature" }
        );
        let flat_sig = no_sig.replace('}', r#","signature":"0x12"}"#);
        assert!(matches!(
            WorkerpoolAuthorization::from_json_str(&flat_sig).unwrap_err(),
            P::Invalid {
                field: "signature",
                ..
            }
        ));
    }

    #[test]
    fn error_codes() {
        let missing_task =
            WorkerpoolAuthorization::from_json_str(&body("").replace(TASK, "")).unwrap_err();
        assert_eq!(
            missing_task.code(),
            TeeSessionGenerationError::ExecutionNotAuthorizedEmptyParamsUnauthorized
        );
        assert_eq!(missing_task.to_session_error().http_status(), 401);
        let bad = WorkerpoolAuthorization::from_json_str("{").unwrap_err();
        assert_eq!(
            bad.code(),
            TeeSessionGenerationError::MalformedSessionRequest
        );
        assert_eq!(bad.to_session_error().http_status(), 400);
    }

    #[test]
    fn signature_checks() {
        let owner = PrivateKeySigner::random();
        let worker = PrivateKeySigner::random();
        let mut a = WorkerpoolAuthorization::from_json_str(&body("")).unwrap();
        a.worker_wallet = worker.address();
        a.signature = sign_eip191(&owner, &a.hash());
        let header = sign_eip191(&worker, &a.hash());
        assert!(a.is_signed_by_workerpool_owner(owner.address()));
        assert!(!a.is_signed_by_workerpool_owner(worker.address()));
        assert!(a.is_signed_by_worker(&header));
        assert!(!a.is_signed_by_worker(&a.signature));
        // Survives a JSON round trip.
        let back = WorkerpoolAuthorization::from_json_str(&a.to_json()).unwrap();
        assert!(back.is_signed_by_workerpool_owner(owner.address()));
    }
}

//! The enclave's result signature and the worker-API authorization.
//!
//! - `resultHash = keccak256(taskId ‖ resultDigest)`
//! - `resultSeal = keccak256(workerAddress ‖ taskId ‖ resultDigest)`
//! - `message = keccak256(resultHash ‖ resultSeal)`, signed with EIP-191 by the enclave
//!   challenge key (`SIGN_TEE_CHALLENGE_PRIVATE_KEY`);
//! - worker-API `Authorization` = EIP-191 signature of `keccak256(taskId ‖ workerAddress)`.
//!
//! Identifiers are hex strings hex-decoded and concatenated: `0x` optional, any case, an odd
//! number of digits read as if left-padded with one `0` (so `0x123456789abcdef` is 8 bytes).

use alloy_signer_local::PrivateKeySigner;
use sms_core::B256;
use sms_core::hash::concat_and_hash;
use sms_core::hex::HexError;
use sms_core::signature::{EthSignature, sign_eip191};
use thiserror::Error;

/// Signing input failure.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SigningError {
    #[error("enclave challenge private key must be 0x followed by 64 hex digits")]
    KeyFormat,
    #[error("enclave challenge private key is not a valid secp256k1 scalar")]
    KeyInvalid,
    #[error(transparent)]
    Hex(#[from] HexError),
}

/// Parses `SIGN_TEE_CHALLENGE_PRIVATE_KEY` (`0x` + 64 hex digits; `0x` optional). The
/// intermediate byte buffer is wiped.
pub fn parse_challenge_key(text: &str) -> Result<PrivateKeySigner, SigningError> {
    let bytes = sms_core::hex::decode_key32(text).ok_or(SigningError::KeyFormat)?;
    PrivateKeySigner::from_slice(bytes.as_slice()).map_err(|_| SigningError::KeyInvalid)
}

/// `keccak256(taskId ‖ resultDigest)`.
pub fn result_hash(task_id: &str, result_digest: &str) -> Result<B256, SigningError> {
    Ok(concat_and_hash(&[task_id, result_digest])?)
}

/// `keccak256(workerAddress ‖ taskId ‖ resultDigest)`.
pub fn result_seal(
    worker_address: &str,
    task_id: &str,
    result_digest: &str,
) -> Result<B256, SigningError> {
    Ok(concat_and_hash(&[worker_address, task_id, result_digest])?)
}

/// The three hashes and the signature of a TEE contribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnclaveSignature {
    pub result_hash: B256,
    pub result_seal: B256,
    /// `keccak256(resultHash ‖ resultSeal)`, the EIP-191 signed digest.
    pub message: B256,
    pub signature: EthSignature,
}

impl EnclaveSignature {
    /// `0x` + r ‖ s ‖ v (v = 27/28), lowercase: the computed.json `enclave-signature`.
    pub fn to_hex(&self) -> String {
        self.signature.to_hex()
    }
}

/// The message the enclave signs for a result.
pub fn enclave_message(
    task_id: &str,
    worker_address: &str,
    result_digest: &str,
) -> Result<(B256, B256, B256), SigningError> {
    let hash = result_hash(task_id, result_digest)?;
    let seal = result_seal(worker_address, task_id, result_digest)?;
    let message = sms_core::hash::keccak_concat(&[hash.as_slice(), seal.as_slice()]);
    Ok((hash, seal, message))
}

/// Signs a result with the enclave challenge key.
pub fn sign_result(
    task_id: &str,
    worker_address: &str,
    result_digest: &str,
    challenge_key: &PrivateKeySigner,
) -> Result<EnclaveSignature, SigningError> {
    let (result_hash, result_seal, message) =
        enclave_message(task_id, worker_address, result_digest)?;
    let signature = sign_eip191(challenge_key, &message);
    Ok(EnclaveSignature {
        result_hash,
        result_seal,
        message,
        signature,
    })
}

/// `keccak256(taskId ‖ workerAddress)`, signed for the worker API `Authorization` header.
pub fn worker_api_auth_hash(task_id: &str, worker_address: &str) -> Result<B256, SigningError> {
    Ok(concat_and_hash(&[task_id, worker_address])?)
}

/// The worker API `Authorization` header value (`0x` + 65-byte signature).
pub fn sign_worker_api_auth(
    task_id: &str,
    worker_address: &str,
    challenge_key: &PrivateKeySigner,
) -> Result<EthSignature, SigningError> {
    Ok(sign_eip191(
        challenge_key,
        &worker_api_auth_hash(task_id, worker_address)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from reference/iexec-client-chain.md §13.4.
    const SHORT_TASK: &str = "0x123456789abcdef";
    const TASK_32: &str = "0xe06c86d6bb750dbd9be9e002482854b3b3f21550dbe37236767b9cac29e3ce28";
    const DIGEST: &str = "0xcb371be217faa47dab94e0d0ff0840c6cbf41645f0dc1a6ae3f34447155a76f3";
    const WORKER: &str = "0x1234567890abcdef1234567890abcdef12345678";
    const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    fn h(s: &str) -> B256 {
        s.parse().unwrap()
    }

    #[test]
    fn both_rust_repos_signature_vector() {
        let key = parse_challenge_key(
            "0xdd3b993ec21c71c1f6d63a5240850e0d4d8dd83ff70d29e49247958548c1d479",
        )
        .unwrap();
        assert_eq!(
            key.address().to_checksum(None),
            "0x9605a0B32a4b9bbE41043459ef4d1507600C10B1"
        );
        let message = h("0x5cd0e9c5180dd35e2b8285d0db4ded193a9b4be6fbfab90cbadccecab130acad");
        assert_eq!(
            sign_eip191(&key, &message).to_hex(),
            "0xfcc6bce5eb04284c2eb1ed14405b943574343b1abda33628fbf94a374b18dd16541c6ebf63c6943d8643ff03c7aa17f1cb17b0a8d297d0fd95fc914bdd0e85f81b"
        );
        assert_eq!(
            worker_api_auth_hash(SHORT_TASK, "0xabcdef123456789").unwrap(),
            h("0xb32a6752eb13c52842e460c3c5b1142a07c5bcb9dca3536c46d073bddfa634fc")
        );
    }

    #[test]
    fn full_pipeline_with_odd_length_task_id() {
        let key = parse_challenge_key(KEY).unwrap();
        assert_eq!(
            key.address().to_checksum(None),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        let sig = sign_result(SHORT_TASK, WORKER, DIGEST, &key).unwrap();
        assert_eq!(
            sig.result_hash,
            h("0xcd82aa1575889cfb8895fd74d7f49c7ef3f7c641a3d87921acc6293aecaf9180")
        );
        assert_eq!(
            sig.result_seal,
            h("0xdb709149845f33daaef9f062d8fb15bacf40d41be03767e3fce6b67de52012fb")
        );
        assert_eq!(
            sig.message,
            h("0xecf4c0efca6dd4bb2e9e16f09acf38faa7f8b479a6c185fb8bd8ced8fa9b45f7")
        );
        assert_eq!(
            sig.to_hex(),
            "0xdcf235fbddb582f57530c41281fe5b215c9273124da35215c613901047f848e748b917efe489e49ee8644404ff2444f76d497adcccd6271a68a044221c52c76c1c"
        );
        assert!(sms_core::signature::is_signed_by(
            &sig.signature,
            &sig.message,
            key.address()
        ));
    }

    #[test]
    fn full_pipeline_with_32_byte_task_id() {
        let key = parse_challenge_key(KEY).unwrap();
        let sig = sign_result(TASK_32, WORKER, DIGEST, &key).unwrap();
        assert_eq!(
            sig.result_hash,
            h("0xc0d25afdaefa93d8ee509766a9fc0121762e94e4de99426246b1e512ce51e2ad")
        );
        assert_eq!(
            sig.result_seal,
            h("0x0b7e3b701c521a050520b451ce1a530c8e87d332e31b8230164326cc2a14eb1c")
        );
        assert_eq!(
            sig.message,
            h("0x4dec723f81af9fea02296d534b09abacf10c9ce9d42d5b5f096e155e93663a30")
        );
        assert_eq!(
            sig.to_hex(),
            "0x5c2355ecfe701cf1cf80f367d2b129d00879065755a6bb84291b41b5e6e0287e572158a017349b7d2dcdd29eb6ac48920da1dd5878c194d5c51ea80b596569a31b"
        );
    }

    #[test]
    fn worker_api_authorization_vector() {
        let key = parse_challenge_key(KEY).unwrap();
        assert_eq!(
            worker_api_auth_hash(TASK_32, WORKER).unwrap(),
            h("0xb41f7f73f3171bc6273785634361b05895a72f4fe1fbafa659d49bfdca69396e")
        );
        assert_eq!(
            sign_worker_api_auth(TASK_32, WORKER, &key)
                .unwrap()
                .to_hex(),
            "0x89a72c95171a486465d06c1fa7135b33f16cba0100865f73992abc48ba0db23a6e81a7d657ca3a702877f86123861b960901c41bcd5c12547280cd4d382776581b"
        );
    }

    #[test]
    fn input_errors() {
        assert_eq!(
            parse_challenge_key("0x1234").unwrap_err(),
            SigningError::KeyFormat
        );
        assert_eq!(
            parse_challenge_key(&"zz".repeat(32)).unwrap_err(),
            SigningError::KeyFormat
        );
        assert_eq!(
            parse_challenge_key(&"00".repeat(32)).unwrap_err(),
            SigningError::KeyInvalid
        );
        assert!(parse_challenge_key(KEY.trim_start_matches("0x")).is_ok());
        assert!(matches!(
            result_hash("0xnothex", DIGEST),
            Err(SigningError::Hex(_))
        ));
        assert!(matches!(
            worker_api_auth_hash(TASK_32, "worker"),
            Err(SigningError::Hex(_))
        ));
    }
}

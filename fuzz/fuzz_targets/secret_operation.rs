//! A v2 request body (`POST /v2/secrets/*`, EIP-712 typed data): `SignedRequest` from JSON,
//! `sms_core::secret_operation::verify` against a fixed domain and clock, then the operation
//! and target rules (run as if the signature held, so they are reached).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_core::Address;
use sms_core::secret_operation::{
    self, Operation, ServiceDomain, SignedRequest, VerifiedOperation,
};

const NOW: u64 = 1_750_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<SignedRequest>(data) else {
        return;
    };
    let domain = ServiceDomain {
        chain_id: request.domain.chain_id,
        instance: ServiceDomain::instance_of_identity("fuzz"),
    };
    let _ = secret_operation::verify(&request, &domain, NOW);
    let _ = request.message.signing_hash(&domain);
    let unverified = VerifiedOperation {
        signer: request.signer,
        message: request.message.clone(),
    };
    for expected in [
        Operation::Put,
        Operation::Delete,
        Operation::List,
        Operation::Show,
    ] {
        if let Ok(op) = unverified.operation(expected) {
            if let Ok(target) = unverified.target(op) {
                let _ = target.kind();
                let _ = target.owner() == Address::ZERO;
            }
        }
    }
    let _ = unverified.nonce();
    if let Some(value) = &request.value {
        let _ = secret_operation::value_hash(value.as_bytes());
    }
});

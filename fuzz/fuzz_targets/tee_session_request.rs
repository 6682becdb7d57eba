//! The body of `POST /tee/sessions` (a WorkerpoolAuthorization) and its `Authorization`
//! header: `sms_core::authorization::WorkerpoolAuthorization::from_json_bytes`, then the
//! signature checks the route runs before any chain read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_core::authorization::WorkerpoolAuthorization;
use sms_core::signature::EthSignature;

fuzz_target!(|data: &[u8]| {
    // The first line is the Authorization header, the rest the body.
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(0);
    let (header, body) = data.split_at(split);
    let Ok(auth) = WorkerpoolAuthorization::from_json_bytes(body) else {
        return;
    };
    let _ = auth.hash();
    // What parses prints to JSON that parses to the same authorization.
    let again =
        WorkerpoolAuthorization::from_json_str(&auth.to_json()).expect("printed form parses");
    assert_eq!(again.hash(), auth.hash());
    if let Ok(signature) = EthSignature::parse(&String::from_utf8_lossy(header)) {
        let _ = auth.is_signed_by_worker(&signature);
    }
    let _ = auth.is_signed_by_workerpool_owner(sms_core::Address::ZERO);
});

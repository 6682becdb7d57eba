//! The `Authorization` header of every signed route: `sms_core::signature::EthSignature::parse`,
//! then recovery over the challenge digest of the route (the rest of the input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_core::challenge;
use sms_core::signature::EthSignature;

fuzz_target!(|data: &[u8]| {
    // Header values reach the parser as visible ASCII; anything UTF-8 is tried.
    let (header, rest) = data.split_at(data.len().min(140));
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let Ok(signature) = EthSignature::parse(header) else {
        return;
    };
    // What parses prints back to a header that parses to the same signature.
    let printed = signature.to_hex();
    assert_eq!(EthSignature::parse(&printed), Ok(signature));
    let digest = challenge::web3_secret(rest, rest);
    if let Ok(signer) = signature.recover_eip191(&digest) {
        assert!(sms_core::signature::is_signed_by(
            &signature, &digest, signer
        ));
    }
});

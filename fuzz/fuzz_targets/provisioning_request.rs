//! The body of `POST /tee/provisioning/{session}/{service}/release`: step 1 of a release in
//! the server (`parse_request`: JSON, base64 nonce, X25519 public key, evidence), through
//! `sms_server::fuzzing::release_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(code) = sms_server::fuzzing::release_request(data) {
        assert_eq!(
            code, "REQUEST_MALFORMED",
            "a parse step refuses as malformed only"
        );
    }
});

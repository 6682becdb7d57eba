//! What a challenge is computed from, as the routes take it from paths and queries: addresses
//! (`sms_core::secret::parse_address`), secret names, task ids (the `/tee/challenges/{task}`
//! segment), tags; then the digests of `sms_core::challenge`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_core::challenge;
use sms_core::secret::{RequesterSecretName, SecretId, parse_address};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '/');
    let (address, name, value) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if let Ok(owner) = parse_address(address) {
        // An address that parses prints back to one that parses to the same.
        assert_eq!(parse_address(&owner.to_string()).ok(), Some(owner));
        let _ = challenge::named_secret(owner.as_slice(), name, value.as_bytes());
        let _ = challenge::web3_secret(owner.as_slice(), value.as_bytes());
        let _ = challenge::app_developer_secret(&owner, value.as_bytes());
        if let Ok(name) = RequesterSecretName::parse(name) {
            assert!(name.as_str().len() <= 64);
            let _ = SecretId::requester(owner, &name).binding();
        }
        if let Ok(id) = SecretId::web2(owner, name) {
            let _ = id.binding();
        }
    }
    if let Some(task) = sms_server::fuzzing::task_id(address) {
        let _ = challenge::enclave_challenge_request(&task);
        let worker = parse_address(name).unwrap_or_default();
        let _ = challenge::workerpool_authorization(&worker, &task, &worker);
    }
    let _ = sms_core::tag::parse_tag(&text);
    let _ = sms_core::hex::decode_lenient(&text);
});

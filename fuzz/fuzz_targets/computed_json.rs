//! `computed.json`, written by the app inside the enclave and read by the post-compute:
//! `sms_worker::computed::ComputedFile::parse`, `validate`, and the callback (web3) digest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_worker::computed::ComputedFile;

fuzz_target!(|data: &[u8]| {
    let Ok(computed) = ComputedFile::parse(data) else {
        return;
    };
    // What parses prints to JSON that parses to the same.
    assert_eq!(
        ComputedFile::parse(computed.to_json().as_bytes())
            .ok()
            .as_ref(),
        Some(&computed)
    );
    if computed.validate(true).is_ok() {
        // The web2 digest reads the file system: only the callback digest runs here.
        let _ = sms_worker::result_digest::result_digest(&computed, true);
    }
    let _ = computed.validate(false);
});

//! An app's enclave configuration, read from the chain (`mrenclave` bytes, JSON):
//! `sms_core::enclave_config::TeeEnclaveConfiguration`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_core::enclave_config::TeeEnclaveConfiguration;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(config)) = TeeEnclaveConfiguration::from_mrenclave(data)
        && let Ok(valid) = config.validate()
    {
        let _ = valid.measurement().to_prefixed();
        // A valid configuration prints to JSON that parses and validates again.
        let again = TeeEnclaveConfiguration::from_json(&config.to_json())
            .expect("printed configuration parses");
        again.validate().expect("printed configuration validates");
    }
});

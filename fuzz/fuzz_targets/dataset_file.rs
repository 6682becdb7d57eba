//! An encrypted dataset file as downloaded by the pre-compute (`IV ‖ AES-256-CBC`):
//! `sms_worker::dataset::decrypt` with a fixed key, the checksum, and the key text
//! (`DatasetKey::from_base64`, the dataset secret).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_worker::dataset::{self, DatasetKey};

fuzz_target!(|data: &[u8]| {
    // The key of the test vector of the pre-compute (seeds/dataset_file/vector decrypts).
    let key =
        DatasetKey::from_base64("ubA6H9emVPJT91/flYAmnKHC0phSV3cfuqsLxQfgow0=").expect("fixed key");
    let mut plain = Vec::new();
    if let Ok(decrypted) = dataset::decrypt(data, &mut plain, &key) {
        assert_eq!(decrypted.plaintext_len as usize, plain.len());
        assert!(
            plain.len() + 16 < data.len() + 1,
            "padding removed at least one byte"
        );
        assert_eq!(
            decrypted.checksum.to_hex(),
            dataset::checksum(data).expect("in memory").to_hex()
        );
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = DatasetKey::from_base64(text);
    }
});

//! A result archive (`iexec_out.zip`, encrypted or not) as a beneficiary downloads it:
//! `sms_worker::result_archive::decrypt_result_archive` with a fixed key (zip parsing, key
//! entry, legacy format, payload), and the beneficiary key texts.
#![no_main]

use std::io::Cursor;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sms_worker::result_archive::{self, ResultPrivateKey, ResultPublicKey};

fn key() -> &'static ResultPrivateKey {
    static KEY: OnceLock<ResultPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        // The iExec format is RSA-4096; a small key keeps one execution cheap.
        let pair = result_archive::generate_key_pair_with_bits(1024).expect("key generation");
        ResultPrivateKey::from_pem(&pair.private_pem).expect("own key parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let _ = result_archive::decrypt_result_archive(Cursor::new(data), key(), &mut out);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ResultPublicKey::from_push_format(text);
        let _ = ResultPublicKey::from_pem(text);
    }
});

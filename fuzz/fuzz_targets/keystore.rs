//! Keystore V3 files (`sms wallet`, the dev wallets of `--dev`): the parse step
//! `sms_client::wallet::check_keystore` that runs before any key derivation. A file it accepts
//! with a tiny KDF cost is also decrypted in full, so the decryption library only ever sees
//! checked input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_client::wallet::{self, KeystoreKdf};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(kdf) = wallet::check_keystore(text) else {
        return;
    };
    let cheap = match kdf {
        KeystoreKdf::Scrypt { n, r, p } => u64::from(n) * u64::from(r) * u64::from(p) <= 64,
        KeystoreKdf::Pbkdf2 { rounds } => rounds <= 64,
    };
    if cheap {
        let dir = std::env::temp_dir().join(format!("sms-fuzz-keystore-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("wallet.json");
        if std::fs::write(&path, text).is_ok() {
            let _ = wallet::load(&path, "fuzz");
        }
    }
});

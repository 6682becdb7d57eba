//! Result archives in the SDK's legacy format (base64 entries, AES-128-ECB), built here by
//! OpenSSL from the committed test key, and — when `SMS_SDK_FIXTURES` names a checkout's
//! `test/inputs` directory of the public iexec-sdk repository — the SDK's own archives
//! (never committed here).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sms_worker::result_archive::{ResultPrivateKey, decrypt_result_archive};
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/result_archive");

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is required for this test");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.unwrap_or_default())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        zip.start_file(*name, SimpleFileOptions::default()).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn private_key() -> ResultPrivateKey {
    ResultPrivateKey::from_pem(&std::fs::read_to_string(fixture("beneficiary_key.pem")).unwrap())
        .unwrap()
}

/// A legacy archive of `plain`: key entry = base64(RSA-PKCS1v15(base64(key))), payload =
/// base64(AES-128-ECB/PKCS7(plain)); `wrap` lets a test corrupt the key text.
fn legacy_archive(plain: &[u8], key_hex: &str, key_text: &[u8]) -> Vec<u8> {
    let public = fixture("beneficiary_key.pub.pem");
    let wrapped = openssl(
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            public.to_str().unwrap(),
            "-pkeyopt",
            "rsa_padding_mode:pkcs1",
        ],
        Some(key_text),
    );
    let key_entry = openssl(&["base64", "-A"], Some(&wrapped));
    let ciphertext = openssl(&["enc", "-aes-128-ecb", "-K", key_hex], Some(plain));
    // Multi-line base64 (openssl's default, 64 columns): whitespace is ignored like the SDK.
    let payload = openssl(&["base64"], Some(&ciphertext));
    archive(&[("aes-key.rsa", &key_entry), ("iexec_out.zip.aes", &payload)])
}

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f";
const KEY_B64: &[u8] = b"AAECAwQFBgcICQoLDA0ODw==";

#[test]
fn opens_a_legacy_archive_made_by_openssl() {
    let plain = std::fs::read(fixture("iexec_out.zip")).unwrap();
    let legacy = legacy_archive(&plain, KEY_HEX, KEY_B64);
    let mut out = Vec::new();
    let n = decrypt_result_archive(Cursor::new(legacy), &private_key(), &mut out).unwrap();
    assert_eq!(out, plain);
    assert_eq!(n as usize, plain.len());
    // The current format still opens (same key file).
    let mut current = Vec::new();
    let archive = std::fs::read(fixture("encryptedResults.zip")).unwrap();
    decrypt_result_archive(Cursor::new(archive), &private_key(), &mut current).unwrap();
    assert_eq!(current, plain);
}

#[test]
fn legacy_archive_errors_are_the_sdks() {
    let plain = b"legacy result bytes";
    let err = |archive: Vec<u8>| {
        decrypt_result_archive(Cursor::new(archive), &private_key(), &mut Vec::new())
            .unwrap_err()
            .to_string()
    };
    // A 32-byte key text is not the legacy AES-128 mode.
    let long = legacy_archive(
        plain,
        KEY_HEX,
        b"AAECAwQFBgcICQoLDA0ODwABAgMEBQYHCAkKCwwNDg8=",
    );
    assert_eq!(err(long), "Failed to determine result encryption mode");
    // Key text that is not base64.
    let garbled = legacy_archive(plain, KEY_HEX, b"not base64 at all!");
    assert_eq!(
        err(garbled),
        "Failed to decrypt results key with beneficiary key"
    );
    // Wrong AES key for the payload (padding check fails).
    let wrong = legacy_archive(plain, "ffeeddccbbaa99887766554433221100", KEY_B64);
    assert_eq!(
        err(wrong),
        "Failed to decrypt results with decrypted results key"
    );
    // Payload that is not base64.
    let good = legacy_archive(plain, KEY_HEX, KEY_B64);
    let mut zip = zip::ZipArchive::new(Cursor::new(good)).unwrap();
    let mut key_entry = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name("aes-key.rsa").unwrap(), &mut key_entry).unwrap();
    let bad_payload = archive(&[("aes-key.rsa", &key_entry), ("iexec_out.zip.aes", b"%%%")]);
    assert_eq!(
        err(bad_payload),
        "Failed to decrypt results with decrypted results key"
    );
}

/// The SDK's own fixtures, read from a checkout given by `SMS_SDK_FIXTURES` (its `test/inputs`);
/// each encrypted archive must open with one of its beneficiary keys.
#[test]
fn sdk_fixtures_when_given() {
    let Some(dir) = std::env::var_os("SMS_SDK_FIXTURES") else {
        eprintln!("SMS_SDK_FIXTURES not set: the SDK's own fixtures are not checked");
        return;
    };
    let dir = PathBuf::from(dir);
    let keys: Vec<ResultPrivateKey> = std::fs::read_dir(dir.join("beneficiaryKeys"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .filter_map(|pem| ResultPrivateKey::from_pem(&pem).ok())
        .collect();
    assert!(
        !keys.is_empty(),
        "no beneficiary private key in {}",
        dir.display()
    );
    for name in ["encryptedResults.zip", "legacyEncryptedResults.zip"] {
        let bytes = std::fs::read(dir.join("encryptedResults").join(name)).unwrap();
        let opened = keys.iter().any(|key| {
            let mut out = Vec::new();
            decrypt_result_archive(Cursor::new(bytes.clone()), key, &mut out).is_ok()
                && zip::ZipArchive::new(Cursor::new(out)).is_ok()
        });
        assert!(opened, "{name}: no key of the SDK fixtures opens it");
    }
}

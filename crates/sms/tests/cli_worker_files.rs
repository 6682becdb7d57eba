//! The file commands and the built-in stages through the `sms` binary: `dataset encrypt|decrypt`,
//! `result generate-encryption-keypair|decrypt`, `worker pre-compute|post-compute`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const VECTOR_KEY: &str = "ubA6H9emVPJT91/flYAmnKHC0phSV3cfuqsLxQfgow0=";
const VECTOR_FILE: &str = "78ab4c3200a47fafad8e9b58c24004f6387639f4a68010f0038d45fd48beffa895bce7056c2f37c9262452c663fa545b";
const VECTOR_CHECKSUM: &str = "0x02a12ef127dcfbdb294a090c8f0b69a0ca30b7940fc36cabf971f488efd374d7";
const TASK: &str = "0xe06c86d6bb750dbd9be9e002482854b3b3f21550dbe37236767b9cac29e3ce28";
const WORKER: &str = "0x1234567890abcdef1234567890abcdef12345678";
const CHALLENGE_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", self.stdout, self.stderr))
    }
}

fn sms(dir: &Path, args: &[&str], env: &BTreeMap<&str, String>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sms"));
    cmd.args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("SMS_WALLET_FILE")
        .env_remove("SMS_WALLET_PASSWORD");
    for var in [
        "IEXEC_TASK_ID",
        "SMS_RESULT_DIR",
        "SMS_WORKER_IEXEC_IN",
        "SMS_WORKER_IEXEC_OUT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env);
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(dir: &Path, args: &[&str]) -> Value {
    let run = sms(dir, args, &BTreeMap::new());
    assert_eq!(run.code, 0, "sms {args:?}: {}{}", run.stdout, run.stderr);
    run.json()
}

fn sha256_hex(bytes: &[u8]) -> String {
    sms_core::hex::encode_prefixed(sms_core::hash::sha256(bytes))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sms-worker/tests/fixtures/result_archive")
}

#[test]
fn dataset_encrypt_decrypt_round_trip() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    std::fs::create_dir_all(dir.join("datasets/original")).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("datasets/original/big.bin"), &big).unwrap();
    std::fs::write(dir.join("datasets/original/small.txt"), b"hello dataset").unwrap();
    std::fs::create_dir(dir.join("datasets/original/sub")).unwrap();

    // No file given: the SDK layout, each regular file with its own key, directories skipped.
    let out = ok(dir, &["dataset", "encrypt", "--json"]);
    let files = out["encryptedFiles"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for f in files {
        let encrypted = dir.join(f["encrypted"].as_str().unwrap());
        let key = dir.join(f["key"].as_str().unwrap());
        assert_eq!(
            f["checksum"],
            sha256_hex(&std::fs::read(&encrypted).unwrap()).as_str()
        );
        let key_text = std::fs::read_to_string(&key).unwrap();
        assert_eq!(key_text.len(), 44, "44 base64 characters, no newline");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
    assert!(dir.join("datasets/encrypted/big.bin.enc").is_file());
    assert!(dir.join(".secrets/datasets/small.txt.key").is_file());
    // dataset.key = the last key.
    assert_eq!(
        std::fs::read(dir.join(".secrets/datasets/dataset.key")).unwrap(),
        std::fs::read(dir.join(".secrets/datasets/small.txt.key")).unwrap()
    );
    // Never overwritten without --force.
    let again = sms(
        dir,
        &["dataset", "encrypt", "datasets/original/small.txt"],
        &BTreeMap::new(),
    );
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    ok(
        dir,
        &[
            "dataset",
            "encrypt",
            "datasets/original/small.txt",
            "--force",
            "--json",
        ],
    );

    // Decrypt with a key file, default output name (without .enc).
    let dec = ok(
        dir,
        &[
            "dataset",
            "decrypt",
            "datasets/encrypted/big.bin.enc",
            "--key",
            ".secrets/datasets/big.bin.key",
            "--json",
        ],
    );
    assert_eq!(dec["decrypted"], "datasets/encrypted/big.bin");
    assert_eq!(
        std::fs::read(dir.join("datasets/encrypted/big.bin")).unwrap(),
        big
    );
    // With the base64 key and an explicit output.
    let key = std::fs::read_to_string(dir.join(".secrets/datasets/small.txt.key")).unwrap();
    ok(
        dir,
        &[
            "dataset",
            "decrypt",
            "datasets/encrypted/small.txt.enc",
            "--key",
            &key,
            "--out",
            "plain.txt",
            "--json",
        ],
    );
    assert_eq!(
        std::fs::read(dir.join("plain.txt")).unwrap(),
        b"hello dataset"
    );
    // A wrong key fails and leaves nothing behind.
    let wrong = sms(
        dir,
        &[
            "dataset",
            "decrypt",
            "datasets/encrypted/big.bin.enc",
            "--key",
            ".secrets/datasets/small.txt.key",
            "--out",
            "wrong.bin",
        ],
        &BTreeMap::new(),
    );
    assert_ne!(wrong.code, 0);
    assert!(wrong.stderr.contains("padding"), "{}", wrong.stderr);
    assert!(!dir.join("wrong.bin").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty());
    // No key value is ever printed.
    assert!(!again.stdout.contains(&key) && !dec.to_string().contains(&key));
}

#[test]
fn dataset_decrypt_upstream_vector() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    std::fs::write(
        dir.join("encrypted-data.bin.enc"),
        sms_core::hex::decode_lenient(VECTOR_FILE).unwrap(),
    )
    .unwrap();
    let out = ok(
        dir,
        &[
            "dataset",
            "decrypt",
            "encrypted-data.bin.enc",
            "--key",
            VECTOR_KEY,
            "--json",
        ],
    );
    assert_eq!(out["checksum"], VECTOR_CHECKSUM);
    assert_eq!(
        std::fs::read(dir.join("encrypted-data.bin")).unwrap(),
        b"Some very useful data."
    );
}

#[test]
fn result_keypair_and_archive_round_trip() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    // The fixture archive, made with OpenSSL, decrypts to the fixture zip.
    let fx = fixtures();
    let archive = fx.join("encryptedResults.zip").display().to_string();
    let key = fx.join("beneficiary_key.pem").display().to_string();
    ok(
        dir,
        &["result", "decrypt", &archive, "--key", &key, "--json"],
    );
    assert_eq!(
        std::fs::read(dir.join("results.zip")).unwrap(),
        std::fs::read(fx.join("iexec_out.zip")).unwrap()
    );
    let exists = sms(
        dir,
        &["result", "decrypt", &archive, "--key", &key],
        &BTreeMap::new(),
    );
    assert!(
        exists.stderr.contains("already exists"),
        "{}",
        exists.stderr
    );

    // A generated key pair (RSA-4096 by default; 2048 here to keep the test fast), used by
    // post-compute to encrypt and by `result decrypt` to open.
    let address = "0x7bd4783fdcad405a28052a0d1f11236a741da593";
    let pair = ok(
        dir,
        &[
            "result",
            "generate-encryption-keypair",
            "--address",
            address,
            "--bits",
            "2048",
            "--json",
        ],
    );
    assert_eq!(
        pair["address"],
        "0x7bd4783FDCAD405A28052a0d1f11236A741da593"
    );
    let public =
        dir.join(".secrets/beneficiary/0x7bd4783FDCAD405A28052a0d1f11236A741da593_key.pub");
    let private = dir.join(".secrets/beneficiary/0x7bd4783FDCAD405A28052a0d1f11236A741da593_key");
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    assert!(
        std::fs::read_to_string(&private)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let twice = sms(
        dir,
        &[
            "result",
            "generate-keys",
            "--address",
            address,
            "--bits",
            "2048",
        ],
        &BTreeMap::new(),
    );
    assert!(twice.stderr.contains("already exists"), "{}", twice.stderr);

    let task = tempfile::tempdir().unwrap();
    let (out_dir, results) = (task.path().join("out"), task.path().join("results"));
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(out_dir.join("result.txt"), "f(2) = 15").unwrap();
    std::fs::write(
        out_dir.join("computed.json"),
        r#"{"deterministic-output-path":"/iexec_out/result.txt"}"#,
    )
    .unwrap();
    let pem = std::fs::read_to_string(&public).unwrap();
    let env = BTreeMap::from([
        ("IEXEC_TASK_ID", TASK.to_owned()),
        ("SIGN_WORKER_ADDRESS", WORKER.to_owned()),
        ("SIGN_TEE_CHALLENGE_PRIVATE_KEY", CHALLENGE_KEY.to_owned()),
        ("RESULT_STORAGE_CALLBACK", "false".to_owned()),
        ("RESULT_ENCRYPTION", "true".to_owned()),
        (
            "RESULT_ENCRYPTION_PUBLIC_KEY",
            sms_worker::result_archive::format_encryption_key(&pem),
        ),
        ("SMS_WORKER_IEXEC_OUT", out_dir.display().to_string()),
        ("SMS_RESULT_DIR", results.display().to_string()),
    ]);
    let run = sms(dir, &["worker", "post-compute", "--json"], &env);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let post = run.json();
    assert_eq!(post["encrypted"], true);
    assert_eq!(post["resultDigest"], sha256_hex(b"f(2) = 15").as_str());
    assert!(!run.stdout.contains(CHALLENGE_KEY) && !run.stderr.contains(CHALLENGE_KEY));
    let stored = post["archive"].as_str().unwrap();
    ok(
        dir,
        &[
            "result",
            "decrypt",
            stored,
            "--key",
            &private.display().to_string(),
            "--out",
            "mine.zip",
            "--json",
        ],
    );
    let mut zip = zip::ZipArchive::new(std::fs::File::open(dir.join("mine.zip")).unwrap()).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("result.txt").unwrap(), &mut text).unwrap();
    assert_eq!(text, "f(2) = 15");
    // Another key cannot open it.
    let other = sms(
        dir,
        &[
            "result",
            "decrypt",
            stored,
            "--key",
            &key,
            "--out",
            "other.zip",
        ],
        &BTreeMap::new(),
    );
    assert!(
        other
            .stderr
            .contains("Failed to decrypt results key with beneficiary key"),
        "{}",
        other.stderr
    );
}

#[test]
fn stages_report_upstream_causes_and_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let input = dir.join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(
        dir.join("data.enc"),
        sms_core::hex::decode_lenient(VECTOR_FILE).unwrap(),
    )
    .unwrap();
    let mut env = BTreeMap::from([
        ("IEXEC_TASK_ID", TASK.to_owned()),
        ("SIGN_WORKER_ADDRESS", WORKER.to_owned()),
        ("SIGN_TEE_CHALLENGE_PRIVATE_KEY", CHALLENGE_KEY.to_owned()),
        ("IEXEC_PRE_COMPUTE_OUT", "/iexec_in".to_owned()),
        ("SMS_WORKER_IEXEC_IN", input.display().to_string()),
        ("IS_DATASET_REQUIRED", "true".to_owned()),
        (
            "IEXEC_DATASET_URL",
            dir.join("data.enc").display().to_string(),
        ),
        ("IEXEC_DATASET_KEY", VECTOR_KEY.to_owned()),
        ("IEXEC_DATASET_CHECKSUM", VECTOR_CHECKSUM.to_owned()),
        (
            "IEXEC_DATASET_FILENAME",
            "0x2Ad5773db1a705DB568fAd403cd247fee4808Fb8".to_owned(),
        ),
        ("IEXEC_INPUT_FILES_NUMBER", "0".to_owned()),
    ]);
    let run = sms(dir, &["worker", "pre-compute", "--json"], &env);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        std::fs::read(input.join("0x2Ad5773db1a705DB568fAd403cd247fee4808Fb8")).unwrap(),
        b"Some very useful data."
    );

    env.insert("IEXEC_DATASET_CHECKSUM", format!("0x{}", "00".repeat(32)));
    let run = sms(dir, &["worker", "pre-compute"], &env);
    assert_eq!(run.code, 1);
    let line: Value = serde_json::from_str(run.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(line["cause"], "PRE_COMPUTE_INVALID_DATASET_CHECKSUM");
    assert_eq!(line["stage"], "pre-compute");

    env.insert("IEXEC_DATASET_CHECKSUM", VECTOR_CHECKSUM.to_owned());
    env.insert(
        "IEXEC_DATASET_KEY",
        "ERERERERERERERERERERERERERERERERERERERERERE=".to_owned(),
    );
    env.insert(
        "SMS_EXIT_CAUSE_FILE",
        dir.join("causes.json").display().to_string(),
    );
    let run = sms(dir, &["worker", "pre-compute"], &env);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("PRE_COMPUTE_DATASET_DECRYPTION_FAILED"),
        "{}",
        run.stderr
    );
    let causes: Value =
        serde_json::from_slice(&std::fs::read(dir.join("causes.json")).unwrap()).unwrap();
    assert_eq!(causes[0]["cause"], "PRE_COMPUTE_DATASET_DECRYPTION_FAILED");
    for secret in [
        VECTOR_KEY,
        "ERERERERERERERERERERERERERERERERERERERERERE=",
        CHALLENGE_KEY,
    ] {
        assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret));
    }

    env.remove("SIGN_TEE_CHALLENGE_PRIVATE_KEY");
    assert_eq!(sms(dir, &["worker", "pre-compute"], &env).code, 2);
    env.remove("IEXEC_TASK_ID");
    let run = sms(dir, &["worker", "pre-compute"], &env);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("PRE_COMPUTE_TASK_ID_MISSING"));
    let run = sms(dir, &["worker", "post-compute"], &env);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("POST_COMPUTE_TASK_ID_MISSING"));
}

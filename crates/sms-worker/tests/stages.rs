//! The built-in pre-compute and post-compute stages driven through their environment only:
//! the upstream vectors (dataset §3, result digest §13.3, enclave signature §13.4), the
//! checksum-before-decryption rule, the failure causes, and HTTP downloads from a local server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use sms_worker::exit_cause::ExitCause;
use sms_worker::post_compute;
use sms_worker::pre_compute;
use sms_worker::result_archive::{ResultPrivateKey, decrypt_result_archive};
use sms_worker::stage::{
    ENV_EXIT_CAUSE_FILE, ENV_LOCAL_IEXEC_IN, ENV_LOCAL_IEXEC_OUT, ENV_RESULT_DIR, ExitCode,
    read_cause_file,
};

const VECTOR_KEY: &str = "ubA6H9emVPJT91/flYAmnKHC0phSV3cfuqsLxQfgow0=";
const VECTOR_FILE: &str = "78ab4c3200a47fafad8e9b58c24004f6387639f4a68010f0038d45fd48beffa895bce7056c2f37c9262452c663fa545b";
const VECTOR_CHECKSUM: &str = "0x02a12ef127dcfbdb294a090c8f0b69a0ca30b7940fc36cabf971f488efd374d7";
const DATASET_ADDRESS: &str = "0x2Ad5773db1a705DB568fAd403cd247fee4808Fb8";

const WORKER: &str = "0x1234567890abcdef1234567890abcdef12345678";
const CHALLENGE_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const TASK_32: &str = "0xe06c86d6bb750dbd9be9e002482854b3b3f21550dbe37236767b9cac29e3ce28";

type Env = BTreeMap<String, String>;

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

struct Task {
    dir: tempfile::TempDir,
}

impl Task {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["in", "out", "results", "src"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        Self { dir }
    }
    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p)
    }
    fn s(&self, p: &str) -> String {
        self.path(p).display().to_string()
    }
    fn base_env(&self) -> Env {
        env(&[
            ("IEXEC_TASK_ID", TASK_32),
            ("SIGN_WORKER_ADDRESS", WORKER),
            ("SIGN_TEE_CHALLENGE_PRIVATE_KEY", CHALLENGE_KEY),
            (ENV_LOCAL_IEXEC_IN, &self.s("in")),
            (ENV_LOCAL_IEXEC_OUT, &self.s("out")),
            (ENV_RESULT_DIR, &self.s("results")),
            (ENV_EXIT_CAUSE_FILE, &self.s("causes.json")),
        ])
    }
    fn pre_env(&self, url: &str, key: &str, checksum: &str) -> Env {
        let mut e = self.base_env();
        e.extend(env(&[
            ("IEXEC_PRE_COMPUTE_OUT", "/iexec_in"),
            ("IS_DATASET_REQUIRED", "true"),
            ("IEXEC_DATASET_URL", url),
            ("IEXEC_DATASET_KEY", key),
            ("IEXEC_DATASET_CHECKSUM", checksum),
            ("IEXEC_DATASET_FILENAME", DATASET_ADDRESS),
            ("IEXEC_INPUT_FILES_NUMBER", "0"),
        ]));
        e
    }
    fn causes(&self) -> Vec<ExitCause> {
        read_cause_file(&self.path("causes.json"))
            .unwrap()
            .into_iter()
            .map(|c| c.cause)
            .collect()
    }
    fn in_files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path("in"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
    fn write_vector(&self) -> String {
        let path = self.path("src/dataset.enc");
        fs::write(&path, sms_core::hex::decode_lenient(VECTOR_FILE).unwrap()).unwrap();
        path.display().to_string()
    }
}

/// Serves `routes` (path → body; anything else 404) over HTTP/1.1 on a loopback port.
fn http_server(routes: Vec<(&'static str, Vec<u8>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (status, body) = match routes.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => ("200 OK", body.clone()),
                None => ("404 Not Found", b"not found".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn pre_compute_decrypts_the_upstream_vector() {
    let task = Task::new();
    let file = task.write_vector();
    let (code, out) = pre_compute::run(&task.pre_env(&file, VECTOR_KEY, VECTOR_CHECKSUM)).await;
    assert_eq!(code, ExitCode::Success);
    let written = out.unwrap().dataset.unwrap();
    assert_eq!(written, task.path("in").join(DATASET_ADDRESS));
    assert_eq!(fs::read(&written).unwrap(), b"Some very useful data.");
    // No temporary file left behind.
    assert_eq!(task.in_files(), vec![DATASET_ADDRESS.to_owned()]);
    // file:// works too.
    let task = Task::new();
    let url = format!("file://{}", task.write_vector());
    let (code, _) = pre_compute::run(&task.pre_env(&url, VECTOR_KEY, VECTOR_CHECKSUM)).await;
    assert_eq!(code, ExitCode::Success);
}

#[tokio::test]
async fn checksum_mismatch_is_refused_before_decryption() {
    let task = Task::new();
    let file = task.write_vector();
    // A wrong key too: the checksum must be what fails, before decryption is attempted.
    let wrong_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let bad_checksum = format!("0x{}", "11".repeat(32));
    let (code, _) = pre_compute::run(&task.pre_env(&file, wrong_key, &bad_checksum)).await;
    assert_eq!(code, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PreComputeInvalidDatasetChecksum]
    );
    assert!(task.in_files().is_empty(), "{:?}", task.in_files());
    // Upper-case hex is not the same string: compared exactly, like upstream.
    let (code, _) = pre_compute::run(&task.pre_env(
        &file,
        VECTOR_KEY,
        &VECTOR_CHECKSUM.to_uppercase().replace("0X", "0x"),
    ))
    .await;
    assert_eq!(code, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PreComputeInvalidDatasetChecksum]
    );
}

#[tokio::test]
async fn wrong_key_fails_with_the_upstream_cause() {
    let task = Task::new();
    let file = task.write_vector();
    let wrong_key = "ERERERERERERERERERERERERERERERERERERERERERE=";
    let (code, _) = pre_compute::run(&task.pre_env(&file, wrong_key, VECTOR_CHECKSUM)).await;
    assert_eq!(code, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PreComputeDatasetDecryptionFailed]
    );
    assert!(task.in_files().is_empty());
    // A key that is not a dataset key at all: same cause.
    let (code, _) = pre_compute::run(&task.pre_env(&file, "bm90IGEga2V5", VECTOR_CHECKSUM)).await;
    assert_eq!(code, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PreComputeDatasetDecryptionFailed]
    );
}

#[tokio::test]
async fn http_dataset_and_input_files() {
    let vector = sms_core::hex::decode_lenient(VECTOR_FILE).unwrap();
    let base = http_server(vec![
        ("/data.enc", vector),
        ("/input.txt", b"input one".to_vec()),
    ]);
    let task = Task::new();
    let mut e = task.pre_env(&format!("{base}/data.enc"), VECTOR_KEY, VECTOR_CHECKSUM);
    let input_url = format!("{base}/input.txt");
    e.insert("IEXEC_INPUT_FILES_NUMBER".into(), "1".into());
    e.insert("IEXEC_INPUT_FILE_URL_1".into(), input_url.clone());
    let (code, out) = pre_compute::run(&e).await;
    assert_eq!(code, ExitCode::Success);
    let out = out.unwrap();
    let name = pre_compute::input_file_name(&input_url);
    assert_eq!(out.input_files, vec![task.path("in").join(&name)]);
    assert_eq!(fs::read(task.path("in").join(&name)).unwrap(), b"input one");
    assert_eq!(
        fs::read(task.path("in").join(DATASET_ADDRESS)).unwrap(),
        b"Some very useful data."
    );
    // §11.3 vector for the name.
    assert_eq!(
        pre_compute::input_file_name("https://example.com/foo.txt"),
        "0x5aaad10112bc2296b5b64fdad4da1bfb2e774da7523ca918b3e0c020a7fb61b6"
    );

    // A missing input file (404) and a missing dataset.
    let task = Task::new();
    let mut e = task.pre_env("", "", "");
    e.insert("IS_DATASET_REQUIRED".into(), "FALSE".into());
    e.insert("IEXEC_INPUT_FILES_NUMBER".into(), "1".into());
    e.insert("IEXEC_INPUT_FILE_URL_1".into(), format!("{base}/missing"));
    assert_eq!(pre_compute::run(&e).await.0, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PreComputeInputFileDownloadFailed]
    );
    let e = task.pre_env(&format!("{base}/nothing.enc"), VECTOR_KEY, VECTOR_CHECKSUM);
    assert_eq!(pre_compute::run(&e).await.0, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PreComputeDatasetDownloadFailed]
    );
}

#[tokio::test]
async fn pre_compute_argument_causes_and_exit_codes() {
    let task = Task::new();
    let file = task.write_vector();
    let full = task.pre_env(&file, VECTOR_KEY, VECTOR_CHECKSUM);
    for (var, cause) in [
        (
            "IEXEC_PRE_COMPUTE_OUT",
            ExitCause::PreComputeOutputPathMissing,
        ),
        (
            "IS_DATASET_REQUIRED",
            ExitCause::PreComputeIsDatasetRequiredMissing,
        ),
        ("IEXEC_DATASET_URL", ExitCause::PreComputeDatasetUrlMissing),
        ("IEXEC_DATASET_KEY", ExitCause::PreComputeDatasetKeyMissing),
        (
            "IEXEC_DATASET_CHECKSUM",
            ExitCause::PreComputeDatasetChecksumMissing,
        ),
        (
            "IEXEC_DATASET_FILENAME",
            ExitCause::PreComputeDatasetFilenameMissing,
        ),
        (
            "IEXEC_INPUT_FILES_NUMBER",
            ExitCause::PreComputeInputFilesNumberMissing,
        ),
    ] {
        let mut e = full.clone();
        e.insert(var.into(), String::new());
        assert_eq!(
            pre_compute::run(&e).await.0,
            ExitCode::ReportedFailure,
            "{var}"
        );
        assert_eq!(task.causes(), vec![cause], "{var}");
    }
    let mut e = full.clone();
    e.insert("IEXEC_INPUT_FILES_NUMBER".into(), "2".into());
    e.insert(
        "IEXEC_INPUT_FILE_URL_1".into(),
        "http://127.0.0.1:9/a".into(),
    );
    assert_eq!(pre_compute::run(&e).await.0, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PreComputeAtLeastOneInputFileUrlMissing]
    );
    let mut e = full.clone();
    e.insert(ENV_LOCAL_IEXEC_IN.into(), task.s("nowhere"));
    assert_eq!(pre_compute::run(&e).await.0, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PreComputeOutputFolderNotFound]
    );
    let mut e = full.clone();
    e.insert("IEXEC_DATASET_FILENAME".into(), "../escape".into());
    assert_eq!(pre_compute::run(&e).await.0, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PreComputeSavingPlainDatasetFailed]
    );
    // Without sign tokens the failure cannot be reported with the enclave's authority: exit 2.
    let mut e = full.clone();
    e.remove("SIGN_TEE_CHALLENGE_PRIVATE_KEY");
    e.insert("IEXEC_DATASET_KEY".into(), String::new());
    assert_eq!(pre_compute::run(&e).await.0, ExitCode::UnreportedFailure);
    assert_eq!(
        task.causes(),
        vec![
            ExitCause::PreComputeDatasetKeyMissing,
            ExitCause::PreComputeTeeChallengePrivateKeyMissing
        ]
    );
    let mut e = full;
    e.remove("IEXEC_TASK_ID");
    assert_eq!(pre_compute::run(&e).await.0, ExitCode::TaskIdMissing);
    assert_eq!(task.causes(), vec![ExitCause::PreComputeTaskIdMissing]);
}

fn post_env(task: &Task, task_id: &str, callback: bool) -> Env {
    let mut e = task.base_env();
    e.insert("IEXEC_TASK_ID".into(), task_id.into());
    e.insert("RESULT_STORAGE_CALLBACK".into(), callback.to_string());
    e.insert("RESULT_ENCRYPTION".into(), "false".into());
    e
}

fn write_computed(task: &Task, json: &str) {
    fs::write(task.path("out/computed.json"), json).unwrap();
}

#[test]
fn post_compute_signature_vectors() {
    // §13.4: task 0x123456789abcdef, digest 0xcb371be2…76f3 (keccak of the 66-character text
    // "0x00…01", i.e. the hex-decoded bytes of this callback-data), worker 0x1234…5678.
    let text = format!("0x{}01", "00".repeat(31));
    let callback_data = sms_core::hex::encode_prefixed(text.as_bytes());
    for (task_id, signature) in [
        (
            "0x123456789abcdef",
            "0xdcf235fbddb582f57530c41281fe5b215c9273124da35215c613901047f848e748b917efe489e49ee8644404ff2444f76d497adcccd6271a68a044221c52c76c1c",
        ),
        (
            TASK_32,
            "0x5c2355ecfe701cf1cf80f367d2b129d00879065755a6bb84291b41b5e6e0287e572158a017349b7d2dcdd29eb6ac48920da1dd5878c194d5c51ea80b596569a31b",
        ),
    ] {
        let task = Task::new();
        write_computed(&task, &format!(r#"{{"callback-data":"{callback_data}"}}"#));
        let (code, out) = post_compute::run(&post_env(&task, task_id, true));
        assert_eq!(code, ExitCode::Success);
        let out = out.unwrap();
        assert_eq!(
            out.result_digest,
            "0xcb371be217faa47dab94e0d0ff0840c6cbf41645f0dc1a6ae3f34447155a76f3"
        );
        assert_eq!(out.enclave_signature, signature);
        assert!(out.archive.is_none(), "callback mode uploads nothing");
        let stored: serde_json::Value =
            serde_json::from_slice(&fs::read(&out.computed_file).unwrap()).unwrap();
        assert_eq!(stored["task-id"], task_id);
        assert_eq!(stored["result-digest"], out.result_digest.as_str());
        assert_eq!(stored["enclave-signature"], signature);
        assert_eq!(stored["deterministic-output-path"], serde_json::Value::Null);
    }

    // Web3 digest of the bytes (not of the text, the upstream Rust bug).
    let task = Task::new();
    write_computed(&task, &format!(r#"{{"callback-data":"{text}"}}"#));
    let (_, out) = post_compute::run(&post_env(&task, TASK_32, true));
    assert_eq!(
        out.unwrap().result_digest,
        "0xb10e2d527612073b26eecdfd717e6a320cf44b4afac2b0732d9fcbe2b7fa0cf6"
    );
}

#[test]
fn post_compute_web2_digests_zip_and_storage() {
    // File vector, with the app declaring the enclave path /iexec_out/…
    let task = Task::new();
    fs::write(task.path("out/result.txt"), "test content").unwrap();
    write_computed(
        &task,
        r#"{"deterministic-output-path":"/iexec_out/result.txt"}"#,
    );
    let (code, out) = post_compute::run(&post_env(&task, TASK_32, false));
    assert_eq!(
        code,
        ExitCode::Success,
        "{:?}",
        fs::read_to_string(task.path("causes.json"))
    );
    let out = out.unwrap();
    assert_eq!(
        out.result_digest,
        "0x6ae8a75555209fd6c44157c0aed8016e763ff435a19cf186f76863140143ff72"
    );
    let archive = out.archive.unwrap();
    assert_eq!(archive, task.path("results").join(format!("{TASK_32}.zip")));
    let mut zip = zip::ZipArchive::new(fs::File::open(&archive).unwrap()).unwrap();
    let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["computed.json", "result.txt"]);
    let mut content = String::new();
    zip.by_name("result.txt")
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, "test content");
    let stored: serde_json::Value =
        serde_json::from_slice(&fs::read(&out.computed_file).unwrap()).unwrap();
    assert_eq!(
        stored["deterministic-output-path"], "/iexec_out/result.txt",
        "kept as the app wrote it"
    );
    // Only the archive and the computed file in the result directory.
    let mut stored_names: Vec<_> = fs::read_dir(task.path("results"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    stored_names.sort();
    assert_eq!(stored_names.len(), 2, "{stored_names:?}");

    // Directory vector, with the real path.
    let task = Task::new();
    fs::create_dir(task.path("out/dir")).unwrap();
    fs::write(task.path("out/dir/file2.txt"), "content 2").unwrap();
    fs::write(task.path("out/dir/file1.txt"), "content 1").unwrap();
    write_computed(
        &task,
        &format!(r#"{{"deterministic-output-path":"{}"}}"#, task.s("out/dir")),
    );
    let (_, out) = post_compute::run(&post_env(&task, TASK_32, false));
    assert_eq!(
        out.unwrap().result_digest,
        "0x72c4f24e985ca67e658310fbbb4d408369cba553676d625cb5bf74391f22f010"
    );
}

#[test]
fn post_compute_encrypts_for_the_beneficiary() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/result_archive");
    let public = fs::read_to_string(fixtures.join("beneficiary_key.pub.pem")).unwrap();
    let private = ResultPrivateKey::from_pem(
        &fs::read_to_string(fixtures.join("beneficiary_key.pem")).unwrap(),
    )
    .unwrap();
    let task = Task::new();
    fs::write(task.path("out/result.txt"), "secret result").unwrap();
    write_computed(
        &task,
        r#"{"deterministic-output-path":"/iexec_out/result.txt"}"#,
    );
    let mut e = post_env(&task, TASK_32, false);
    e.insert("RESULT_ENCRYPTION".into(), "TRUE".into());
    e.insert(
        "RESULT_ENCRYPTION_PUBLIC_KEY".into(),
        sms_worker::result_archive::format_encryption_key(&public),
    );
    let (code, out) = post_compute::run(&e);
    assert_eq!(code, ExitCode::Success);
    let out = out.unwrap();
    assert!(out.encrypted);
    let mut plain = Vec::new();
    decrypt_result_archive(
        fs::File::open(out.archive.unwrap()).unwrap(),
        &private,
        &mut plain,
    )
    .unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(plain)).unwrap();
    let mut content = String::new();
    zip.by_name("result.txt")
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, "secret result");

    // Missing and malformed keys.
    e.insert("RESULT_ENCRYPTION_PUBLIC_KEY".into(), String::new());
    assert_eq!(post_compute::run(&e).0, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PostComputeEncryptionPublicKeyMissing]
    );
    e.insert("RESULT_ENCRYPTION_PUBLIC_KEY".into(), "bm90IGEga2V5".into());
    assert_eq!(post_compute::run(&e).0, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PostComputeMalformedEncryptionPublicKey]
    );
}

#[test]
fn post_compute_failure_causes() {
    let task = Task::new();
    let e = post_env(&task, TASK_32, false);
    assert_eq!(post_compute::run(&e).0, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PostComputeComputedFileNotFound]
    );
    write_computed(&task, "{");
    assert_eq!(post_compute::run(&e).0, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PostComputeComputedFileNotFound]
    );

    write_computed(
        &task,
        r#"{"deterministic-output-path":"/iexec_out/absent.txt"}"#,
    );
    assert_eq!(post_compute::run(&e).0, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PostComputeResultDigestComputationFailed]
    );
    // A path leaving the output directory is refused.
    fs::write(task.path("src/outside.txt"), "x").unwrap();
    write_computed(
        &task,
        &format!(
            r#"{{"deterministic-output-path":"{}"}}"#,
            task.s("src/outside.txt")
        ),
    );
    assert_eq!(post_compute::run(&e).0, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PostComputeResultDigestComputationFailed]
    );

    fs::write(task.path("out/result.txt"), "r").unwrap();
    write_computed(
        &task,
        r#"{"deterministic-output-path":"/iexec_out/result.txt"}"#,
    );
    fs::write(task.path("out/a_file_name_that_is_much_too_long.txt"), "x").unwrap();
    assert_eq!(post_compute::run(&e).0, ExitCode::ReportedFailure);
    assert_eq!(
        task.causes(),
        vec![ExitCause::PostComputeTooLongResultFileName]
    );
    fs::remove_file(task.path("out/a_file_name_that_is_much_too_long.txt")).unwrap();

    for (var, value, cause) in [
        (
            "SIGN_WORKER_ADDRESS",
            "",
            ExitCause::PostComputeWorkerAddressMissing,
        ),
        (
            "SIGN_TEE_CHALLENGE_PRIVATE_KEY",
            "",
            ExitCause::PostComputeTeeChallengePrivateKeyMissing,
        ),
        (
            "SIGN_TEE_CHALLENGE_PRIVATE_KEY",
            "0x1234",
            ExitCause::PostComputeInvalidEnclaveChallengePrivateKey,
        ),
        (
            "RESULT_STORAGE_CALLBACK",
            "maybe",
            ExitCause::PostComputeFailedUnknownIssue,
        ),
    ] {
        let mut e = e.clone();
        e.insert(var.into(), value.into());
        let (code, _) = post_compute::run(&e);
        assert_ne!(code, ExitCode::Success, "{var}");
        assert_eq!(task.causes()[0], cause, "{var}");
    }
    let mut e = e;
    e.remove("IEXEC_TASK_ID");
    assert_eq!(post_compute::run(&e).0, ExitCode::TaskIdMissing);
}

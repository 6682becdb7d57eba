//! `sms server identity`: the SMS identity read offline from the store, the same key the
//! server announces when it starts on that store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use sms_server::ServerConfig;
use sms_testkit::server::TestServer;

fn identity_offline(data_dir: &std::path::Path) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sms"))
        .args(["server", "identity", "--data-dir"])
        .arg(data_dir)
        .arg("--json")
        .env_remove("SMS_MASTER_KEY")
        .env_remove("SMS_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_offline_identity_is_the_one_the_server_signs_with() {
    let dir = tempfile::tempdir().unwrap();
    // Before any start: created, then stable.
    let first = identity_offline(dir.path());
    assert_eq!(first["created"], true);
    assert_eq!(first["algorithm"], "Ed25519");
    let again = identity_offline(dir.path());
    assert_eq!(again["created"], false);
    assert_eq!(again["publicKey"], first["publicKey"]);
    assert_eq!(again["keyId"], first["keyId"]);

    let server =
        TestServer::with_config(ServerConfig::dev_in(dir.path().to_path_buf()), None).await;
    let served = server.client().provision_identity().await.unwrap();
    assert_eq!(served.public_key, first["publicKey"].as_str().unwrap());
    assert_eq!(served.key_id, first["keyId"].as_str().unwrap());
    server.stop().await;
}

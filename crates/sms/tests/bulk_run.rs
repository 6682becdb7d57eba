//! `sms app run --dev --bulk <dataset>,…` end to end (docs/bulk-processing.md): the CLI signs one
//! open bulk order per dataset with the requester's wallet (their owner), stores the slice and
//! the bulk root in the dev server's IPFS, and the deal's `bulk_cid` names the root; the server
//! reads both back through its gateway (`GET /dev/ipfs/{cid}`, CIDs verified), checks every
//! order, and the local worker's pre-compute decrypts every dataset for the app.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use sms_testkit::server::TestServer;

mod common;

use common::DevCli;

/// Concatenates the bulk datasets, in index order, into its result.
const BULK_APP: &str = r#"i=1
: > "$IEXEC_OUT/result.txt"
while [ "$i" -le "$IEXEC_BULK_SLICE_SIZE" ]; do
  eval "f=\$IEXEC_DATASET_${i}_FILENAME"
  printf '%s\n' "$(cat "$IEXEC_IN/$f")" >> "$IEXEC_OUT/result.txt"
  i=$((i + 1))
done
printf '{"deterministic-output-path":"%s/result.txt"}' "$IEXEC_OUT" > "$IEXEC_OUT/computed.json"
"#;

/// Encrypts `content`, registers it on the dev ledger for `owner` and pushes its key with
/// `owner_wallet`; returns the dataset address.
fn dataset(env: &DevCli, name: &str, content: &str, owner: &str, owner_wallet: &str) -> String {
    let dir = env.home.path();
    std::fs::write(dir.join(name), content).unwrap();
    let enc = env.ok(&["dataset", "encrypt", name, "--json"]);
    let checksum = enc["encryptedFiles"][0]["checksum"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = dir.join(enc["encryptedFiles"][0]["encrypted"].as_str().unwrap());
    let address = env.ok(&[
        "dev",
        "dataset",
        "deploy",
        "--owner",
        owner,
        "--multiaddr",
        &format!("file://{}", file.display()),
        "--checksum",
        &checksum,
        "--json",
    ])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = dir.join(format!(".secrets/datasets/{name}.key"));
    env.ok(&[
        "dataset",
        "push-secret",
        &address,
        "--secret-path",
        &key.display().to_string(),
        "--wallet-file",
        owner_wallet,
        "--json",
    ]);
    address
}

fn stages(report: &Value) -> Vec<String> {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_task_gives_the_app_every_decrypted_dataset() {
    let server = TestServer::dev().await;
    let env = DevCli::new(&server);
    let script = env.home.path().join("bulk.sh");
    std::fs::write(&script, BULK_APP).unwrap();
    let app = env.deploy_scone_app(&format!("sh {}", script.display()), &"11".repeat(32));
    let requester = env.address("requester");
    let requester_wallet = env.wallet("requester");
    let datasets: Vec<String> = [("a.txt", "alpha"), ("b.txt", "beta"), ("c.txt", "gamma")]
        .iter()
        .map(|(name, content)| dataset(&env, name, content, &requester, &requester_wallet))
        .collect();

    let run = env.app_run(&app, &["--bulk", &datasets.join(",")]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(stages(&report), ["pre-compute", "app", "post-compute"]);
    assert_eq!(report["result"], "alpha\nbeta\ngamma\n", "{report}");

    // A dataset whose owner did not sign: the SMS empties its index, pre-compute names the
    // missing URL and the task fails.
    let owner = env.address("owner");
    let owner_wallet = env.wallet("owner");
    let foreign = dataset(&env, "d.txt", "delta", &owner, &owner_wallet);
    let run = env.app_run(&app, &["--bulk", &format!("{},{foreign}", datasets[0])]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["stages"][0]["stage"], "pre-compute");
    assert_eq!(
        report["stages"][0]["cause"], "PRE_COMPUTE_DATASET_URL_MISSING",
        "{report}"
    );
}

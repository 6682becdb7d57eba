//! `sms attest verify` on the real Intel quotes shipped by the dcap-qvl package, at pinned times.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// 2025-07-01T00:00:00Z, inside both fixtures' collateral windows (2025-06-19 .. 2025-07-19).
const AT: &str = "1751328000";
/// 2025-08-01T00:00:00Z, after both expire.
const AFTER_EXPIRY: &str = "1754006400";

fn fixture(name: &str) -> PathBuf {
    let dir = sms_attest::samples::samples_dir().unwrap_or_else(|e| panic!("{e}"));
    dir.join(name)
}

fn sms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sms"))
        .args(args)
        .output()
        .unwrap()
}

fn verify(quote: &Path, collateral: &str, extra: &[&str]) -> (bool, Value) {
    let (q, c) = (quote.to_str().unwrap(), fixture(collateral));
    let mut args = vec![
        "attest",
        "verify",
        "--quote",
        q,
        "--collateral",
        c.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = sms(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "one JSON object expected ({e}): {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(json["ok"].as_bool(), Some(out.status.success()), "{json}");
    (out.status.success(), json)
}

fn sgx_mrenclave() -> String {
    let quote = std::fs::read(fixture("sgx_quote")).unwrap();
    quote[112..144].iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn sgx_quote_is_valid_and_its_status_reported_not_judged() {
    let quote = fixture("sgx_quote");
    let (ok, json) = verify(&quote, "sgx_quote_collateral.json", &["--at", AT]);
    assert!(ok, "{json}");
    let report = &json["report"];
    assert_eq!(report["tee"], "sgx");
    assert_eq!(report["tcb_status"], "ConfigurationAndSWHardeningNeeded");
    let mut advisories: Vec<&str> = report["advisory_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    advisories.sort();
    assert_eq!(advisories, ["INTEL-SA-00289", "INTEL-SA-00615"]);
    assert_eq!(report["mr_enclave"].as_str().unwrap(), sgx_mrenclave());
    assert_eq!(report["measurement"].as_str().unwrap(), sgx_mrenclave());
    assert!(report["mr_signer"].is_string());
    assert_eq!(report["debug"], false);
    assert_eq!(json["verdict"]["policy_applied"], false);

    // The matching measurement is accepted; the human output says what was verified.
    let (ok, _) = verify(
        &quote,
        "sgx_quote_collateral.json",
        &["--at", AT, "--expect-measurement", &sgx_mrenclave()],
    );
    assert!(ok);
    let c = fixture("sgx_quote_collateral.json");
    let out = sms(&[
        "attest",
        "verify",
        "--quote",
        quote.to_str().unwrap(),
        "--collateral",
        c.to_str().unwrap(),
        "--at",
        AT,
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ConfigurationAndSWHardeningNeeded") && text.contains("not judged"),
        "{text}"
    );
    assert!(
        text.contains(&sgx_mrenclave()) && text.contains("VALID"),
        "{text}"
    );
}

#[test]
fn accept_status_judges_the_tcb_status() {
    let quote = fixture("sgx_quote");
    let (ok, json) = verify(
        &quote,
        "sgx_quote_collateral.json",
        &["--at", AT, "--accept-status", "UpToDate,SWHardeningNeeded"],
    );
    assert!(!ok);
    assert_eq!(json["verdict"]["code"], "TCB_STATUS_REJECTED");
    assert_eq!(json["verdict"]["policy_applied"], true);
    // Still reported.
    assert_eq!(
        json["report"]["tcb_status"],
        "ConfigurationAndSWHardeningNeeded"
    );

    let (ok, json) = verify(
        &quote,
        "sgx_quote_collateral.json",
        &[
            "--at",
            AT,
            "--accept-status",
            "ConfigurationAndSWHardeningNeeded",
        ],
    );
    assert!(ok, "{json}");

    // An unknown status name is a usage error, not a verdict.
    let c = fixture("sgx_quote_collateral.json");
    let out = sms(&[
        "attest",
        "verify",
        "--quote",
        quote.to_str().unwrap(),
        "--collateral",
        c.to_str().unwrap(),
        "--accept-status",
        "Fine",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown TCB status"));
}

#[test]
fn tdx_quote_is_up_to_date() {
    let (ok, json) = verify(
        &fixture("tdx_quote"),
        "tdx_quote_collateral.json",
        &["--at", AT, "--accept-status", "UpToDate"],
    );
    assert!(ok, "{json}");
    assert_eq!(json["report"]["tee"], "tdx");
    assert_eq!(json["report"]["tcb_status"], "UpToDate");
    assert!(json["report"]["mr_td"].is_string() && json["report"]["rtmrs"].is_array());
}

#[test]
fn wrong_measurement_expiry_and_flipped_byte_are_refused_with_their_reason() {
    let quote = fixture("sgx_quote");
    let (ok, json) = verify(
        &quote,
        "sgx_quote_collateral.json",
        &["--at", AT, "--expect-measurement", &"00".repeat(32)],
    );
    assert!(!ok);
    assert_eq!(json["verdict"]["code"], "MEASUREMENT_MISMATCH");

    let (ok, json) = verify(&quote, "sgx_quote_collateral.json", &["--at", AFTER_EXPIRY]);
    assert!(!ok);
    assert_eq!(json["verdict"]["code"], "COLLATERAL_EXPIRED");

    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(&quote).unwrap();
    bytes[200] ^= 0x01;
    let flipped = dir.path().join("flipped");
    std::fs::write(&flipped, &bytes).unwrap();
    let (ok, json) = verify(&flipped, "sgx_quote_collateral.json", &["--at", AT]);
    assert!(!ok);
    assert_eq!(json["verdict"]["code"], "QUOTE_INVALID");
    assert!(json["report"].is_null());

    // Human form: the reason on stderr, non-zero exit.
    let c = fixture("sgx_quote_collateral.json");
    let out = sms(&[
        "attest",
        "verify",
        "--quote",
        flipped.to_str().unwrap(),
        "--collateral",
        c.to_str().unwrap(),
        "--at",
        AT,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("QUOTE_INVALID"), "{stderr}");

    // The SGX quote against TDX collateral.
    let (ok, json) = verify(&quote, "tdx_quote_collateral.json", &["--at", AT]);
    assert!(!ok);
    assert!(
        json["verdict"]["code"]
            .as_str()
            .unwrap()
            .starts_with("COLLATERAL"),
        "{json}"
    );
}

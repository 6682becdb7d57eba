//! The `sms-bench` executable on its own: it lists its scenarios as JSON. Being an integration
//! test of this package, it also makes cargo build the executable, which `sms bench` runs
//! (crates/sms/tests/bench_smoke.rs goes through `sms bench`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn lists_its_scenarios_as_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_sms-bench"))
        .args(["--json", "--list"])
        .output()
        .expect("sms-bench runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let scenarios = listed["scenarios"].as_array().expect("a scenario list");
    assert!(!scenarios.is_empty(), "{listed}");
    assert!(scenarios.iter().any(|s| s == "push"), "{listed}");
}

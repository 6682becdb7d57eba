//! `sms bench --smoke`: every scenario and ceiling runs for a fraction of a second against a
//! server of its own and reports no error and no lost write. Figures are never asserted. The
//! cluster scenario starts a throwaway PostgreSQL from the server binaries (as scripts/test.sh
//! does): without them this test fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

#[test]
fn every_scenario_runs_without_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_sms"))
        .args(["--json", "bench", "--smoke"])
        .env_remove("SMS_BENCH_URL")
        .env_remove("SMS_BENCH_DATABASE_URL")
        .output()
        .expect("sms bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        out.status.success(),
        "sms bench --smoke failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = Command::new(env!("CARGO_BIN_EXE_sms"))
        .args(["--json", "bench", "--list"])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    for name in listed["scenarios"].as_array().unwrap() {
        let line = lines
            .iter()
            .find(|l| l["scenario"] == *name)
            .unwrap_or_else(|| panic!("no line for scenario {name}:\n{stdout}"));
        for key in ["ops_per_s", "p50_ms", "p99_ms", "server_rss_mib", "errors"] {
            assert!(line.get(key).is_some(), "{name} has no {key}: {line}");
        }
        assert_eq!(line["errors"], 0, "{line}");
        if line.get("missing").is_none() {
            assert!(
                line["ops_per_s"].as_f64().is_some_and(|x| x > 0.0),
                "{line}"
            );
        }
    }
    let push = lines.iter().find(|l| l["scenario"] == "push").unwrap();
    assert_eq!(push["lost"], 0, "{push}");
    assert!(
        push["acknowledged"].as_u64().is_some_and(|n| n > 0),
        "{push}"
    );
    // The cluster scenario (its own throwaway PostgreSQL, or SMS_BENCH_DATABASE_URL): the
    // three configurations, push and check each, nothing lost, CPU per group of processes.
    for config in ["sqlite-1", "postgres-1", "postgres-3"] {
        for op in ["push", "check"] {
            let name = format!("cluster:{config}:{op}");
            let line = lines
                .iter()
                .find(|l| l["scenario"] == *name)
                .unwrap_or_else(|| panic!("no {name}:\n{stdout}"));
            assert_eq!(line["errors"], 0, "{line}");
            assert!(line.get("server_cpu_us_per_op").is_some(), "{line}");
            if config.starts_with("postgres") {
                assert!(line.get("postgres_cpu_us_per_op").is_some(), "{line}");
            }
            if op == "push" {
                assert_eq!(line["lost"], 0, "{line}");
                assert!(
                    line["acknowledged"].as_u64().is_some_and(|n| n > 0),
                    "{line}"
                );
            }
        }
    }
    let cluster = lines.iter().find(|l| l["scenario"] == "cluster").unwrap();
    assert_eq!(cluster["replicas"], 3, "{cluster}");
    for ceiling in [
        "ceiling:bare-head",
        "ceiling:secp256k1-recover",
        "ceiling:sqlite-commit-batched",
    ] {
        assert!(
            lines.iter().any(|l| l["scenario"] == ceiling),
            "no {ceiling}:\n{stdout}"
        );
    }
}

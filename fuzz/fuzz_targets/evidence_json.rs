//! The evidence JSON of a release request: `sms_attest::Evidence::from_json`, then the
//! verifier's appraisal without collateral (simulated evidence allowed, so its checks run).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_attest::{Evidence, Verifier};

/// A fixed clock: the fuzzer must not depend on the time of the run.
const NOW: u64 = 1_750_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(evidence) = Evidence::from_json(data) else {
        return;
    };
    // What parses prints to JSON that parses to the same evidence.
    assert_eq!(
        Evidence::from_json(evidence.to_json().as_bytes())
            .ok()
            .as_ref(),
        Some(&evidence)
    );
    let verifier = Verifier::default().dangerous_allow_simulated();
    if let Ok(report) = verifier.appraise(&evidence, None, NOW) {
        assert!(
            matches!(evidence, Evidence::Simulated { .. }),
            "only simulated evidence passes without collateral"
        );
        let _ = report.measurement_hex();
    }
    let _ = Verifier::default().appraise(&evidence, None, NOW);
});

//! Verification of real Intel SGX and TDX quotes with their collateral, at a pinned time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use sms_attest::{
    Collateral, CollateralBundle, CollateralSource, DcapQuote, Evidence, ExpectedMeasurement,
    Policy, Register, TcbStatus, TdxMeasurement, TdxRegister, TeeClaims, TeeKind, Verifier,
    VerifyError, inspect_quote, report_data_binding,
};

/// 2025-07-01T00:00:00Z, inside both fixtures' collateral windows (2025-06-19 .. 2025-07-19).
const NOW: u64 = 1_751_328_000;
const SGX_ADVISORIES: [&str; 2] = ["INTEL-SA-00289", "INTEL-SA-00615"];

fn read(name: &str) -> Vec<u8> {
    sms_attest::samples::read_sample(name).unwrap_or_else(|e| panic!("{e}"))
}

fn sgx() -> (Vec<u8>, Collateral) {
    let collateral = Collateral::from_json(&read("sgx_quote_collateral.json")).unwrap();
    (read("sgx_quote"), collateral)
}

fn tdx() -> (Vec<u8>, Collateral) {
    let collateral = Collateral::from_json(&read("tdx_quote_collateral.json")).unwrap();
    (read("tdx_quote"), collateral)
}

/// MRENCLAVE sits after the 48-byte header and 64 bytes of the SGX report body.
fn sgx_mrenclave(quote: &[u8]) -> Vec<u8> {
    quote[112..144].to_vec()
}

/// MRTD sits after the 48-byte header and 136 bytes of the TD report body.
fn tdx_mrtd(quote: &[u8]) -> Vec<u8> {
    quote[184..232].to_vec()
}

/// Offset of each register in a TDX quote v4 (48-byte header, then the TD report body).
fn tdx_offset(register: TdxRegister) -> usize {
    match register {
        TdxRegister::Mrtd => 184,
        TdxRegister::MrConfigId => 232,
        TdxRegister::Rtmr0 => 376,
        TdxRegister::Rtmr1 => 424,
        TdxRegister::Rtmr2 => 472,
        TdxRegister::Rtmr3 => 520,
    }
}

fn tdx_register(quote: &[u8], register: TdxRegister) -> [u8; 48] {
    let at = tdx_offset(register);
    quote[at..at + 48].try_into().unwrap()
}

/// The TD of the quote, every register exact.
fn tdx_registers(quote: &[u8]) -> TdxMeasurement {
    TdxMeasurement::from_fn(|r| Register::Exact(tdx_register(quote, r)))
}

fn tdx_expect(quote: &[u8]) -> ExpectedMeasurement {
    ExpectedMeasurement::Tdx {
        registers: Some(tdx_registers(quote)),
        fingerprint: vec![0xf0; 32],
    }
}

fn sgx_expect(quote: &[u8]) -> ExpectedMeasurement {
    ExpectedMeasurement::Sgx {
        mr_enclave: sgx_mrenclave(quote).try_into().unwrap(),
    }
}

fn sgx_policy() -> Policy {
    Policy::default().accept_status(TcbStatus::ConfigurationAndSWHardeningNeeded)
}

fn code(result: Result<impl std::fmt::Debug, VerifyError>) -> &'static str {
    match result {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => {
            // Every reason has its code and a readable chain.
            assert!(VerifyError::CODES.contains(&e.code()));
            assert!(!e.full_message().is_empty());
            e.code()
        }
    }
}

#[test]
fn collateral_windows_contain_the_pinned_time() {
    for (_, c) in [sgx(), tdx()] {
        assert!(c.valid_from() <= NOW && NOW <= c.expires_at(), "{c:?}");
        assert!(c.seconds_until_expiry(NOW) > 0);
        assert!(c.days_until_expiry(NOW) > 1.0);
    }
    assert_eq!(sgx().1.tee(), TeeKind::Sgx);
    assert_eq!(sgx().1.fmspc(), "00A067110000");
    assert_eq!(tdx().1.tee(), TeeKind::Tdx);
    assert_eq!(tdx().1.fmspc(), "B0C06F000000");
}

#[test]
fn sgx_quote_verifies_with_its_status_advisories_and_mrenclave() {
    let (quote, collateral) = sgx();
    let report = DcapQuote::parse(&quote)
        .unwrap()
        .verify(&collateral, NOW)
        .unwrap();
    assert_eq!(report.tee, TeeKind::Sgx);
    assert_eq!(
        report.tcb_status,
        Some(TcbStatus::ConfigurationAndSWHardeningNeeded)
    );
    let mut advisories = report.advisory_ids.clone();
    advisories.sort();
    assert_eq!(advisories, SGX_ADVISORIES);
    assert_eq!(report.measurement(), sgx_mrenclave(&quote).as_slice());
    let TeeClaims::Sgx(claims) = &report.claims else {
        panic!("not SGX claims")
    };
    assert_eq!(
        claims.mr_enclave.as_slice(),
        sgx_mrenclave(&quote).as_slice()
    );
    assert_eq!(claims.mr_signer.as_slice(), &quote[176..208]);
    assert!(!report.debug);
    assert_eq!(report.report_data.as_slice(), &quote[368..432]);
    let expiry = report.collateral_expires_at.unwrap();
    assert!(expiry > NOW && expiry <= collateral.expires_at());

    // End to end, with the status accepted by the policy.
    let evidence = Evidence::SgxDcap {
        quote: quote.clone(),
    };
    let verified = Verifier::new(sgx_policy())
        .verify(
            &evidence,
            Some(&collateral),
            &sgx_expect(&quote),
            &report.report_data,
            NOW,
        )
        .unwrap();
    assert_eq!(verified, report);
}

#[test]
fn tdx_quote_verifies_up_to_date_under_the_default_policy() {
    let (quote, collateral) = tdx();
    let evidence = Evidence::TdxDcap {
        quote: quote.clone(),
    };
    let verifier = Verifier::default();
    let report = verifier
        .appraise(&evidence, Some(&collateral), NOW)
        .unwrap();
    assert_eq!(report.tee, TeeKind::Tdx);
    assert_eq!(report.tcb_status, Some(TcbStatus::UpToDate));
    assert_eq!(report.measurement(), tdx_mrtd(&quote).as_slice());
    let TeeClaims::Tdx(claims) = &report.claims else {
        panic!("not TDX claims")
    };
    assert_eq!(claims.quote_version, 4);
    assert!(!report.debug);
    let verified = verifier
        .verify(
            &evidence,
            Some(&collateral),
            &tdx_expect(&quote),
            &report.report_data,
            NOW,
        )
        .unwrap();
    assert_eq!(verified.tcb_status, Some(TcbStatus::UpToDate));
}

#[test]
fn default_policy_refuses_the_sgx_status_and_explicit_policies_accept_it() {
    let (quote, collateral) = sgx();
    let evidence = Evidence::SgxDcap {
        quote: quote.clone(),
    };
    let mr = sgx_expect(&quote);
    let rd: [u8; 64] = quote[368..432].try_into().unwrap();
    let verify =
        |policy: Policy| Verifier::new(policy).verify(&evidence, Some(&collateral), &mr, &rd, NOW);

    match verify(Policy::default()) {
        Err(VerifyError::TcbStatusRejected { status, advisories }) => {
            assert_eq!(status, TcbStatus::ConfigurationAndSWHardeningNeeded);
            assert_eq!(advisories.len(), 2);
        }
        other => panic!("expected TCB_STATUS_REJECTED, got {other:?}"),
    }
    assert!(verify(sgx_policy()).is_ok());
    assert!(verify(Policy::default().ignore_advisories(SGX_ADVISORIES)).is_ok());
    assert_eq!(
        code(verify(
            Policy::default().ignore_advisories(["INTEL-SA-00289"])
        )),
        "TCB_STATUS_REJECTED"
    );
    assert_eq!(
        code(verify(sgx_policy().reject_advisories(["INTEL-SA-00615"]))),
        "ADVISORY_REJECTED"
    );
    // Policy from configuration, as the server will read it.
    let configured: Policy =
        serde_json::from_str(r#"{"ignored_advisories":["INTEL-SA-00289","INTEL-SA-00615"]}"#)
            .unwrap();
    assert!(verify(configured).is_ok());
}

#[test]
fn tdx_status_outside_the_policy_is_refused() {
    let (quote, collateral) = tdx();
    let evidence = Evidence::TdxDcap {
        quote: quote.clone(),
    };
    let rd: [u8; 64] = quote[568..632].try_into().unwrap();
    let policy = Policy::accepting([TcbStatus::SWHardeningNeeded]);
    let result =
        Verifier::new(policy).verify(&evidence, Some(&collateral), &tdx_expect(&quote), &rd, NOW);
    assert_eq!(code(result), "TCB_STATUS_REJECTED");
}

#[test]
fn a_flipped_byte_anywhere_signed_is_refused() {
    for (quote, collateral, kind) in [
        (sgx().0, sgx().1, TeeKind::Sgx),
        (tdx().0, tdx().1, TeeKind::Tdx),
    ] {
        // Report body (measurement), report data, the quote signature.
        for offset in [120, 400, 440] {
            let mut tampered = quote.clone();
            tampered[offset] ^= 0x01;
            let evidence = match kind {
                TeeKind::Sgx => Evidence::SgxDcap { quote: tampered },
                _ => Evidence::TdxDcap { quote: tampered },
            };
            let result = Verifier::default().appraise(&evidence, Some(&collateral), NOW);
            assert_eq!(code(result), "QUOTE_INVALID", "{kind} offset {offset}");
        }
    }
    // A truncated quote does not even decode.
    let (quote, collateral) = sgx();
    let truncated = Evidence::SgxDcap {
        quote: quote[..600].to_vec(),
    };
    assert_eq!(
        code(Verifier::default().appraise(&truncated, Some(&collateral), NOW)),
        "EVIDENCE_MALFORMED"
    );
}

#[test]
fn expired_or_not_yet_valid_collateral_is_refused() {
    for (quote, collateral) in [sgx(), tdx()] {
        let parsed = DcapQuote::parse(&quote).unwrap();
        let after = collateral.expires_at() + 1;
        match parsed.verify(&collateral, after) {
            Err(VerifyError::CollateralExpired { expired_at, now }) => {
                assert_eq!((expired_at, now), (collateral.expires_at(), after));
            }
            other => panic!("expected COLLATERAL_EXPIRED, got {other:?}"),
        }
        assert!(collateral.seconds_until_expiry(after) < 0);
        assert_eq!(
            code(parsed.verify(&collateral, collateral.valid_from() - 1)),
            "COLLATERAL_NOT_YET_VALID"
        );
        // A year later, too.
        assert_eq!(
            code(parsed.verify(&collateral, NOW + 365 * 86_400)),
            "COLLATERAL_EXPIRED"
        );
    }
}

#[test]
fn wrong_measurement_or_report_data_is_refused() {
    let (quote, collateral) = tdx();
    let evidence = Evidence::TdxDcap {
        quote: quote.clone(),
    };
    let rd: [u8; 64] = quote[568..632].try_into().unwrap();
    let verifier = Verifier::default();
    let mut wrong_mr = tdx_register(&quote, TdxRegister::Mrtd);
    wrong_mr[0] ^= 0xff;
    let mut registers = tdx_registers(&quote);
    registers.mrtd = Register::Exact(wrong_mr);
    let wrong = ExpectedMeasurement::Tdx {
        registers: Some(registers),
        fingerprint: Vec::new(),
    };
    match verifier.verify(&evidence, Some(&collateral), &wrong, &rd, NOW) {
        Err(VerifyError::MeasurementMismatch {
            register,
            expected,
            actual,
        }) => {
            assert_eq!(register, "MRTD");
            assert_eq!(expected, hex::encode(wrong_mr));
            assert_eq!(actual, hex::encode(tdx_mrtd(&quote)));
        }
        other => panic!("expected MEASUREMENT_MISMATCH, got {other:?}"),
    }
    // Another MRENCLAVE.
    let (sgx_quote, sgx_collateral) = sgx();
    let sgx_evidence = Evidence::SgxDcap {
        quote: sgx_quote.clone(),
    };
    let sgx_rd: [u8; 64] = sgx_quote[368..432].try_into().unwrap();
    let sgx_verifier = Verifier::new(sgx_policy());
    assert_eq!(
        code(sgx_verifier.verify(
            &sgx_evidence,
            Some(&sgx_collateral),
            &ExpectedMeasurement::Sgx {
                mr_enclave: [0u8; 32]
            },
            &sgx_rd,
            NOW
        )),
        "MEASUREMENT_MISMATCH"
    );

    let other_rd = report_data_binding(b"another nonce", &[9u8; 32]);
    assert_eq!(
        code(verifier.verify(
            &evidence,
            Some(&collateral),
            &tdx_expect(&quote),
            &other_rd,
            NOW
        )),
        "REPORT_DATA_MISMATCH"
    );
    assert_eq!(
        code(sgx_verifier.verify(
            &sgx_evidence,
            Some(&sgx_collateral),
            &sgx_expect(&sgx_quote),
            &other_rd,
            NOW
        )),
        "REPORT_DATA_MISMATCH"
    );
}

#[test]
fn mismatched_kinds_and_missing_collateral_are_refused() {
    let (sgx_quote, sgx_collateral) = sgx();
    let (tdx_quote, tdx_collateral) = tdx();
    let v = Verifier::default();
    // An SGX quote declared as TDX, and the converse.
    let as_tdx = Evidence::TdxDcap {
        quote: sgx_quote.clone(),
    };
    assert_eq!(
        code(v.appraise(&as_tdx, Some(&sgx_collateral), NOW)),
        "TEE_MISMATCH"
    );
    let as_sgx = Evidence::SgxDcap {
        quote: tdx_quote.clone(),
    };
    assert_eq!(
        code(v.appraise(&as_sgx, Some(&tdx_collateral), NOW)),
        "TEE_MISMATCH"
    );
    // The other TEE's collateral.
    let sgx_evidence = Evidence::SgxDcap { quote: sgx_quote };
    assert_eq!(
        code(v.appraise(&sgx_evidence, Some(&tdx_collateral), NOW)),
        "COLLATERAL_INVALID"
    );
    assert_eq!(
        code(v.appraise(&sgx_evidence, None, NOW)),
        "COLLATERAL_MISSING"
    );
}

#[test]
fn simulated_evidence_needs_the_dangerous_switch_and_gets_the_same_checks() {
    let nonce = b"fresh nonce";
    let public_key = [7u8; 32];
    let rd = report_data_binding(nonce, &public_key);
    let measurement = vec![0x5a; 32];
    let expected = ExpectedMeasurement::Sgx {
        mr_enclave: [0x5a; 32],
    };
    let evidence = Evidence::Simulated {
        measurement: measurement.clone(),
        report_data: rd,
        debug: false,
    };

    assert_eq!(
        code(Verifier::default().verify(&evidence, None, &expected, &rd, NOW)),
        "SIMULATED_EVIDENCE_REFUSED"
    );
    let verifier = Verifier::default().dangerous_allow_simulated();
    let report = verifier
        .verify(&evidence, None, &expected, &rd, NOW)
        .unwrap();
    assert_eq!(report.tee, TeeKind::Simulated);
    assert_eq!(report.tcb_status, None);

    assert_eq!(
        code(verifier.verify(
            &evidence,
            None,
            &ExpectedMeasurement::Sgx {
                mr_enclave: [0x5b; 32]
            },
            &rd,
            NOW
        )),
        "MEASUREMENT_MISMATCH"
    );
    // For a TDX service, a simulated claim is compared with the stage's fingerprint (it has no
    // registers to compare).
    let tdx_service = |fingerprint: Vec<u8>| ExpectedMeasurement::Tdx {
        registers: Some(TdxMeasurement::from_fn(|_| Register::Exact([0x77; 48]))),
        fingerprint,
    };
    assert!(
        verifier
            .verify(&evidence, None, &tdx_service(measurement.clone()), &rd, NOW)
            .is_ok()
    );
    assert_eq!(
        code(verifier.verify(&evidence, None, &tdx_service(vec![0x77; 48]), &rd, NOW)),
        "MEASUREMENT_MISMATCH"
    );
    let other_rd = report_data_binding(b"stale nonce", &public_key);
    assert_eq!(
        code(verifier.verify(&evidence, None, &expected, &other_rd, NOW)),
        "REPORT_DATA_MISMATCH"
    );

    let debug = Evidence::Simulated {
        measurement: measurement.clone(),
        report_data: rd,
        debug: true,
    };
    assert_eq!(
        code(verifier.verify(&debug, None, &expected, &rd, NOW)),
        "DEBUG_ENCLAVE"
    );
    let debug_ok =
        Verifier::new(Policy::default().dangerous_allow_debug()).dangerous_allow_simulated();
    assert!(debug_ok.verify(&debug, None, &expected, &rd, NOW).is_ok());

    let empty = Evidence::Simulated {
        measurement: vec![],
        report_data: rd,
        debug: false,
    };
    assert_eq!(
        code(verifier.verify(&empty, None, &expected, &rd, NOW)),
        "EVIDENCE_MALFORMED"
    );
}

#[test]
fn evidence_travels_as_json() {
    let (quote, collateral) = tdx();
    let evidence = Evidence::TdxDcap { quote };
    let json = evidence.to_json();
    assert!(json.starts_with(r#"{"kind":"tdx_dcap","quote":""#));
    let back = Evidence::from_json(json.as_bytes()).unwrap();
    assert_eq!(back, evidence);
    let report = Verifier::default()
        .appraise(&back, Some(&collateral), NOW)
        .unwrap();
    let report_json = serde_json::to_value(&report).unwrap();
    assert_eq!(report_json["tcb_status"], "UpToDate");
    assert_eq!(report_json["tee"], "tdx");
    assert_eq!(
        report_json["claims"]["tdx"]["mr_td"],
        hex::encode(tdx_mrtd(&report_json_quote(&back)))
    );
    let round: sms_attest::VerifiedReport = serde_json::from_value(report_json).unwrap();
    assert_eq!(round, report);
}

fn report_json_quote(evidence: &Evidence) -> Vec<u8> {
    match evidence {
        Evidence::TdxDcap { quote } | Evidence::SgxDcap { quote } => quote.clone(),
        Evidence::Simulated { .. } => unreachable!(),
    }
}

#[tokio::test]
async fn offline_source_finds_collateral_by_tee_and_fmspc() {
    let dir = sms_attest::samples::samples_dir().unwrap();
    let mut bundle = CollateralBundle::load(dir.join("sgx_quote_collateral.json")).unwrap();
    bundle.insert(Collateral::load(dir.join("tdx_quote_collateral.json")).unwrap());
    assert_eq!(bundle.len(), 2);
    let source = CollateralSource::Offline(bundle);
    // Directory form: the fixture directory holds both JSON files.
    // Directory form, over a directory holding exactly these two files.
    let only_two = tempfile::tempdir().unwrap();
    for name in ["sgx_quote_collateral.json", "tdx_quote_collateral.json"] {
        std::fs::copy(dir.join(name), only_two.path().join(name)).unwrap();
    }
    let from_dir = CollateralSource::offline(only_two.path()).unwrap();
    let expected_left = sgx().1.expires_at().min(tdx().1.expires_at()) as i64 - NOW as i64;
    assert_eq!(from_dir.seconds_until_expiry(NOW), Some(expected_left));
    assert_eq!(source.seconds_until_expiry(NOW), Some(expected_left));

    let (quote, _) = tdx();
    let evidence = Evidence::TdxDcap {
        quote: quote.clone(),
    };
    let rd: [u8; 64] = quote[568..632].try_into().unwrap();
    let report = Verifier::default()
        .verify_with_source(&evidence, &source, &tdx_expect(&quote), &rd, NOW)
        .await
        .unwrap();
    assert_eq!(report.tcb_status, Some(TcbStatus::UpToDate));

    let only_sgx = CollateralSource::offline(dir.join("sgx_quote_collateral.json")).unwrap();
    let result = Verifier::default()
        .verify_with_source(&evidence, &only_sgx, &tdx_expect(&quote), &rd, NOW)
        .await;
    assert_eq!(code(result), "COLLATERAL_UNAVAILABLE");
}

#[test]
fn cli_inspection_reports_status_and_judges_it_only_with_a_policy() {
    let (quote, collateral) = sgx();
    let mr = sgx_mrenclave(&quote);
    let expect_mr = sgx_expect(&quote);

    let plain = inspect_quote(&quote, &collateral, NOW, None, None);
    assert!(plain.verdict.accepted, "{plain:?}");
    assert!(!plain.verdict.policy_applied);
    let summary = plain.report.clone().unwrap();
    assert_eq!(
        summary.tcb_status,
        Some(TcbStatus::ConfigurationAndSWHardeningNeeded)
    );
    assert_eq!(
        summary.mr_enclave.as_deref(),
        Some(hex::encode(&mr).as_str())
    );
    assert_eq!(summary.measurement, hex::encode(&mr));
    assert!(summary.mr_td.is_none());
    let json = serde_json::to_value(&plain).unwrap();
    assert_eq!(json["verdict"]["accepted"], true);
    assert_eq!(json["report"]["advisory_ids"].as_array().unwrap().len(), 2);

    let strict = Policy::accepting(sms_attest::parse_status_list("UpToDate").unwrap());
    let judged = inspect_quote(&quote, &collateral, NOW, Some(&expect_mr), Some(&strict));
    assert!(!judged.verdict.accepted);
    assert_eq!(judged.verdict.code, Some("TCB_STATUS_REJECTED"));
    assert!(judged.report.is_some(), "the status is still reported");

    let lenient = Policy::accepting(
        sms_attest::parse_status_list("UpToDate,ConfigurationAndSWHardeningNeeded").unwrap(),
    );
    assert!(
        inspect_quote(&quote, &collateral, NOW, Some(&expect_mr), Some(&lenient))
            .verdict
            .accepted
    );

    let wrong = inspect_quote(
        &quote,
        &collateral,
        NOW,
        Some(&ExpectedMeasurement::Sgx {
            mr_enclave: [0u8; 32],
        }),
        None,
    );
    assert_eq!(wrong.verdict.code, Some("MEASUREMENT_MISMATCH"));

    let expired = inspect_quote(&quote, &collateral, collateral.expires_at() + 1, None, None);
    assert_eq!(expired.verdict.code, Some("COLLATERAL_EXPIRED"));
    assert!(expired.report.is_none());

    let (tdx_quote, tdx_collateral) = tdx();
    let tdx_summary = inspect_quote(
        &tdx_quote,
        &tdx_collateral,
        NOW,
        None,
        Some(&Policy::default()),
    );
    assert!(tdx_summary.verdict.accepted);
    let s = tdx_summary.report.unwrap();
    assert_eq!(
        s.mr_td.as_deref(),
        Some(hex::encode(tdx_mrtd(&tdx_quote)).as_str())
    );
    assert_eq!(s.rtmrs.map(|r| r.len()), Some(4));
}

/// `m` with `register` expected to be `value`.
fn with(m: &TdxMeasurement, register: TdxRegister, value: Register) -> TdxMeasurement {
    TdxMeasurement::from_fn(|r| if r == register { value } else { *m.get(r) })
}

/// The real TDX quote is accepted against an expectation of its own six registers; one flipped
/// byte in any one register of the expectation refuses it, naming that register with both
/// values; `any` accepts it only when written for that very register.
#[test]
fn real_tdx_quote_is_checked_register_by_register() {
    let (quote, collateral) = tdx();
    let evidence = Evidence::TdxDcap {
        quote: quote.clone(),
    };
    let rd: [u8; 64] = quote[568..632].try_into().unwrap();
    let verifier = Verifier::default();
    let verify = |registers: TdxMeasurement| {
        let expected = ExpectedMeasurement::Tdx {
            registers: Some(registers),
            fingerprint: Vec::new(),
        };
        verifier.verify(&evidence, Some(&collateral), &expected, &rd, NOW)
    };
    let own = tdx_registers(&quote);
    assert!(verify(own.clone()).is_ok());
    for (i, register) in TdxRegister::ALL.into_iter().enumerate() {
        let actual = tdx_register(&quote, register);
        let mut flipped = actual;
        flipped[47] ^= 0x01;
        let wrong = with(&own, register, Register::Exact(flipped));
        let other = TdxRegister::ALL[(i + 1) % TdxRegister::ALL.len()];
        for expectation in [wrong.clone(), with(&wrong, other, Register::Any)] {
            match verify(expectation) {
                Err(e) => {
                    assert_eq!(e.code(), "MEASUREMENT_MISMATCH");
                    assert!(
                        e.to_string()
                            .starts_with(&format!("{} mismatch", register.name())),
                        "{e}"
                    );
                    let VerifyError::MeasurementMismatch {
                        register: name,
                        expected,
                        actual: got,
                    } = e
                    else {
                        panic!("{register:?}: not a measurement mismatch")
                    };
                    assert_eq!(name, register.name());
                    assert_eq!(expected, hex::encode(flipped));
                    assert_eq!(got, hex::encode(actual));
                }
                Ok(_) => panic!("{register:?}: a flipped register was accepted"),
            }
        }
        assert!(
            verify(with(&wrong, register, Register::Any)).is_ok(),
            "{register:?} written as any"
        );
    }
}

/// Fail closed across TEEs: TDX evidence never satisfies an SGX expectation or a TDX service
/// without registers, and SGX evidence never satisfies a TDX expectation.
#[test]
fn evidence_of_the_other_tee_or_without_registers_is_refused() {
    let (tdx_quote, tdx_collateral) = tdx();
    let tdx_evidence = Evidence::TdxDcap {
        quote: tdx_quote.clone(),
    };
    let tdx_rd: [u8; 64] = tdx_quote[568..632].try_into().unwrap();
    let register_of = |result: Result<_, VerifyError>| match result {
        Err(VerifyError::MeasurementMismatch { register, .. }) => register,
        other => panic!("expected MEASUREMENT_MISMATCH, got {other:?}"),
    };
    let v = Verifier::default();
    // An SGX expectation whose MRENCLAVE is the first 32 bytes of this TD's MRTD.
    let sgx_like = ExpectedMeasurement::Sgx {
        mr_enclave: tdx_mrtd(&tdx_quote)[..32].try_into().unwrap(),
    };
    assert_eq!(
        register_of(v.verify(
            &tdx_evidence,
            Some(&tdx_collateral),
            &sgx_like,
            &tdx_rd,
            NOW
        )),
        "TEE"
    );
    let no_registers = ExpectedMeasurement::Tdx {
        registers: None,
        fingerprint: tdx_mrtd(&tdx_quote),
    };
    assert_eq!(
        register_of(v.verify(
            &tdx_evidence,
            Some(&tdx_collateral),
            &no_registers,
            &tdx_rd,
            NOW
        )),
        "TDX registers"
    );

    let (sgx_quote, sgx_collateral) = sgx();
    let sgx_evidence = Evidence::SgxDcap {
        quote: sgx_quote.clone(),
    };
    let sgx_rd: [u8; 64] = sgx_quote[368..432].try_into().unwrap();
    let every_register_any_but_mrtd = ExpectedMeasurement::Tdx {
        registers: Some(TdxMeasurement::from_fn(|r| match r {
            TdxRegister::Mrtd => Register::Exact([0; 48]),
            _ => Register::Any,
        })),
        fingerprint: sgx_mrenclave(&sgx_quote),
    };
    assert_eq!(
        register_of(Verifier::new(sgx_policy()).verify(
            &sgx_evidence,
            Some(&sgx_collateral),
            &every_register_any_but_mrtd,
            &sgx_rd,
            NOW
        )),
        "TEE"
    );
}

/// 2026-03-01T00:00:00Z, inside the outdated TDX sample's collateral window (2026-02-18 .. 2026-03-20).
const OUTDATED_NOW: u64 = 1_772_323_200;

/// A real TDX quote from a platform below every TCB level of its collateral (dcap-qvl ships it
/// to test TCB overrides): it is refused under the default policy, and still refused when the
/// policy accepts every non-revoked status, because no level of Intel's list matches it.
#[test]
fn tdx_platform_below_every_tcb_level_is_refused_whatever_the_policy() {
    let quote = read("tdx_quote_outdated");
    let collateral = Collateral::from_json(&read("tdx_quote_outdated_collateral.json")).unwrap();
    assert!(collateral.valid_from() <= OUTDATED_NOW && OUTDATED_NOW <= collateral.expires_at());
    let evidence = Evidence::TdxDcap {
        quote: quote.clone(),
    };
    let expected = ExpectedMeasurement::Tdx {
        registers: Some(tdx_registers(&quote)),
        fingerprint: Vec::new(),
    };
    let rd: [u8; 64] = quote[568..632].try_into().unwrap();
    let lenient = Policy::default()
        .accept_status(TcbStatus::OutOfDate)
        .accept_status(TcbStatus::OutOfDateConfigurationNeeded)
        .accept_status(TcbStatus::SWHardeningNeeded)
        .accept_status(TcbStatus::ConfigurationNeeded)
        .accept_status(TcbStatus::ConfigurationAndSWHardeningNeeded);
    for policy in [Policy::default(), lenient] {
        let refused = Verifier::new(policy).verify(
            &evidence,
            Some(&collateral),
            &expected,
            &rd,
            OUTDATED_NOW,
        );
        assert_eq!(code(refused), "QUOTE_INVALID");
    }
}

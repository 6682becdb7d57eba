//! PCCS collateral fetching and caching, against a local HTTP server that serves the fixture
//! collateral the way a PCCS does.

#![cfg(feature = "pccs")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use sms_attest::pccs::{PccsClient, PccsConfig};
use sms_attest::{
    CollateralSource, DcapQuote, Evidence, ExpectedMeasurement, Policy, Register, TcbStatus,
    TdxMeasurement, TdxRegister, TeeKind, Verifier,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const NOW: u64 = 1_751_328_000;

fn fixture(name: &str) -> Vec<u8> {
    sms_attest::samples::read_sample(name).unwrap_or_else(|e| panic!("{e}"))
}

fn sgx_expect(quote: &[u8]) -> ExpectedMeasurement {
    ExpectedMeasurement::Sgx {
        mr_enclave: quote[112..144].try_into().unwrap(),
    }
}

/// Every register of the TD of a quote v4, at its offset.
fn tdx_expect(quote: &[u8]) -> ExpectedMeasurement {
    let at = |offset: usize| Register::Exact(quote[offset..offset + 48].try_into().unwrap());
    ExpectedMeasurement::Tdx {
        registers: Some(TdxMeasurement::from_fn(|r| match r {
            TdxRegister::Mrtd => at(184),
            TdxRegister::MrConfigId => at(232),
            TdxRegister::Rtmr0 => at(376),
            TdxRegister::Rtmr1 => at(424),
            TdxRegister::Rtmr2 => at(472),
            TdxRegister::Rtmr3 => at(520),
        })),
        fingerprint: Vec::new(),
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Routes a PCCS v4 request to the fixture collateral `c` (the JSON of a collateral file).
fn route(c: &Value, tee: &str, path: &str) -> Response {
    let s = |k: &str| c[k].as_str().unwrap().to_owned();
    let ok = |headers: Vec<(&str, String)>, body: Vec<u8>| Response {
        status: 200,
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        body,
    };
    if path.starts_with("/sgx/certification/v4/pckcrl?ca=") && path.ends_with("&encoding=der") {
        ok(
            vec![(
                "SGX-PCK-CRL-Issuer-Chain",
                percent_encode(&s("pck_crl_issuer_chain")),
            )],
            hex::decode(s("pck_crl")).unwrap(),
        )
    } else if path.starts_with(&format!("/{tee}/certification/v4/tcb?fmspc=")) {
        let body = format!(
            r#"{{"tcbInfo":{},"signature":"{}"}}"#,
            s("tcb_info"),
            s("tcb_info_signature")
        );
        ok(
            vec![(
                "TCB-Info-Issuer-Chain",
                percent_encode(&s("tcb_info_issuer_chain")),
            )],
            body.into_bytes(),
        )
    } else if path == format!("/{tee}/certification/v4/qe/identity") {
        let body = format!(
            r#"{{"enclaveIdentity":{},"signature":"{}"}}"#,
            s("qe_identity"),
            s("qe_identity_signature")
        );
        ok(
            vec![(
                "SGX-Enclave-Identity-Issuer-Chain",
                percent_encode(&s("qe_identity_issuer_chain")),
            )],
            body.into_bytes(),
        )
    } else if path == "/sgx/certification/v4/rootcacrl" {
        // A PCCS serves the root CA CRL hex-encoded.
        ok(vec![], s("root_ca_crl").into_bytes())
    } else {
        Response {
            status: 404,
            headers: vec![],
            body: b"not found".to_vec(),
        }
    }
}

/// Serves `collateral` for `tee` on a local port; returns the base URL and a request counter.
async fn fake_pccs(collateral_file: &str, tee: &'static str) -> (String, Arc<AtomicUsize>) {
    let collateral: Value = serde_json::from_slice(&fixture(collateral_file)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let collateral = collateral.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let r = route(&collateral, tee, &path);
                let mut out = format!(
                    "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    r.status,
                    r.body.len()
                );
                for (k, v) in r.headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                let mut bytes = out.into_bytes();
                bytes.extend_from_slice(&r.body);
                stream.write_all(&bytes).await.unwrap();
                stream.shutdown().await.ok();
            });
        }
    });
    (format!("http://{addr}"), hits)
}

#[tokio::test]
async fn fetches_sgx_collateral_verifies_and_caches_until_expiry() {
    let (url, hits) = fake_pccs("sgx_quote_collateral.json", "sgx").await;
    let client = PccsClient::new(PccsConfig::new(format!("{url}/sgx/certification/v4"))).unwrap();
    let quote = fixture("sgx_quote");
    let parsed = DcapQuote::parse(&quote).unwrap();
    assert_eq!(parsed.pck_ca().unwrap(), "processor");

    let source = CollateralSource::Pccs(client);
    assert_eq!(source.seconds_until_expiry(NOW), None);
    let collateral = source.collateral_for(&parsed, NOW).await.unwrap();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "pckcrl, tcb, qe identity, root CA CRL"
    );
    assert_eq!(
        (collateral.tee(), collateral.fmspc()),
        (TeeKind::Sgx, "00A067110000")
    );
    // The served collateral is the fixture's, byte for byte.
    let offline = sms_attest::Collateral::from_json(&fixture("sgx_quote_collateral.json")).unwrap();
    assert_eq!(collateral.as_dcap(), offline.as_dcap());
    let left = source.seconds_until_expiry(NOW).unwrap();
    assert_eq!(left, collateral.expires_at() as i64 - NOW as i64);

    let verifier = Verifier::new(
        Policy::default().accept_status(TcbStatus::ConfigurationAndSWHardeningNeeded),
    );
    let evidence = Evidence::SgxDcap {
        quote: quote.clone(),
    };
    let rd: [u8; 64] = quote[368..432].try_into().unwrap();
    let report = verifier
        .verify_with_source(&evidence, &source, &sgx_expect(&quote), &rd, NOW)
        .await
        .unwrap();
    assert_eq!(
        report.tcb_status,
        Some(TcbStatus::ConfigurationAndSWHardeningNeeded)
    );
    assert_eq!(hits.load(Ordering::SeqCst), 4, "served from the cache");

    // Within the refresh margin of the expiry: fetched again.
    let late = collateral.expires_at() - 60;
    source.collateral_for(&parsed, late).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 8);
    let CollateralSource::Pccs(client) = &source else {
        unreachable!()
    };
    assert_eq!(client.cached_entries(), 1);
}

#[tokio::test]
async fn fetches_tdx_collateral() {
    let (url, _) = fake_pccs("tdx_quote_collateral.json", "tdx").await;
    let source = CollateralSource::Pccs(PccsClient::new(PccsConfig::new(url)).unwrap());
    let quote = fixture("tdx_quote");
    let evidence = Evidence::TdxDcap {
        quote: quote.clone(),
    };
    let rd: [u8; 64] = quote[568..632].try_into().unwrap();
    let report = Verifier::default()
        .verify_with_source(&evidence, &source, &tdx_expect(&quote), &rd, NOW)
        .await
        .unwrap();
    assert_eq!(report.tcb_status, Some(TcbStatus::UpToDate));
}

#[tokio::test]
async fn unreachable_or_wrong_pccs_is_collateral_unavailable() {
    // Serves SGX collateral only: the TDX quote's requests get 404.
    let (url, _) = fake_pccs("sgx_quote_collateral.json", "sgx").await;
    let source = CollateralSource::Pccs(PccsClient::new(PccsConfig::new(url)).unwrap());
    let quote = fixture("tdx_quote");
    let evidence = Evidence::TdxDcap {
        quote: quote.clone(),
    };
    let err = Verifier::default()
        .verify_with_source(&evidence, &source, &tdx_expect(&quote), &[0; 64], NOW)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "COLLATERAL_UNAVAILABLE");
    assert!(
        err.full_message().contains("HTTP 404"),
        "{}",
        err.full_message()
    );
}

#[tokio::test]
async fn a_silent_pccs_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            held.push(stream); // never answers
        }
    });
    let config = PccsConfig {
        timeout_secs: 1,
        ..PccsConfig::new(format!("http://{addr}"))
    };
    let client = PccsClient::new(config).unwrap();
    let start = std::time::Instant::now();
    let err = client
        .fetch(TeeKind::Sgx, "00A067110000", "processor")
        .await
        .unwrap_err();
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        matches!(err, sms_attest::CollateralError::Http { .. }),
        "{err:?}"
    );
}

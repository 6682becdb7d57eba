//! A DCAP quote as an enclave sends it (SGX v3, TDX v4/v5): `sms_attest::DcapQuote::parse`,
//! then what is read from it before verification (FMSPC and PCK CA from the embedded PCK
//! certificate chain, used to pick collateral). Full verification needs collateral and the
//! clock; `evidence_json` reaches the verifier without it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_attest::DcapQuote;

fuzz_target!(|data: &[u8]| {
    let Ok(quote) = DcapQuote::parse(data) else {
        return;
    };
    assert_eq!(quote.raw(), data);
    let _ = quote.tee();
    if let Ok(fmspc) = quote.fmspc() {
        assert_eq!(fmspc.len(), 12, "FMSPC is 6 bytes in hex: {fmspc}");
    }
    let _ = quote.pck_ca();
});

//! Bulk documents from an untrusted IPFS gateway (docs/bulk-processing.md): `Cid::parse` of the
//! first line, `verify` of the rest against it, then the rest as a bulk root and as a slice of
//! signed dataset orders. Nothing may panic; what verifies must be what the CID names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_core::bulk;
use sms_core::cid::{Cid, cid_v0};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (head, rest) = data.split_at(split);
    let body = rest.get(1..).unwrap_or_default();
    if let Ok(text) = std::str::from_utf8(head)
        && let Ok(cid) = Cid::parse(text)
    {
        let _ = cid.verify(body);
    }
    // The body under its own CIDv0 always verifies, then parses (or not) without panicking.
    let own = Cid::parse(&cid_v0(body)).expect("a CIDv0 of any bytes parses");
    assert!(bulk::verify_document(&own, body).is_ok() || body.len() > bulk::MAX_DOCUMENT_BYTES);
    let _ = bulk::slice_cid(&own, body, 0);
    let _ = bulk::parse_slice(&own, body);
});

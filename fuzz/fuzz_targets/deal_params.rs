//! Deal params, read from the chain (anyone can create a deal): `sms_core::deal_params::parse`
//! and `ParamsBuilder::from_params`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_core::deal_params::{self, ParamsBuilder};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = deal_params::parse(text);
    let _ = parsed.warning();
    let _ = parsed.fell_back();
    if let Ok(builder) = ParamsBuilder::from_params(text) {
        for (tee, callback) in [(false, false), (true, false), (true, true)] {
            let _ = builder.build(tee, callback);
        }
    }
});

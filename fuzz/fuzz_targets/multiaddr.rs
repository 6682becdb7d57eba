//! Dataset and app multiaddr bytes, read from the chain: `sms_chain::poco::decode_multiaddr`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = sms_chain::poco::decode_multiaddr(data);
    // The rendering never grows unboundedly beyond its input.
    assert!(
        text.len() <= 8 * data.len() + 64,
        "{} bytes from {}",
        text.len(),
        data.len()
    );
});

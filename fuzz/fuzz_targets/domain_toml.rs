//! svirt's TOML domain format: parse and validate, never panic; a valid domain lists its
//! resources.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svirt_core::domain::Domain;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = Domain::from_toml(text, "fuzz.toml") {
        let _ = d.resources();
    }
});

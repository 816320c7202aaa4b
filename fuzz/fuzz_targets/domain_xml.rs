//! libvirt domain XML: parse and validate, never panic; a valid domain lists its resources.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svirt_core::domain::Domain;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = Domain::from_xml(text, "fuzz.xml") {
        let _ = d.resources();
    }
});

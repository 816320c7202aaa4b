//! SELinux contexts, ranges and levels: any input parses or is refused, never panics, and what
//! parses prints back to a form that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svirt_core::context::{Level, MlsRange, SecurityContext};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = text.parse::<SecurityContext>() {
        let again: SecurityContext = c.to_string().parse().expect("a printed context parses");
        assert_eq!(again, c);
    }
    if let Ok(r) = text.parse::<MlsRange>() {
        let again: MlsRange = r.to_string().parse().expect("a printed range parses");
        assert_eq!(again, r);
        let _ = r.contains(&r);
    }
    let _ = text.parse::<Level>();
});

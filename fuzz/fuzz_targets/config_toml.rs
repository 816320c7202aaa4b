//! `svirt.toml` with every driver's `[[driver]]` table: parse, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svirt_core::config::Config;
// Linked for their typetag registrations.
use svirt_dac as _;
use svirt_landlock as _;
use svirt_selinux as _;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::from_toml(text);
});

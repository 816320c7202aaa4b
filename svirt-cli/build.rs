//! Link options for the `svirt` binary.

fn main() {
    // Relative relocations packed (DT_RELR, glibc 2.36): the loader reads 6 KiB of them at every
    // call instead of 195 KiB of RELA entries (docs/performance.md). An older linker warns and
    // ignores the option.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

//! Link options for the `svirt` binary.

use std::path::PathBuf;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux")
        || std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu")
    {
        return;
    }
    // Relative relocations packed (DT_RELR, glibc 2.36): the loader reads 6 KiB of them at every
    // call instead of 195 KiB of RELA entries (docs/performance.md). An older linker warns and
    // ignores the option.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    static_unwinder();
}

/// Link libgcc's unwinder into the binary (`libgcc_eh.a`) instead of loading `libgcc_s.so.1` at
/// every call, as `gcc -static-libgcc` does for a C program. Rust's standard library asks for
/// `-lgcc_s` by name, so `-static-libgcc` alone changes nothing; a linker script of that name,
/// found first, names the archive instead. Loading the shared one cost each call about a tenth
/// of a millisecond: its mapping and relocation, and its constructor, which probes the CPU with
/// `cpuid` (a trap to the hypervisor on a virtual machine) for code that svirt never runs
/// (docs/performance.md). Unwinding (a panic) works the same with either.
fn static_unwinder() {
    let Some(out) = std::env::var_os("OUT_DIR") else {
        return;
    };
    let dir = PathBuf::from(out).join("static-unwinder");
    let script = dir.join("libgcc_s.so");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&script, "/* svirt-cli/build.rs */\nINPUT ( -lgcc_eh )\n"));
    match written {
        Ok(()) => println!("cargo:rustc-link-search=native={}", dir.display()),
        Err(e) => println!(
            "cargo:warning=cannot write {}: {e}; libgcc_s.so.1 stays a shared library",
            script.display()
        ),
    }
}

//! Helpers for the integration tests: build and run the `svirt` binary, read labels and owners.

#![allow(clippy::print_stderr)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `svirt` binary, built once (debug profile) for this test run.
pub fn svirt() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default();
        let st = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "svirt-cli", "--features", "failpoints"])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(st.success(), "building svirt failed");
        root.join("target/debug/svirt")
    })
    .clone()
}

/// A temporary directory others can traverse (VM uids must reach their images inside it).
pub fn tmp() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Print a visible skip line: the test did not run, and says why. With `SVIRT_REQUIRE_ALL` set
/// (CI runs as root on a host with every feature), a skip is a failure instead, so no skipped
/// test is ever counted as passed there.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os("SVIRT_REQUIRE_ALL").is_some() {
        panic!("{test} cannot run here ({why}), and SVIRT_REQUIRE_ALL forbids skipping");
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// True when running as root; otherwise prints a visible skip line for `test`.
pub fn root_or_skip(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        skip(test, "needs root (real chown and xattrs)");
    }
    root
}

/// Run svirt with a config and args.
pub fn run(cfg: &Path, args: &[&str]) -> Output {
    Command::new(svirt())
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .expect("svirt runs")
}

/// Write `svirt.toml` in `dir`: a state dir inside `dir`, then one `[[driver]]` table.
fn write_config(dir: &Path, driver: &str) -> PathBuf {
    let p = dir.join("svirt.toml");
    let text = format!(
        "state_dir = \"{}/state\"
[[driver]]
{driver}",
        dir.display()
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// A DAC configuration in `dir`.
pub fn dac_config(dir: &Path) -> PathBuf {
    write_config(
        dir,
        "driver = \"dac\"
uid_range = \"64000-64999\"
",
    )
}

/// An offline SELinux configuration in `dir` with the manager range `range`.
pub fn selinux_config(dir: &Path, range: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "driver = \"selinux\"
offline = true
manager_context = \"system_u:system_r:virtd_t:{range}\"
"
        ),
    )
}

/// Write `content` to a file and give it the SELinux label `label`.
pub fn labeled_file(p: &Path, content: &str, label: &str) {
    std::fs::write(p, content).unwrap();
    let st = Command::new("setfattr")
        .args(["-n", "security.selinux", "-v", label])
        .arg(p)
        .status()
        .expect("setfattr runs");
    assert!(st.success(), "setfattr {}", p.display());
}

/// The SELinux label of a file ("" when none).
pub fn label(p: &Path) -> String {
    let out = Command::new("getfattr")
        .args(["--only-values", "-h", "-n", "security.selinux"])
        .arg(p)
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .trim_end_matches('\0')
            .to_owned(),
        _ => String::new(),
    }
}

/// Owner and mode of a file, `uid:gid mode`.
pub fn owner(p: &Path) -> String {
    let m = std::fs::symlink_metadata(p).unwrap();
    format!("{}:{} {:o}", m.uid(), m.gid(), m.mode() & 0o7777)
}

/// Every `trusted.svirt.*` xattr of a file.
pub fn svirt_xattrs(p: &Path) -> String {
    let out = Command::new("getfattr")
        .args(["-h", "-d", "-m", "trusted.svirt"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("svirt"))
        .collect::<Vec<_>>()
        .join(",")
}

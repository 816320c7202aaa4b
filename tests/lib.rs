//! Helpers for the integration tests: build and run the `svirt` binary, read labels and owners.

#![allow(clippy::print_stderr)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `svirt` binary with crash injection (`SVIRT_FAILPOINT`): the `svirt-failpoints` bin target
/// of this crate, which cargo builds before it runs the integration tests, in the target
/// directory it is using (`CARGO_TARGET_DIR` included). Test executables live in
/// `<target>/<profile>/deps/`, the bin beside that directory.
pub fn svirt() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        let bin = exe
            .parent()
            .and_then(Path::parent)
            .map(|profile| profile.join("svirt-failpoints"))
            .expect("the test executable lives in <target>/<profile>/deps");
        assert!(
            bin.is_file(),
            "{} is missing: run the tests through `cargo test`, which builds it",
            bin.display()
        );
        bin
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

/// True when every one of `tools` is installed; otherwise prints a visible skip line for `test`
/// naming the first one missing.
pub fn tools_or_skip(test: &str, tools: &[&str]) -> bool {
    match tools.iter().find(|t| !Path::new(t).is_file()) {
        Some(missing) => {
            skip(test, &format!("no {missing}"));
            false
        }
        None => true,
    }
}

/// The PATH commands get that run as a VM uid: system directories only, which any uid can
/// search (a developer's PATH may lead through /root/.cargo/bin or a private tool directory).
pub const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Run svirt with a config and args.
pub fn run(cfg: &Path, args: &[&str]) -> Output {
    Command::new(svirt())
        .env("PATH", SYSTEM_PATH)
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
    set_label(p, label);
}

/// Give a file itself (a symlink not followed) the SELinux label `label`.
pub fn set_label(p: &Path, label: &str) {
    rustix::fs::lsetxattr(
        p,
        "security.selinux",
        label.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap_or_else(|e| panic!("set the SELinux label of {}: {e}", p.display()));
}

/// A file with content, owner `uid:uid`, `mode` and the label `system_u:object_r:default_t:s0`.
pub fn owned_file(h: &Stack, rel: &str, uid: u32, mode: u32) -> PathBuf {
    let p = h.file(rel, "system_u:object_r:default_t:s0");
    std::os::unix::fs::chown(&p, Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    p
}

/// The uid the DAC driver gave a running domain.
pub fn uid_of(h: &Stack, name: &str) -> u32 {
    h.label_of(name, "dac")
        .trim_start_matches('+')
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Wait up to 10 s for `f` to hold; whether it did.
pub fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// A process running as `uid:uid` with no groups for a minute, as a VM's VMM would: what
/// `recover` and a start on a lost state must find. Kill it when done.
pub fn vm_process(uid: u32) -> std::process::Child {
    vm_process_running(uid, Path::new("/bin/sleep"))
}

/// [`vm_process`] running `program` (a copy of `sleep` under another name) with the argument
/// `60`. Returns once the process runs as `uid` (`setpriv` starts as root and changes its uid
/// before it execs: a scan made in between would rightly not count it, and a loaded machine
/// made that window long enough for a test to lose it).
pub fn vm_process_running(uid: u32, program: &Path) -> std::process::Child {
    let mut child = Command::new("/usr/bin/setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
        ])
        .arg(program)
        .arg("60")
        .env("PATH", SYSTEM_PATH)
        .spawn()
        .unwrap();
    wait_runs_as(&mut child, uid);
    child
}

/// Build the C program `src` in `dir` as `name` (`cc -O2 -pthread`); `None` (and a skip line
/// for `test`) without a compiler.
pub fn built_c(dir: &Path, test: &str, name: &str, src: &str) -> Option<PathBuf> {
    if !Path::new("/usr/bin/cc").is_file() {
        skip(test, "no C compiler to build the guest's program");
        return None;
    }
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let bin = dir.join(name);
    let st = Command::new("/usr/bin/cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&bin)
        .arg(&c)
        .status()
        .unwrap();
    assert!(st.success(), "cc {name}.c failed");
    Some(bin)
}

/// The `State:` of process `pid` (`S (sleeping)`, `T (stopped)`...); empty once it is gone.
pub fn proc_state(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("State:").map(|v| v.trim().to_owned()))
        })
        .unwrap_or_default()
}

/// The real uid of process `pid`, while it runs.
pub fn real_uid(pid: u32) -> Option<u32> {
    let s = std::fs::read(format!("/proc/{pid}/status")).ok()?;
    String::from_utf8_lossy(&s).lines().find_map(|l| {
        l.strip_prefix("Uid:")
            .and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok())
    })
}

/// The processes running with real uid `uid` that are stopped (`T`), with their states.
pub fn stopped_processes_of(uid: u32) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| real_uid(pid) == Some(uid))
        .map(|pid| (pid, proc_state(pid)))
        .filter(|(_, state)| state.starts_with('T'))
        .collect()
}

/// `setpriv`'s arguments to make, as `uid`, a new user namespace that `uid` owns and keep it
/// (with `sleep 60`).
pub fn user_namespace_made_by(uid: u32) -> [String; 7] {
    [
        format!("--reuid={uid}"),
        format!("--regid={uid}"),
        "--clear-groups".into(),
        "/usr/bin/unshare".into(),
        "-U".into(),
        "/bin/sleep".into(),
        "60".into(),
    ]
}

/// `program ARGS` run by root inside a new user namespace that `uid` owns (made by a process of
/// `uid`, gone once root is in): none of its ids is `uid`, but a sender with effective uid `uid`
/// may signal it. `None` where the kernel lets no unprivileged uid make a user namespace.
pub fn root_in_user_namespace_of(
    uid: u32,
    program: &Path,
    args: &[&str],
) -> Option<std::process::Child> {
    let mut owner = Command::new("/usr/bin/setpriv")
        .args(user_namespace_made_by(uid))
        .spawn()
        .unwrap();
    let runs = |pid: u32, exe: &Path| {
        std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == exe)
    };
    let sleep = std::fs::canonicalize("/bin/sleep").unwrap();
    let made = wait_until(|| runs(owner.id(), &sleep) || owner.try_wait().ok().flatten().is_some())
        && runs(owner.id(), &sleep);
    let inside = made.then(|| {
        let child = Command::new("/usr/bin/nsenter")
            .args([
                "-t",
                &owner.id().to_string(),
                "-U",
                "--preserve-credentials",
            ])
            .arg(program)
            .args(args)
            .spawn()
            .unwrap();
        // Entered (its main thread may exit at once: then it is a zombie leader, which nsenter
        // never is).
        let entered = wait_until(|| {
            let ns = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/user")).ok();
            (ns(child.id()).is_some() && ns(child.id()) == ns(owner.id()))
                || proc_state(child.id()).starts_with('Z')
        });
        assert!(entered, "nsenter never ran {}", program.display());
        child
    });
    let _ = owner.kill();
    let _ = owner.wait();
    inside
}

/// Wait (up to 10 s) until `child` runs as `uid`: a `setpriv` child starts as root and
/// changes its uid before it execs. Kills it and panics if it never does.
pub fn wait_runs_as(child: &mut std::process::Child, uid: u32) {
    let pid = child.id();
    if !wait_until(|| real_uid(pid) == Some(uid)) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the process {pid} never ran as uid {uid}");
    }
}

/// True when this kernel runs the Landlock driver (ABI >= 6); else prints a skip line.
pub fn landlock_or_skip(test: &str) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    let o = Command::new(svirt())
        .args(["--json", "drivers"])
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ok = j["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["driver"] == "landlock" && d["available"] == true);
    if !ok {
        skip(test, "the kernel has no Landlock ABI >= 6");
    }
    ok
}

/// True when running as root with private mount namespaces; else prints a skip line.
pub fn ns_ready(test: &str) -> bool {
    if !root_or_skip(test) {
        return false;
    }
    if in_private_mounts("true", &[]).is_none_or(|o| !o.status.success()) {
        skip(test, "cannot make a private mount namespace here");
        return false;
    }
    true
}

/// Run a shell command as the guest would: the VM's uid and gid, and `groups` (none: no
/// supplementary group at all).
pub fn as_guest(uid: u32, groups: &[u32], script: &str) {
    let groups = match groups {
        [] => "--clear-groups".to_owned(),
        g => format!(
            "--groups={}",
            g.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        ),
    };
    let st = Command::new("/usr/bin/setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            &groups,
            "/bin/sh",
            "-c",
            script,
        ])
        .env("PATH", SYSTEM_PATH)
        .status()
        .unwrap();
    assert!(st.success(), "guest script failed: {script}");
}

/// A stack on real files in a temp dir: offline SELinux, and DAC if asked, over a range of a
/// thousand uids no other stack of the test binary uses (the tests of a binary run side by
/// side, and a stop is refused while any process runs with the domain's uid: another test's
/// guest must never be taken for this one's).
#[derive(Debug)]
pub struct Stack {
    dir: tempfile::TempDir,
    pub cfg: PathBuf,
    uids: Option<(u32, u32)>,
}

/// The next stack's uid range, a thousand uids from 100000 on (clear of 65534, `nobody`).
static NEXT_RANGE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Stack {
    pub fn new(dac: bool) -> Self {
        let k = NEXT_RANGE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let lo = 100_000 + 1000 * k;
        Self::build(dac.then_some((lo, lo + 999)))
    }

    /// The DAC pool's shared group (its last id), which every VM gets as a supplementary
    /// group.
    pub fn shared_gid(&self) -> u32 {
        self.uids.expect("a stack with DAC").1
    }

    /// With DAC over the uids `lo..=hi`: a test whose VM processes outlive a stop keeps them
    /// off the uids the other tests of its binary, running beside it, draw.
    pub fn with_uids(lo: u32, hi: u32) -> Self {
        Self::build(Some((lo, hi)))
    }

    /// With the DAC driver alone over `lo..=hi` (offline SELinux sets no process labels, so
    /// `run` and `exec` refuse a stack holding it).
    pub fn dac_only(lo: u32, hi: u32) -> Self {
        let h = Self::with_uids(lo, hi);
        std::fs::write(
            &h.cfg,
            format!(
                "state_dir = \"{}\"\n[[driver]]\ndriver = \"dac\"\nuid_range = \"{lo}-{hi}\"\n",
                h.p("state").display()
            ),
        )
        .unwrap();
        h
    }

    fn build(dac: Option<(u32, u32)>) -> Self {
        let dir = tmp();
        let cfg = dir.path().join("svirt.toml");
        let mut text = format!(
            "state_dir = \"{}/state\"\n[[driver]]\ndriver = \"selinux\"\noffline = true\n\
             manager_context = \"system_u:system_r:virtd_t:s0-s0:c0.c1023\"\n",
            dir.path().display()
        );
        if let Some((lo, hi)) = dac {
            text.push_str(&format!(
                "[[driver]]\ndriver = \"dac\"\nuid_range = \"{lo}-{hi}\"\n"
            ));
        }
        std::fs::write(&cfg, text).unwrap();
        Stack {
            dir,
            cfg,
            uids: dac,
        }
    }

    /// A path in the temp dir.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A file (and its parents) whose content is its name, with the SELinux label `label`.
    pub fn file(&self, rel: &str, label: &str) -> PathBuf {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        labeled_file(&p, rel, label);
        p
    }

    /// A domain file named `name` with `body` after its name.
    pub fn domain(&self, name: &str, body: &str) -> PathBuf {
        let p = self.p(&format!("{name}.toml"));
        std::fs::write(&p, format!("name = \"{name}\"\n{body}")).unwrap();
        p
    }

    /// Run svirt with this stack's config.
    pub fn svirt(&self, args: &[&str]) -> Output {
        run(&self.cfg, args)
    }

    /// The label of `model` svirt recorded for the running domain `name` (`status --json`).
    pub fn label_of(&self, name: &str, model: &str) -> String {
        let o = self.ok(&["--json", "status", name]);
        let j: serde_json::Value = serde_json::from_str(&o).unwrap();
        j["domains"][0]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["model"] == model)
            .unwrap()["label"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Whether the domain `name` is still recorded (its identities reserved), per
    /// `status --json`.
    pub fn recorded(&self, name: &str) -> bool {
        let st = self.svirt(&["--json", "status"]);
        let j: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        j["domains"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == name)
    }

    /// A domain file for `name` with one disk, `disk.img` in this stack's dir (written with
    /// `x`): the domain file and the image.
    pub fn one_disk_domain(&self, name: &str) -> (PathBuf, PathBuf) {
        let img = self.p("disk.img");
        std::fs::write(&img, "x").unwrap();
        let dom = self.domain(name, &format!("[[disk]]\npath = \"{}\"\n", img.display()));
        (dom, img)
    }

    /// A domain file whose only resource is the directory share `share`.
    pub fn share_domain(&self, name: &str, share: &Path) -> PathBuf {
        self.domain(
            name,
            &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
        )
    }

    /// Stop every domain still recorded.
    pub fn stop_all(&self) {
        let st = self.svirt(&["--json", "status"]);
        let j: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        for d in j["domains"].as_array().unwrap() {
            self.ok(&["stop", d["name"].as_str().unwrap()]);
        }
    }

    /// Run svirt, which must succeed; its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.svirt(args);
        assert!(
            o.status.success(),
            "svirt {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// An extended attribute of a file itself (symlinks not followed), without a trailing NUL.
pub fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    match rustix::fs::lgetxattr(p, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            if buf.last() == Some(&0) {
                buf.pop();
            }
            Some(buf)
        }
        Err(_) => None,
    }
}

/// The SELinux label of a file ("" when none).
pub fn label(p: &Path) -> String {
    xattr(p, "security.selinux")
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default()
}

/// Owner and mode of a file, `uid:gid mode`.
pub fn owner(p: &Path) -> String {
    let m = std::fs::symlink_metadata(p).unwrap();
    format!("{}:{} {:o}", m.uid(), m.gid(), m.mode() & 0o7777)
}

/// Every `trusted.svirt.*` xattr of a file, as `name="value"` joined by commas.
pub fn svirt_xattrs(p: &Path) -> String {
    let mut names = vec![0u8; 65536];
    let n = match rustix::fs::llistxattr(p, &mut names[..]) {
        Ok(n) => n,
        // A file that is gone carries no metadata.
        Err(rustix::io::Errno::NOENT) => return String::new(),
        Err(e) => panic!("list the xattrs of {}: {e}", p.display()),
    };
    names[..n]
        .split(|b| *b == 0)
        .filter(|n| n.starts_with(b"trusted.svirt"))
        .map(|n| {
            let name = String::from_utf8_lossy(n).into_owned();
            let value = xattr(p, &name).unwrap_or_default();
            format!("{name}=\"{}\"", String::from_utf8_lossy(&value))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Every file below `root` (itself included) with its owner, mode, type and every xattr, one
/// line each, sorted: two snapshots are equal exactly when nothing on disk changed. Mount
/// points are not crossed.
pub fn snapshot(root: &Path) -> Vec<String> {
    fn walk(p: &Path, dev: u64, out: &mut Vec<String>) {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return;
        };
        let mut names = vec![0u8; 65536];
        let n = rustix::fs::llistxattr(p, &mut names[..]).unwrap_or(0);
        let mut xattrs: Vec<String> = names[..n]
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| {
                let name = String::from_utf8_lossy(n).into_owned();
                let v = xattr(p, &name).unwrap_or_default();
                format!("{name}={}", String::from_utf8_lossy(&v))
            })
            .collect();
        xattrs.sort();
        out.push(format!(
            "{} {}:{} {:o} rdev={} {}",
            p.display(),
            m.uid(),
            m.gid(),
            m.mode(),
            m.rdev(),
            xattrs.join(",")
        ));
        if m.is_dir() && m.dev() == dev {
            let mut kids: Vec<_> = std::fs::read_dir(p)
                .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            kids.sort();
            for k in kids {
                walk(&k, dev, out);
            }
        }
    }
    let dev = std::fs::symlink_metadata(root)
        .map(|m| m.dev())
        .unwrap_or(0);
    let mut out = Vec::new();
    walk(root, dev, &mut out);
    out
}

/// Run a shell `script` in a private mount namespace (`unshare --mount --propagation private`),
/// so every mount it makes vanishes with it and the host's mounts are never touched. `args` are
/// the script's positional parameters. None when mount namespaces cannot be made here.
pub fn in_private_mounts(script: &str, args: &[&str]) -> Option<Output> {
    let o = Command::new("unshare")
        // The script covers /var, /tmp, /home, … with decoys: a PATH through any of them (a
        // tool directory under /var/tmp, say) would vanish under it.
        .env("PATH", SYSTEM_PATH)
        .args(["--mount", "--propagation", "private", "--", "sh", "-ec"])
        .arg(script)
        .arg("sh")
        .args(args)
        .output()
        .ok()?;
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("unshare failed") {
        return None;
    }
    Some(o)
}

/// The absolute path of a system tool (`/usr/bin/NAME` or `/bin/NAME`), for commands that run as
/// a VM uid: such a uid cannot search a PATH through private directories (`/root/.cargo/bin`, a
/// `mktemp -d` tool directory), so it is given the tool's own path.
pub fn system_tool(name: &str) -> String {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed in /usr/bin or /bin"))
        .display()
        .to_string()
}

/// Run svirt with `SVIRT_FAILPOINT=point` (`name:n`: killed at the n-th hit of the point);
/// whether it was killed there (SIGKILL).
pub fn killed(cfg: &Path, point: &str, args: &[&str]) -> bool {
    use std::os::unix::process::ExitStatusExt;
    let o = Command::new(svirt())
        .env("PATH", SYSTEM_PATH)
        .env("SVIRT_FAILPOINT", point)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap();
    o.status.signal() == Some(9)
}

/// Start `dom`, killed at `point`, which must land.
pub fn start_killed_at(h: &Stack, dom: &Path, point: &str) {
    assert!(
        killed(&h.cfg, point, &["start", dom.to_str().unwrap()]),
        "the kill at {point} must land inside the start"
    );
}

/// A file with `content`, owner `uid:gid`, `mode` and the SELinux label `label`.
pub fn file_with(p: &Path, content: &str, uid: u32, gid: u32, mode: u32, label: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    labeled_file(p, content, label);
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// A directory owned by user 1000 (0755), labeled `user_home_t`.
pub fn user_dir(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
    std::os::unix::fs::chown(p, Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    set_label(p, "system_u:object_r:user_home_t:s0");
}

/// Owner, mode, label and svirt marks of a file: `uid:gid mode label [marks]`.
pub fn describe(p: &Path) -> String {
    format!("{} {} [{}]", owner(p), label(p), svirt_xattrs(p))
}

/// A directory with owner, mode and label.
pub fn dir_with(p: &Path, uid: u32, gid: u32, mode: u32, label: &str) {
    std::fs::create_dir_all(p).unwrap();
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    set_label(p, label);
}

/// The image label carrying the MCS pair of the running domain `name`.
pub fn pair_label(h: &Stack, name: &str) -> String {
    let l = h.label_of(name, "selinux");
    let level: Vec<&str> = l.splitn(4, ':').collect();
    format!("system_u:object_r:svirt_image_t:{}", level[3])
}

/// A snapshot with `root`'s own path cut off each line, to compare two stacks' trees.
pub fn rel_snapshot(root: &Path) -> Vec<String> {
    let prefix = root.display().to_string();
    snapshot(root)
        .into_iter()
        .map(|l| l.replacen(&prefix, "", 1))
        .collect()
}

/// A command's exit code, standard output and standard error, for a failure message.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A share of user 1000 (`1000:1000 0755`, `user_home_t`) with a file of the user's (`plain`,
/// `1000:1000 0644`), and beside it a world-writable sticky directory (`pubtmp`, as `/tmp`).
pub fn user_share(h: &Stack) -> PathBuf {
    let share = h.p("share");
    dir_with(
        &share,
        1000,
        1000,
        0o755,
        "system_u:object_r:user_home_t:s0",
    );
    file_with(
        &share.join("plain"),
        "user data",
        1000,
        1000,
        0o644,
        "system_u:object_r:user_home_t:s0",
    );
    dir_with(
        &h.p("pubtmp"),
        0,
        0,
        0o1777,
        "system_u:object_r:default_t:s0",
    );
    share
}

/// Give every unlabeled entry below `root` owned by `uid` the label `label`, as SELinux does
/// for what the guest creates (this host runs without SELinux, so the test stands in for the
/// kernel).
pub fn label_guest_made(root: &Path, uid: u32, label: &str) {
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        // Only what has no label yet: rewriting a label svirt gave moves the ctime.
        if m.uid() == uid && xattr(&p, "security.selinux").is_none() {
            set_label(&p, label);
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
}

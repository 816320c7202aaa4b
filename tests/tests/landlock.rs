//! The Landlock driver through the real binary: kernel enforcement on this host.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use svirt_tests::*;

fn setup(drivers: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = d.path().join("svirt.toml");
    std::fs::write(
        &cfg,
        format!("state_dir = \"{}/state\"\n{drivers}", d.path().display()),
    )
    .unwrap();
    for (f, text) in [
        ("own.img", "own\n"),
        ("other.img", "other\n"),
        ("third.img", "third\n"),
    ] {
        let p = d.path().join(f);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    (d, cfg)
}

const LANDLOCK: &str = "[[driver]]\ndriver = \"landlock\"\n";

fn sh(cfg: &Path, own: &Path, script: &str) -> String {
    let o = Command::new(svirt())
        .env("PATH", SYSTEM_PATH)
        .arg("--config")
        .arg(cfg)
        .args([
            "run",
            "--rw",
            own.to_str().unwrap(),
            "--",
            "bash",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn vm_reads_and_writes_its_image_and_nothing_else_world_readable() {
    if !landlock_or_skip("vm_reads_and_writes_its_image_and_nothing_else_world_readable") {
        return;
    }
    let (d, cfg) = setup(LANDLOCK);
    let own = d.path().join("own.img");
    let other = d.path().join("other.img");
    let out = sh(
        &cfg,
        &own,
        &format!(
            "cat {o}; echo more >> {o} && echo WROTE-OWN; cat {x} && echo READ-OTHER; echo x >> {x} && echo WROTE-OTHER; \
             cat /etc/passwd > /dev/null && echo READ-PASSWD; ls /home > /dev/null && echo LS-HOME; echo end",
            o = own.display(),
            x = other.display()
        ),
    );
    assert!(out.contains("own\n") && out.contains("WROTE-OWN"), "{out}");
    for denied in ["READ-OTHER", "WROTE-OTHER", "READ-PASSWD", "LS-HOME"] {
        assert!(!out.contains(denied), "{denied} in: {out}");
    }
    assert!(out.contains("Permission denied"), "{out}");
    assert!(out.contains("end"), "{out}");
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "other\n");
}

#[test]
fn tcp_connect_and_signals_outside_the_domain_are_denied() {
    if !landlock_or_skip("tcp_connect_and_signals_outside_the_domain_are_denied") {
        return;
    }
    let (d, cfg) = setup(LANDLOCK);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut outside = Command::new("sleep").arg("30").spawn().unwrap();
    let script = format!(
        "echo > /dev/tcp/127.0.0.1/{port} && echo CONNECTED; kill -0 {pid} && echo SIGNALLED; echo end",
        pid = outside.id()
    );
    let out = sh(&cfg, &d.path().join("own.img"), &script);
    outside.kill().unwrap();
    let _ = outside.wait();
    assert!(out.contains("end"), "{out}");
    assert!(!out.contains("CONNECTED"), "{out}");
    assert!(!out.contains("SIGNALLED"), "{out}");
    // The same commands unconfined do succeed, so the denials above come from the driver.
    let free = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "echo > /dev/tcp/127.0.0.1/{port} && echo CONNECTED"
        ))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&free.stdout).contains("CONNECTED"));
}

#[test]
fn real_qemu_img_and_qemu_system_run_confined() {
    if !landlock_or_skip("real_qemu_img_and_qemu_system_run_confined") {
        return;
    }
    for tool in ["qemu-img", "qemu-system-x86_64"] {
        if Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            skip(
                "real_qemu_img_and_qemu_system_run_confined",
                &format!("{tool} is not installed"),
            );
            return;
        }
    }
    let (d, cfg) = setup(LANDLOCK);
    let own = d.path().join("q-own.qcow2");
    let other = d.path().join("q-other.qcow2");
    for p in [&own, &other] {
        assert!(Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(p)
            .arg("1M")
            .status()
            .unwrap()
            .success());
    }
    let info = |target: &Path| {
        Command::new(svirt())
            .arg("--config")
            .arg(&cfg)
            .args([
                "run",
                "--rw",
                own.to_str().unwrap(),
                "--",
                "qemu-img",
                "info",
            ])
            .arg(target)
            .output()
            .unwrap()
    };
    let o = info(&own);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = info(&other);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let mut q = Command::new(svirt())
        .arg("--config")
        .arg(&cfg)
        .args(["run", "--rw", own.to_str().unwrap(), "--"])
        .args([
            "qemu-system-x86_64",
            "-machine",
            "none",
            "-display",
            "none",
            "-nodefaults",
            "-monitor",
            "stdio",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    q.stdin
        .take()
        .unwrap()
        .write_all(b"info version\nquit\n")
        .unwrap();
    let o = q.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("info version")
            && out
                .lines()
                .any(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit())),
        "{out}"
    );
}

#[test]
fn with_dac_stacked_both_walls_hold() {
    if !landlock_or_skip("with_dac_stacked_both_walls_hold") {
        return;
    }
    let (d, cfg) = setup("[[driver]]\ndriver = \"dac\"\n[[driver]]\ndriver = \"landlock\"\n");
    let own = d.path().join("own.img");
    // other.img is world-writable: DAC alone would let the VM write it; Landlock must not.
    let out = sh(
        &cfg,
        &own,
        &format!(
            "id -u; cat {o}; echo x >> {x} && echo WROTE-OTHER; cat /etc/shadow && echo READ-SHADOW; echo end",
            o = own.display(),
            x = d.path().join("other.img").display()
        ),
    );
    let uid: u32 = out.lines().next().unwrap_or("").parse().unwrap_or(0);
    assert!((64000..65000).contains(&uid), "{out}");
    assert!(out.contains("own\n"), "{out}");
    assert!(
        !out.contains("WROTE-OTHER") && !out.contains("READ-SHADOW"),
        "{out}"
    );
    assert!(out.contains("end"), "{out}");
}

/// `svirt --config CFG ARGS...`: whether it succeeded, and everything it printed.
fn svirt_says(cfg: &Path, args: &[&str]) -> (bool, String) {
    let o = run(cfg, args);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
    )
}

#[test]
fn a_system_file_or_raw_host_memory_is_never_put_in_a_ruleset_however_it_is_named() {
    if !landlock_or_skip(
        "a_system_file_or_raw_host_memory_is_never_put_in_a_ruleset_however_it_is_named",
    ) {
        return;
    }
    let (d, cfg) = setup(LANDLOCK);
    let link = d.path().join("disk.img");
    std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
    let dotted = d.path().join("up");
    std::os::unix::fs::symlink("/", &dotted).unwrap();
    let via_dir = format!("{}/etc/shadow", dotted.display());
    // Another name of another VM's image: the grant would reach it under its own name.
    let twin = d.path().join("twin.img");
    std::fs::hard_link(d.path().join("other.img"), &twin).unwrap();
    let twin = twin.to_str().unwrap();
    let link = link.to_str().unwrap();
    // (how the path is given, what the refusal must name)
    let cases: &[(&[&str], &str)] = &[
        (&["--rw", "/etc/shadow"], "/etc/shadow"),
        (&["--ro", "/etc/passwd"], "/etc/passwd"),
        (&["--rw", "/etc/./shadow"], "/etc/shadow"),
        (&["--rw", link], "/etc/shadow"),
        (&["--rw", &via_dir], "/etc/shadow"),
        (&["--rw", twin], "2 hard links"),
    ];
    for (grant, named) in cases {
        let mut args = vec!["run"];
        args.extend_from_slice(grant);
        args.extend_from_slice(&["--", "sh", "-c", "echo THE-VMM-RAN"]);
        let (ok, out) = svirt_says(&cfg, &args);
        assert!(!ok, "{grant:?} was granted: {out}");
        assert!(!out.contains("THE-VMM-RAN"), "{grant:?}: {out}");
        assert!(
            out.contains(named) && out.contains("refusing"),
            "{grant:?}: the refusal names neither {named} nor why: {out}"
        );
    }
    // Domains as files, through `start`: the system file through a link, and the host's memory
    // and I/O ports as device nodes made in the temp dir (the same devices, by number) and
    // reached directly or through a link. Each is refused and no record is left behind.
    let mem = raw_device(d.path(), "mem", 1, 1);
    let port = raw_device(d.path(), "port", 1, 4);
    let mem_link = d.path().join("gpu");
    std::os::unix::fs::symlink(&mem, &mem_link).unwrap();
    let domains = [
        (
            format!("[[disk]]\npath = \"{link}\"\n"),
            "/etc/shadow".to_owned(),
        ),
        (
            format!("[[hostdev]]\npath = \"{}\"\n", mem.display()),
            "physical memory".into(),
        ),
        (
            format!("[[hostdev]]\npath = \"{}\"\n", mem_link.display()),
            format!("reached through {}", mem_link.display()),
        ),
        (
            format!("[[chardev]]\npath = \"{}\"\n", port.display()),
            "I/O ports".into(),
        ),
    ];
    for (resource, named) in domains {
        let dom = d.path().join("vm.toml");
        std::fs::write(&dom, format!("name = \"v\"\n{resource}")).unwrap();
        for cmd in ["verify", "start"] {
            let (ok, out) = svirt_says(&cfg, &[cmd, dom.to_str().unwrap()]);
            assert!(!ok && out.contains(&named), "{cmd} {resource}: {out}");
        }
        let (_, status) = svirt_says(&cfg, &["--json", "status"]);
        let j: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(
            j["domains"],
            serde_json::json!([]),
            "a record was left: {status}"
        );
    }
}

/// A character device node `name` in `dir` with the given numbers.
fn raw_device(dir: &Path, name: &str, major: u32, minor: u32) -> std::path::PathBuf {
    let p = dir.join(name);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &p,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(major, minor),
    )
    .unwrap();
    p
}

#[test]
fn a_resource_landlock_refuses_stops_the_start_before_a_stacked_driver_changes_anything() {
    if !landlock_or_skip(
        "a_resource_landlock_refuses_stops_the_start_before_a_stacked_driver_changes_anything",
    ) {
        return;
    }
    // DAC leaves the host's memory alone (a shared host device is never relabeled); Landlock
    // alone would hand it to the VMM.
    let (d, cfg) = setup("[[driver]]\ndriver = \"dac\"\n[[driver]]\ndriver = \"landlock\"\n");
    let own = d.path().join("own.img");
    let mem = raw_device(d.path(), "mem", 1, 1);
    let before = owner(&own);
    let dom = d.path().join("vm.toml");
    std::fs::write(
        &dom,
        format!(
            "name = \"v\"\n[[disk]]\npath = \"{}\"\n[[hostdev]]\npath = \"{}\"\n",
            own.display(),
            mem.display()
        ),
    )
    .unwrap();
    let (ok, out) = svirt_says(&cfg, &["start", dom.to_str().unwrap()]);
    assert!(!ok && out.contains("physical memory"), "{out}");
    assert_eq!(owner(&own), before, "the disk was left changed: {out}");
    assert_eq!(svirt_xattrs(&own), "", "marks were left on the disk: {out}");
    let (_, status) = svirt_says(&cfg, &["--json", "status"]);
    let j: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        j["domains"],
        serde_json::json!([]),
        "a record was left: {status}"
    );
}

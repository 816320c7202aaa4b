//! Path and input safety through the real binary: system paths reached by any spelling or
//! symlink, mount points inside shares, shared host device nodes, dangerous configuration,
//! unbounded or blocking input, signals, exit codes and user namespaces.
//!
//! The dangerous cases run in a private mount namespace where `/home`, `/root`, `/var`, `/run`,
//! `/opt`, `/mnt`, `/media`, `/etc`, `/dev` and `/tmp` are decoys from a temporary tree (and
//! `/srv` is the test's own directory), so even a broken svirt could only touch the decoys;
//! every such test asserts the exit code, the message and that no decoy changed.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use svirt_tests::*;

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The test tree that becomes `/srv` in the namespace, with a decoy for every system root.
struct Jail {
    dir: tempfile::TempDir,
}

const ROOTS: &[&str] = &["home", "root", "opt", "mnt", "media", "var", "run"];

impl Jail {
    fn new() -> Self {
        let dir = tmp();
        let t = dir.path();
        std::fs::copy(svirt(), t.join("svirt")).unwrap();
        let d = t.join("decoy");
        for r in ROOTS {
            std::fs::create_dir_all(d.join(r).join("sub")).unwrap();
            std::fs::write(d.join(r).join("sub/file"), r).unwrap();
        }
        std::fs::create_dir_all(d.join("home/alice")).unwrap();
        std::fs::write(d.join("home/alice/notes"), "mine").unwrap();
        std::fs::create_dir_all(d.join("etc/ssh")).unwrap();
        std::fs::write(
            d.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(d.join("etc/group"), "root:x:0:\nalice:x:1000:\n").unwrap();
        std::fs::write(d.join("etc/shadow"), "root:*:1::::::\n").unwrap();
        std::fs::write(d.join("etc/ssh/sshd_config"), "x\n").unwrap();
        std::fs::create_dir_all(d.join("dev/net")).unwrap();
        for (name, major, minor) in [("null", 1, 3), ("zero", 1, 5), ("kvm", 10, 232)] {
            mknod_char(&d.join("dev").join(name), major, minor);
        }
        mknod_char(&d.join("dev/net/tun"), 10, 200);
        mknod_char(&t.join("mynull"), 1, 3);
        std::fs::create_dir_all(t.join("share/inner")).unwrap();
        std::fs::write(t.join("share/a"), "a").unwrap();
        symlink("/etc", t.join("etclink")).unwrap();
        symlink("/etc", t.join("etcdirlink")).unwrap();
        symlink("/dev/null", t.join("nulllink")).unwrap();
        std::fs::write(
            t.join("svirt.toml"),
            "state_dir = \"/srv/state\"\n[[driver]]\ndriver = \"dac\"\nuid_range = \"64000-64999\"\n",
        )
        .unwrap();
        Jail { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every decoy, as it is on disk now.
    fn decoys(&self) -> Vec<String> {
        snapshot(&self.path().join("decoy"))
    }

    /// Run svirt in the namespace after `setup` (shell, run once the decoys are mounted).
    fn svirt(&self, setup: &str, args: &[&str]) -> Option<Output> {
        let script = format!(
            "mount -n --bind \"$1\" /srv
             for r in {}; do mount -n --bind /srv/decoy/$r /$r; done
             mount -n -t tmpfs tmpfs /tmp
             mount -n --bind /srv/decoy/dev /dev
             {setup}
             mount -n --bind /srv/decoy/etc /etc
             shift
             exec /srv/svirt --config /srv/svirt.toml \"$@\"",
            ROOTS.join(" ")
        );
        let mut all = vec![self.path().to_str().unwrap()];
        all.extend_from_slice(args);
        in_private_mounts(&script, &all)
    }

    /// Write a domain file into the tree and give its path inside the namespace.
    fn domain(&self, name: &str, toml: &str) -> String {
        std::fs::write(self.path().join(name), toml).unwrap();
        format!("/srv/{name}")
    }
}

fn mknod_char(p: &Path, major: u32, minor: u32) {
    let st = Command::new("mknod")
        .arg(p)
        .args(["c", &major.to_string(), &minor.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "mknod {}", p.display());
}

#[test]
fn system_roots_spelled_with_dots_slashes_or_symlinks_are_refused_and_nothing_changes() {
    let test = "system_roots_spelled_with_dots_slashes_or_symlinks_are_refused_and_nothing_changes";
    if !ns_ready(test) {
        return;
    }
    let j = Jail::new();
    let before = j.decoys();
    let shares = [
        ("/var/.", "/var"),
        ("/tmp/.", "/tmp"),
        ("/home/.", "/home"),
        ("/root/.", "/root"),
        ("/run/.", "/run"),
        ("/opt/", "/opt"),
        ("//", "/"),
        ("/.", "/"),
        ("/etc/", "/etc"),
        ("/home/alice", "/home/alice"),
        ("/srv/etcdirlink/", "/etc"),
        ("/srv/etcdirlink/ssh", "/etc/ssh"),
    ];
    for (share, shown) in shares {
        let dom = j.domain(
            "s.toml",
            &format!("name = \"s\"\n[[filesystem]]\npath = \"{share}\"\n"),
        );
        let o = j.svirt("", &["verify", &dom]).unwrap();
        assert_eq!(o.status.code(), Some(2), "verify {share}: {}", err(&o));
        let o = j.svirt("", &["start", &dom]).unwrap();
        assert_eq!(o.status.code(), Some(2), "{share}: {}", err(&o));
        assert!(
            err(&o).contains(&format!("refusing to relabel {shown}:")),
            "{share}: {}",
            err(&o)
        );
        assert_eq!(j.decoys(), before, "{share}: nothing changed");
    }
    // A disk reached through a symlinked directory: decided on /etc/shadow.
    let dom = j.domain(
        "d.toml",
        "name = \"d\"\n[[disk]]\npath = \"/srv/etclink/shadow\"\n",
    );
    let o = j.svirt("", &["start", &dom]).unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).contains("refusing to relabel /etc/shadow: it lies inside a system directory (reached through /srv/etclink/shadow)"),
        "{}",
        err(&o)
    );
    assert_eq!(j.decoys(), before);
    assert!(no_domain_recorded(&j), "no domain was recorded");
}

/// Whether svirt in the jail holds no domain record.
fn no_domain_recorded(j: &Jail) -> bool {
    let o = j.svirt("", &["--json", "status"]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["domains"] == serde_json::json!([])
}

#[test]
fn a_resource_that_is_another_name_of_a_system_file_is_refused_and_nothing_changes() {
    let test = "a_resource_that_is_another_name_of_a_system_file_is_refused_and_nothing_changes";
    if !ns_ready(test) {
        return;
    }
    let j = Jail::new();
    // Hard links made on the host, as an earlier guest or a careless script could leave them:
    // the decoy /etc/shadow and /root/sub/file each get a second name under /srv.
    std::fs::hard_link(
        j.path().join("decoy/etc/shadow"),
        j.path().join("shadow.img"),
    )
    .unwrap();
    std::fs::hard_link(
        j.path().join("decoy/root/sub/file"),
        j.path().join("content.iso"),
    )
    .unwrap();
    symlink("/srv/shadow.img", j.path().join("via-link.img")).unwrap();
    let before = j.decoys();
    let cases = [
        ("[[disk]]\npath = \"/srv/shadow.img\"\n", "/srv/shadow.img"),
        (
            "[[disk]]\npath = \"/srv/shadow.img\"\nshareable = true\n",
            "/srv/shadow.img",
        ),
        (
            "[[disk]]\npath = \"/srv/content.iso\"\nreadonly = true\n",
            "/srv/content.iso",
        ),
        ("kernel = \"/srv/content.iso\"\n", "/srv/content.iso"),
        (
            "[[disk]]\npath = \"/srv/via-link.img\"\n",
            "/srv/shadow.img",
        ),
    ];
    for (resource, shown) in cases {
        let dom = j.domain("h.toml", &format!("name = \"h\"\n{resource}"));
        let o = j.svirt("", &["verify", &dom]).unwrap();
        assert_eq!(o.status.code(), Some(2), "verify {resource}: {}", err(&o));
        let o = j.svirt("", &["start", &dom]).unwrap();
        assert_eq!(o.status.code(), Some(2), "{resource}: {}", err(&o));
        assert!(
            err(&o).contains(&format!("refusing to relabel {shown}: it has 2 hard links")),
            "{resource}: {}",
            err(&o)
        );
        assert_eq!(j.decoys(), before, "{resource}: nothing changed");
        assert!(no_domain_recorded(&j), "{resource}: no domain was recorded");
    }
}

#[test]
fn a_mount_inside_a_share_is_reported_and_never_crossed() {
    let test = "a_mount_inside_a_share_is_reported_and_never_crossed";
    if !ns_ready(test) {
        return;
    }
    let j = Jail::new();
    let before = j.decoys();
    let share_file = j.path().join("share/a");
    let file_before = owner(&share_file);
    let dom = j.domain(
        "m.toml",
        "name = \"m\"\n[[filesystem]]\npath = \"/srv/share\"\n",
    );
    // /etc (the decoy) bound inside the share, as an administrator's bind mount would be.
    let bind = "mount -n --bind /srv/decoy/etc /srv/share/inner";
    let o = j.svirt(bind, &["--json", "start", &dom]).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v["resources"][0];
    assert_eq!(r["path"], "/srv/share");
    assert_eq!(r["excluded"][0]["path"], "/srv/share/inner", "{v}");
    assert!(
        r["excluded"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("mount point"),
        "{v}"
    );
    assert_ne!(
        owner(&share_file),
        file_before,
        "the share itself is the VM's"
    );
    assert_eq!(j.decoys(), before, "the mounted /etc is untouched");
    let o = j.svirt(bind, &["stop", "m"]).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(owner(&share_file), file_before);
    assert_eq!(j.decoys(), before);
}

#[test]
fn shared_host_devices_are_skipped_with_a_reason_by_path_symlink_or_device_number() {
    let test = "shared_host_devices_are_skipped_with_a_reason_by_path_symlink_or_device_number";
    if !ns_ready(test) {
        return;
    }
    let j = Jail::new();
    let before = j.decoys();
    let mynull = owner(&j.path().join("mynull"));
    let dom = j.domain(
        "c.toml",
        "name = \"c\"\n[[chardev]]\npath = \"/dev/null\"\n[[chardev]]\npath = \"/srv/mynull\"\n\
         [[chardev]]\npath = \"/srv/nulllink\"\n[[hostdev]]\npath = \"/dev/kvm\"\n\
         [[hostdev]]\npath = \"/dev/net/tun\"\n",
    );
    let o = j.svirt("", &["--json", "start", &dom]).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let res = v["resources"].as_array().unwrap();
    assert_eq!(res.len(), 5, "{v}");
    for r in res {
        assert_eq!(r["skipped"], true, "{r}");
        assert!(
            r["reason"].as_str().unwrap().contains("shared host device"),
            "{r}"
        );
    }
    assert_eq!(res[1]["path"], "/srv/mynull");
    assert!(res[1]["reason"].as_str().unwrap().contains("null (1:3)"));
    assert_eq!(res[2]["path"], "/dev/null", "reported by its resolved path");
    assert_eq!(res[2]["given"], "/srv/nulllink");
    assert_eq!(j.decoys(), before, "no device node changed");
    assert_eq!(owner(&j.path().join("mynull")), mynull);
    let o = j.svirt("", &["stop", "c"]).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(j.decoys(), before);
}

/// A DAC configuration in `dir` with extra driver keys, its accounts in `dir`.
fn dac_cfg(dir: &Path, extra: &str) -> PathBuf {
    std::fs::write(
        dir.join("passwd"),
        "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(dir.join("group"), "root:x:0:\nalice:x:1000:\n").unwrap();
    let p = dir.join("dac.toml");
    std::fs::write(
        &p,
        format!(
            "state_dir = \"{}/state\"\n[[driver]]\ndriver = \"dac\"\npasswd = \"{0}/passwd\"\ngroup = \"{0}/group\"\n{extra}\n",
            dir.display()
        ),
    )
    .unwrap();
    p
}

/// One case of the exit code table: a configuration, a domain, the command, what must happen.
struct Case {
    what: &'static str,
    config: String,
    domain: String,
    args: Vec<String>,
    code: i32,
    message: &'static str,
}

fn check_cases(d: &Path, cases: Vec<Case>) {
    let img = d.join("img");
    std::fs::write(&img, "x").unwrap();
    let watched = [d.join("img"), d.join("notadir"), d.join("fifo")];
    for c in cases {
        let before: Vec<_> = watched.iter().map(|p| snapshot(p)).collect();
        let cfg = d.join("case.toml");
        std::fs::write(&cfg, &c.config).unwrap();
        let dom = d.join("case-domain.toml");
        std::fs::write(&dom, &c.domain).unwrap();
        let args: Vec<String> = c
            .args
            .iter()
            .map(|a| {
                a.replace("{cfg}", cfg.to_str().unwrap())
                    .replace("{dom}", dom.to_str().unwrap())
                    .replace("{d}", d.to_str().unwrap())
            })
            .collect();
        let o = Command::new(svirt())
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(c.code), "{}: {}", c.what, err(&o));
        assert!(err(&o).contains(c.message), "{}: {}", c.what, err(&o));
        let after: Vec<_> = watched.iter().map(|p| snapshot(p)).collect();
        assert_eq!(before, after, "{}: nothing on disk changed", c.what);
        let domains = d.join("state/domains");
        assert!(
            c.code == 0
                || !domains.exists()
                || std::fs::read_dir(&domains).unwrap().next().is_none(),
            "{}: no domain recorded",
            c.what
        );
    }
}

#[test]
fn every_usage_and_configuration_error_exits_2_and_every_operation_failure_exits_1() {
    let test = "every_usage_and_configuration_error_exits_2_and_every_operation_failure_exits_1";
    if !root_or_skip(test) {
        return;
    }
    let d = tmp();
    let p = d.path();
    let dac = std::fs::read_to_string(dac_cfg(p, "uid_range = \"64000-64999\"")).unwrap();
    let dac_with = |extra: &str| std::fs::read_to_string(dac_cfg(p, extra)).unwrap();
    let selinux = format!(
        "state_dir = \"{}/state\"\n[[driver]]\ndriver = \"selinux\"\noffline = true\nmanager_context = \"system_u:system_r:virtd_t:s0-s0:c0.c1023\"\n",
        p.display()
    );
    let img = p.join("img");
    let disk = format!("name = \"v\"\n[[disk]]\npath = \"{}\"\n", img.display());
    std::fs::write(p.join("notadir"), "x").unwrap();
    nix::unistd::mkfifo(
        &p.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let start = args(&["--config", "{cfg}", "start", "{dom}"]);
    let case = |what, config: &str, domain: &str, a: Vec<String>, code, message| Case {
        what,
        config: config.to_owned(),
        domain: domain.to_owned(),
        args: a,
        code,
        message,
    };
    let cases = vec![
        case("shared group 0", &dac_with("uid_range = \"64000-64999\"\nshared_group = 0"), &disk, start.clone(), 2, "shared_group 0 is refused: it is root's group"),
        case("shared group of the system range", &dac_with("uid_range = \"64000-64999\"\nshared_group = 6"), &disk, start.clone(), 2, "system group range"),
        case("uid range with 0", &dac_with("uid_range = \"0-100\""), &disk, start.clone(), 2, "must not include 0 (root)"),
        case("uid range with 65534", &dac_with("uid_range = \"65000-65600\""), &disk, start.clone(), 2, "must not include 65534"),
        case("uid range with 4294967295", &dac_with("uid_range = \"4294967294-4294967295\""), &disk, start.clone(), 2, "HIGH does not fit"),
        case("uid range that does not fit", &dac_with("uid_range = \"64000-99999999999\""), &disk, start.clone(), 2, "HIGH does not fit"),
        case("uid range over an account", &dac_with("uid_range = \"900-1100\""), &disk, start.clone(), 2, "overlaps existing user alice"),
        case("static DAC label of root", &dac, &format!("{disk}[[seclabel]]\nmodel = \"dac\"\ntype = \"static\"\nlabel = \"+0:+0\"\n"), start.clone(), 2, "uid or gid 0 is root"),
        case("static DAC label of an account", &dac, &format!("{disk}[[seclabel]]\nmodel = \"dac\"\ntype = \"static\"\nlabel = \"alice:alice\"\n"), start.clone(), 2, "uid 1000 is the account alice"),
        case("static SELinux label outside the range", &selinux, &format!("{disk}[[seclabel]]\nmodel = \"selinux\"\ntype = \"static\"\nlabel = \"system_u:system_r:svirt_t:s9:c1,c2\"\n"), start.clone(), 2, "outside the manager's range"),
        case("image label outside the range", &selinux, &format!("{disk}[[seclabel]]\nmodel = \"selinux\"\ntype = \"static\"\nrelabel = true\nlabel = \"system_u:system_r:svirt_t:s0:c1,c2\"\nimagelabel = \"system_u:object_r:svirt_image_t:s9:c1,c2\"\n"), start.clone(), 2, "outside the manager's range"),
        case("per-disk label outside the range", &selinux, &format!("{disk}[[disk.seclabel]]\nmodel = \"selinux\"\nlabel = \"system_u:object_r:svirt_image_t:s9\"\n"), start.clone(), 2, "lies outside the manager's range s0-s0:c0.c1023"),
        case("relative state_dir", "state_dir = \"state\"\n[[driver]]\ndriver = \"none\"\n", &disk, start.clone(), 2, "state_dir state is relative"),
        case("relative --state-dir", &dac, &disk, args(&["--config", "{cfg}", "--state-dir", "rel", "start", "{dom}"]), 2, "state_dir rel is relative"),
        case("a regular file as a share", &dac, &format!("name = \"v\"\n[[filesystem]]\npath = \"{}\"\n", p.join("notadir").display()), start.clone(), 2, "it is a regular file, and a filesystem share must be a directory"),
        case("a FIFO as a share", &dac, &format!("name = \"v\"\n[[filesystem]]\npath = \"{}\"\n", p.join("fifo").display()), start.clone(), 2, "it is a FIFO, and a filesystem share must be a directory"),
        case("a directory as a disk", &dac, &format!("name = \"v\"\n[[disk]]\npath = \"{}\"\n", p.display()), start.clone(), 2, "it is a directory, and it must be a regular file or a block device"),
        case("a FIFO as the configuration", &dac, &disk, args(&["--config", "{d}/fifo", "verify", "{dom}"]), 2, "it is a FIFO, not a regular file"),
        case("a FIFO as the domain", &dac, &disk, args(&["--config", "{cfg}", "verify", "{d}/fifo"]), 2, "it is a FIFO, not a regular file"),
        case("a device as the domain", &dac, &disk, args(&["--config", "{cfg}", "verify", "/dev/zero"]), 2, "it is a character device, not a regular file"),
        case("unknown config key", "stat_dir = \"/x\"\n", &disk, start.clone(), 2, "stat_dir"),
        case("unknown domain key", &dac, "name = \"v\"\nnam = 1\n", start.clone(), 2, "nam"),
        case("bad domain name", &dac, "name = \"../x\"\n", start.clone(), 2, "invalid domain name"),
        case("missing config file", &dac, &disk, args(&["--config", "{d}/nope.toml", "verify", "{dom}"]), 2, "nope.toml"),
        case("unknown driver", "[[driver]]\ndriver = \"apparmor\"\n", &disk, start.clone(), 2, "apparmor"),
        case("model no driver provides", &dac, &format!("{disk}[[seclabel]]\nmodel = \"selinux\"\n"), start.clone(), 2, "which no configured driver provides"),
        case("bad context syntax", &selinux, &format!("{disk}[[seclabel]]\nmodel = \"selinux\"\ntype = \"static\"\nlabel = \"garbage\"\n"), start.clone(), 2, "garbage"),
        case("an unconfined domain where confinement is required", &format!("require_confined = true\n{dac}"), &format!("{disk}[[seclabel]]\nmodel = \"dac\"\ntype = \"none\"\n"), start.clone(), 2, "would run unconfined"),
        case("a category range too small", &selinux.replace("c0.c1023", "c0.c3"), &disk, start.clone(), 2, "at least 8 are needed"),
        case("no command for run", &dac, &disk, args(&["--config", "{cfg}", "run"]), 2, "required"),
        case("stop of an unknown domain", &dac, &disk, args(&["--config", "{cfg}", "stop", "nosuch"]), 1, "no domain named nosuch is running"),
        case("a missing disk", &dac, &format!("name = \"v\"\n[[disk]]\npath = \"{}/missing.img\"\n", p.display()), start.clone(), 1, "missing.img"),
        case("exec of an unknown domain", &dac, &disk, args(&["--config", "{cfg}", "exec", "nosuch", "--", "true"]), 1, "nosuch"),
    ];
    let mut cases = cases;
    if svirt_selinux::Kernel::mode(&svirt_selinux::LibSelinux).is_none() {
        cases.push(case(
            "SELinux without offline on a kernel without it",
            &selinux.replace("offline = true\n", ""),
            &disk,
            start.clone(),
            2,
            "SELinux is not enabled in this kernel",
        ));
    }
    check_cases(p, cases);
    // The same domain twice is an operation failure too: it is already running.
    std::fs::write(p.join("case.toml"), &dac).unwrap();
    std::fs::write(p.join("twice.toml"), &disk).unwrap();
    let cfg = p.join("case.toml");
    let o = run(&cfg, &["start", p.join("twice.toml").to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    let o = run(&cfg, &["start", p.join("twice.toml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("already running"));
    assert!(run(&cfg, &["stop", "v"]).status.success());
}

#[test]
fn a_libvirt_domain_with_two_names_is_refused_with_exit_2() {
    let d = tmp();
    let cfg = d.path().join("none.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}/state\"\n[[driver]]\ndriver = \"none\"\n",
            d.path().display()
        ),
    )
    .unwrap();
    let x = d.path().join("two.xml");
    std::fs::write(&x, "<domain><name>a</name><name>b</name></domain>").unwrap();
    let o = run(&cfg, &["verify", x.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).contains("<name> appears more than once"),
        "{}",
        err(&o)
    );
    std::fs::write(
        &x,
        "<domain><name>a</name><uuid>1</uuid><uuid>2</uuid></domain>",
    )
    .unwrap();
    let o = run(&cfg, &["verify", x.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).contains("<uuid> appears more than once"),
        "{}",
        err(&o)
    );
}

#[test]
fn input_files_are_capped_and_stdin_is_read_only_when_named() {
    let d = tmp();
    let cfg = d.path().join("none.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}/state\"\n[[driver]]\ndriver = \"none\"\n",
            d.path().display()
        ),
    )
    .unwrap();
    let big = d.path().join("big.toml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(16 * 1024 * 1024 + 1).unwrap();
    let t = std::time::Instant::now();
    let o = run(&cfg, &["verify", big.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).contains("it is larger than the limit of 16777216 bytes"),
        "{}",
        err(&o)
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    // `-` reads standard input, XML or TOML by its first character.
    for (text, name) in [
        ("name = \"piped\"\n", "piped"),
        ("<domain><name>px</name></domain>", "px"),
    ] {
        use std::io::Write;
        let mut c = Command::new(svirt())
            .arg("--config")
            .arg(&cfg)
            .args(["verify", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", err(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).starts_with(&format!("{name}: valid")),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}

#[test]
fn inside_a_user_namespace_the_dac_driver_says_it_needs_the_initial_one() {
    let test = "inside_a_user_namespace_the_dac_driver_says_it_needs_the_initial_one";
    if !root_or_skip(test) {
        return;
    }
    if !Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        skip(test, "cannot make a user namespace here");
        return;
    }
    let d = tmp();
    let cfg = dac_cfg(d.path(), "uid_range = \"64000-64999\"");
    let img = d.path().join("img");
    std::fs::write(&img, "x").unwrap();
    let before = snapshot(&img);
    let dom = d.path().join("v.toml");
    std::fs::write(
        &dom,
        format!("name = \"v\"\n[[disk]]\npath = \"{}\"\n", img.display()),
    )
    .unwrap();
    let o = Command::new("unshare")
        .args(["--user", "--map-root-user", "--"])
        .arg(svirt())
        .arg("--config")
        .arg(&cfg)
        .arg("start")
        .arg(&dom)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).contains("needs the initial user namespace: a real uid change"),
        "{}",
        err(&o)
    );
    assert_eq!(snapshot(&img), before);
}

#[test]
fn run_treats_sigquit_and_every_other_terminating_signal_like_sigterm() {
    let test = "run_treats_sigquit_and_every_other_terminating_signal_like_sigterm";
    if !root_or_skip(test) {
        return;
    }
    use nix::sys::signal::Signal;
    for sig in [Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGALRM] {
        let d = tmp();
        let cfg = dac_config(d.path());
        let img = d.path().join("r.img");
        std::fs::write(&img, "x").unwrap();
        let before = owner(&img);
        // A directory the VM uid cannot write, so SIGQUIT leaves no core file behind.
        let mut child = Command::new(svirt())
            .current_dir(d.path())
            .arg("--config")
            .arg(&cfg)
            .args(["run", "--name", "sig", "--rw", img.to_str().unwrap()])
            .args(["--", &system_tool("sleep"), "30"])
            .spawn()
            .unwrap();
        let started = || owner(&img) != before;
        for _ in 0..200 {
            if started() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(started(), "{sig}: svirt run took the image");
        // Wait until the command runs (its pid is recorded), then signal svirt.
        for _ in 0..100 {
            let st = run(&cfg, &["--json", "status", "sig"]);
            let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap_or_default();
            if v["domains"][0]["pid"].is_u64() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(128 + sig as i32),
            "{sig}: svirt exits with the command's status (killed by the forwarded signal)"
        );
        assert_eq!(owner(&img), before, "{sig}: restored");
        let st = run(&cfg, &["--json", "status"]);
        let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        assert!(
            v["domains"].as_array().unwrap().is_empty(),
            "{sig}: stopped"
        );
    }
}

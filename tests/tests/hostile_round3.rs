//! Hostile round 3: what a guest (or the host around it) gets past the Landlock ruleset's
//! per-resource checks and the hard-link rule: a directory share hands the VMM every name,
//! device node and mount below it, a second mount of a system directory is not a system path,
//! and svirt's own state database is a valid disk.
//!
//! Every test works on temp trees; the ones that mount do so in a private mount namespace over
//! decoys, so the host's own /etc is never touched.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use svirt_tests::*;

const LANDLOCK: &str = "[[driver]]\ndriver = \"landlock\"\n";
const DAC_LANDLOCK: &str = "[[driver]]\ndriver = \"dac\"\nuid_range = \"64000-64999\"\n\
                            [[driver]]\ndriver = \"landlock\"\n";
const DAC: &str = "[[driver]]\ndriver = \"dac\"\nuid_range = \"64000-64999\"\n";

/// A temp dir others can traverse, with `svirt.toml` (state in `DIR/state`, then `drivers`).
fn setup(drivers: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tmp();
    let cfg = d.path().join("svirt.toml");
    std::fs::write(
        &cfg,
        format!("state_dir = \"{}/state\"\n{drivers}", d.path().display()),
    )
    .unwrap();
    (d, cfg)
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

fn write(p: &Path, content: &str, mode: u32) {
    std::fs::write(p, content).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A domain file `DIR/NAME.toml`.
fn domain(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, format!("name = \"{name}\"\n{body}")).unwrap();
    p
}

/// `svirt exec NAME -- bash -c SCRIPT`: everything the VMM printed.
fn exec_sh(cfg: &Path, name: &str, script: &str) -> String {
    let o = Command::new(svirt())
        .env("PATH", SYSTEM_PATH)
        .arg("--config")
        .arg(cfg)
        .args(["exec", name, "--", "/bin/bash", "-c", script])
        .output()
        .unwrap();
    text(&o)
}

fn mknod(p: &Path, kind: rustix::fs::FileType, major: u32, minor: u32, mode: u32) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        kind,
        rustix::fs::Mode::from_raw_mode(mode),
        rustix::fs::makedev(major, minor),
    )
    .unwrap_or_else(|e| panic!("mknod {}: {e}", p.display()));
}

/// A loop device over a file, detached when dropped.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// Finding 1: The hard-link rule says a share file with a name outside the share is "never changed
/// through the share", and DAC indeed leaves it out. The Landlock rule for the share is
/// `PathBeneath(share)`, which covers every name below it, that one included: a hard link in
/// the share to another VM's image (world-writable, so Landlock is the only wall, as in
/// `with_dac_stacked_both_walls_hold`) lets the VMM read and write that image, while the same
/// image under its own name is denied.
#[test]
fn a_share_file_with_a_name_outside_the_share_is_not_reachable_under_landlock() {
    let test = "a_share_file_with_a_name_outside_the_share_is_not_reachable_under_landlock";
    if !landlock_or_skip(test) {
        return;
    }
    let (d, cfg) = setup(DAC_LANDLOCK);
    let share = d.path().join("share");
    std::fs::create_dir(&share).unwrap();
    write(&share.join("a"), "a\n", 0o644);
    let other = d.path().join("other.img");
    write(&other, "other VM's data\n", 0o666);
    std::fs::hard_link(&other, share.join("link.img")).unwrap();
    let dom = domain(
        d.path(),
        "l",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    let o = run(&cfg, &["--json", "start", dom.to_str().unwrap()]);
    if !o.status.success() {
        // Refused before anything changed, naming the link.
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            text(&o).contains("link.img") && text(&o).contains("name outside the share"),
            "{}",
            text(&o)
        );
        assert_eq!(owner(&share.join("a")), "0:0 644");
        assert_eq!(
            std::fs::read_to_string(&other).unwrap(),
            "other VM's data\n"
        );
        return;
    }
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let excluded = j["resources"].to_string();
    let out = exec_sh(
        &cfg,
        "l",
        &format!(
            "cat {o} && echo READ-OTHER-DIRECTLY; cat {s}/link.img && echo READ-VIA-SHARE; \
             echo overwritten-by-vm-l > {s}/link.img && echo WROTE-VIA-SHARE; echo end",
            o = other.display(),
            s = share.display()
        ),
    );
    run(&cfg, &["stop", "l"]);
    assert!(out.contains("end"), "{out}");
    assert!(!out.contains("READ-OTHER-DIRECTLY"), "{out}");
    assert!(
        !out.contains("READ-VIA-SHARE") && !out.contains("WROTE-VIA-SHARE"),
        "DAC left share/link.img out ({excluded}), yet Landlock handed it to the VMM: {out}"
    );
    assert_eq!(
        std::fs::read_to_string(&other).unwrap(),
        "other VM's data\n"
    );
}

/// Finding 2: `raw_host_access` refuses the host's memory and I/O ports (1:1, 1:2, 1:4) as a Landlock
/// resource "by number, so a mknod copy elsewhere is the same device"; a copy inside a
/// directory share is never looked at, and the share's write grant covers opening device nodes.
/// Neither is a block device node: a copy of a host block device inside a share (a shared
/// container rootfs, a chroot with its /dev) gives the VMM the raw disk. Landlock alone runs
/// the VMM as root, so file modes do not stop it. The test reads a loop device over a temp file
/// through such a copy (the device's own path is denied) and opens copies of /dev/mem and
/// /dev/port: Landlock must refuse them (EACCES), not the device driver (ENXIO here).
#[test]
fn device_nodes_inside_a_share_are_not_opened_by_the_vmm() {
    let test = "device_nodes_inside_a_share_are_not_opened_by_the_vmm";
    if !landlock_or_skip(test) {
        return;
    }
    let (d, cfg) = setup(LANDLOCK);
    let share = d.path().join("share");
    std::fs::create_dir(&share).unwrap();
    use rustix::fs::FileType as T;
    mknod(&share.join("mem"), T::CharacterDevice, 1, 1, 0o600);
    mknod(&share.join("port"), T::CharacterDevice, 1, 4, 0o600);
    // A "host disk": a loop device over a temp file with a known first sector.
    let backing = d.path().join("hostdisk.raw");
    write(&backing, "HOST-DISK-SECRET\n", 0o600);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&backing)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let lo = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&backing)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| Loop(String::from_utf8_lossy(&o.stdout).trim().to_owned()));
    if let Some(l) = &lo {
        let m = std::fs::metadata(&l.0).unwrap();
        use std::os::unix::fs::MetadataExt;
        let rdev = m.rdev();
        mknod(
            &share.join("disk"),
            T::BlockDevice,
            rustix::fs::major(rdev),
            rustix::fs::minor(rdev),
            0o600,
        );
    }
    let dom = domain(
        d.path(),
        "dv",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    let o = run(&cfg, &["start", dom.to_str().unwrap()]);
    if !o.status.success() {
        // Refused before the VMM could run, naming a device node.
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("a device node"), "{}", text(&o));
        return;
    }
    let loopdev = lo
        .as_ref()
        .map_or("/nonexistent".to_owned(), |l| l.0.clone());
    let out = exec_sh(
        &cfg,
        "dv",
        &format!(
            "head -c 16 {l} && echo READ-LOOP-DIRECTLY; \
             [ -e {s}/disk ] && head -c 16 {s}/disk && echo READ-VIA-SHARE; \
             (exec 3<{s}/mem) 2>&1; (exec 3<{s}/port) 2>&1; echo end",
            l = loopdev,
            s = share.display()
        ),
    );
    run(&cfg, &["stop", "dv"]);
    drop(lo);
    assert!(out.contains("end"), "{out}");
    assert!(!out.contains("READ-LOOP-DIRECTLY"), "{out}");
    assert!(
        !out.contains("HOST-DISK-SECRET"),
        "the VMM read a host block device through a node in its share: {out}"
    );
    for dev in ["mem", "port"] {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("/{dev}")))
            .unwrap_or("");
        assert!(
            line.contains("Permission denied"),
            "Landlock let the VMM open a copy of /dev/{dev} inside its share (the open reached \
             the device driver): {line:?}\n{out}"
        );
    }
}

/// Finding 3: The share walk never crosses a mount point inside a share ("a bind mount of /etc, say":
/// `a_mount_inside_a_share_is_reported_and_never_crossed`) and reports it as excluded. The
/// Landlock rule on the share does cross it: everything mounted below the share is granted
/// read-write. Here a host directory bound inside the share (its file world-writable, so
/// Landlock is the only wall) is read and written by the VMM, while the same file by its own
/// path is denied.
#[test]
fn a_mount_point_inside_a_share_is_not_reachable_under_landlock() {
    let test = "a_mount_point_inside_a_share_is_not_reachable_under_landlock";
    if !landlock_or_skip(test) || !ns_ready(test) {
        return;
    }
    let (d, cfg) = setup(DAC_LANDLOCK);
    let share = d.path().join("share");
    std::fs::create_dir_all(share.join("inner")).unwrap();
    write(&share.join("a"), "a\n", 0o644);
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = outside.join("hostfile");
    write(&secret, "host data\n", 0o666);
    let dom = domain(
        d.path(),
        "mp",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    let script = format!(
        "cat {sec} && echo READ-DIRECTLY; cat {s}/inner/hostfile && echo READ-VIA-MOUNT; \
         echo changed-by-vm > {s}/inner/hostfile && echo WROTE-VIA-MOUNT; echo end",
        sec = secret.display(),
        s = share.display()
    );
    let o = in_private_mounts(
        "mount -n --bind \"$1\" \"$2/inner\"
         \"$3\" --config \"$4\" start \"$5\" || { echo refused=$?; exit 0; }
         PATH=/usr/bin:/bin \"$3\" --config \"$4\" exec mp -- /bin/bash -c \"$6\" || true
         \"$3\" --config \"$4\" stop mp",
        &[
            outside.to_str().unwrap(),
            share.to_str().unwrap(),
            svirt().to_str().unwrap(),
            cfg.to_str().unwrap(),
            dom.to_str().unwrap(),
            &script,
        ],
    )
    .unwrap();
    let out = text(&o);
    if out.contains("refused=") {
        // Refused before the VMM could run, naming the mount point.
        assert!(
            out.contains("refused=2") && out.contains("a mount point"),
            "{out}"
        );
    }
    assert!(!out.contains("READ-DIRECTLY"), "{out}");
    assert!(
        !out.contains("READ-VIA-MOUNT") && !out.contains("WROTE-VIA-MOUNT"),
        "the share's walk excluded the mount point, Landlock granted it: {out}"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host data\n");
}

/// Finding 4: The denylist judges the resolved path only. A system directory mounted a second time
/// (OSTree's `/sysroot/ostree/deploy/OS/deploy/HASH/etc` is the live /etc; a rescue or
/// container tool's bind mount; the root filesystem mounted again under /mnt/X) is not a
/// system path by name, and no check compares what was opened with /etc itself: a disk that
/// is /etc/shadow through such a mount is chowned to the VM's uid with mode 0600 (the VM
/// can now read and write the host's password hashes), and a share that is /etc through it has
/// every file of /etc given to the VM. Run over a decoy /etc in a private mount namespace.
#[test]
fn a_system_directory_reached_through_another_mount_is_refused() {
    let test = "a_system_directory_reached_through_another_mount_is_refused";
    if !ns_ready(test) {
        return;
    }
    let (d, cfg) = setup(DAC);
    let decoy = d.path().join("decoy-etc");
    std::fs::create_dir(&decoy).unwrap();
    write(&decoy.join("shadow"), "root:*:1::::::\n", 0o640);
    write(&decoy.join("passwd"), "root:x:0:0::/root:/bin/sh\n", 0o644);
    let deploy = d.path().join("sysroot/ostree/deploy/os/deploy/abc/etc");
    std::fs::create_dir_all(&deploy).unwrap();
    let before = snapshot(&decoy);
    let disk = domain(
        d.path(),
        "sd",
        &format!("[[disk]]\npath = \"{}/shadow\"\n", deploy.display()),
    );
    let share = domain(
        d.path(),
        "se",
        &format!("[[filesystem]]\npath = \"{}\"\n", deploy.display()),
    );
    for dom in [&disk, &share] {
        // /etc in the namespace is the decoy; `deploy` is a second mount of it.
        let o = in_private_mounts(
            "mount -n --bind \"$1\" /etc
             mount -n --bind /etc \"$2\"
             stat -c '%d:%i' /etc/shadow \"$2/shadow\"
             rc=0; \"$3\" --config \"$4\" start \"$5\" || rc=$?
             ls -ln /etc/shadow
             echo rc=$rc",
            &[
                decoy.to_str().unwrap(),
                deploy.to_str().unwrap(),
                svirt().to_str().unwrap(),
                cfg.to_str().unwrap(),
                dom.to_str().unwrap(),
            ],
        )
        .unwrap();
        let out = text(&o);
        let after = snapshot(&decoy);
        // Leave nothing held by a domain that touched the decoy.
        for name in ["sd", "se"] {
            in_private_mounts(
                "mount -n --bind \"$1\" /etc; mount -n --bind /etc \"$2\"; \
                 \"$3\" --config \"$4\" stop \"$5\" || true",
                &[
                    decoy.to_str().unwrap(),
                    deploy.to_str().unwrap(),
                    svirt().to_str().unwrap(),
                    cfg.to_str().unwrap(),
                    name,
                ],
            );
        }
        assert!(
            out.contains("rc=2") && out.contains("refusing"),
            "{} was not refused: {out}",
            dom.display()
        );
        assert_eq!(
            after, before,
            "/etc changed through its second mount: {out}"
        );
    }
}

/// Finding 5: svirt's own state directory is a valid resource: only `/var/lib/svirt` itself is on the
/// denylist, not what is inside it (`/var/lib/svirt/svirt.db`, `-wal`, `svirt.lock`), nor a
/// configured `state_dir`. A domain whose disk is the database, or whose share is the state
/// directory, gets svirt's database chowned to its uid. The guest then rewrites it: here it
/// deletes another running VM's uid reservation and rewinds the pool, and the next VM started
/// gets that same uid (and so the first VM's disk). Every original and every identity svirt
/// keeps is the guest's to edit.
#[test]
fn svirt_state_database_is_never_handed_to_a_vm() {
    let test = "svirt_state_database_is_never_handed_to_a_vm";
    if !root_or_skip(test) {
        return;
    }
    if !Path::new("/usr/bin/python3").exists() {
        return skip(
            test,
            "needs /usr/bin/python3 (with sqlite3) to play the guest",
        );
    }
    let (d, cfg) = setup(DAC);
    let state = d.path().join("state");
    for (name, body) in [("v1", "one\n"), ("v3", "three\n")] {
        write(&d.path().join(format!("{name}.img")), body, 0o644);
    }
    let v1 = domain(
        d.path(),
        "v1",
        &format!("[[disk]]\npath = \"{}/v1.img\"\n", d.path().display()),
    );
    let v3 = domain(
        d.path(),
        "v3",
        &format!("[[disk]]\npath = \"{}/v3.img\"\n", d.path().display()),
    );
    let o = run(&cfg, &["start", v1.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let wal = domain(
        d.path(),
        "sw",
        &format!("[[disk]]\npath = \"{}/svirt.db-wal\"\n", state.display()),
    );
    let sdir = domain(
        d.path(),
        "st",
        &format!("[[filesystem]]\npath = \"{}\"\n", state.display()),
    );
    let o = run(&cfg, &["start", wal.to_str().unwrap()]);
    let wal_out = text(&o);
    let wal_started = o.status.success();
    if wal_started {
        run(&cfg, &["stop", "sw"]);
    }
    let o = run(&cfg, &["start", sdir.to_str().unwrap()]);
    let st_out = text(&o);
    if o.status.success() {
        // The guest of `st` (the state directory's new owner) edits svirt's database.
        let j: serde_json::Value =
            serde_json::from_slice(&run(&cfg, &["--json", "status", "st"]).stdout).unwrap();
        let uid: u32 = j["domains"][0]["labels"][0]["label"].as_str().unwrap()[1..6]
            .parse()
            .unwrap();
        as_guest(
            uid,
            &[],
            &format!(
                "/usr/bin/python3 -c \"import sqlite3; c = sqlite3.connect('{}/svirt.db'); \
                 c.execute(\\\"delete from ids where holder = 'v1'\\\"); \
                 c.execute('update id_pools set next = 64000'); c.commit()\"",
                state.display()
            ),
        );
        let o = run(&cfg, &["start", v3.to_str().unwrap()]);
        let v1_owner = owner(&d.path().join("v1.img"));
        let v3_owner = owner(&d.path().join("v3.img"));
        for n in ["v3", "st", "v1"] {
            run(&cfg, &["stop", n]);
        }
        panic!(
            "svirt's state directory was given to VM st ({st_out}); its guest rewrote the \
             database and the next VM got v1's uid: v1.img {v1_owner}, v3.img {v3_owner} ({})",
            text(&o)
        );
    }
    run(&cfg, &["stop", "v1"]);
    assert!(
        !wal_started,
        "svirt's write-ahead log was given to VM sw as its disk: {wal_out}"
    );
}

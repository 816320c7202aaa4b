//! Hostile round 4: the static DAC label reclaim, the start generation in `svirt.lock`, and the
//! inode-based protection of svirt's state directory.
//!
//! Every test works on temp trees as root; nothing of the host's is chowned.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use svirt_tests::*;

/// Two domains that run under one static DAC label (two VMs of one tenant, say). Guest A links
/// a file of B's share (B's uid owns it while B runs, and it is A's uid too) into A's share.
/// At A's stop, the link is "an entry carrying A's static uid" and is reclaimed: B's file, while
/// B still runs, is chowned to the owner of A's share root: a different host user (1234) gets a
/// file of user 1000 that was only lent to VM B, and B's guest loses it mid-run.
#[test]
fn a_static_label_stop_never_takes_a_file_of_another_running_domains_share() {
    if !root_or_skip("a_static_label_stop_never_takes_a_file_of_another_running_domains_share") {
        return;
    }
    const STATIC: u32 = 70321;
    let h = Stack::new(true);
    let sa = h.p("sa");
    std::fs::create_dir_all(&sa).unwrap();
    std::os::unix::fs::chown(&sa, Some(1234), Some(1235)).unwrap();
    let secret = owned_file(&h, "sb/secret", 1000, 0o600);
    let sb = h.p("sb");
    std::os::unix::fs::chown(&sb, Some(1000), Some(1000)).unwrap();
    let body = |share: &Path| {
        format!(
            "[[seclabel]]\nmodel = \"dac\"\ntype = \"static\"\nlabel = \"+{STATIC}:+{STATIC}\"\n\
             relabel = true\n[[filesystem]]\npath = \"{}\"\n",
            share.display()
        )
    };
    let a = h.domain("a", &body(&sa));
    let b = h.domain("b", &body(&sb));
    h.ok(&["start", a.to_str().unwrap()]);
    h.ok(&["start", b.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&secret).unwrap().uid(), STATIC);
    // Guest A (the same uid) makes a second name of B's file in its own share.
    as_guest(
        STATIC,
        &[],
        &format!("ln {} {}/link", secret.display(), sa.display()),
    );
    let out = h.ok(&["stop", "a"]);
    // B still runs: its file must still be its VM's, not handed to A's share owner.
    let m = std::fs::metadata(&secret).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (STATIC, STATIC),
        "stopping A gave a file of running B's share (user 1000's) to A's share owner: {}\n{out}",
        owner(&secret)
    );
    h.ok(&["stop", "b"]);
}

/// A domain whose static label's gid is another domain's static uid/gid (allowed: neither is a
/// passwd/group account). B's guest keeps its share group-accessible (chmod 770, umask 002); guest A
/// (gid 70401) may read and write it, so it hard-links it into its own share. A's stop counts
/// "gid == A's own static gid" as A's and reclaims the file of running B for A's share owner.
#[test]
fn a_static_gid_never_makes_another_domains_file_reclaimable() {
    if !root_or_skip("a_static_gid_never_makes_another_domains_file_reclaimable") {
        return;
    }
    let h = Stack::new(true);
    let sa = h.p("sa");
    std::fs::create_dir_all(&sa).unwrap();
    std::os::unix::fs::chown(&sa, Some(1234), Some(1235)).unwrap();
    let sb = h.p("sb");
    std::fs::create_dir_all(&sb).unwrap();
    std::os::unix::fs::chown(&sb, Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(&sb, std::fs::Permissions::from_mode(0o755)).unwrap();
    let body = |label: &str, share: &Path| {
        format!(
            "[[seclabel]]\nmodel = \"dac\"\ntype = \"static\"\nlabel = \"{label}\"\n\
             relabel = true\n[[filesystem]]\npath = \"{}\"\n",
            share.display()
        )
    };
    let a = h.domain("a", &body("+70400:+70401", &sa));
    let b = h.domain("b", &body("+70401:+70401", &sb));
    h.ok(&["start", a.to_str().unwrap()]);
    h.ok(&["start", b.to_str().unwrap()]);
    // Guest B shares its data with its group (gid 70401), as a umask-002 guest does.
    as_guest(
        70401,
        &[],
        &format!(
            "cd {} && chmod 770 . && umask 002 && echo b-data > data",
            sb.display()
        ),
    );
    let data = sb.join("data");
    assert_eq!(owner(&data), "70401:70401 664");
    let st = Command::new("/usr/bin/setpriv")
        .args([
            "--reuid=70400",
            "--regid=70401",
            "--clear-groups",
            "/bin/sh",
            "-c",
            &format!("ln {} {}/link", data.display(), sa.display()),
        ])
        .env("PATH", SYSTEM_PATH)
        .status()
        .unwrap();
    assert!(st.success());
    let out = h.ok(&["stop", "a"]);
    assert_eq!(
        owner(&data),
        "70401:70401 664",
        "stopping A took running B's file (matched by A's static gid) for A's share owner\n{out}"
    );
    h.ok(&["stop", "b"]);
}

/// The start generation lives in `svirt.lock`, in the same directory as the database. A state
/// directory that lost its WAL (the database back at an earlier state) and whose lock file was
/// removed or truncated too (a cleanup of "stale lock files", a restore of the directory from a
/// backup without it) reads generation 0: the rolled-back database, already marked reconciled,
/// is trusted and hands a running VM's uid to the next domain.
#[test]
fn a_rolled_back_database_with_a_lost_lock_file_never_hands_out_a_running_vms_uid() {
    if !root_or_skip(
        "a_rolled_back_database_with_a_lost_lock_file_never_hands_out_a_running_vms_uid",
    ) {
        return;
    }
    for lock in ["deleted", "truncated"] {
        let h = Stack::new(true);
        let state = h.p("state");
        let w = h.domain("warm", "");
        h.ok(&["start", w.to_str().unwrap()]);
        h.ok(&["stop", "warm"]);
        let old = h.p("old");
        std::fs::create_dir(&old).unwrap();
        for f in ["svirt.db", "svirt.db-wal"] {
            if state.join(f).exists() {
                std::fs::copy(state.join(f), old.join(f)).unwrap();
            }
        }
        let disk = owned_file(&h, "disk.img", 1001, 0o644);
        let dom = h.domain("a", &format!("[[disk]]\npath = \"{}\"\n", disk.display()));
        h.ok(&["start", dom.to_str().unwrap()]);
        let uid = uid_of(&h, "a");
        let mut vmm = vm_process(uid);
        for f in ["svirt.db", "svirt.db-wal", "svirt.db-shm"] {
            let _ = std::fs::remove_file(state.join(f));
            if old.join(f).exists() {
                std::fs::copy(old.join(f), state.join(f)).unwrap();
            }
        }
        match lock {
            "deleted" => std::fs::remove_file(state.join("svirt.lock")).unwrap(),
            _ => std::fs::write(state.join("svirt.lock"), b"").unwrap(),
        }
        let mut handed = Vec::new();
        for i in 0..3 {
            let d = h.domain(&format!("n{i}"), "");
            h.ok(&["start", d.to_str().unwrap()]);
            handed.push(uid_of(&h, &format!("n{i}")));
        }
        vmm.kill().unwrap();
        vmm.wait().unwrap();
        assert!(
            !handed.contains(&uid),
            "WAL lost and lock file {lock}: the running VM's uid {uid} was handed out: {handed:?}"
        );
    }
}

/// Garbage in `svirt.lock` (its first 8 bytes all 0xff, as a stray write or a hostile local
/// process with write access leaves it): the generation arithmetic overflows and every start
/// fails (a panic in a debug build, a wrap to 0 in release that forgets the generation).
#[test]
fn garbage_in_the_lock_file_never_breaks_a_start() {
    if !root_or_skip("garbage_in_the_lock_file_never_breaks_a_start") {
        return;
    }
    let h = Stack::new(true);
    let w = h.domain("warm", "");
    h.ok(&["start", w.to_str().unwrap()]);
    h.ok(&["stop", "warm"]);
    std::fs::write(h.p("state/svirt.lock"), [0xffu8; 8]).unwrap();
    let d = h.domain("n", "");
    let o = h.svirt(&["start", d.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "a start fails on a lock file holding garbage: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The state directory named through a symlink (`/var/lib/svirt` -> `/data/x/y/svirt` is a
/// common layout). `Protected` collects "directories above the state dir" by walking the
/// configured *path*'s ancestors, not the real ones: a share of a real ancestor that the path
/// does not name (here `real/a`) holds the state directory and is not refused. The walk then
/// hands svirt.db to the VM's uid, and the guest rewrites the reservations.
#[test]
fn a_share_holding_the_state_dir_is_refused_when_the_state_dir_is_named_through_a_symlink() {
    if !root_or_skip(
        "a_share_holding_the_state_dir_is_refused_when_the_state_dir_is_named_through_a_symlink",
    ) {
        return;
    }
    let d = tmp();
    let root = d.path();
    let real = root.join("real/a/b");
    std::fs::create_dir_all(&real).unwrap();
    std::os::unix::fs::symlink(&real, root.join("link")).unwrap();
    let cfg = root.join("svirt.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}/link/state\"\n[[driver]]\ndriver = \"dac\"\nuid_range = \"64000-64999\"\n",
            root.display()
        ),
    )
    .unwrap();
    // A first start creates the state dir (at real/a/b/state).
    let w = root.join("warm.toml");
    std::fs::write(&w, "name = \"warm\"\n").unwrap();
    let o = run(&cfg, &["start", w.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    assert!(run(&cfg, &["stop", "warm"]).status.success());
    let db = real.join("state/svirt.db");
    assert!(db.exists());
    let share = root.join("real/a");
    let dom = root.join("s.toml");
    std::fs::write(
        &dom,
        format!(
            "name = \"s\"\n[[filesystem]]\npath = \"{}\"\n",
            share.display()
        ),
    )
    .unwrap();
    let o = run(&cfg, &["start", dom.to_str().unwrap()]);
    let db_owner = owner(&db);
    if o.status.success() {
        let _ = run(&cfg, &["stop", "s"]);
    }
    assert!(
        !o.status.success(),
        "a share holding svirt's state dir (reached by its real path) was handed over; svirt.db \
         was {db_owner} while it ran\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("state"), "the refusal names the state dir: {e}");
}

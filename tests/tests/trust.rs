//! Restore you can trust, on real files as root with SELinux (offline) and DAC stacked: a guest
//! that renames, replaces, chmods and plants files in what it was given, a disk swapped for a
//! symlink, a restore that cannot finish, a lost state database, and a full state filesystem.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use svirt_tests::*;

const ORIG: &str = "system_u:object_r:default_t:s0";
const UIDS: std::ops::RangeInclusive<u32> = 64000..=64999;

/// Every entry under `root` (root included) that still carries a VM's uid or an MCS pair.
fn vm_leftovers(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let l = label(&p);
        if UIDS.contains(&m.uid()) || UIDS.contains(&m.gid()) || l.contains(":c") {
            out.push(format!("{} {} {l}", p.display(), owner(&p)));
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

fn setuid_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            out.extend(setuid_files(&p));
        } else if m.mode() & 0o6000 != 0 {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_setuid_binary_planted_through_a_share_never_comes_back_setuid() {
    if !root_or_skip("a_setuid_binary_planted_through_a_share_never_comes_back_setuid") {
        return;
    }
    let h = Stack::new(true);
    let tool = owned_file(&h, "share/bin/tool", 0, 0o4755);
    let other = owned_file(&h, "share/bin/other", 0, 0o4755);
    let share = h.p("share");
    let dom = h.domain(
        "g",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(&h, "g");
    // The guest owns its share while it runs: it moves the setuid binary aside and puts its
    // own program in its place.
    as_guest(
        uid,
        &[],
        &format!(
            "cd {} && mv tool tool.orig && cp /usr/bin/id tool && chmod 700 tool \
             && cat /usr/bin/id > other",
            tool.parent().unwrap().display()
        ),
    );
    let out = h.ok(&["stop", "g"]);
    // The guest's file is the share owner's now, and not setuid.
    let planted = std::fs::symlink_metadata(&tool).unwrap();
    assert_eq!(planted.uid(), 0, "{out}");
    assert_eq!(planted.mode() & 0o6000, 0, "{}: {out}", owner(&tool));
    // The original binary was renamed: it is found by inode and gets its owner back, but its
    // setuid bit only if nobody touched it; a rename moves its ctime, so it stays off.
    let orig = h.p("share/bin/tool.orig");
    assert_eq!(owner(&orig), "0:0 755", "{out}");
    assert_eq!(label(&orig), ORIG);
    assert!(out.contains("tool.orig"), "the move is reported: {out}");
    // The other one was overwritten in place: same inode, new content; owner back, no setuid.
    assert_eq!(owner(&other), "0:0 755", "{out}");
    assert!(setuid_files(&share).is_empty());
    assert!(
        vm_leftovers(&share).is_empty(),
        "{:?}",
        vm_leftovers(&share)
    );
    // Run as nobody, the planted file gives no euid 0.
    let o = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&tool)
        .env("PATH", SYSTEM_PATH)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains("euid=0"));
}

/// A static DAC label's uid is outside the pool, but it is the VM's identity all the same: what
/// the guest created or replaced in its share must not keep it (a setuid binary of that uid
/// lets any host user act as the VM, and reach its disks the next time it runs).
#[test]
fn a_static_uids_leftovers_in_its_share_are_taken_back_like_a_pool_uids() {
    if !root_or_skip("a_static_uids_leftovers_in_its_share_are_taken_back_like_a_pool_uids") {
        return;
    }
    const STATIC: u32 = 70123;
    let h = Stack::new(true);
    let share = h.p("share");
    let kept = owned_file(&h, "share/kept", 1000, 0o644);
    let replaced = owned_file(&h, "share/replaced", 0, 0o4755);
    std::os::unix::fs::chown(&share, Some(1234), Some(1235)).unwrap();
    let dom = h.domain(
        "st",
        &format!(
            "[[seclabel]]\nmodel = \"dac\"\ntype = \"static\"\nlabel = \"+{STATIC}:+{STATIC}\"\n\
             relabel = true\n[[filesystem]]\npath = \"{}\"\n",
            share.display()
        ),
    );
    h.ok(&["start", dom.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&kept).unwrap().uid(), STATIC);
    as_guest(
        STATIC,
        &[],
        &format!(
            "cd {} && rm replaced && cp /usr/bin/id replaced && chmod 4755 replaced \
             && cp /usr/bin/id setgid && chmod 6755 setgid && mkdir dir && echo x > dir/f",
            share.display()
        ),
    );
    let out = h.ok(&["stop", "st"]);
    assert_eq!(owner(&kept), "1000:1000 644", "{out}");
    let _ = replaced;
    let mut left = Vec::new();
    let mut stack = vec![share.clone()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.uid() == STATIC || m.gid() == STATIC || m.mode() & 0o6000 != 0 {
            left.push(format!("{} {}", p.display(), owner(&p)));
        }
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(
        left.is_empty(),
        "the VM's uid or a setuid bit is left: {left:?}\n{out}"
    );
    // What the guest created is the share root's original owner's now.
    for rel in ["share/replaced", "share/setgid", "share/dir", "share/dir/f"] {
        let m = std::fs::symlink_metadata(h.p(rel)).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 1235), "{rel}: {out}");
    }
}

#[test]
fn an_untouched_setuid_file_gets_its_setuid_bit_back() {
    if !root_or_skip("an_untouched_setuid_file_gets_its_setuid_bit_back") {
        return;
    }
    let h = Stack::new(true);
    let tool = owned_file(&h, "share/bin/tool", 0, 0o4755);
    let gtool = owned_file(&h, "share/bin/gtool", 0, 0o2755);
    let dom = h.domain(
        "u",
        &format!("[[filesystem]]\npath = \"{}\"\n", h.p("share").display()),
    );
    h.ok(&["start", dom.to_str().unwrap()]);
    assert_ne!(owner(&tool), "0:0 4755");
    h.ok(&["stop", "u"]);
    assert_eq!(owner(&tool), "0:0 4755");
    assert_eq!(owner(&gtool), "0:0 2755");
    assert_eq!(svirt_xattrs(&tool), "");
}

#[test]
fn renamed_replaced_created_and_chmodded_share_entries_leave_nothing_to_the_vm() {
    if !root_or_skip("renamed_replaced_created_and_chmodded_share_entries_leave_nothing_to_the_vm")
    {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    let a = owned_file(&h, "share/a", 1000, 0o640);
    let b = owned_file(&h, "share/b", 1001, 0o644);
    let c = owned_file(&h, "share/sub/c", 1002, 0o600);
    std::os::unix::fs::chown(&share, Some(1234), Some(1235)).unwrap();
    let dom = h.domain(
        "r",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(&h, "r");
    as_guest(
        uid,
        &[],
        &format!(
            "cd {} && mv a sub/a-moved && rm b && echo mine > b && chmod 777 sub/c \
             && mkdir new && echo x > new/file && ln -s /etc/shadow link && mkfifo fifo",
            share.display()
        ),
    );
    let out = h.ok(&["stop", "r"]);
    // The renamed file gets its original back where it went.
    let moved = h.p("share/sub/a-moved");
    assert_eq!(owner(&moved), "1000:1000 640", "{out}");
    assert_eq!(label(&moved), ORIG);
    // The chmodded one gets its whole original back.
    assert_eq!(owner(&c), "1002:1002 600");
    // The replacement and everything the VM created go to the share root's original owner.
    for p in [
        b.clone(),
        h.p("share/new"),
        h.p("share/new/file"),
        h.p("share/fifo"),
    ] {
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 1235), "{}", p.display());
    }
    let link = std::fs::symlink_metadata(h.p("share/link")).unwrap();
    assert_eq!((link.uid(), link.gid()), (1234, 1235));
    assert!(
        vm_leftovers(&share).is_empty(),
        "{:?}",
        vm_leftovers(&share)
    );
    let _ = a;
    // /etc/shadow, a symlink's target, was never touched.
    assert_eq!(std::fs::symlink_metadata("/etc/shadow").unwrap().uid(), 0);
}

#[test]
fn a_disk_swapped_for_a_symlink_before_stop_is_restored_where_it_went() {
    if !root_or_skip("a_disk_swapped_for_a_symlink_before_stop_is_restored_where_it_went") {
        return;
    }
    let h = Stack::new(true);
    let disk = owned_file(&h, "disk.img", 1000, 0o644);
    let other = owned_file(&h, "other.img", 1001, 0o644);
    let dom = h.domain("s", &format!("[[disk]]\npath = \"{}\"\n", disk.display()));
    h.ok(&["start", dom.to_str().unwrap()]);
    let real = h.p("disk.real");
    std::fs::rename(&disk, &real).unwrap();
    std::os::unix::fs::symlink(&other, &disk).unwrap();
    let out = h.ok(&["stop", "s"]);
    assert_eq!(owner(&real), "1000:1000 644", "{out}");
    assert_eq!(label(&real), ORIG);
    assert_eq!(svirt_xattrs(&real), "");
    assert_eq!(
        owner(&other),
        "1001:1001 644",
        "the symlink's target is not ours"
    );
    assert!(out.contains("disk.real"), "{out}");
}

#[test]
fn a_stop_that_cannot_restore_exits_1_names_the_file_and_keeps_the_uid_reserved() {
    if !root_or_skip("a_stop_that_cannot_restore_exits_1_names_the_file_and_keeps_the_uid_reserved")
    {
        return;
    }
    let h = Stack::new(true);
    let disk = owned_file(&h, "stuck.img", 1000, 0o644);
    let dom = h.domain("h", &format!("[[disk]]\npath = \"{}\"\n", disk.display()));
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(&h, "h");
    // An immutable file refuses chown: the restore cannot happen.
    let chattr = |flag: &str| {
        Command::new("/usr/bin/chattr")
            .arg(flag)
            .arg(&disk)
            .status()
    };
    if !chattr("+i").is_ok_and(|s| s.success()) {
        skip(
            "a_stop_that_cannot_restore_exits_1_names_the_file_and_keeps_the_uid_reserved",
            "this filesystem has no immutable flag (chattr +i)",
        );
        return;
    }
    let o = h.svirt(&["stop", "h"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("stuck.img"), "{err}");
    let st = h.ok(&["status", "h"]);
    assert!(st.contains("held"), "{st}");
    // The uid stays taken while the file still carries it.
    let other = h.domain("next", "");
    h.ok(&["start", other.to_str().unwrap()]);
    assert_ne!(uid_of(&h, "next"), uid);
    chattr("-i").unwrap();
    h.ok(&["recover"]);
    assert_eq!(owner(&disk), "1000:1000 644");
    assert!(h.svirt(&["status", "h"]).status.code() == Some(1));
}

#[test]
fn a_lost_state_database_never_hands_out_a_running_vms_uid_and_scan_restores_its_files() {
    if !root_or_skip(
        "a_lost_state_database_never_hands_out_a_running_vms_uid_and_scan_restores_its_files",
    ) {
        return;
    }
    for lost in ["svirt.db", "svirt.db-wal"] {
        let h = Stack::new(true);
        let share = h.p("share");
        owned_file(&h, "share/f", 1000, 0o640);
        let disk = owned_file(&h, "disk.img", 1001, 0o644);
        let dom = h.domain(
            "a",
            &format!(
                "[[disk]]\npath = \"{}\"\n[[filesystem]]\npath = \"{}\"\n",
                disk.display(),
                share.display()
            ),
        );
        h.ok(&["start", dom.to_str().unwrap()]);
        let uid = uid_of(&h, "a");
        // The VM runs as its uid.
        let mut vmm = vm_process(uid);
        for f in ["svirt.db", "svirt.db-wal", "svirt.db-shm"] {
            if f == lost || lost == "svirt.db" {
                let _ = std::fs::remove_file(h.p("state").join(f));
            }
        }
        h.ok(&["recover"]);
        // New domains never get the running VM's uid.
        for i in 0..3 {
            let d = h.domain(&format!("n{i}"), "");
            h.ok(&["start", d.to_str().unwrap()]);
            assert_ne!(uid_of(&h, &format!("n{i}")), uid, "{lost} lost");
        }
        vmm.kill().unwrap();
        vmm.wait().unwrap();
        if lost == "svirt.db" {
            // The files still carry their originals in their marks.
            h.ok(&[
                "recover",
                "--scan",
                share.to_str().unwrap(),
                "--scan",
                disk.to_str().unwrap(),
            ]);
            assert_eq!(owner(&disk), "1001:1001 644");
            assert_eq!(owner(&h.p("share/f")), "1000:1000 640");
            assert_eq!(label(&h.p("share/f")), ORIG);
            assert!(
                vm_leftovers(&share).is_empty(),
                "{:?}",
                vm_leftovers(&share)
            );
            assert_eq!(svirt_xattrs(&disk), "");
        }
    }
}

/// Nobody may run `recover` between losing the state and the next start: a database created
/// anew, or one back at an earlier state (as a lost WAL leaves it), still never hands out the
/// uid of a VM that runs.
#[test]
fn a_lost_or_rolled_back_database_never_hands_out_a_running_vms_uid_even_without_recover() {
    if !root_or_skip(
        "a_lost_or_rolled_back_database_never_hands_out_a_running_vms_uid_even_without_recover",
    ) {
        return;
    }
    for case in ["deleted", "rolled back"] {
        let h = Stack::new(true);
        let state = h.p("state");
        // An earlier start and stop: the database as it was before the VM started.
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
            if case == "rolled back" && old.join(f).exists() {
                std::fs::copy(old.join(f), state.join(f)).unwrap();
            }
        }
        for i in 0..3 {
            let d = h.domain(&format!("n{i}"), "");
            let out = h.ok(&["start", d.to_str().unwrap()]);
            assert_ne!(
                uid_of(&h, &format!("n{i}")),
                uid,
                "database {case}: the running VM's uid was handed out\n{out}"
            );
        }
        vmm.kill().unwrap();
        vmm.wait().unwrap();
    }
}

#[test]
fn a_full_state_filesystem_never_leaves_files_labeled() {
    if !root_or_skip("a_full_state_filesystem_never_leaves_files_labeled") {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    for i in 0..1500 {
        owned_file(&h, &format!("share/d{}/f{i}", i % 10), 1000, 0o644);
    }
    let dom = h.domain(
        "full",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    // The state directory on a small tmpfs, mounted in a private mount namespace of a child
    // shell so the host never sees it.
    let state = h.p("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut outcomes = Vec::new();
    for fill_kib in [0u32, 64, 128, 192, 256, 320, 384, 448] {
        let script = format!(
            "set -e; mount -t tmpfs -o size=512k tmpfs {state}; \
             dd if=/dev/zero of={state}/ballast bs=1k count={fill_kib} 2>/dev/null || true; \
             {svirt} --config {cfg} start {dom} >/dev/null 2>&1 && echo started || echo refused; \
             {svirt} --config {cfg} stop full >/dev/null 2>&1 || true; \
             umount {state}",
            state = state.display(),
            svirt = svirt().display(),
            cfg = h.cfg.display(),
            dom = dom.display(),
        );
        let o = Command::new("/usr/bin/unshare")
            .args(["-m", "--propagation", "private", "/bin/sh", "-c", &script])
            .env("PATH", SYSTEM_PATH)
            .output()
            .unwrap();
        outcomes.push(String::from_utf8_lossy(&o.stdout).trim().to_owned());
        assert!(
            vm_leftovers(&share).is_empty(),
            "fill {fill_kib} KiB: {:?}",
            vm_leftovers(&share)[..3.min(vm_leftovers(&share).len())].to_vec()
        );
    }
    // The range of fills covers both outcomes, or the test proves less than it says.
    assert!(outcomes.iter().any(|o| o == "refused"), "{outcomes:?}");
}

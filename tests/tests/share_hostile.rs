//! A directory share under attack, on real files as root with SELinux (offline) and DAC stacked:
//! a guest that reuses the inode numbers of the files it deletes, and a guest that hard-links
//! another domain's shared disk into its own share.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use svirt_tests::*;

const ORIG: &str = "system_u:object_r:default_t:s0";

#[test]
fn a_new_file_reusing_a_deleted_files_inode_number_never_gets_its_selinux_label() {
    let name = "a_new_file_reusing_a_deleted_files_inode_number_never_gets_its_selinux_label";
    if !root_or_skip(name) {
        return;
    }
    // SELinux only: no DAC uid, the guest acts as root in the share (the MCS pair is its wall).
    let h = Stack::new(false);
    let share = h.p("share");
    h.file("share/other", ORIG);
    // An entrypoint type: whatever runs from a file with this label enters a privileged domain.
    let tool = h.file("share/bin/tool", "system_u:object_r:passwd_exec_t:s0");
    set_label(&share, ORIG);
    set_label(&h.p("share/bin"), ORIG);
    let ino = std::fs::metadata(&tool).unwrap().ino();
    let dom = h.domain(
        "s",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    h.ok(&["start", dom.to_str().unwrap()]);
    // The guest deletes the file and creates files until one gets the freed inode number, then
    // puts its own program there under the old name.
    let bin = h.p("share/bin");
    std::fs::remove_file(&tool).unwrap();
    let mut planted = None;
    for i in 0..5000 {
        let p = bin.join(format!("n{i}"));
        std::fs::write(&p, "guest program").unwrap();
        if std::fs::metadata(&p).unwrap().ino() == ino {
            std::fs::rename(&p, &tool).unwrap();
            planted = Some(i);
            break;
        }
    }
    for i in 0..5000 {
        let _ = std::fs::remove_file(bin.join(format!("n{i}")));
    }
    if planted.is_none() {
        skip(name, "the filesystem did not reuse the inode number");
        return;
    }
    // What the guest creates carries its pair while it runs.
    set_label(&tool, "system_u:object_r:svirt_image_t:s0:c1,c2");
    let out = h.ok(&["stop", "s"]);
    // The planted file is a new inode svirt never changed: it gets the default label, not the
    // deleted file's entrypoint type.
    assert_ne!(
        label(&tool),
        "system_u:object_r:passwd_exec_t:s0",
        "the guest's program got the deleted file's label: {out}"
    );
    assert!(!label(&tool).contains(":c"), "{}", label(&tool));
    assert_eq!(svirt_xattrs(&tool), "");
}

#[test]
fn a_shared_disk_linked_into_another_domains_share_is_never_reset_under_its_domain() {
    let name = "a_shared_disk_linked_into_another_domains_share_is_never_reset_under_its_domain";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    h.file("share/a", ORIG);
    set_label(&share, ORIG);
    let shared = h.file("shared.img", ORIG);
    let private = h.file("bpriv.img", ORIG);
    let a = h.domain(
        "a",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    let b = h.domain(
        "b",
        &format!(
            "[[disk]]\npath = \"{}\"\nshareable = true\n[[disk]]\npath = \"{}\"\n",
            shared.display(),
            private.display()
        ),
    );
    h.ok(&["start", b.to_str().unwrap()]);
    h.ok(&["start", a.to_str().unwrap()]);
    let ua = std::fs::metadata(&share).unwrap().uid();
    // A's guest is in the pool's shared group: it may link B's shared disk into its share.
    as_guest(
        ua,
        &[h.shared_gid()],
        &format!("ln {} {}/link", shared.display(), share.display()),
    );
    h.ok(&["stop", "a"]);
    h.ok(&["stop", "b"]);
    assert_eq!(owner(&shared), "0:0 644");
    // A alone: the link is an entry of its share with a name outside it, so A's start leaves
    // it alone. B then either starts with its disk as a shared disk, or is refused because the
    // disk has a second name (or A's share holds it); never does A's stop reset a disk B runs
    // on, and nothing of any VM is left once both stopped.
    h.ok(&["start", a.to_str().unwrap()]);
    assert_eq!(
        owner(&shared),
        "0:0 644",
        "A's start took B's disk through its share"
    );
    let b_start = run(&h.cfg, &["start", b.to_str().unwrap()]);
    let b_err = String::from_utf8_lossy(&b_start.stderr).into_owned();
    let b_runs = b_start.status.success();
    if !b_runs {
        assert!(
            b_err.contains("in use by domain a") || b_err.contains("it has 2 hard links"),
            "B refused for another reason: {b_err}"
        );
    }
    let while_b = owner(&shared);
    let out = h.ok(&["stop", "a"]);
    let after_a = owner(&shared);
    if b_runs {
        h.ok(&["stop", "b"]);
        assert_eq!(
            while_b,
            format!("0:{} 660", h.shared_gid()),
            "B's shared disk while B runs"
        );
        assert_eq!(
            after_a,
            format!("0:{} 660", h.shared_gid()),
            "A's stop reset the disk B runs on: {out}"
        );
    }
    assert_eq!(owner(&shared), "0:0 644", "B's disk after both stopped");
    assert_eq!(label(&shared), ORIG);
    // While the guest's second name of the disk exists, B is refused with that named; once the
    // administrator removes it, B starts and gets its disk.
    let refused = run(&h.cfg, &["start", b.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(
        !refused.status.success()
            && err.contains("it has 2 hard links")
            && err.contains("-samefile"),
        "{err}"
    );
    assert_eq!(owner(&shared), "0:0 644");
    std::fs::remove_file(share.join("link")).unwrap();
    h.ok(&["start", b.to_str().unwrap()]);
    assert_eq!(owner(&shared), format!("0:{} 660", h.shared_gid()));
    h.ok(&["stop", "b"]);
    assert_eq!(owner(&shared), "0:0 644");
}

#[test]
fn a_kill_before_a_setuid_share_file_is_changed_leaves_no_mark_after_recover() {
    let name = "a_kill_before_a_setuid_share_file_is_changed_leaves_no_mark_after_recover";
    if !root_or_skip(name) {
        return;
    }
    // Killed after the mark of each change is written and before the change itself: whatever
    // pass the kill hits, `recover` leaves every file as it was, with no trusted.svirt.* mark.
    for count in 1..=12 {
        let h = Stack::new(true);
        let share = h.p("share");
        for f in ["a", "b", "c"] {
            h.file(&format!("share/{f}"), ORIG);
        }
        let tool = h.file("share/tool", ORIG);
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o4755))
            .unwrap();
        set_label(&share, ORIG);
        let before = snapshot(&share);
        let dom = h.domain(
            "k",
            &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
        );
        let o = Command::new(svirt())
            .env("PATH", SYSTEM_PATH)
            .env("SVIRT_FAILPOINT", format!("relabel.journaled:{count}"))
            .arg("--config")
            .arg(&h.cfg)
            .args(["start", dom.to_str().unwrap()])
            .output()
            .unwrap();
        // Killed: `recover` puts everything back. Not killed (the count is past the last
        // pass): the domain runs, and its stop does.
        let out = if o.status.success() {
            h.ok(&["stop", "k"])
        } else {
            h.ok(&["recover"])
        };
        assert_eq!(
            snapshot(&share),
            before,
            "kill at relabel.journaled:{count} (start exit {:?}), then recover: {out}; marks on tool: {}",
            o.status.code(),
            svirt_xattrs(&tool)
        );
    }
}

#[test]
fn a_directory_renamed_while_a_share_is_restored_never_leaves_files_to_the_released_uid() {
    let name =
        "a_directory_renamed_while_a_share_is_restored_never_leaves_files_to_the_released_uid";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    for d in 0..20 {
        for f in 0..50 {
            h.file(&format!("share/d{d}/f{f}"), ORIG);
        }
        set_label(&h.p(&format!("share/d{d}")), ORIG);
    }
    set_label(&share, ORIG);
    let dom = h.domain(
        "m",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    for round in 0..15 {
        h.ok(&["start", dom.to_str().unwrap()]);
        let uid = std::fs::metadata(&share).unwrap().uid();
        // A process of the guest's uid outlives the VM and renames directories back and forth
        // while the share is walked at stop.
        let mut racer = Command::new("/usr/bin/setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "/bin/sh",
                "-c",
                &format!(
                    "cd {} || exit 1; while :; do for d in d3 d7 d12 d19; do \
                     mv -T $d $d.x 2>/dev/null; mv -T $d.x $d 2>/dev/null; done; done",
                    share.display()
                ),
            ])
            .env("PATH", SYSTEM_PATH)
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let o = run(&h.cfg, &["stop", "m"]);
        // The whole group: an `mv` the shell started would rename on after the shell is gone.
        let group = nix::unistd::Pid::from_raw(racer.id() as i32);
        nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).unwrap();
        racer.wait().unwrap();
        while nix::sys::signal::killpg(group, None).is_ok() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for d in ["d3", "d7", "d12", "d19"] {
            let x = h.p(&format!("share/{d}.x"));
            if x.exists() {
                std::fs::rename(&x, h.p(&format!("share/{d}"))).unwrap();
            }
        }
        let mut left = Vec::new();
        let mut stack = vec![share.clone()];
        while let Some(p) = stack.pop() {
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.uid() == uid || m.gid() == uid {
                left.push(p.display().to_string());
            }
            if m.is_dir() {
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
            }
        }
        // Either the stop says it could not restore everything (and keeps the uid), or nothing
        // of the VM is left.
        assert!(
            !o.status.success() || left.is_empty(),
            "round {round}: stop exited 0 and released uid {uid}, but {} entries still carry it \
             (first: {:?}): {}",
            left.len(),
            left.first(),
            String::from_utf8_lossy(&o.stdout)
        );
        if !o.status.success() {
            break;
        }
    }
}

/// Two shares, one inside the other: `s` (5 files in each of `in` and `out`) for domain "a",
/// `s/in` for domain "b".
struct Nested {
    outer: std::path::PathBuf,
    /// A file of the inner share.
    file: std::path::PathBuf,
    /// `snapshot` of the outer share before anything started.
    before: Vec<String>,
    a: std::path::PathBuf,
    b: std::path::PathBuf,
}

fn nested(h: &Stack) -> Nested {
    let outer = h.p("s");
    for d in ["in", "out"] {
        for f in 0..5 {
            h.file(&format!("s/{d}/f{f}"), ORIG);
        }
        set_label(&h.p(&format!("s/{d}")), ORIG);
    }
    set_label(&outer, ORIG);
    let inner = h.p("s/in");
    let share = |name: &str, path: &std::path::Path| {
        h.domain(
            name,
            &format!("[[filesystem]]\npath = \"{}\"\n", path.display()),
        )
    };
    Nested {
        before: snapshot(&outer),
        file: inner.join("f0"),
        a: share("a", &outer),
        b: share("b", &inner),
        outer,
    }
}

#[test]
fn a_share_nested_in_another_running_domains_share_is_neither_taken_nor_lost() {
    let name = "a_share_nested_in_another_running_domains_share_is_neither_taken_nor_lost";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::new(true);
    let Nested {
        outer,
        file,
        before,
        a,
        b,
    } = nested(&h);
    h.ok(&["start", b.to_str().unwrap()]);
    let b_owner = owner(&file);
    let b_label = label(&file);
    // A's share holds B's: A either is refused or leaves B's files to B.
    let o = run(&h.cfg, &["start", a.to_str().unwrap()]);
    let a_started = o.status.success();
    let while_both = (owner(&file), label(&file));
    if a_started {
        h.ok(&["stop", "a"]);
    }
    let after_a = (owner(&file), label(&file));
    h.ok(&["stop", "b"]);
    let end = snapshot(&outer);
    assert_eq!(
        while_both,
        (b_owner.clone(), b_label.clone()),
        "A's start took B's running share"
    );
    assert_eq!(
        after_a,
        (b_owner, b_label),
        "A's stop reset B's running share"
    );
    assert_eq!(end, before, "both stopped: the tree is as it was");
}

#[test]
fn a_share_started_inside_a_running_share_keeps_every_original() {
    let name = "a_share_started_inside_a_running_share_keeps_every_original";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::new(true);
    let Nested {
        outer,
        file,
        before,
        a,
        b,
    } = nested(&h);
    let original = (owner(&file), label(&file));
    h.ok(&["start", a.to_str().unwrap()]);
    let a_state = (owner(&file), label(&file));
    // B's share lies inside A's: B is refused, or A keeps what it was given until it stops.
    let o = run(&h.cfg, &["start", b.to_str().unwrap()]);
    if o.status.success() {
        h.ok(&["stop", "a"]);
        let after_a = (owner(&file), label(&file));
        h.ok(&["stop", "b"]);
        assert_ne!(after_a, original, "A's stop reset the share B runs on");
    } else {
        assert_eq!((owner(&file), label(&file)), a_state);
        h.ok(&["stop", "a"]);
    }
    assert_eq!(
        snapshot(&outer),
        before,
        "both stopped: the tree is as it was"
    );
}

#[test]
fn a_setgid_directory_the_guest_writes_into_keeps_its_setgid_bit() {
    let name = "a_setgid_directory_the_guest_writes_into_keeps_its_setgid_bit";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    let grp = h.p("share/grp");
    h.file("share/grp/old", ORIG);
    std::os::unix::fs::chown(&grp, Some(1000), Some(50)).unwrap();
    std::fs::set_permissions(&grp, std::os::unix::fs::PermissionsExt::from_mode(0o2775)).unwrap();
    set_label(&grp, ORIG);
    set_label(&share, ORIG);
    let dom = h.domain(
        "g",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = std::fs::metadata(&share).unwrap().uid();
    // Ordinary use: the guest writes a file in the group directory.
    as_guest(
        uid,
        &[h.shared_gid()],
        &format!("echo hi > {}/new", grp.display()),
    );
    let out = h.ok(&["stop", "g"]);
    // A directory's setgid bit gives files their group; it grants nothing to whoever runs
    // something, so it comes back with the directory's owner and mode.
    assert_eq!(owner(&grp), "1000:50 2775", "{out}");
}

#[test]
fn a_scan_of_a_share_a_running_domain_holds_leaves_it_to_the_domain() {
    let name = "a_scan_of_a_share_a_running_domain_holds_leaves_it_to_the_domain";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    let plain = h.file("share/plain", ORIG);
    let tool = h.file("share/tool", ORIG);
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    set_label(&share, ORIG);
    let dom = h.domain(
        "r",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    h.ok(&["start", dom.to_str().unwrap()]);
    let given = (owner(&plain), label(&plain));
    // The state is intact and names the share as held by a running domain: a scan must not
    // take the files away from the VM (nor cost the untouched setuid file its bit at stop).
    let o = run(&h.cfg, &["recover", "--scan", share.to_str().unwrap()]);
    let after_scan = (owner(&plain), label(&plain));
    h.ok(&["stop", "r"]);
    assert_eq!(
        after_scan,
        given,
        "recover --scan (exit {:?}) restored a running domain's share: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(owner(&tool), "0:0 4755");
}

#[test]
fn a_file_the_vm_made_that_cannot_be_taken_back_keeps_the_domain_and_its_uid_reserved() {
    let test = "a_file_the_vm_made_that_cannot_be_taken_back_keeps_the_domain_and_its_uid_reserved";
    if !root_or_skip(test) {
        return;
    }
    // Once through a plain stop, once through a stop killed before it restored anything and
    // the `recover` that finishes it: a file the guest made (its uid, setuid) that cannot be
    // taken back (immutable here; any chown error does the same) is a failure that names it,
    // and the domain stays recorded with its uid until it is taken back.
    for killed_stop in [false, true] {
        let h = Stack::new(true);
        let share = h.p("share");
        h.file("share/a", ORIG);
        set_label(&share, ORIG);
        let dom = h.domain(
            "n",
            &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
        );
        h.ok(&["start", dom.to_str().unwrap()]);
        let uid = uid_of(&h, "n");
        let made = share.join("made");
        as_guest(
            uid,
            &[h.shared_gid()],
            &format!("echo x > {0}; chmod 6755 {0}", made.display()),
        );
        let chattr = |flag: &str| {
            Command::new("chattr")
                .arg(flag)
                .arg(&made)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !chattr("+i") {
            return skip(test, "chattr +i is not available here");
        }
        let o = if killed_stop {
            let k = Command::new(svirt())
                .env("SVIRT_FAILPOINT", "restore.released:1")
                .arg("--config")
                .arg(&h.cfg)
                .args(["stop", "n"])
                .status()
                .unwrap();
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(k.signal(), Some(9), "the stop was not killed");
            h.svirt(&["recover"])
        } else {
            h.svirt(&["stop", "n"])
        };
        let held = h.recorded("n");
        chattr("-i");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(
            !o.status.success(),
            "killed stop {killed_stop}: succeeded with {} still the VM's",
            made.display()
        );
        assert!(err.contains("made"), "killed stop {killed_stop}: {err}");
        assert!(
            held,
            "killed stop {killed_stop}: uid {uid} released while {} still has it",
            made.display()
        );
        // Once it can be, the file is taken back and the domain released.
        h.ok(
            &[if killed_stop { "recover" } else { "stop" }, "n"][..if killed_stop { 1 } else { 2 }]
        );
        assert!(
            !h.recorded("n"),
            "killed stop {killed_stop}: still recorded"
        );
        assert_eq!(owner(&made), "0:0 755", "killed stop {killed_stop}");
    }
}

#[test]
fn a_share_file_with_a_name_outside_the_share_is_never_changed_through_it() {
    let name = "a_share_file_with_a_name_outside_the_share_is_never_changed_through_it";
    if !root_or_skip(name) {
        return;
    }
    // SELinux alone (its walk reads no owner, so it must ask for the link count) and stacked
    // with DAC (whose walk reads it anyway).
    for dac in [false, true] {
        let h = Stack::new(dac);
        // `secret` stands for /etc/shadow: the share holds a second name of it, as a `cp -al`
        // backup of /etc would. `a` and `a2` are two names of one file, both inside the share.
        let secret = h.file("host/secret", ORIG);
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .unwrap();
        let share = h.p("share");
        h.file("share/plain", ORIG);
        std::fs::create_dir_all(h.p("share/etc")).unwrap();
        std::fs::hard_link(&secret, h.p("share/etc/shadow")).unwrap();
        let a = h.file("share/a", ORIG);
        std::fs::hard_link(&a, h.p("share/sub-a2")).unwrap();
        for d in [&share, &h.p("share/etc")] {
            set_label(d, ORIG);
        }
        let before = (label(&secret), owner(&secret));
        let dom = h.domain(
            "s",
            &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
        );
        let out = h.ok(&["--json", "start", dom.to_str().unwrap()]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let excluded: Vec<String> = v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["excluded"].as_array().cloned().unwrap_or_default())
            .map(|e| format!("{} {}", e["path"].as_str().unwrap(), e["reason"]))
            .collect();
        let shadow = h.p("share/etc/shadow");
        assert!(
            excluded.iter().any(
                |e| e.starts_with(&format!("{} ", shadow.display())) && e.contains("hard link")
            ),
            "dac={dac}: the outside file is reported left out: {excluded:?}"
        );
        assert_eq!(
            excluded.len(),
            if dac { 2 } else { 1 },
            "dac={dac}: {excluded:?}"
        );
        assert_eq!(
            (label(&secret), owner(&secret)),
            before,
            "dac={dac}: the file outside was changed through the share"
        );
        // Files whose every name is inside are the VM's as usual.
        for p in [h.p("share/plain"), a.clone()] {
            assert_ne!(
                label(&p),
                ORIG,
                "dac={dac}: {} was not relabeled",
                p.display()
            );
        }
        h.ok(&["stop", "s"]);
        assert_eq!((label(&secret), owner(&secret)), before, "dac={dac}");
        for p in [h.p("share/plain"), a.clone()] {
            assert_eq!(
                label(&p),
                ORIG,
                "dac={dac}: {} was not restored",
                p.display()
            );
        }
    }
}

/// A setuid file with two names in the share is changed once per name, and its guard ctime is
/// the one after the last: a plain start and stop gives the setuid bit back, and reports
/// neither a move nor a dropped privilege (read-write and read-only shares alike).
#[test]
fn a_setuid_file_with_two_names_in_a_share_gets_its_setuid_back_unreported() {
    let name = "a_setuid_file_with_two_names_in_a_share_gets_its_setuid_back_unreported";
    if !root_or_skip(name) {
        return;
    }
    for readonly in [false, true] {
        let h = Stack::new(true);
        let share = h.p("share");
        let tool = owned_file(&h, "share/d0/tool", 1000, 0o4755);
        std::fs::create_dir_all(h.p("share/d1")).unwrap();
        std::fs::hard_link(&tool, h.p("share/d1/also-tool")).unwrap();
        for d in [&share, &h.p("share/d0"), &h.p("share/d1")] {
            set_label(d, ORIG);
        }
        set_label(&tool, ORIG);
        let before = snapshot(&share);
        let dom = h.domain(
            "s",
            &format!(
                "[[filesystem]]\npath = \"{}\"\nreadonly = {readonly}\n",
                share.display()
            ),
        );
        h.ok(&["start", dom.to_str().unwrap()]);
        assert_ne!(
            owner(&tool),
            "1000:1000 4755",
            "readonly={readonly}: not taken"
        );
        let out = h.ok(&["stop", "s"]);
        assert_eq!(snapshot(&share), before, "readonly={readonly}: {out}");
        assert!(
            !out.contains("moved") && !out.contains("not restored"),
            "readonly={readonly}: {out}"
        );
    }
}

//! Hostile round 6: the one-pass share walk after 1f49628 ("one pass only for a value drawn for
//! the domain alone; the undo trusts only its walk's stamped marks"). Each test names what must
//! hold and describes the attack as it worked on that commit; all hold since the commit that
//! added this file (per-resource labels journaled whole, recovery that finishes a recovery cut
//! short, nested shares refused, a dead domain's share left to `recover`, marks of VM-held files
//! without setuid/setgid, other shares' entries counted as managed, renames under a start
//! caught and rolled back by inode).
//!
//! Every test works on temp trees as root with the failpoint build; nothing of the host's is
//! changed.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use svirt_tests::*;

const HOME: &str = "system_u:object_r:user_home_t:s0";

/// A per-device label (`[[filesystem.seclabel]]`, libvirt's `<seclabel><label>` on a
/// filesystem) naming a fixed MCS pair, on a domain whose own label is dynamic: `Change::drawn`
/// is taken from the domain label's type, and the per-device value carries a pair, so the
/// share is walked in one pass although the value was not drawn for this start (an
/// administrator labels a share with a fixed pair to hand it to a VM, or files come from an
/// earlier share with that label). An entry that already holds the label before the start is
/// skipped by the walk and never recorded; after a kill, `recover` took "unrecorded and holding
/// the applied value" as proof the walk changed it and gave it the share root's label. (Now a
/// label the resource names for itself is journaled whole first, and a recovery ends as a clean
/// stop does.)
#[test]
fn a_killed_start_with_a_per_device_pair_label_ends_as_a_clean_stop_would() {
    let test = "a_killed_start_with_a_per_device_pair_label_ends_as_a_clean_stop_would";
    if !root_or_skip(test) {
        return;
    }
    const FIXED: &str = "system_u:object_r:svirt_image_t:s0:c100,c200";
    // The same share twice: one started and stopped cleanly, one whose start is killed in its
    // walk and recovered. (An entry holding a pair nothing records is a VM's to both: it gets
    // the default label, as libvirt restores a label it does not remember.)
    let run = |killed: bool| {
        let h = Stack::new(false);
        let share = h.p("share");
        user_dir(&share);
        for f in ["a", "b"] {
            file_with(&share.join(f), f, 1000, 1000, 0o644, HOME);
        }
        file_with(&share.join("pre"), "pre", 1000, 1000, 0o644, FIXED);
        let dom = h.domain(
            "pd",
            &format!(
                "[[filesystem]]\npath = \"{}\"\n[[filesystem.seclabel]]\nmodel = \"selinux\"\n\
                 label = \"{FIXED}\"\n",
                share.display()
            ),
        );
        if killed {
            start_killed_at(&h, &dom, "relabel.journaled:1");
            h.ok(&["recover"]);
            h.stop_all();
        } else {
            h.ok(&["start", dom.to_str().unwrap()]);
            h.ok(&["stop", "pd"]);
        }
        ["a", "b", "pre"].map(|f| describe(&share.join(f)))
    };
    let clean = run(false);
    assert_eq!(clean[0], format!("1000:1000 644 {HOME} []"));
    assert_eq!(
        run(true),
        clean,
        "a recovered start ends otherwise than a clean start and stop"
    );
}

/// `recover` undoes an unrecorded entry of a one-pass walk with the DAC driver's two calls:
/// `fchownat` (the original owner), then `fchmodat` (the original mode). A recover killed
/// between the two (a second crash, a power cut, an OOM kill during the boot-time recover)
/// leaves the entry with its original owner and the VM's mode (0600). The next `recover` no
/// longer sees the applied owner on it ("partly applied" is judged by owner only), so it is not
/// undone; its stamped mark no longer equals its value, so the mark is not removed either; and
/// the reclaim sees no VM owner. The domain is released with the file at the wrong mode and,
/// for a marked entry, a stale `trusted.svirt.dac` mark left on it.
#[test]
fn a_recover_killed_between_an_owner_and_its_mode_is_finished_by_the_next_recover() {
    let test = "a_recover_killed_between_an_owner_and_its_mode_is_finished_by_the_next_recover";
    if !root_or_skip(test) {
        return;
    }
    let mut failures = Vec::new();
    // Which entry the recover's first chown meets depends on the directory's order: kill at
    // each of the two.
    for k in [1, 2] {
        let h = Stack::new(true);
        let share = h.p("share");
        user_dir(&share);
        // `a` holds the root's owner and mode (no mark of its own), `r` another (a stamped mark).
        let a = share.join("a");
        let r = share.join("r");
        file_with(&a, "a", 1000, 1000, 0o755, HOME);
        file_with(&r, "r", 0, 0, 0o644, HOME);
        let before = [describe(&a), describe(&r)];
        let dom = h.share_domain("p", &share);
        // Both entries changed, killed at the root's own chown.
        start_killed_at(&h, &dom, "dac.owner-changed:3");
        assert!(
            killed(&h.cfg, &format!("dac.owner-changed:{k}"), &["recover"]),
            "the kill must land inside recover"
        );
        let out = h.ok(&["recover"]);
        h.stop_all();
        let after = [describe(&a), describe(&r)];
        if after != before {
            failures.push(format!(
                "recover killed at chown #{k}: before {before:?}, after {after:?}\n{out}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One domain with two shares, one inside the other: `/s` (read-write, the domain's pool uid)
/// and `/s/sub` (read-only). `nested_share` refuses only another running domain's share. The
/// steps run in order: the one-pass walk of `/s` changes every entry of `/s/sub` to the VM's
/// owner and pair label (marking only those whose original differs from `/s`'s); then
/// `/s/sub`'s journaled read finds them carrying a VM identity, asks the store (nothing) and
/// the mark (none for an entry that had `/s`'s common original), and takes the VM's value as
/// the original (`original_for`: the DAC driver keeps the current value). At stop, `/s` puts
/// the files back, then `/s/sub` writes the VM's uid (and the policy default label) on them.
/// Such a domain is now refused.
#[test]
fn a_share_inside_another_share_of_the_same_domain_is_refused_before_any_change() {
    let test = "a_share_inside_another_share_of_the_same_domain_is_refused_before_any_change";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let s = h.p("s");
    user_dir(&s);
    file_with(&s.join("top"), "top", 1000, 1000, 0o644, HOME);
    let sub = s.join("sub");
    user_dir(&sub);
    // Like the outer root (no mark of its own), and not.
    file_with(&sub.join("same"), "same", 1000, 1000, 0o755, HOME);
    file_with(
        &sub.join("other"),
        "other",
        1000,
        1000,
        0o644,
        "system_u:object_r:etc_t:s0",
    );
    let before = snapshot(&s);
    let dom = h.domain(
        "n",
        &format!(
            "[[filesystem]]\npath = \"{}\"\n[[filesystem]]\npath = \"{}\"\nreadonly = true\n",
            s.display(),
            sub.display()
        ),
    );
    // Refused as a usage error (exit 2) naming both shares, before anything changes.
    let started = h.svirt(&["start", dom.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&started.stderr);
    assert_eq!(started.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&sub.display().to_string()) && err.contains(&s.display().to_string()),
        "{err}"
    );
    assert_eq!(snapshot(&s), before, "a refused start changed something");
    assert!(!h.recorded("n"));
}

/// A setuid-root tool (`0:0 4755`) in a share, while its VM runs, is the VM's (pool uid, 0600)
/// and carries svirt's mark naming `0:0:4755`; the guest rewrites it. The state is then lost
/// (a state directory on `/run`, a reboot; or the database deleted), which svirt supports: the
/// next start reconciles and reads marks as the second copy of the originals. The next domain
/// given the share finds the tool carrying a VM identity, looks it up in the (new) store, finds
/// nothing, and takes its mark's original, setuid included, with no guard from the time the
/// first VM held it. Its stop records nothing changed since its own change and gives the
/// guest-written file `0:0 4755`: a setuid-root program whose content a guest wrote.
#[test]
fn a_file_a_vm_held_never_gets_setuid_back_from_its_mark_after_the_state_is_lost() {
    let test = "a_file_a_vm_held_never_gets_setuid_back_from_its_mark_after_the_state_is_lost";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    user_dir(&share);
    file_with(&share.join("a"), "a", 1000, 1000, 0o644, HOME);
    let tool = share.join("tool");
    file_with(
        &tool,
        "#!/bin/sh\necho host tool\n",
        0,
        0,
        0o4755,
        "system_u:object_r:bin_t:s0",
    );
    let a = h.share_domain("first", &share);
    h.ok(&["start", a.to_str().unwrap()]);
    let uid = uid_of(&h, "first");
    as_guest(
        uid,
        &[],
        &format!("printf '#!/bin/sh\\nid\\n' > {}", tool.display()),
    );
    // The state is lost while the VM's files are still its own.
    std::fs::remove_dir_all(h.p("state")).unwrap();
    // Another VM takes the first uid (the pool's lowest), the next start gets the share.
    let other = h.domain("other", "");
    h.ok(&["start", other.to_str().unwrap()]);
    let b = h.share_domain("second", &share);
    let out_start = h.ok(&["start", b.to_str().unwrap()]);
    let out = h.ok(&["stop", "second"]);
    h.ok(&["stop", "other"]);
    let m = std::fs::symlink_metadata(&tool).unwrap();
    let content = std::fs::read_to_string(&tool).unwrap();
    assert!(
        !(m.uid() == 0 && m.mode() & 0o6000 != 0 && content.contains("id\n")),
        "a guest-written file became setuid root: {}\n{out_start}\n{out}",
        describe(&tool)
    );
}

/// What the host may do to a share between a start killed mid-walk and `recover` (the root is
/// still user 1000's, the VM never ran): rename walked entries into directories not yet walked
/// and unwalked entries into walked ones, add a second name inside the share, replace a file by
/// a symlink to a file outside. Everything comes back as it was, no mark is left, and the file
/// outside is untouched.
#[test]
fn renames_links_and_symlinks_between_a_killed_start_and_recover_leave_every_file_as_it_was() {
    let test =
        "renames_links_and_symlinks_between_a_killed_start_and_recover_leave_every_file_as_it_was";
    if !root_or_skip(test) {
        return;
    }
    for k in [2, 4, 6] {
        let h = Stack::new(true);
        let share = h.p("share");
        user_dir(&share);
        for d in ["d1", "d2"] {
            user_dir(&share.join(d));
        }
        let names = ["d1/a", "d1/b", "d1/c", "d2/a", "d2/b", "d2/c"];
        for (i, f) in names.iter().enumerate() {
            let (uid, mode) = [(1000, 0o644), (0, 0o4755), (1000, 0o2755)][i % 3];
            file_with(&share.join(f), f, uid, 1000, mode, HOME);
        }
        let outside = h.p("outside");
        file_with(
            &outside,
            "outside",
            0,
            0,
            0o640,
            "system_u:object_r:etc_t:s0",
        );
        let out_before = describe(&outside);
        // Each file by its content, to find it wherever it moves.
        let by_content = |root: &Path| {
            let mut v: Vec<String> = Vec::new();
            for d in ["d1", "d2", "."] {
                let Ok(rd) = std::fs::read_dir(root.join(d)) else {
                    continue;
                };
                for e in rd.flatten() {
                    let p = e.path();
                    let m = std::fs::symlink_metadata(&p).unwrap();
                    if m.is_file() {
                        v.push(format!(
                            "{} {}",
                            std::fs::read_to_string(&p).unwrap(),
                            describe(&p)
                        ));
                    }
                }
            }
            v.sort();
            v.dedup();
            v
        };
        let before = by_content(&share);
        let dom = h.share_domain("p", &share);
        start_killed_at(&h, &dom, &format!("dac.owner-changed:{k}"));
        // Walked and unwalked entries trade directories; a second name; a symlink swap.
        std::fs::rename(share.join("d1/a"), share.join("d2/a-from-d1")).unwrap();
        std::fs::rename(share.join("d2/b"), share.join("d1/b-from-d2")).unwrap();
        std::fs::hard_link(share.join("d1/c"), share.join("c-again")).unwrap();
        std::fs::rename(share.join("d2/c"), share.join("c-moved")).unwrap();
        std::os::unix::fs::symlink(&outside, share.join("d2/c")).unwrap();
        let out = h.ok(&["recover"]);
        h.stop_all();
        assert_eq!(by_content(&share), before, "killed at {k}\n{out}");
        assert_eq!(
            describe(&outside),
            out_before,
            "the file outside was touched"
        );
    }
}

/// A start killed mid-walk, then a reboot (the killed domain's record is from an earlier boot,
/// so it counts as dead) and, before any `recover`, another domain given the same share. (Now
/// refused until `recover` puts the share back; as found:) `prepare` dropped the dead
/// domain's root item with its in-progress tree and keeps only the root's original; the new
/// walk finds the entries the dead start changed carrying a VM identity, asks the store
/// (nothing now) and the mark: an entry that had the share root's own original has none, so
/// `original_for` keeps its current value, the dead VM's `uid:gid:0600`, as its original. At
/// the new domain's stop the file is given the dead VM's uid.
#[test]
fn a_share_left_by_a_start_killed_before_a_reboot_is_put_back_by_the_next_domain_given_it() {
    let test =
        "a_share_left_by_a_start_killed_before_a_reboot_is_put_back_by_the_next_domain_given_it";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    user_dir(&share);
    let a = share.join("a");
    let r = share.join("r");
    file_with(&a, "a", 1000, 1000, 0o755, HOME);
    file_with(&r, "r", 0, 0, 0o644, HOME);
    let before = snapshot(&share);
    let first = h.share_domain("first", &share);
    // Both entries changed, killed at the root's own chown.
    start_killed_at(&h, &first, "dac.owner-changed:3");
    // The reboot: the record is now an earlier boot's.
    let db = h.p("state/svirt.db");
    let st = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE domains SET boot_id = 'an-earlier-boot' WHERE name = 'first';")
        .status()
        .unwrap();
    assert!(st.success());
    let second = h.share_domain("second", &share);
    // Refused, naming the share and the way out, and nothing changed by the refusal.
    let changed = snapshot(&share);
    let refused = h.svirt(&["start", second.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "the second start took the share over"
    );
    assert!(
        err.contains(&share.display().to_string()) && err.contains("svirt recover"),
        "{err}"
    );
    assert_eq!(
        snapshot(&share),
        changed,
        "the refused start changed the share"
    );
    let rec = h.ok(&["recover"]);
    let out_start = h.ok(&["start", second.to_str().unwrap()]);
    let out = h.ok(&["stop", "second"]);
    h.stop_all();
    assert_eq!(
        snapshot(&share),
        before,
        "the share was not put back\n{out_start}\n{out}\n{rec}"
    );
}

/// Two running domains, each with its own share. A host tool that links identical files
/// (`hardlink`, `rdfind -makehardlinks`, a `cp -al` snapshot into the other tree) gives a file
/// of A's share a second name inside B's share while both run. B's stop walks its share, finds
/// an entry it never changed that carries a pool uid (A's) with two names, and asks
/// `linked_elsewhere` whether it is managed for another resource: `is_managed` looks only at
/// items (share roots, disks), never at another share's tree entries, so A's file is reclaimed
/// through B's share: given B's share owner (user 1000) while A's VM still runs on it. The
/// threat model: "a hard link to an inode svirt manages for another resource is never changed
/// through a share".
#[test]
fn a_running_domains_share_file_linked_into_another_share_is_never_taken_by_its_stop() {
    let test = "a_running_domains_share_file_linked_into_another_share_is_never_taken_by_its_stop";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let sa = h.p("sa");
    let sb = h.p("sb");
    user_dir(&sa);
    user_dir(&sb);
    let f = sa.join("data");
    file_with(&f, "A's data", 1000, 1000, 0o644, HOME);
    file_with(&sb.join("b"), "b", 1000, 1000, 0o644, HOME);
    let a = h.share_domain("a", &sa);
    let b = h.share_domain("b", &sb);
    h.ok(&["start", a.to_str().unwrap()]);
    h.ok(&["start", b.to_str().unwrap()]);
    let running = describe(&f);
    std::fs::hard_link(&f, sb.join("same-content")).unwrap();
    let out = h.ok(&["stop", "b"]);
    assert_eq!(
        describe(&f),
        running,
        "B's stop changed a file of A's running share through B's share\n{out}"
    );
    std::fs::remove_file(sb.join("same-content")).unwrap();
    h.ok(&["stop", "a"]);
    assert_eq!(describe(&f), format!("1000:1000 644 {HOME} []"));
}

/// The share root belongs to a host user (1000), who may rename entries in it while `svirt
/// start` walks it (no VM runs yet, but the directory is the user's). The user swaps the names
/// of their own files and root-owned ones (`renameat2(RENAME_EXCHANGE)` in a loop). The walk
/// records each entry's inode number from `getdents64` but reads and changes the value through
/// the name later, so a tree entry can pair one inode's number with another inode's original,
/// and a stamped mark can land on another inode than the one read. At stop, root's files must
/// still be root's (`0:0 0644`), the user's the user's, and no mark may be left. A rollback
/// the names outrun through every sweep is reported, and its start left for `recover` (it was
/// reported as undone, its pair released, while entries still held it). (A race: the test runs
/// the swapping for a few seconds around one start; it may pass by luck.)
#[test]
fn a_share_owner_swapping_names_during_the_walk_never_gets_root_files_or_stale_marks() {
    let test = "a_share_owner_swapping_names_during_the_walk_never_gets_root_files_or_stale_marks";
    if !root_or_skip(test) {
        return;
    }
    const PAIRS: usize = 300;
    let h = Stack::new(true);
    let share = h.p("share");
    user_dir(&share);
    for i in 0..PAIRS {
        file_with(
            &share.join(format!("x{i}")),
            &format!("root {i}"),
            0,
            0,
            0o644,
            HOME,
        );
        file_with(
            &share.join(format!("y{i}")),
            &format!("user {i}"),
            1000,
            1000,
            0o755,
            HOME,
        );
    }
    let dom = h.share_domain("p", &share);
    // renameat2(AT_FDCWD, x, AT_FDCWD, y, RENAME_EXCHANGE) for every pair, over and over.
    let script = format!(
        "chdir '{}' or die; my $end = time + 3; while (time < $end) {{ for my $i (0..{}) {{ \
         syscall(316, -100, \"x$i\", -100, \"y$i\", 2); }} }}",
        share.display(),
        PAIRS - 1
    );
    let mut swapper = std::process::Command::new("/usr/bin/setpriv")
        .args([
            "--reuid=1000",
            "--regid=1000",
            "--clear-groups",
            "/usr/bin/perl",
            "-e",
        ])
        .arg(&script)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // The walk notices an entry whose inode is not the one listed and undoes the start; a
    // start that finishes is stopped.
    let started = h.svirt(&["start", dom.to_str().unwrap()]);
    let out_start = String::from_utf8_lossy(&started.stderr).into_owned();
    assert!(swapper.wait().unwrap().success());
    let out = if started.status.success() {
        h.ok(&["stop", "p"])
    } else {
        assert!(
            out_start.contains("renamed or replaced while svirt labeled its share"),
            "{out_start}"
        );
        if out_start.contains("rollback failed") {
            // The names kept moving through every sweep of the rollback: the start stays
            // recorded, its pair reserved, and `recover` puts the rest back once nothing moves.
            assert!(
                h.recorded("p"),
                "a start not all put back was forgotten: {out_start}"
            );
            h.ok(&["recover"]);
        }
        assert!(!h.recorded("p"), "a start undone left its domain recorded");
        String::new()
    };
    let mut wrong = Vec::new();
    for e in std::fs::read_dir(&share).unwrap().flatten() {
        let p = e.path();
        let content = std::fs::read_to_string(&p).unwrap();
        let want = if content.starts_with("root") {
            format!("0:0 644 {HOME} []")
        } else {
            format!("1000:1000 755 {HOME} []")
        };
        if describe(&p) != want {
            wrong.push(format!("{content:?}: {} (want {want})", describe(&p)));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} files not put back:\n{}\n{out_start}\n{out}",
        wrong.len(),
        wrong
            .iter()
            .take(12)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

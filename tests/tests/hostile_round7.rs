//! Hostile round 7: the directory-share changes of 1f49628, e8c7a23 and f1ce4e9 (one-pass walk
//! with stamped marks, the undo that marks before it changes, renames under a start rolled back
//! by inode with repeated sweeps, nested and unrecovered shares refused, `entry_common` for
//! regular files, DAC `original_for` for pool owners). Each test names what must hold and
//! describes the attack. Three worked when found and hold since the commit that added this file:
//! a domain's own disk inside its share (now labeled as the disk, never as an entry), a share
//! inside or around a dead domain's unrecovered share (refused until `recover`), and
//! `recover --scan` of a directory inside a share (the marked share root above it counts).
//!
//! Every test works on temp trees as root with the failpoint build; nothing of the host's is
//! changed.

use std::path::Path;
use std::process::Command;

use svirt_tests::*;

const HOME: &str = "system_u:object_r:user_home_t:s0";

/// A directory with owner, mode and label.
fn dir_with(p: &Path, uid: u32, gid: u32, mode: u32) {
    std::fs::create_dir_all(p).unwrap();
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    set_label(p, HOME);
}

/// Pretend the host rebooted: the domain's record is an earlier boot's, so it counts as dead.
fn reboot(h: &Stack, name: &str) {
    let st = Command::new("sqlite3")
        .arg(h.p("state/svirt.db"))
        .arg(format!(
            "UPDATE domains SET boot_id = 'an-earlier-boot' WHERE name = '{name}';"
        ))
        .status()
        .unwrap();
    assert!(st.success());
}

/// Lines of two snapshots that differ.
/// Start `dom` killed at `point`, `recover`, and stop whatever still runs: `None` when the
/// kill did not land (the start finished; it is stopped), else what differs from `before`
/// (with recover's output), if anything.
fn kill_and_recover(
    h: &Stack,
    dom: &Path,
    name: &str,
    point: &str,
    (share, before): (&Path, &[String]),
) -> Option<Option<String>> {
    if !killed(&h.cfg, point, &["start", dom.to_str().unwrap()]) {
        h.ok(&["stop", name]);
        return None;
    }
    let out = h.ok(&["recover"]);
    h.stop_all();
    let after = snapshot(share);
    Some((after != before).then(|| format!("{}\n{out}", diff(before, &after))))
}

fn diff(a: &[String], b: &[String]) -> String {
    let mut out = Vec::new();
    for l in a {
        if !b.contains(l) {
            out.push(format!("- {l}"));
        }
    }
    for l in b {
        if !a.contains(l) {
            out.push(format!("+ {l}"));
        }
    }
    out.join("\n")
}

/// A share whose entries have every kind of mode relative to the root's: the root's own mode
/// without execute bits (no mark: `entry_common`), with them, another owner, root's, a setgid
/// subdirectory, a sticky subdirectory, a FIFO and symlinks.
fn mixed_share(share: &Path, root_mode: u32) {
    dir_with(share, 1000, 1000, root_mode);
    let common = root_mode & 0o666;
    file_with(&share.join("common"), "common", 1000, 1000, common, HOME);
    file_with(
        &share.join("exec"),
        "exec",
        1000,
        1000,
        root_mode & 0o777,
        HOME,
    );
    file_with(&share.join("private"), "private", 1000, 1000, 0o600, HOME);
    file_with(&share.join("other"), "other", 1001, 1000, common, HOME);
    file_with(&share.join("rootf"), "rootf", 0, 0, common, HOME);
    file_with(&share.join("world"), "world", 1000, 1000, 0o666, HOME);
    dir_with(&share.join("sgid"), 1000, 1000, 0o2775);
    file_with(&share.join("sgid/in"), "in", 1000, 1000, 0o664, HOME);
    dir_with(&share.join("sticky"), 1000, 1000, 0o1777);
    file_with(&share.join("sticky/in"), "in", 1000, 1000, 0o644, HOME);
    dir_with(&share.join("sub"), 1000, 1000, root_mode);
    file_with(&share.join("sub/common"), "c", 1000, 1000, common, HOME);
    let fifo = share.join("fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    std::os::unix::fs::chown(&fifo, Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::symlink("common", share.join("link")).unwrap();
    std::os::unix::fs::lchown(share.join("link"), Some(1000), Some(1000)).unwrap();
}

/// `entry_common`: a regular file with no mark of its own is taken to have had the root's
/// owner and mode without execute, setuid, setgid and sticky bits. A start killed anywhere in
/// its walk is recovered from the entries: a file whose original was that mode carries no mark,
/// every other one must carry one. Attack: files with execute bits, a 0700 root, a setgid root
/// (2775) whose files are 0664, a sticky subdirectory, another owner, a FIFO and a symlink
/// (whose kinds are not `File`, so their common original is the root's own, mode included).
#[test]
fn every_entry_of_a_start_killed_anywhere_comes_back_with_its_own_mode() {
    let test = "every_entry_of_a_start_killed_anywhere_comes_back_with_its_own_mode";
    if !root_or_skip(test) {
        return;
    }
    let mut failures = Vec::new();
    for root_mode in [0o755, 0o2775, 0o700, 0o1777] {
        for k in 1..=16 {
            let h = Stack::new(true);
            let share = h.p("share");
            mixed_share(&share, root_mode);
            let before = snapshot(&share);
            let dom = h.share_domain("p", &share);
            let point = format!("dac.owner-changed:{k}");
            let Some(wrong) = kill_and_recover(&h, &dom, "p", &point, (&share, &before)) else {
                break;
            };
            if let Some(wrong) = wrong {
                failures.push(format!("root {root_mode:o}, killed at {point}:\n{wrong}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The same share, its start killed mid-walk, and then the state directory lost (a tmpfs
/// `state_dir` after a reboot): `recover --scan` must put every entry back from the stamped
/// marks and the root's `entries` mark (`entry_common` for unmarked regular files). Only the
/// setuid/setgid bits of files a VM held may be lost; this share has none.
#[test]
fn recover_scan_after_a_killed_start_and_a_lost_state_puts_every_mode_back() {
    let test = "recover_scan_after_a_killed_start_and_a_lost_state_puts_every_mode_back";
    if !root_or_skip(test) {
        return;
    }
    let mut failures = Vec::new();
    for root_mode in [0o755, 0o2775, 0o700] {
        for k in [2, 5, 9, 13] {
            let h = Stack::new(true);
            let share = h.p("share");
            mixed_share(&share, root_mode);
            let before = snapshot(&share);
            let dom = h.share_domain("p", &share);
            let point = format!("dac.owner-changed:{k}");
            if !killed(&h.cfg, &point, &["start", dom.to_str().unwrap()]) {
                h.ok(&["stop", "p"]);
                continue;
            }
            std::fs::remove_dir_all(h.p("state")).unwrap();
            let o = h.svirt(&["recover", "--scan", share.to_str().unwrap()]);
            let after = snapshot(&share);
            if after != before || !o.status.success() {
                failures.push(format!(
                    "root {root_mode:o}, killed at {point}, scan exit {:?}:\n{}\n{}",
                    o.status.code(),
                    diff(&before, &after),
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A recovery of a one-pass start killed right after the undo stamped its mark on an entry
/// that had the common original (`relabel.undo-marked`), at every such entry in turn; then a
/// recovery killed there again; then one that completes. Everything must be as before, and
/// no `trusted.svirt.*` mark may be left.
#[test]
fn a_recover_killed_at_each_undo_mark_is_finished_by_the_next() {
    let test = "a_recover_killed_at_each_undo_mark_is_finished_by_the_next";
    if !root_or_skip(test) {
        return;
    }
    let mut failures = Vec::new();
    let mut landed = 0;
    for root_mode in [0o2775, 0o755] {
        for k in 1..=6 {
            let h = Stack::new(true);
            let share = h.p("share");
            mixed_share(&share, root_mode);
            let before = snapshot(&share);
            let dom = h.share_domain("p", &share);
            // Killed at the root's own change (the last DAC change that lands): every entry
            // holds the VM's owner.
            let last = (1..=20)
                .rev()
                .find(|n| {
                    let hit = killed(
                        &h.cfg,
                        &format!("dac.owner-changed:{n}"),
                        &["start", dom.to_str().unwrap()],
                    );
                    if !hit {
                        h.ok(&["stop", "p"]);
                    }
                    hit
                })
                .expect("some DAC change lands");
            assert!(last > 3, "only {last} DAC changes");
            let first = killed(&h.cfg, &format!("relabel.undo-marked:{k}"), &["recover"]);
            let second = killed(&h.cfg, "relabel.undo-marked:1", &["recover"]);
            landed += usize::from(first) + usize::from(second);
            let out = h.ok(&["recover"]);
            h.stop_all();
            let after = snapshot(&share);
            if after != before {
                failures.push(format!(
                    "root {root_mode:o}, recover killed at undo-marked:{k} ({first}), then at :1 ({second}):\n{}\n{out}",
                    diff(&before, &after)
                ));
            }
        }
    }
    assert!(
        landed > 4,
        "only {landed} kills at relabel.undo-marked landed"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// One domain with a read-only disk (and a private one) inside its own read-write share: the
/// disks are changed first (libvirt's order: disks before filesystems), so the share's walk
/// finds the read-only disk holding the shared read-only value (`root:<shared gid> 0440`,
/// `virt_content_t`), which carries no VM identity and is not among the values applied before
/// this start: it is taken for the file's original. At stop, the disk's item puts the real
/// original back, then the share's tree (restored after it, in item order) writes the disk's
/// applied value over it. After a clean start and stop, every file must be as before.
#[test]
fn a_disk_inside_its_own_domains_share_is_back_as_it_was_after_stop() {
    let test = "a_disk_inside_its_own_domains_share_is_back_as_it_was_after_stop";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    user_dir(&share);
    file_with(&share.join("a"), "a", 1000, 1000, 0o644, HOME);
    let ro = share.join("ro.iso");
    let rw = share.join("rw.img");
    file_with(&ro, "iso", 1000, 1000, 0o644, HOME);
    file_with(&rw, "img", 1000, 1000, 0o644, HOME);
    let before = snapshot(&share);
    let dom = h.domain(
        "d",
        &format!(
            "[[disk]]\npath = \"{}\"\nreadonly = true\n[[disk]]\npath = \"{}\"\n\
             [[filesystem]]\npath = \"{}\"\n",
            ro.display(),
            rw.display(),
            share.display()
        ),
    );
    let started = h.ok(&["start", dom.to_str().unwrap()]);
    let running = [describe(&ro), describe(&rw)];
    let stopped = h.ok(&["stop", "d"]);
    let after = snapshot(&share);
    assert!(
        after == before,
        "running: {running:?}\n{}\n{started}\n{stopped}",
        diff(&before, &after)
    );
}

/// The same domain (read-only and private disks inside its own share), its start killed at
/// every DAC change in turn, then `recover`: every file must come back as it was.
#[test]
fn a_killed_start_of_a_domain_with_disks_inside_its_share_is_recovered_exactly() {
    let test = "a_killed_start_of_a_domain_with_disks_inside_its_share_is_recovered_exactly";
    if !root_or_skip(test) {
        return;
    }
    let mut failures = Vec::new();
    for k in 1..=8 {
        let h = Stack::new(true);
        let share = h.p("share");
        user_dir(&share);
        file_with(&share.join("a"), "a", 1000, 1000, 0o644, HOME);
        file_with(&share.join("x"), "x", 1000, 1000, 0o755, HOME);
        let ro = share.join("ro.iso");
        let rw = share.join("rw.img");
        file_with(&ro, "iso", 1000, 1000, 0o644, HOME);
        file_with(&rw, "img", 1000, 1000, 0o640, HOME);
        let before = snapshot(&share);
        let dom = h.domain(
            "d",
            &format!(
                "[[disk]]\npath = \"{}\"\nreadonly = true\n[[disk]]\npath = \"{}\"\n\
                 [[filesystem]]\npath = \"{}\"\n",
                ro.display(),
                rw.display(),
                share.display()
            ),
        );
        let point = format!("dac.owner-changed:{k}");
        let Some(wrong) = kill_and_recover(&h, &dom, "d", &point, (&share, &before)) else {
            break;
        };
        if let Some(wrong) = wrong {
            failures.push(format!("killed at {point}:\n{wrong}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A start killed mid-walk, then a reboot (the domain counts as dead), and before `recover`
/// another domain is given a directory *inside* that share, or one *around* it. The refusal of
/// an unrecovered share (`ShareNotRecovered`) looks only at the share root's own inode, and
/// `nested_share` only at running domains' shares: the new walk finds the dead VM's owner on
/// the entries, with no mark for those that had the common original, and takes the reclaim's
/// value (or, for the inner root itself, `original_for`: `0:0`, mode & 0700) as their
/// originals. The share must be refused until `recover`, and end as it was.
#[test]
fn a_share_inside_or_around_a_dead_domains_unrecovered_share_is_refused_until_recover() {
    let test = "a_share_inside_or_around_a_dead_domains_unrecovered_share_is_refused_until_recover";
    if !root_or_skip(test) {
        return;
    }
    let mut failures = Vec::new();
    for around in [false, true] {
        let h = Stack::new(true);
        let top = h.p("top");
        user_dir(&top);
        file_with(&top.join("t"), "t", 1000, 1000, 0o644, HOME);
        let s = top.join("s");
        user_dir(&s);
        file_with(&s.join("a"), "a", 1000, 1000, 0o644, HOME);
        let sub = s.join("sub");
        user_dir(&sub);
        file_with(&sub.join("x"), "x", 1000, 1000, 0o644, HOME);
        file_with(&sub.join("y"), "y", 1000, 1000, 0o755, HOME);
        let before = snapshot(&top);
        let first = h.share_domain("first", &s);
        // sub, x, y, a changed: killed at the root's own chown.
        start_killed_at(&h, &first, "dac.owner-changed:5");
        reboot(&h, "first");
        let target = if around { &top } else { &sub };
        let second = h.share_domain("second", target);
        let changed = snapshot(&top);
        let o = h.svirt(&["start", second.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let took_over = o.status.success();
        if took_over {
            h.ok(&["stop", "second"]);
        } else if snapshot(&top) != changed {
            failures.push(format!(
                "around={around}: the refused start changed files:\n{}",
                diff(&changed, &snapshot(&top))
            ));
        }
        let rec = h.ok(&["recover"]);
        h.stop_all();
        let after = snapshot(&top);
        if took_over || after != before {
            failures.push(format!(
                "around={around}: start given {} while the dead domain's share was unrecovered: {}\n{}\n{err}\n{rec}",
                target.display(),
                if took_over { "accepted" } else { "refused" },
                diff(&before, &after)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Nested-share refusal must not catch what is not nested: sibling shares whose paths share a
/// prefix (`/x/a` and `/x/ab`), a share and a disk inside it, and the ShareNotRecovered refusal
/// must not catch a share recovered already (the same domain name started again after its
/// dead start was recovered), nor a read-only share one dead and one running domain hold.
#[test]
fn sibling_shares_recovered_shares_and_shared_readonly_shares_are_not_refused() {
    let test = "sibling_shares_recovered_shares_and_shared_readonly_shares_are_not_refused";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let x = h.p("x");
    user_dir(&x);
    let a = x.join("a");
    let ab = x.join("ab");
    user_dir(&a);
    user_dir(&ab);
    file_with(&a.join("f"), "f", 1000, 1000, 0o644, HOME);
    file_with(&ab.join("g"), "g", 1000, 1000, 0o644, HOME);
    let before = snapshot(&x);
    let sib = h.domain(
        "sib",
        &format!(
            "[[filesystem]]\npath = \"{}\"\n[[filesystem]]\npath = \"{}\"\n",
            a.display(),
            ab.display()
        ),
    );
    let o = h.svirt(&["start", sib.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "sibling shares refused: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    h.ok(&["stop", "sib"]);
    assert_eq!(snapshot(&x), before, "{}", diff(&before, &snapshot(&x)));

    // Dead start, recover, the same name again.
    let first = h.share_domain("first", &a);
    start_killed_at(&h, &first, "dac.owner-changed:1");
    reboot(&h, "first");
    h.ok(&["recover"]);
    let o = h.svirt(&["start", first.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "a recovered share refused: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    h.ok(&["stop", "first"]);
    assert_eq!(snapshot(&x), before, "{}", diff(&before, &snapshot(&x)));

    // A read-only share held by a dead and a running domain: a third shares it.
    let ro = |n: &str| {
        h.domain(
            n,
            &format!(
                "[[filesystem]]\npath = \"{}\"\nreadonly = true\n",
                ab.display()
            ),
        )
    };
    h.ok(&["start", ro("r1").to_str().unwrap()]);
    h.ok(&["start", ro("r2").to_str().unwrap()]);
    reboot(&h, "r1");
    let o = h.svirt(&["start", ro("r3").to_str().unwrap()]);
    assert!(
        o.status.success(),
        "a read-only share a running domain holds refused: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    h.ok(&["recover"]);
    h.stop_all();
    assert_eq!(snapshot(&x), before, "{}", diff(&before, &snapshot(&x)));
}

/// A one-pass start that fails mid-walk (an immutable file: `chown` gives EPERM) is rolled
/// back: `unapply_share` by proved inode, then sweeps with `RestoreOptions::rollback()` (no
/// `managed` test) for anything still holding the domain's owner. The sweep must leave alone
/// what the start never changed: a file with a second name outside the share (left out), a
/// symlink to a file outside and to a file of another running domain's share, that running
/// domain's share itself, and the domain's own private disk in the share (put back by its own
/// item). The error names the file, the exit code is 1, and the share is as before.
#[test]
fn a_failed_one_pass_start_rolls_back_only_what_it_changed() {
    let test = "a_failed_one_pass_start_rolls_back_only_what_it_changed";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let sa = h.p("sa");
    user_dir(&sa);
    let af = sa.join("af");
    file_with(&af, "A", 1000, 1000, 0o644, HOME);
    let outside = h.p("outside");
    file_with(&outside, "out", 0, 0, 0o640, "system_u:object_r:etc_t:s0");
    let sb = h.p("sb");
    user_dir(&sb);
    for i in 0..40 {
        file_with(&sb.join(format!("f{i}")), "f", 1000, 1000, 0o644, HOME);
    }
    file_with(&sb.join("x"), "x", 1000, 1000, 0o755, HOME);
    std::fs::hard_link(&outside, sb.join("hl")).unwrap();
    std::os::unix::fs::symlink(&outside, sb.join("to-outside")).unwrap();
    std::os::unix::fs::symlink(&af, sb.join("to-a")).unwrap();
    let disk = sb.join("disk.img");
    file_with(&disk, "disk", 1000, 1000, 0o640, HOME);
    let imm = sb.join("zz-immutable");
    file_with(&imm, "imm", 1000, 1000, 0o644, HOME);
    h.ok(&["start", h.share_domain("a", &sa).to_str().unwrap()]);
    let a_running = snapshot(&sa);
    let out_before = describe(&outside);
    let st = Command::new("chattr").arg("+i").arg(&imm).status().unwrap();
    assert!(st.success());
    let before = snapshot(&sb);
    let dom = h.domain(
        "b",
        &format!(
            "[[disk]]\npath = \"{}\"\n[[filesystem]]\npath = \"{}\"\n",
            disk.display(),
            sb.display()
        ),
    );
    let o = h.svirt(&["start", dom.to_str().unwrap()]);
    let _ = Command::new("chattr").arg("-i").arg(&imm).status();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let after = snapshot(&sb);
    let a_after = snapshot(&sa);
    let out_after = describe(&outside);
    h.ok(&["recover"]);
    h.stop_all();
    assert!(!o.status.success(), "the start did not fail");
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&imm.display().to_string()), "{err}");
    assert!(!h.recorded("b"));
    assert_eq!(a_after, a_running, "{}", diff(&a_running, &a_after));
    assert_eq!(out_after, out_before);
    assert!(after == before, "{}\n{err}", diff(&before, &after));
}

/// `recover --scan DIR` puts back the files under DIR from their marks. Given a subdirectory of
/// a share whose start was killed and whose state was lost, the unmarked entries (those whose
/// original is the common one, `entry_common`) find no `entries` mark: it is on the share
/// root, above DIR, and the scan only looks at ancestors it walked. They stay the dead VM's
/// (pool uid, mode 0600, its pair) while the scan reports success.
#[test]
fn recover_scan_of_a_subdirectory_of_a_share_puts_back_its_unmarked_entries() {
    let test = "recover_scan_of_a_subdirectory_of_a_share_puts_back_its_unmarked_entries";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    user_dir(&share);
    let sub = share.join("sub");
    user_dir(&sub);
    file_with(&sub.join("common"), "c", 1000, 1000, 0o644, HOME);
    file_with(&sub.join("exec"), "x", 1000, 1000, 0o755, HOME);
    let before = snapshot(&sub);
    let dom = h.share_domain("p", &share);
    // sub, common, exec changed: killed at the root's own chown.
    start_killed_at(&h, &dom, "dac.owner-changed:4");
    std::fs::remove_dir_all(h.p("state")).unwrap();
    let o = h.svirt(&["recover", "--scan", sub.to_str().unwrap()]);
    let after = snapshot(&sub);
    // The whole share, to leave the temp tree clean.
    let _ = h.svirt(&["recover", "--scan", share.to_str().unwrap()]);
    assert!(
        after == before,
        "scan exit {:?}:\n{}\n{}{}",
        o.status.code(),
        diff(&before, &after),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

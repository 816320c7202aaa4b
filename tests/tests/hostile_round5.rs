//! Hostile round 5: the one-pass share walk (commit 629170a). The intent names only the share
//! root's original; a start killed mid-walk is undone by `recover` from the entries themselves
//! ("an unrecorded entry holding the applied value gets its mark's original, or the root's").
//! Each test below describes an attack as it worked on that commit. What stops each now: only
//! a value drawn for the domain alone (its dynamic pair or pool uid) is walked in one pass,
//! so read-only, shared and static values are journaled whole first; the undo trusts only
//! marks stamped by its own walk and no longer skips files that gained a name after the cut;
//! and a change cut short that let other domains write a file (a static uid they share) never
//! gives it setuid/setgid back.
//!
//! Every test works on temp trees as root with the failpoint build; nothing of the host's is
//! changed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use svirt_tests::*;

/// Two domains of one tenant under the static DAC uid `uid`: B, with a share of its own
/// (`sb`), is started; A's domain file, with `share`, is returned.
fn tenant_of_two(h: &Stack, uid: u32, share: &Path) -> std::path::PathBuf {
    let body = |share: &Path| {
        format!(
            "[[seclabel]]\nmodel = \"dac\"\ntype = \"static\"\nlabel = \"+{uid}:+{uid}\"\n\
             relabel = true\n[[filesystem]]\npath = \"{}\"\n",
            share.display()
        )
    };
    let sb = h.p("sb");
    user_dir(&sb);
    let b = h.domain("b", &body(&sb));
    h.ok(&["start", b.to_str().unwrap()]);
    h.domain("a", &body(share))
}

/// A read-only share applies `root:shared 0440` / `virt_content_t:s0`: values that are not
/// unique to this start. Content an admin already prepared as read-only content (a root-owned
/// tool `0:64999 0755`, a root-owned file `0:64999 0440`, both `virt_content_t:s0`) holds the
/// applied owner (or the whole value) before the start, so the walk leaves it alone and never
/// records it. After a kill mid-walk, `recover` takes "unrecorded and holding the applied
/// owner" as proof the walk changed it and gives it the share root's original: root's files
/// become user 1000's (owner 1000:1000, the root directory's mode 0755) and lose their label.
#[test]
fn a_killed_read_only_share_start_never_gives_untouched_root_owned_content_to_the_share_owner() {
    let test =
        "a_killed_read_only_share_start_never_gives_untouched_root_owned_content_to_the_share_owner";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    user_dir(&share);
    for f in ["a", "b", "c"] {
        file_with(
            &share.join(f),
            f,
            1000,
            1000,
            0o644,
            "system_u:object_r:user_home_t:s0",
        );
    }
    let tool = share.join("tool");
    let ro = share.join("ro");
    file_with(
        &tool,
        "#!/bin/sh\n",
        0,
        h.shared_gid(),
        0o755,
        "system_u:object_r:virt_content_t:s0",
    );
    file_with(
        &ro,
        "ro",
        0,
        h.shared_gid(),
        0o440,
        "system_u:object_r:virt_content_t:s0",
    );
    let (tool_before, ro_before) = (describe(&tool), describe(&ro));
    let dom = h.domain(
        "ro",
        &format!(
            "[[filesystem]]\npath = \"{}\"\nreadonly = true\n",
            share.display()
        ),
    );
    start_killed_at(&h, &dom, "relabel.journaled:1");
    let out = h.ok(&["recover"]);
    assert_eq!(
        describe(&tool),
        tool_before,
        "recover gave a root-owned file the walk never touched the share root's owner and label\n{out}"
    );
    assert_eq!(
        describe(&ro),
        ro_before,
        "recover gave a root-owned read-only file the walk never touched the share root's owner, mode and label\n{out}"
    );
}

/// A start killed once the walk changed root-owned files of a share (`0:0 0644 etc_t`, marked
/// with those originals), then a hard-link backup (`cp -al`, rsnapshot) of the share runs
/// before `recover`. The walk recorded nothing in the database; recover skips every file with
/// more than one name ("the walk never changes those unless recorded") and its reclaim hands
/// them to the share root's owner: root's files become user 1000's (both names), with a
/// default label, and the marks naming their true originals are left on them.
#[test]
fn a_hard_link_made_after_a_killed_share_start_never_makes_recover_give_root_files_to_the_share_owner(
) {
    let test = "a_hard_link_made_after_a_killed_share_start_never_makes_recover_give_root_files_to_the_share_owner";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    user_dir(&share);
    let files: Vec<_> = ["a", "b", "c"].iter().map(|f| share.join(f)).collect();
    for f in &files {
        file_with(f, "root's", 0, 0, 0o644, "system_u:object_r:etc_t:s0");
    }
    let dom = h.domain(
        "p",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    // Killed inside the DAC walk, after the SELinux walk changed every file.
    start_killed_at(&h, &dom, "dac.owner-changed:3");
    let bak = h.p("bak");
    std::fs::create_dir_all(&bak).unwrap();
    for f in &files {
        std::fs::hard_link(f, bak.join(f.file_name().unwrap())).unwrap();
    }
    let out = h.ok(&["recover"]);
    for f in &files {
        let m = std::fs::metadata(f).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (0, 0),
            "recover gave root's file {} to another owner: {}\n{out}",
            f.display(),
            describe(f)
        );
        assert_eq!(
            describe(f),
            "0:0 644 system_u:object_r:etc_t:s0 []",
            "recover did not put back {} (owner, mode, label, marks)\n{out}",
            f.display()
        );
    }
}

/// Two VMs of one tenant run under one static DAC label (allowed, see round 4). A's start is
/// killed just after its share's setuid-root tool (`0:0 4755`) was chowned to the static uid:
/// the file is now the uid's, writable by it, while B (same uid) runs. B's guest rewrites the
/// tool; `recover` then gives the rewritten file its original `0:0 4755` (no guard ctime: the
/// walk recorded nothing): a setuid-root program whose content a guest wrote.
#[test]
fn a_setuid_root_file_rewritten_by_a_static_uid_after_a_killed_start_never_gets_setuid_back() {
    let test =
        "a_setuid_root_file_rewritten_by_a_static_uid_after_a_killed_start_never_gets_setuid_back";
    if !root_or_skip(test) {
        return;
    }
    const STATIC: u32 = 70521;
    let h = Stack::new(true);
    let share = h.p("sa");
    user_dir(&share);
    let tool = share.join("tool");
    file_with(
        &tool,
        "#!/bin/sh\necho host tool\n",
        0,
        0,
        0o4755,
        "system_u:object_r:bin_t:s0",
    );
    let a = tenant_of_two(&h, STATIC, &share);
    start_killed_at(&h, &a, "dac.owner-changed:1");
    assert_eq!(std::fs::metadata(&tool).unwrap().uid(), STATIC);
    // B's VMM (the same static uid) rewrites the file it now owns.
    as_guest(
        STATIC,
        &[],
        &format!("printf '#!/bin/sh\\nid\\n' > {}", tool.display()),
    );
    let out = h.ok(&["recover"]);
    let m = std::fs::metadata(&tool).unwrap();
    let content = std::fs::read_to_string(&tool).unwrap();
    assert!(
        !(m.uid() == 0 && m.mode() & 0o4000 != 0 && content.contains("id\n")),
        "recover made a guest-written file setuid root: {} {content:?}\n{out}",
        owner(&tool)
    );
    h.ok(&["stop", "b"]);
}

/// A file whose owner and mode equal the share root's (`1000:1000 0755`, so the walk writes no
/// mark for it) but that carries a leftover `trusted.svirt.dac` mark from elsewhere (a root
/// `cp -a`/`rsync -aX`/`tar --xattrs` copy of a file svirt had marked: `=0:0:4755`). The walk
/// changes the file without replacing the leftover; after a kill, `recover` reads the leftover
/// as the file's original and makes user 1000's script a setuid-root program. The old
/// journal-first start put it back from the database (1000:1000 0755).
#[test]
fn a_leftover_mark_on_an_entry_holding_the_roots_value_is_never_given_to_it_by_recover() {
    let test =
        "a_leftover_mark_on_an_entry_holding_the_roots_value_is_never_given_to_it_by_recover";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    user_dir(&share);
    let script = share.join("script");
    file_with(
        &script,
        "#!/bin/sh\nid\n",
        1000,
        1000,
        0o755,
        "system_u:object_r:user_home_t:s0",
    );
    rustix::fs::lsetxattr(
        &script,
        "trusted.svirt.dac",
        b"=0:0:4755",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let dom = h.domain(
        "p",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    start_killed_at(&h, &dom, "dac.owner-changed:1");
    let out = h.ok(&["recover"]);
    assert_eq!(
        owner(&script),
        "1000:1000 755",
        "recover gave user 1000's script a value it never had (a leftover mark's)\n{out}"
    );
}

/// Two VMs of one tenant under one static DAC label; A's share root is a group directory
/// (`1000:1000 2775`, setgid, as shared project directories are). A's start is killed inside
/// the DAC walk, after the subdirectory `d` became the static uid's (0700). B's VMM (the same
/// uid) creates a program in it. `recover` sees an unrecorded entry holding the applied owner
/// and gives it the root's original *whole*, mode included: the guest's program becomes
/// `1000:1000 2775`, setgid group 1000. (A reclaim, which the journal-first start used for any
/// entry it did not know, gives the root's owner with `mode & 0755`: no setuid or setgid.)
#[test]
fn a_file_a_static_uid_creates_after_a_killed_start_never_gets_the_roots_setgid_mode() {
    let test = "a_file_a_static_uid_creates_after_a_killed_start_never_gets_the_roots_setgid_mode";
    if !root_or_skip(test) {
        return;
    }
    const STATIC: u32 = 70522;
    let h = Stack::new(true);
    let share = h.p("sa");
    user_dir(&share);
    std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o2775)).unwrap();
    let d = share.join("d");
    std::fs::create_dir(&d).unwrap();
    set_label(&d, "system_u:object_r:user_home_t:s0");
    std::os::unix::fs::chown(&d, Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o2775)).unwrap();
    let a = tenant_of_two(&h, STATIC, &share);
    // The only entry is `d`: its owner and mode are changed, then A is killed at the root.
    let hit = killed(
        &h.cfg,
        "dac.owner-changed:2",
        &["start", a.to_str().unwrap()],
    );
    assert!(hit, "the kill must land inside A's DAC step");
    assert_eq!(
        owner(&d),
        format!("{STATIC}:{STATIC} 700"),
        "the walk changed d"
    );
    let prog = d.join("prog");
    as_guest(
        STATIC,
        &[],
        &format!(
            "printf '#!/bin/sh\\nid\\n' > {0} && chmod 755 {0}",
            prog.display()
        ),
    );
    let out = h.ok(&["recover"]);
    let m = std::fs::metadata(&prog).unwrap();
    assert_eq!(
        m.mode() & 0o6000,
        0,
        "recover gave a guest-written program setuid/setgid bits: {}\n{out}",
        owner(&prog)
    );
    h.ok(&["stop", "b"]);
}

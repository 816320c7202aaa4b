//! Hostile round 2: a stop or recover that exits 0 while files in a share still carry the VM's
//! uid (and a setuid bit the guest set), with the uid released for the next VM.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use svirt_tests::*;

const ORIG: &str = "system_u:object_r:default_t:s0";
/// A stack with a share the domain `n` holds, and a setuid file the guest made in it.
fn started_share(h: &Stack) -> (std::path::PathBuf, std::path::PathBuf, u32) {
    let share = h.p("share");
    h.file("share/a", ORIG);
    set_label(&share, ORIG);
    let dom = h.domain(
        "n",
        &format!("[[filesystem]]\npath = \"{}\"\n", share.display()),
    );
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(h, "n");
    let made = share.join("made");
    as_guest(
        uid,
        &[h.shared_gid()],
        &format!("echo x > {0}; chmod 6755 {0}", made.display()),
    );
    (share, made, uid)
}

/// A stop killed after its intent (the share's items no longer held by the domain, phase
/// stopping), then the admin runs `svirt stop n` again rather than `recover`. That second stop
/// finds no item the domain holds, restores nothing, exits 0 and releases the uid (and the MCS
/// pair) while every file of the share still has it, the guest's setuid file included. The next
/// VM gets the same uid and owns the first VM's share.
#[test]
fn a_stop_after_a_killed_stop_never_releases_the_uid_while_the_share_still_has_it() {
    let test = "a_stop_after_a_killed_stop_never_releases_the_uid_while_the_share_still_has_it";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let (share, made, uid) = started_share(&h);
    let k = Command::new(svirt())
        .env("SVIRT_FAILPOINT", "restore.released:1")
        .arg("--config")
        .arg(&h.cfg)
        .args(["stop", "n"])
        .status()
        .unwrap();
    assert_eq!(k.signal(), Some(9), "the stop was not killed");
    let o = h.svirt(&["stop", "n"]);
    let a = owner(&share.join("a"));
    let m = owner(&made);
    if o.status.success() {
        assert!(
            !a.starts_with(&format!("{uid}:")) && !m.starts_with(&format!("{uid}:")),
            "stop exited 0 with share/a {a} and made {m} still the VM's"
        );
    }
    assert!(
        !m.starts_with(&format!("{uid}:")) || h.recorded("n"),
        "uid {uid} released while {} is {m}",
        made.display()
    );
    // Clean up what the test left.
    h.svirt(&["recover"]);
}

/// The share's filesystem is read-only at stop (remounted read-only after an error, say): no
/// owner can be put back, but EROFS counts as "this filesystem cannot hold the attribute", so the
/// stop reports every resource restored, exits 0, forgets the originals and releases the uid
/// and the MCS pair, while the share, its files and the guest's setuid file keep them. Once
/// the filesystem is writable again nothing (not even `recover`) puts them back.
#[test]
fn a_stop_on_a_share_whose_filesystem_went_read_only_is_a_failure_not_a_release() {
    let test = "a_stop_on_a_share_whose_filesystem_went_read_only_is_a_failure_not_a_release";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let (share, made, uid) = started_share(&h);
    // The stop runs in a private mount namespace where the share is a read-only bind mount of
    // itself; outside it the share stays writable.
    let Some(o) = in_private_mounts(
        "mount --bind \"$1\" \"$1\"; mount -o remount,bind,ro \"$1\"; \
         \"$2\" --config \"$3\" stop n",
        &[
            share.to_str().unwrap(),
            svirt().to_str().unwrap(),
            h.cfg.to_str().unwrap(),
        ],
    ) else {
        return skip(test, "mount namespaces cannot be made here");
    };
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    if err.contains("mount:") {
        return skip(test, &format!("cannot make a read-only bind mount: {err}"));
    }
    let m = owner(&made);
    assert!(
        !o.status.success(),
        "stop on a read-only share exited 0 with {} still {m}, share {}",
        made.display(),
        owner(&share)
    );
    assert!(
        h.recorded("n"),
        "uid {uid} released while {} is {m}",
        made.display()
    );
    // Writable again (outside the namespace it always was): the domain can be stopped.
    h.ok(&["stop", "n"]);
    assert_eq!(owner(&made), "0:0 755");
}

/// A per-filesystem DAC label (`[[filesystem.seclabel]]`, libvirt's per-device `<label>`) may
/// name a host account; it is not checked as a domain's static label is. Since the share root's
/// applied owner now counts as "the VM's", every file that host account (or its group) put into
/// the share while the VM ran is "reclaimed from the VM" at stop: chowned to the share's
/// original owner, group write and setgid stripped. The VM (a pool uid) never had them.
#[test]
fn host_files_in_a_share_with_a_per_device_owner_are_not_taken_from_the_host_at_stop() {
    let test = "host_files_in_a_share_with_a_per_device_owner_are_not_taken_from_the_host_at_stop";
    if !root_or_skip(test) {
        return;
    }
    let h = Stack::new(true);
    let share = h.p("share");
    h.file("share/a", ORIG);
    set_label(&share, ORIG);
    // A host account's ids (not in the VM pool, not root).
    let (huid, hgid) = (1000u32, 1000u32);
    let dom = h.domain(
        "o",
        &format!(
            "[[filesystem]]\npath = \"{}\"\n[[filesystem.seclabel]]\nmodel = \"dac\"\n\
             label = \"+{huid}:+{hgid}\"\n",
            share.display()
        ),
    );
    h.ok(&["start", dom.to_str().unwrap()]);
    // While the VM runs, the host account writes a file into the share, and root a setgid
    // tool of that group.
    let hostfile = share.join("hostfile");
    std::fs::write(&hostfile, "host data").unwrap();
    std::os::unix::fs::chown(&hostfile, Some(huid), Some(hgid)).unwrap();
    std::fs::set_permissions(
        &hostfile,
        std::os::unix::fs::PermissionsExt::from_mode(0o664),
    )
    .unwrap();
    let tool = share.join("tool");
    std::fs::write(&tool, "host tool").unwrap();
    std::os::unix::fs::chown(&tool, Some(0), Some(hgid)).unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o2775)).unwrap();
    let out = h.ok(&["stop", "o"]);
    assert_eq!(
        owner(&hostfile),
        format!("{huid}:{hgid} 664"),
        "the host's file was taken: {out}"
    );
    assert_eq!(
        owner(&tool),
        format!("0:{hgid} 2775"),
        "the host's tool was taken: {out}"
    );
}

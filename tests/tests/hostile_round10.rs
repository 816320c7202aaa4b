//! Hostile round 10: the stop's process scan (`Inner::processes`, `LinuxHost::pid_owner`)
//! under attack, from a guest that names itself.
//!
//! Found on 738b319, and holding since the commit that added this file: `/proc/PID/status` was
//! read as UTF-8 text, and its `Name:` line shows the process's name byte for byte. A guest
//! that runs (or renames itself, `PR_SET_NAME`) under a name that is not UTF-8 made the read
//! fail, was skipped as if gone, and its stop released the uid it still ran as.
//!
//! Every test works on temp trees as root; nothing of the host's is changed. A test that leaves
//! a guest process running draws its own uid range (`Stack::with_uids`, 210000 and up), since a
//! stop sees every process of the host.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use svirt_tests::*;

/// The bytes of `/proc/PID/status`'s `Name:` line.
fn proc_name(pid: u32) -> Option<Vec<u8>> {
    let status = std::fs::read(format!("/proc/{pid}/status")).ok()?;
    status
        .split(|b| *b == b'\n')
        .find_map(|l| l.strip_prefix(b"Name:\t"))
        .map(<[u8]>::to_vec)
}

/// The guest runs `sleep` copied under a name that is not UTF-8, as the domain's uid: the
/// kernel names the process after it. Its stop must be refused, naming the pid, and the
/// domain kept; once the guest is gone, the stop goes through.
#[test]
fn a_guest_whose_name_is_not_utf8_still_carries_its_uid() {
    let name = "a_guest_whose_name_is_not_utf8_still_carries_its_uid";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::with_uids(210_000, 210_999);
    let share = user_share(&h);
    let dom = h.share_domain("n", &share);
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(&h, "n");
    let bin = h.p("bin").join(OsStr::from_bytes(b"q\xff\xfeemu"));
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(system_tool("sleep"), &bin).unwrap();
    let mut guest = Command::new("/usr/bin/setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
        ])
        .arg(&bin)
        .arg("60")
        .spawn()
        .unwrap();
    let pid = guest.id();
    let mut named = None;
    for _ in 0..250 {
        named = proc_name(pid).filter(|n| std::str::from_utf8(n).is_err());
        if named.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let stop = h.svirt(&["stop", "n"]);
    let kept = h.recorded("n");
    let _ = guest.kill();
    let _ = guest.wait();
    let after = h.svirt(&["stop", "n"]);
    h.stop_all();
    assert!(
        named.is_some(),
        "the guest never ran under a name that is not UTF-8: {:?}",
        proc_name(pid)
    );
    assert!(
        stop.status.code() == Some(1) && kept && text(&stop).contains(&pid.to_string()),
        "stop while pid {pid} (named {named:?}) runs as uid {uid}: exit {:?}, domain kept: \
         {kept}: {}",
        stop.status.code(),
        text(&stop).trim()
    );
    assert!(
        after.status.success() && !h.recorded("n"),
        "the stop after the guest was gone failed: {}",
        text(&after).trim()
    );
}

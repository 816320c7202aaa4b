//! Hostile round 10: the stop's process scan (`Inner::processes`, `LinuxHost::pid_owner`)
//! under attack, from a guest that names itself.
//!
//! Found on 738b319, and holding since the commit that added this file: `/proc/PID/status` was
//! read as UTF-8 text, and its `Name:` line shows the process's name byte for byte. A guest
//! that runs (or renames itself, `PR_SET_NAME`) under a name that is not UTF-8 made the read
//! fail, was skipped as if gone, and its stop released the uid it still ran as. Its twin,
//! found reading that fix: `/proc/PID/stat` was read as text too, so the VMM whose pid `exec`
//! recorded was taken for dead under such a name (`status` said so, and `recover` stopped its
//! domain).
//!
//! Every test works on temp trees as root; nothing of the host's is changed. A test that leaves
//! a guest process running draws its own uid range (`Stack::with_uids`, 210000 and up), since a
//! stop sees every process of the host.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Command;

use svirt_tests::*;

/// A copy of `sleep` under a name that is not UTF-8, in a directory of `h` a VM uid can reach.
fn sleep_named_badly(h: &Stack) -> PathBuf {
    let bin = h.p("bin").join(OsStr::from_bytes(b"q\xff\xfeemu"));
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(system_tool("sleep"), &bin).unwrap();
    bin
}

/// Wait for `pid` to run under a name that is not UTF-8; that name.
fn named_badly(pid: u32) -> Option<Vec<u8>> {
    let mut name = None;
    wait_until(|| {
        name = proc_name(pid).filter(|n| std::str::from_utf8(n).is_err());
        name.is_some()
    });
    name
}

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
    let mut guest = vm_process_running(uid, &sleep_named_badly(&h));
    let pid = guest.id();
    let named = named_badly(pid);
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

/// The VMM `svirt exec` started (its pid recorded) runs under a name that is not UTF-8. It is
/// alive: `status` must say so, and `recover` must keep its domain (a dead VMM's domain is
/// stopped, which the guest's uid would then refuse) and leave its disk labeled.
#[test]
fn an_exec_vmm_whose_name_is_not_utf8_is_alive_for_status_and_recover() {
    let name = "an_exec_vmm_whose_name_is_not_utf8_is_alive_for_status_and_recover";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::dac_only(211_000, 211_999);
    let img = h.p("disk.img");
    std::fs::write(&img, "x").unwrap();
    let before = owner(&img);
    let dom = h.domain("x", &format!("[[disk]]\npath = \"{}\"\n", img.display()));
    h.ok(&["start", dom.to_str().unwrap()]);
    let mut vmm = Command::new(svirt())
        .arg("--config")
        .arg(&h.cfg)
        .args(["exec", "x", "--"])
        .arg(sleep_named_badly(&h))
        .arg("60")
        .spawn()
        .unwrap();
    let pid = vmm.id();
    let named = named_badly(pid);
    let status = || -> serde_json::Value {
        serde_json::from_slice(&h.svirt(&["--json", "status", "x"]).stdout).unwrap()
    };
    let recorded = status()["domains"][0]["pid"].as_u64() == Some(u64::from(pid));
    let alive = status()["domains"][0]["alive"].clone();
    let recover = h.svirt(&["recover"]);
    let kept = h.recorded("x");
    let labeled = owner(&img) != before;
    let _ = vmm.kill();
    let _ = vmm.wait();
    let after = h.svirt(&["recover"]);
    assert!(
        named.is_some() && recorded,
        "the VMM never ran as pid {pid} under a name that is not UTF-8 with its pid recorded: \
         {:?}, recorded: {recorded}",
        proc_name(pid)
    );
    assert_eq!(alive, true, "status of a running VMM named {named:?}");
    assert!(
        recover.status.success() && kept && labeled,
        "recover while the VMM runs: exit {:?}, domain kept: {kept}, disk still labeled: \
         {labeled}: {}",
        recover.status.code(),
        text(&recover).trim()
    );
    assert!(
        after.status.success() && !h.recorded("x") && owner(&img) == before,
        "recover after the VMM was gone: {}",
        text(&after).trim()
    );
}

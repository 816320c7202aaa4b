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
//! Found by a hostile tester on 83bab34: a guest that forks and lets its parent exit, over and
//! over, is at none of the pids the scan reads one after another, and the stop released its
//! uid while it ran (the next domain drew the uid, and the guest read that domain's disk). A
//! scan that finds nothing is now made again with the uid's processes stopped at once
//! (`Host::hold_uids`), and only the processes that scan finds are continued, one by one (the
//! first version continued every process it could signal: the kernel lets anyone continue a
//! process of its own session, whatever its uid). And `pid_alive` read `/proc/PID/stat` alone, so the VMM whose main
//! thread exited (a zombie leader, its other threads running) was "alive: false" in `status`.
//!
//! Found on 180a5fa: the same hopper, when the state is lost, beat the scan that rebuilds the
//! reservations from the host's processes (`recover`, or the start that finds the database
//! gone), and the next domain drew its uid on the first try. That scan is now made again with
//! every process of each pool uid the first one saw no process of held still
//! (`SecurityDriver::unseen_ids`).
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
    let (dom, img) = h.one_disk_domain("x");
    let before = owner(&img);
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

/// Build the C program `src` in `h` as `name`; `None` (and a skip line) without a compiler.
fn built(h: &Stack, test: &str, name: &str, src: &str) -> Option<PathBuf> {
    built_c(&h.p(""), test, name, src)
}

/// `hop UID BEAT STOP`: as root, becomes the reaper of what it starts, then starts a guest as
/// UID that forks and lets its parent exit, over and over (200 us apart), writing its
/// generation to BEAT, until STOP exists. The reaper (root) waits for every hopper.
const HOP: &str = r#"
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc != 4) return 2;
    uid_t uid = (uid_t)atol(argv[1]);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t first = fork();
    if (first == 0) {
        if (setgroups(0, 0) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid)) _exit(3);
        unsigned long gen = 0;
        for (;;) {
            pid_t p = fork();
            if (p < 0) { usleep(1000); continue; }
            if (p > 0) _exit(0);
            int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) { dprintf(fd, "%lu\n", ++gen); close(fd); }
            if (access(argv[3], F_OK) == 0) _exit(0);
            usleep(200);
        }
    }
    while (wait(0) > 0 || access(argv[3], F_OK) != 0) usleep(1000);
    return 0;
}
"#;

/// A running hopper (see [`HOP`]): its reaper, its heartbeat file, and the file whose
/// creation ends it.
struct Hopper {
    reaper: std::process::Child,
    beat: PathBuf,
    stop: PathBuf,
}

impl Hopper {
    /// End the guest: the processes of `uid` a hold left stopped are listed, and continued so
    /// that the guest can see it is told to end; then it is told, and reaped.
    fn finish(mut self, uid: u32) -> Vec<(u32, String)> {
        // A process being continued runs again within microseconds; one left stopped stays.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let left = stopped_processes_of(uid);
        for (pid, _) in &left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::SIGCONT,
            );
        }
        std::fs::write(&self.stop, "").unwrap();
        let _ = self.reaper.wait();
        left
    }
}

/// Start domain `g` of `h` (one disk) and a hopper running as its uid; `None` (and a skip
/// line) without a compiler.
fn started_with_hopper(h: &Stack, test: &str) -> Option<(u32, Hopper)> {
    let hop = built(h, test, "hop", HOP)?;
    let (dom, _) = h.one_disk_domain("g");
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(h, "g");
    let (beat, stop) = (h.p("beat"), h.p("stop"));
    std::fs::write(&beat, "0\n").unwrap();
    std::fs::set_permissions(&beat, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let reaper = Command::new(&hop)
        .arg(uid.to_string())
        .args([&beat, &stop])
        .spawn()
        .unwrap();
    Some((uid, Hopper { reaper, beat, stop }))
}

/// The guest's heartbeat: the generation its newest process wrote.
fn beat(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// A guest running as the domain's uid forks and lets its parent exit, over and over: each of
/// its processes lives some hundred microseconds, and the scan reads `/proc` one pid after
/// another. The stop must be refused while it runs, leave it running (it is let go after the
/// scan), and go through once it is gone.
#[test]
fn a_guest_that_keeps_changing_its_pid_still_holds_its_stop() {
    let name = "a_guest_that_keeps_changing_its_pid_still_holds_its_stop";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::dac_only(212_000, 212_999);
    let Some((uid, hopper)) = started_with_hopper(&h, name) else {
        return;
    };
    let beat_file = hopper.beat.clone();
    let hopping = wait_until(|| beat(&beat_file) > 100);
    let stops: Vec<_> = (0..5).map(|_| h.svirt(&["stop", "g"])).collect();
    let kept = h.recorded("g");
    let before = beat(&beat_file);
    let still_runs = wait_until(|| beat(&beat_file) > before + 10);
    let left_stopped = hopper.finish(uid);
    let after = wait_until(|| h.svirt(&["stop", "g"]).status.success());
    assert!(hopping, "the guest never hopped: beat {}", beat(&beat_file));
    for o in &stops {
        assert!(
            o.status.code() == Some(1) && text(o).contains("still running"),
            "a stop while the guest hopped as uid {uid}: exit {:?}: {}",
            o.status.code(),
            text(o).trim()
        );
    }
    assert!(kept, "the domain was released while its guest ran");
    assert!(still_runs, "the guest was left stopped after the scan");
    assert!(
        left_stopped.is_empty(),
        "the stops left processes of the guest's uid {uid} stopped: {left_stopped:?}"
    );
    assert!(
        after && !h.recorded("g"),
        "the stop once the guest was gone"
    );
}

/// `leader`: its main thread exits (`pthread_exit`) while another thread sleeps a minute.
const LEADER: &str = "#include <pthread.h>\n#include <unistd.h>\n\
    static void *w(void *a) { (void)a; sleep(60); return 0; }\n\
    int main(void) { pthread_t t; pthread_create(&t, 0, w, 0); pthread_exit(0); }\n";

/// The VMM `svirt exec` started runs on in a thread after its main thread exited: its leader
/// is a zombie with `Threads: 2`. It is alive: `status` must say so and `recover` keep it.
#[test]
fn an_exec_vmm_whose_main_thread_exited_is_alive_for_status_and_recover() {
    let name = "an_exec_vmm_whose_main_thread_exited_is_alive_for_status_and_recover";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::dac_only(213_000, 213_999);
    let Some(leader) = built(&h, name, "leader", LEADER) else {
        return;
    };
    let (dom, _) = h.one_disk_domain("z");
    h.ok(&["start", dom.to_str().unwrap()]);
    let mut vmm = Command::new(svirt())
        .arg("--config")
        .arg(&h.cfg)
        .args(["exec", "z", "--"])
        .arg(&leader)
        .spawn()
        .unwrap();
    let pid = vmm.id();
    let status_line = |key: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
            })
    };
    let zombie_leader = wait_until(|| {
        status_line("State:").is_some_and(|s| s.starts_with('Z'))
            && status_line("Threads:").as_deref() == Some("2")
    });
    let st: serde_json::Value =
        serde_json::from_slice(&h.svirt(&["--json", "status", "z"]).stdout).unwrap();
    let recover = h.svirt(&["recover"]);
    let kept = h.recorded("z");
    let _ = vmm.kill();
    let _ = vmm.wait();
    let after = h.svirt(&["recover"]);
    assert!(
        zombie_leader,
        "the VMM's leader never became a zombie with a live thread"
    );
    assert_eq!(st["domains"][0]["pid"].as_u64(), Some(u64::from(pid)));
    assert_eq!(
        st["domains"][0]["alive"], true,
        "status of the running VMM {pid}"
    );
    assert!(
        recover.status.success() && kept,
        "recover while the VMM runs: exit {:?}, kept: {kept}: {}",
        recover.status.code(),
        text(&recover).trim()
    );
    assert!(
        after.status.success() && !h.recorded("z"),
        "recover after the VMM was gone: {}",
        text(&after).trim()
    );
}

/// A process of another uid, stopped on purpose in the session svirt runs in, stays stopped
/// across a stop that holds the domain's uid still: the kernel lets any process continue one
/// of its own session, so continuing "every process it may signal" would reach it.
#[test]
fn a_stop_continues_no_process_but_the_ones_it_held() {
    let name = "a_stop_continues_no_process_but_the_ones_it_held";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::dac_only(214_000, 214_999);
    let (dom, _) = h.one_disk_domain("p");
    h.ok(&["start", dom.to_str().unwrap()]);
    let mut paused = Command::new(system_tool("sleep"))
        .arg("60")
        .spawn()
        .unwrap();
    let pid = paused.id();
    let state = || proc_state(pid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGSTOP,
    )
    .unwrap();
    let stopped_before = wait_until(|| state().starts_with('T'));
    let stop = h.svirt(&["stop", "p"]);
    let after = state();
    let _ = paused.kill();
    let _ = paused.wait();
    assert!(
        stopped_before,
        "the paused process never stopped: {}",
        state()
    );
    assert!(stop.status.success(), "stop: {}", text(&stop).trim());
    assert!(
        after.starts_with('T'),
        "a stop continued a paused process of another uid in its session: State {after}"
    );
}

/// The state is lost while a guest keeps changing its pid as its domain's uid. The start that
/// finds the database gone, and `recover`, rebuild the reservations from the host's processes;
/// a scan that reads `/proc` one pid after another misses the hopper, and the uid it runs as
/// was handed to the next domain. It must stay reserved whichever of the two rebuilds it.
#[test]
fn a_lost_state_never_hands_out_the_uid_of_a_guest_that_keeps_changing_its_pid() {
    let name = "a_lost_state_never_hands_out_the_uid_of_a_guest_that_keeps_changing_its_pid";
    if !root_or_skip(name) {
        return;
    }
    // One uid to draw: 215001 is the shared group.
    let h = Stack::dac_only(215_000, 215_001);
    let Some((uid, hopper)) = started_with_hopper(&h, name) else {
        return;
    };
    let beat_file = hopper.beat.clone();
    let hopping = wait_until(|| beat(&beat_file) > 100);
    let other = h.p("other.img");
    std::fs::write(&other, "y").unwrap();
    let next = h.domain("n", &format!("[[disk]]\npath = \"{}\"\n", other.display()));
    let state = h.p("state");
    let mut handed = None;
    let mut outputs = Vec::new();
    for round in 0..6 {
        for f in ["svirt.db", "svirt.db-wal", "svirt.db-shm", "svirt.lock"] {
            let _ = std::fs::remove_file(state.join(f));
        }
        if round % 2 == 1 {
            outputs.push(text(&h.svirt(&["recover"])));
        }
        let o = h.svirt(&["start", next.to_str().unwrap()]);
        outputs.push(text(&o));
        if o.status.success() {
            handed = Some((round, uid_of(&h, "n")));
            break;
        }
    }
    let left_stopped = hopper.finish(uid);
    assert!(hopping, "the guest never hopped: beat {}", beat(&beat_file));
    assert!(
        left_stopped.is_empty(),
        "a start's hold of the pool's unseen uids left processes of uid {uid} stopped: \
         {left_stopped:?}"
    );
    assert!(
        handed.is_none(),
        "after the state was lost (round {:?}), the next domain drew uid {:?} while the guest \
         still ran as {uid}:\n{}",
        handed.map(|h| h.0),
        handed.map(|h| h.1),
        outputs.join("\n")
    );
    assert!(
        outputs
            .iter()
            .filter(|o| !o.contains("recovered"))
            .all(|o| o.contains("ids exhausted") && o.contains("uids 215000-215001")),
        "a refused start should say the pool's uids are all held:\n{}",
        outputs.join("\n")
    );
}

//! Hostile round 11: the holds that make the process scans see a guest that keeps changing its
//! pid (`Host::hold_uids`, `SecurityDriver::unseen_ids`), a share's device nodes at stop, and a
//! VMM started in a domain whose start never finished.
//!
//! Found by a hostile tester on 60d29a8:
//! - the thread that stopped and continued a uid's processes ran with that uid as its real
//!   uid, so a guest of that uid could signal it: a guest whose handler for SIGCONT sent
//!   SIGSTOP or SIGKILL everywhere stopped or killed svirt in the middle of a recover or a
//!   stop (2 starts in 40 died). The sender's real uid is now one no process has;
//! - the hold reaches every process the kernel lets that sender signal, and the release
//!   continued only those whose real uid was the held one: a process with the uid as its saved
//!   uid, or one inside a user namespace the uid owns (root inside), was left stopped for good.
//!   The release now continues what the held scan shows stopped and the scan before did not;
//! - a stop gave a device node the guest's uid owned to the share's owner (a raw block device
//!   readable by that owner); it now goes to root alone;
//! - `exec` ran a VMM in a domain whose start was killed half way (a half-relabeled share).
//!
//! Found by a second round on 5427fa7: a process carrying the uid only as a supplementary group
//! did not hold the stop; a process whose main thread had exited showed the zombie leader's
//! state, so the threads the hold stopped were never continued (nor a traced one, whose state
//! reads `t`).
//!
//! Every test works on temp trees as root, with uid ranges of its own (216000 and up).

use std::path::Path;
use std::process::Command;

use svirt_core::host::{Host, LinuxHost};
use svirt_tests::*;

/// `catch OUT`: writes the real uid of the sender of every SIGCONT it gets to OUT, and sleeps.
const CATCH: &str = r#"
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static const char *out;
static void on_cont(int sig, siginfo_t *si, void *ctx) {
    (void)sig; (void)ctx;
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) { dprintf(fd, "%u\n", (unsigned)si->si_uid); close(fd); }
}
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    out = argv[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_cont;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGCONT, &sa, 0);
    for (int i = 0; i < 600; i++) sleep(1);
    return 0;
}
"#;

/// A guest of the uid a hold signals must not be able to signal back the thread that sends:
/// the kernel checks the guest's uids against that thread's real and saved uid, so the thread's
/// real uid must be none a guest has. Its SIGCONT (which a process can catch, and whose sender's
/// real uid it reads) shows which real uid the thread runs with.
#[test]
fn the_thread_that_signals_a_guest_runs_with_a_real_uid_no_guest_has() {
    let name = "the_thread_that_signals_a_guest_runs_with_a_real_uid_no_guest_has";
    if !root_or_skip(name) {
        return;
    }
    let d = tmp();
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let Some(catch) = built_c(d.path(), name, "catch", CATCH) else {
        return;
    };
    let out = d.path().join("sender");
    let uid = 216_001;
    let mut guest = Command::new("/usr/bin/setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
        ])
        .arg(&catch)
        .arg(&out)
        .spawn()
        .unwrap();
    wait_runs_as(&mut guest, uid);
    // Let it install its handler.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let host = LinuxHost::default();
    let reached = host.continue_as(&[uid], &[guest.id()]).unwrap();
    let sender = wait_until(|| out.exists()).then(|| std::fs::read_to_string(&out).unwrap());
    let _ = guest.kill();
    let _ = guest.wait();
    assert_eq!(
        reached,
        vec![guest.id()],
        "the SIGCONT did not reach the guest"
    );
    let sender: u32 = sender
        .expect("the guest never got the SIGCONT")
        .trim()
        .parse()
        .unwrap();
    assert_ne!(
        sender, uid,
        "the thread signalling uid {uid}'s processes ran as uid {uid}: they could stop or kill it"
    );
    assert_ne!(sender, 0, "the thread signalled as root");
    // Its own process's sender uid: two svirt processes holding uids at once must not be able
    // to signal (stop) each other, and kill(-1) from one reaches the other's main thread where
    // the hold runs on it (the CLI) whenever their real uids are the same.
    assert_eq!(
        sender,
        svirt_core::host::signal_sender_uid(),
        "the signalling thread's real uid is not this process's own"
    );
}

/// `recover` holds every pool uid it saw no process of: for a uid that owns a user namespace,
/// the hold reaches a root process inside that namespace (none of its ids is the uid, so the
/// scan saw no process of it). It must run again afterwards; a process stopped on purpose
/// before stays stopped. (A process with a pool uid as its saved uid is not held: the scan
/// before the hold sees it, and its uid is not one the recover holds.)
#[test]
fn a_recover_leaves_no_process_stopped_that_it_held() {
    let name = "a_recover_leaves_no_process_stopped_that_it_held";
    if !root_or_skip(name) {
        return;
    }
    if !tools_or_skip(name, &["/usr/bin/unshare", "/usr/bin/nsenter"]) {
        return;
    }
    let h = Stack::dac_only(216_100, 216_109);
    // Root inside a user namespace a pool uid owns, once its owner's process is gone.
    let Some(mut inside) = root_in_user_namespace_of(216_105, Path::new("/bin/sleep"), &["60"])
    else {
        skip(name, "no user namespace for an unprivileged uid here");
        return;
    };
    // A pool uid's process stopped on purpose.
    let mut paused = vm_process(216_107);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(paused.id() as i32),
        nix::sys::signal::SIGSTOP,
    )
    .unwrap();
    let paused_before = wait_until(|| proc_state(paused.id()).starts_with('T'));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let recover = h.svirt(&["recover"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (s_inside, s_paused) = (proc_state(inside.id()), proc_state(paused.id()));
    for c in [&mut inside, &mut paused] {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert!(paused_before, "the paused process never stopped");
    assert!(recover.status.success(), "recover: {}", text(&recover));
    assert!(
        !s_inside.starts_with('T'),
        "recover left the process in 216105's user namespace stopped: {s_inside}: {}",
        text(&recover)
    );
    assert!(
        s_paused.starts_with('T'),
        "recover continued a process stopped on purpose: {s_paused}"
    );
}

/// A device node in the share that the guest's uid owns at stop (root planted it while the VM
/// ran, or the guest made a whiteout `c 0 0`) is never given to the share's owner: opening it
/// opens the device. It goes to root, readable by root alone.
#[test]
fn a_device_node_the_guest_owns_at_stop_goes_to_root_alone() {
    let name = "a_device_node_the_guest_owns_at_stop_goes_to_root_alone";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::dac_only(216_200, 216_209);
    let share = h.p("share");
    std::fs::create_dir(&share).unwrap();
    std::os::unix::fs::chown(&share, Some(1000), Some(1000)).unwrap();
    let dom = h.share_domain("d", &share);
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(&h, "d");
    let dev = share.join("loop");
    let st = Command::new("/usr/bin/mknod")
        .arg(&dev)
        .args(["b", "7", "202"])
        .status()
        .unwrap();
    assert!(st.success(), "mknod failed");
    std::os::unix::fs::chown(&dev, Some(uid), Some(uid)).unwrap();
    std::fs::set_permissions(&dev, std::os::unix::fs::PermissionsExt::from_mode(0o660)).unwrap();
    let stop = h.svirt(&["stop", "d"]);
    let m = std::fs::symlink_metadata(&dev).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert!(stop.status.success(), "stop: {}", text(&stop));
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o7777),
        (0, 0, 0o600),
        "the guest's device node after stop"
    );
}

/// A start killed after it recorded the domain, before it finished, leaves the domain
/// `starting`: `exec` must refuse to run a VMM in it (its resources are half changed), and
/// `recover` puts it back.
#[test]
fn exec_refuses_a_domain_whose_start_never_finished() {
    let name = "exec_refuses_a_domain_whose_start_never_finished";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::dac_only(216_300, 216_309);
    let (dom, _) = h.one_disk_domain("e");
    start_killed_at(&h, &dom, "state.record-written:1");
    let exec = h.svirt(&["exec", "e", "--", "/bin/true"]);
    let recover = h.svirt(&["recover"]);
    assert_eq!(exec.status.code(), Some(1), "exec: {}", text(&exec));
    assert!(
        text(&exec).contains("not running (it is starting)"),
        "exec: {}",
        text(&exec)
    );
    assert!(recover.status.success(), "recover: {}", text(&recover));
    assert!(!h.recorded("e"), "recover left the unfinished start");
}

/// A process that carries the domain's uid only as a supplementary group holds its stop: a
/// file the VM made group-readable stays open to it once the uid is drawn again.
#[test]
fn a_process_with_the_domains_uid_as_a_supplementary_group_holds_its_stop() {
    let name = "a_process_with_the_domains_uid_as_a_supplementary_group_holds_its_stop";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::dac_only(216_400, 216_409);
    let (dom, _) = h.one_disk_domain("s");
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(&h, "s");
    let mut member = Command::new("/usr/bin/setpriv")
        .args([
            "--reuid=216499",
            "--regid=216499",
            &format!("--groups={uid}"),
            "/bin/sleep",
            "60",
        ])
        .spawn()
        .unwrap();
    wait_runs_as(&mut member, 216_499);
    let stop = h.svirt(&["stop", "s"]);
    let kept = h.recorded("s");
    let _ = member.kill();
    let _ = member.wait();
    assert!(
        stop.status.code() == Some(1) && text(&stop).contains("still running") && kept,
        "a stop while a process had uid {uid} as a group: {}",
        text(&stop)
    );
    h.ok(&["stop", "s"]);
}

/// `leader`: its main thread exits (`pthread_exit`) while another thread sleeps a minute.
const LEADER: &str = "#include <pthread.h>\n#include <unistd.h>\n\
    static void *w(void *a) { (void)a; sleep(60); return 0; }\n\
    int main(void) { pthread_t t; pthread_create(&t, 0, w, 0); pthread_exit(0); }\n";

/// The states of every thread of `pid`.
fn thread_states(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let st = std::fs::read_to_string(t.path().join("stat")).ok()?;
            Some(st.rsplit_once(')')?.1.split_whitespace().next()?.to_owned())
        })
        .collect()
}

/// Domain `z` started on `h`, and the C program `source` (built as `program`) running as root
/// inside a user namespace its uid owns, which the stop's hold reaches. None, skipped, where
/// the tools or user namespaces are missing (the domain is stopped again).
fn started_with_root_inside(
    h: &Stack,
    name: &str,
    program: &str,
    source: &str,
) -> Option<std::process::Child> {
    if !tools_or_skip(name, &["/usr/bin/unshare", "/usr/bin/nsenter"]) {
        return None;
    }
    let built = built_c(&h.p(""), name, program, source)?;
    let (dom, _) = h.one_disk_domain("z");
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(h, "z");
    let inside = root_in_user_namespace_of(uid, &built, &[]);
    if inside.is_none() {
        skip(name, "no user namespace for an unprivileged uid here");
        h.ok(&["stop", "z"]);
    }
    inside
}

/// The stop's hold of the domain's uid reaches a root process inside a user namespace the uid
/// owns. When that process's main thread has exited, its state is the zombie leader's: the
/// hold must still continue its other threads.
#[test]
fn a_stop_leaves_no_thread_stopped_in_a_process_whose_main_thread_exited() {
    let name = "a_stop_leaves_no_thread_stopped_in_a_process_whose_main_thread_exited";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::dac_only(216_500, 216_509);
    let Some(mut inside) = started_with_root_inside(&h, name, "leader", LEADER) else {
        return;
    };
    let pid = inside.id();
    let zombie_leader =
        wait_until(|| proc_state(pid).starts_with('Z') && thread_states(pid).len() == 2);
    let stop = h.svirt(&["stop", "z"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let states = thread_states(pid);
    let _ = inside.kill();
    let _ = inside.wait();
    assert!(
        zombie_leader,
        "the leader never became a zombie with a thread"
    );
    assert!(stop.status.success(), "stop: {}", text(&stop));
    assert!(
        !states.iter().any(|s| s == "T" || s == "t"),
        "the stop left threads of process {pid} stopped: {states:?}"
    );
}

/// `vforker`: vforks a child that sleeps a second and exits, then sleeps a minute. While the
/// child runs, the parent waits in the kernel (`D`), where a SIGSTOP stays pending: it stops
/// only once the child is gone.
const VFORKER: &str = "#include <unistd.h>\n\
    int main(void) { if (vfork() == 0) { usleep(1000000); _exit(0); } sleep(60); return 0; }\n";

/// The stop's hold reaches a root process inside a user namespace the domain's uid owns while
/// it waits for its vfork child: the SIGSTOP stays pending, and the held scan reads it running
/// (`D`). The release must continue it all the same (SIGCONT drops the pending stop), or it
/// stops for good once its child exits.
#[test]
fn a_stop_leaves_no_process_stopped_whose_stop_was_still_pending() {
    let name = "a_stop_leaves_no_process_stopped_whose_stop_was_still_pending";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::dac_only(216_600, 216_609);
    let Some(mut inside) = started_with_root_inside(&h, name, "vforker", VFORKER) else {
        return;
    };
    let pid = inside.id();
    let waiting = wait_until(|| proc_state(pid).starts_with('D'));
    let stop = h.svirt(&["stop", "z"]);
    // The child exits a second after the vfork; a stop left pending would take effect then.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let state = proc_state(pid);
    let _ = inside.kill();
    let _ = inside.wait();
    assert!(waiting, "the process never waited for its vfork child");
    assert!(stop.status.success(), "stop: {}", text(&stop));
    assert!(
        !state.starts_with('T'),
        "the stop left process {pid} stopped once its vfork child exited: {state}"
    );
}

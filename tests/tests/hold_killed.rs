//! An svirt killed while it holds processes still (a stop's scan for the processes that may
//! carry the domain's uid, a recover's for the uids it saw no process of): the processes the
//! hold stopped run again once the next operation takes the lock, and a process stopped on
//! purpose before the hold stays stopped.
//!
//! Before the hold was noted in the lock file, what it stopped stayed stopped for good: the
//! next operation saw those processes stopped before its own hold and took them for processes
//! stopped on purpose.
//!
//! Every test works on temp trees as root, with uid ranges of its own (216300 and up).

use std::path::Path;

use svirt_tests::*;

fn stop_signal(child: &std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGSTOP,
    )
    .unwrap();
}

fn end(children: &mut [&mut std::process::Child]) {
    for c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// `recover` killed while it holds every pool uid it saw no process of: a root process inside
/// a user namespace a pool uid owns (none of its ids is in the pool, so the uid is one the scan
/// saw no process of) is stopped by that hold (proved), and runs again after the next
/// `recover`; a pool uid's process stopped on purpose stays stopped.
#[test]
fn a_recover_killed_while_it_holds_leaves_no_process_stopped_after_the_next_operation() {
    let name = "a_recover_killed_while_it_holds_leaves_no_process_stopped_after_the_next_operation";
    if !root_or_skip(name) || !tools_or_skip(name, &["/usr/bin/unshare", "/usr/bin/nsenter"]) {
        return;
    }
    let h = Stack::dac_only(216_300, 216_309);
    let Some(mut inside) = root_in_user_namespace_of(216_305, Path::new("/bin/sleep"), &["60"])
    else {
        skip(name, "no user namespace for an unprivileged uid here");
        return;
    };
    let mut paused = vm_process(216_307);
    stop_signal(&paused);
    let paused_before = wait_until(|| proc_state(paused.id()).starts_with('T'));
    let hit = killed(&h.cfg, "hold.held:1", &["recover"]);
    let held = wait_until(|| proc_state(inside.id()).starts_with('T'));
    let again = h.svirt(&["recover"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (s_inside, s_paused) = (proc_state(inside.id()), proc_state(paused.id()));
    end(&mut [&mut inside, &mut paused]);
    assert!(paused_before, "the paused process never stopped");
    assert!(hit, "the kill at hold.held must land inside the recover");
    assert!(
        held,
        "the killed recover's hold never stopped the process in 216305's user namespace"
    );
    assert!(again.status.success(), "recover: {}", text(&again));
    assert!(
        !s_inside.starts_with('T'),
        "the next recover left stopped what the killed one held: {s_inside}"
    );
    assert!(
        s_paused.starts_with('T'),
        "a process stopped on purpose was continued: {s_paused}"
    );
}

/// `stop` killed while it holds the processes of the domain's uid: a root process inside a
/// user namespace that uid owns (none of its ids is the uid, so it does not hold the stop) is
/// stopped by the hold (proved), and runs again once the next stop takes the lock; that stop
/// goes through.
#[test]
fn a_stop_killed_while_it_holds_leaves_no_process_stopped_after_the_next_operation() {
    let name = "a_stop_killed_while_it_holds_leaves_no_process_stopped_after_the_next_operation";
    if !root_or_skip(name) || !tools_or_skip(name, &["/usr/bin/unshare", "/usr/bin/nsenter"]) {
        return;
    }
    let h = Stack::dac_only(216_320, 216_329);
    let (dom, _) = h.one_disk_domain("held");
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(&h, "held");
    let Some(mut inside) = root_in_user_namespace_of(uid, Path::new("/bin/sleep"), &["60"]) else {
        skip(name, "no user namespace for an unprivileged uid here");
        h.stop_all();
        return;
    };
    let hit = killed(&h.cfg, "hold.held:1", &["stop", "held"]);
    let held = wait_until(|| proc_state(inside.id()).starts_with('T'));
    let again = h.svirt(&["stop", "held"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let s_inside = proc_state(inside.id());
    end(&mut [&mut inside]);
    assert!(hit, "the kill at hold.held must land inside the stop");
    assert!(
        held,
        "the killed stop's hold never stopped the process in uid {uid}'s user namespace"
    );
    assert!(again.status.success(), "stop: {}", text(&again));
    assert!(
        !s_inside.starts_with('T'),
        "the next stop left stopped what the killed one held: {s_inside}"
    );
    assert!(!h.recorded("held"), "the domain is still recorded");
}

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

/// `stop` of domain `held` killed while it holds its uid: returns the root process inside a
/// user namespace that uid owns, stopped by that hold (asserted), or `None` (and the test
/// skips) where no unprivileged uid may make a user namespace.
fn stop_killed_in_hold(h: &Stack, name: &str) -> Option<(u32, std::process::Child)> {
    let (dom, _) = h.one_disk_domain("held");
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(h, "held");
    let Some(mut inside) = root_in_user_namespace_of(uid, Path::new("/bin/sleep"), &["60"]) else {
        skip(name, "no user namespace for an unprivileged uid here");
        h.stop_all();
        return None;
    };
    let hit = killed(&h.cfg, "hold.held:1", &["stop", "held"]);
    let held = wait_until(|| proc_state(inside.id()).starts_with('T'));
    if !(hit && held) {
        end(&mut [&mut inside]);
        panic!("the kill at hold.held must land inside the stop ({hit}) and the hold stop the process ({held})");
    }
    Some((uid, inside))
}

/// After a stop killed in its hold, the next operation continues only what that hold could
/// have stopped. A process of another uid and a root process, both in svirt's session (where
/// anyone may continue them) and stopped on purpose after the kill, stay stopped; the held
/// process runs again.
#[test]
fn the_next_operation_continues_only_what_the_killed_hold_could_have_stopped() {
    let name = "the_next_operation_continues_only_what_the_killed_hold_could_have_stopped";
    if !root_or_skip(name) || !tools_or_skip(name, &["/usr/bin/unshare", "/usr/bin/nsenter"]) {
        return;
    }
    let h = Stack::dac_only(216_340, 216_349);
    let Some((uid, mut inside)) = stop_killed_in_hold(&h, name) else {
        return;
    };
    // Paused on purpose after the kill: another domain's VMM (another pool uid) and a root
    // job, both children of this test, in the session svirt runs in.
    let other = if uid == 216_348 { 216_347 } else { 216_348 };
    let mut neighbour = vm_process(other);
    let mut job = std::process::Command::new("/bin/sleep")
        .arg("60")
        .spawn()
        .unwrap();
    stop_signal(&neighbour);
    stop_signal(&job);
    let paused = wait_until(|| {
        proc_state(neighbour.id()).starts_with('T') && proc_state(job.id()).starts_with('T')
    });
    let again = h.svirt(&["stop", "held"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (s_inside, s_neighbour, s_job) = (
        proc_state(inside.id()),
        proc_state(neighbour.id()),
        proc_state(job.id()),
    );
    end(&mut [&mut inside, &mut neighbour, &mut job]);
    assert!(paused, "the paused processes never stopped");
    assert!(again.status.success(), "stop: {}", text(&again));
    assert!(
        !s_inside.starts_with('T'),
        "the held process stayed stopped: {s_inside}"
    );
    assert!(
        s_neighbour.starts_with('T'),
        "uid {other}'s process, paused on purpose, was continued: {s_neighbour}"
    );
    assert!(
        s_job.starts_with('T'),
        "a root job paused on purpose was continued: {s_job}"
    );
}

/// The note holds the ids the killed hold held, not only the domain's name: an operation
/// under another uid pool (here one svirt then refuses), and one after the state database
/// was lost, still continue what the hold stopped. An operation whose stack has no driver of
/// the hold keeps the note for one that has.
#[test]
fn a_killed_hold_is_let_go_under_another_pool_and_after_the_state_is_lost() {
    let name = "a_killed_hold_is_let_go_under_another_pool_and_after_the_state_is_lost";
    if !root_or_skip(name) || !tools_or_skip(name, &["/usr/bin/unshare", "/usr/bin/nsenter"]) {
        return;
    }
    let state = |h: &Stack| h.p("state");
    // Another pool over the same state directory.
    let h = Stack::dac_only(216_360, 216_369);
    let Some((_, mut inside)) = stop_killed_in_hold(&h, name) else {
        return;
    };
    let other_pool = h.p("other-pool.toml");
    std::fs::write(
        &other_pool,
        format!(
            "state_dir = \"{}\"\n[[driver]]\ndriver = \"dac\"\nuid_range = \"216370-216379\"\n",
            state(&h).display()
        ),
    )
    .unwrap();
    let _ = run(&other_pool, &["recover"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let under_other_pool = proc_state(inside.id());
    end(&mut [&mut inside]);
    h.stop_all();
    assert!(
        !under_other_pool.starts_with('T'),
        "an operation under another pool left the held process stopped: {under_other_pool}"
    );

    // A stack without the driver that held keeps the note; the state database lost.
    let h = Stack::dac_only(216_380, 216_389);
    let Some((_, mut inside)) = stop_killed_in_hold(&h, name) else {
        return;
    };
    let no_dac = h.p("no-dac.toml");
    std::fs::write(
        &no_dac,
        format!(
            "state_dir = \"{}\"\n[[driver]]\ndriver = \"none\"\n",
            state(&h).display()
        ),
    )
    .unwrap();
    let _ = run(&no_dac, &["recover"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let without_dac = proc_state(inside.id());
    for f in ["svirt.db", "svirt.db-wal", "svirt.db-shm"] {
        let _ = std::fs::remove_file(state(&h).join(f));
    }
    let lost = h.svirt(&["recover"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let after_loss = proc_state(inside.id());
    end(&mut [&mut inside]);
    assert!(
        without_dac.starts_with('T'),
        "a stack without the dac driver continued what it cannot tell apart: {without_dac}"
    );
    assert!(lost.status.success(), "recover: {}", text(&lost));
    assert!(
        !after_loss.starts_with('T'),
        "the hold's note was lost with the stack that had no dac driver, or with the state database: {after_loss}"
    );
}

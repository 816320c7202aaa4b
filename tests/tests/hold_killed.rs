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
    let Some((_, mut inside)) = stop_killed_in_hold(&h, name) else {
        return;
    };
    let again = h.svirt(&["stop", "held"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let s_inside = proc_state(inside.id());
    end(&mut [&mut inside]);
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

/// `/bin/sleep 60` run by root in a user namespace that `uid` owns, nested in one root owns
/// (mapped whole): a sender with effective uid `uid` may not signal it (the kernel grants a
/// namespace owner's capabilities to a sender of the namespace just above only). Returns the
/// process and the outer namespace's holder, to be killed.
fn root_nested_below_a_root_namespace(uid: u32) -> (std::process::Child, Vec<std::process::Child>) {
    let sleep = std::fs::canonicalize("/bin/sleep").unwrap();
    let runs = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == sleep);
    let ns = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/user")).ok();
    let outer = std::process::Command::new("/usr/bin/unshare")
        .args(["-U", "/bin/sleep", "60"])
        .spawn()
        .unwrap();
    assert!(
        wait_until(|| runs(outer.id())),
        "the outer namespace never ran"
    );
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{}/{map}", outer.id()), "0 0 4294967295").unwrap();
    }
    let inner = std::process::Command::new("/usr/bin/nsenter")
        .args(["-t", &outer.id().to_string(), "-U", "/usr/bin/setpriv"])
        .args(user_namespace_made_by(uid))
        .spawn()
        .unwrap();
    assert!(
        wait_until(|| runs(inner.id()) && ns(inner.id()) != ns(outer.id())),
        "the inner namespace never ran"
    );
    let victim = std::process::Command::new("/usr/bin/nsenter")
        .args([
            "-t",
            &inner.id().to_string(),
            "-U",
            "--preserve-credentials",
        ])
        .args(["/bin/sleep", "60"])
        .spawn()
        .unwrap();
    assert!(
        wait_until(|| ns(victim.id()).is_some() && ns(victim.id()) == ns(inner.id())),
        "nsenter never entered the inner namespace"
    );
    // The inner namespace's first process runs as `uid` (it would hold the stop); the
    // namespace lives on with the victim.
    let mut inner = inner;
    end(&mut [&mut inner]);
    (victim, vec![outer])
}

/// A process of a user namespace the held uid owns, nested in one root owns, is out of the
/// hold's reach: after a stop killed in its hold, the next stop leaves it stopped when it was
/// paused on purpose meanwhile (it continued it when the release matched the owner of any
/// namespace up the chain).
#[test]
fn a_process_nested_below_a_root_namespace_is_not_continued_by_a_release() {
    let name = "a_process_nested_below_a_root_namespace_is_not_continued_by_a_release";
    if !root_or_skip(name)
        || !tools_or_skip(
            name,
            &["/usr/bin/unshare", "/usr/bin/nsenter", "/usr/bin/setpriv"],
        )
    {
        return;
    }
    let h = Stack::dac_only(216_390, 216_399);
    let Some((uid, mut inside)) = stop_killed_in_hold(&h, name) else {
        return;
    };
    let (mut nested, mut holders) = root_nested_below_a_root_namespace(uid);
    stop_signal(&nested);
    let paused = wait_until(|| proc_state(nested.id()).starts_with('T'));
    let again = h.svirt(&["stop", "held"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (s_inside, s_nested) = (proc_state(inside.id()), proc_state(nested.id()));
    end(&mut [&mut inside, &mut nested]);
    for c in &mut holders {
        end(&mut [c]);
    }
    assert!(paused, "the nested process never stopped");
    assert!(again.status.success(), "stop: {}", text(&again));
    assert!(
        !s_inside.starts_with('T'),
        "the held process stayed stopped: {s_inside}"
    );
    assert!(
        s_nested.starts_with('T'),
        "a process out of the hold's reach, paused on purpose, was continued: {s_nested}"
    );
}

/// Read system calls made so far by `pid` (`/proc/PID/io`).
fn syscalls_read(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("syscr:").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0)
}

/// A traced process reads stopped (`t`) whenever its tracer holds it in a syscall stop. The
/// scan before a stop's hold took that for a stop made on purpose, and the release never
/// continued what the hold's SIGSTOP then stopped for good (4 stops in 6 left one so). A
/// process under strace that the hold reaches (root in a user namespace the uid owns) runs on
/// after every stop.
#[test]
fn a_stop_leaves_no_traced_process_stopped() {
    let name = "a_stop_leaves_no_traced_process_stopped";
    if !root_or_skip(name)
        || !tools_or_skip(
            name,
            &["/usr/bin/unshare", "/usr/bin/nsenter", "/usr/bin/strace"],
        )
    {
        return;
    }
    let h = Stack::dac_only(216_410, 216_419);
    let (dom, _) = h.one_disk_domain("traced");
    for round in 0..4 {
        h.ok(&["start", dom.to_str().unwrap()]);
        let uid = uid_of(&h, "traced");
        let Some(mut dd) = root_in_user_namespace_of(
            uid,
            Path::new("/bin/dd"),
            &["if=/dev/zero", "of=/dev/null", "bs=1"],
        ) else {
            skip(name, "no user namespace for an unprivileged uid here");
            h.stop_all();
            return;
        };
        let mut tracer = std::process::Command::new("/usr/bin/strace")
            .args(["-f", "-o", "/dev/null", "-p", &dd.id().to_string()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let traced = wait_until(|| {
            std::fs::read_to_string(format!("/proc/{}/status", dd.id())).is_ok_and(|s| {
                s.lines()
                    .any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0")
            })
        });
        let stop = h.svirt(&["stop", "traced"]);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let before = syscalls_read(dd.id());
        std::thread::sleep(std::time::Duration::from_millis(300));
        let after = syscalls_read(dd.id());
        let state = proc_state(dd.id());
        end(&mut [&mut tracer]);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(dd.id() as i32),
            nix::sys::signal::SIGCONT,
        );
        end(&mut [&mut dd]);
        assert!(traced, "round {round}: strace never attached");
        assert!(
            stop.status.success(),
            "round {round}: stop: {}",
            text(&stop)
        );
        assert!(
            after > before,
            "round {round}: the traced process made no progress after the stop ({state}): left stopped"
        );
    }
}

/// The notes in a lock file (a u32 length after the 8-byte generation, then JSON), as JSON.
fn read_lock_notes(lock: &Path) -> serde_json::Value {
    let b = std::fs::read(lock).unwrap();
    let len = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
    serde_json::from_slice(&b[12..12 + len]).unwrap()
}

fn write_lock_notes(lock: &Path, notes: &serde_json::Value) {
    use std::os::unix::fs::FileExt;
    let bytes = serde_json::to_vec(notes).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(lock).unwrap();
    f.write_all_at(&bytes, 12).unwrap();
    f.write_all_at(&(bytes.len() as u32).to_le_bytes(), 8)
        .unwrap();
}

/// A note whose hold spans two drivers, one of them missing from the stack: the part of the
/// driver present is let go once, and only the missing driver's part stays noted. (The whole
/// note stayed, and every later operation released the present driver's part again against
/// the scan before the killed hold: a process of the held uid paused on purpose at any later
/// time was continued.)
#[test]
fn only_the_part_of_a_note_that_could_not_be_let_go_stays() {
    let name = "only_the_part_of_a_note_that_could_not_be_let_go_stays";
    if !root_or_skip(name) || !tools_or_skip(name, &["/usr/bin/unshare", "/usr/bin/nsenter"]) {
        return;
    }
    let h = Stack::dac_only(216_420, 216_429);
    let Some((_, mut inside)) = stop_killed_in_hold(&h, name) else {
        return;
    };
    let lock = h.p("state/svirt.lock");
    let mut notes = read_lock_notes(&lock);
    notes[0]["ids"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"model": "nosuch", "ids": [7]}));
    write_lock_notes(&lock, &notes);
    let first = h.svirt(&["recover"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let after_first = proc_state(inside.id());
    let left = read_lock_notes(&lock);
    stop_signal(&inside);
    let paused = wait_until(|| proc_state(inside.id()).starts_with('T'));
    let second = h.svirt(&["recover"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let after_second = proc_state(inside.id());
    end(&mut [&mut inside]);
    h.stop_all();
    assert!(first.status.success(), "recover: {}", text(&first));
    assert!(second.status.success(), "recover: {}", text(&second));
    assert!(
        !after_first.starts_with('T'),
        "the held process stayed stopped: {after_first}"
    );
    assert_eq!(
        left[0]["ids"],
        serde_json::json!([{"model": "nosuch", "ids": [7]}]),
        "what stays noted"
    );
    assert!(
        text(&first).contains("nosuch"),
        "the missing driver's part is told: {}",
        text(&first)
    );
    assert!(paused, "the process never stopped");
    assert!(
        after_second.starts_with('T'),
        "a later operation let the killed hold go again, continuing a process paused on purpose: {after_second}"
    );
}

/// A note naming root or `(uid_t)-1` as held (no hold takes either: svirt did not write it) is
/// dropped by the next operation, not refused at every one.
#[test]
fn a_note_of_a_hold_of_root_is_dropped() {
    let name = "a_note_of_a_hold_of_root_is_dropped";
    if !root_or_skip(name) || !tools_or_skip(name, &["/usr/bin/unshare", "/usr/bin/nsenter"]) {
        return;
    }
    let h = Stack::dac_only(216_430, 216_439);
    let Some((_, mut inside)) = stop_killed_in_hold(&h, name) else {
        return;
    };
    let lock = h.p("state/svirt.lock");
    let note = read_lock_notes(&lock);
    for bad in [0u32, u32::MAX] {
        let mut notes = note.clone();
        notes[0]["ids"] = serde_json::json!([{"model": "dac", "ids": [bad]}]);
        write_lock_notes(&lock, &notes);
        let o = h.svirt(&["recover"]);
        let b = std::fs::read(&lock).unwrap();
        let len = u32::from_le_bytes(b[8..12].try_into().unwrap());
        assert!(o.status.success(), "recover: {}", text(&o));
        assert_eq!(len, 0, "a note of uid {bad} stayed: {}", text(&o));
    }
    // The held process itself was never let go by those notes: continue it for the test.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(inside.id() as i32),
        nix::sys::signal::SIGCONT,
    );
    end(&mut [&mut inside]);
    h.stop_all();
}

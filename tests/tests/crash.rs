//! svirt killed (SIGKILL) at every failpoint of start, stop, attach and detach: afterwards
//! `recover` (and `stop` for domains still running) puts every label, owner and mode back and
//! releases every label. SELinux (offline) and DAC are stacked so both kinds of change are checked.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use svirt_tests::*;

use svirt_core::failpoint::POINTS;

struct Case {
    _dir: tempfile::TempDir,
    cfg: PathBuf,
    files: Vec<PathBuf>,
    dom: PathBuf,
}

fn case() -> Case {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = d.path().join("svirt.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}/state\"\n[[driver]]\ndriver = \"selinux\"\noffline = true\n\
             manager_context = \"system_u:system_r:virtd_t:s0-s0:c0.c7\"\n[[driver]]\ndriver = \"dac\"\n",
            d.path().display()
        ),
    )
    .unwrap();
    let files: Vec<PathBuf> = ["a.img", "b.img", "hot.img"]
        .iter()
        .map(|f| d.path().join(f))
        .collect();
    // Setuid and setgid bits too: a chown clears them, so a kill between owner and mode must
    // not lose them.
    for (i, (f, mode)) in files.iter().zip([0o4750, 0o2750, 0o640]).enumerate() {
        labeled_file(f, "x", "system_u:object_r:default_t:s0");
        std::os::unix::fs::chown(f, Some(100 + i as u32), Some(200 + i as u32)).unwrap();
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let dom = d.path().join("k.toml");
    std::fs::write(
        &dom,
        format!(
            "name = \"k\"\n[[disk]]\npath = \"{}\"\n[[disk]]\npath = \"{}\"\n",
            files[0].display(),
            files[1].display()
        ),
    )
    .unwrap();
    Case {
        _dir: d,
        cfg,
        files,
        dom,
    }
}

fn snapshot(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| {
            format!(
                "{} {} {} [{}]",
                f.display(),
                owner(f),
                label(f),
                svirt_xattrs(f)
            )
        })
        .collect()
}

fn ok(cfg: &Path, args: &[&str]) {
    let o = run(cfg, args);
    assert!(
        o.status.success(),
        "svirt {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn recover_puts_everything_back_after_a_kill_at_any_point_of_any_operation() {
    if !root_or_skip("recover_puts_everything_back_after_a_kill_at_any_point_of_any_operation") {
        return;
    }
    let mut reached = std::collections::BTreeSet::new();
    for op in ["start", "stop", "attach", "detach"] {
        for point in POINTS {
            for n in [1, 2] {
                let c = case();
                let before = snapshot(&c.files);
                let (dom, hot) = (c.dom.to_str().unwrap(), c.files[2].to_str().unwrap());
                let spec = format!("{point}:{n}");
                let hit = match op {
                    "start" => killed(&c.cfg, &spec, &["start", dom]),
                    "stop" => {
                        ok(&c.cfg, &["start", dom]);
                        killed(&c.cfg, &spec, &["stop", "k"])
                    }
                    "attach" => {
                        ok(&c.cfg, &["start", dom]);
                        killed(&c.cfg, &spec, &["attach", "k", hot])
                    }
                    _ => {
                        ok(&c.cfg, &["start", dom]);
                        ok(&c.cfg, &["attach", "k", hot]);
                        killed(&c.cfg, &spec, &["detach", "k", hot])
                    }
                };
                if hit {
                    reached.insert(*point);
                }
                ok(&c.cfg, &["recover"]);
                ok(&c.cfg, &["recover"]); // idempotent
                                          // A domain whose operation was cut short but that still runs is stopped normally.
                let st = run(&c.cfg, &["--json", "status"]);
                let j: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
                for d in j["domains"].as_array().unwrap() {
                    ok(&c.cfg, &["stop", d["name"].as_str().unwrap()]);
                }
                assert_eq!(
                    snapshot(&c.files),
                    before,
                    "{op} killed at {spec} (hit: {hit})"
                );
                // Every MCS pair and uid is free again: 28 domains fit in c0.c7.
                for i in 0..28 {
                    std::fs::write(c.dom.with_file_name("n.toml"), format!("name = \"n{i}\"\n"))
                        .unwrap();
                    let o = run(
                        &c.cfg,
                        &["start", c.dom.with_file_name("n.toml").to_str().unwrap()],
                    );
                    assert!(
                        o.status.success(),
                        "{op} at {spec}: start {i}: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
            }
        }
    }
    // Every point is reached by some operation: otherwise the test proves less than it says.
    let missed: Vec<_> = POINTS.iter().filter(|p| !reached.contains(*p)).collect();
    assert!(missed.is_empty(), "never reached: {missed:?}");
}

/// Every file's owner, mode, label and svirt marks under `root`, sorted.
fn tree_snapshot(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        out.push(format!(
            "{} {} {} [{}]",
            p.display(),
            owner(&p),
            label(&p),
            svirt_xattrs(&p)
        ));
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SIGKILL at a random moment of `start` or `stop` of a domain with 4 disks, a kernel, a
/// backing file and a share with setuid and setgid files, then `recover`: every file as it was,
/// no svirt mark left. CI runs 10 trials over a 1,000-file share; `SVIRT_KILL_TRIALS=200
/// SVIRT_KILL_FILES=20000` is the full run.
#[test]
#[allow(clippy::print_stderr)] // the figures of the run, for the record
fn random_kills_during_start_and_stop_leave_every_file_as_it_was() {
    if !root_or_skip("random_kills_during_start_and_stop_leave_every_file_as_it_was") {
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    let trials = env_number("SVIRT_KILL_TRIALS", 10);
    let files = env_number("SVIRT_KILL_FILES", 1000);
    let c = case();
    let root = c.cfg.parent().unwrap().to_owned();
    let data = root.join("data");
    for (i, name) in [
        "d1.img",
        "d2.img",
        "d3.img",
        "d4.img",
        "vmlinuz",
        "base.qcow2",
    ]
    .iter()
    .enumerate()
    {
        let p = data.join(name);
        std::fs::create_dir_all(&data).unwrap();
        labeled_file(&p, "x", "system_u:object_r:default_t:s0");
        std::os::unix::fs::chown(&p, Some(300 + i as u32), Some(400 + i as u32)).unwrap();
    }
    for i in 0..files {
        let p = data.join(format!("share/d{}/f{i}", i % 50));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        labeled_file(&p, "x", "system_u:object_r:default_t:s0");
        let mode = [0o4755, 0o2755, 0o644, 0o600][i as usize % 4];
        std::os::unix::fs::chown(&p, Some(1000 + (i % 7) as u32), Some(1000)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let dom = root.join("big.toml");
    let d = |n: &str| data.join(n).display().to_string();
    std::fs::write(
        &dom,
        format!(
            "name = \"big\"\nkernel = \"{}\"\n[[disk]]\npath = \"{}\"\nbacking = [\"{}\"]\n\
             [[disk]]\npath = \"{}\"\n[[disk]]\npath = \"{}\"\nshareable = true\n\
             [[disk]]\npath = \"{}\"\nreadonly = true\n[[filesystem]]\npath = \"{}\"\n",
            d("vmlinuz"),
            d("d1.img"),
            d("base.qcow2"),
            d("d2.img"),
            d("d3.img"),
            d("d4.img"),
            d("share")
        ),
    )
    .unwrap();
    let before = tree_snapshot(&data);
    let dom = dom.to_str().unwrap();
    // How long a start and a stop take here, to aim the kills inside them.
    let t = std::time::Instant::now();
    ok(&c.cfg, &["start", dom]);
    let start_ms = t.elapsed().as_millis() as u64;
    let t = std::time::Instant::now();
    ok(&c.cfg, &["stop", "big"]);
    let stop_ms = t.elapsed().as_millis() as u64;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let mut rand = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n.max(1)
    };
    let mut kills = 0;
    for trial in 0..trials {
        let stopping = trial % 2 == 1;
        if stopping {
            ok(&c.cfg, &["start", dom]);
        }
        let args: &[&str] = if stopping {
            &["stop", "big"]
        } else {
            &["start", dom]
        };
        let mut child = Command::new(svirt())
            .arg("--config")
            .arg(&c.cfg)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let span = if stopping { stop_ms } else { start_ms };
        std::thread::sleep(std::time::Duration::from_millis(rand(span + 1)));
        let _ = child.kill();
        if child.wait().unwrap().signal() == Some(9) {
            kills += 1;
        }
        ok(&c.cfg, &["recover"]);
        // A start that finished before the kill leaves a running domain: stop it normally.
        let st = run(&c.cfg, &["--json", "status"]);
        let j: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        for d in j["domains"].as_array().unwrap() {
            ok(&c.cfg, &["stop", d["name"].as_str().unwrap()]);
        }
        let after = tree_snapshot(&data);
        let wrong: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
        assert!(
            wrong.is_empty(),
            "trial {trial} ({args:?}): {} files wrong, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(3)]
        );
    }
    eprintln!("{trials} trials, {kills} killed mid-operation, {files}-file share: 0 files wrong");
    assert!(kills > 0, "no trial was killed mid-operation");
}

/// The syscalls of `svirt args` that change a file's attributes or sync one, in order (strace).
fn changes_and_syncs(cfg: &Path, args: &[&str]) -> Option<Vec<String>> {
    let strace = ["/usr/bin/strace", "/bin/strace"]
        .into_iter()
        .find(|p| Path::new(p).is_file())?;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("trace");
    let o = Command::new(strace)
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .args([
            "-e",
            "trace=fsync,fdatasync,fchownat,fchmodat,setxattr,removexattr",
        ])
        .arg(svirt())
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Some(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("ENODATA"))
            .map(str::to_owned)
            .collect(),
    )
}

/// True when a sync follows the last attribute change of `calls`.
fn synced_after_last_change(calls: &[String]) -> bool {
    let is_sync = |l: &String| l.contains("fsync(") || l.contains("fdatasync(");
    let last_change = calls.iter().rposition(|l| !is_sync(l));
    last_change.is_some_and(|i| calls[i + 1..].iter().any(is_sync))
}

/// A start records, in its completion, the ctime that keeps a setuid or setgid original from
/// content the VM writes; a stop's completion forgets originals whose privileges it gave back.
/// The VM runs (and the image goes to its next user) as soon as the command returns, so for
/// such files the completion must be on the disk by then: a power loss that keeps the files'
/// later changes but loses the completion would let `recover` give the bit back to content
/// nobody vouched for. (Completions of other domains may stay lazy.)
#[test]
fn a_start_or_stop_that_guards_setuid_bits_syncs_its_completion_before_returning() {
    let test = "a_start_or_stop_that_guards_setuid_bits_syncs_its_completion_before_returning";
    if !root_or_skip(test) {
        return;
    }
    let c = case();
    let dom = c.dom.to_str().unwrap();
    let Some(start) = changes_and_syncs(&c.cfg, &["start", dom]) else {
        return skip(test, "strace is not installed");
    };
    assert!(
        synced_after_last_change(&start),
        "start returned with its guard ctimes unsynced:\n{}",
        start.join("\n")
    );
    let stop = changes_and_syncs(&c.cfg, &["stop", "k"]).unwrap();
    assert!(
        synced_after_last_change(&stop),
        "stop returned with its completion unsynced after giving setuid back:\n{}",
        stop.join("\n")
    );
}

/// The DAC part (`uid:gid mode`) and the label of a file, each put back or not.
fn back(f: &Path, before: &(String, String)) -> (bool, bool) {
    (owner(f) == before.0, label(f) == before.1)
}

#[test]
fn a_stop_cut_short_releases_its_identities_only_once_recover_has_put_every_file_back() {
    let test = "a_stop_cut_short_releases_its_identities_only_once_recover_has_put_every_file_back";
    if !root_or_skip(test) {
        return;
    }
    let c = case();
    let before = snapshot(&c.files);
    let disks = &c.files[..2];
    let was: Vec<(String, String)> = disks.iter().map(|f| (owner(f), label(f))).collect();
    ok(&c.cfg, &["start", c.dom.to_str().unwrap()]);
    assert!(killed(&c.cfg, "restore.put-back:1", &["stop", "k"]));
    // A disk not put back yet, which recover cannot change for now (immutable).
    let stuck = disks
        .iter()
        .zip(&was)
        .find(|(f, w)| back(f, w) == (false, false))
        .map(|(f, _)| f.clone())
        .expect("one disk is not put back after the first put-back");
    let chattr = |flag: &str| {
        let st = Command::new("chattr").arg(flag).arg(&stuck).status();
        st.is_ok_and(|s| s.success())
    };
    if !chattr("+i") {
        return skip(test, "chattr +i is not available here");
    }
    let o = run(&c.cfg, &["recover"]);
    chattr("-i");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "recover succeeded with {} immutable",
        stuck.display()
    );
    assert!(
        err.contains(stuck.to_str().unwrap()),
        "recover does not name the file: {err}"
    );
    let st = run(&c.cfg, &["--json", "status"]);
    let j: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let names: Vec<&str> = j["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["k"],
        "the stopped domain's identities were released with a file unrestored"
    );
    ok(&c.cfg, &["recover"]);
    let st = run(&c.cfg, &["--json", "status"]);
    let j: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(j["domains"].as_array().unwrap().len(), 0);
    assert_eq!(snapshot(&c.files), before);
}

#[test]
fn one_file_that_refuses_its_mark_never_leaves_stale_marks_on_the_others() {
    let test = "one_file_that_refuses_its_mark_never_leaves_stale_marks_on_the_others";
    if !root_or_skip(test) {
        return;
    }
    let c = case();
    let before = snapshot(&c.files);
    let disks = &c.files[..2];
    let owners: Vec<String> = disks.iter().map(|f| owner(f)).collect();
    ok(&c.cfg, &["start", c.dom.to_str().unwrap()]);
    // Killed at the second chown of the stop: one disk has its owner and mode back, and its
    // DAC mark is gone; the administrator then makes that disk immutable.
    assert!(killed(&c.cfg, "dac.owner-changed:2", &["stop", "k"]));
    let Some(back) = disks.iter().zip(&owners).position(|(f, o)| owner(f) == *o) else {
        return skip(test, "no disk had its owner back after the second chown");
    };
    let (stuck, other) = (&disks[back], &disks[1 - back]);
    let chattr = |flag: &str| {
        Command::new("chattr")
            .arg(flag)
            .arg(stuck)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !chattr("+i") {
        return skip(test, "chattr +i is not available here");
    }
    // The immutable disk refuses its mark's removal (and its label): recover fails for it,
    // and still puts the other disk back whole, marks removed.
    let o = run(&c.cfg, &["recover"]);
    chattr("-i");
    assert!(
        !o.status.success(),
        "recover succeeded with {} immutable",
        stuck.display()
    );
    let i = 1 - back;
    assert_eq!(
        snapshot(std::slice::from_ref(other)),
        before[i..=i],
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ok(&c.cfg, &["recover"]);
    assert_eq!(snapshot(&c.files), before);
}

/// A share of `n` files in three directories with varied labels, owners and modes (setuid and
/// setgid among them), two names of one file, and a root labeled and owned like most entries.
fn mixed_share(root: &Path, n: u32) {
    std::fs::create_dir_all(root).unwrap();
    set_label(root, "system_u:object_r:default_t:s0");
    for i in 0..n {
        let p = root.join(format!("d{}/f{i}", i % 3));
        if !p.parent().unwrap().exists() {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            set_label(p.parent().unwrap(), "system_u:object_r:default_t:s0");
        }
        let label = match i % 7 {
            0 => "system_u:object_r:etc_t:s0",
            _ => "system_u:object_r:default_t:s0",
        };
        labeled_file(&p, "x", label);
        std::os::unix::fs::chown(&p, Some(1000 + i % 3), Some(1000)).unwrap();
        let mode = [0o4755, 0o2755, 0o644, 0o600][i as usize % 4];
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::hard_link(root.join("d0/f0"), root.join("d1/also-f0")).unwrap();
}

/// A start killed anywhere inside its walk of a share: the walk reads, marks (unless the
/// original is the share root's) and changes each entry in turn, and the intent names only the
/// root's original, so `recover` finds what was changed from the entries themselves. Every
/// label, owner, mode and setuid bit comes back, and no mark is left. Kills fall in the SELinux
/// walk, between an owner and its mode in the DAC walk, and in the journaled second part (the
/// file with two names).
#[test]
fn a_start_killed_inside_a_share_walk_is_put_back_whole_by_recover() {
    kill_inside_a_share_walk(
        "a_start_killed_inside_a_share_walk_is_put_back_whole_by_recover",
        false,
    );
}

/// The same for a read-only share, whose label (`virt_content_t:s0`) is nobody's own: some of
/// its entries hold it before the start, and a recovery must leave exactly those as they were.
/// (Such a share is journaled whole before its first change.)
#[test]
fn a_start_killed_inside_a_read_only_share_walk_leaves_entries_that_already_held_its_label() {
    kill_inside_a_share_walk(
        "a_start_killed_inside_a_read_only_share_walk_leaves_entries_that_already_held_its_label",
        true,
    );
}

fn kill_inside_a_share_walk(test: &str, readonly: bool) {
    if !root_or_skip(test) {
        return;
    }
    let mut killed_at = Vec::new();
    // The read-only share has four files already at its label, which the SELinux walk skips.
    let last = if readonly { 92 } else { 96 };
    for (point, n) in [
        ("relabel.journaled", 1),
        ("relabel.journaled", 2),
        ("relabel.journaled", 9),
        ("relabel.journaled", 30),
        ("relabel.journaled", 47),
        ("relabel.journaled", 48),
        ("relabel.journaled", 60),
        ("relabel.journaled", last - 1),
        ("relabel.journaled", last),
        ("dac.owner-changed", 1),
        ("dac.owner-changed", 7),
        ("dac.owner-changed", 25),
        ("dac.owner-changed", 48),
    ] {
        let c = case();
        let share = c.cfg.parent().unwrap().join("share");
        mixed_share(&share, 44);
        if readonly {
            for i in [3, 4, 5, 11] {
                set_label(
                    &share.join(format!("d{}/f{i}", i % 3)),
                    "system_u:object_r:virt_content_t:s0",
                );
            }
        }
        let dom = c.cfg.with_file_name("s.toml");
        std::fs::write(
            &dom,
            format!(
                "name = \"s\"\n[[filesystem]]\npath = \"{}\"\nreadonly = {readonly}\n",
                share.display()
            ),
        )
        .unwrap();
        let before = tree_snapshot(&share);
        let spec = format!("{point}:{n}");
        let hit = killed(&c.cfg, &spec, &["start", dom.to_str().unwrap()]);
        if hit {
            killed_at.push(spec.clone());
        }
        ok(&c.cfg, &["recover"]);
        let st = run(&c.cfg, &["--json", "status"]);
        let j: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
        for d in j["domains"].as_array().unwrap() {
            ok(&c.cfg, &["stop", d["name"].as_str().unwrap()]);
        }
        assert_eq!(tree_snapshot(&share), before, "start killed at {spec}");
    }
    // 44 files, 3 directories and a second name: 48 entries per driver, the last one the
    // file with two names, changed after its journal.
    assert!(
        killed_at.len() >= 12,
        "too few kills landed inside the walk: {killed_at:?}"
    );
}

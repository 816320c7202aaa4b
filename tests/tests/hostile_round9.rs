//! Hostile round 9: the changes of 7dd5e84 under attack. A stop refused while a process carries
//! the domain's drawn uid (`SecurityDriver::carriers`, zombies exempt); a VM-made file with more
//! names than one taken to root (`original_for`); a reclaim writing the mode first
//! (`FileAttr::first_step`); JSON reports with names that are not UTF-8.
//!
//! Found on 7dd5e84, and holding since the commit that added this file: a guest whose main
//! thread exited shows a zombie leader and is taken for gone while its threads run (the uid is
//! released and drawn again); a static
//! label whose gid lies in the pool is accepted, its gid drawn as another domain's uid, and
//! that domain's stop refused for the static VM's process; a VM-made file whose every name is
//! in its share goes to root 0600, not to the share's owner; a disk whose resolved path is not
//! UTF-8 fails its start as "state file ... is corrupt" (now refused, exit 2, with the reason).
//!
//! Every test works on temp trees as root with the failpoint build; nothing of the host's is
//! changed. A test that leaves a guest process running draws its own uid range
//! (`Stack::with_uids`, 200000 and up), since a stop sees every process of the host.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command};

use svirt_tests::*;

const ORIG: &str = "system_u:object_r:default_t:s0";
const HOME: &str = "system_u:object_r:user_home_t:s0";

/// Kill a process (SIGKILL, its whole thread group) and reap it.
fn kill_child(c: &mut Child) {
    let _ = c.kill();
    let _ = c.wait();
}

fn kill_pid(pid: i32) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
}

/// A field of `/proc/PID/status`.
fn status_field(pid: u32, key: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
}

/// The guest's VMM calls `pthread_exit` in its main thread while another thread keeps running
/// (a multi-threaded QEMU whose main thread ends first does the same). The thread-group
/// leader then shows `State: Z (zombie)` in `/proc/PID/status` although the process runs on,
/// with the domain's uid, its open files and its mappings (`Threads: 2`). `pid_owner` takes
/// every `Z` for a dead process that "carries nothing", and the live threads are listed only
/// under `/proc/PID/task`, which `pids()` never reads: the stop is not refused, the uid goes
/// back to the pool, and the next domain draws it while the old guest still runs as it.
#[test]
fn a_guest_whose_main_thread_exited_still_carries_its_uid() {
    let name = "a_guest_whose_main_thread_exited_still_carries_its_uid";
    if !root_or_skip(name) {
        return;
    }
    if !Path::new("/usr/bin/cc").is_file() {
        return skip(name, "no C compiler to build the guest's program");
    }
    let h = Stack::with_uids(200_000, 200_999);
    let share = user_share(&h);
    let src = h.p("leader.c");
    std::fs::write(
        &src,
        "#include <pthread.h>\n#include <unistd.h>\n\
         static void *w(void *a) { (void)a; sleep(60); return 0; }\n\
         int main(void) { pthread_t t; pthread_create(&t, 0, w, 0); pthread_exit(0); }\n",
    )
    .unwrap();
    let bin = h.p("leader");
    let st = Command::new("/usr/bin/cc")
        .args(["-pthread", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success(), "cc failed");
    let dom = h.share_domain("z", &share);
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(&h, "z");
    let mut guest = Command::new("/usr/bin/setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            &format!("--groups={}", h.shared_gid()),
        ])
        .arg(&bin)
        .spawn()
        .unwrap();
    let pid = guest.id();
    let zombie_leader = wait_until(|| {
        status_field(pid, "State:").is_some_and(|s| s.starts_with('Z'))
            && status_field(pid, "Threads:").as_deref() == Some("2")
    });
    let stop = h.svirt(&["stop", "z"]);
    let released = !h.recorded("z");
    // The next domain: which uid does it draw?
    let next = h.share_domain("n", &h.p("pubtmp"));
    let next_start = h.svirt(&["start", next.to_str().unwrap()]);
    let next_uid = next_start.status.success().then(|| uid_of(&h, "n"));
    let threads = status_field(pid, "Threads:");
    kill_child(&mut guest);
    let _ = h.svirt(&["recover"]);
    h.stop_all();
    assert!(
        zombie_leader,
        "the guest's leader never became a zombie with a live thread"
    );
    assert!(
        !released && next_uid != Some(uid),
        "stop ({}) released uid {uid} while pid {pid} (leader a zombie, Threads: {threads:?}) \
         still ran as it; the next domain drew {next_uid:?}",
        text(&stop).trim()
    );
}

/// An administrator gives a domain a static DAC label whose uid is no host account and whose
/// gid lies in the pool's range (`+70000:+LO`): it passes `check_static_owner`, and only a
/// static uid in the pool is reserved. The next dynamic domain draws LO, so the static VM's
/// process (gid LO) reads what the dynamic guest keeps for its own group (a 0640 file in a
/// world-writable directory); and the new stop
/// check (`p.uid == uid || p.gid == uid`) takes the static VM's process for the dynamic
/// domain's: its stop is refused for as long as the other VM runs, naming a process that is
/// not its own.
#[test]
fn a_static_labels_gid_is_never_drawn_as_another_domains_uid() {
    let name = "a_static_labels_gid_is_never_drawn_as_another_domains_uid";
    if !root_or_skip(name) {
        return;
    }
    let (lo, hi) = (201_000, 201_999);
    let h = Stack::with_uids(lo, hi);
    let disk = h.p("s.img");
    file_with(&disk, "static vm disk", 0, 0, 0o644, ORIG);
    let s = h.domain(
        "s",
        &format!(
            "[[seclabel]]\nmodel = \"dac\"\ntype = \"static\"\nlabel = \"+70000:+{lo}\"\n\
             [[disk]]\npath = \"{}\"\n",
            disk.display()
        ),
    );
    let s_start = h.svirt(&["start", s.to_str().unwrap()]);
    if !s_start.status.success() {
        // Refused up front: the gid in the pool is caught. Nothing more to see.
        return;
    }
    // The static VM's process.
    let mut svm = Command::new("/usr/bin/setpriv")
        .args([
            "--reuid=70000",
            &format!("--regid={lo}"),
            "--clear-groups",
            "/bin/sleep",
            "60",
        ])
        .spawn()
        .unwrap();
    wait_runs_as(&mut svm, 70000);
    let share = user_share(&h);
    file_with(
        &share.join("notes"),
        "user's group-readable notes",
        1000,
        1000,
        0o640,
        HOME,
    );
    let d = h.share_domain("d", &share);
    h.ok(&["start", d.to_str().unwrap()]);
    let ud = uid_of(&h, "d");
    // The dynamic guest keeps a file for itself and its group (its own gid, no one else's)
    // in a world-writable directory.
    as_guest(
        ud,
        &[h.shared_gid()],
        &format!(
            "echo guest-secret > {m} && chmod 640 {m}",
            m = h.p("pubtmp/mine").display()
        ),
    );
    let notes_while = owner(&share.join("notes"));
    let read = Command::new("/usr/bin/setpriv")
        .args([
            "--reuid=70000",
            &format!("--regid={lo}"),
            "--clear-groups",
            "/bin/cat",
        ])
        .arg(h.p("pubtmp/mine"))
        .output()
        .unwrap();
    let stop = h.svirt(&["stop", "d"]);
    kill_child(&mut svm);
    let _ = h.svirt(&["recover"]);
    h.stop_all();
    assert!(
        ud != lo && stop.status.success(),
        "domain d drew uid {ud}, the gid of static domain s's process {}; that process read \
         d's guest file (0640): {:?} (notes while running: {notes_while}); stop d: {}",
        svm.id(),
        String::from_utf8_lossy(&read.stdout),
        text(&stop).trim()
    );
}

/// `svirt run --rw DISK -- sh -c 'sleep 60 & exit 3'`: the command leaves a background child
/// running with the ad-hoc domain's uid. The stop after the wait is refused; `run` must say so
/// (a non-zero exit naming the child and `svirt stop NAME`), keep the domain recorded with its
/// disk still the VM's (never the disk back while the child may write it), never hand the uid
/// to another domain, and `svirt stop NAME` must work once the child is gone.
#[test]
fn svirt_run_whose_command_leaves_a_child_keeps_the_domain_until_it_is_gone() {
    let name = "svirt_run_whose_command_leaves_a_child_keeps_the_domain_until_it_is_gone";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::dac_only(202_000, 202_999);
    let disk = h.p("run.img");
    file_with(&disk, "run disk", 0, 0, 0o644, ORIG);
    let sig = h.p("sig");
    dir_with(&sig, 0, 0, 0o777, ORIG);
    let pidfile = sig.join("pid");
    let script = format!(
        "/bin/sleep 60 </dev/null >/dev/null 2>&1 & echo $! > {}; exit 3",
        pidfile.display()
    );
    let o = h.svirt(&[
        "run",
        "--name",
        "r",
        "--rw",
        disk.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    let child: i32 = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let child_uid = status_field(child as u32, "Uid:");
    let recorded = h.recorded("r");
    let disk_while = owner(&disk);
    let other = h.domain(
        "o",
        &format!("[[disk]]\npath = \"{}\"\n", h.p("o.img").display()),
    );
    file_with(&h.p("o.img"), "o", 0, 0, 0o644, ORIG);
    h.ok(&["start", other.to_str().unwrap()]);
    let uo = uid_of(&h, "o");
    if child > 0 {
        kill_pid(child);
        wait_until(|| status_field(child as u32, "State:").is_none());
    }
    let later = h.svirt(&["stop", "r"]);
    let _ = h.svirt(&["recover"]);
    h.stop_all();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let mut bad = Vec::new();
    if child <= 0 {
        bad.push("the command's child never ran".to_owned());
    }
    if o.status.success() {
        bad.push("run exited 0 with its domain not stopped".into());
    }
    if !err.contains(&child.to_string()) || !err.contains("svirt stop r") {
        bad.push(format!(
            "the message names neither the child {child} nor `svirt stop r`"
        ));
    }
    if !recorded {
        bad.push(format!(
            "the domain was released while {child} ran ({child_uid:?})"
        ));
    }
    if disk_while == "0:0 644" {
        bad.push("the disk was given back while the child ran".into());
    }
    if child_uid
        .as_deref()
        .is_some_and(|u| u.split_whitespace().next() == Some(&uo.to_string()))
    {
        bad.push(format!("another domain drew the child's uid {uo}"));
    }
    if !later.status.success() {
        bad.push(format!("the later stop failed: {}", text(&later)));
    }
    if owner(&disk) != "0:0 644" {
        bad.push(format!("disk left {}", owner(&disk)));
    }
    assert!(
        bad.is_empty(),
        "run: {}\n{}",
        text(&o).trim(),
        bad.join("\n")
    );
}

/// Two dead domains (their `svirt exec` commands exited): a child of the first still runs with
/// its uid, the second's is gone. `recover` must stop the second, refuse the first (exit 1
/// naming the child), keep the first's uid reserved, and a later `recover` once the child is
/// gone must finish it.
#[test]
fn recover_stops_the_other_domains_when_one_is_still_carried() {
    let name = "recover_stops_the_other_domains_when_one_is_still_carried";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::dac_only(203_000, 203_999);
    let mut doms = Vec::new();
    for n in ["a", "b"] {
        let disk = h.p(&format!("{n}.img"));
        file_with(&disk, n, 0, 0, 0o644, ORIG);
        let d = h.domain(n, &format!("[[disk]]\npath = \"{}\"\n", disk.display()));
        h.ok(&["start", d.to_str().unwrap()]);
        h.ok(&["exec", n, "--", "/bin/true"]);
        doms.push(disk);
    }
    let ua = uid_of(&h, "a");
    let mut survivor = vm_process(ua);
    let rec = h.svirt(&["--json", "recover"]);
    let a_kept = h.recorded("a");
    let b_gone = !h.recorded("b");
    let b_disk = owner(&doms[1]);
    let c_disk = h.p("c.img");
    file_with(&c_disk, "c", 0, 0, 0o644, ORIG);
    let c = h.domain("c", &format!("[[disk]]\npath = \"{}\"\n", c_disk.display()));
    h.ok(&["start", c.to_str().unwrap()]);
    let uc = uid_of(&h, "c");
    kill_child(&mut survivor);
    let rec2 = h.svirt(&["recover"]);
    let a_gone = !h.recorded("a");
    h.stop_all();
    let mut bad = Vec::new();
    if rec.status.success()
        || !String::from_utf8_lossy(&rec.stderr).contains(&survivor.id().to_string())
    {
        bad.push(format!(
            "recover did not refuse a naming {}: {}",
            survivor.id(),
            text(&rec)
        ));
    }
    if !a_kept || uc == ua {
        bad.push(format!(
            "a released ({}) or its uid {ua} drawn again ({uc})",
            !a_kept
        ));
    }
    if !b_gone || b_disk != "0:0 644" {
        bad.push(format!(
            "b not recovered: recorded {}, disk {b_disk}",
            !b_gone
        ));
    }
    if !rec2.status.success() || !a_gone || owner(&doms[0]) != "0:0 644" {
        bad.push(format!(
            "the second recover: {} (a gone {a_gone}, disk {})",
            text(&rec2),
            owner(&doms[0])
        ));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The guest makes files whose every name is inside its share: `a` with a second name `b`
/// (`ln a b`, as `git`, `cp -al` or a package cache does), a symlink with two names, and a
/// single-name file `c` beside them. Nothing of theirs is outside the share, so the share's
/// owner should get them as they get `c` (`1000:1000`, mode without write for others). The
/// new `original_for` path counts links, not names in the share, and gives `a`, `b` to root
/// 0600: the share's owner can no longer read what the guest left in their share.
#[test]
fn a_guest_file_whose_names_are_all_in_its_share_goes_to_the_share_owner() {
    let name = "a_guest_file_whose_names_are_all_in_its_share_goes_to_the_share_owner";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::new(true);
    let share = user_share(&h);
    let dom = h.share_domain("l", &share);
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(&h, "l");
    as_guest(
        uid,
        &[h.shared_gid()],
        &format!(
            "cd {} && echo data > a && ln a b && echo data > c && mkdir sub && ln a sub/a2 && \
             ln -s plain sl && ln -P sl sl2",
            share.display()
        ),
    );
    label_guest_made(&share, uid, &pair_label(&h, "l"));
    let stop = h.svirt(&["stop", "l"]);
    assert!(stop.status.success(), "{}", text(&stop));
    let single = owner(&share.join("c"));
    let mut bad = Vec::new();
    for n in ["a", "b", "sub/a2"] {
        let got = owner(&share.join(n));
        if got != single {
            bad.push(format!("{n}: {got} ({})", label(&share.join(n))));
        }
    }
    for n in ["sl", "sl2"] {
        let m = std::fs::symlink_metadata(share.join(n)).unwrap();
        if m.uid() != 1000 {
            bad.push(format!("{n}: {}", describe(&share.join(n))));
        }
    }
    assert!(
        bad.is_empty(),
        "the single-name guest file c became {single}; its linked siblings: {bad:?}"
    );
}

/// A stop killed at each owner change (`dac.owner-changed:N`) and before and inside its
/// restore, over a share holding guest files with a name outside the share (`pubtmp/cc`,
/// 0666 setgid: the reclaim now writes root's owner, `mode & 0700`, after a first step at the
/// VM's owner) and with two names inside it, then `recover`: the share and `pubtmp` must end
/// exactly as a clean stop leaves them, and nothing may be left the VM's or given to the
/// share's owner through the outside name.
#[test]
fn a_stop_killed_around_a_linked_reclaim_ends_as_a_clean_stop() {
    let name = "a_stop_killed_around_a_linked_reclaim_ends_as_a_clean_stop";
    if !root_or_skip(name) {
        return;
    }
    let run_one = |point: Option<String>| -> Option<(Vec<String>, Vec<String>, String)> {
        let h = Stack::new(true);
        let share = user_share(&h);
        let dom = h.share_domain("k", &share);
        h.ok(&["start", dom.to_str().unwrap()]);
        let uid = uid_of(&h, "k");
        as_guest(
            uid,
            &[h.shared_gid()],
            &format!(
                "cd {s} && echo t > cc && chmod 2666 cc && ln cc {p}/cc && echo d > d1 && \
                 chmod 4777 d1 && ln d1 d2 && mkfifo f && chmod 666 f && ln f {p}/f",
                s = share.display(),
                p = h.p("pubtmp").display()
            ),
        );
        label_guest_made(&share, uid, &pair_label(&h, "k"));
        let out = match &point {
            None => text(&h.svirt(&["stop", "k"])),
            Some(p) => {
                if !killed(&h.cfg, p, &["stop", "k"]) {
                    h.stop_all();
                    return None;
                }
                text(&h.svirt(&["recover"]))
            }
        };
        let recorded = h.recorded("k");
        let mut a = rel_snapshot(&share);
        a.push(format!("recorded {recorded}"));
        Some((a, rel_snapshot(&h.p("pubtmp")), out))
    };
    let (clean, clean_pub, clean_out) = run_one(None).unwrap();
    let mut bad = Vec::new();
    let vm_like = |l: &String| {
        l.split_whitespace().nth(1).is_some_and(|o| {
            o.split(':')
                .any(|i| i.parse::<u32>().is_ok_and(|i| i >= 100_000))
        }) || l.contains(" 1000:1000 ") && (l.contains("/cc ") || l.contains("/f "))
    };
    for l in clean.iter().chain(&clean_pub) {
        if vm_like(l) {
            bad.push(format!("clean stop: {l}"));
        }
    }
    let mut landed = 0;
    let mut points: Vec<String> = vec!["restore.released:1".into(), "restore.put-back:1".into()];
    points.extend((1..30).map(|n| format!("dac.owner-changed:{n}")));
    for point in points {
        let Some((after, after_pub, out)) = run_one(Some(point.clone())) else {
            if point.starts_with("dac.") {
                break;
            }
            continue;
        };
        landed += 1;
        if after != clean || after_pub != clean_pub {
            let d: Vec<String> = after
                .iter()
                .chain(&after_pub)
                .filter(|l| !clean.contains(l) && !clean_pub.contains(l))
                .cloned()
                .collect();
            bad.push(format!("{point}: {d:?}\n  {}", out.trim()));
        }
    }
    assert!(landed > 8, "only {landed} kills landed");
    assert!(
        bad.is_empty(),
        "clean stop ({}): {clean:#?} {clean_pub:#?}\n{}",
        clean_out.trim(),
        bad.join("\n")
    );
}

/// Entries a start leaves out of a share (a null-device node, a file with a second name
/// outside) named with bytes that are not UTF-8 and with newlines; `start --json`,
/// `status --json`, `stop --json` and, after a stop killed mid-restore, `recover --json`
/// must each succeed and print one JSON document naming them.
#[test]
fn json_reports_print_every_odd_excluded_name() {
    let name = "json_reports_print_every_odd_excluded_name";
    if !root_or_skip(name) {
        return;
    }
    use std::os::unix::ffi::OsStrExt;
    let mut bad = Vec::new();
    for killed_stop in [false, true] {
        let h = Stack::new(true);
        let share = user_share(&h);
        let dev = share.join(std::ffi::OsStr::from_bytes(b"dev\n\xff"));
        nix::sys::stat::mknod(
            &dev,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        let dev_before = owner(&dev);
        let linked = share.join(std::ffi::OsStr::from_bytes(b"ln\nk\xfe"));
        file_with(&linked, "two names", 1000, 1000, 0o644, HOME);
        std::fs::hard_link(&linked, h.p("pubtmp/other")).unwrap();
        let dom = h.share_domain("j", &share);
        let mut outs = Vec::new();
        let st = h.svirt(&["--json", "start", dom.to_str().unwrap()]);
        outs.push(("start", st));
        outs.push(("status", h.svirt(&["--json", "status"])));
        if killed_stop {
            assert!(killed(&h.cfg, "restore.released:1", &["stop", "j"]));
            outs.push(("recover", h.svirt(&["--json", "recover"])));
        } else {
            outs.push(("stop", h.svirt(&["--json", "stop", "j"])));
        }
        for (what, o) in &outs {
            let v = serde_json::from_slice::<serde_json::Value>(&o.stdout);
            if !o.status.success() || v.is_err() {
                bad.push(format!("{what} (killed stop {killed_stop}): {}", text(o)));
            }
        }
        let start = serde_json::from_slice::<serde_json::Value>(&outs[0].1.stdout)
            .map(|v| v.to_string())
            .unwrap_or_default();
        if !start.contains("ln\\nk\u{FFFD}") {
            bad.push(format!(
                "start --json does not name the excluded entry: {start}"
            ));
        }
        // The null-device node is left alone (not listed among `excluded`, though).
        if owner(&dev) != dev_before {
            bad.push(format!("the device node became {}", owner(&dev)));
        }
        if h.recorded("j") {
            let _ = h.svirt(&["recover"]);
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// A disk reached through a directory whose name is not UTF-8 (`/…/d\xff/disk.img`, given as
/// `/…/link/disk.img` with `link -> d\xff`: a domain file must be UTF-8, the resolved path
/// need not be). The resource report's `path` is the resolved path, a `PathBuf` that
/// `Record::encode` (JSON) and `start --json` cannot write; the commit made stop, recover and
/// excluded names lossy, not the resource paths. It was refused as "state file ... is corrupt";
/// it must be refused with the reason, before anything changes.
#[test]
fn a_disk_under_a_directory_whose_name_is_not_utf8_is_refused_with_the_reason() {
    let name = "a_disk_under_a_directory_whose_name_is_not_utf8_is_refused_with_the_reason";
    if !root_or_skip(name) {
        return;
    }
    use std::os::unix::ffi::OsStrExt;
    let h = Stack::new(true);
    let real = h.p("x").join(std::ffi::OsStr::from_bytes(b"d\xff"));
    std::fs::create_dir_all(&real).unwrap();
    std::os::unix::fs::symlink(&real, h.p("link")).unwrap();
    let disk = real.join("disk.img");
    file_with(&disk, "disk", 0, 0, 0o644, ORIG);
    let dom = h.domain(
        "u",
        &format!("[[disk]]\npath = \"{}/disk.img\"\n", h.p("link").display()),
    );
    // Refused before anything changes, as a usage error that says why (never as a corrupt
    // state database).
    let st = h.svirt(&["--json", "start", dom.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&st.stderr);
    assert_eq!(st.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not valid UTF-8") && !err.contains("corrupt"),
        "{err}"
    );
    assert_eq!(owner(&disk), "0:0 644");
    assert!(!h.recorded("u"));
}

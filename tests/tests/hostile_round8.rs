//! Hostile round 8: a hostile guest while its domain runs, and what `svirt stop` (and a stop
//! killed at a failpoint, then `recover`) does with what it left. The guest runs as the VM's
//! uid (`as_guest`) with the pool's shared group, and does what that uid may do in its share
//! and in world-writable directories of the same filesystem (`pubtmp` here, standing for
//! `/tmp` or `/var/tmp`): setuid/setgid files it owns, FIFOs, sockets, names that are not
//! UTF-8 or hold newlines, names like svirt's marks, `user.*` xattrs, hard links, renames,
//! symlinks to decoys, trees deeper than `PATH_MAX`, processes that outlive the VMM.
//!
//! Found on 3b443d8 and holding since the commit that added this file: a uid a surviving guest
//! process still runs as, and a setuid file it maps writable (a stop is refused while a
//! process carries the domain's drawn identity); a guest file linked outside the share (taken
//! from the VM to root, never given to the share's owner); a stop killed between a reclaim's
//! owner and mode (the mode goes first); `--json` reports with names that are not UTF-8.
//! Not defended, and left out of this file: with DAC alone, a guest that moves entries out of
//! its share to a directory it may write on the same filesystem leaves them with its uid after
//! the stop (share entries carry no file handle); see docs/threat-model.md.
//!
//! Every test works on temp trees as root with the failpoint build; nothing of the host's is
//! changed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use svirt_tests::*;

const ORIG: &str = "system_u:object_r:default_t:s0";
const HOME: &str = "system_u:object_r:user_home_t:s0";
const PYTHON: &str = "/usr/bin/python3";

/// [`user_share`] with a setuid-root tool of root's in it (`tool`, `0:0 4755`).
fn share_with_tool(h: &Stack) -> PathBuf {
    let share = user_share(h);
    file_with(&share.join("tool"), "root tool", 0, 0, 0o4755, ORIG);
    share
}

/// `find ROOT -xdev EXPR -print`: the paths found (deep trees included: find walks by fd).
fn find(root: &Path, expr: &[&str]) -> Vec<String> {
    let o = Command::new("find")
        .arg(root)
        .arg("-xdev")
        .args(expr)
        .arg("-print")
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Entries below `root` still carrying the VM's uid or gid.
fn vm_owned(root: &Path, uid: u32) -> Vec<String> {
    let u = uid.to_string();
    find(root, &["(", "-uid", &u, "-o", "-gid", &u, ")"])
}

/// Entries below `root` with setuid or setgid bits, or writable by others (symlinks aside).
fn privileged_or_open(root: &Path) -> Vec<String> {
    find(
        root,
        &[
            "!", "-type", "l", "(", "-perm", "/6000", "-o", "-perm", "-o+w", ")",
        ],
    )
}

/// Every `trusted.svirt.*` mark and every MCS-pair label below `root` (not deep trees).
fn marks_and_pairs(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let marks = svirt_xattrs(&p);
        if !marks.is_empty() {
            out.push(format!("{} {marks}", p.display()));
        }
        if label(&p).contains(":c") {
            out.push(format!("{} {}", p.display(), label(&p)));
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

/// A process of the guest's uid (and the shared group) running `script` in the background.
fn guest_process(uid: u32, shared_gid: u32, script: &str) -> std::process::Child {
    let mut child = Command::new("/usr/bin/setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            &format!("--groups={shared_gid}"),
            "/bin/sh",
            "-c",
            script,
        ])
        .env("PATH", SYSTEM_PATH)
        .spawn()
        .unwrap();
    wait_runs_as(&mut child, uid);
    child
}

/// Wait up to 10 s for `p` to exist.
fn wait_for(p: &Path) -> bool {
    for _ in 0..500 {
        if p.exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// A process the VMM forked (a daemon, a `setsid` child) keeps the VM's uid after the VMM is
/// gone; the manager kills the VMM's pid and calls `svirt stop`. The stop restores the share and
/// releases the uid without looking at the processes (only `recover` and a start on a lost
/// state do), and the pool hands out the lowest free uid: the next domain gets the same uid,
/// and the old guest's surviving process can open the new VM's private disk.
#[test]
fn a_uid_a_surviving_guest_process_runs_as_is_never_given_to_the_next_domain() {
    let name = "a_uid_a_surviving_guest_process_runs_as_is_never_given_to_the_next_domain";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::with_uids(65100, 65199);
    let share = share_with_tool(&h);
    let a = h.share_domain("a", &share);
    h.ok(&["start", a.to_str().unwrap()]);
    let ua = uid_of(&h, "a");
    // The guest's child, which outlives its VMM.
    let mut survivor = vm_process(ua);
    let stop = h.svirt(&["stop", "a"]);
    let disk = h.p("b.img");
    file_with(&disk, "B's private data", 0, 0, 0o644, ORIG);
    let b = h.domain("b", &format!("[[disk]]\npath = \"{}\"\n", disk.display()));
    let b_start = h.svirt(&["start", b.to_str().unwrap()]);
    let ub = if b_start.status.success() {
        uid_of(&h, "b")
    } else {
        0
    };
    // Can the survivor read B's disk?
    let read = Command::new("/usr/bin/setpriv")
        .args([
            &format!("--reuid={ua}"),
            &format!("--regid={ua}"),
            "--clear-groups",
            "/bin/cat",
        ])
        .arg(&disk)
        .output()
        .unwrap();
    survivor.kill().unwrap();
    survivor.wait().unwrap();
    let _ = h.svirt(&["recover"]);
    h.stop_all();
    assert!(
        ub != ua,
        "stop of a ({}) released uid {ua} while process {} still ran as it; domain b got the \
         same uid, and that process read B's disk: {:?}",
        text(&stop).trim(),
        survivor.id(),
        String::from_utf8_lossy(&read.stdout)
    );
}

/// The same surviving process, attacking a setuid-root tool of the share (`0:0 4755`): while
/// the VM holds it (the VM's uid, 0600) the guest maps it `MAP_SHARED` writable, and changes
/// nothing yet, so the ctime svirt recorded still holds at stop and the setuid bit comes
/// back. Then it writes through the mapping: a write through a mapping never clears setuid
/// (the kernel does it for `write(2)` only), so the result is a setuid-root program whose
/// content the guest wrote.
#[test]
fn a_setuid_file_a_surviving_guest_process_maps_writable_never_gets_setuid_back() {
    let name = "a_setuid_file_a_surviving_guest_process_maps_writable_never_gets_setuid_back";
    if !root_or_skip(name) {
        return;
    }
    if !Path::new(PYTHON).is_file() {
        return skip(name, "no /usr/bin/python3 to map the file as the guest");
    }
    let h = Stack::with_uids(65200, 65299);
    let share = share_with_tool(&h);
    let tool = share.join("tool");
    let sig = h.p("sig");
    dir_with(&sig, 0, 0, 0o777, ORIG);
    let dom = h.share_domain("m", &share);
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(&h, "m");
    let py = "import mmap,os,sys,time\n\
              fd=os.open(sys.argv[1],os.O_RDWR)\n\
              m=mmap.mmap(fd,0)\n\
              os.close(fd)\n\
              open(sys.argv[2],'w').close()\n\
              while not os.path.exists(sys.argv[3]): time.sleep(0.02)\n\
              m[0:5]=b'GUEST'\n\
              m.flush()\n";
    let py_file = h.p("map.py");
    std::fs::write(&py_file, py).unwrap();
    let mut survivor = guest_process(
        uid,
        h.shared_gid(),
        &format!(
            "exec {PYTHON} {} {} {}/ready {}/go",
            py_file.display(),
            tool.display(),
            sig.display(),
            sig.display()
        ),
    );
    assert!(
        wait_for(&sig.join("ready")),
        "the guest did not map the tool"
    );
    let stop = h.svirt(&["stop", "m"]);
    let after_stop = owner(&tool);
    std::fs::write(sig.join("go"), "").unwrap();
    let st = survivor.wait().unwrap();
    let content = std::fs::read_to_string(&tool).unwrap();
    let _ = h.svirt(&["recover"]);
    assert!(st.success());
    assert!(
        !(content.starts_with("GUEST") && owner(&tool).ends_with("4755")),
        "stop ({}) gave the tool back as {after_stop}; the guest's process then wrote it \
         through its mapping: now {} with content {content:?}",
        text(&stop).trim(),
        owner(&tool)
    );
}

/// The guest makes a file in its share (its content, mode 0600) and gives it a second name
/// in a world-writable directory of the same filesystem, named as a file the share's owner
/// trusts because they own it (a Kerberos credential cache, `krb5cc_1000`). At stop the share
/// name is "an entry the VM created": the reclaim gives it the share root's owner, user 1000,
/// through that name, without counting its names as the start does ("a file with more links
/// than names in the share is left out"): the guest plants a file of its choosing, owned by a
/// host user, at a name of its choosing outside the share.
#[test]
fn a_guest_file_with_a_name_outside_the_share_is_never_given_to_the_share_owner() {
    let name = "a_guest_file_with_a_name_outside_the_share_is_never_given_to_the_share_owner";
    if !root_or_skip(name) {
        return;
    }
    let h = Stack::new(true);
    let share = share_with_tool(&h);
    let dom = h.share_domain("k", &share);
    h.ok(&["start", dom.to_str().unwrap()]);
    let uid = uid_of(&h, "k");
    let planted = h.p("pubtmp/krb5cc_1000");
    as_guest(
        uid,
        &[h.shared_gid()],
        &format!(
            "echo attacker-ticket > {s}/cc && chmod 600 {s}/cc && ln {s}/cc {p}",
            s = share.display(),
            p = planted.display()
        ),
    );
    label_guest_made(&share, uid, &pair_label(&h, "k"));
    let stop = h.svirt(&["stop", "k"]);
    let released = !h.recorded("k");
    let m = std::fs::symlink_metadata(&planted).unwrap();
    let _ = h.svirt(&["recover"]);
    assert!(
        m.uid() != 1000 && !(m.uid() == uid && released),
        "stop ({}) made the guest's file {} {}",
        text(&stop).trim(),
        planted.display(),
        describe(&planted)
    );
}

/// The guest makes an entry whose name is not UTF-8 (`n\xff`). `svirt --json stop` reports it
/// among the reclaimed paths; a `PathBuf` that is not UTF-8 does not serialize, and `json!`
/// unwraps: the stop, done and recorded, panics while printing, exits 101 with no JSON, and a
/// manager that checks the exit code retries a stop of a domain that is gone. Likewise
/// `svirt --json recover` after a killed stop (`to_value(..)?`: it recovers everything, then
/// exits 1 with "path contains invalid UTF-8 characters" and no JSON).
#[test]
fn json_stop_and_recover_never_panic_on_a_guest_entry_whose_name_is_not_utf8() {
    let name = "json_stop_and_recover_never_panic_on_a_guest_entry_whose_name_is_not_utf8";
    if !root_or_skip(name) {
        return;
    }
    let mut bad = Vec::new();
    for killed_stop in [false, true] {
        let h = Stack::new(true);
        let share = share_with_tool(&h);
        let dom = h.share_domain("u", &share);
        h.ok(&["start", dom.to_str().unwrap()]);
        let uid = uid_of(&h, "u");
        as_guest(
            uid,
            &[h.shared_gid()],
            &format!("touch \"{}/n$(printf '\\377')\"", share.display()),
        );
        let o = if killed_stop {
            assert!(killed(&h.cfg, "restore.released:1", &["stop", "u"]));
            h.svirt(&["--json", "recover"])
        } else {
            h.svirt(&["--json", "stop", "u"])
        };
        let parsed = serde_json::from_slice::<serde_json::Value>(&o.stdout).is_ok();
        let left = vm_owned(&share, uid);
        let recorded = h.recorded("u");
        // Nothing here fails: the stop or recover must succeed and print its JSON.
        if !o.status.success() || !parsed {
            bad.push(format!(
                "killed stop {killed_stop}: {} (domain recorded: {recorded}, left the VM's: \
                 {left:?})",
                text(&o)
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Weird things the guest makes in its share, every one setuid/setgid or world-writable where
/// it can be: names with a newline, not UTF-8, 255 bytes long, named like svirt's marks
/// (`trusted.svirt.dac`), `-rf`, `...`; a FIFO and a unix socket; a symlink to a root-owned
/// decoy outside; `user.*` xattrs named like marks; a file with a dozen hard links; 2000 files
/// in one directory; setgid and sticky world-writable directories. After a clean stop, and
/// after a stop killed before and inside its restore then `recover`: nothing is the VM's,
/// nothing is setuid/setgid or world-writable but the host's own tool, no mark or pair is
/// left, the decoy is untouched, and the domain is gone.
#[test]
fn everything_odd_the_guest_makes_in_its_share_is_taken_back_whole() {
    let name = "everything_odd_the_guest_makes_in_its_share_is_taken_back_whole";
    if !root_or_skip(name) {
        return;
    }
    if !Path::new(PYTHON).is_file() {
        return skip(
            name,
            "no /usr/bin/python3 to make sockets and xattrs as the guest",
        );
    }
    for point in [None, Some("restore.released:1"), Some("restore.put-back:1")] {
        let h = Stack::new(true);
        let share = share_with_tool(&h);
        let decoy = h.p("decoy");
        dir_with(&decoy, 0, 0, 0o755, ORIG);
        file_with(&decoy.join("shadow"), "root:x:", 0, 0, 0o640, ORIG);
        let decoy_before = snapshot(&decoy);
        let dom = h.share_domain("w", &share);
        h.ok(&["start", dom.to_str().unwrap()]);
        let uid = uid_of(&h, "w");
        let long = "L".repeat(255);
        let py = format!(
            "import os,socket\n\
             os.chdir('{s}')\n\
             names=[b'nl\\nname', b'bad\\xff\\xfe', b'{long}', b'trusted.svirt.dac', \
             b'trusted.svirt.selinux', b'-rf', b'...', b' ']\n\
             for n in names:\n\
             \x20 open(n,'w').write('x')\n\
             \x20 os.chmod(n,0o6777)\n\
             \x20 os.setxattr(n,'user.trusted.svirt.dac',b'=0:0:4755')\n\
             os.mkfifo('fifo'); os.chmod('fifo',0o6777)\n\
             s=socket.socket(socket.AF_UNIX); s.bind('sock'); os.chmod('sock',0o6777)\n\
             os.symlink('{d}/shadow','shadow')\n\
             os.mkdir('sgid'); os.chmod('sgid',0o2777)\n\
             os.mkdir('sticky'); os.chmod('sticky',0o1777)\n\
             os.mkdir(b'dir\\n\\xff'); os.chmod(b'dir\\n\\xff',0o2777)\n\
             open('sgid/base','w').write('x'); os.chmod('sgid/base',0o4777)\n\
             for i in range(12): os.link('sgid/base','sgid/l%d'%i)\n\
             os.mkdir('many')\n\
             for i in range(2000): open('many/f%d'%i,'w').close(); os.chmod('many/f%d'%i,0o6777)\n",
            s = share.display(),
            d = decoy.display()
        );
        let py_file = h.p("odd.py");
        std::fs::write(&py_file, py).unwrap();
        as_guest(
            uid,
            &[h.shared_gid()],
            &format!("{PYTHON} {}", py_file.display()),
        );
        label_guest_made(&share, uid, &pair_label(&h, "w"));
        let o = match point {
            None => h.svirt(&["stop", "w"]),
            Some(p) => {
                assert!(killed(&h.cfg, p, &["stop", "w"]), "the kill at {p} landed");
                h.svirt(&["recover"])
            }
        };
        let left = vm_owned(&share, uid);
        let open: Vec<String> = privileged_or_open(&share)
            .into_iter()
            .filter(|p| !p.ends_with("/tool"))
            .collect();
        let marks = marks_and_pairs(&share);
        let recorded = h.recorded("w");
        assert!(
            o.status.success() && !recorded,
            "{point:?}: {} (recorded: {recorded})",
            text(&o)
        );
        assert_eq!(left, Vec::<String>::new(), "{point:?}: still the VM's");
        assert_eq!(open, Vec::<String>::new(), "{point:?}: setuid/setgid/o+w");
        assert_eq!(marks, Vec::<String>::new(), "{point:?}: marks or pairs");
        assert_eq!(owner(&share.join("tool")), "0:0 4755", "{point:?}");
        assert_eq!(owner(&share.join("plain")), "1000:1000 644", "{point:?}");
        assert_eq!(
            snapshot(&decoy),
            decoy_before,
            "{point:?}: the decoy changed"
        );
    }
}

/// The guest builds a tree deeper than `PATH_MAX` (150 levels of 40-byte names: over 6000
/// bytes of path), ending in setuid files, a setgid world-writable directory and a FIFO, and
/// 3000 entries in another directory. The stop (and a stop killed before it restored
/// anything, then `recover`) must take every one back, or fail naming it and keep the uid.
#[test]
fn a_guest_tree_deeper_than_path_max_is_taken_back_whole() {
    let name = "a_guest_tree_deeper_than_path_max_is_taken_back_whole";
    if !root_or_skip(name) {
        return;
    }
    if !Path::new(PYTHON).is_file() {
        return skip(
            name,
            "no /usr/bin/python3 to build the deep tree as the guest",
        );
    }
    for point in [None, Some("restore.released:1")] {
        let h = Stack::new(true);
        let share = share_with_tool(&h);
        let dom = h.share_domain("d", &share);
        h.ok(&["start", dom.to_str().unwrap()]);
        let uid = uid_of(&h, "d");
        let py = format!(
            "import os\n\
             os.chdir('{s}')\n\
             os.mkdir('wide')\n\
             for i in range(3000): open('wide/f%d'%i,'w').close(); os.chmod('wide/f%d'%i,0o6777)\n\
             for i in range(150):\n\
             \x20 n='d%039d'%i\n\
             \x20 os.mkdir(n); os.chdir(n)\n\
             open('tool','w').write('x'); os.chmod('tool',0o6755)\n\
             os.mkdir('g'); os.chmod('g',0o2777)\n\
             os.mkfifo('p'); os.chmod('p',0o4777)\n",
            s = share.display()
        );
        let py_file = h.p("deep.py");
        std::fs::write(&py_file, py).unwrap();
        as_guest(
            uid,
            &[h.shared_gid()],
            &format!("{PYTHON} {}", py_file.display()),
        );
        assert!(
            vm_owned(&share, uid).len() > 3000,
            "the guest's tree was not built"
        );
        let o = match point {
            None => h.svirt(&["stop", "d"]),
            Some(p) => {
                assert!(killed(&h.cfg, p, &["stop", "d"]));
                h.svirt(&["recover"])
            }
        };
        let left = vm_owned(&share, uid);
        let open: Vec<String> = privileged_or_open(&share)
            .into_iter()
            .filter(|p| !p.ends_with("/tool") || p.len() > 4096)
            .collect();
        let recorded = h.recorded("d");
        let summary = format!(
            "{point:?}: {} (recorded {recorded}); left the VM's: {} (first {:?}); setuid/o+w: {} \
             (first {:?})",
            text(&o).chars().take(2000).collect::<String>(),
            left.len(),
            left.first().map(|p| &p[p.len().saturating_sub(80)..]),
            open.len(),
            open.first().map(|p| &p[p.len().saturating_sub(80)..])
        );
        assert!(
            (left.is_empty() && open.is_empty() && !recorded) || (!o.status.success() && recorded),
            "{summary}"
        );
        assert!(o.status.success(), "{summary}");
    }
}

/// The DAC reclaim of an entry the VM made is two calls: `fchownat` (the share root's owner),
/// then `fchmodat` (`mode & 0755`: no setuid, setgid, sticky, nor write for others). A stop
/// killed between the two leaves the guest's world-writable setgid directory (2777), sticky
/// directory (1777) and world-writable file (0666) owned by the share's owner with the guest's
/// mode; the `recover` that finishes the stop judges "the VM's" by owner only, so it never
/// finishes them. Each kill in turn (`dac.owner-changed:N`, then `recover`) must end as the
/// clean stop does.
#[test]
fn a_stop_killed_between_a_reclaimed_entrys_owner_and_mode_ends_as_a_clean_stop() {
    let name = "a_stop_killed_between_a_reclaimed_entrys_owner_and_mode_ends_as_a_clean_stop";
    if !root_or_skip(name) {
        return;
    }
    let run_one = |point: Option<String>| -> Option<(Vec<String>, String)> {
        let h = Stack::new(true);
        let share = share_with_tool(&h);
        let dom = h.share_domain("r", &share);
        h.ok(&["start", dom.to_str().unwrap()]);
        let uid = uid_of(&h, "r");
        as_guest(
            uid,
            &[h.shared_gid()],
            &format!(
                "cd {} && mkdir gsgid gsticky && chmod 2777 gsgid && chmod 1777 gsticky && \
                 echo x > gfile && chmod 666 gfile && chmod 666 plain",
                share.display()
            ),
        );
        label_guest_made(&share, uid, &pair_label(&h, "r"));
        let out = match &point {
            None => h.ok(&["stop", "r"]),
            Some(p) => {
                if !killed(&h.cfg, p, &["stop", "r"]) {
                    h.stop_all();
                    return None;
                }
                text(&h.svirt(&["recover"]))
            }
        };
        Some((rel_snapshot(&share), out))
    };
    let (clean, _) = run_one(None).unwrap();
    let mut bad = Vec::new();
    for n in 1..40 {
        let point = format!("dac.owner-changed:{n}");
        let Some((after, out)) = run_one(Some(point.clone())) else {
            break;
        };
        if after != clean {
            let d: Vec<String> = after
                .iter()
                .filter(|l| !clean.contains(l))
                .cloned()
                .collect();
            bad.push(format!("{point}: {d:?}\n  {}", out.trim()));
        }
    }
    assert!(bad.is_empty(), "clean stop: {clean:#?}\n{}", bad.join("\n"));
}

/// The guest renames a recorded directory (`conf` -> `conf.old`) and puts in its place a
/// symlink to a root-owned decoy outside the share holding files of the same names
/// (`passwd`, `tool`), and moves another recorded file into the renamed directory. Recorded
/// paths now lead through the symlink into the decoy. The stop (clean, or killed before and
/// inside the restore, then `recover`) must give every inode its own original where it is
/// now (the moved setuid tool keeps its bit: its content never changed), never touch the
/// decoy, and leave nothing the VM's.
#[test]
fn recorded_paths_the_guest_repoints_at_a_decoy_never_lead_the_stop_outside_the_share() {
    let name = "recorded_paths_the_guest_repoints_at_a_decoy_never_lead_the_stop_outside_the_share";
    if !root_or_skip(name) {
        return;
    }
    for point in [
        None,
        Some("restore.released:1"),
        Some("dac.owner-changed:2"),
    ] {
        let h = Stack::new(true);
        let share = share_with_tool(&h);
        let conf = share.join("conf");
        dir_with(&conf, 1000, 1000, 0o755, HOME);
        file_with(&conf.join("passwd"), "user conf", 1000, 1000, 0o644, HOME);
        file_with(&conf.join("tool"), "root conf tool", 0, 0, 0o4755, ORIG);
        let decoy = h.p("decoy");
        dir_with(&decoy, 0, 0, 0o755, ORIG);
        file_with(&decoy.join("passwd"), "root:x:0:0", 0, 0, 0o644, ORIG);
        file_with(&decoy.join("tool"), "decoy", 0, 0, 0o4755, ORIG);
        file_with(&decoy.join("plain"), "decoy plain", 0, 0, 0o600, ORIG);
        let decoy_before = snapshot(&decoy);
        let dom = h.share_domain("y", &share);
        h.ok(&["start", dom.to_str().unwrap()]);
        let uid = uid_of(&h, "y");
        as_guest(
            uid,
            &[h.shared_gid()],
            &format!(
                "cd {} && mv conf conf.old && ln -s {} conf && mv plain conf.old/plain && \
                 ln -s {}/plain plain",
                share.display(),
                decoy.display(),
                decoy.display()
            ),
        );
        label_guest_made(&share, uid, &pair_label(&h, "y"));
        let o = match point {
            None => h.svirt(&["stop", "y"]),
            Some(p) => {
                assert!(killed(&h.cfg, p, &["stop", "y"]), "{p} landed");
                h.svirt(&["recover"])
            }
        };
        assert_eq!(snapshot(&decoy), decoy_before, "{point:?}: {}", text(&o));
        assert!(o.status.success(), "{point:?}: {}", text(&o));
        assert!(!h.recorded("y"), "{point:?}");
        assert_eq!(vm_owned(&share, uid), Vec::<String>::new(), "{point:?}");
        assert_eq!(marks_and_pairs(&share), Vec::<String>::new(), "{point:?}");
        assert_eq!(owner(&share.join("conf.old/passwd")), "1000:1000 644");
        assert_eq!(owner(&share.join("conf.old/plain")), "1000:1000 644");
        assert_eq!(owner(&share.join("conf.old/tool")), "0:0 4755");
        assert_eq!(owner(&share.join("tool")), "0:0 4755");
    }
}

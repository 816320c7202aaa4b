//! The DAC driver through the real binary, as root: shared and read-only images from a real
//! child, uid exhaustion, and crash recovery of owners and modes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use svirt_tests::*;

fn file(p: &Path, text: &str, mode: u32, uid: u32, gid: u32) {
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

#[test]
fn a_vm_writes_a_shared_image_and_only_reads_read_only_content() {
    if !root_or_skip("a_vm_writes_a_shared_image_and_only_reads_read_only_content") {
        return;
    }
    let d = tmp();
    let cfg = dac_config(d.path());
    let (own, shared, ro) = (
        d.path().join("own.img"),
        d.path().join("shared.img"),
        d.path().join("cd.iso"),
    );
    file(&own, "own\n", 0o644, 0, 0);
    file(&shared, "shared\n", 0o600, 1234, 1234);
    file(&ro, "iso\n", 0o644, 1234, 1234);
    let before: Vec<String> = [&own, &shared, &ro].iter().map(|p| owner(p)).collect();
    let script = format!(
        "echo more >> {s} && echo WROTE-SHARED; cat {r} && echo READ-RO; echo x >> {r} && echo WROTE-RO; echo end",
        s = shared.display(),
        r = ro.display()
    );
    let o = run(
        &cfg,
        &[
            "run",
            "--rw",
            own.to_str().unwrap(),
            "--shared",
            shared.to_str().unwrap(),
            "--ro",
            ro.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        out.contains("WROTE-SHARED") && out.contains("READ-RO") && out.contains("end"),
        "{out}"
    );
    assert!(!out.contains("WROTE-RO"), "{out}");
    assert_eq!(std::fs::read_to_string(&shared).unwrap(), "shared\nmore\n");
    let after: Vec<String> = [&own, &shared, &ro].iter().map(|p| owner(p)).collect();
    assert_eq!(after, before, "owners and modes restored exactly");
}

#[test]
fn uid_exhaustion_is_an_immediate_clear_error() {
    if !root_or_skip("uid_exhaustion_is_an_immediate_clear_error") {
        return;
    }
    let d = tmp();
    let cfg = d.path().join("svirt.toml");
    // 64000 and 64001 for VMs; 64002 is the shared group.
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}/state\"\n[[driver]]\ndriver = \"dac\"\nuid_range = \"64000-64002\"\n",
            d.path().display()
        ),
    )
    .unwrap();
    let mut uids = Vec::new();
    for i in 0..2 {
        std::fs::write(d.path().join("v.toml"), format!("name = \"u{i}\"\n")).unwrap();
        let o = run(
            &cfg,
            &["--json", "start", d.path().join("v.toml").to_str().unwrap()],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        uids.push(j["labels"][0]["label"].as_str().unwrap().to_owned());
    }
    assert_eq!(uids, ["+64000:+64000", "+64001:+64001"]);
    std::fs::write(d.path().join("v.toml"), "name = \"u2\"\n").unwrap();
    let t = std::time::Instant::now();
    let o = run(&cfg, &["start", d.path().join("v.toml").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("exhausted") && err.contains("uids 64000-64002"),
        "{err}"
    );
    assert!(
        t.elapsed().as_secs() < 10,
        "refused at once, not after retries"
    );
    assert!(run(&cfg, &["stop", "u0"]).status.success());
    let o = run(&cfg, &["start", d.path().join("v.toml").to_str().unwrap()]);
    assert!(o.status.success(), "a released uid is handed out again");
}

#[test]
fn a_crash_between_journal_and_chown_never_loses_an_original_owner() {
    if !root_or_skip("a_crash_between_journal_and_chown_never_loses_an_original_owner") {
        return;
    }
    for point in [
        "state.labels-generated:1",
        "relabel.journaled:1",
        "relabel.applied:1",
        "relabel.journaled:2",
        "state.record-written:1",
    ] {
        let d = tmp();
        // A range of its own: recover reserves the uids that running processes carry, and the
        // other tests run VM processes from the shared test range meanwhile.
        let cfg = d.path().join("svirt.toml");
        std::fs::write(
            &cfg,
            format!(
                "state_dir = \"{}/state\"\n[[driver]]\ndriver = \"dac\"\nuid_range = \"61000-61099\"\n",
                d.path().display()
            ),
        )
        .unwrap();
        let (a, b) = (d.path().join("a.img"), d.path().join("b.img"));
        file(&a, "a", 0o640, 12, 34);
        file(&b, "b", 0o604, 56, 78);
        let before = (owner(&a), owner(&b));
        std::fs::write(
            d.path().join("v.toml"),
            format!(
                "name = \"k\"\n[[disk]]\npath = \"{}\"\n[[disk]]\npath = \"{}\"\n",
                a.display(),
                b.display()
            ),
        )
        .unwrap();
        let o = Command::new(svirt())
            .env("SVIRT_FAILPOINT", point)
            .arg("--config")
            .arg(&cfg)
            .args(["start", d.path().join("v.toml").to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!o.status.success(), "{point}: start was not killed");
        let o = run(&cfg, &["recover"]);
        assert!(
            o.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!((owner(&a), owner(&b)), before, "{point}");
        assert_eq!(svirt_xattrs(&a) + &svirt_xattrs(&b), "", "{point}");
        // The uid was released too: the next domain gets the first uid of the range.
        std::fs::write(d.path().join("n.toml"), "name = \"n\"\n").unwrap();
        let o = run(
            &cfg,
            &["--json", "start", d.path().join("n.toml").to_str().unwrap()],
        );
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["labels"][0]["label"], "+61000:+61000", "{point}");
    }
}

/// The DAC pool, like the MCS one, lets a static label join a uid only when every holder
/// declared it shared: a `shared = true` static label must not take the uid a dynamic domain
/// drew, nor one a static domain holds alone.
#[test]
fn a_shared_static_uid_never_joins_a_uid_another_domain_holds_alone() {
    if !root_or_skip("a_shared_static_uid_never_joins_a_uid_another_domain_holds_alone") {
        return;
    }
    let s = Stack::new(true);
    let dynamic = s.domain("dyn", "");
    s.ok(&["start", dynamic.to_str().unwrap()]);
    let drawn = s.label_of("dyn", "dac");
    // A static uid inside the pool's range.
    let mid = s.shared_gid() - 499;
    let alone = format!("+{mid}:+{mid}");
    let lone = s.domain(
        "lone",
        &format!("[[seclabel]]\nmodel = \"dac\"\ntype = \"static\"\nlabel = \"{alone}\"\n"),
    );
    s.ok(&["start", lone.to_str().unwrap()]);
    for (name, label, holder) in [
        ("joiner1", drawn.as_str(), "dyn"),
        ("joiner2", alone.as_str(), "lone"),
    ] {
        let joiner = s.domain(
            name,
            &format!(
                "[[seclabel]]\nmodel = \"dac\"\ntype = \"static\"\nlabel = \"{label}\"\nshared = true\n"
            ),
        );
        let o = s.svirt(&["start", joiner.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{name} took uid {label} that {holder} holds without sharing it: {}{err}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(err.contains("in use") && err.contains(holder), "{err}");
    }
}

/// A share as `mkdir` and a umask make it (directories 0755, files 0644, one owner) needs no
/// mark on any entry: a file's common original is its directory's without the execute bits.
/// Only entries with another original (an executable, a private file, another owner) carry
/// one, and the stop puts everything back and removes them.
#[test]
fn a_share_made_with_a_umask_marks_only_the_entries_that_differ() {
    if !root_or_skip("a_share_made_with_a_umask_marks_only_the_entries_that_differ") {
        return;
    }
    let d = tmp();
    let cfg = dac_config(d.path());
    let share = d.path().join("share");
    std::fs::create_dir_all(share.join("sub")).unwrap();
    for f in ["a", "b", "sub/c"] {
        file(&share.join(f), f, 0o644, 0, 0);
    }
    file(&share.join("run.sh"), "#!/bin/sh\n", 0o755, 0, 0);
    file(&share.join("key"), "k", 0o600, 0, 0);
    file(&share.join("theirs"), "t", 0o644, 1000, 1000);
    let before = snapshot(&share);
    let dom = d.path().join("s.toml");
    std::fs::write(
        &dom,
        format!(
            "name = \"s\"\n[[filesystem]]\npath = \"{}\"\n",
            share.display()
        ),
    )
    .unwrap();
    let o = run(&cfg, &["start", dom.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let marked: Vec<&str> = ["a", "b", "sub", "sub/c", "run.sh", "key", "theirs"]
        .into_iter()
        .filter(|f| !svirt_xattrs(&share.join(f)).is_empty())
        .collect();
    assert_eq!(marked, ["run.sh", "key", "theirs"]);
    let o = run(&cfg, &["stop", "s"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(snapshot(&share), before);
}

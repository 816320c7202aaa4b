//! The real `svirt` binary, driven as a VM manager would. Root tests on real files.

use std::os::unix::fs::PermissionsExt;

use svirt_tests::*;

#[test]
fn dac_vm_reads_its_own_image_and_not_another_vms_or_shadow() {
    if !root_or_skip("dac_vm_reads_its_own_image_and_not_another_vms_or_shadow") {
        return;
    }
    let d = tmp();
    let cfg = dac_config(d.path());
    let a = d.path().join("a.img");
    let b = d.path().join("b.img");
    std::fs::write(&a, "secret-a\n").unwrap();
    std::fs::write(&b, "secret-b\n").unwrap();
    for f in [&a, &b] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let before = (owner(&a), owner(&b));
    std::fs::write(
        d.path().join("a.toml"),
        format!("name = \"dA\"\n[[disk]]\npath = \"{}\"\n", a.display()),
    )
    .unwrap();
    let o = run(&cfg, &["start", d.path().join("a.toml").to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        owner(&a).ends_with(" 600") && owner(&a).starts_with("640"),
        "{}",
        owner(&a)
    );
    let script = format!(
        "id -u; id -G; cat {b}; cat {a} && echo READ-A; cat /etc/shadow >/dev/null && echo READ-SHADOW; grep NoNewPrivs /proc/self/status",
        a = a.display(),
        b = b.display()
    );
    let o = run(
        &cfg,
        &[
            "run",
            "--name",
            "dB",
            "--rw",
            b.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut lines = out.lines();
    let uid: u32 = lines.next().unwrap().parse().unwrap();
    assert!((64000..65000).contains(&uid));
    assert_eq!(
        lines.next().unwrap(),
        format!("{uid} 64999"),
        "exactly its gid and the shared group"
    );
    assert!(out.contains("secret-b"));
    assert!(!out.contains("READ-A"), "VM B read VM A's image");
    assert!(!out.contains("READ-SHADOW"));
    assert!(out.contains("NoNewPrivs:\t1"));
    let o = run(&cfg, &["stop", "dA"]);
    assert!(o.status.success());
    assert_eq!(
        (owner(&a), owner(&b)),
        before,
        "owners and modes restored exactly"
    );
    assert_eq!(svirt_xattrs(&a), "", "no svirt metadata left");
}

#[test]
fn selinux_offline_round_trip_restores_every_label() {
    if !root_or_skip("selinux_offline_round_trip_restores_every_label") {
        return;
    }
    let d = tmp();
    let cfg = selinux_config(d.path(), "s0-s0:c0.c1023");
    let disk = d.path().join("d.img");
    let ro = d.path().join("ro.iso");
    let share = d.path().join("share");
    std::fs::create_dir_all(share.join("sub")).unwrap();
    std::fs::write(share.join("sub/f"), "x").unwrap();
    labeled_file(&disk, "x", "system_u:object_r:default_t:s0");
    std::fs::write(&ro, "x").unwrap();
    let snap = || {
        [
            label(&disk),
            label(&ro),
            label(&share),
            label(&share.join("sub/f")),
        ]
    };
    let before = snap();
    std::fs::write(
        d.path().join("v.toml"),
        format!(
            "name = \"rt\"\n[[disk]]\npath = \"{}\"\n[[disk]]\npath = \"{}\"\nreadonly = true\n[[filesystem]]\npath = \"{}\"\n",
            disk.display(),
            ro.display(),
            share.display()
        ),
    )
    .unwrap();
    let o = run(
        &cfg,
        &["--json", "start", d.path().join("v.toml").to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let img = j["labels"][0]["imagelabel"].as_str().unwrap().to_owned();
    assert!(
        img.starts_with("system_u:object_r:svirt_image_t:s0:c"),
        "{img}"
    );
    assert_eq!(label(&disk), img);
    assert_eq!(label(&ro), "system_u:object_r:virt_content_t:s0");
    assert_eq!(
        label(&share.join("sub/f")),
        img,
        "directory share relabeled recursively"
    );
    let o = run(&cfg, &["stop", "rt"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(snap(), before);
    assert_eq!(svirt_xattrs(&disk), "");
}

#[test]
fn exhaustion_is_an_immediate_typed_error_and_bad_domains_exit_2() {
    if !root_or_skip("exhaustion_is_an_immediate_typed_error_and_bad_domains_exit_2") {
        return;
    }
    let d = tmp();
    let cfg = selinux_config(d.path(), "s0-s0:c0.c7");
    for i in 0..28 {
        std::fs::write(d.path().join("n.toml"), format!("name = \"n{i}\"\n")).unwrap();
        assert!(
            run(&cfg, &["start", d.path().join("n.toml").to_str().unwrap()])
                .status
                .success()
        );
    }
    std::fs::write(d.path().join("n.toml"), "name = \"n28\"\n").unwrap();
    let o = run(&cfg, &["start", d.path().join("n.toml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("MCS labels exhausted"));
    std::fs::write(d.path().join("bad.toml"), "name = \"../x\"\n").unwrap();
    let o = run(
        &cfg,
        &["verify", d.path().join("bad.toml").to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// With `--json`, a command that fails still prints JSON on standard output: the error, its
/// causes and the exit status (the text goes to standard error as without `--json`).
#[test]
fn a_failed_command_under_json_prints_its_error_as_json() {
    if !root_or_skip("a_failed_command_under_json_prints_its_error_as_json") {
        return;
    }
    let d = tmp();
    let cfg = selinux_config(d.path(), "s0-s0:c0.c1023");
    std::fs::write(d.path().join("bad.toml"), "name = \"../x\"\n").unwrap();
    let bad = d.path().join("bad.toml");
    for (args, code, names) in [
        (vec!["--json", "stop", "nosuch"], 1, "nosuch"),
        (vec!["--json", "verify", bad.to_str().unwrap()], 2, "../x"),
        (vec!["--json", "status", "nosuch"], 1, "nosuch"),
        // Arguments that do not parse.
        (vec!["--json", "bogus"], 2, "bogus"),
        (vec!["--json", "status", "--bogus"], 2, "--bogus"),
        (vec!["--json", "stop"], 2, "NAME"),
    ] {
        let o = run(&cfg, &args);
        assert_eq!(o.status.code(), Some(code), "{args:?}");
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: no JSON on stdout ({e}): {}",
                String::from_utf8_lossy(&o.stdout)
            )
        });
        let error = j["error"].as_str().unwrap_or_default();
        let all = format!("{error} {}", j["causes"]);
        assert!(all.contains(names), "{args:?}: {j}");
        assert_eq!(j["exit"], code, "{args:?}: {j}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(error),
            "{args:?}: stderr {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

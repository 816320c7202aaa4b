//! Every command of the real binary, in both domain formats.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use svirt_tests::*;

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn xml(name: &str, disk: &Path, ro: &Path) -> String {
    format!(
        "<domain type='kvm'><name>{name}</name><memory>1024</memory>\
         <devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\
         <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/><target dev='vda'/></disk>\
         <disk type='file' device='cdrom'><source file='{}'/><readonly/></disk>\
         <interface type='network'><source network='default'/></interface></devices>\
         <seclabel type='dynamic' model='selinux' relabel='yes'/></domain>",
        disk.display(),
        ro.display()
    )
}

#[test]
fn libvirt_xml_and_toml_domains_go_through_verify_start_status_and_stop() {
    if !root_or_skip("libvirt_xml_and_toml_domains_go_through_verify_start_status_and_stop") {
        return;
    }
    let d = tmp();
    let cfg = selinux_config(d.path(), "s0-s0:c0.c1023");
    let (disk, ro, disk2) = (
        d.path().join("x.img"),
        d.path().join("x.iso"),
        d.path().join("t.img"),
    );
    for f in [&disk, &ro, &disk2] {
        labeled_file(f, "x", "system_u:object_r:default_t:s0");
    }
    let x = d.path().join("web.xml");
    std::fs::write(&x, xml("web", &disk, &ro)).unwrap();
    let t = d.path().join("tom.toml");
    std::fs::write(
        &t,
        format!("name = \"tom\"\n[[disk]]\npath = \"{}\"\n", disk2.display()),
    )
    .unwrap();

    let v = json(&run(&cfg, &["--json", "verify", x.to_str().unwrap()]));
    assert_eq!(v["valid"], true);
    assert_eq!(v["resources"].as_array().unwrap().len(), 2);
    assert_eq!(
        label(&disk),
        "system_u:object_r:default_t:s0",
        "verify changes nothing"
    );

    let s = json(&run(&cfg, &["--json", "start", x.to_str().unwrap()]));
    assert_eq!(s["name"], "web");
    let l = &s["labels"][0];
    assert_eq!(
        (l["model"].as_str(), l["type"].as_str()),
        (Some("selinux"), Some("dynamic"))
    );
    let image = l["imagelabel"].as_str().unwrap();
    assert_eq!(label(&disk), image);
    assert_eq!(label(&ro), "system_u:object_r:virt_content_t:s0");
    let res = s["resources"].as_array().unwrap();
    assert!(res
        .iter()
        .all(|r| r["skipped"] == false && r["model"] == "selinux" && r["path"].is_string()));

    // Global flags after the command work too.
    let o = Command::new(svirt())
        .args(["start", t.to_str().unwrap(), "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let s2 = json(&o);
    assert_ne!(
        s2["labels"][0]["label"], l["label"],
        "two domains, two labels"
    );

    let st = json(&run(&cfg, &["--json", "status"]));
    let names: Vec<&str> = st["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tom", "web"]);
    let one = json(&run(&cfg, &["--json", "status", "web"]));
    assert_eq!(one["domains"][0]["resources"].as_array().unwrap().len(), 2);
    assert_eq!(one["domains"][0]["pid"], serde_json::Value::Null);
    let text = run(&cfg, &["status"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("web (running, no process recorded)"));

    let o = run(&cfg, &["start", x.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already running"));

    for n in ["web", "tom"] {
        assert!(run(&cfg, &["stop", n]).status.success());
    }
    for f in [&disk, &ro, &disk2] {
        assert_eq!(
            label(f),
            "system_u:object_r:default_t:s0",
            "{}",
            f.display()
        );
    }
    let o = run(&cfg, &["stop", "web"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no domain named web"));
    let o = run(&cfg, &["status", "web"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn attach_and_detach_label_and_restore_one_disk() {
    if !root_or_skip("attach_and_detach_label_and_restore_one_disk") {
        return;
    }
    let d = tmp();
    let cfg = dac_config(d.path());
    let hot = d.path().join("hot.img");
    std::fs::write(&hot, "x").unwrap();
    std::os::unix::fs::chown(&hot, Some(5), Some(6)).unwrap();
    std::fs::set_permissions(&hot, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = owner(&hot);
    std::fs::write(d.path().join("v.toml"), "name = \"h\"\n").unwrap();
    let s = json(&run(
        &cfg,
        &["--json", "start", d.path().join("v.toml").to_str().unwrap()],
    ));
    let uid = s["labels"][0]["label"]
        .as_str()
        .unwrap()
        .trim_start_matches('+')
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    let a = json(&run(
        &cfg,
        &["--json", "attach", "h", hot.to_str().unwrap()],
    ));
    assert_eq!(a["resources"][0]["model"], "dac");
    assert_eq!(owner(&hot), format!("{uid}:{uid} 600"));
    let st = json(&run(&cfg, &["--json", "status", "h"]));
    assert!(st["domains"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["path"] == hot.to_str().unwrap()));
    assert!(run(&cfg, &["detach", "h", hot.to_str().unwrap()])
        .status
        .success());
    assert_eq!(owner(&hot), before);
    let o = run(&cfg, &["detach", "h", hot.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "detaching a disk the domain does not have"
    );
    assert!(
        run(&cfg, &["attach", "h", hot.to_str().unwrap(), "--readonly"])
            .status
            .success()
    );
    assert_eq!(owner(&hot), "0:64999 440");
    assert!(run(&cfg, &["stop", "h"]).status.success());
    assert_eq!(owner(&hot), before);
}

#[test]
fn exec_becomes_the_vmm_under_the_domain_identity_and_records_its_pid() {
    if !root_or_skip("exec_becomes_the_vmm_under_the_domain_identity_and_records_its_pid") {
        return;
    }
    let d = tmp();
    let cfg = dac_config(d.path());
    std::fs::write(d.path().join("v.toml"), "name = \"e\"\n").unwrap();
    let s = json(&run(
        &cfg,
        &["--json", "start", d.path().join("v.toml").to_str().unwrap()],
    ));
    let label = s["labels"][0]["label"].as_str().unwrap().to_owned();
    let o = run(
        &cfg,
        &["exec", "e", "--", "sh", "-c", "echo $$; id -u; id -g"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(format!("+{}:+{}", lines[1], lines[2]), label);
    let st = json(&run(&cfg, &["--json", "status", "e"]));
    assert_eq!(
        st["domains"][0]["pid"].as_u64().unwrap().to_string(),
        lines[0],
        "the pid svirt recorded is the VMM's"
    );
    assert_eq!(st["domains"][0]["alive"], false);
    // The VMM is gone: recover tears the domain down.
    assert!(run(&cfg, &["recover"]).status.success());
    let st = json(&run(&cfg, &["--json", "status"]));
    assert!(st["domains"].as_array().unwrap().is_empty());
    let o = run(&cfg, &["exec", "nosuch", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn usage_and_configuration_errors_exit_2_with_the_cause_named() {
    let d = tmp();
    let bad_cfg = d.path().join("bad.toml");
    std::fs::write(&bad_cfg, "[[driver]]\ndriver = \"apparmor\"\n").unwrap();
    std::fs::write(d.path().join("v.toml"), "name = \"v\"\n").unwrap();
    let o = run(
        &bad_cfg,
        &["start", d.path().join("v.toml").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("apparmor"));
    let o = Command::new(svirt()).args(["start"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "missing argument");
    let cfg = dac_config(d.path());
    std::fs::write(
        d.path().join("x.xml"),
        "<domain><name>a</name><seclabel type='none' relabel='yes'/></domain>",
    )
    .unwrap();
    let o = run(&cfg, &["verify", d.path().join("x.xml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not compatible with 'none'"));
    let o = run(
        &cfg,
        &["verify", d.path().join("missing.toml").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn drivers_completions_and_man_page() {
    let o = Command::new(svirt())
        .args(["--json", "drivers"])
        .output()
        .unwrap();
    let j = json(&o);
    let names: Vec<&str> = j["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["driver"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["selinux", "dac", "landlock", "none"]);
    let se = &j["drivers"][0];
    if se["available"] == false {
        assert!(
            se["detail"].as_str().unwrap().contains("offline = true"),
            "the reason is given: {se}"
        );
    }
    let o = Command::new(svirt())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("svirt"));
    let o = Command::new(svirt()).arg("man").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains(".TH svirt"));
}

#[test]
fn a_hundred_concurrent_starts_get_a_hundred_labels_and_consistent_state() {
    if !root_or_skip("a_hundred_concurrent_starts_get_a_hundred_labels_and_consistent_state") {
        return;
    }
    let d = tmp();
    let cfg = selinux_config(d.path(), "s0-s0:c0.c1023");
    let img = |i: usize| d.path().join(format!("c{i}.img"));
    for i in 0..100 {
        std::fs::write(img(i), "").unwrap();
        std::fs::write(
            d.path().join(format!("c{i}.toml")),
            format!(
                "name = \"c{i}\"\n[[disk]]\npath = \"{}\"\n",
                img(i).display()
            ),
        )
        .unwrap();
    }
    let children: Vec<_> = (0..100)
        .map(|i| {
            Command::new(svirt())
                .arg("--config")
                .arg(&cfg)
                .arg("start")
                .arg(d.path().join(format!("c{i}.toml")))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let labels: std::collections::HashSet<String> = (0..100).map(|i| label(&img(i))).collect();
    assert_eq!(labels.len(), 100, "100 distinct image labels");
    let st = json(&run(&cfg, &["--json", "status"]));
    let domains = st["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 100);
    for dom in domains {
        let name = dom["name"].as_str().unwrap();
        let i: usize = name[1..].parse().unwrap();
        assert_eq!(dom["phase"], "running");
        assert_eq!(
            dom["labels"][0]["imagelabel"].as_str().unwrap(),
            label(&img(i)),
            "{name}: record and file agree"
        );
    }
    for i in 0..100 {
        assert!(run(&cfg, &["stop", &format!("c{i}")]).status.success());
        assert_eq!(label(&img(i)), "");
    }
}

#[test]
fn the_embedding_example_confines_its_vmm_and_restores_the_image() {
    if !root_or_skip("the_embedding_example_confines_its_vmm_and_restores_the_image") {
        return;
    }
    // `cargo test --workspace` builds every member's examples into `<target>/<profile>/examples`.
    let example = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/embed");
    assert!(
        example.is_file(),
        "{} is missing: run `cargo test --workspace`, which builds svirt-cli's examples",
        example.display()
    );
    let d = tmp();
    let img = d.path().join("e.img");
    std::fs::write(&img, "embedded image\n").unwrap();
    std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = owner(&img);
    let o = Command::new(&example)
        .env("PATH", SYSTEM_PATH)
        .arg(&img)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("label dac +640") && out.contains("uid=640"),
        "{out}"
    );
    assert!(out.contains("embedded image"), "{out}");
    assert!(out.contains("/etc/shadow: Permission denied"), "{out}");
    assert!(out.contains("restored"), "{out}");
    assert_eq!(owner(&img), before);
}

#[test]
fn offline_static_labels_are_checked_against_a_policy_file() {
    let d = tmp();
    let conf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../svirt-selinux/tests/data/tiny-policy.conf");
    let policy = d.path().join("policy.33");
    let built = Command::new("checkpolicy")
        .args(["-M", "-c", "33", "-o"])
        .arg(&policy)
        .arg(&conf)
        .output();
    if !built.is_ok_and(|o| o.status.success()) {
        skip(
            "offline_static_labels_are_checked_against_a_policy_file",
            "checkpolicy is not installed",
        );
        return;
    }
    let cfg = d.path().join("svirt.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}/state\"\n[[driver]]\ndriver = \"selinux\"\noffline = true\n\
             manager_context = \"system_u:system_r:kernel_t:s0-s0:c0.c7\"\npolicy_file = \"{}\"\n",
            d.path().display(),
            policy.display()
        ),
    )
    .unwrap();
    let dom = |label: &str| {
        let p = d.path().join("s.toml");
        std::fs::write(&p, format!("name = \"s\"\n[[seclabel]]\nmodel = \"selinux\"\ntype = \"static\"\nlabel = \"{label}\"\n")).unwrap();
        run(&cfg, &["verify", p.to_str().unwrap()])
    };
    let o = dom("system_u:system_r:svirt_t:s0:c1,c2");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = dom("system_u:system_r:nosuch_t:s0:c1,c2");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not valid in the loaded policy"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = dom("system_u:system_r:svirt_t:s0:c1,c9");
    assert!(
        !o.status.success(),
        "c9 is outside both the manager's range and the policy"
    );
}

#[test]
fn recover_keeps_a_domain_whose_vmm_is_alive_and_tears_it_down_once_it_is_gone() {
    if !root_or_skip("recover_keeps_a_domain_whose_vmm_is_alive_and_tears_it_down_once_it_is_gone")
    {
        return;
    }
    let d = tmp();
    let cfg = dac_config(d.path());
    let img = d.path().join("live.img");
    std::fs::write(&img, "x").unwrap();
    let before = owner(&img);
    std::fs::write(
        d.path().join("v.toml"),
        format!("name = \"live\"\n[[disk]]\npath = \"{}\"\n", img.display()),
    )
    .unwrap();
    assert!(
        run(&cfg, &["start", d.path().join("v.toml").to_str().unwrap()])
            .status
            .success()
    );
    let mut vmm = Command::new(svirt())
        .arg("--config")
        .arg(&cfg)
        .env("PATH", SYSTEM_PATH)
        .args(["exec", "live", "--", "sleep", "30"])
        .spawn()
        .unwrap();
    let pid_recorded = || {
        let st = json(&run(&cfg, &["--json", "status", "live"]));
        st["domains"][0]["pid"].as_u64() == Some(u64::from(vmm.id()))
    };
    for _ in 0..100 {
        if pid_recorded() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(pid_recorded(), "svirt exec recorded its pid");
    assert!(run(&cfg, &["recover"]).status.success());
    let st = json(&run(&cfg, &["--json", "status"]));
    assert_eq!(
        st["domains"][0]["name"], "live",
        "a running VMM's domain is kept"
    );
    assert_eq!(st["domains"][0]["alive"], true);
    assert_ne!(owner(&img), before);
    vmm.kill().unwrap();
    vmm.wait().unwrap();
    assert!(run(&cfg, &["recover"]).status.success());
    let st = json(&run(&cfg, &["--json", "status"]));
    assert!(
        st["domains"].as_array().unwrap().is_empty(),
        "the dead VMM's domain is gone"
    );
    assert_eq!(owner(&img), before);
}

#[test]
fn run_forwards_a_signal_to_the_command_and_still_restores_everything() {
    if !root_or_skip("run_forwards_a_signal_to_the_command_and_still_restores_everything") {
        return;
    }
    let d = tmp();
    let cfg = dac_config(d.path());
    let img = d.path().join("r.img");
    std::fs::write(&img, "x").unwrap();
    let before = owner(&img);
    let mut svirt_run = Command::new(svirt())
        .arg("--config")
        .arg(&cfg)
        .args([
            "run",
            "--name",
            "sig",
            "--rw",
            img.to_str().unwrap(),
            "--",
            &system_tool("sleep"),
            "30",
        ])
        .spawn()
        .unwrap();
    let started = || owner(&img) != before;
    for _ in 0..100 {
        if started() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(started(), "svirt run took the image");
    std::thread::sleep(std::time::Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(svirt_run.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = svirt_run.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "exits with the command's status: killed by SIGTERM"
    );
    assert_eq!(owner(&img), before, "stopped and restored after the signal");
    let st = json(&run(&cfg, &["--json", "status"]));
    assert!(st["domains"].as_array().unwrap().is_empty());
}

/// Run svirt with stdout and stderr on pipes whose reader is already gone.
fn with_closed_output(cfg: &Path, args: &[&str]) -> std::process::ExitStatus {
    let mut child = Command::new(svirt())
        .env("PATH", SYSTEM_PATH)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("svirt runs");
    drop(child.stdout.take());
    drop(child.stderr.take());
    child.wait().expect("svirt ends")
}

#[test]
fn a_closed_pipe_never_ends_a_start_or_stop_half_way() {
    use std::os::unix::process::ExitStatusExt;
    if !root_or_skip("a_closed_pipe_never_ends_a_start_or_stop_half_way") {
        return;
    }
    let d = tmp();
    let cfg = selinux_config(d.path(), "s0-s0:c0.c1023");
    let disk = d.path().join("x.img");
    labeled_file(&disk, "x", "system_u:object_r:default_t:s0");
    let t = d.path().join("p.toml");
    std::fs::write(
        &t,
        format!("name = \"p\"\n[[disk]]\npath = \"{}\"\n", disk.display()),
    )
    .unwrap();
    // -vv: debug events go to the closed stderr while the disk is being labeled.
    let st = with_closed_output(&cfg, &["-vv", "start", t.to_str().unwrap()]);
    assert_eq!(st.signal(), None, "start was killed: {st:?}");
    assert!(st.success(), "{st:?}");
    assert!(label(&disk).starts_with("system_u:object_r:svirt_image_t:s0:c"));
    let st = with_closed_output(&cfg, &["-vv", "stop", "p"]);
    assert_eq!(st.signal(), None, "stop was killed: {st:?}");
    assert!(st.success(), "{st:?}");
    assert_eq!(label(&disk), "system_u:object_r:default_t:s0");
    // A command that changes nothing may end quietly of the closed pipe.
    let st = with_closed_output(&cfg, &["status"]);
    assert!(
        st.success() || st.signal() == Some(libc::SIGPIPE),
        "status into a closed pipe: {st:?}"
    );
}

//! `svirt audit` through the real binary, against Debian's selinux-policy-default (no SELinux
//! kernel needed: decisions come from the policy file through libsepol).

use std::path::{Path, PathBuf};

use serde_json::Value;
use svirt_tests::{labeled_file, root_or_skip, run, skip, svirt, tmp};

const POLICY: &str = "/etc/selinux/default/policy/policy.33";
const VM: &str = "system_u:system_r:svirt_t:s0:c1,c2";

fn policy_or_skip(test: &str) -> bool {
    let ok = Path::new(POLICY).is_file();
    if !ok {
        skip(test, "selinux-policy-default is not installed");
    }
    ok
}

/// Run `svirt audit ARGS --json` and return its exit code and report.
fn audit(cfg: Option<&Path>, args: &[&str]) -> (i32, Value) {
    let mut cmd = std::process::Command::new(svirt());
    if let Some(c) = cfg {
        cmd.arg("--config").arg(c);
    }
    let o = cmd.arg("audit").args(args).arg("--json").output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "audit printed no JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code().unwrap_or(-1), report)
}

/// The entry of `path` in subject `name`'s report, if listed.
fn entry<'a>(r: &'a Value, name: &str, path: &Path) -> Option<&'a Value> {
    r["subjects"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)?["entries"]
        .as_array()?
        .iter()
        .find(|e| e["path"] == path.to_str().unwrap())
}

/// (class, read, write) of a listed entry.
fn access(r: &Value, name: &str, path: &Path) -> Option<(String, bool, bool)> {
    entry(r, name, path).map(|e| {
        (
            e["class"].as_str().unwrap_or("").to_owned(),
            e["read"] == true,
            e["write"] == true,
        )
    })
}

fn tree(dir: &Path) -> PathBuf {
    let images = dir.join("images");
    std::fs::create_dir(&images).unwrap();
    rustix::fs::lsetxattr(
        &images,
        "security.selinux",
        b"system_u:object_r:virt_image_t:s0",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    images
}

#[test]
fn an_svirt_t_process_reaches_its_own_and_the_shared_image_not_another_vms_or_shadow() {
    let test = "an_svirt_t_process_reaches_its_own_and_the_shared_image_not_another_vms_or_shadow";
    if !root_or_skip(test) || !policy_or_skip(test) {
        return;
    }
    let d = tmp();
    let images = tree(d.path());
    let own = images.join("own.img");
    let shared = images.join("shared.img");
    let other = images.join("other.img");
    let shadow = images.join("shadow");
    labeled_file(&own, "own", "system_u:object_r:svirt_image_t:s0:c1,c2");
    labeled_file(&shared, "shared", "system_u:object_r:svirt_image_t:s0");
    labeled_file(&other, "other", "system_u:object_r:svirt_image_t:s0:c3,c4");
    labeled_file(&shadow, "root:x:1::::::", "system_u:object_r:shadow_t:s0");
    let state = d.path().join("state");
    let root = images.to_str().unwrap();
    let base = [
        "--state-dir",
        state.to_str().unwrap(),
        "--root",
        root,
        "--policy",
        POLICY,
    ];

    let (code, r) = audit(None, &[&base[..], &["--label", VM]].concat());
    assert_eq!(
        access(&r, VM, &own),
        Some(("own".into(), true, true)),
        "{r:#}"
    );
    assert_eq!(access(&r, VM, &shared), Some(("shared".into(), true, true)));
    assert_eq!(
        access(&r, VM, &other),
        Some(("isolated".into(), false, false)),
        "another VM's image is listed as unreachable"
    );
    let reason = entry(&r, VM, &other).unwrap()["reason"].as_str().unwrap();
    assert!(reason.contains("constraint"), "{reason}");
    assert_eq!(access(&r, VM, &shadow), None, "shadow_t is not reachable");
    assert_eq!(r["walked"], 5);
    // No VM runs, so another VM's image label is a stale mark: a violation, exit 1.
    assert_eq!(code, 1);
    let findings = r["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["path"], other.to_str().unwrap());
    assert_eq!(findings[0]["class"], "stale-mark");

    // The same files with the DAC wall alone (all are world-readable): shadow is readable, so it
    // is the SELinux wall that kept it out above.
    let (_, dac) = audit(
        None,
        &[&base[..], &["--uid", "64000", "--groups", "64999"]].concat(),
    );
    let who = "uid 64000 groups 64999";
    assert_eq!(
        access(&dac, who, &shadow),
        Some(("host-readable".into(), true, false)),
        "{dac:#}"
    );
    // Both walls: only what both allow.
    let both = format!("{VM} {who}");
    let (_, r2) = audit(
        None,
        &[
            &base[..],
            &["--label", VM, "--uid", "64000", "--groups", "64999"],
        ]
        .concat(),
    );
    assert_eq!(access(&r2, &both, &own), Some(("own".into(), true, false)));
    assert_eq!(access(&r2, &both, &shadow), None);
    let walls = &r2["subjects"][0]["walls"];
    assert_eq!(walls, &serde_json::json!(["selinux", "dac"]));
}

#[test]
fn audit_of_running_domains_finds_a_private_disk_labeled_shared_and_a_stale_label() {
    let test = "audit_of_running_domains_finds_a_private_disk_labeled_shared_and_a_stale_label";
    if !root_or_skip(test) || !policy_or_skip(test) {
        return;
    }
    let d = tmp();
    let images = tree(d.path());
    for f in ["a.img", "b.img", "shared.img", "content.img"] {
        std::fs::write(images.join(f), f).unwrap();
    }
    let cfg = d.path().join("svirt.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}/state\"\n[[driver]]\ndriver = \"selinux\"\noffline = true\n\
             manager_context = \"system_u:system_r:virtd_t:s0-s0:c0.c511\"\npolicy_file = \"{POLICY}\"\n\
             [[driver]]\ndriver = \"dac\"\nuid_range = \"64000-64999\"\n",
            d.path().display()
        ),
    )
    .unwrap();
    for (name, own) in [("vm-a", "a.img"), ("vm-b", "b.img")] {
        let p = d.path().join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "name = \"{name}\"\n[[disk]]\npath = \"{0}/{own}\"\n[[disk]]\npath = \"{0}/shared.img\"\nshareable = true\n\
                 [[disk]]\npath = \"{0}/content.img\"\nreadonly = true\n",
                images.display()
            ),
        )
        .unwrap();
        let o = run(&cfg, &["start", p.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let root = images.to_str().unwrap().to_owned();
    let (code, r) = audit(Some(&cfg), &["--root", &root]);
    let (a, b) = (images.join("a.img"), images.join("b.img"));
    assert_eq!(
        access(&r, "vm-a", &a),
        Some(("own".into(), true, true)),
        "{r:#}"
    );
    assert_eq!(access(&r, "vm-b", &b), Some(("own".into(), true, true)));
    assert_eq!(
        access(&r, "vm-a", &b),
        Some(("isolated".into(), false, false))
    );
    assert_eq!(
        access(&r, "vm-a", &images.join("shared.img")),
        Some(("shared".into(), true, true))
    );
    assert_eq!(
        access(&r, "vm-a", &images.join("content.img")),
        Some(("shared".into(), true, false))
    );
    assert_eq!((code, r["violations"].as_u64()), (0, Some(0)), "{r:#}");

    // Plant two violations: vm-b's private disk labeled shared, and a file left with the label
    // of a VM that is not running (outside the manager's range, so no running VM holds it).
    rustix::fs::lsetxattr(
        &b,
        "security.selinux",
        b"system_u:object_r:svirt_image_t:s0",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let stale = images.join("stale.img");
    labeled_file(
        &stale,
        "old",
        "system_u:object_r:svirt_image_t:s0:c1022,c1023",
    );
    let (code, r) = audit(Some(&cfg), &["--root", &root]);
    assert_eq!(code, 1, "{r:#}");
    let classes: Vec<(String, String)> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["class"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        classes.contains(&(b.display().to_string(), "private-labeled-shared".into())),
        "{classes:?}"
    );
    assert!(
        classes.contains(&(stale.display().to_string(), "stale-mark".into())),
        "{classes:?}"
    );
    // vm-a still cannot open vm-b's disk: the DAC wall holds where the SELinux one gave way.
    let e = entry(&r, "vm-a", &b).unwrap();
    assert_eq!(
        (e["read"].as_bool(), e["write"].as_bool()),
        (Some(false), Some(false))
    );
    assert!(e["reason"].as_str().unwrap().contains("dac: uid"), "{e}");

    // The human table says the same.
    let o = run(&cfg, &["audit", "--root", &root, "--domain", "vm-a"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("VIOLATION: private disk labeled shared"),
        "{text}"
    );
    assert!(text.contains("vm-a (walls: selinux, dac)"), "{text}");
    for name in ["vm-a", "vm-b"] {
        assert!(run(&cfg, &["stop", name]).status.success());
    }
}

#[test]
fn audit_refuses_conflicting_identities_and_a_missing_policy_with_exit_2() {
    let d = tmp();
    let state = d.path().join("state");
    let s = state.to_str().unwrap();
    let o = std::process::Command::new(svirt())
        .args(["--state-dir", s, "audit", "--domain", "x", "--label", VM])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = std::process::Command::new(svirt())
        .args(["--state-dir", s, "audit", "--groups", "1,2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "--groups needs --uid");
    let o = std::process::Command::new(svirt())
        .args(["--state-dir", s, "audit", "--label", VM, "--policy"])
        .arg(d.path().join("missing.33"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.33"));
    let o = std::process::Command::new(svirt())
        .args(["--state-dir", s, "audit", "--domain", "nosuch"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nosuch"));
}

#[test]
fn a_landlock_domain_reaches_only_what_its_recorded_ruleset_grants() {
    let test = "a_landlock_domain_reaches_only_what_its_recorded_ruleset_grants";
    if svirt_landlock_abi() < 6 {
        skip(test, "the kernel's Landlock ABI is below 6");
        return;
    }
    let d = tmp();
    let images = d.path().join("images");
    std::fs::create_dir(&images).unwrap();
    for f in ["mine.img", "iso.img", "theirs.img"] {
        std::fs::write(images.join(f), f).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        images.join("theirs.img"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let cfg = d.path().join("svirt.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}/state\"\n[[driver]]\ndriver = \"landlock\"\n",
            d.path().display()
        ),
    )
    .unwrap();
    let dom = d.path().join("ll.toml");
    std::fs::write(
        &dom,
        format!(
            "name = \"ll\"\n[[disk]]\npath = \"{0}/mine.img\"\n[[disk]]\npath = \"{0}/iso.img\"\nreadonly = true\n",
            images.display()
        ),
    )
    .unwrap();
    let o = run(&cfg, &["start", dom.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let root = images.to_str().unwrap();
    let (code, r) = audit(Some(&cfg), &["--root", root]);
    assert_eq!(r["subjects"][0]["walls"], serde_json::json!(["landlock"]));
    assert_eq!(
        access(&r, "ll", &images.join("mine.img")),
        Some(("own".into(), true, true)),
        "{r:#}"
    );
    assert_eq!(
        access(&r, "ll", &images.join("iso.img")),
        Some(("shared".into(), true, false))
    );
    assert_eq!(
        access(&r, "ll", &images.join("theirs.img")),
        None,
        "a world-writable file outside the ruleset is out of reach"
    );
    assert_eq!(code, 0, "{r:#}");
    assert!(run(&cfg, &["stop", "ll"]).status.success());
}

/// The running kernel's Landlock ABI (0 when Landlock is off).
fn svirt_landlock_abi() -> i32 {
    svirt_landlock::kernel_abi()
}

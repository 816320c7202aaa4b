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

fn killed(cfg: &Path, point: &str, args: &[&str]) -> bool {
    let o = Command::new(svirt())
        .env("SVIRT_FAILPOINT", point)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    o.status.signal() == Some(9)
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

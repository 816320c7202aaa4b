//! Separate processes drawing from one FileStore never get the same pair: the test binary
//! re-runs itself as several children at once.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use svirt_core::mcs::McsRange;
use svirt_core::store::{FileStore, LabelStore};

const CHILDREN: usize = 8;
const EACH: usize = 60;

/// The child: draws EACH labels from the store named by SVIRT_STORE_CHILD and writes them to a
/// file. Not a test on its own; `concurrent_processes_never_share_a_pair` runs it.
#[test]
#[ignore = "run as a child process by concurrent_processes_never_share_a_pair"]
fn child_entry() {
    let dir = std::env::var_os("SVIRT_STORE_CHILD")
        .expect("run by the parent test with SVIRT_STORE_CHILD");
    let store: Box<dyn LabelStore> = Box::new(FileStore::new(Path::new(&dir)));
    let mut out = String::new();
    for _ in 0..EACH {
        out.push_str(&format!(
            "LABEL {}\n",
            store.allocate(McsRange::DEFAULT).unwrap()
        ));
    }
    std::fs::write(
        Path::new(&dir).join(format!("out-{}", std::process::id())),
        out,
    )
    .unwrap();
}

#[test]
fn concurrent_processes_never_share_a_pair() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_entry",
                    "--ignored",
                    "--test-threads=1",
                    "-q",
                ])
                .env("SVIRT_STORE_CHILD", dir.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("out-") {
            all.extend(
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            );
        }
    }
    assert_eq!(all.len(), CHILDREN * EACH, "every child wrote its labels");
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a pair was handed out twice");
    let store: Box<dyn LabelStore> = Box::new(FileStore::new(dir.path()));
    let mut allocated = 0;
    store
        .update(McsRange::DEFAULT, &mut |s| {
            allocated = s.allocated();
            Ok(())
        })
        .unwrap();
    assert_eq!(
        allocated as usize,
        CHILDREN * EACH,
        "the store holds exactly what was handed out"
    );
}

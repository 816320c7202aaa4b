//! Separate processes drawing from one state database never get the same MCS pair or uid: the
//! test binary re-runs itself as several children at once.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use svirt_core::db::Db;
use svirt_core::mcs::McsRange;
use svirt_core::store::LabelStore;

const CHILDREN: usize = 8;
const EACH: usize = 40;

/// The child: draws EACH pairs and EACH uids from the database named by SVIRT_DB_CHILD, half of
/// them inside a write transaction of its own, and writes them to a file. Not a test on its
/// own; `concurrent_processes_never_share_a_pair_or_uid` runs it.
#[test]
#[ignore = "run as a child process by concurrent_processes_never_share_a_pair_or_uid"]
fn db_child_entry() {
    let dir =
        std::env::var_os("SVIRT_DB_CHILD").expect("run by the parent test with SVIRT_DB_CHILD");
    let dir = Path::new(&dir);
    let db = Db::open(dir).unwrap();
    let store: &dyn LabelStore = &db;
    let me = std::process::id();
    let mut out = String::new();
    for i in 0..EACH {
        let holder = format!("p{me}-{i}");
        let draw = || -> svirt_core::Result<(String, u32)> {
            let pair = store.allocate(McsRange::DEFAULT)?;
            let mut uid = 0;
            store.update_ids("uids", 1000, 1000 + 10_000, &mut |p| {
                uid = p.allocate(&holder, &|_| false)?;
                Ok(())
            })?;
            Ok((pair.to_string(), uid))
        };
        let (pair, uid) = if i % 2 == 0 {
            draw().unwrap()
        } else {
            db.write(|_| draw()).unwrap()
        };
        out.push_str(&format!("PAIR {pair}\nUID {uid}\n"));
    }
    std::fs::write(dir.join(format!("out-{me}")), out).unwrap();
}

#[test]
fn concurrent_processes_never_share_a_pair_or_uid() {
    let dir = tempfile::tempdir().unwrap();
    // Create the schema first, so children race on allocation (they race on creation in
    // `processes_creating_the_database_at_once_all_succeed`).
    drop(Db::open(dir.path()).unwrap());
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "db_child_entry",
                    "--ignored",
                    "--test-threads=1",
                    "-q",
                ])
                .env("SVIRT_DB_CHILD", dir.path())
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
    assert_eq!(
        all.len(),
        2 * CHILDREN * EACH,
        "every child wrote its draws"
    );
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "a pair or uid was handed out twice"
    );
    let db = Db::open(dir.path()).unwrap();
    let store: &dyn LabelStore = &db;
    let (mut pairs, mut uids) = (0, 0);
    store
        .update(McsRange::DEFAULT, &mut |s| {
            pairs = s.allocated();
            Ok(())
        })
        .unwrap();
    store
        .update_ids("uids", 1000, 11_000, &mut |p| {
            uids = p.held.len();
            Ok(())
        })
        .unwrap();
    assert_eq!(
        pairs as usize,
        CHILDREN * EACH,
        "the database holds every pair drawn"
    );
    assert_eq!(uids, CHILDREN * EACH, "the database holds every uid drawn");
}

#[test]
fn processes_creating_the_database_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "db_child_entry",
                    "--ignored",
                    "--test-threads=1",
                    "-q",
                ])
                .env("SVIRT_DB_CHILD", dir.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
}

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

fn names(db: &Db) -> Vec<String> {
    db.read(|tx| tx.domains())
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect()
}

fn row(name: &str) -> svirt_core::db::DomainRow {
    svirt_core::db::DomainRow {
        name: name.into(),
        phase: svirt_core::db::Phase::Starting,
        record: vec![b'x'; 3000],
        pid: None,
        boot_id: "boot".into(),
        held_reason: None,
    }
}

/// The child of `a_full_filesystem_fails_the_write_and_rollback_needs_no_space`: runs with
/// RLIMIT_FSIZE at the state files' current size, so any new byte of state fails (EFBIG).
#[test]
#[ignore = "run as a child process by a_full_filesystem_fails_the_write_and_rollback_needs_no_space"]
fn db_full_child_entry() {
    let dir = std::env::var_os("SVIRT_DB_FULL").expect("run by the parent test");
    let db = Db::open(Path::new(&dir)).unwrap();
    // A change too big for the page cache spills into the WAL and fails mid-transaction...
    let big = db.write(|tx| {
        for i in 0..3000 {
            tx.put_domain(&row(&format!("big{i}")))?;
        }
        Ok(())
    });
    assert!(big.is_err(), "a spilling write on a full filesystem failed");
    // ... and a small one fails at commit.
    let small = db.write(|tx| tx.put_domain(&row("small")));
    assert!(small.is_err(), "a commit on a full filesystem failed");
    // Both rolled back without new space: the database is as it was, and usable.
    assert_eq!(names(&db), ["base"]);
    std::fs::write(Path::new(&dir).join("child-ok"), b"").unwrap();
}

#[test]
fn a_full_filesystem_fails_the_write_and_rollback_needs_no_space() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    db.write(|tx| tx.put_domain(&row("base"))).unwrap();
    drop(db);
    let size = |n: &str| std::fs::metadata(dir.path().join(n)).map_or(0, |m| m.len());
    let blocks = ["svirt.db", "svirt.db-wal"]
        .into_iter()
        .map(size)
        .max()
        .unwrap()
        .div_ceil(512);
    let exe = std::env::current_exe().unwrap();
    // SIGXFSZ ignored (inherited through exec), so writes past the limit fail with EFBIG.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" --exact db_full_child_entry --ignored --test-threads=1 -q"
        ))
        .arg(&exe)
        .env("SVIRT_DB_FULL", dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // An empty marker needs no space past the limit.
    assert!(
        dir.path().join("child-ok").exists(),
        "the child ran its checks"
    );
    let db = Db::open(dir.path()).unwrap();
    assert_eq!(names(&db), ["base"]);
    db.write(|tx| tx.put_domain(&row("after"))).unwrap();
    assert_eq!(names(&db), ["after", "base"]);
}

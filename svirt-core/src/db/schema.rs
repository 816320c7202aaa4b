//! The database schema, its version and the migrations between versions.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension};
use tracing::warn;

use super::map_err;
use crate::error::{Error, Result};

/// How long a statement waits for another process's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The ordered migrations: step `i` takes the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const V1: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE domains(
    name TEXT PRIMARY KEY,
    phase TEXT NOT NULL CHECK (phase IN ('starting', 'running', 'stopping', 'held')),
    record BLOB NOT NULL,
    pid INTEGER,
    boot_id TEXT NOT NULL,
    held_reason TEXT
);
CREATE TABLE label_spaces(range TEXT PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE id_pools(pool TEXT PRIMARY KEY, lo INTEGER NOT NULL, hi INTEGER NOT NULL);
CREATE TABLE ids(
    pool TEXT NOT NULL REFERENCES id_pools(pool) ON DELETE CASCADE,
    id INTEGER NOT NULL,
    holder TEXT NOT NULL,
    PRIMARY KEY (pool, id, holder)
);
CREATE TABLE items(
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    handle BLOB,
    root BLOB NOT NULL,
    rel BLOB NOT NULL,
    original TEXT,
    applied TEXT NOT NULL,
    ctime_ns INTEGER,
    state TEXT NOT NULL CHECK (state IN ('intent', 'applied'))
);
-- dev = ino = 0 marks an item whose inode is unknown (imported after its file was gone).
CREATE UNIQUE INDEX items_model_inode ON items(model, dev, ino) WHERE ino <> 0;
CREATE INDEX items_inode ON items(dev, ino);
CREATE INDEX items_root ON items(model, root);
CREATE TABLE item_holders(
    item INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    PRIMARY KEY (item, domain)
) WITHOUT ROWID;
CREATE INDEX item_holders_domain ON item_holders(domain, item);
";

/// A directory share's entries, packed, with the share root's item.
const V2: &str = "
CREATE TABLE trees(
    item INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
    entries BLOB NOT NULL
);
";

/// Drawing and releasing a uid without reading the whole pool: its holders by name, and the
/// lowest id that may be free (every id of the pool below it is taken; `NULL` means the pool's
/// low end).
const V3: &str = "
CREATE INDEX ids_holder ON ids(pool, holder);
ALTER TABLE id_pools ADD COLUMN next INTEGER;
";

/// Whether a holder reserved its id as shared: an id is joined only when every holder did.
const V4: &str = "
ALTER TABLE ids ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
";

/// Whether the database file's header names WAL as its journal mode (its read and write
/// format versions, bytes 18 and 19, are 2): the mode persists in the file, so a database
/// switched once needs no `PRAGMA journal_mode` from every process that opens it.
pub(super) fn header_says_wal(file: &std::fs::File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 20];
    file.read_exact_at(&mut head, 0).is_ok()
        && head.starts_with(b"SQLite format 3\0")
        && head[18] == 2
        && head[19] == 2
}

/// Connection settings, before anything else touches the file. True when the database runs in
/// WAL mode; `frames` then follows the WAL's length after each commit. `in_wal`: the file's
/// header says it was switched to WAL already ([`header_says_wal`]).
pub(super) fn configure(
    conn: &mut Connection,
    path: &Path,
    frames: Arc<AtomicI64>,
    in_wal: bool,
) -> Result<bool> {
    let err = |op| move |e| map_err(op, path, e);
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(err("set the busy timeout of"))?;
    if in_wal {
        return settings(conn, path, frames, true);
    }
    // Switching a new database to WAL takes its exclusive lock, and SQLite answers "busy"
    // there without calling the busy handler when another process is switching it at the
    // same moment: wait here instead, as long as the busy timeout would.
    let started = std::time::Instant::now();
    let mode: String = loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)) {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            r => break r.map_err(err("switch to WAL"))?,
        }
    };
    let wal = mode.eq_ignore_ascii_case("wal");
    if !wal {
        warn!(path = %path.display(), mode, "the state database cannot use WAL here; each commit costs more fsyncs");
    }
    settings(conn, path, frames, wal)
}

/// The settings every connection makes once its journal mode is known.
fn settings(conn: &mut Connection, path: &Path, frames: Arc<AtomicI64>, wal: bool) -> Result<bool> {
    let err = |op| move |e| map_err(op, path, e);
    // In WAL mode `Db::write` syncs after its commit (`Db::make_durable`), and a completion
    // record rides on the next one; a rollback journal needs every sync.
    let sync = if wal { "NORMAL" } else { "FULL" };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(err("set synchronous on"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(err("enable foreign keys on"))?;
    // Statement journals (savepoints) in memory: rollback needs no space on disk.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(err("set temp_store on"))?;
    // Closing the last connection would checkpoint (two more fsyncs per CLI call); a durable
    // write checkpoints when the WAL is long instead. The hook replaces SQLite's own automatic
    // checkpoint, which would land in whichever commit crossed its mark.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(err("configure checkpoints of"))?;
    conn.wal_hook(Some(
        move |_: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
            frames.store(i64::from(pages), Ordering::Relaxed);
            Ok(())
        },
    ))
    .map_err(err("configure checkpoints of"))?;
    Ok(wal)
}

/// `PRAGMA quick_check`: anything but "ok" is corruption.
pub(super) fn check(conn: &Connection, path: &Path) -> Result<()> {
    let mut stmt = conn
        .prepare("PRAGMA quick_check")
        .map_err(|e| map_err("check", path, e))?;
    let problems = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| map_err("check", path, e))?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(Error::StateCorrupt {
        path: path.to_owned(),
        reason: format!(
            "integrity check failed: {}",
            problems
                .iter()
                .take(5)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    })
}

/// The schema version recorded in the file (0 for a new file).
pub(super) fn version(conn: &Connection, path: &Path) -> Result<i64> {
    let err = |e| map_err("read the schema version of", path, e);
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    if !has_meta {
        return Ok(0);
    }
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(err)?;
    let Some(v) = v else {
        return Ok(0);
    };
    v.parse().map_err(|_| Error::StateCorrupt {
        path: path.to_owned(),
        reason: format!("schema version {v:?} is not a number"),
    })
}

fn refuse_newer(v: i64, path: &Path) -> Result<()> {
    if v > SCHEMA_VERSION {
        return Err(Error::StateCorrupt {
            path: path.to_owned(),
            reason: format!(
                "schema version {v} is newer than this svirt knows ({SCHEMA_VERSION}); use a newer svirt"
            ),
        });
    }
    Ok(())
}

/// Bring the schema to [`SCHEMA_VERSION`] in one transaction; nothing is written when it is
/// there already.
pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let v = version(conn, path)?;
    refuse_newer(v, path)?;
    if v == SCHEMA_VERSION {
        return Ok(());
    }
    let err = |op| move |e| map_err(op, path, e);
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(err("begin migrating"))?;
    let r = (|| {
        // Another process may have migrated while we waited for the lock.
        let v = version(conn, path)?;
        refuse_newer(v, path)?;
        let from = usize::try_from(v).map_err(|_| Error::StateCorrupt {
            path: path.to_owned(),
            reason: format!("schema version {v} is negative"),
        })?;
        for step in &MIGRATIONS[from..] {
            conn.execute_batch(step).map_err(err("migrate"))?;
        }
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(err("record the schema version of"))?;
        conn.execute_batch("COMMIT")
            .map_err(err("commit the migration of"))
    })();
    if r.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::super::Db;
    use super::*;

    #[test]
    fn schema_version_is_recorded_and_reopening_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let conn = Connection::open(db.path()).unwrap();
        assert_eq!(version(&conn, db.path()).unwrap(), SCHEMA_VERSION);
        drop(db);
        Db::open(dir.path()).unwrap();
        assert_eq!(version(&conn, dir.path()).unwrap(), SCHEMA_VERSION);
    }

    /// The first open switches a new file to WAL; later opens read that from the header and
    /// skip the pragma, and still run in WAL (one sync per durable write).
    #[test]
    fn a_database_switched_to_wal_once_is_opened_in_wal_from_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"").unwrap();
        assert!(!header_says_wal(&std::fs::File::open(&path).unwrap()));
        let mut conn = Connection::open(&path).unwrap();
        let frames = Arc::new(AtomicI64::new(0));
        assert!(configure(&mut conn, &path, frames.clone(), false).unwrap());
        conn.execute_batch("CREATE TABLE t(x)").unwrap();
        drop(conn);
        assert!(header_says_wal(&std::fs::File::open(&path).unwrap()));
        let mut again = Connection::open(&path).unwrap();
        assert!(configure(&mut again, &path, frames, true).unwrap());
        let mode: String = again
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // A file that is not a database, or is cut short, says nothing of WAL.
        std::fs::write(&path, b"SQLite format 3\0\x10\0\x02").unwrap();
        assert!(!header_says_wal(&std::fs::File::open(&path).unwrap()));
    }

    #[test]
    fn a_newer_schema_version_is_refused_naming_the_file_and_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = Db::open(dir.path()).unwrap().path().to_owned();
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            [(SCHEMA_VERSION + 1).to_string()],
        )
        .unwrap();
        drop(conn);
        let err = Db::open(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::StateCorrupt { path: ref p, .. } if *p == path));
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(
            text.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
            "{text}"
        );
        assert!(text.contains(&format!("({SCHEMA_VERSION})")), "{text}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_state_corrupt_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(super::super::DB_FILE);
        std::fs::write(&path, vec![b'x'; 8192]).unwrap();
        let err = Db::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, Error::StateCorrupt { path: ref p, .. } if *p == path),
            "{err:?}"
        );
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn a_damaged_page_fails_the_quick_check_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let path = db.path().to_owned();
        db.write(|tx| {
            for i in 0..2000 {
                tx.put_domain(&super::super::DomainRow {
                    name: format!("vm{i}"),
                    phase: super::super::Phase::Running,
                    record: vec![7; 100],
                    pid: Some(i),
                    boot_id: "b".into(),
                    held_reason: None,
                })?;
            }
            Ok(())
        })
        .unwrap();
        drop(db);
        // Fold the WAL into the file, then scribble over an interior page.
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
            .unwrap();
        drop(conn);
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 8 * 4096);
        for b in &mut bytes[5 * 4096..6 * 4096] {
            *b = 0xa5;
        }
        std::fs::write(&path, bytes).unwrap();
        let err = Db::open(dir.path()).and_then(|db| db.check()).unwrap_err();
        assert!(
            matches!(err, Error::StateCorrupt { path: ref p, .. } if *p == path),
            "{err:?}"
        );
    }
}

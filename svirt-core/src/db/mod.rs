//! The state database: one SQLite file `<state_dir>/svirt.db` holding the domain records, the
//! MCS and uid reservations, static reservations and the remembered originals.
//!
//! Every change runs in one transaction ([`Db::write`]): `BEGIN IMMEDIATE … COMMIT`, in WAL mode
//! with `synchronous=NORMAL`; [`Db::write`] then syncs the WAL once, so a durable commit costs one
//! fsync. A completion record is written with [`Db::write_lazy`] and costs none: the durable
//! intent before it tells `recover` everything it would, and the next durable write carries it to
//! the disk, in order. Once the WAL holds [`CHECKPOINT_FRAMES`] frames, the durable write
//! checkpoints instead (the WAL's sync, then the file's), so a process opening the database never
//! rescans more than that. Separate processes are kept
//! apart by SQLite's own locking with a 30 s busy timeout. While a write transaction is open,
//! [`LabelStore`](crate::store::LabelStore) calls on the same [`Db`] (from any thread) and nested
//! [`Db::write`] calls on the owning thread join it, so a lifecycle step that draws labels while
//! recording its intent commits once. Rolling back writes nothing: a WAL transaction's frames are
//! simply dropped, and statement journals live in memory (`temp_store=MEMORY`).

mod import;
mod items;
mod labels;
mod records;
mod schema;
mod trees;

use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};

use rusqlite::{ffi, Connection, ErrorCode, OptionalExtension};
use serde::{Deserialize, Serialize};
use tracing::{debug, error};

use crate::error::{Error, Result};
use crate::fsutil::create_private_dir;
pub use trees::{Tree, TreeEntry, TreeRoot};

/// The database's file name inside the state directory.
pub const DB_FILE: &str = "svirt.db";

/// Where the kernel tells this boot's id.
pub const BOOT_ID_FILE: &str = "/proc/sys/kernel/random/boot_id";

/// Where a domain is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Starting,
    Running,
    Stopping,
    /// Stopped, but something could not be restored; its identities stay reserved.
    Held,
}

/// One domain row.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainRow {
    pub name: String,
    pub phase: Phase,
    /// The caller's typed record, encoded by the caller (serde_json bytes).
    pub record: Vec<u8>,
    pub pid: Option<u32>,
    pub boot_id: String,
    pub held_reason: Option<String>,
}

/// The identity of an inode.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ident {
    pub dev: u64,
    pub ino: u64,
    /// A file handle from `name_to_handle_at`, where the filesystem gives one.
    pub handle: Option<Vec<u8>>,
}

/// Whether an item's change was only announced or is known to be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemState {
    Intent,
    Applied,
}

/// A remembered original: one attribute (`model`) of one inode, changed by svirt.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The row id; 0 before insertion.
    pub id: i64,
    pub model: String,
    pub ident: Ident,
    /// The resolved resource path this item belongs to.
    pub root: PathBuf,
    /// "" for the resource itself, else the path below `root` when changed.
    pub rel: PathBuf,
    /// `None`: the attribute was absent.
    pub original: Option<String>,
    pub applied: String,
    /// The inode's ctime right after svirt's change, where recorded.
    pub ctime_ns: Option<i64>,
    pub state: ItemState,
    /// The domains holding the item.
    pub holders: Vec<String>,
    /// A directory share root's changed entries.
    pub tree: Option<std::sync::Arc<Tree>>,
}

impl Item {
    /// The item without its share's entries (a share's root, restored or reported alone).
    pub fn without_tree(&self) -> Item {
        Item {
            tree: None,
            ..self.clone()
        }
    }
}

/// The state database. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Db {
    inner: Mutex<Inner>,
    /// Signalled whenever a transaction opened by [`Db::write`] or [`Db::read`] ends.
    idle: Condvar,
    path: PathBuf,
    /// The database runs in WAL mode (else every commit is synced by SQLite itself).
    wal: bool,
    /// Frames in the WAL after the last commit (SQLite's WAL hook).
    frames: Arc<AtomicI64>,
}

struct Inner {
    conn: Connection,
    open: Option<Open>,
}

/// The transaction [`Db::write`] or [`Db::read`] has open.
#[derive(Clone, Copy)]
struct Open {
    owner: ThreadId,
    kind: Kind,
    /// Nested `write` savepoints.
    depth: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
}

/// When a commit of [`Db::write`] reaches the disk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Before `write` returns.
    Now,
    /// With the next durable write; a crash may lose it, never reorder it.
    Later,
}

/// WAL frames (pages) past which a durable write checkpoints: a process opening the database
/// rebuilds its WAL index from every frame (about 0.8 ms per MB here), while a checkpoint costs
/// the two fsyncs of a sync of the WAL and of the file, and the WAL's restart one more.
pub const CHECKPOINT_FRAMES: i64 = 128;

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

/// Queries and changes inside one [`Db::write`] or [`Db::read`].
pub struct Tx<'a> {
    db: &'a Db,
    writable: bool,
}

impl fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("db", &self.db.path)
            .field("writable", &self.writable)
            .finish()
    }
}

impl Db {
    /// Open or create `<state_dir>/svirt.db` (see [`Db::open_with`]), with this boot's id from
    /// [`BOOT_ID_FILE`].
    pub fn open(state_dir: &Path) -> Result<Db> {
        Self::open_with(state_dir, Path::new(BOOT_ID_FILE))
    }

    /// Open or create the database: WAL, `synchronous=NORMAL`, `foreign_keys=ON`, a 30 s busy
    /// timeout; the state dir is created 0700 and the file 0600. The schema is created or
    /// migrated; a newer schema than this build knows, a file that is not an SQLite database or
    /// one that SQLite finds damaged is [`Error::StateCorrupt`] naming the file (a full
    /// `PRAGMA quick_check` is [`Db::check`], which `recover` runs). An old
    /// JSON state dir is imported once, its holders stamped with the boot id read from
    /// `boot_id_file`.
    pub fn open_with(state_dir: &Path, boot_id_file: &Path) -> Result<Db> {
        create_private_dir(state_dir)?;
        let path = state_dir.join(DB_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::state("create", &path, e))?;
        let in_wal = schema::header_says_wal(&file);
        drop(file);
        let wal_file = wal_path(&path);
        let wal_existed = wal_file.exists();
        let mut conn = Connection::open(&path).map_err(|e| map_err("open", &path, e))?;
        let frames = Arc::new(AtomicI64::new(0));
        let wal = schema::configure(&mut conn, &path, frames.clone(), in_wal)?;
        schema::migrate(&conn, &path)?;
        if !wal_existed && wal_file.exists() {
            // SQLite is built without its per-process directory fsync (SQLITE_DISABLE_DIRSYNC,
            // .cargo/config.toml) so an operation costs its one sync only; the directory
            // entries of a new database and WAL are made durable here, once.
            std::fs::File::open(state_dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::state("sync", state_dir, e))?;
        }
        let db = Db {
            inner: Mutex::new(Inner { conn, open: None }),
            idle: Condvar::new(),
            path,
            wal,
            frames,
        };
        import::import(&db, state_dir, boot_id_file)?;
        Ok(db)
    }

    /// Check every page of the database (`PRAGMA quick_check`); damage is
    /// [`Error::StateCorrupt`] naming the file. Its cost grows with the database, so `open`
    /// leaves it to `recover`.
    pub fn check(&self) -> Result<()> {
        let inner = self.lock();
        schema::check(&inner.conn, &self.path)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` in one write transaction: `BEGIN IMMEDIATE`, then exactly one `COMMIT` if `f`
    /// succeeds, `ROLLBACK` (returning `f`'s error) if it fails. A `write` nested in a `write`
    /// on the same thread joins it through a savepoint (its failure undoes only its own part);
    /// another thread's `write` or `read` waits until this one ends. Label store calls on this
    /// Db from any thread join the open transaction.
    ///
    /// The commit is on the disk when `write` returns.
    pub fn write<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.write_with(Durability::Now, f)
    }

    /// [`Db::write`] for a completion record: the commit is visible to every process at once,
    /// but reaches the disk only with the next durable write or checkpoint, in order. A power
    /// loss can therefore lose it (never a later write without it), so use it only where the
    /// durable write before it already tells `recover` what to do: the end of a start or stop,
    /// after its intent.
    pub fn write_lazy<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.write_with(Durability::Later, f)
    }

    fn write_with<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        let me = thread::current().id();
        let mut g = self.lock();
        loop {
            match g.open {
                None => break,
                Some(o) if o.owner == me && o.kind == Kind::Write => return self.nested(g, f),
                Some(o) if o.owner == me => {
                    return Err(self.misuse("start a write inside a read transaction on"))
                }
                Some(_) => g = self.idle.wait(g).unwrap_or_else(PoisonError::into_inner),
            }
        }
        g.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.err("begin a write transaction on"))?;
        g.open = Some(Open {
            owner: me,
            kind: Kind::Write,
            depth: 0,
        });
        drop(g);
        let end = End {
            db: self,
            done: false,
            durability: Some(durability),
        };
        let r = f(&Tx {
            db: self,
            writable: true,
        });
        end.finish(r)
    }

    /// Run `f` on one consistent read snapshot (a read transaction; nothing is written). Inside
    /// a `write` on the same thread, `f` sees that transaction's changes.
    pub fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let me = thread::current().id();
        let mut g = self.lock();
        loop {
            match g.open {
                None => break,
                Some(o) if o.owner == me => {
                    drop(g);
                    return f(&Tx {
                        db: self,
                        writable: false,
                    });
                }
                Some(_) => g = self.idle.wait(g).unwrap_or_else(PoisonError::into_inner),
            }
        }
        g.conn
            .execute_batch("BEGIN DEFERRED")
            .map_err(self.err("begin a read transaction on"))?;
        g.open = Some(Open {
            owner: me,
            kind: Kind::Read,
            depth: 0,
        });
        drop(g);
        let end = End {
            db: self,
            done: false,
            durability: None,
        };
        let r = f(&Tx {
            db: self,
            writable: false,
        });
        end.finish(r)
    }

    fn nested<T>(
        &self,
        mut g: MutexGuard<'_, Inner>,
        f: impl FnOnce(&Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        let depth = match g.open.as_mut() {
            Some(o) => {
                o.depth += 1;
                o.depth
            }
            None => return Err(self.misuse("join a transaction that ended on")),
        };
        let name = format!("svirt_nested_{depth}");
        g.conn
            .execute_batch(&format!("SAVEPOINT {name}"))
            .map_err(self.err("open a savepoint on"))?;
        drop(g);
        let r = f(&Tx {
            db: self,
            writable: true,
        });
        let mut g = self.lock();
        if let Some(o) = g.open.as_mut() {
            o.depth = o.depth.saturating_sub(1);
        }
        match r {
            Ok(v) => {
                g.conn
                    .execute_batch(&format!("RELEASE {name}"))
                    .map_err(self.err("release a savepoint on"))?;
                Ok(v)
            }
            Err(e) => {
                if let Err(re) = g
                    .conn
                    .execute_batch(&format!("ROLLBACK TO {name}; RELEASE {name}"))
                {
                    error!(path = %self.path.display(), error = %re, "cannot roll back a nested write");
                }
                Err(e)
            }
        }
    }

    /// Run `body` inside the open write transaction (joining it through a savepoint) or, when
    /// none is open, in a transaction of its own. The mutex is held throughout.
    pub(crate) fn join_or_write<T>(
        &self,
        body: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        let me = thread::current().id();
        let mut g = self.lock();
        loop {
            match g.open {
                None => break,
                Some(o) if o.kind == Kind::Write => {
                    g.conn
                        .execute_batch("SAVEPOINT svirt_store")
                        .map_err(self.err("open a savepoint on"))?;
                    let r = body(&g.conn);
                    let end = if r.is_ok() {
                        "RELEASE svirt_store"
                    } else {
                        "ROLLBACK TO svirt_store; RELEASE svirt_store"
                    };
                    g.conn
                        .execute_batch(end)
                        .map_err(self.err("close a savepoint on"))?;
                    return r;
                }
                Some(o) if o.owner == me => {
                    return Err(self.misuse("change reservations inside a read transaction on"))
                }
                Some(_) => g = self.idle.wait(g).unwrap_or_else(PoisonError::into_inner),
            }
        }
        g.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.err("begin a write transaction on"))?;
        let r = body(&g.conn);
        let r = match r {
            Ok(v) => match g.conn.execute_batch("COMMIT") {
                Ok(()) => self.make_durable(&g.conn).map(|()| v),
                Err(e) => Err(self.err("commit to")(e)),
            },
            Err(e) => Err(e),
        };
        if !g.conn.is_autocommit() {
            self.rollback(&g.conn);
        }
        r
    }

    /// Put every commit so far on the disk: one sync of the WAL (SQLite's `synchronous=FULL`
    /// does the same inside `COMMIT`), or, once the WAL is long, a passive checkpoint, which
    /// syncs the WAL, copies it into the database file and syncs that, so the next writer starts
    /// the WAL over. A checkpoint that cannot take every frame (another process reads an older
    /// snapshot, or checkpoints itself) is followed by the plain sync.
    fn make_durable(&self, conn: &Connection) -> Result<()> {
        if !self.wal {
            return Ok(());
        }
        if self.frames.load(Ordering::Relaxed) >= CHECKPOINT_FRAMES {
            let ckpt = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            });
            match ckpt {
                Ok((0, log, copied)) if log == copied => {
                    self.frames.store(0, Ordering::Relaxed);
                    return Ok(());
                }
                Ok((busy, log, copied)) => {
                    debug!(path = %self.path.display(), busy, log, copied, "partial checkpoint; syncing the WAL");
                }
                Err(e) => {
                    debug!(path = %self.path.display(), error = %e, "checkpoint failed; syncing the WAL");
                }
            }
        }
        let wal = wal_path(&self.path);
        std::fs::File::open(&wal)
            .and_then(|f| f.sync_data())
            .map_err(|e| Error::state("sync", &wal, e))
    }

    /// Lock the connection; a transaction left open by a panic is rolled back first.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if g.open.is_none() && !g.conn.is_autocommit() {
            self.rollback(&g.conn);
        }
        g
    }

    fn rollback(&self, conn: &Connection) {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            error!(path = %self.path.display(), error = %e, "cannot roll back the state database");
        }
    }

    /// Map a rusqlite error of `operation` on this database.
    pub(crate) fn err(&self, operation: &'static str) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |e| map_err(operation, &self.path, e)
    }

    /// A row this build cannot read.
    pub(crate) fn corrupt(&self, reason: String) -> Error {
        Error::StateCorrupt {
            path: self.path.clone(),
            reason,
        }
    }

    fn misuse(&self, operation: &'static str) -> Error {
        Error::Database {
            operation,
            path: self.path.clone(),
            source: rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_MISUSE),
                Some("not allowed here".into()),
            ),
        }
    }
}

/// The WAL file next to the database at `db`.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Ends the transaction of [`Db::write`] or [`Db::read`]: commit on success; rollback on
/// failure or when the closure panicked (drop without `finish`).
struct End<'a> {
    db: &'a Db,
    done: bool,
    /// `None` for a read transaction.
    durability: Option<Durability>,
}

impl End<'_> {
    fn finish<T>(mut self, r: Result<T>) -> Result<T> {
        self.done = true;
        let mut g = self.db.lock();
        let r = match r {
            Ok(v) => match g.conn.execute_batch("COMMIT") {
                Ok(()) if self.durability == Some(Durability::Now) => {
                    self.db.make_durable(&g.conn).map(|()| v)
                }
                Ok(()) => Ok(v),
                Err(e) => Err(self.db.err("commit to")(e)),
            },
            Err(e) => Err(e),
        };
        if !g.conn.is_autocommit() {
            self.db.rollback(&g.conn);
        }
        g.open = None;
        drop(g);
        self.db.idle.notify_all();
        r
    }
}

impl Drop for End<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut g = self.db.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !g.conn.is_autocommit() {
            self.db.rollback(&g.conn);
        }
        g.open = None;
        drop(g);
        self.db.idle.notify_all();
    }
}

impl Tx<'_> {
    /// Run `f` on the connection (inside this transaction).
    fn with<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let g = self.db.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&g.conn)
    }

    /// Run SQL on the connection, mapping its errors to `operation`.
    fn sql<R>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<R> {
        self.with(|c| f(c).map_err(self.db.err(operation)))
    }

    /// A value of the `meta` table; `None` when unset.
    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>> {
        self.sql("read meta from", |c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        })
    }

    /// Set a value of the `meta` table.
    pub(crate) fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.writable("write meta to")?;
        self.sql("write meta to", |c| {
            c.execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(drop)
        })
    }

    /// Refuse a change through a read transaction.
    fn writable(&self, operation: &'static str) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(self.db.misuse(operation))
        }
    }
}

fn map_err(operation: &'static str, path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Error::StateCorrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        _ => Error::Database {
            operation,
            path: path.to_owned(),
            source: e,
        },
    }
}

/// SQLite integers are signed; device and inode numbers are stored bit for bit.
fn u64_to_sql(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

fn u64_from_sql(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::mcs::McsRange;
    use crate::store::LabelStore;

    fn row(name: &str) -> DomainRow {
        DomainRow {
            name: name.into(),
            phase: Phase::Starting,
            record: b"{}".to_vec(),
            pid: None,
            boot_id: "boot".into(),
            held_reason: None,
        }
    }

    fn allocated(db: &Db) -> u32 {
        let mut n = 0;
        db.update(McsRange::DEFAULT, &mut |s| {
            n = s.allocated();
            Ok(())
        })
        .unwrap();
        n
    }

    fn injected() -> Error {
        Error::Config {
            reason: "injected".into(),
        }
    }

    /// Frames the WAL file has room for (it is reused from its start after a checkpoint).
    fn wal_frames(dir: &Path) -> u64 {
        let len = std::fs::metadata(dir.join(format!("{DB_FILE}-wal")))
            .map(|m| m.len())
            .unwrap_or(0);
        len.saturating_sub(32) / (4096 + 24)
    }

    #[test]
    fn durable_writes_keep_the_wal_short_and_lazy_writes_are_seen_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let other = Db::open(dir.path()).unwrap();
        // Each write changes at least one page of its own (a record of a page's size).
        for i in 0..(3 * CHECKPOINT_FRAMES) {
            let mut r = row(&format!("d{i}"));
            r.record = vec![b'x'; 4096];
            if i % 2 == 0 {
                db.write(|tx| tx.put_domain(&r)).unwrap();
            } else {
                db.write_lazy(|tx| tx.put_domain(&r)).unwrap();
                let seen = other.read(|tx| tx.domain(&r.name)).unwrap();
                assert!(
                    seen.is_some(),
                    "a lazy commit is visible to another connection"
                );
            }
        }
        let frames = wal_frames(dir.path());
        assert!(
            frames < 2 * CHECKPOINT_FRAMES as u64,
            "the WAL grew to {frames} frames"
        );
        drop((db, other));
        let db = Db::open(dir.path()).unwrap();
        let n = db.read(|tx| tx.domains()).unwrap().len();
        assert_eq!(n, 3 * CHECKPOINT_FRAMES as usize, "every commit reads back");
    }

    #[test]
    fn a_failing_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let err = db
            .write(|tx| {
                tx.put_domain(&row("a"))?;
                tx.insert_item(&items::tests::item("selinux", 1, 2, &["a"]))?;
                Err::<(), _>(injected())
            })
            .unwrap_err();
        assert!(matches!(err, Error::Config { .. }));
        let db = Db::open(dir.path()).unwrap();
        assert!(db.read(|tx| tx.domains()).unwrap().is_empty());
        assert!(db.read(|tx| tx.all_items()).unwrap().is_empty());
    }

    #[test]
    fn label_store_calls_inside_a_write_join_it_and_roll_back_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path()).unwrap());
        let store: &dyn LabelStore = &*db;
        // From the writing thread and from another thread (a driver on the blocking pool).
        let err = db
            .write(|tx| {
                tx.put_domain(&row("a"))?;
                store.allocate(McsRange::DEFAULT)?;
                let db2 = Arc::clone(&db);
                std::thread::spawn(move || {
                    let s: &dyn LabelStore = &*db2;
                    s.allocate(McsRange::DEFAULT)?;
                    s.update_ids("uids", 100, 200, &mut |p| {
                        p.allocate("a", &|_| false).map(drop)
                    })
                })
                .join()
                .unwrap()?;
                assert_eq!(
                    allocated(&db),
                    2,
                    "the joined allocations are visible inside"
                );
                Err::<(), _>(injected())
            })
            .unwrap_err();
        assert!(matches!(err, Error::Config { .. }));
        assert_eq!(
            allocated(&db),
            0,
            "the allocations rolled back with the write"
        );
        let mut held = 1;
        db.update_ids("uids", 100, 200, &mut |p| {
            held = p.held.len();
            Ok(())
        })
        .unwrap();
        assert_eq!(held, 0);
        // And they commit with it.
        db.write(|_| store.allocate(McsRange::DEFAULT)).unwrap();
        assert_eq!(allocated(&Db::open(dir.path()).unwrap()), 1);
    }

    #[test]
    fn a_nested_write_joins_and_its_failure_undoes_only_its_part() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.write(|tx| {
            tx.put_domain(&row("outer"))?;
            let inner = db.write(|tx| {
                tx.put_domain(&row("inner"))?;
                Err::<(), _>(injected())
            });
            assert!(inner.is_err());
            db.write(|tx| tx.put_domain(&row("kept")))?;
            Ok(())
        })
        .unwrap();
        let names: Vec<_> = db
            .read(|tx| tx.domains())
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["kept", "outer"]);
    }

    #[test]
    fn another_threads_write_waits_for_the_open_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(dir.path()).unwrap());
        let (tx_started, rx_started) = std::sync::mpsc::channel();
        let db2 = Arc::clone(&db);
        let other = std::thread::spawn(move || {
            rx_started.recv().unwrap();
            // Runs only after the first write ended: it sees its row.
            db2.write(|tx| Ok(tx.domain("first")?.is_some())).unwrap()
        });
        db.write(|tx| {
            tx_started.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
            tx.put_domain(&row("first"))
        })
        .unwrap();
        assert!(other.join().unwrap());
    }

    #[test]
    fn a_panic_inside_a_write_rolls_back_and_frees_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            db.write(|tx| -> Result<()> {
                tx.put_domain(&row("a"))?;
                panic!("injected panic");
            })
        }));
        assert!(r.is_err());
        db.write(|tx| tx.put_domain(&row("b"))).unwrap();
        let names: Vec<_> = db
            .read(|tx| tx.domains())
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["b"]);
    }

    #[test]
    fn the_state_dir_is_private_and_the_database_file_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/state");
        let db = Db::open(&state).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(db.path()), 0o600);
        assert_eq!(db.path(), state.join(DB_FILE));
    }
}

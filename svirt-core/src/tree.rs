//! Walking a directory share safely and cheaply: every entry is opened relative to its parent's
//! fd with `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)`, so a symlink (or a directory swapped
//! for one mid-walk) is never followed and nothing outside the tree is reached. Only regular
//! files and directories are visited, and only they are opened for reading (device nodes are
//! never opened); attributes are then read and written on the fd itself. At most one directory
//! fd per level of depth is open at a time. The walk stays on the share's own mount, like
//! `find -xdev` and `setfiles -x`: every entry is opened with `RESOLVE_NO_XDEV` and checked to
//! lie on the root's device, and a mount point inside is skipped and returned, never crossed.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::error::{Error, Result};
use crate::host::{DirEntry, FileKind, FileMeta, Host, Node};

struct Frame {
    rel: PathBuf,
    /// `None` for the root, which the caller holds.
    dir: Option<Node>,
    entries: Vec<(OsString, Option<FileKind>)>,
    next: usize,
}

fn skippable(e: &std::io::Error) -> bool {
    // Gone, a symlink (ELOOP), or not a directory any more (ENOTDIR).
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ELOOP) | Some(libc::ENOTDIR)
    )
}

/// An entry name is never `..` nor holds a '/', so `EXDEV` means a mount point was reached.
fn mount_point(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EXDEV)
}

/// Call `f(rel, node, meta)` for every entry below the directory `root` (not `root` itself),
/// parents before their children, without leaving `root`'s mount: regular files and
/// directories opened for reading, every other entry (symlinks, FIFOs, sockets, device nodes:
/// what a VM may have created) opened `O_PATH|O_NOFOLLOW`, never for data, never followed.
/// Returns the mount points found inside (relative to `root`), which were skipped. One entry at
/// a time; [`walk_entries`] is the bulk walk of a share.
pub fn walk_all(
    host: &dyn Host,
    root: &Node,
    f: &mut dyn FnMut(&Path, &Node, &FileMeta) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    let root_path = root.path();
    let device = host
        .meta(root)
        .map_err(|e| Error::host("inspect", root_path, e))?
        .dev;
    let entries = host
        .list_dir(root)
        .map_err(|e| Error::host("list", root_path, e))?;
    let mut mounts = Vec::new();
    let mut stack = vec![Frame {
        rel: PathBuf::new(),
        dir: None,
        entries,
        next: 0,
    }];
    while let Some(frame) = stack.last_mut() {
        let Some((name, kind)) = frame.entries.get(frame.next).cloned() else {
            stack.pop();
            continue;
        };
        frame.next += 1;
        let dir = frame.dir.as_ref().unwrap_or(root);
        let rel = frame.rel.join(&name);
        let kind = match kind {
            Some(k) => k,
            // No d_type from this filesystem: look without opening for data first.
            None => match host.open_child(dir, &name).and_then(|n| host.meta(&n)) {
                Ok(m) => m.kind,
                Err(e) if skippable(&e) => continue,
                Err(e) if mount_point(&e) => {
                    mounts.push(rel);
                    continue;
                }
                Err(e) => return Err(Error::host("inspect", dir.path().join(&name), e)),
            },
        };
        if !matches!(kind, FileKind::File | FileKind::Dir) {
            match host.open_child(dir, &name) {
                Ok(node) => {
                    let meta = host
                        .meta(&node)
                        .map_err(|e| Error::host("inspect", node.path(), e))?;
                    if !matches!(meta.kind, FileKind::File | FileKind::Dir) && meta.dev == device {
                        f(&rel, &node, &meta)?;
                    }
                }
                Err(e) if skippable(&e) || mount_point(&e) => {}
                Err(e) => return Err(Error::host("open", dir.path().join(&name), e)),
            }
            continue;
        }
        let child = match host.open_child_data(dir, &name) {
            Ok(c) => c,
            Err(e) if skippable(&e) => continue,
            Err(e) if mount_point(&e) => {
                mounts.push(rel);
                continue;
            }
            Err(e) => return Err(Error::host("open", dir.path().join(&name), e)),
        };
        let meta = host
            .meta(&child)
            .map_err(|e| Error::host("inspect", child.path(), e))?;
        if !matches!(meta.kind, FileKind::File | FileKind::Dir) {
            continue;
        }
        if meta.dev != device {
            // Another filesystem, however it got here: never crossed.
            mounts.push(rel);
            continue;
        }
        f(&rel, &child, &meta)?;
        if meta.kind == FileKind::Dir {
            let entries = match host.list_dir(&child) {
                Ok(e) => e,
                Err(e) if skippable(&e) => continue,
                Err(e) => return Err(Error::host("list", child.path(), e)),
            };
            stack.push(Frame {
                rel,
                dir: Some(child),
                entries,
                next: 0,
            });
        }
    }
    Ok(mounts)
}

/// A directory reached by [`walk_entries`]: its path below the root, its inode number, and
/// its node while the walk keeps it open.
#[derive(Debug)]
pub struct Dir {
    pub rel: PathBuf,
    pub ino: u64,
    /// Kept open for later entry-relative calls while few enough are; else `None`, and
    /// [`reopen`] finds it again.
    pub node: Option<Arc<Node>>,
}

/// What [`walk_entries`] calls for each entry: (state, directory, its node, entry, type).
pub type Visit<'a, S> =
    dyn Fn(&mut S, &Arc<Dir>, &Node, &DirEntry, FileKind) -> Result<()> + Sync + 'a;

/// How many directory fds a walk keeps open for later use.
const KEPT_DIRS: usize = 512;

/// A directory still to visit and list: its parent and its entry there.
struct Pending {
    parent: Arc<Node>,
    parent_dir: Arc<Dir>,
    entry: DirEntry,
    rel: PathBuf,
}

struct Shared {
    work: Mutex<(Vec<Pending>, usize)>,
    ready: Condvar,
    stop: AtomicBool,
    kept: AtomicUsize,
    /// Entries listed that were gone or changed type when used: the tree changed under the walk.
    raced: AtomicUsize,
}

/// Call `visit(state, dir, entry, kind)` for every entry below the directory `root` (not `root`
/// itself), on `threads` threads, each with its own `state` from `init`. Only regular files
/// and directories are visited unless `all`. Directories are listed with `getdents64` and
/// opened with `RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV`; other entries are never
/// opened: the visitor acts on them relative to `dir` (entry-relative calls, never following a
/// symlink). Mount points (a directory on another filesystem, or any entry named in `mounts`,
/// paths relative to `root`) are skipped and returned, never crossed. Returns the states, the
/// mount points, the device nodes left alone (unless `all`), and how many entries changed
/// under the walk (listed, then gone or another type when opened); its `error` is `None`.
pub fn walk_entries<S: Send>(
    host: &dyn Host,
    root: Arc<Node>,
    mounts: &HashSet<PathBuf>,
    all: bool,
    threads: usize,
    init: &(dyn Fn() -> S + Sync),
    visit: &Visit<'_, S>,
) -> Result<Walked<S>> {
    let mut w = walk_entries_keeping(host, root, mounts, all, threads, init, visit);
    match w.error.take() {
        Some(e) => Err(e),
        None => Ok(w),
    }
}

/// What [`walk_entries_keeping`] found, with the first error if the walk stopped on one.
#[derive(Debug)]
pub struct Walked<S> {
    /// The workers' states, as far as each got.
    pub states: Vec<S>,
    pub mounts: Vec<PathBuf>,
    /// Block and character device nodes the walk left alone (paths relative to the root),
    /// when it visits regular files and directories only.
    pub devices: Vec<PathBuf>,
    pub raced: usize,
    pub error: Option<Error>,
}

/// [`walk_entries`] that keeps the workers' states when it stops on an error: a walk that
/// changes what it visits must know what it changed before the error.
pub fn walk_entries_keeping<S: Send>(
    host: &dyn Host,
    root: Arc<Node>,
    mounts: &HashSet<PathBuf>,
    all: bool,
    threads: usize,
    init: &(dyn Fn() -> S + Sync),
    visit: &Visit<'_, S>,
) -> Walked<S> {
    let root_path = root.path().to_owned();
    let root_meta = match host.meta(&root) {
        Ok(m) => m,
        Err(e) => {
            return Walked {
                states: Vec::new(),
                mounts: Vec::new(),
                devices: Vec::new(),
                raced: 0,
                error: Some(Error::host("inspect", &root_path, e)),
            }
        }
    };
    let shared = Shared {
        work: Mutex::new((Vec::new(), 0)),
        ready: Condvar::new(),
        stop: AtomicBool::new(false),
        kept: AtomicUsize::new(0),
        raced: AtomicUsize::new(0),
    };
    let found_mounts = Mutex::new(Vec::new());
    let found_devices = Mutex::new(Vec::new());
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let root_dir = Arc::new(Dir {
        rel: PathBuf::new(),
        ino: root_meta.ino,
        node: Some(root.clone()),
    });
    let ctx = WalkCtx {
        host,
        dev: root_meta.dev,
        mounts,
        all,
        visit,
        shared: &shared,
        found_mounts: &found_mounts,
        found_devices: &found_devices,
    };
    let threads = threads.max(1);
    let states = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        // The root is listed by the first worker; the others wait for its subdirectories.
        {
            let mut w = lock(&shared.work);
            w.1 = 1;
        }
        for t in 0..threads {
            let ctx = &ctx;
            let root_dir = root_dir.clone();
            let root = root.clone();
            let first_error = &first_error;
            handles.push(scope.spawn(move || {
                let mut state = init();
                let mut r = Ok(());
                if t == 0 {
                    r = ctx.list(&mut state, &root_dir, &root);
                    ctx.finish_one();
                }
                if r.is_ok() {
                    r = ctx.work(&mut state);
                }
                if let Err(e) = r {
                    ctx.shared.stop.store(true, Ordering::Relaxed);
                    ctx.shared.ready.notify_all();
                    lock(first_error).get_or_insert(e);
                }
                state
            }));
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Vec<S>>()
    });
    let mut found = found_mounts.into_inner().unwrap_or_else(|p| p.into_inner());
    found.sort();
    let mut devices = found_devices
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    devices.sort();
    Walked {
        states,
        mounts: found,
        devices,
        raced: shared.raced.into_inner(),
        error: first_error.into_inner().unwrap_or_else(|p| p.into_inner()),
    }
}

/// A mutex's guard, poisoned or not (a panicking worker is re-raised by the walk itself).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct WalkCtx<'a, S> {
    host: &'a dyn Host,
    dev: u64,
    mounts: &'a HashSet<PathBuf>,
    all: bool,
    visit: &'a Visit<'a, S>,
    shared: &'a Shared,
    found_mounts: &'a Mutex<Vec<PathBuf>>,
    found_devices: &'a Mutex<Vec<PathBuf>>,
}

impl<S> WalkCtx<'_, S> {
    /// One directory fewer in flight; wake the waiting workers when none is left.
    fn finish_one(&self) {
        let mut w = lock(&self.shared.work);
        w.1 -= 1;
        if w.1 == 0 {
            self.shared.ready.notify_all();
        }
    }

    fn work(&self, state: &mut S) -> Result<()> {
        loop {
            let next = {
                let mut w = lock(&self.shared.work);
                loop {
                    if self.shared.stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    if let Some(p) = w.0.pop() {
                        break p;
                    }
                    if w.1 == 0 {
                        return Ok(());
                    }
                    w = self.shared.ready.wait(w).unwrap_or_else(|p| p.into_inner());
                }
            };
            let r = self.open_and_list(state, next);
            self.finish_one();
            r?;
        }
    }

    /// Open a subdirectory (never crossing a mount point), visit it as an entry of its
    /// parent, and list it. A directory is visited only once it is known to be no mount
    /// point: an entry-relative call on a mount point would reach the mounted root.
    fn open_and_list(&self, state: &mut S, p: Pending) -> Result<()> {
        let name = &p.entry.name;
        let node = match self.host.open_child_data(&p.parent, name) {
            Ok(n) => n,
            Err(e) if skippable(&e) => {
                self.shared.raced.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(e) if mount_point(&e) => {
                lock(self.found_mounts).push(p.rel);
                return Ok(());
            }
            Err(e) => return Err(Error::host("open", p.parent.path().join(name), e)),
        };
        let meta = self
            .host
            .meta(&node)
            .map_err(|e| Error::host("inspect", node.path(), e))?;
        if meta.kind != FileKind::Dir {
            self.shared.raced.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if meta.dev != self.dev {
            lock(self.found_mounts).push(p.rel);
            return Ok(());
        }
        (self.visit)(state, &p.parent_dir, &p.parent, &p.entry, FileKind::Dir)?;
        let node = Arc::new(node);
        let keep = self.shared.kept.fetch_add(1, Ordering::Relaxed) < KEPT_DIRS;
        let dir = Arc::new(Dir {
            rel: p.rel,
            ino: meta.ino,
            node: keep.then(|| node.clone()),
        });
        self.list(state, &dir, &node)
    }

    fn list(&self, state: &mut S, dir: &Arc<Dir>, node: &Arc<Node>) -> Result<()> {
        let entries = match self.host.read_dir(node) {
            Ok(e) => e,
            Err(e) if skippable(&e) => return Ok(()),
            Err(e) => return Err(Error::host("list", node.path(), e)),
        };
        let mut subdirs = Vec::new();
        for e in &entries {
            if self.shared.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if !self.mounts.is_empty() && self.mounts.contains(&dir.rel.join(&e.name)) {
                lock(self.found_mounts).push(dir.rel.join(&e.name));
                continue;
            }
            let kind = match e.kind {
                Some(k) => k,
                // No d_type from this filesystem: look without opening.
                None => match self.host.stat_at(node, &e.name) {
                    Ok(m) => m.kind,
                    Err(err) if skippable(&err) => {
                        self.shared.raced.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Err(err) => return Err(Error::host("inspect", node.path().join(&e.name), err)),
                },
            };
            if !self.all && !matches!(kind, FileKind::File | FileKind::Dir) {
                if matches!(kind, FileKind::Block | FileKind::Char) {
                    lock(self.found_devices).push(dir.rel.join(&e.name));
                }
                continue;
            }
            if kind == FileKind::Dir {
                // Visited and listed by whichever worker opens it.
                subdirs.push(Pending {
                    parent: node.clone(),
                    parent_dir: dir.clone(),
                    entry: e.clone(),
                    rel: dir.rel.join(&e.name),
                });
                continue;
            }
            (self.visit)(state, dir, node, e, kind)?;
        }
        if !subdirs.is_empty() {
            let mut w = lock(&self.shared.work);
            w.1 += subdirs.len();
            w.0.extend(subdirs);
            self.shared.ready.notify_all();
        }
        Ok(())
    }
}

/// A directory of a walk whose fd was not kept: opened again from `root` one component at a
/// time (never following a symlink, never leaving the mount), and checked to be the same inode.
pub fn reopen(host: &dyn Host, root: &Node, dir: &Dir) -> std::io::Result<Node> {
    let node = open_below(host, root, &dir.rel)?
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    if host.meta(&node)?.ino != dir.ino {
        return Err(std::io::Error::from_raw_os_error(libc::ESTALE));
    }
    Ok(node)
}

/// The directory `rel` below `root`, opened one component at a time (never following a
/// symlink, never leaving the mount); `None` when `rel` is empty (`root` itself).
pub fn open_below(host: &dyn Host, root: &Node, rel: &Path) -> std::io::Result<Option<Node>> {
    let mut node: Option<Node> = None;
    for c in rel.components() {
        let parent = node.as_ref().unwrap_or(root);
        node = Some(host.open_child_data(parent, c.as_os_str())?);
    }
    Ok(node)
}

/// The mount points strictly below `root` (a resolved path), relative to it.
pub fn mounts_below(host: &dyn Host, root: &Path) -> HashSet<PathBuf> {
    host.mount_points()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| {
            m.strip_prefix(root)
                .ok()
                .filter(|r| !r.as_os_str().is_empty())
                .map(Path::to_path_buf)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeHost;

    #[test]
    fn a_mount_point_inside_a_share_is_skipped_and_returned_not_crossed() {
        let h = FakeHost::new();
        h.add_file("/srv/share/a/file");
        h.add_file("/srv/share/bound/shadow");
        h.add_file("/srv/share/bound/deeper/x");
        h.add_mount("/srv/share/bound");
        let root = h.open_resolved(Path::new("/srv/share")).unwrap();
        let mut seen = Vec::new();
        let mounts = walk_all(&h, &root, &mut |rel, _, _| {
            seen.push(rel.to_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(mounts, vec![PathBuf::from("bound")]);
        assert_eq!(seen, vec![PathBuf::from("a"), PathBuf::from("a/file")]);
    }
}

//! Directory shares in bulk: one walk on every core, one entry-relative call per entry to read
//! and one to write, and the originals kept packed with the share root's item.
//!
//! At start the walk reads every regular file's and directory's value (`getxattrat` or
//! `fstatat` relative to the directory's fd, from `getdents64`'s names and types); entries that
//! already hold the value are left alone. Only an entry whose value carries a VM's identity, or
//! is a value svirt applied to something, is opened and looked up in the store (a hard link to
//! an inode svirt manages, or a leftover of a VM): every other entry is taken as it is. The
//! originals go into the intent with the root's item, each distinct one once; the changes are
//! then made on every core, relative to the directories the walk opened. No entry is opened,
//! and no call ever follows a symlink or leaves the share's mount.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::{debug, info, warn};

use super::{marks, Engine, RestoreOptions, Restored};
use crate::attr::FileAttr;
use crate::db::{Item, ItemState, Tree, TreeEntry, Tx};
use crate::error::{Error, Result};
use crate::host::{cannot_hold, is_unsupported, DirEntry, FileKind, FileMeta, Host, Node};
use crate::safe;
use crate::tree::{self, lock, Dir};

/// The entry is gone or no longer what the walk saw (renamed, replaced by a symlink).
fn vanished(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ELOOP) | Some(libc::ENOTDIR)
    )
}

/// One entry to change: its directory, its index in the tree (whose path ends in its name).
pub(super) struct Pending {
    dir: Arc<Dir>,
    kind: FileKind,
    entry: usize,
}

/// The name of an entry in its directory.
fn name_of(e: &TreeEntry) -> &std::ffi::OsStr {
    e.rel.file_name().unwrap_or_default()
}

/// A share's changes between the intent and the completion.
pub(super) struct ShareWork {
    pub root: Arc<Node>,
    /// The changes made or to make, in the order of the tree's entries.
    pending: Vec<Pending>,
    /// Every value svirt applied to a resource of the attribute's model, as the intent read
    /// them: an entry holding one may be a hard link to a managed inode.
    applied: HashSet<String>,
    /// Changed in one pass, marks stamped: what still holds the value after a failure is
    /// undone from the entries.
    pub(super) one_pass: bool,
    /// Inode numbers of the operation's other resources on the share's filesystem (a disk of
    /// the domain inside its own share): each is labeled as that resource, never as an entry.
    pub(super) own: HashSet<u64>,
}

impl ShareWork {
    /// A share whose entries are still to be read.
    pub fn new(root: Arc<Node>, applied: HashSet<String>) -> Self {
        ShareWork {
            root,
            pending: Vec::new(),
            applied,
            one_pass: false,
            own: HashSet::new(),
        }
    }
}

/// The instant a share's intent is recorded, from the clock filesystems stamp inodes with (the
/// coarse one, a tick behind the precise one): a file created after it is born at or after
/// it, so a birth before it proves a file older than the share's start.
pub(super) fn start_instant() -> i64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    now.tv_sec.saturating_mul(1_000_000_000) + now.tv_nsec
}

/// What the engine writes to its journal: given the transaction and a test of whether a domain
/// holding an item is dead.
pub type JournalWrite<'a> = dyn FnMut(&Tx<'_>, &dyn Fn(&str) -> bool) -> Result<()> + 'a;

/// Run a [`JournalWrite`] in one durable write transaction: how the lifecycle gives the engine
/// its store for what it reads after an intent (a share's entries).
pub type Journal<'a> = dyn Fn(&mut JournalWrite<'_>) -> Result<()> + 'a;

/// An entry to change, as a worker found it.
struct Plain {
    dir: Arc<Dir>,
    rel: PathBuf,
    kind: FileKind,
    ino: u64,
    /// Index into the worker's `originals`.
    original: u32,
    birth_ns: Option<i64>,
}

/// What one worker of a share's restore did.
#[derive(Default)]
struct Out {
    failed: Vec<(PathBuf, Error)>,
    moved: Vec<(PathBuf, PathBuf)>,
    reclaimed: Vec<PathBuf>,
    left: Vec<(PathBuf, String)>,
    dropped: Vec<PathBuf>,
    raced: usize,
    /// Entries of a start cut short put back from the entries themselves.
    undone: usize,
    /// Files the VM made with several names, decided once the walk counted them.
    linked: Vec<Linked>,
    /// Recorded entries whose name moved on between the listing and the opening.
    again: usize,
}

/// An entry of a share as a restore acts on it: its opened inode, so a read, a decision and
/// a write all land on one inode whatever its name holds meanwhile; or its name (a symlink,
/// which cannot be opened without following it, or where nothing asks for the inode).
enum At<'a> {
    Inode(Node),
    Name(&'a Node, &'a std::ffi::OsStr, FileKind),
}

impl<'a> At<'a> {
    /// The entry `name` of `dir`, opened unless it is a symlink.
    fn open(
        host: &dyn Host,
        dir: &'a Node,
        name: &'a std::ffi::OsStr,
        kind: FileKind,
    ) -> std::io::Result<Self> {
        match kind {
            FileKind::Symlink => Ok(At::Name(dir, name, kind)),
            _ => host.open_child(dir, name).map(At::Inode),
        }
    }

    fn meta(&self, host: &dyn Host) -> std::io::Result<FileMeta> {
        match self {
            At::Inode(n) => host.meta(n),
            At::Name(dir, name, _) => host.stat_at(dir, name),
        }
    }

    fn read(&self, host: &dyn Host, attr: &dyn FileAttr) -> std::io::Result<Option<String>> {
        match self {
            At::Inode(n) => attr.read(host, n),
            At::Name(dir, name, _) => attr.read_at(host, dir, name),
        }
    }

    fn write(&self, host: &dyn Host, attr: &dyn FileAttr, v: Option<&str>) -> std::io::Result<()> {
        match self {
            At::Inode(n) => attr.write(host, n, v),
            At::Name(dir, name, kind) => attr.write_at(host, dir, name, *kind, v),
        }
    }

    fn mark(&self, host: &dyn Host, marks: &marks::Marks, model: &str) -> Option<marks::Mark> {
        match self {
            At::Inode(n) => marks.read(host, n, model),
            At::Name(dir, name, _) => marks.read_at(host, dir, name, model),
        }
    }

    fn remove_mark(&self, host: &dyn Host, marks: &marks::Marks, model: &str) {
        match self {
            At::Inode(n) => marks.remove(host, n, model),
            At::Name(dir, name, _) => marks.remove_at(host, dir, name, model),
        }
    }

    fn write_stamped_mark(
        &self,
        host: &dyn Host,
        marks: &marks::Marks,
        model: &str,
        (original, stamp): (Option<&str>, u32),
    ) -> bool {
        match self {
            At::Inode(n) => marks.try_write_stamped(host, n, model, original, stamp),
            At::Name(dir, name, _) => {
                marks.try_write_stamped_at(host, dir, name, model, original, stamp)
            }
        }
    }
}

/// A file the VM made with several names, found by a stop's walk.
struct Linked {
    dir: Arc<Dir>,
    name: OsString,
    kind: FileKind,
    ino: u64,
    nlink: u64,
    current: Option<String>,
}

/// An entry left out of a share (relative to its root), and why.
type LeftOut = (PathBuf, &'static str);

const MOUNT_POINT: &str = "a mount point inside the share: another filesystem is never relabeled";
const DEVICE_NODE: &str =
    "a device node: relabeled, it would hand the VM the device it names, so it is left as it is";
const LINKED_OUT: &str = "a file with another name outside the share (a hard link): changing it would change that file too, so it is never relabeled through the share";

/// The mount points and device nodes a walk left alone, each with why.
fn left_out(mounts: Vec<PathBuf>, devices: Vec<PathBuf>) -> Vec<LeftOut> {
    let mounts = mounts.into_iter().map(|m| (m, MOUNT_POINT));
    mounts
        .chain(devices.into_iter().map(|d| (d, DEVICE_NODE)))
        .collect()
}

/// Entries changed by one worker, and the guard ctimes it recorded.
type Changed = (Vec<usize>, Vec<(usize, i64)>);

/// An entry to look at with the store before it is changed.
#[derive(Clone)]
struct Careful {
    dir: Arc<Dir>,
    name: OsString,
    kind: FileKind,
    current: Option<String>,
    /// Its value is taken as it is (it carries no VM's identity and no value svirt applied):
    /// it waited only for its names to be counted, or because it refused its mark.
    plain: bool,
}

/// Each distinct original a worker found, once, with how many entries have it.
#[derive(Default)]
struct Originals {
    values: Vec<Option<String>>,
    index: HashMap<Option<String>, u32>,
    /// Entries per original.
    counts: Vec<usize>,
    last: Option<u32>,
}

impl Originals {
    fn intern(&mut self, v: Option<String>) -> u32 {
        // Most entries of a share share one original: try the last one first.
        let i = match self.last.filter(|&l| self.values[l as usize] == v) {
            Some(l) => l,
            None => self.intern_new(v),
        };
        self.last = Some(i);
        self.counts[i as usize] += 1;
        i
    }

    fn intern_new(&mut self, v: Option<String>) -> u32 {
        if let Some(&i) = self.index.get(&v) {
            return i;
        }
        let i = self.values.len() as u32;
        self.values.push(v.clone());
        self.counts.push(0);
        self.index.insert(v, i);
        i
    }
}

/// The index of `v` in a tree's originals, added if new.
fn global_index(
    tree: &mut Tree,
    global: &mut HashMap<Option<String>, u32>,
    v: &Option<String>,
) -> u32 {
    if let Some(&g) = global.get(v) {
        return g;
    }
    tree.originals.push(v.clone());
    let g = (tree.originals.len() - 1) as u32;
    global.insert(v.clone(), g);
    g
}

/// What one worker found at start.
#[derive(Default)]
struct Found {
    originals: Originals,
    plain: Vec<Plain>,
    careful: Vec<Careful>,
    /// The inode number of every regular file seen (one per name), to count each file's
    /// names inside the share.
    files: Vec<u64>,
    /// Regular files with more than one name: (inode number, link count).
    linked: Vec<(u64, u64)>,
}

/// The inode numbers of the regular files that have more names than the share holds.
fn names_outside(found: &[Found]) -> HashSet<u64> {
    safe::names_outside(
        found.iter().flat_map(|f| f.files.iter().copied()),
        found.iter().flat_map(|f| f.linked.iter().copied()),
    )
}

/// What one worker of a one-pass walk did.
#[derive(Default)]
struct Walk {
    originals: Originals,
    /// Per original: whether it grants privileges (its entries get a guard ctime).
    privileged: Vec<bool>,
    /// The entries changed, each original an index into `originals`, and beside each its
    /// directory and type.
    made: Vec<TreeEntry>,
    /// Beside each entry of `made`, its change, `entry` its index in `made`.
    made_at: Vec<Pending>,
    /// Entries left for the journaled second part.
    rest: Vec<Careful>,
    /// Every name of a regular file with more than one: (inode number, link count).
    linked: Vec<(u64, u64)>,
    error: Option<Error>,
    /// What the last value read decided.
    last: Option<Decided>,
}

/// What a value decides for an entry of a one-pass walk.
struct Decided {
    value: Option<String>,
    /// For a regular file (whose common original is its own, see `FileAttr::entry_common`).
    file: bool,
    /// It holds the applied value already.
    done: bool,
    /// It needs the store (see [`Careful`]).
    careful: bool,
    /// It is not the tree's common original.
    marked: bool,
}

/// What a one-pass walk left for its journaled second part.
#[derive(Default)]
pub(super) struct Rest {
    entries: Vec<Careful>,
    linked: Vec<(u64, u64)>,
}

/// Why an entry with more than one name that carries a VM's identity must not be taken back
/// through this share, if it must not: a hard link to an inode svirt manages for another
/// resource, or one that carries only the stopping domain's own static identity, which other
/// domains may hold too (a shared static uid, a static gid another's uid equals): its other
/// name may be a file of their running share.
pub(super) fn linked_elsewhere(
    attr: &dyn FileAttr,
    current: Option<&str>,
    meta: &FileMeta,
    opts: &RestoreOptions<'_>,
) -> Option<&'static str> {
    if opts.managed.is_some_and(|m| m(meta.dev, meta.ino)) {
        return Some("a hard link to an inode svirt manages for another resource");
    }
    if !attr.carries_vm(current, None) {
        return Some("a hard link carrying this domain's static identity, which another domain's files may carry too: its other names may be theirs");
    }
    None
}

/// A node for the directory of an entry: the walk's own, or opened again.
fn dir_node<'a>(
    host: &dyn Host,
    root: &'a Node,
    dir: &'a Dir,
    cache: &'a mut Option<(*const Dir, Node)>,
) -> std::io::Result<&'a Node> {
    if let Some(n) = &dir.node {
        return Ok(n);
    }
    if dir.rel.as_os_str().is_empty() {
        return Ok(root);
    }
    let key = dir as *const Dir;
    if cache.as_ref().is_none_or(|(k, _)| *k != key) {
        *cache = Some((key, tree::reopen(host, root, dir)?));
    }
    Ok(&cache.as_ref().expect("just set").1)
}

impl Engine {
    /// Worker threads for a share: as configured, else every core, at most four.
    fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(4)
        })
    }

    /// Change a share's entries once its intent is recorded; `tree` is the intent's (see
    /// [`Tree::in_progress`]), `root_id` its item. Where the share root takes svirt's marks,
    /// in one pass ([`Engine::walk_share_once`]), then the entries that need the store,
    /// journaled through `journal` before they change. Elsewhere every entry is read first and
    /// the whole tree journaled before the first change. Returns the tree's entries changed,
    /// the entries left out, and the first error (the caller puts back what was changed).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn change_share(
        &self,
        attr: &Arc<dyn FileAttr>,
        root_id: i64,
        work: &mut ShareWork,
        tree: &mut Tree,
        value: &str,
        journal: &Journal<'_>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> (Vec<usize>, Vec<LeftOut>, Option<Error>) {
        let host = self.host.as_ref();
        let model = attr.model();
        let common = tree.originals.first().cloned().flatten();
        let one_pass = tree.in_progress
            && self
                .marks
                .try_write_entries(host, &work.root, model, common.as_deref());
        work.one_pass = one_pass;
        if !one_pass {
            // Every original is journaled before the first change.
            let mut read = None;
            let root_path = work.root.path().to_owned();
            let own = work.own.clone();
            let r = journal(&mut |tx, dead| {
                let (t, pending, left) = self.read_share(
                    tx,
                    attr,
                    &root_path,
                    (work.root.clone(), common.as_deref()),
                    (value, &own),
                    dead,
                )?;
                tx.set_tree(root_id, &t)?;
                read = Some((t, pending, left));
                Ok(())
            });
            let Some((t, pending, left)) = read.filter(|_| r.is_ok()) else {
                return (Vec::new(), Vec::new(), r.err());
            };
            *tree = t;
            work.pending = pending;
            let (applied, ctimes, err) =
                self.apply_share(attr, &work.root, &work.pending, tree, value, progress);
            for (i, c) in ctimes {
                tree.entries[i].ctime_ns = Some(c);
            }
            return (applied, left, err);
        }
        let (rest, (mounts, devices), mut err) =
            self.walk_share_once(attr, work, tree, value, progress);
        let mut applied: Vec<usize> = (0..tree.entries.len()).collect();
        let mut left = left_out(mounts, devices);
        if err.is_none() && !rest.entries.is_empty() {
            let (from, from_pending) = (tree.entries.len(), work.pending.len());
            let mut linked_out = Vec::new();
            let r = journal(&mut |tx, dead| {
                let outside = safe::names_outside(
                    rest.linked.iter().map(|(ino, _)| *ino),
                    rest.linked.iter().copied(),
                );
                let mut global: HashMap<Option<String>, u32> = tree
                    .originals
                    .iter()
                    .enumerate()
                    .map(|(i, o)| (o.clone(), i as u32))
                    .collect();
                // A retried transaction starts again from the walk's entries.
                tree.entries.truncate(from);
                work.pending.truncate(from_pending);
                linked_out.clear();
                let entries = rest.entries.clone();
                self.settle(
                    tx,
                    attr.as_ref(),
                    (&work.root, common.as_deref()),
                    entries,
                    &outside,
                    dead,
                    (tree, &mut global),
                    &mut work.pending,
                    &mut linked_out,
                )?;
                tx.set_tree(root_id, tree)
            });
            left.extend(linked_out.into_iter().map(|rel| (rel, LINKED_OUT)));
            match r {
                Err(e) => {
                    tree.entries.truncate(from);
                    work.pending.truncate(from_pending);
                    err = Some(e);
                }
                Ok(()) => {
                    let (more, ctimes, e) = self.apply_share(
                        attr,
                        &work.root,
                        &work.pending[from_pending..],
                        tree,
                        value,
                        progress,
                    );
                    applied.extend(more);
                    for (i, c) in ctimes {
                        tree.entries[i].ctime_ns = Some(c);
                    }
                    err = e;
                }
            }
        }
        if err.is_none() {
            tree.in_progress = false;
        }
        (applied, left, err)
    }

    /// Change a share in one pass on every core (see [`Tree::in_progress`]): each regular file
    /// and directory is read, marked with its original unless that is the tree's common one,
    /// and changed before the walk moves on, so its dentry, inode and xattr block are found
    /// once. Entries that need the store (a VM's value, a value svirt applied elsewhere),
    /// files with several names (counted once the walk is over) and entries that refuse their
    /// mark are returned for the journaled second part. The entries changed are added to the
    /// tree and to `work`, also when the walk stops on an error (returned with them).
    fn walk_share_once(
        &self,
        attr: &Arc<dyn FileAttr>,
        work: &mut ShareWork,
        tree: &mut Tree,
        value: &str,
        progress: &(dyn Fn(u64) + Sync),
    ) -> (Rest, (Vec<PathBuf>, Vec<PathBuf>), Option<Error>) {
        let host = self.host.as_ref();
        let model = attr.model();
        let started = std::time::Instant::now();
        let common = tree.originals.first().cloned().flatten();
        let file_common = attr.entry_common(common.as_deref(), FileKind::File);
        let stamp = marks::stamp(tree.started_ns);
        let applied = &work.applied;
        let own = &work.own;
        let stop = AtomicBool::new(false);
        let done = AtomicU64::new(0);
        let visit = |w: &mut Walk, dir: &Arc<Dir>, node: &Node, e: &DirEntry, kind: FileKind| {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let fail = |w: &mut Walk, err: Error| {
                stop.store(true, Ordering::Relaxed);
                w.error.get_or_insert(err);
            };
            let path = || node.path().join(&e.name);
            let (current, meta) = match attr.read_at_meta(host, node, &e.name) {
                Ok(v) => v,
                Err(err) if vanished(&err) => return Ok(()),
                Err(err) if is_unsupported(&err) => (None, None),
                Err(err) => {
                    fail(w, Error::host("read the attribute of", path(), err));
                    return Ok(());
                }
            };
            let birth_ns = meta.as_ref().and_then(|m| m.birth_ns);
            let mut linked = false;
            if kind == FileKind::File {
                let m = match meta {
                    Some(m) => m,
                    None => match host.stat_at(node, &e.name) {
                        Ok(m) => m,
                        Err(err) if vanished(&err) => return Ok(()),
                        Err(err) => {
                            fail(w, Error::host("inspect", path(), err));
                            return Ok(());
                        }
                    },
                };
                if m.ino != e.ino {
                    // Renamed or replaced since the directory was read: whatever the name
                    // holds now is not what the walk decided about. Nothing in a share
                    // should move during its start; the start is undone.
                    fail(w, Error::ShareMoved { path: path() });
                    return Ok(());
                }
                let nlink = m.nlink;
                if nlink > 1 {
                    w.linked.push((e.ino, nlink));
                    linked = true;
                }
            }
            // What an entry's value decides, worked out once per run of equal values (the
            // entries of a share mostly share one).
            let file = kind == FileKind::File;
            let seen = match &w.last {
                Some(d) if d.value == current && d.file == file => d,
                _ => {
                    let d = Decided {
                        value: current.clone(),
                        file,
                        done: attr.matches(current.as_deref(), value),
                        careful: attr.carries_vm(current.as_deref(), None)
                            || current.as_ref().is_some_and(|c| applied.contains(c)),
                        marked: &current != if file { &file_common } else { &common },
                    };
                    &*w.last.insert(d)
                }
            };
            let (done_already, careful, marked) = (seen.done, seen.careful, seen.marked);
            if done_already {
                return Ok(());
            }
            let later = |w: &mut Walk, current: Option<String>| {
                w.rest.push(Careful {
                    dir: dir.clone(),
                    name: e.name.clone(),
                    kind,
                    current,
                    plain: !careful,
                })
            };
            if careful || linked || own.contains(&e.ino) {
                later(w, current);
                return Ok(());
            }
            if marked
                && !self.marks.try_write_stamped_at(
                    host,
                    node,
                    &e.name,
                    model,
                    current.as_deref(),
                    stamp,
                )
            {
                later(w, current);
                return Ok(());
            }
            let i = w.originals.intern(current);
            if i as usize == w.privileged.len() {
                let o = w.originals.values[i as usize].as_deref();
                w.privileged
                    .push(o.is_some_and(|o| attr.without_privileges(o).is_some()));
            }
            crate::failpoint::hit("relabel.journaled");
            let r = attr
                .write_at(host, node, &e.name, kind, Some(value))
                .and_then(
                    |()| match kind != FileKind::Dir && w.privileged[i as usize] {
                        true => host.stat_at(node, &e.name).map(|m| Some(m.ctime_ns)),
                        false => Ok(None),
                    },
                );
            let (ctime_ns, err) = match r {
                Ok(t) => (t, None),
                Err(err) if vanished(&err) => return Ok(()),
                // Perhaps half made (an owner without its mode): put back with the rest.
                Err(err) => (None, Some(err)),
            };
            // Sized once (`join` would grow it).
            let mut rel = PathBuf::with_capacity(dir.rel.as_os_str().len() + 1 + e.name.len());
            rel.push(&dir.rel);
            rel.push(&e.name);
            w.made.push(TreeEntry {
                rel,
                ino: e.ino,
                original: i,
                ctime_ns,
                marked,
                birth_ns,
            });
            w.made_at.push(Pending {
                dir: dir.clone(),
                kind,
                entry: w.made.len() - 1,
            });
            match err {
                // Counted per worker, told in batches: one counter written by every worker for
                // every entry would bounce its cache line between the cores.
                None if w.made.len().is_multiple_of(1024) => {
                    progress(done.fetch_add(1024, Ordering::Relaxed) + 1024);
                }
                None => {}
                Some(err) => fail(w, Error::host("set the attribute of", path(), err)),
            }
            Ok(())
        };
        let mounts = tree::mounts_below(host, work.root.path());
        let walked = tree::walk_entries_keeping(
            host,
            work.root.clone(),
            &mounts,
            false,
            self.threads(),
            &Walk::default,
            &visit,
        );
        let mut error = walked.error;
        let mut rest = Rest::default();
        let mut global: HashMap<Option<String>, u32> = tree
            .originals
            .iter()
            .enumerate()
            .map(|(i, o)| (o.clone(), i as u32))
            .collect();
        let mut states = walked.states;
        // The largest worker's records become the tree's when it has none yet, in place; the
        // others are appended to them (a share's records are tens of megabytes: a merged copy
        // is that many pages faulted in and copied).
        states.sort_by_key(|w| std::cmp::Reverse(w.made.len()));
        for mut w in states {
            if error.is_none() {
                error = w.error;
            }
            let to_global: Vec<u32> = w
                .originals
                .values
                .iter()
                .map(|o| global_index(tree, &mut global, o))
                .collect();
            for e in &mut w.made {
                e.original = to_global[e.original as usize];
            }
            let from = tree.entries.len();
            for p in &mut w.made_at {
                p.entry += from;
            }
            if tree.entries.is_empty() && work.pending.is_empty() {
                tree.entries = w.made;
                work.pending = w.made_at;
            } else {
                tree.entries.append(&mut w.made);
                work.pending.append(&mut w.made_at);
            }
            rest.entries.extend(w.rest);
            rest.linked.extend(w.linked);
        }
        debug!(root = %work.root.path().display(), model, changed = tree.entries.len(), later = rest.entries.len(), ms = started.elapsed().as_millis() as u64, "share changed in one pass");
        (rest, (walked.mounts, walked.devices), error)
    }

    /// Read a share's entries for its journal: the tree of originals, the changes to make,
    /// and the entries left out (mount points, files with a name outside the share), each
    /// with why.
    fn read_share(
        &self,
        tx: &Tx<'_>,
        attr: &Arc<dyn FileAttr>,
        root: &Path,
        (root_node, root_original): (Arc<Node>, Option<&str>),
        (value, own): (&str, &HashSet<u64>),
        dead: &dyn Fn(&str) -> bool,
    ) -> Result<(Tree, Vec<Pending>, Vec<LeftOut>)> {
        let host = self.host.as_ref();
        let model = attr.model();
        let started = std::time::Instant::now();
        let started_ns = start_instant();
        let applied = tx.applied_values(model)?;
        let mounts = tree::mounts_below(host, root);
        let visit = |f: &mut Found, dir: &Arc<Dir>, node: &Node, e: &DirEntry, kind: FileKind| {
            let (current, meta) = match attr.read_at_meta(host, node, &e.name) {
                Ok(v) => v,
                Err(err) if vanished(&err) => return Ok(()),
                Err(err) if is_unsupported(&err) => (None, None),
                Err(err) => {
                    return Err(Error::host(
                        "read the attribute of",
                        node.path().join(&e.name),
                        err,
                    ))
                }
            };
            if kind == FileKind::File {
                let nlink = match &meta {
                    Some(m) => m.nlink,
                    None => match host.stat_at(node, &e.name) {
                        Ok(m) => m.nlink,
                        Err(err) if vanished(&err) => return Ok(()),
                        Err(err) => {
                            return Err(Error::host("inspect", node.path().join(&e.name), err))
                        }
                    },
                };
                f.files.push(e.ino);
                if nlink > 1 {
                    f.linked.push((e.ino, nlink));
                }
            }
            if attr.matches(current.as_deref(), value) {
                return Ok(());
            }
            if attr.carries_vm(current.as_deref(), None)
                || current.as_ref().is_some_and(|c| applied.contains(c))
                || own.contains(&e.ino)
            {
                f.careful.push(Careful {
                    dir: dir.clone(),
                    name: e.name.clone(),
                    kind,
                    current,
                    plain: false,
                });
                return Ok(());
            }
            let i = f.originals.intern(current);
            let birth = meta.and_then(|m| m.birth_ns);
            f.plain.push(Plain {
                dir: dir.clone(),
                rel: dir.rel.join(&e.name),
                kind,
                ino: e.ino,
                original: i,
                birth_ns: birth,
            });
            Ok(())
        };
        let walked = tree::walk_entries(
            host,
            root_node.clone(),
            &mounts,
            false,
            self.threads(),
            &Found::default,
            &visit,
        )?;
        let (found, mounts, devices) = (walked.states, walked.mounts, walked.devices);

        // A file with a name outside the share (a hard link to a system file, to another
        // share's or VM's file, a `cp -al` copy of /etc) is never changed through the share:
        // the change would reach that other name too.
        let outside = names_outside(&found);

        // Merge, most frequent original first (the one the root's mark names).
        let mut count: HashMap<&Option<String>, usize> = HashMap::new();
        for f in &found {
            for (o, n) in f.originals.values.iter().zip(&f.originals.counts) {
                *count.entry(o).or_default() += n;
            }
        }
        let mut originals: Vec<(&Option<String>, usize)> = count.into_iter().collect();
        originals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let mut tree = Tree {
            started_ns,
            originals: originals.into_iter().map(|(o, _)| o.clone()).collect(),
            entries: Vec::with_capacity(found.iter().map(|f| f.plain.len()).sum()),
            in_progress: false,
        };
        let mut global: HashMap<Option<String>, u32> = tree
            .originals
            .iter()
            .enumerate()
            .map(|(i, o)| (o.clone(), i as u32))
            .collect();
        let mut pending = Vec::with_capacity(tree.entries.capacity());
        let mut careful = Vec::new();
        let mut linked_out = Vec::new();
        for f in found {
            let to_global: Vec<u32> = f.originals.values.iter().map(|o| global[o]).collect();
            for Plain {
                dir,
                rel,
                kind,
                ino,
                original: local,
                birth_ns,
            } in f.plain
            {
                if kind == FileKind::File && outside.contains(&ino) {
                    linked_out.push(rel);
                    continue;
                }
                let g = to_global[local as usize];
                tree.entries.push(TreeEntry {
                    rel,
                    ino,
                    original: g,
                    ctime_ns: None,
                    marked: g != 0,
                    birth_ns,
                });
                pending.push(Pending {
                    entry: tree.entries.len() - 1,
                    dir,
                    kind,
                });
            }
            careful.extend(f.careful);
        }

        // The few entries that may be svirt's or a VM's: opened and looked up one by one.
        self.settle(
            tx,
            attr.as_ref(),
            (&root_node, root_original),
            careful,
            &outside,
            dead,
            (&mut tree, &mut global),
            &mut pending,
            &mut linked_out,
        )?;
        debug!(root = %root.display(), model, entries = tree.entries.len(), originals = tree.originals.len(), ms = started.elapsed().as_millis() as u64, "share read");
        let mut left = left_out(mounts, devices);
        left.extend(linked_out.into_iter().map(|rel| (rel, LINKED_OUT)));
        Ok((tree, pending, left))
    }

    /// Settle the entries that need the store, inside the transaction that journals them: a
    /// file with a name outside the share is left out (its path added to `linked_out`), a
    /// hard link to an inode a running domain holds is left alone, and every other entry gets
    /// its original (from a dead domain's item, which is dropped, else its mark, else its
    /// value) and is added to the tree and to `pending`.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        tx: &Tx<'_>,
        attr: &dyn FileAttr,
        (root_node, root_original): (&Node, Option<&str>),
        careful: Vec<Careful>,
        outside: &HashSet<u64>,
        dead: &dyn Fn(&str) -> bool,
        (tree, global): (&mut Tree, &mut HashMap<Option<String>, u32>),
        pending: &mut Vec<Pending>,
        linked_out: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let host = self.host.as_ref();
        let model = attr.model();
        let mut cache = None;
        for c in careful {
            let Careful {
                dir,
                name,
                kind,
                current,
                plain,
            } = c;
            let opened = dir_node(host, root_node, &dir, &mut cache)
                .and_then(|d| Ok((host.open_child(d, &name)?, host.stat_at(d, &name))));
            let (node, meta) = match opened {
                Ok(o) => o,
                Err(e) if vanished(&e) => continue,
                Err(e) => {
                    let at = root_node.path().join(&dir.rel).join(&name);
                    return Err(Error::host("open", at, e));
                }
            };
            let meta = meta
                .or_else(|_| host.meta(&node))
                .map_err(|e| Error::host("inspect", node.path(), e))?;
            if meta.kind == FileKind::File && outside.contains(&meta.ino) {
                linked_out.push(dir.rel.join(&name));
                continue;
            }
            let original = match tx.item_by_inode(model, meta.dev, meta.ino)? {
                Some(it) if it.holders.iter().any(|h| !dead(h)) => {
                    warn!(path = %node.path().display(), model, other = %it.root.display(), "entry is a hard link to an inode svirt manages for another resource; leaving it alone");
                    continue;
                }
                Some(it) => {
                    tx.delete_items(&[it.id])?;
                    it.original
                }
                None if plain => current,
                None => {
                    let held = attr.carries_vm(current.as_deref(), None);
                    match self.marks.read(host, &node, model) {
                        Some(m) if held => super::held_original(attr, kind, m.original),
                        Some(m) => m.original,
                        // A VM's file nothing remembers (a VM made it, or the state was lost):
                        // what a stop's reclaim would give it, the share root's owner and no
                        // setuid/setgid bit, or the default label.
                        None if held => attr
                            .reclaim(current.as_deref(), root_original, None, node.path(), kind)
                            .or_else(|| attr.original_for(node.path(), current)),
                        None => attr.original_for(node.path(), current),
                    }
                }
            };
            let g = global_index(tree, global, &original);
            pending.push(Pending {
                entry: tree.entries.len(),
                dir: dir.clone(),
                kind,
            });
            tree.entries.push(TreeEntry {
                rel: dir.rel.join(&name),
                ino: meta.ino,
                original: g,
                ctime_ns: None,
                marked: g != 0,
                birth_ns: meta.birth_ns,
            });
        }
        Ok(())
    }

    /// Make a share's changes on every core. Returns the entries changed, with the ctime
    /// recorded for those whose original grants privileges, and the first error (the caller
    /// puts back what was changed).
    fn apply_share(
        &self,
        attr: &Arc<dyn FileAttr>,
        root: &Arc<Node>,
        pending: &[Pending],
        tree: &Tree,
        value: &str,
        progress: &(dyn Fn(u64) + Sync),
    ) -> (Vec<usize>, Vec<(usize, i64)>, Option<Error>) {
        let host = self.host.as_ref();
        let model = attr.model();
        let started = std::time::Instant::now();
        let stop = AtomicBool::new(false);
        let done = AtomicU64::new(0);
        let error: Mutex<Option<Error>> = Mutex::new(None);
        let n = self.threads();
        let chunk = pending.len().div_ceil(n).max(1);
        // Which originals grant privileges (their entries get a guard ctime), once each.
        let privileged: Vec<bool> = tree
            .originals
            .iter()
            .map(|o| {
                o.as_deref()
                    .is_some_and(|o| attr.without_privileges(o).is_some())
            })
            .collect();
        let privileged = &privileged;
        let results: Vec<Changed> = std::thread::scope(|scope| {
            let handles: Vec<_> = pending
                .chunks(chunk)
                .map(|part| {
                    let (stop, done, error) = (&stop, &done, &error);
                    scope.spawn(move || {
                        let mut applied = Vec::with_capacity(part.len());
                        let mut ctimes = Vec::new();
                        let mut cache = None;
                        for p in part {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            let e = &tree.entries[p.entry];
                            let r = dir_node(host, root, &p.dir, &mut cache).and_then(|d| {
                                if e.marked {
                                    self.marks.write_at(
                                        host,
                                        d,
                                        name_of(e),
                                        model,
                                        tree.original(e),
                                    );
                                }
                                crate::failpoint::hit("relabel.journaled");
                                attr.write_at(host, d, name_of(e), p.kind, Some(value))?;
                                if p.kind != FileKind::Dir && privileged[e.original as usize] {
                                    let t = host.stat_at(d, name_of(e))?.ctime_ns;
                                    ctimes.push((p.entry, t));
                                }
                                Ok(())
                            });
                            match r {
                                Ok(()) => {
                                    applied.push(p.entry);
                                    let k = done.fetch_add(1, Ordering::Relaxed) + 1;
                                    if k.is_multiple_of(4096) {
                                        progress(k);
                                    }
                                }
                                Err(err) if vanished(&err) => {}
                                Err(err) => {
                                    // Perhaps half made (a mark, an owner without its mode):
                                    // put back with the rest.
                                    applied.push(p.entry);
                                    stop.store(true, Ordering::Relaxed);
                                    let path = root.path().join(&e.rel);
                                    lock(error).get_or_insert(Error::host(
                                        "set the attribute of",
                                        path,
                                        err,
                                    ));
                                }
                            }
                        }
                        (applied, ctimes)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut applied = Vec::new();
        let mut ctimes = Vec::new();
        for (a, c) in results {
            applied.extend(a);
            ctimes.extend(c);
        }
        let err = error.into_inner().unwrap_or_else(|p| p.into_inner());
        debug!(root = %root.path().display(), model, changed = applied.len(), ms = started.elapsed().as_millis() as u64, "share changed");
        (applied, ctimes, err)
    }

    /// Put back the given entries of a share that was never handed to a VM (a failed start).
    pub(super) fn unapply_share(
        &self,
        attr: &dyn FileAttr,
        work: &ShareWork,
        tree: &Tree,
        entries: &[usize],
    ) -> Vec<Error> {
        let host = self.host.as_ref();
        let by_entry: HashMap<usize, &Pending> =
            work.pending.iter().map(|p| (p.entry, p)).collect();
        let mut cache = None;
        let mut errors = Vec::new();
        for &i in entries {
            let Some(p) = by_entry.get(&i) else { continue };
            let e = &tree.entries[i];
            let r = dir_node(host, &work.root, &p.dir, &mut cache).and_then(|d| {
                // On the inode changed, or not at all: a name that moved on since is left to
                // the sweep that follows, which finds the inode wherever it went.
                let at = At::open(host, d, name_of(e), p.kind)?;
                if let At::Inode(n) = &at {
                    if host.meta(n)?.ino != e.ino {
                        return Ok(());
                    }
                }
                at.write(host, attr, tree.original(e))?;
                if e.marked {
                    at.remove_mark(host, &self.marks, attr.model());
                }
                Ok(())
            });
            match r {
                Ok(()) => {}
                Err(err) if vanished(&err) => {}
                Err(err) => errors.push(Error::host(
                    "restore the attribute of",
                    work.root.path().join(&e.rel),
                    err,
                )),
            }
        }
        errors
    }

    /// An entry of a share whose one-pass start was cut short (see [`Tree::in_progress`]) that
    /// its tree does not record: if it holds the applied value (whole, or its first step), the
    /// walk changed it (the value is the domain's alone, drawn for it), so it gets its mark's
    /// original, or the tree's common one; only a mark with this walk's stamp counts. That
    /// holds for a file with several names too (the walk journals those first, but a name may
    /// be added after the cut: a backup's `cp -al`). A mark on an entry the walk never changed
    /// (written just before the cut) is removed. Returns whether the entry was settled here.
    #[allow(clippy::too_many_arguments)]
    fn undo_unrecorded(
        &self,
        attr: &dyn FileAttr,
        (dir, e, kind): (&Node, &DirEntry, FileKind),
        tree: &Tree,
        applied: &str,
        opts: &RestoreOptions<'_>,
        o: &mut Out,
    ) -> bool {
        let host = self.host.as_ref();
        let model = attr.model();
        let path = || dir.path().join(&e.name);
        // Read, decided and written on one inode, whatever its name holds meanwhile.
        let Ok(at) = At::open(host, dir, &e.name, kind) else {
            return true;
        };
        match at.meta(host) {
            // Another resource's inode is put back by its own item.
            Ok(m) if opts.managed.is_some_and(|managed| managed(m.dev, m.ino)) => return false,
            Ok(_) => {}
            Err(_) => return true,
        }
        let Ok(current) = at.read(host, attr) else {
            return true;
        };
        // Only this walk's marks: one a copy brought here names another file's original.
        let stamp = marks::stamp(tree.started_ns);
        let mark = at
            .mark(host, &self.marks, model)
            .filter(|m| m.stamp == Some(stamp));
        let value = match &mark {
            Some(m) if m.original == current => {
                // Marked, then never changed (or already put back): only the mark goes.
                at.remove_mark(host, &self.marks, model);
                return true;
            }
            // Marked and not back: changed by the walk, or put back in part by a recovery cut
            // short (an owner without its mode).
            Some(m) => m.original.clone(),
            None if attr.partly_applied(current.as_deref(), applied) => {
                let root = tree.originals.first().cloned().flatten();
                let common = attr.entry_common(root.as_deref(), kind);
                // Marked with this walk's stamp before it changes, so a recovery cut short
                // between the steps of the change (an owner, then a mode) leaves what the next
                // one needs.
                at.write_stamped_mark(host, &self.marks, model, (common.as_deref(), stamp));
                crate::failpoint::hit("relabel.undo-marked");
                common
            }
            None => return false,
        };
        let written = at.write(host, attr, value.as_deref());
        match written {
            Ok(()) => {
                at.remove_mark(host, &self.marks, model);
                o.undone += 1;
            }
            Err(err) if vanished(&err) => o.raced += 1,
            Err(err) if cannot_hold(&err) => {}
            Err(err) => o
                .failed
                .push((path(), Error::host("restore the attribute of", path(), err))),
        }
        true
    }

    /// Give an entry the VM made `target` (nothing when `None` or already there), reporting
    /// it reclaimed, or failed: an entry still the VM's keeps the share unsettled, so the
    /// domain is held and its identities stay reserved.
    fn take_back(
        &self,
        attr: &dyn FileAttr,
        (dir, name, kind): (&Node, &std::ffi::OsStr, FileKind),
        current: Option<&str>,
        target: Option<String>,
        o: &mut Out,
    ) {
        let host = self.host.as_ref();
        let Some(v) = target else { return };
        if attr.matches(current, &v) {
            return;
        }
        let path = || dir.path().join(name);
        // The target's mode under the VM's owner first, where a value is written in steps: a
        // stop cut short between them leaves the entry the VM's, so the next restore takes it
        // back again, never half given to the root's owner.
        let first = attr
            .first_step(current, &v)
            .map_or(Ok(()), |f| attr.write_at(host, dir, name, kind, Some(&f)));
        match first.and_then(|()| attr.write_at(host, dir, name, kind, Some(&v))) {
            Ok(()) => o.reclaimed.push(path()),
            Err(err) if cannot_hold(&err) || vanished(&err) => {}
            Err(err) => o
                .failed
                .push((path(), Error::host("take back from the VM", path(), err))),
        }
    }

    /// Restore a share kept as a tree: walk it on every core; remembered inodes get their
    /// originals wherever they moved inside it; with `opts.reclaim`, entries the VM created or
    /// replaced get the share's original owner or the default label. Returns whether every
    /// remembered entry is settled (back, or gone).
    pub(super) fn restore_share(
        &self,
        attr: &dyn FileAttr,
        root_item: &Item,
        root_node: Arc<Node>,
        opts: &RestoreOptions<'_>,
        out: &mut Restored,
    ) -> bool {
        let host = self.host.as_ref();
        let empty = Tree::default();
        let tree = root_item.tree.as_deref().unwrap_or(&empty);
        // Each inode by number, with every name it was recorded under (a file with two names
        // in the share is recorded twice) and the last ctime recorded for it (the one after
        // its last change).
        let mut by_ino: HashMap<u64, (usize, Option<i64>)> = HashMap::new();
        let mut names: HashMap<u64, Vec<&Path>> = HashMap::new();
        for (i, e) in tree.entries.iter().enumerate() {
            match by_ino.entry(e.ino) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((i, e.ctime_ns));
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let (first, t) = o.get_mut();
                    *t = (*t).max(e.ctime_ns);
                    let first = &tree.entries[*first].rel;
                    names
                        .entry(e.ino)
                        .or_insert_with(|| vec![first.as_path()])
                        .push(&e.rel);
                }
            }
        }
        let seen: Vec<AtomicBool> = tree
            .entries
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        let root_original = root_item.original.as_deref();
        let own = opts.own_label(attr.model());
        let root_path = root_node.path().to_owned();
        let mounts = tree::mounts_below(host, &root_path);

        let visit = |o: &mut Out, dir: &Arc<Dir>, node: &Node, e: &DirEntry, kind: FileKind| {
            let path = || root_path.join(&dir.rel).join(&e.name);
            let known = by_ino.get(&e.ino).copied().filter(|&(i, _)| {
                // A new inode that reused the number of one svirt changed is not it: born
                // after the share's intent, or at another time than recorded. (Directories
                // are taken by number: a label or owner on a directory grants nothing to run.)
                let recorded = tree.entries[i].birth_ns;
                if kind == FileKind::Dir && recorded.is_none() {
                    return true;
                }
                match host.stat_at(node, &e.name) {
                    Ok(m) => match (m.birth_ns, recorded) {
                        (Some(b), Some(r)) => b == r,
                        (Some(b), None) => b < tree.started_ns,
                        (None, _) => true,
                    },
                    Err(_) => false,
                }
            });
            if let Some((i, ctime)) = known {
                if seen[i].swap(true, Ordering::Relaxed) {
                    // Another name of an inode already put back.
                    return Ok(());
                }
                let entry = &tree.entries[i];
                let original = tree.original(entry);
                let mut value = original.map(str::to_owned);
                let guard = original
                    .filter(|_| kind != FileKind::Dir)
                    .and_then(|o| attr.without_privileges(o));
                // Opened, and proved the inode recorded, before anything is written: always
                // for an original with setuid/setgid bits, and for every entry when asked (a
                // rollback, while whatever renamed entries under the start may go on). A
                // symlink is written by name.
                let at = if guard.is_some() || opts.by_inode {
                    let at = match At::open(host, node, &e.name, kind) {
                        Ok(at) => at,
                        Err(err) if vanished(&err) => return Ok(()),
                        Err(err) => {
                            o.failed.push((path(), Error::host("open", path(), err)));
                            return Ok(());
                        }
                    };
                    if let At::Inode(n) = &at {
                        match host.meta(n) {
                            Ok(m) if m.ino == e.ino => {}
                            Ok(_) => {
                                // Its name moved on: look again, in a later walk.
                                seen[i].store(false, Ordering::Relaxed);
                                o.again += 1;
                                return Ok(());
                            }
                            Err(err) if vanished(&err) => return Ok(()),
                            Err(err) => {
                                o.failed.push((path(), Error::host("inspect", path(), err)));
                                return Ok(());
                            }
                        }
                    }
                    at
                } else {
                    At::Name(node, &e.name, kind)
                };
                if let Some(safe) = guard {
                    if at.read(host, attr).ok().flatten().as_deref() == original {
                        // Already back (a restore cut short, or never changed).
                        if entry.marked {
                            at.remove_mark(host, &self.marks, attr.model());
                        }
                        return Ok(());
                    }
                    let changed = match (root_item.state, ctime) {
                        (ItemState::Applied, Some(t)) => match at.meta(host) {
                            Ok(m) => m.ctime_ns != t,
                            Err(err) if vanished(&err) => return Ok(()),
                            Err(err) => {
                                o.failed.push((path(), Error::host("inspect", path(), err)));
                                return Ok(());
                            }
                        },
                        (ItemState::Applied, None) => false,
                        (ItemState::Intent, _) => {
                            let current = at.read(host, attr).ok().flatten();
                            super::restore::cut_short_exposed(
                                attr,
                                current.as_deref(),
                                &root_item.applied,
                            )
                        }
                    };
                    if changed {
                        warn!(path = %path().display(), "the file changed while the VM held it; its setuid/setgid bits are not given back");
                        o.dropped.push(path());
                        value = Some(safe);
                    }
                }
                match at.write(host, attr, value.as_deref()) {
                    Ok(()) => {}
                    Err(err) if vanished(&err) => {
                        o.raced += 1;
                        return Ok(());
                    }
                    Err(err) if cannot_hold(&err) => {}
                    Err(err) => {
                        o.failed
                            .push((path(), Error::host("restore the attribute of", path(), err)));
                        return Ok(());
                    }
                }
                if entry.marked {
                    at.remove_mark(host, &self.marks, attr.model());
                }
                let now = dir.rel.join(&e.name);
                let recorded = |rel: &Path| rel == now;
                if !recorded(&entry.rel)
                    && !names
                        .get(&e.ino)
                        .is_some_and(|n| n.iter().any(|r| recorded(r)))
                {
                    o.moved
                        .push((root_path.join(&entry.rel), root_path.join(now)));
                }
                return Ok(());
            }
            let current = match attr.read_at(host, node, &e.name) {
                Ok(v) => v,
                Err(_) => return Ok(()),
            };
            if tree.in_progress
                && self.undo_unrecorded(attr, (node, e, kind), tree, &root_item.applied, opts, o)
            {
                return Ok(());
            }
            if !opts.reclaim {
                return Ok(());
            }
            if !attr.carries_vm(current.as_deref(), own) {
                return Ok(());
            }
            if kind != FileKind::Dir {
                if let Ok(m) = host.stat_at(node, &e.name) {
                    if m.nlink > 1 {
                        if let Some(why) = linked_elsewhere(attr, current.as_deref(), &m, opts) {
                            o.left.push((path(), why.into()));
                            return Ok(());
                        }
                        // Decided once every name in the share is counted.
                        o.linked.push(Linked {
                            dir: dir.clone(),
                            name: e.name.clone(),
                            kind,
                            ino: m.ino,
                            nlink: m.nlink,
                            current,
                        });
                        return Ok(());
                    }
                }
            }
            let target = attr.reclaim(current.as_deref(), root_original, own, &path(), kind);
            self.take_back(attr, (node, &e.name, kind), current.as_deref(), target, o);
            Ok(())
        };
        let root_again = root_node.clone();
        let walked = tree::walk_entries(
            host,
            root_node,
            &mounts,
            true,
            self.threads(),
            &Out::default,
            &visit,
        );
        let mut settled = true;
        match walked {
            Ok(tree::Walked {
                states: mut outs,
                raced,
                ..
            }) => {
                // A file the VM made with several names: the share's owner's only if every
                // name is in the share; one outside may be a name the guest chose
                // (`/tmp/krb5cc_1000`), so the file is only taken from the VM (root's owner,
                // readable by root alone; the default label).
                let mut names: HashMap<u64, u64> = HashMap::new();
                for l in outs.iter().flat_map(|o| &o.linked) {
                    *names.entry(l.ino).or_default() += 1;
                }
                let mut late = Out::default();
                let mut cache = None;
                for l in outs.iter_mut().flat_map(|o| std::mem::take(&mut o.linked)) {
                    let at = root_path.join(&l.dir.rel).join(&l.name);
                    let target = if names[&l.ino] >= l.nlink {
                        attr.reclaim(l.current.as_deref(), root_original, own, &at, l.kind)
                    } else {
                        attr.original_for(&at, l.current.clone())
                            .filter(|v| !attr.carries_vm(Some(v), own))
                    };
                    match dir_node(host, &root_again, &l.dir, &mut cache) {
                        Ok(d) => self.take_back(
                            attr,
                            (d, &l.name, l.kind),
                            l.current.as_deref(),
                            target,
                            &mut late,
                        ),
                        Err(err) if vanished(&err) => late.raced += 1,
                        Err(err) => late.failed.push((at.clone(), Error::host("open", at, err))),
                    }
                }
                outs.push(late);
                let raced = raced + outs.iter().map(|o| o.raced).sum::<usize>();
                if raced > 0 {
                    // Nothing should move in a share whose VM is gone: something still uses it,
                    // and entries may have been missed. The identities stay reserved.
                    warn!(root = %root_path.display(), raced, "the share changed while it was restored");
                    settled = false;
                    let it = root_item.without_tree();
                    out.failed.push((
                        it,
                        Error::InodeLost {
                            path: root_path.clone(),
                            reason: "the share changed while svirt restored it (does a process still use it?); stop that process and run `svirt stop` again",
                        },
                    ));
                }
                for o in outs {
                    settled &= o.failed.is_empty();
                    for (path, e) in o.failed {
                        let it = root_item.without_tree();
                        warn!(path = %path.display(), error = %crate::display_chain(&e), "cannot restore a share entry");
                        out.failed.push((it, e));
                    }
                    out.moved.extend(o.moved);
                    out.reclaimed.extend(o.reclaimed);
                    out.left.extend(o.left);
                    out.privileges_dropped.extend(o.dropped);
                    out.undone += o.undone + o.again;
                }
            }
            Err(e) => {
                let it = root_item.without_tree();
                out.failed.push((it, e));
                return false;
            }
        }
        let missing = by_ino
            .values()
            .filter(|(i, _)| !seen[*i].load(Ordering::Relaxed))
            .count();
        if missing > 0 {
            info!(root = %root_path.display(), missing, "remembered share entries no longer in the share (deleted by the VM); forgotten");
        }
        settled
    }
}

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

use super::{Engine, RestoreOptions, Restored};
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
    pending: Vec<Pending>,
}

impl ShareWork {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

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

/// An entry left out of a share (relative to its root), and why.
type LeftOut = (PathBuf, &'static str);

/// Entries changed by one worker, and the guard ctimes it recorded.
type Changed = (Vec<usize>, Vec<(usize, i64)>);

/// What one worker found at start.
#[derive(Default)]
struct Found {
    originals: Vec<Option<String>>,
    index: HashMap<Option<String>, u32>,
    /// Entries per original.
    counts: Vec<usize>,
    last: Option<u32>,
    plain: Vec<Plain>,
    /// Entries to look at closely: (dir, name, kind, current value).
    careful: Vec<(Arc<Dir>, OsString, FileKind, Option<String>)>,
    /// The inode number of every regular file seen (one per name), to count each file's
    /// names inside the share.
    files: Vec<u64>,
    /// Regular files with more than one name: (inode number, link count).
    linked: Vec<(u64, u64)>,
}

impl Found {
    fn intern(&mut self, v: Option<String>) -> u32 {
        // Most entries of a share share one original: try the last one first.
        let i = match self.last.filter(|&l| self.originals[l as usize] == v) {
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
        let i = self.originals.len() as u32;
        self.originals.push(v.clone());
        self.counts.push(0);
        self.index.insert(v, i);
        i
    }
}

/// The inode numbers of the regular files that have more names than the share holds.
fn names_outside(found: &[Found]) -> HashSet<u64> {
    safe::names_outside(
        found.iter().flat_map(|f| f.files.iter().copied()),
        found.iter().flat_map(|f| f.linked.iter().copied()),
    )
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

    /// Read a share's entries for the intent: the tree of originals to keep with the root's
    /// item, the changes to make, and the entries left out (mount points, files with a name
    /// outside the share), each with why.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prepare_share(
        &self,
        tx: &Tx<'_>,
        attr: &Arc<dyn FileAttr>,
        root: &Path,
        root_node: Arc<Node>,
        value: &str,
        dead: &dyn Fn(&str) -> bool,
    ) -> Result<(Tree, ShareWork, Vec<LeftOut>)> {
        let host = self.host.as_ref();
        let model = attr.model();
        let started = std::time::Instant::now();
        // The clock filesystems stamp inodes with (the coarse one, a tick behind the precise
        // one): a file created after this instant is born at or after it, so a birth before it
        // proves a file older than the share's start.
        let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        let started_ns = now.tv_sec.saturating_mul(1_000_000_000) + now.tv_nsec;
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
            {
                f.careful.push((dir.clone(), e.name.clone(), kind, current));
                return Ok(());
            }
            let i = f.intern(current);
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
        let (found, mounts, _) = tree::walk_entries(
            host,
            root_node.clone(),
            &mounts,
            false,
            self.threads(),
            &Found::default,
            &visit,
        )?;

        // A file with a name outside the share (a hard link to a system file, to another
        // share's or VM's file, a `cp -al` copy of /etc) is never changed through the share:
        // the change would reach that other name too.
        let outside = names_outside(&found);

        // Merge, most frequent original first (the one the root's mark names).
        let mut count: HashMap<&Option<String>, usize> = HashMap::new();
        for f in &found {
            for (o, n) in f.originals.iter().zip(&f.counts) {
                *count.entry(o).or_default() += n;
            }
        }
        let mut originals: Vec<(&Option<String>, usize)> = count.into_iter().collect();
        originals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let mut tree = Tree {
            started_ns,
            originals: originals.into_iter().map(|(o, _)| o.clone()).collect(),
            entries: Vec::with_capacity(found.iter().map(|f| f.plain.len()).sum()),
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
            let to_global: Vec<u32> = f.originals.iter().map(|o| global[o]).collect();
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
        let mut cache = None;
        for (dir, name, kind, current) in careful {
            let opened = dir_node(host, &root_node, &dir, &mut cache)
                .and_then(|d| Ok((host.open_child(d, &name)?, host.stat_at(d, &name))));
            let (node, meta) = match opened {
                Ok(o) => o,
                Err(e) if vanished(&e) => continue,
                Err(e) => return Err(Error::host("open", root.join(&dir.rel).join(&name), e)),
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
                None => match self.marks.read(host, &node, model) {
                    Some(m) => m.original,
                    None => attr.original_for(node.path(), current),
                },
            };
            let g = match global.get(&original) {
                Some(&g) => g,
                None => {
                    tree.originals.push(original.clone());
                    let g = (tree.originals.len() - 1) as u32;
                    global.insert(original, g);
                    g
                }
            };
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
        debug!(root = %root.display(), model, entries = tree.entries.len(), originals = tree.originals.len(), ms = started.elapsed().as_millis() as u64, "share read");
        let mut left: Vec<LeftOut> = mounts
            .into_iter()
            .map(|m| {
                (
                    m,
                    "a mount point inside the share: another filesystem is never relabeled",
                )
            })
            .collect();
        left.extend(linked_out.into_iter().map(|rel| {
            (rel, "a file with another name outside the share (a hard link): changing it would change that file too, so it is never relabeled through the share")
        }));
        Ok((
            tree,
            ShareWork {
                root: root_node,
                pending,
            },
            left,
        ))
    }

    /// Make a share's changes on every core. Returns the entries changed, with the ctime
    /// recorded for those whose original grants privileges, and the first error (the caller
    /// puts back what was changed).
    pub(super) fn apply_share(
        &self,
        attr: &Arc<dyn FileAttr>,
        work: &ShareWork,
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
        let chunk = work.pending.len().div_ceil(n).max(1);
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
            let handles: Vec<_> = work
                .pending
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
                            let r = dir_node(host, &work.root, &p.dir, &mut cache).and_then(|d| {
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
                                    let path = work.root.path().join(&e.rel);
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
        debug!(root = %work.root.path().display(), model, changed = applied.len(), ms = started.elapsed().as_millis() as u64, "share changed");
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
                attr.write_at(host, d, name_of(e), p.kind, tree.original(e))?;
                if e.marked {
                    self.marks.remove_at(host, d, name_of(e), attr.model());
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
        let by_ino: HashMap<u64, usize> = tree
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.ino, i))
            .collect();
        let seen: Vec<AtomicBool> = tree
            .entries
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        let root_original = root_item.original.as_deref();
        let own = opts.own_label(attr.model());
        let root_path = root_node.path().to_owned();
        let mounts = tree::mounts_below(host, &root_path);

        #[derive(Default)]
        struct Out {
            failed: Vec<(PathBuf, Error)>,
            moved: Vec<(PathBuf, PathBuf)>,
            reclaimed: Vec<PathBuf>,
            left: Vec<(PathBuf, String)>,
            dropped: Vec<PathBuf>,
            raced: usize,
        }
        let visit = |o: &mut Out, dir: &Arc<Dir>, node: &Node, e: &DirEntry, kind: FileKind| {
            let path = || root_path.join(&dir.rel).join(&e.name);
            let known = by_ino.get(&e.ino).copied().filter(|&i| {
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
            if let Some(i) = known {
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
                if let Some(safe) = guard {
                    if attr.read_at(host, node, &e.name).ok().flatten().as_deref() == original {
                        // Already back (a restore cut short, or never changed).
                        if entry.marked {
                            self.marks.remove_at(host, node, &e.name, attr.model());
                        }
                        return Ok(());
                    }
                    let changed = match (root_item.state, entry.ctime_ns) {
                        (ItemState::Applied, Some(t)) => match host.stat_at(node, &e.name) {
                            Ok(m) => m.ctime_ns != t,
                            Err(err) if vanished(&err) => return Ok(()),
                            Err(err) => {
                                o.failed.push((path(), Error::host("inspect", path(), err)));
                                return Ok(());
                            }
                        },
                        _ => false,
                    };
                    if changed {
                        warn!(path = %path().display(), "the file changed while the VM held it; its setuid/setgid bits are not given back");
                        o.dropped.push(path());
                        value = Some(safe);
                    }
                }
                match attr.write_at(host, node, &e.name, kind, value.as_deref()) {
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
                    self.marks.remove_at(host, node, &e.name, attr.model());
                }
                let now = dir.rel.join(&e.name);
                if now != entry.rel {
                    o.moved
                        .push((root_path.join(&entry.rel), root_path.join(now)));
                }
                return Ok(());
            }
            if !opts.reclaim {
                return Ok(());
            }
            let current = match attr.read_at(host, node, &e.name) {
                Ok(v) => v,
                Err(_) => return Ok(()),
            };
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
                    }
                }
            }
            if let Some(v) = attr.reclaim(current.as_deref(), root_original, own, &path(), kind) {
                if !attr.matches(current.as_deref(), &v) {
                    match attr.write_at(host, node, &e.name, kind, Some(&v)) {
                        Ok(()) => o.reclaimed.push(path()),
                        Err(err) if cannot_hold(&err) || vanished(&err) => {}
                        // Still the VM's: the share is not settled, so the domain is held
                        // and its identities stay reserved.
                        Err(err) => o
                            .failed
                            .push((path(), Error::host("take back from the VM", path(), err))),
                    }
                }
            }
            Ok(())
        };
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
            Ok((outs, _, raced)) => {
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
                }
            }
            Err(e) => {
                let it = root_item.without_tree();
                out.failed.push((it, e));
                return false;
            }
        }
        let missing = seen.iter().filter(|s| !s.load(Ordering::Relaxed)).count();
        if missing > 0 {
            info!(root = %root_path.display(), missing, "remembered share entries no longer in the share (deleted by the VM); forgotten");
        }
        settled
    }
}

//! Putting originals back on the inodes svirt changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use super::Engine;
use crate::attr::FileAttr;
use crate::db::{Item, ItemState};
use crate::driver::LabelRecord;
use crate::error::{Error, Result};
use crate::host::{cannot_hold, FileKind, FileMeta, Node};
use crate::safe;
use crate::tree;

/// How a restore treats what it finds.
pub struct RestoreOptions<'a> {
    /// Directory shares: entries svirt did not change but that carry a VM's identity (the VM
    /// created or replaced them) get the share root's original owner and the default label.
    pub reclaim: bool,
    /// Whether an inode (device, inode number) is one svirt manages for another resource; such
    /// an entry found in a share (a hard link) is never changed through the share.
    pub managed: Option<&'a (dyn Fn(u64, u64) -> bool + Sync)>,
    /// The labels of the domain being stopped: an entry that carries its identity counts as the
    /// VM's even where the driver did not draw it (a static label), see [`FileAttr::carries_vm`].
    pub own: &'a [LabelRecord],
    /// Every remembered share entry is opened and proved the inode recorded before it is
    /// written (a rollback, while whatever renamed entries under the start may go on);
    /// otherwise only those whose original has setuid/setgid bits.
    pub by_inode: bool,
}

impl RestoreOptions<'_> {
    /// The stopping domain's label of `model`, if any.
    pub(crate) fn own_label(&self, model: &str) -> Option<&str> {
        self.own
            .iter()
            .find(|l| l.model == model)
            .map(|l| l.label.as_str())
    }
}

impl std::fmt::Debug for RestoreOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreOptions")
            .field("reclaim", &self.reclaim)
            .field("managed", &self.managed.is_some())
            .field("own", &self.own)
            .field("by_inode", &self.by_inode)
            .finish()
    }
}

impl RestoreOptions<'_> {
    /// Undoing a failed apply: the VM never ran.
    pub fn rollback() -> Self {
        RestoreOptions {
            reclaim: false,
            managed: None,
            own: &[],
            by_inode: true,
        }
    }
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct Restored {
    /// Items whose original is back, or whose inode no longer exists: to forget.
    pub done: Vec<i64>,
    /// Items that could not be put back, with why.
    pub failed: Vec<(Item, Error)>,
    /// Inodes found somewhere other than where svirt changed them: (then, now).
    pub moved: Vec<(PathBuf, PathBuf)>,
    /// Share entries the VM created or replaced, given the share's original owner or label.
    pub reclaimed: Vec<PathBuf>,
    /// Entries left alone, and why.
    pub left: Vec<(PathBuf, String)>,
    /// Entries of a share whose one-pass start was cut short, put back from the entries
    /// themselves (their marks, or the share's common original), and remembered entries found
    /// moving (left for another walk).
    pub undone: usize,
    /// Inodes changed while the VM held them, whose setuid/setgid bits were not given back.
    pub privileges_dropped: Vec<PathBuf>,
}

fn full_path(item: &Item) -> PathBuf {
    if item.rel.as_os_str().is_empty() {
        item.root.clone()
    } else {
        item.root.join(&item.rel)
    }
}

/// Where an item's inode is.
enum Located {
    Here(Node),
    Moved(Node, PathBuf),
    Gone,
}

impl Engine {
    fn same_inode(&self, node: &Node, meta: &FileMeta, item: &Item) -> bool {
        if (meta.dev, meta.ino) != (item.ident.dev, item.ident.ino) {
            return false;
        }
        match &item.ident.handle {
            // The inode number may have been reused by a new file; the handle (which carries
            // the generation) may not.
            Some(h) => self.host.handle(node).ok().flatten().as_ref() == Some(h),
            None => true,
        }
    }

    /// A directory on the filesystem `dev` near `path`, for `open_by_handle_at`.
    fn mount_near(&self, path: &Path, dev: u64) -> Option<Node> {
        for a in path.ancestors() {
            if let Ok(n) = self.host.open_node(a) {
                if self
                    .host
                    .meta(&n)
                    .is_ok_and(|m| m.dev == dev && m.kind == FileKind::Dir)
                {
                    return Some(n);
                }
            }
        }
        None
    }

    fn by_handle(&self, item: &Item, near: &Path) -> Result<Located> {
        let path = full_path(item);
        let Some(h) = &item.ident.handle else {
            return Err(Error::InodeLost {
                path,
                reason: "the path now names another inode, and this filesystem gives no file handles to find the one svirt changed",
            });
        };
        let Some(mount) = self.mount_near(near, item.ident.dev) else {
            return Err(Error::InodeLost {
                path,
                reason: "its filesystem is no longer reachable",
            });
        };
        match self.host.open_by_handle(&mount, h) {
            Ok(node) => {
                let meta = self
                    .host
                    .meta(&node)
                    .map_err(|e| Error::host("inspect", node.path(), e))?;
                if (meta.dev, meta.ino) != (item.ident.dev, item.ident.ino) {
                    return Err(Error::InodeLost {
                        path,
                        reason: "its file handle opens another inode",
                    });
                }
                let now = self
                    .host
                    .current_path(&node)
                    .unwrap_or_else(|_| node.path().to_owned());
                Ok(Located::Moved(node, now))
            }
            Err(e) if e.raw_os_error() == Some(libc::ESTALE) => Ok(Located::Gone),
            Err(e) => Err(Error::host("open by file handle", path, e)),
        }
    }

    fn locate(&self, item: &Item) -> Result<Located> {
        let path = full_path(item);
        match safe::open_resource(self.host.as_ref(), &path, None) {
            Ok(o) if self.same_inode(&o.node, &o.meta, item) => Ok(Located::Here(o.node)),
            Ok(_) => self.by_handle(item, &path),
            Err(e) if e.errno() == Some(libc::ENOENT) => match self.by_handle(item, &path) {
                // Without a handle, a path that is gone is an inode that is gone only if the
                // inode is not found anywhere; we cannot know, so say so.
                Err(Error::InodeLost { .. }) if item.ident.handle.is_none() => {
                    warn!(path = %path.display(), "resource is gone; forgetting its original");
                    Ok(Located::Gone)
                }
                other => other,
            },
            // Refused (a symlink to a system file, a directory where a file was): the inode
            // svirt changed is elsewhere, if anywhere.
            Err(_) => self.by_handle(item, &path),
        }
    }

    /// Decide, before anything is restored, whether each guarded item (an original with setuid
    /// or setgid bits, exposed to a VM) may get its privileges back: its inode's ctime must be
    /// the one recorded right after svirt's change. Items found changed get the original
    /// without privileges; items found unchanged are cleared of their guard. Returns the items
    /// so decided (for the caller to record before restoring, so a crash mid-restore cannot
    /// turn svirt's own restore into "a change") and the paths whose privileges were dropped.
    pub fn verify_guards(
        &self,
        items: &mut [Item],
        attr_for: &dyn Fn(&str) -> Option<Arc<dyn FileAttr>>,
    ) -> (Vec<Item>, Vec<PathBuf>) {
        let mut decided = Vec::new();
        let mut dropped = Vec::new();
        for item in items.iter_mut() {
            if item.state == ItemState::Applied && item.tree.is_some() {
                if let Some(attr) = attr_for(&item.model) {
                    let (any, d) = self.verify_share_guards(attr.as_ref(), item);
                    dropped.extend(d);
                    if any {
                        decided.push(item.clone());
                    }
                }
            }
            let (Some(recorded), ItemState::Applied) = (item.ctime_ns, item.state) else {
                continue;
            };
            let Some(attr) = attr_for(&item.model) else {
                continue;
            };
            let Some(safe) = item
                .original
                .as_deref()
                .and_then(|o| attr.without_privileges(o))
            else {
                continue;
            };
            let node = match self.locate(item) {
                Ok(Located::Here(n)) | Ok(Located::Moved(n, _)) => n,
                _ => continue,
            };
            let Ok(meta) = self.host.meta(&node) else {
                continue;
            };
            // Already back (a stop that could not record its verdicts, cut short): its own
            // restore moved the ctime, and the original stands.
            let back = item.original.is_some()
                && attr.read(self.host.as_ref(), &node).ok().flatten() == item.original;
            if meta.ctime_ns != recorded && !back {
                warn!(path = %node.path().display(), "the file changed while the VM held it; its setuid/setgid bits are not given back");
                dropped.push(node.path().to_owned());
                item.original = Some(safe);
            }
            item.ctime_ns = None;
            decided.push(item.clone());
        }
        (decided, dropped)
    }

    /// Put `item`'s original back on `node`, which is the item's inode.
    fn put_back(
        &self,
        attr: &dyn FileAttr,
        node: &Node,
        item: &Item,
        out: &mut Restored,
    ) -> Result<()> {
        let host = self.host.as_ref();
        let current = attr.read(host, node).unwrap_or(None);
        if item.original.is_some() && current == item.original {
            // Already back (an earlier restore that was cut short).
            self.marks.remove(host, node, attr.model());
            return Ok(());
        }
        let mut value = item.original.clone();
        if let Some(safe) = item
            .original
            .as_deref()
            .and_then(|o| attr.without_privileges(o))
        {
            let meta = host
                .meta(node)
                .map_err(|e| Error::host("inspect", node.path(), e))?;
            // Exposed to the VM and changed since svirt's change (a write, a chmod, a new
            // xattr): the inode's content is not what it was, so no setuid/setgid bit. (An item
            // without a guard ctime was verified before the restore began, or never exposed.)
            // A change cut short recorded no ctime: if what it left lets other domains write
            // (a static uid they share), they may have.
            if match item.state {
                ItemState::Applied => item.ctime_ns.is_some_and(|t| t != meta.ctime_ns),
                ItemState::Intent => cut_short_exposed(attr, current.as_deref(), &item.applied),
            } {
                warn!(path = %node.path().display(), "the file changed while the VM held it; its setuid/setgid bits are not given back");
                out.privileges_dropped.push(node.path().to_owned());
                value = Some(safe);
            }
        }
        match attr.write(host, node, value.as_deref()) {
            Ok(()) => {}
            Err(e) if cannot_hold(&e) => {}
            Err(e) => return Err(Error::host("restore the attribute of", node.path(), e)),
        }
        self.marks.remove(host, node, attr.model());
        crate::failpoint::hit("restore.put-back");
        info!(path = %node.path().display(), model = attr.model(), original = ?item.original, "restored");
        Ok(())
    }

    fn restore_one(&self, attr: &dyn FileAttr, item: &Item, out: &mut Restored) -> Result<()> {
        match self.locate(item)? {
            Located::Gone => Ok(()),
            Located::Here(node) => self.put_back(attr, &node, item, out),
            Located::Moved(node, now) => {
                info!(then = %full_path(item).display(), now = %now.display(), "restoring an inode that moved");
                out.moved.push((full_path(item), now));
                self.put_back(attr, &node, item, out)
            }
        }
    }

    /// Restore `items` (in the order given, group by group: a directory share's entries before
    /// its root). Best effort: every failure is returned with its item.
    pub fn restore(
        &self,
        items: &[Item],
        attr_for: &dyn Fn(&str) -> Option<Arc<dyn FileAttr>>,
        opts: &RestoreOptions<'_>,
    ) -> Restored {
        let mut out = Restored::default();
        let mut groups: Vec<((String, PathBuf), Vec<&Item>)> = Vec::new();
        for it in items {
            let key = (it.model.clone(), it.root.clone());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, g)) => g.push(it),
                None => groups.push((key, vec![it])),
            }
        }
        for ((model, root), group) in groups {
            let Some(attr) = attr_for(&model) else {
                for it in group {
                    out.failed.push((
                        it.clone(),
                        Error::ModelNotInStack {
                            path: full_path(it),
                            model: model.clone(),
                        },
                    ));
                }
                continue;
            };
            let root_item = group.iter().find(|i| i.rel.as_os_str().is_empty()).copied();
            let mut settled = true;
            let entries: Vec<&Item> = group
                .iter()
                .filter(|i| !i.rel.as_os_str().is_empty())
                .copied()
                .collect();
            if entries.is_empty() {
                if let Some(it) = root_item.filter(|it| it.tree.is_some() || opts.reclaim) {
                    self.restore_share_root(attr.as_ref(), it, opts, &mut out);
                    continue;
                }
            } else {
                // Entries kept one row each (a state imported from an older svirt).
                settled =
                    self.restore_tree(attr.as_ref(), &root, root_item, &entries, opts, &mut out);
            }
            if let Some(it) = root_item {
                match self.restore_one(attr.as_ref(), it, &mut out) {
                    // Not settled: the root's item is among the failures already.
                    Ok(()) if !settled => {}
                    Ok(()) => out.done.push(it.id),
                    Err(e) => out.failed.push((it.clone(), e)),
                }
            }
        }
        out
    }

    /// A share root kept with its tree: the entries first, on every core, then the root. The
    /// root's item is done only once every remembered entry is settled.
    fn restore_share_root(
        &self,
        attr: &dyn FileAttr,
        it: &Item,
        opts: &RestoreOptions<'_>,
        out: &mut Restored,
    ) {
        let node = match self.locate(it) {
            Ok(Located::Gone) => {
                out.done.push(it.id);
                return;
            }
            Ok(Located::Here(node)) => node,
            Ok(Located::Moved(node, now)) => {
                info!(then = %full_path(it).display(), now = %now.display(), "restoring a share that moved");
                out.moved.push((full_path(it), now));
                node
            }
            Err(e) => {
                out.failed.push((it.clone(), e));
                return;
            }
        };
        let node = Arc::new(node);
        let is_dir = self.host.meta(&node).is_ok_and(|m| m.kind == FileKind::Dir);
        let settled = !is_dir || self.restore_share(attr, it, node.clone(), opts, out);
        match self.put_back(attr, &node, it, out) {
            Ok(()) if settled => {
                self.marks
                    .remove_entries(self.host.as_ref(), &node, attr.model());
                out.done.push(it.id);
            }
            Ok(()) => {}
            Err(e) => out.failed.push((it.clone(), e)),
        }
    }

    /// Decide the guarded entries of a share (see [`Engine::verify_guards`]): each found at the
    /// path it was changed at, with the inode number recorded, is judged by its ctime. Returns
    /// whether any entry was decided, and the paths whose privileges were dropped.
    fn verify_share_guards(&self, attr: &dyn FileAttr, item: &mut Item) -> (bool, Vec<PathBuf>) {
        let mut dropped = Vec::new();
        if !item
            .tree
            .as_ref()
            .is_some_and(|t| t.entries.iter().any(|e| e.ctime_ns.is_some()))
        {
            return (false, dropped);
        }
        let root = match self.locate(item) {
            Ok(Located::Here(n)) | Ok(Located::Moved(n, _)) => n,
            _ => return (false, dropped),
        };
        let Some(tree) = item.tree.as_mut() else {
            return (false, dropped);
        };
        let host = self.host.as_ref();
        let t = Arc::make_mut(tree);
        let mut decided = false;
        // A file with two names in the share is recorded under each, with the ctime after
        // each name's change: the last is the one after svirt's last change of the inode.
        let mut last: HashMap<u64, i64> = HashMap::new();
        for e in &t.entries {
            if let Some(c) = e.ctime_ns {
                let l = last.entry(e.ino).or_insert(c);
                *l = (*l).max(c);
            }
        }
        for i in 0..t.entries.len() {
            if t.entries[i].ctime_ns.is_none() {
                continue;
            }
            let recorded = last[&t.entries[i].ino];
            let rel = t.entries[i].rel.clone();
            let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                continue;
            };
            let Ok(below) = tree::open_below(host, &root, parent) else {
                continue;
            };
            let dir = below.as_ref().unwrap_or(&root);
            let Ok(meta) = host.stat_at(dir, name) else {
                continue;
            };
            if meta.ino != t.entries[i].ino {
                continue;
            }
            let original = t.original(&t.entries[i]).map(str::to_owned);
            let back =
                original.is_some() && attr.read_at(host, dir, name).ok().flatten() == original;
            if meta.ctime_ns != recorded && !back {
                if let Some(safe) = original.as_deref().and_then(|o| attr.without_privileges(o)) {
                    warn!(path = %root.path().join(&rel).display(), "the file changed while the VM held it; its setuid/setgid bits are not given back");
                    dropped.push(root.path().join(&rel));
                    let idx = match t.originals.iter().position(|o| o.as_deref() == Some(&safe)) {
                        Some(k) => k,
                        None => {
                            t.originals.push(Some(safe));
                            t.originals.len() - 1
                        }
                    };
                    t.entries[i].original = idx as u32;
                }
            }
            t.entries[i].ctime_ns = None;
            decided = true;
        }
        (decided, dropped)
    }

    /// Walk a share: remembered inodes go back to their originals wherever they moved inside
    /// the tree; entries the VM created or replaced are reclaimed; remembered inodes not found
    /// are looked up by handle. Returns whether every entry the VM had was taken back.
    fn restore_tree(
        &self,
        attr: &dyn FileAttr,
        root: &Path,
        root_item: Option<&Item>,
        entries: &[&Item],
        opts: &RestoreOptions<'_>,
        out: &mut Restored,
    ) -> bool {
        let mut settled = true;
        let mut by_inode: HashMap<(u64, u64), &Item> = entries
            .iter()
            .map(|i| ((i.ident.dev, i.ident.ino), *i))
            .collect();
        let opened = safe::open_resource(self.host.as_ref(), root, None)
            .ok()
            .filter(|o| o.meta.kind == FileKind::Dir)
            .filter(|o| root_item.is_none_or(|ri| self.same_inode(&o.node, &o.meta, ri)));
        if let Some(root_node) = opened.map(|o| o.node) {
            let root_original = root_item.and_then(|r| r.original.clone());
            let walked = tree::walk_all(self.host.as_ref(), &root_node, &mut |rel, node, meta| {
                let key = (meta.dev, meta.ino);
                if let Some(item) = by_inode.get(&key).copied() {
                    if self.same_inode(node, meta, item) {
                        by_inode.remove(&key);
                        if item.rel != rel {
                            out.moved.push((root.join(&item.rel), root.join(rel)));
                        }
                        match self.put_back(attr, node, item, out) {
                            Ok(()) => out.done.push(item.id),
                            Err(e) => out.failed.push((item.clone(), e)),
                        }
                        return Ok(());
                    }
                }
                if !opts.reclaim {
                    return Ok(());
                }
                let current = attr.read(self.host.as_ref(), node).unwrap_or(None);
                if meta.nlink > 1
                    && meta.kind != FileKind::Dir
                    && attr.carries_vm(current.as_deref(), opts.own_label(attr.model()))
                {
                    if let Some(why) =
                        super::share::linked_elsewhere(attr, current.as_deref(), meta, opts)
                    {
                        out.left.push((node.path().to_owned(), why.into()));
                        return Ok(());
                    }
                }
                if let Some(v) = attr.reclaim(
                    current.as_deref(),
                    root_original.as_deref(),
                    opts.own_label(attr.model()),
                    node.path(),
                    meta.kind,
                ) {
                    if !attr.matches(current.as_deref(), &v) {
                        match attr.write(self.host.as_ref(), node, Some(&v)) {
                            Ok(()) => out.reclaimed.push(node.path().to_owned()),
                            Err(e) if cannot_hold(&e) => {}
                            // Still the VM's: the share is not settled, so the domain is
                            // held and its identities stay reserved.
                            Err(e) => match root_item {
                                Some(it) => {
                                    settled = false;
                                    out.failed.push((
                                        it.clone(),
                                        Error::host("take back from the VM", node.path(), e),
                                    ));
                                }
                                None => out.left.push((
                                    node.path().to_owned(),
                                    format!("cannot take it back from the VM: {e}"),
                                )),
                            },
                        }
                    }
                }
                Ok(())
            });
            if let Err(e) = walked {
                warn!(path = %root.display(), error = %crate::display_chain(&e), "walking the share failed; looking remembered entries up by handle");
            }
        }
        for item in by_inode.into_values() {
            match self.locate(item) {
                Ok(Located::Gone) => out.done.push(item.id),
                Ok(Located::Here(node)) => match self.put_back(attr, &node, item, out) {
                    Ok(()) => out.done.push(item.id),
                    Err(e) => out.failed.push((item.clone(), e)),
                },
                Ok(Located::Moved(node, now)) => {
                    out.moved.push((full_path(item), now));
                    match self.put_back(attr, &node, item, out) {
                        Ok(()) => out.done.push(item.id),
                        Err(e) => out.failed.push((item.clone(), e)),
                    }
                }
                Err(e) => out.failed.push((item.clone(), e)),
            }
        }
        settled
    }
}

/// Whether a change cut short (a killed or failed start) left an inode writable by other
/// domains: it holds the applied value, or its first step, and that value lets others write.
pub(super) fn cut_short_exposed(attr: &dyn FileAttr, current: Option<&str>, applied: &str) -> bool {
    attr.partly_applied(current, applied) && attr.others_may_write(applied)
}

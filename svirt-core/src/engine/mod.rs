//! Applying and restoring file attributes with remembered originals, per inode.
//!
//! An operation runs in three steps, each its own call, so the lifecycle can put the first and
//! the last into one database transaction each:
//! 1. [`Engine::prepare`] (inside the intent transaction): resolve and open every resource once,
//!    read every original, refuse conflicts with other domains, and insert one [`Item`] per inode
//!    it is about to change, with the inode's identity (device, inode number, file handle).
//! 2. [`Engine::apply`]: change the files, each through the descriptor of what was checked; on
//!    failure, put back what was changed (no database write is needed for that).
//! 3. the completion transaction marks the items applied.
//!
//! Restoring ([`Engine::restore`]) acts on the inode svirt changed, never on whatever a path
//! names now: an inode that moved is found by its file handle (or, inside a directory share, by
//! walking the share), an inode replaced by another is never given the original, and an inode
//! changed while the VM held it never gets setuid or setgid bits back.

mod marks;
mod restore;
mod share;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

pub use marks::{Mark, Marks, XATTR_PREFIX};
pub use restore::{RestoreOptions, Restored};
pub use share::{Journal, JournalWrite};

use crate::attr::{FileAttr, Plan};
use crate::db::{Ident, Item, ItemState, TreeRoot, Tx};
use crate::domain::{Access, Derive, Resource, ResourceKind};
use crate::driver::{Excluded, ResourceReport};
use crate::error::{Error, Result};
use crate::host::{is_unsupported, FileKind, FileMeta, Host, Node};
use crate::safe::{self, Opened};

/// Progress of a long relabel: (items done, items in all).
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// How many times a failed one-pass start sweeps its share for entries still holding its value.
const SWEEPS: usize = 8;

/// One planned change: a resource, one driver's attribute, and what the driver wants for it.
#[derive(Clone, Debug)]
pub struct Change {
    pub res: Resource,
    pub attr: Arc<dyn FileAttr>,
    pub plan: Plan,
    /// The driver drew the label for this domain alone (a dynamic label, not a static one an
    /// administrator may have put on files before): a share given a value that carries it can
    /// be changed in one pass (see [`crate::db::Tree::in_progress`]).
    pub drawn: bool,
}

/// Changes and restores file attributes through the host seam.
#[derive(Clone)]
pub struct Engine {
    host: Arc<dyn Host>,
    marks: Arc<Marks>,
    progress: Option<ProgressFn>,
    /// Threads for directory shares; `None`: every core, at most 4.
    threads: Option<usize>,
    /// svirt's state directory, never handed to a VM.
    state_dir: Option<PathBuf>,
    /// What is never handed to a VM by inode, found at the first resource that needs it.
    protected: Arc<std::sync::OnceLock<safe::Protected>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// One resource of an operation, between its intent and its completion.
struct Step {
    attr: Arc<dyn FileAttr>,
    root: PathBuf,
    node: Arc<Node>,
    value: String,
    /// The root's item (an index into [`Prepared::items`]).
    root_item: usize,
    /// A directory share's entries to change.
    share: Option<share::ShareWork>,
    /// Index into [`Prepared::reports`].
    report: usize,
}

/// An operation whose intent is recorded: the items it inserted and what it will change.
pub struct Prepared {
    /// One report per planned change, in order.
    pub reports: Vec<ResourceReport>,
    /// Every item the operation inserted, with its database id.
    pub items: Vec<Item>,
    steps: Vec<Step>,
    /// Whether each item's change was made.
    applied: Vec<bool>,
    /// Per step, the share entries changed (indices into the root item's tree).
    share_applied: Vec<Vec<usize>>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("reports", &self.reports)
            .field("items", &self.items.len())
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Ids and guard ctimes of the items whose change was made.
    pub fn applied_items(&self) -> (Vec<i64>, Vec<Option<i64>>) {
        self.items
            .iter()
            .zip(&self.applied)
            .filter(|(_, a)| **a)
            .map(|(i, _)| (i.id, i.ctime_ns))
            .unzip()
    }

    /// The trees of the share roots changed: their entries, read and changed after the intent
    /// (with the guard ctimes of privileged originals), to keep with the completion.
    pub fn changed_trees(&self) -> Vec<(i64, &crate::db::Tree)> {
        self.steps
            .iter()
            .filter_map(|s| {
                let it = &self.items[s.root_item];
                let t = it.tree.as_deref()?;
                self.applied[s.root_item].then_some((it.id, t))
            })
            .collect()
    }

    /// Ids of the items whose change was not made (the file already changed under us, or
    /// its filesystem cannot hold the attribute): they are dropped at completion.
    pub fn unapplied_items(&self) -> Vec<i64> {
        self.items
            .iter()
            .zip(&self.applied)
            .filter(|(_, a)| !**a)
            .map(|(i, _)| i.id)
            .collect()
    }
}

fn report(res: &Resource, model: &str, label: &str, skipped: Option<String>) -> ResourceReport {
    ResourceReport {
        path: res.path.clone(),
        model: model.to_owned(),
        label: label.to_owned(),
        skipped: skipped.is_some(),
        reason: skipped,
        given: None,
        excluded: Vec::new(),
    }
}

/// The kind whose file-type rule a resource is opened under: a device node found on the host for
/// a disk or a host device (an NVMe disk's VFIO group, a USB or SCSI generic node) is a host
/// device, whatever element named it.
fn opened_as(res: &Resource) -> ResourceKind {
    match res.derive {
        Some(
            Derive::PciGroup { .. }
            | Derive::MdevGroup { .. }
            | Derive::Usb { .. }
            | Derive::ScsiGeneric { .. },
        ) => ResourceKind::Hostdev,
        _ => res.kind,
    }
}

/// The filesystem cannot hold the attribute.
fn unsupported(e: &Error) -> bool {
    e.errno()
        .is_some_and(|n| is_unsupported(&std::io::Error::from_raw_os_error(n)))
}

/// A report for a resource opened at `path` (resolved) from the given `res.path`.
fn opened_report(res: &Resource, path: &Path, model: &str, label: &str) -> ResourceReport {
    let mut r = report(res, model, label, None);
    r.path = path.to_owned();
    r.given = (res.path != path).then(|| res.path.clone());
    r
}

fn ident_of(host: &dyn Host, node: &Node, meta: &FileMeta) -> Result<Ident> {
    let handle = host
        .handle(node)
        .map_err(|e| Error::host("read the file handle of", node.path(), e))?;
    Ok(Ident {
        dev: meta.dev,
        ino: meta.ino,
        handle,
    })
}

impl Engine {
    /// An engine over `host`.
    pub fn new(host: Arc<dyn Host>) -> Self {
        Engine {
            host,
            marks: Arc::new(Marks::default()),
            progress: None,
            threads: None,
            state_dir: None,
            protected: Arc::default(),
        }
    }

    /// Refuse svirt's state directory `dir` (and its files, and a share holding it) as a
    /// resource.
    pub fn with_state_dir(mut self, dir: &Path) -> Self {
        self.state_dir = Some(dir.to_owned());
        self.protected = Arc::default();
        self
    }

    /// Refuse what [`safe::Protected`] protects, whatever path reached it.
    pub fn check_protected(&self, opened: &Opened) -> Result<()> {
        self.protected
            .get_or_init(|| safe::Protected::new(self.host.as_ref(), self.state_dir.as_deref()))
            .check(self.host.as_ref(), opened)
    }

    /// Relabel directory shares on `threads` threads (`None` or 0: every core, at most 4).
    pub fn with_threads(mut self, threads: Option<usize>) -> Self {
        self.threads = threads.filter(|&n| n > 0);
        self
    }

    /// Report progress of directory relabels.
    pub fn with_progress(mut self, progress: Option<ProgressFn>) -> Self {
        self.progress = progress;
        self
    }

    /// The host.
    pub fn host(&self) -> &Arc<dyn Host> {
        &self.host
    }

    /// The `trusted.svirt.*` marks.
    pub fn marks(&self) -> &Marks {
        &self.marks
    }

    fn read(&self, attr: &dyn FileAttr, node: &Node) -> Result<Option<String>> {
        attr.read(self.host.as_ref(), node)
            .or_else(|e| if is_unsupported(&e) { Ok(None) } else { Err(e) })
            .map_err(|e| Error::host("read the attribute of", node.path(), e))
    }

    /// Record the intent of `changes` for `holder` in `tx`: open every resource, read the
    /// originals, check other domains' claims, and insert the items. Nothing on disk changes.
    /// Holders for which `dead` is true (domains of an earlier boot) no longer count.
    pub fn prepare(
        &self,
        tx: &Tx<'_>,
        holder: &str,
        changes: Vec<Change>,
        dead: &dyn Fn(&str) -> bool,
    ) -> Result<Prepared> {
        let mut p = Prepared {
            reports: Vec::new(),
            items: Vec::new(),
            steps: Vec::new(),
            applied: Vec::new(),
            share_applied: Vec::new(),
        };
        // The share roots of each model the changes touch, read once: every resource is
        // checked against them (a dead domain's share not yet recovered, another domain's
        // share around or inside it).
        let mut roots: HashMap<String, Vec<TreeRoot>> = HashMap::new();
        for c in &changes {
            let model = c.attr.model();
            if !roots.contains_key(model) {
                roots.insert(model.to_owned(), tx.tree_roots(model)?);
            }
        }
        for c in changes {
            let model = c.attr.model().to_owned();
            let shares = roots.get(&model).map_or(&[][..], Vec::as_slice);
            let value = match &c.plan {
                Plan::Skip(reason) => {
                    p.reports
                        .push(report(&c.res, &model, "", Some(reason.clone())));
                    continue;
                }
                Plan::Set(v) => v.clone(),
            };
            let opened =
                safe::open_resource(self.host.as_ref(), &c.res.path, Some(opened_as(&c.res)))?;
            self.check_protected(&opened)?;
            let Opened {
                path,
                node,
                meta,
                shared_device,
                ..
            } = opened;
            // Records keep paths as text: refused before anything changes, never reported as a
            // corrupt state.
            for p in [&path, &c.res.path] {
                if p.to_str().is_none() {
                    return Err(Error::PathRefused {
                        path: p.clone(),
                        reason: "its path is not valid UTF-8, which svirt's records cannot hold; give the resource a path that is".into(),
                    });
                }
            }
            if let Some(why) = shared_device {
                info!(path = %path.display(), model, reason = %why, "left as it is");
                let mut r = opened_report(&c.res, &path, &model, "");
                r.skipped = true;
                r.reason = Some(why);
                p.reports.push(r);
                continue;
            }
            let current = self.read(c.attr.as_ref(), &node)?;
            let ident = ident_of(self.host.as_ref(), &node, &meta)?;
            if let Some((root, other)) =
                unrecovered_share(shares, (&path, meta.dev, c.res.is_tree()), dead)
            {
                return Err(Error::ShareNotRecovered {
                    path: root,
                    domain: holder.to_owned(),
                    other,
                });
            }
            let exclusive = c.res.access == Access::Private;
            let original = match tx.item_by_inode(&model, ident.dev, ident.ino)? {
                Some(it) if it.holders.iter().any(|h| !dead(h)) => {
                    let other = it.holders.iter().find(|h| *h != holder && !dead(h));
                    match other {
                        Some(other) if exclusive || it.applied != value => {
                            return Err(Error::ResourceConflict {
                                path,
                                model,
                                domain: holder.to_owned(),
                                other: other.clone(),
                                label: it.applied,
                                hint: if exclusive {
                                    " (declare it shareable in both domains to share it)"
                                } else {
                                    ""
                                },
                            });
                        }
                        _ => {}
                    }
                    // Another domain applied the same value: share it, change nothing.
                    if !it.holders.iter().any(|h| h == holder) {
                        tx.add_holder(it.id, holder)?;
                    }
                    p.reports.push(opened_report(&c.res, &path, &model, &value));
                    continue;
                }
                // Left by a domain that is gone (an earlier boot's): the recorded original stays
                // the original.
                Some(it) => {
                    tx.delete_items(&[it.id])?;
                    it.original
                }
                None if c.attr.carries_vm(current.as_deref(), None) => {
                    // Perhaps an entry of another domain's share (a hard link its guest made,
                    // or a file inside it): never taken from a running domain.
                    if let Some((other, applied)) =
                        held_through_share(tx, shares, (ident.dev, ident.ino), holder, dead)?
                    {
                        return Err(Error::ResourceConflict {
                            path,
                            model,
                            domain: holder.to_owned(),
                            other,
                            label: applied,
                            hint: " (it is inside, or linked into, that domain's directory share)",
                        });
                    }
                    match self.marks.read(self.host.as_ref(), &node, &model) {
                        Some(m) => held_original(c.attr.as_ref(), meta.kind, m.original),
                        None => c.attr.original_for(&path, current.clone()),
                    }
                }
                None => match self.marks.read(self.host.as_ref(), &node, &model) {
                    Some(m) => {
                        warn!(path = %path.display(), model, "svirt marks without a database entry (the state was lost?); keeping their original");
                        m.original
                    }
                    None => c.attr.original_for(&path, current.clone()),
                },
            };
            let node = Arc::new(node);
            let mut share = None;
            let mut tree = None;
            if c.res.is_tree() && meta.kind == FileKind::Dir {
                if let Some(outer) = p.items.iter().find(|it| {
                    it.model == model
                        && it.tree.is_some()
                        && it.ident.dev == meta.dev
                        && (it.root.starts_with(&path) || path.starts_with(&it.root))
                }) {
                    return Err(Error::SharesNested {
                        path,
                        outer: outer.root.clone(),
                        domain: holder.to_owned(),
                    });
                }
                if let Some((other, applied)) =
                    nested_share(shares, (&path, meta.dev), holder, dead)
                {
                    return Err(Error::ResourceConflict {
                        path,
                        model,
                        domain: holder.to_owned(),
                        other,
                        label: applied,
                        hint: " (one directory share inside another's)",
                    });
                }
                // The entries are read (and changed) once the intent is recorded: the intent
                // names the share's common original, its root's own. A start cut short is
                // undone by finding the applied value on the entries (see `Tree::in_progress`),
                // which proves the walk put it there only when the value is this domain's alone
                // (its drawn pair or uid): a shared or read-only label, or a static one, may
                // have been there before, so such a share is journaled whole first.
                tree = Some(Arc::new(crate::db::Tree {
                    started_ns: share::start_instant(),
                    originals: vec![original.clone()],
                    entries: Vec::new(),
                    in_progress: c.drawn && c.attr.carries_vm(Some(&value), None),
                }));
                share = Some(share::ShareWork::new(
                    node.clone(),
                    tx.applied_values(&model)?,
                ));
            }
            let root_item = p.items.len();
            p.items.push(Item {
                id: 0,
                model: model.clone(),
                ident,
                root: path.clone(),
                rel: PathBuf::new(),
                original,
                applied: value.clone(),
                ctime_ns: None,
                state: ItemState::Intent,
                holders: vec![holder.to_owned()],
                tree,
            });
            p.reports.push(opened_report(&c.res, &path, &model, &value));
            p.steps.push(Step {
                attr: c.attr.clone(),
                root: path,
                node,
                value,
                root_item,
                share,
                report: p.reports.len() - 1,
            });
        }
        let ids = tx.insert_items(&p.items)?;
        for (item, id) in p.items.iter_mut().zip(ids) {
            item.id = id;
        }
        p.applied = vec![false; p.items.len()];
        p.share_applied = vec![Vec::new(); p.steps.len()];
        Ok(p)
    }

    /// Make the changes. On failure, every change made is put back (through the same
    /// identities) before the error is returned; the items stay as recorded for the caller to
    /// drop.
    pub fn apply(&self, p: &mut Prepared, journal: &Journal<'_>) -> Result<()> {
        let total: u64 = p.items.len() as u64;
        let mut done = 0u64;
        for s in 0..p.steps.len() {
            if let Err(e) = self.apply_step(p, s, &mut done, total, journal) {
                let mut rollback_errors = Vec::new();
                for (st, entries) in p.steps.iter().zip(&p.share_applied) {
                    if let (Some(work), Some(tree)) = (&st.share, &p.items[st.root_item].tree) {
                        rollback_errors.extend(self.unapply_share(
                            st.attr.as_ref(),
                            work,
                            tree,
                            entries,
                        ));
                        // Each remembered entry is put back on its inode wherever it went;
                        // and a one-pass walk may have changed an entry it could not record
                        // (a name that moved between its read and its write): whatever
                        // still holds the value drawn for this domain is undone from the
                        // entries, as a recovery would. Again while a sweep finds some: a
                        // name that moves can hide an inode from one sweep. A share whose
                        // names keep moving through every sweep is reported as not put back
                        // (its start's intent stays for `recover`), never as undone.
                        let swept = Item {
                            state: crate::db::ItemState::Intent,
                            tree: Some(Arc::new(crate::db::Tree {
                                in_progress: work.one_pass,
                                ..(**tree).clone()
                            })),
                            ..p.items[st.root_item].clone()
                        };
                        let mut settled = false;
                        for _ in 0..SWEEPS {
                            let mut out = Restored::default();
                            self.restore_share(
                                st.attr.as_ref(),
                                &swept,
                                st.node.clone(),
                                &RestoreOptions::rollback(),
                                &mut out,
                            );
                            let failed = !out.failed.is_empty();
                            rollback_errors.extend(out.failed.into_iter().map(|(_, e)| e));
                            if failed || out.undone == 0 {
                                settled = true;
                                break;
                            }
                        }
                        if !settled {
                            rollback_errors.push(Error::InodeLost {
                                path: st.root.clone(),
                                reason: "its names kept moving while svirt undid the start (does a process use the share?); the start stays recorded: run `svirt recover` once nothing changes it",
                            });
                        }
                        if !p.applied[st.root_item] {
                            // The root's restore (which removes it) will not run.
                            self.marks.remove_entries(
                                self.host.as_ref(),
                                &st.node,
                                st.attr.model(),
                            );
                        }
                    }
                }
                let applied: Vec<Item> = p
                    .items
                    .iter()
                    .zip(&p.applied)
                    .filter(|(_, a)| **a)
                    .map(|(i, _)| i.without_tree())
                    .collect();
                let attrs: Vec<Arc<dyn FileAttr>> =
                    p.steps.iter().map(|s| s.attr.clone()).collect();
                let out = self.restore(
                    &applied,
                    &|m: &str| attrs.iter().find(|a| a.model() == m).cloned(),
                    &RestoreOptions::rollback(),
                );
                rollback_errors.extend(out.failed.into_iter().map(|(_, e)| e));
                if rollback_errors.is_empty() {
                    return Err(e);
                }
                return Err(Error::RolledBack {
                    source: Box::new(e),
                    rollback_errors,
                });
            }
        }
        Ok(())
    }

    fn apply_step(
        &self,
        p: &mut Prepared,
        s: usize,
        done: &mut u64,
        total: u64,
        journal: &Journal<'_>,
    ) -> Result<()> {
        let host = self.host.as_ref();
        let step = &p.steps[s];
        let attr = step.attr.clone();
        let model = attr.model().to_owned();
        let mut share_error = None;
        let root_item = step.root_item;
        if let Some(mut work) = p.steps[s].share.take() {
            let root_id = p.items[root_item].id;
            let dev = p.items[root_item].ident.dev;
            work.own = p
                .items
                .iter()
                .filter(|it| it.tree.is_none() && it.ident.dev == dev)
                .map(|it| it.ident.ino)
                .collect();
            let mut tree = p.items[root_item]
                .tree
                .as_deref()
                .cloned()
                .expect("a share step has a tree");
            let base = *done;
            let progress = |k: u64| {
                if let Some(pr) = &self.progress {
                    pr(base + k, total);
                }
            };
            let value = p.steps[s].value.clone();
            let (applied, left, err) = self.change_share(
                &attr, root_id, &mut work, &mut tree, &value, journal, &progress,
            );
            *done += applied.len() as u64;
            p.items[root_item].tree = Some(Arc::new(tree));
            p.steps[s].share = Some(work);
            p.share_applied[s] = applied;
            let root = p.steps[s].root.clone();
            let report = &mut p.reports[p.steps[s].report];
            for (rel, reason) in left {
                let at = root.join(rel);
                warn!(path = %at.display(), model, reason, "left out of a share");
                report.excluded.push(Excluded {
                    path: at,
                    reason: reason.into(),
                });
            }
            match err {
                Some(e) if unsupported(&e) => share_error = Some(e),
                Some(e) => return Err(e),
                None => {}
            }
        }
        let i = root_item;
        let node = p.steps[s].node.clone();
        let changed = match share_error {
            Some(e) => Err(e),
            None => self.change(attr.as_ref(), &node, &mut p.items[i]),
        };
        match changed {
            Ok(()) => p.applied[i] = true,
            Err(e) if unsupported(&e) => {
                // The filesystem cannot hold the attribute: leave the resource as it is.
                let fs = host.fs_type(&node).unwrap_or(0);
                let hint = attr.unsupported_hint(fs).unwrap_or("");
                let root = p.steps[s].root.clone();
                warn!(path = %root.display(), model, hint, "filesystem cannot hold the attribute; resource left as it is");
                let entries = std::mem::take(&mut p.share_applied[s]);
                if let (Some(work), Some(tree)) = (&p.steps[s].share, &p.items[i].tree) {
                    if let Some(e) = self
                        .unapply_share(attr.as_ref(), work, tree, &entries)
                        .into_iter()
                        .next()
                    {
                        return Err(e);
                    }
                    self.marks.remove_entries(host, &node, &model);
                }
                let r = &mut p.reports[p.steps[s].report];
                r.skipped = true;
                r.reason = Some(format!(
                    "{}{}{hint}",
                    crate::display_chain(&e),
                    if hint.is_empty() { "" } else { "; " }
                ));
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        crate::failpoint::hit("relabel.applied");
        if let Some(pr) = &self.progress {
            *done += 1;
            pr(*done, total);
        }
        info!(path = %p.steps[s].root.display(), model, value = %p.steps[s].value, "applied");
        Ok(())
    }

    /// Change one inode: mark it with its original, write the applied value, and record the
    /// ctime that guards its privileges (in the database only: a mark that could hold it would
    /// itself move it, so `recover --scan` never gives setuid or setgid bits back).
    fn change(&self, attr: &dyn FileAttr, node: &Node, item: &mut Item) -> Result<()> {
        let host = self.host.as_ref();
        let model = attr.model();
        self.marks
            .write(host, node, model, item.original.as_deref());
        crate::failpoint::hit("relabel.journaled");
        attr.write(host, node, Some(&item.applied))
            .map_err(|e| Error::host("set the attribute of", node.path(), e))?;
        if item
            .original
            .as_deref()
            .is_some_and(|o| attr.without_privileges(o).is_some())
        {
            let meta = host
                .meta(node)
                .map_err(|e| Error::host("inspect", node.path(), e))?;
            // A directory's setgid bit grants nothing to run: never guarded (every file the
            // VM creates in it moves its ctime).
            if meta.kind != FileKind::Dir {
                item.ctime_ns = Some(meta.ctime_ns);
            }
        }
        Ok(())
    }
}

/// The original a mark names for an inode that carries a VM's identity with nothing recorded
/// about it (the state was lost): a VM held it, and nothing tells whether it wrote it since, so
/// a file gets no setuid/setgid bit back from it.
pub(crate) fn held_original(
    attr: &dyn FileAttr,
    kind: FileKind,
    original: Option<String>,
) -> Option<String> {
    match original {
        Some(o) if kind != FileKind::Dir => Some(attr.without_privileges(&o).unwrap_or(o)),
        other => other,
    }
}

/// The directory shares among `roots` that a running domain other than `holder` holds, each
/// with that domain.
fn others_shares<'a>(
    roots: &'a [TreeRoot],
    holder: &'a str,
    dead: &'a dyn Fn(&str) -> bool,
) -> impl Iterator<Item = (&'a TreeRoot, String)> + 'a {
    roots.iter().filter_map(move |t| {
        let other = t.holders.iter().find(|h| *h != holder && !dead(h))?.clone();
        Some((t, other))
    })
}

/// A running domain (other than `holder`) whose directory share (among `roots`) holds the
/// inode, with the value it applied.
fn held_through_share(
    tx: &Tx<'_>,
    roots: &[TreeRoot],
    (dev, ino): (u64, u64),
    holder: &str,
    dead: &dyn Fn(&str) -> bool,
) -> Result<Option<(String, String)>> {
    for (t, other) in others_shares(roots, holder, dead) {
        if t.dev == dev
            && tx
                .tree(t.id)?
                .is_some_and(|tree| tree.entries.iter().any(|e| e.ino == ino))
        {
            return Ok(Some((other, t.applied.clone())));
        }
    }
    Ok(None)
}

/// A share among `roots` still labeled for a domain that is gone (its tree not yet put back by
/// `recover`) that holds `path`, or, for a directory share, lies inside it: with the domain's
/// name.
fn unrecovered_share(
    roots: &[TreeRoot],
    (path, dev, tree): (&Path, u64, bool),
    dead: &dyn Fn(&str) -> bool,
) -> Option<(PathBuf, String)> {
    roots
        .iter()
        .find(|t| {
            !t.holders.is_empty()
                && t.holders.iter().all(|h| dead(h))
                && t.dev == dev
                && (path.starts_with(&t.root) || (tree && t.root.starts_with(path)))
        })
        .map(|t| (t.root.clone(), t.holders[0].clone()))
}

/// A running domain (other than `holder`) whose directory share (among `roots`) lies inside
/// `root` or around it, on the same filesystem, with the value it applied.
fn nested_share(
    roots: &[TreeRoot],
    (root, dev): (&Path, u64),
    holder: &str,
    dead: &dyn Fn(&str) -> bool,
) -> Option<(String, String)> {
    others_shares(roots, holder, dead)
        .find(|(t, _)| {
            t.dev == dev
                && t.root != root
                && (t.root.starts_with(root) || root.starts_with(&t.root))
        })
        .map(|(t, other)| (other, t.applied.clone()))
}

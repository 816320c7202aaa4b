//! Changing one file attribute (an SELinux label, or an owner and mode) safely and recoverably.
//! SELinux and DAC differ only in their [`FileAttr`]; the rest is one implementation:
//! resolve and open safely, journal the original, apply, and put it back at the end.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use crate::domain::{Access, ResourceKind};
use crate::error::{Error, Result};
use crate::host::{fs_magic, is_unsupported, FileKind, Host, Node};
use crate::remember::{Entry, Journal, Release, Sharing, TreeItem};
use crate::safe::{self, Opened};
use crate::tree;

/// One attribute of a file that a driver changes.
pub trait FileAttr: Send + Sync + Debug {
    /// The model name, used to key remembered originals.
    fn model(&self) -> &str;
    /// The current value; `None` when absent.
    fn read(&self, host: &dyn Host, node: &Node) -> io::Result<Option<String>>;
    /// Set the value; `None` removes it.
    fn write(&self, host: &dyn Host, node: &Node, value: Option<&str>) -> io::Result<()>;
    /// Whether the applied `target` already holds for `current` (so nothing needs doing).
    fn matches(&self, current: Option<&str>, target: &str) -> bool {
        current == Some(target)
    }
    /// The value to remember as `path`'s original when nothing remembered it before: normally
    /// `current`. A driver can refuse a value it knows is a leftover of its own (a dead VM's
    /// label after a reboot that wiped the journal) and name a default instead.
    fn original_for(&self, _path: &Path, current: Option<String>) -> Option<String> {
        current
    }
    /// What to tell the administrator when a filesystem refuses the attribute.
    fn unsupported_hint(&self, _fs_type: i64) -> Option<&'static str> {
        None
    }
}

/// The outcome of labeling one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The resolved path (what was labeled).
    pub path: PathBuf,
    /// The path as given, when it differs from the resolved one.
    pub given: Option<PathBuf>,
    pub value: String,
    /// The filesystem could not hold the attribute, or the file is a shared host device;
    /// nothing was changed.
    pub skipped: Option<String>,
    /// Parts of a directory tree left alone (mount points), with why.
    pub excluded: Vec<crate::driver::Excluded>,
}

/// Progress of a long relabel: (items done, items in all).
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Applies a [`FileAttr`] to resources with remembered originals.
#[derive(Clone)]
pub struct Relabeler {
    host: Arc<dyn Host>,
    journal: Journal,
    attr: Arc<dyn FileAttr>,
    progress: Option<ProgressFn>,
}

impl Debug for Relabeler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relabeler")
            .field("attr", &self.attr)
            .finish_non_exhaustive()
    }
}

impl Relabeler {
    /// A relabeler over `host`, journaling in `journal`.
    pub fn new(host: Arc<dyn Host>, journal: Journal, attr: Arc<dyn FileAttr>) -> Self {
        Relabeler {
            host,
            journal,
            attr,
            progress: None,
        }
    }

    /// Report progress of directory relabels.
    pub fn with_progress(mut self, progress: ProgressFn) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The host.
    pub fn host(&self) -> &Arc<dyn Host> {
        &self.host
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    fn model(&self) -> &str {
        self.attr.model()
    }

    /// Set `target` on one file (or, with `tree`, a directory and everything below it) for
    /// `holder`, remembering the original. A filesystem that cannot hold the attribute gives a
    /// skipped result, not an error.
    pub fn apply(
        &self,
        path: &Path,
        target: &str,
        holder: &str,
        access: Access,
        kind: ResourceKind,
    ) -> Result<Applied> {
        let opened = safe::open_resource(self.host.as_ref(), path, Some(kind))?;
        let Opened {
            path: real,
            given,
            node,
            meta,
            shared_device,
        } = opened;
        let given = (given != real).then_some(given);
        if let Some(why) = shared_device {
            info!(path = %real.display(), model = self.model(), reason = %why, "left as it is");
            return Ok(Applied {
                path: real,
                given,
                value: target.to_owned(),
                skipped: Some(why),
                excluded: Vec::new(),
            });
        }
        let current = self
            .attr
            .read(self.host.as_ref(), &node)
            .or_else(|e| if is_unsupported(&e) { Ok(None) } else { Err(e) })
            .map_err(|e| Error::host("read the attribute of", &real, e))?;
        let sharing = if access == Access::Private {
            Sharing::Exclusive
        } else {
            Sharing::Shared
        };
        let tree = matches!(kind, ResourceKind::Filesystem | ResourceKind::Tpm);
        let (tree_items, mounts) = if tree && meta.kind == FileKind::Dir {
            self.scan_tree(&node, target)?
        } else {
            (Vec::new(), Vec::new())
        };
        let excluded: Vec<crate::driver::Excluded> = mounts
            .into_iter()
            .map(|rel| {
                let path = real.join(rel);
                warn!(path = %path.display(), model = self.model(), "mount point inside a share; not crossed");
                crate::driver::Excluded {
                    path,
                    reason: "a mount point inside the share: another filesystem is never relabeled"
                        .into(),
                }
            })
            .collect();
        let entry = self.journal.acquire(
            &node,
            &real,
            self.model(),
            holder,
            self.attr.original_for(&real, current.clone()),
            target,
            sharing,
            tree_items.clone(),
        )?;
        if entry.holders.len() > 1 {
            // Another domain already applied the same value.
            return Ok(Applied {
                path: real,
                given,
                value: target.to_owned(),
                skipped: None,
                excluded,
            });
        }
        crate::failpoint::hit("relabel.journaled");
        let total = tree_items.len() as u64 + 1;
        if !tree_items.is_empty() {
            if let Err(e) = self.set_tree(&node, &tree_items, target, total) {
                // Roll back the items already changed, then the journal.
                self.undo_tree(&node, &tree_items, target);
                self.journal.abandon(&node, &real, self.model(), holder)?;
                return Err(e);
            }
        }
        if !self.attr.matches(current.as_deref(), target) {
            if let Err(e) = self.attr.write(self.host.as_ref(), &node, Some(target)) {
                self.undo_tree(&node, &tree_items, target);
                self.journal.abandon(&node, &real, self.model(), holder)?;
                if is_unsupported(&e) {
                    let fs = self.host.fs_type(&node).unwrap_or(0);
                    let hint = self.attr.unsupported_hint(fs).unwrap_or("");
                    warn!(path = %real.display(), model = self.model(), error = %e, hint, "filesystem cannot hold the attribute; resource left as it is");
                    return Ok(Applied {
                        path: real,
                        given,
                        value: target.to_owned(),
                        skipped: Some(format!(
                            "{e}{}{hint}",
                            if hint.is_empty() { "" } else { "; " }
                        )),
                        excluded,
                    });
                }
                return Err(Error::host("set the attribute of", &real, e));
            }
        }
        crate::failpoint::hit("relabel.applied");
        if let Some(p) = &self.progress {
            p(total, total);
        }
        info!(path = %real.display(), model = self.model(), value = target, holder, "applied");
        Ok(Applied {
            path: real,
            given,
            value: target.to_owned(),
            skipped: None,
            excluded,
        })
    }

    /// `holder` is done with `path`: when it was the last holder, put the original back.
    /// A path that is gone is forgotten with a warning.
    pub fn restore(&self, path: &Path, holder: &str, kind: ResourceKind) -> Result<()> {
        let opened = match safe::open_resource(self.host.as_ref(), path, Some(kind)) {
            Ok(o) => o,
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                warn!(path = %path.display(), model = self.model(), "resource is gone; forgetting its original");
                return self.journal.forget_missing(path, self.model());
            }
            Err(e) => return Err(e),
        };
        let Opened {
            path: real,
            node,
            shared_device,
            ..
        } = opened;
        if shared_device.is_some() {
            // Never relabeled, so nothing to put back.
            return Ok(());
        }
        match self.journal.release(&node, &real, self.model(), holder)? {
            Release::NotHeld | Release::StillUsed => Ok(()),
            Release::Restore(entry) => {
                crate::failpoint::hit("restore.released");
                self.put_back(&node, &real, &entry)
            }
        }
    }

    /// Put back an entry whose holders are all gone (crash recovery), then forget it.
    pub fn restore_orphan(&self, entry: &Entry) -> Result<()> {
        match safe::open_resource(self.host.as_ref(), &entry.path, None) {
            Ok(Opened { path, node, .. }) => self.put_back(&node, &path, entry),
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                self.journal.forget_missing(&entry.path, self.model())
            }
            Err(e) => Err(e),
        }
    }

    fn put_back(&self, node: &Node, real: &Path, entry: &Entry) -> Result<()> {
        let mut errors = Vec::new();
        if !entry.tree.is_empty() {
            if let Err(e) = self.put_back_tree(node, &entry.tree, &entry.applied) {
                errors.push(e);
            }
        }
        if let Err(e) = self
            .attr
            .write(self.host.as_ref(), node, entry.original.as_deref())
        {
            if !is_unsupported(&e) {
                errors.push(Error::host("restore the attribute of", real, e));
            }
        }
        Error::from_all("restoring a directory tree", errors)?;
        crate::failpoint::hit("restore.put-back");
        self.journal.forget(node, real, self.model())?;
        info!(path = %real.display(), model = self.model(), original = ?entry.original, "restored");
        Ok(())
    }

    /// Every item below `root` whose value differs from `target`, with that value.
    /// Also the mount points found inside, which were not crossed.
    fn scan_tree(&self, root: &Node, target: &str) -> Result<(Vec<TreeItem>, Vec<PathBuf>)> {
        let mut out = Vec::new();
        let mounts = tree::walk(self.host.as_ref(), root, &mut |rel, node, _| {
            let cur = self.attr.read(self.host.as_ref(), node).unwrap_or(None);
            if !self.attr.matches(cur.as_deref(), target) {
                out.push(TreeItem {
                    rel: rel.to_owned(),
                    original: cur,
                });
            }
            Ok(())
        })?;
        Ok((out, mounts))
    }

    /// Set `target` on the scanned items, reporting progress.
    fn set_tree(&self, root: &Node, items: &[TreeItem], target: &str, total: u64) -> Result<()> {
        let wanted: HashSet<&Path> = items.iter().map(|i| i.rel.as_path()).collect();
        let mut done = 0u64;
        tree::walk(self.host.as_ref(), root, &mut |rel, node, _| {
            if !wanted.contains(rel) {
                return Ok(());
            }
            self.attr
                .write(self.host.as_ref(), node, Some(target))
                .map_err(|e| Error::host("set the attribute of", node.path(), e))?;
            done += 1;
            if let Some(p) = &self.progress {
                if done.is_multiple_of(256) {
                    p(done, total);
                }
            }
            Ok(())
        })
        .map(drop)
    }

    /// Put each item's original back where it still holds `applied`.
    fn put_back_tree(&self, root: &Node, items: &[TreeItem], applied: &str) -> Result<()> {
        let originals: HashMap<&Path, Option<&str>> = items
            .iter()
            .map(|i| (i.rel.as_path(), i.original.as_deref()))
            .collect();
        let mut errors = Vec::new();
        tree::walk(self.host.as_ref(), root, &mut |rel, node, _| {
            let Some(original) = originals.get(rel) else {
                return Ok(());
            };
            let now = self.attr.read(self.host.as_ref(), node).unwrap_or(None);
            if self.attr.matches(now.as_deref(), applied) {
                if let Err(e) = self.attr.write(self.host.as_ref(), node, *original) {
                    errors.push(Error::host("restore the attribute of", node.path(), e));
                }
            }
            Ok(())
        })?;
        Error::from_all("restoring a directory tree", errors)
    }

    /// Put tree items back after a failed apply (best effort; the journal still has them).
    fn undo_tree(&self, root: &Node, items: &[TreeItem], target: &str) {
        if let Err(e) = self.put_back_tree(root, items, target) {
            warn!(path = %root.path().display(), error = %crate::display_chain(&e), "rollback failed");
        }
    }
}

/// The SELinux boolean that governs a filesystem that cannot hold labels.
pub fn selinux_boolean_hint(fs_type: i64) -> Option<&'static str> {
    match fs_type {
        fs_magic::NFS => Some("set the SELinux boolean virt_use_nfs to let VMs use NFS files"),
        fs_magic::FUSE => Some("set the SELinux boolean virt_use_fusefs to let VMs use FUSE files"),
        fs_magic::CIFS | fs_magic::SMB2 => {
            Some("set the SELinux boolean virt_use_samba to let VMs use CIFS files")
        }
        _ => None,
    }
}

/// What a driver does with one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Leave it alone, for this reason.
    Skip(String),
    /// Set this value.
    Set(String),
}

impl Relabeler {
    /// Apply a plan to every resource for `holder`; on failure restore the ones already done, in
    /// reverse, and return the error.
    pub fn apply_all(
        &self,
        holder: &str,
        plan: &[(crate::domain::Resource, Plan)],
    ) -> Result<Vec<crate::driver::ResourceReport>> {
        let mut reports = Vec::new();
        for (i, (res, p)) in plan.iter().enumerate() {
            match self.apply_one(holder, res, p) {
                Ok(r) => reports.push(r),
                Err(e) => {
                    let mut rollback_errors = Vec::new();
                    for (done, _) in plan[..i].iter().rev() {
                        if let Err(re) = self.restore_one(holder, done) {
                            rollback_errors.push(re);
                        }
                    }
                    return Err(if rollback_errors.is_empty() {
                        e
                    } else {
                        Error::RolledBack {
                            source: Box::new(e),
                            rollback_errors,
                        }
                    });
                }
            }
        }
        Ok(reports)
    }

    /// Plan every resource with `plan` and apply the result with [`Relabeler::apply_all`].
    pub fn apply_planned(
        &self,
        holder: &str,
        resources: Vec<crate::domain::Resource>,
        plan: impl Fn(&crate::domain::Resource) -> Result<Plan>,
    ) -> Result<Vec<crate::driver::ResourceReport>> {
        let mut planned = Vec::with_capacity(resources.len());
        for r in resources {
            let p = plan(&r)?;
            planned.push((r, p));
        }
        self.apply_all(holder, &planned)
    }

    /// [`Relabeler::restore`] for one resource.
    pub fn restore_one(&self, holder: &str, res: &crate::domain::Resource) -> Result<()> {
        self.restore(&res.path, holder, res.kind)
    }

    /// Apply the plan for one resource.
    pub fn apply_one(
        &self,
        holder: &str,
        res: &crate::domain::Resource,
        p: &Plan,
    ) -> Result<crate::driver::ResourceReport> {
        let model = self.model().to_owned();
        match p {
            Plan::Skip(reason) => Ok(crate::driver::ResourceReport {
                path: res.path.clone(),
                model,
                label: String::new(),
                skipped: true,
                reason: Some(reason.clone()),
                given: None,
                excluded: Vec::new(),
            }),
            Plan::Set(v) => {
                let a = self.apply(&res.path, v, holder, res.access, res.kind)?;
                Ok(crate::driver::ResourceReport {
                    path: a.path,
                    model,
                    label: a.value,
                    skipped: a.skipped.is_some(),
                    reason: a.skipped,
                    given: a.given,
                    excluded: a.excluded,
                })
            }
        }
    }

    /// Restore every resource `holder` holds. Best effort: every failure is returned.
    pub fn restore_resources(
        &self,
        holder: &str,
        resources: &[crate::domain::Resource],
    ) -> Result<()> {
        let mut errors = Vec::new();
        for r in resources.iter().rev() {
            if let Err(e) = self.restore_one(holder, r) {
                warn!(path = %r.path.display(), model = self.model(), error = %crate::display_chain(&e), "restore failed");
                errors.push(e);
            }
        }
        Error::from_all("restoring resources", errors)
    }
}

//! Remembered originals: before svirt changes a file's label or owner, it records the original
//! with a reference count, in the state directory's journal **and** in `trusted.svirt.*` xattrs on
//! the file. The journal is written (and fsynced) before the change, so a crash at any point
//! leaves enough on disk to put the file back.
//!
//! Improvements over libvirt's remember-owner:
//! - the xattrs are an extra copy; where the kernel refuses `trusted.*` (EPERM in containers,
//!   ENOTSUP) the journal alone serves and nothing fails;
//! - holders are recorded with this boot's id; after a reboot they are known dead, so stale
//!   metadata never blocks a start, and the **recorded** original is kept rather than taking the
//!   crashed VM's label as the file's "original".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::error::{Error, Result};
use crate::fsutil::{atomic_write, read_optional, LockGuard};
use crate::host::{is_unsupported, Host, Node};

/// One item of a directory tree changed under a remembered root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeItem {
    /// The path relative to the root.
    pub rel: PathBuf,
    /// The original value; `None` when the attribute was absent.
    pub original: Option<String>,
}

/// A remembered original.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: PathBuf,
    pub model: String,
    /// The value before svirt's first change; `None` when the attribute was absent.
    pub original: Option<String>,
    /// The value svirt applied.
    pub applied: String,
    /// The domains holding the file; their count is the reference count.
    pub holders: Vec<String>,
    /// The boot these holders belong to.
    pub boot_id: String,
    /// Items below a directory root (filesystem shares) and their originals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tree: Vec<TreeItem>,
}

/// How a domain wants to use a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// No other domain may hold the file.
    Exclusive,
    /// Others may hold it with the same applied value.
    Shared,
}

/// What [`Journal::release`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Release {
    /// The domain did not hold the file.
    NotHeld,
    /// Other domains still hold it; leave it alone.
    StillUsed,
    /// The last holder left: put this back, then call [`Journal::forget`].
    Restore(Entry),
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct JournalFile {
    entries: BTreeMap<String, Entry>,
}

/// The remembered originals of one state directory.
#[derive(Debug, Clone)]
pub struct Journal {
    host: Arc<dyn Host>,
    path: PathBuf,
    lock: PathBuf,
    xattrs_refused: Arc<AtomicBool>,
}

/// The xattr prefix svirt owns.
pub const XATTR_PREFIX: &str = "trusted.svirt.";

fn key(model: &str, path: &Path) -> String {
    format!("{model}:{}", path.display())
}

fn encode(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("={s}"),
        None => "!".into(),
    }
}

fn decode(s: &str) -> Option<String> {
    s.strip_prefix('=').map(str::to_owned)
}

impl Journal {
    /// The journal of `state_dir`.
    pub fn new(host: Arc<dyn Host>, state_dir: &Path) -> Self {
        Journal {
            host,
            path: state_dir.join("remember.json"),
            lock: state_dir.join("remember.lock"),
            xattrs_refused: Arc::new(AtomicBool::new(false)),
        }
    }

    fn load(&self) -> Result<JournalFile> {
        match read_optional(&self.path)? {
            None => Ok(JournalFile::default()),
            Some(b) => serde_json::from_slice(&b).map_err(|e| Error::StateCorrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
        }
    }

    fn save(&self, j: &JournalFile) -> Result<()> {
        let bytes = serde_json::to_vec(j).map_err(|e| Error::StateCorrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        atomic_write(&self.path, &bytes)
    }

    fn boot_id(&self) -> Result<String> {
        self.host
            .boot_id()
            .map_err(|e| Error::host("read boot id", "/proc/sys/kernel/random/boot_id", e))
    }

    /// Every entry (for `recover` and `status`).
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let _l = LockGuard::exclusive(&self.lock)?;
        Ok(self.load()?.entries.into_values().collect())
    }

    /// Record that `holder` is about to set `model`'s attribute of `path` to `applied`; `current`
    /// is what the file has now. Returns the entry as recorded. Refuses a file another live
    /// domain holds exclusively or with a different value.
    #[allow(clippy::too_many_arguments)]
    pub fn acquire(
        &self,
        node: &Node,
        path: &Path,
        model: &str,
        holder: &str,
        current: Option<String>,
        applied: &str,
        sharing: Sharing,
        tree: Vec<TreeItem>,
    ) -> Result<Entry> {
        let _l = LockGuard::exclusive(&self.lock)?;
        let boot = self.boot_id()?;
        let mut j = self.load()?;
        let k = key(model, path);
        let entry = match j.entries.remove(&k) {
            Some(mut e) => {
                if e.boot_id != boot {
                    warn!(path = %path.display(), model, "metadata from an earlier boot; its holders are gone");
                    e.holders.clear();
                }
                if e.holders.iter().any(|h| h == holder) {
                    j.entries.insert(k, e.clone());
                    return Ok(e);
                }
                if let Some(other) = e.holders.first() {
                    let conflict = sharing == Sharing::Exclusive || e.applied != applied;
                    if conflict {
                        let err = Error::ResourceConflict {
                            path: path.to_owned(),
                            model: model.to_owned(),
                            domain: holder.to_owned(),
                            other: other.clone(),
                            label: e.applied.clone(),
                            hint: if sharing == Sharing::Exclusive {
                                " (declare it shareable in both domains to share it)"
                            } else {
                                ""
                            },
                        };
                        j.entries.insert(k, e);
                        return Err(err);
                    }
                } else {
                    // Every holder is gone (reboot, or released but not yet restored):
                    // the recorded original stays the original.
                    e.applied = applied.to_owned();
                    e.tree = tree;
                }
                e.holders.push(holder.to_owned());
                e.boot_id = boot;
                e
            }
            None => {
                let original = match self.read_xattrs(node, model)? {
                    Some((orig, xboot)) => {
                        if xboot != boot {
                            warn!(path = %path.display(), model, "stale svirt xattrs from an earlier boot; keeping their original");
                        } else {
                            warn!(path = %path.display(), model, "svirt xattrs without a journal entry; keeping their original");
                        }
                        orig
                    }
                    None => current,
                };
                Entry {
                    path: path.to_owned(),
                    model: model.to_owned(),
                    original,
                    applied: applied.to_owned(),
                    holders: vec![holder.to_owned()],
                    boot_id: boot,
                    tree,
                }
            }
        };
        j.entries.insert(k, entry.clone());
        self.save(&j)?;
        self.write_xattrs(node, &entry);
        Ok(entry)
    }

    /// Undo an [`Journal::acquire`] whose change could not be made.
    pub fn abandon(&self, node: &Node, path: &Path, model: &str, holder: &str) -> Result<()> {
        match self.release(node, path, model, holder)? {
            Release::Restore(_) => self.forget(node, path, model),
            _ => Ok(()),
        }
    }

    /// `holder` stops using the file.
    pub fn release(&self, node: &Node, path: &Path, model: &str, holder: &str) -> Result<Release> {
        let _l = LockGuard::exclusive(&self.lock)?;
        let mut j = self.load()?;
        let k = key(model, path);
        let Some(e) = j.entries.get_mut(&k) else {
            return Ok(Release::NotHeld);
        };
        let before = e.holders.len();
        e.holders.retain(|h| h != holder);
        if e.holders.len() == before {
            return Ok(Release::NotHeld);
        }
        let e = e.clone();
        self.save(&j)?;
        if e.holders.is_empty() {
            Ok(Release::Restore(e))
        } else {
            self.write_xattrs(node, &e);
            Ok(Release::StillUsed)
        }
    }

    /// Drop the entry and the file's svirt xattrs, once the original is back.
    pub fn forget(&self, node: &Node, path: &Path, model: &str) -> Result<()> {
        let _l = LockGuard::exclusive(&self.lock)?;
        let mut j = self.load()?;
        if j.entries.remove(&key(model, path)).is_some() {
            self.save(&j)?;
        }
        self.remove_xattrs(node, model);
        Ok(())
    }

    /// Drop an entry whose file is gone.
    pub fn forget_missing(&self, path: &Path, model: &str) -> Result<()> {
        let _l = LockGuard::exclusive(&self.lock)?;
        let mut j = self.load()?;
        if j.entries.remove(&key(model, path)).is_some() {
            self.save(&j)?;
        }
        Ok(())
    }

    fn xattr_names(model: &str) -> [String; 3] {
        [
            format!("{XATTR_PREFIX}{model}"),
            format!("{XATTR_PREFIX}ref_{model}"),
            format!("{XATTR_PREFIX}boot_{model}"),
        ]
    }

    fn refused(&self, e: &std::io::Error, path: &Path) -> bool {
        let refused = is_unsupported(e) || e.raw_os_error() == Some(libc::EPERM);
        if refused && !self.xattrs_refused.swap(true, Ordering::Relaxed) {
            warn!(path = %path.display(), error = %e, "the kernel refuses trusted.* xattrs; remembering originals in the state journal only");
        }
        refused
    }

    fn read_xattrs(&self, node: &Node, model: &str) -> Result<Option<(Option<String>, String)>> {
        if self.xattrs_refused.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let [orig, _, boot] = Self::xattr_names(model);
        let get = |name: &str| match self.host.get_xattr(node, name) {
            Ok(v) => Ok(v.map(|b| String::from_utf8_lossy(&b).into_owned())),
            Err(e) if self.refused(&e, node.path()) => Ok(None),
            Err(e) => Err(Error::host("read svirt xattrs of", node.path(), e)),
        };
        let (Some(o), Some(b)) = (get(&orig)?, get(&boot)?) else {
            return Ok(None);
        };
        Ok(Some((decode(&o), b)))
    }

    fn write_xattrs(&self, node: &Node, e: &Entry) {
        if self.xattrs_refused.load(Ordering::Relaxed) {
            return;
        }
        let [orig, refc, boot] = Self::xattr_names(&e.model);
        for (name, value) in [
            (orig, encode(&e.original)),
            (boot, e.boot_id.clone()),
            (refc, e.holders.len().to_string()),
        ] {
            if let Err(err) = self.host.set_xattr(node, &name, value.as_bytes()) {
                if !self.refused(&err, node.path()) {
                    debug!(path = %node.path().display(), error = %err, "cannot write svirt xattr; the journal still holds the original");
                }
                return;
            }
        }
    }

    fn remove_xattrs(&self, node: &Node, model: &str) {
        if self.xattrs_refused.load(Ordering::Relaxed) {
            return;
        }
        for name in Self::xattr_names(model) {
            if let Err(err) = self.host.remove_xattr(node, &name) {
                if self.refused(&err, node.path()) {
                    return;
                }
                debug!(path = %node.path().display(), error = %err, "cannot remove svirt xattr");
            }
        }
    }
}

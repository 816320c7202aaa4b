//! The walk of the audit roots: every entry, through `O_PATH` nodes opened beneath their parent
//! without following symlinks. Nothing is opened for reading, so device nodes and FIFOs are safe.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{FileFacts, ACL_XATTR};
use crate::host::{get_label, FileKind, Host, Node};

/// Everything the walk saw.
#[derive(Debug, Default)]
pub struct Walked {
    /// Every file and directory under the roots (roots included), parents before children.
    pub files: Vec<FileFacts>,
    /// For each file, the index of its directory in `files` (`None` for a root).
    pub parent: Vec<Option<usize>>,
    /// Entries that could not be read, with why.
    pub unreadable: Vec<Unreadable>,
    /// Symlinks seen and not followed.
    pub symlinks: usize,
}

/// An entry the walk could not read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub path: PathBuf,
    pub error: String,
}

/// The facts of the node `node` at `path`.
fn facts(host: &dyn Host, node: &Node) -> std::io::Result<FileFacts> {
    let meta = host.meta(node)?;
    let label = if meta.kind == FileKind::Symlink {
        None
    } else {
        get_label(host, node)?
    };
    let acl = match meta.kind {
        FileKind::File | FileKind::Dir => host.get_xattr(node, ACL_XATTR).unwrap_or(None),
        _ => None,
    };
    Ok(FileFacts {
        path: node.path().to_owned(),
        kind: meta.kind,
        uid: meta.uid,
        gid: meta.gid,
        mode: meta.mode,
        label,
        acl,
    })
}

/// The facts of one path (its last component not followed).
pub fn facts_of(host: &dyn Host, path: &Path) -> std::io::Result<FileFacts> {
    facts(host, &host.open_node(path)?)
}

/// Walk every root (canonical, absolute paths). A root beneath another is walked once.
pub fn walk(host: &dyn Host, roots: &[PathBuf]) -> Walked {
    let mut out = Walked::default();
    let mut roots: Vec<&PathBuf> = roots.iter().collect();
    roots.sort();
    roots.dedup();
    let mut kept: Vec<&PathBuf> = Vec::new();
    for r in roots {
        if !kept.iter().any(|k| r.starts_with(k)) {
            kept.push(r);
        }
    }
    let mut seen: HashMap<PathBuf, usize> = HashMap::new();
    for root in kept {
        let node = match host.open_node(root) {
            Ok(n) => n,
            Err(e) => {
                out.unreadable.push(Unreadable {
                    path: root.clone(),
                    error: e.to_string(),
                });
                continue;
            }
        };
        // Depth-first with an explicit stack: (node, index of its facts).
        let mut stack: Vec<(Node, usize)> = Vec::new();
        match facts(host, &node) {
            Ok(f) => {
                let is_dir = f.kind == FileKind::Dir;
                seen.insert(root.clone(), out.files.len());
                out.files.push(f);
                out.parent.push(None);
                if is_dir {
                    stack.push((node, out.files.len() - 1));
                }
            }
            Err(e) => out.unreadable.push(Unreadable {
                path: root.clone(),
                error: e.to_string(),
            }),
        }
        while let Some((dir, idx)) = stack.pop() {
            let mut entries = match host.list_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    out.unreadable.push(Unreadable {
                        path: dir.path().to_owned(),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, _) in entries {
                let child = match host.open_child(&dir, &name) {
                    Ok(c) => c,
                    Err(e) => {
                        out.unreadable.push(Unreadable {
                            path: dir.path().join(&name),
                            error: e.to_string(),
                        });
                        continue;
                    }
                };
                let f = match facts(host, &child) {
                    Ok(f) => f,
                    Err(e) => {
                        out.unreadable.push(Unreadable {
                            path: child.path().to_owned(),
                            error: e.to_string(),
                        });
                        continue;
                    }
                };
                if f.kind == FileKind::Symlink {
                    out.symlinks += 1;
                    continue;
                }
                if seen.contains_key(&f.path) {
                    continue;
                }
                let is_dir = f.kind == FileKind::Dir;
                seen.insert(f.path.clone(), out.files.len());
                out.files.push(f);
                out.parent.push(Some(idx));
                if is_dir {
                    stack.push((child, out.files.len() - 1));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeHost;

    #[test]
    fn walk_reads_labels_and_never_follows_symlinks() {
        let h = FakeHost::new();
        h.add_file("/r/a.img");
        h.put_xattr("/r/a.img", "security.selinux", b"u:r:t:s0\0");
        h.add_file("/elsewhere/secret");
        h.add_symlink("/r/link", "/elsewhere");
        h.add(Path::new("/r/d/dev"), FileKind::Block, 0, 6, 0o660);
        let w = walk(&h, &[PathBuf::from("/r"), PathBuf::from("/r/d")]);
        let paths: Vec<_> = w
            .files
            .iter()
            .map(|f| f.path.display().to_string())
            .collect();
        assert_eq!(paths, ["/r", "/r/a.img", "/r/d", "/r/d/dev"]);
        assert_eq!(w.files[1].label.as_deref(), Some("u:r:t:s0"));
        assert_eq!(w.parent, [None, Some(0), Some(0), Some(2)]);
        assert_eq!(w.symlinks, 1);
        assert!(w.unreadable.is_empty());
    }

    #[test]
    fn an_unreadable_directory_is_reported_and_the_walk_goes_on() {
        let h = FakeHost::new();
        h.add_file("/r/locked/x");
        h.add_file("/r/open/y");
        h.fail("list_dir", "/r/locked", libc::EACCES, None);
        let w = walk(&h, &[PathBuf::from("/r")]);
        assert!(w.files.iter().any(|f| f.path == Path::new("/r/open/y")));
        assert!(!w.files.iter().any(|f| f.path == Path::new("/r/locked/x")));
        assert_eq!(w.unreadable.len(), 1);
        assert_eq!(w.unreadable[0].path, PathBuf::from("/r/locked"));
    }
}

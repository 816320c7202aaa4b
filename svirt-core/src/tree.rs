//! Walking a directory share safely and cheaply: every entry is opened relative to its parent's
//! fd with `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)`, so a symlink (or a directory swapped
//! for one mid-walk) is never followed and nothing outside the tree is reached. Only regular
//! files and directories are visited, and only they are opened for reading (device nodes are
//! never opened); attributes are then read and written on the fd itself. At most one directory
//! fd per level of depth is open at a time. The walk stays on the share's own mount, like
//! `find -xdev` and `setfiles -x`: every entry is opened with `RESOLVE_NO_XDEV` and checked to
//! lie on the root's device, and a mount point inside is skipped and returned, never crossed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::host::{FileKind, FileMeta, Host, Node};

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

/// Call `f(rel, node, meta)` for every regular file and directory below the directory `root`
/// (not `root` itself), parents before their children, without leaving `root`'s mount. Returns
/// the mount points found inside (relative to `root`), which were skipped.
pub fn walk(
    host: &dyn Host,
    root: &Node,
    f: &mut dyn FnMut(&Path, &Node, &FileMeta) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    walk_kinds(host, root, false, f)
}

/// Like [`walk`], and also every other entry (symlinks, FIFOs, sockets, device nodes), each
/// opened `O_PATH|O_NOFOLLOW` (never for data, never followed): what a VM may have created.
pub fn walk_all(
    host: &dyn Host,
    root: &Node,
    f: &mut dyn FnMut(&Path, &Node, &FileMeta) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    walk_kinds(host, root, true, f)
}

fn walk_kinds(
    host: &dyn Host,
    root: &Node,
    all: bool,
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
            if all {
                match host.open_child(dir, &name) {
                    Ok(node) => {
                        let meta = host
                            .meta(&node)
                            .map_err(|e| Error::host("inspect", node.path(), e))?;
                        if !matches!(meta.kind, FileKind::File | FileKind::Dir)
                            && meta.dev == device
                        {
                            f(&rel, &node, &meta)?;
                        }
                    }
                    Err(e) if skippable(&e) || mount_point(&e) => {}
                    Err(e) => return Err(Error::host("open", dir.path().join(&name), e)),
                }
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
        let mounts = walk(&h, &root, &mut |rel, _, _| {
            seen.push(rel.to_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(mounts, vec![PathBuf::from("bound")]);
        assert_eq!(seen, vec![PathBuf::from("a"), PathBuf::from("a/file")]);
    }
}

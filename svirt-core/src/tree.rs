//! Walking a directory share safely and cheaply: every entry is opened relative to its parent's
//! fd with `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)`, so a symlink (or a directory swapped
//! for one mid-walk) is never followed and nothing outside the tree is reached. Only regular
//! files and directories are visited, and only they are opened for reading (device nodes are
//! never opened); attributes are then read and written on the fd itself. At most one directory
//! fd per level of depth is open at a time.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::host::{FileKind, FileMeta, Host, Node};

struct Frame {
    rel: PathBuf,
    dir: Node,
    entries: Vec<(OsString, Option<FileKind>)>,
    next: usize,
}

fn skippable(e: &std::io::Error) -> bool {
    // Gone, a symlink (ELOOP), an escape (EXDEV), or not a directory any more (ENOTDIR).
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ELOOP) | Some(libc::EXDEV) | Some(libc::ENOTDIR)
    )
}

/// Call `f(rel, node, meta)` for every regular file and directory below `root` (not `root`
/// itself), parents before their children.
pub fn walk(
    host: &dyn Host,
    root: &Path,
    f: &mut dyn FnMut(&Path, &Node, &FileMeta) -> Result<()>,
) -> Result<()> {
    walk_kinds(host, root, false, f)
}

/// Like [`walk`], and also every other entry (symlinks, FIFOs, sockets, device nodes), each
/// opened `O_PATH|O_NOFOLLOW` (never for data, never followed): what a VM may have created.
pub fn walk_all(
    host: &dyn Host,
    root: &Path,
    f: &mut dyn FnMut(&Path, &Node, &FileMeta) -> Result<()>,
) -> Result<()> {
    walk_kinds(host, root, true, f)
}

fn walk_kinds(
    host: &dyn Host,
    root: &Path,
    all: bool,
    f: &mut dyn FnMut(&Path, &Node, &FileMeta) -> Result<()>,
) -> Result<()> {
    let top = host
        .open_node(root)
        .map_err(|e| Error::host("open", root, e))?;
    let entries = host
        .list_dir(&top)
        .map_err(|e| Error::host("list", root, e))?;
    let mut stack = vec![Frame {
        rel: PathBuf::new(),
        dir: top,
        entries,
        next: 0,
    }];
    while let Some(frame) = stack.last_mut() {
        let Some((name, kind)) = frame.entries.get(frame.next).cloned() else {
            stack.pop();
            continue;
        };
        frame.next += 1;
        let kind = match kind {
            Some(k) => k,
            // No d_type from this filesystem: look without opening for data first.
            None => match host
                .open_child(&frame.dir, &name)
                .and_then(|n| host.meta(&n))
            {
                Ok(m) => m.kind,
                Err(e) if skippable(&e) => continue,
                Err(e) => return Err(Error::host("inspect", frame.dir.path().join(&name), e)),
            },
        };
        if !matches!(kind, FileKind::File | FileKind::Dir) {
            if all {
                match host.open_child(&frame.dir, &name) {
                    Ok(node) => {
                        let meta = host
                            .meta(&node)
                            .map_err(|e| Error::host("inspect", node.path(), e))?;
                        if !matches!(meta.kind, FileKind::File | FileKind::Dir) {
                            f(&frame.rel.join(&name), &node, &meta)?;
                        }
                    }
                    Err(e) if skippable(&e) => {}
                    Err(e) => return Err(Error::host("open", frame.dir.path().join(&name), e)),
                }
            }
            continue;
        }
        let child = match host.open_child_data(&frame.dir, &name) {
            Ok(c) => c,
            Err(e) if skippable(&e) => continue,
            Err(e) => return Err(Error::host("open", frame.dir.path().join(&name), e)),
        };
        let meta = host
            .meta(&child)
            .map_err(|e| Error::host("inspect", child.path(), e))?;
        if !matches!(meta.kind, FileKind::File | FileKind::Dir) {
            continue;
        }
        let rel = frame.rel.join(&name);
        f(&rel, &child, &meta)?;
        if meta.kind == FileKind::Dir {
            let entries = match host.list_dir(&child) {
                Ok(e) => e,
                Err(e) if skippable(&e) => continue,
                Err(e) => return Err(Error::host("list", child.path(), e)),
            };
            stack.push(Frame {
                rel,
                dir: child,
                entries,
                next: 0,
            });
        }
    }
    Ok(())
}

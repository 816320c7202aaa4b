//! An in-memory [`Host`] that records every call and can inject errors. It never panics.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use super::{FileKind, FileMeta, Host, Node};

#[derive(Clone, Debug)]
struct Entry {
    meta: FileMeta,
    xattrs: BTreeMap<String, Vec<u8>>,
    target: Option<PathBuf>,
}

#[derive(Clone, Debug)]
struct Fault {
    op: &'static str,
    path: PathBuf,
    xattr_prefix: Option<String>,
    errno: i32,
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
struct Inner {
    files: BTreeMap<PathBuf, Entry>,
    calls: Vec<String>,
    faults: Vec<Fault>,
    boot_id: String,
    procs: BTreeMap<u32, (String, u32, u32)>,
    creds: BTreeMap<u32, super::ProcCreds>,
    swaps: Vec<(PathBuf, PathBuf)>,
    fs_types: BTreeMap<PathBuf, i64>,
    mounts: Vec<PathBuf>,
    next_ino: u64,
    clock: i64,
}

/// The recording fake host.
#[derive(Debug)]
pub struct FakeHost {
    inner: Mutex<Inner>,
}

impl Default for FakeHost {
    fn default() -> Self {
        let host = FakeHost {
            inner: Mutex::new(Inner {
                boot_id: "boot-1".into(),
                next_ino: 1,
                ..Inner::default()
            }),
        };
        host.add(Path::new("/"), FileKind::Dir, 0, 0, 0o755);
        host
    }
}

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

impl FakeHost {
    /// An empty filesystem holding only `/`.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a file (and any missing parent directories).
    pub fn add(&self, path: &Path, kind: FileKind, uid: u32, gid: u32, mode: u32) {
        let path = normalize(path);
        let mut g = self.lock();
        let mut parents: Vec<PathBuf> = path.ancestors().skip(1).map(Path::to_owned).collect();
        parents.reverse();
        for p in parents {
            if !g.files.contains_key(&p) {
                let ino = g.next_ino;
                g.next_ino += 1;
                g.files.insert(p, entry(FileKind::Dir, 0, 0, 0o755, ino));
            }
        }
        let ino = g.next_ino;
        g.next_ino += 1;
        g.files.insert(path, entry(kind, uid, gid, mode, ino));
    }

    /// Add a regular file owned by root, mode 0644.
    pub fn add_file(&self, path: &str) {
        self.add(Path::new(path), FileKind::File, 0, 0, 0o644);
    }

    /// Add a symlink.
    pub fn add_symlink(&self, path: &str, target: &str) {
        self.add(Path::new(path), FileKind::Symlink, 0, 0, 0o777);
        if let Some(e) = self.lock().files.get_mut(&normalize(Path::new(path))) {
            e.target = Some(PathBuf::from(target));
        }
    }

    /// Add a device node `major:minor` of `kind` (Char or Block), root-owned, mode 0666.
    pub fn add_device(&self, path: &str, kind: FileKind, major: u32, minor: u32) {
        self.add(Path::new(path), kind, 0, 0, 0o666);
        if let Some(e) = self.lock().files.get_mut(&normalize(Path::new(path))) {
            e.meta.rdev = FileMeta::make_rdev(major, minor);
        }
    }

    /// Make the directory `path` a mount point: opening it from its parent gives `EXDEV`, as
    /// `RESOLVE_NO_XDEV` does.
    pub fn add_mount(&self, path: &str) {
        self.lock().mounts.push(normalize(Path::new(path)));
    }

    /// Set an xattr directly (no call recorded).
    pub fn put_xattr(&self, path: &str, name: &str, value: &[u8]) {
        if let Some(e) = self.lock().files.get_mut(&normalize(Path::new(path))) {
            e.xattrs.insert(name.to_owned(), value.to_vec());
        }
    }

    /// An xattr as stored.
    pub fn xattr(&self, path: &str, name: &str) -> Option<Vec<u8>> {
        self.lock()
            .files
            .get(&normalize(Path::new(path)))
            .and_then(|e| e.xattrs.get(name).cloned())
    }

    /// The SELinux label as stored (without NUL).
    pub fn label(&self, path: &str) -> Option<String> {
        self.xattr(path, super::SELINUX_XATTR)
            .map(|v| String::from_utf8_lossy(v.strip_suffix(b"\0").unwrap_or(&v)).into_owned())
    }

    /// Every xattr name of a file.
    pub fn xattr_names(&self, path: &str) -> Vec<String> {
        self.lock()
            .files
            .get(&normalize(Path::new(path)))
            .map(|e| e.xattrs.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Owner and mode of a file.
    pub fn owner(&self, path: &str) -> Option<(u32, u32, u32)> {
        self.lock()
            .files
            .get(&normalize(Path::new(path)))
            .map(|e| (e.meta.uid, e.meta.gid, e.meta.mode))
    }

    /// Make `op` on `path` fail with `errno`, `times` times (None: always). `op` is a method name
    /// of [`Host`]; for xattr calls, a fault on `set_xattr` may be narrowed to a name prefix with
    /// [`FakeHost::fail_xattr`].
    pub fn fail(&self, op: &'static str, path: &str, errno: i32, times: Option<u32>) {
        self.lock().faults.push(Fault {
            op,
            path: normalize(Path::new(path)),
            xattr_prefix: None,
            errno,
            remaining: times,
        });
    }

    /// Make xattr `op` fail with `errno` for names starting with `prefix`, on every path.
    pub fn fail_xattr(&self, op: &'static str, prefix: &str, errno: i32) {
        self.lock().faults.push(Fault {
            op,
            path: PathBuf::from("/"),
            xattr_prefix: Some(prefix.to_owned()),
            errno,
            remaining: None,
        });
    }

    /// Before `path` is next opened, replace it with a symlink to `target` (a race, made exact).
    pub fn swap_before_open(&self, path: &str, target: &str) {
        self.lock()
            .swaps
            .push((normalize(Path::new(path)), PathBuf::from(target)));
    }

    /// Report `fs_type` for everything under `path`.
    pub fn set_fs_type(&self, path: &str, magic: i64) {
        self.lock()
            .fs_types
            .insert(normalize(Path::new(path)), magic);
    }

    /// Pretend the host rebooted.
    pub fn set_boot_id(&self, id: &str) {
        self.lock().boot_id = id.to_owned();
    }

    /// Add a live process with a label and owner.
    pub fn add_process(&self, pid: u32, label: &str, uid: u32, gid: u32) {
        self.lock().procs.insert(pid, (label.to_owned(), uid, gid));
    }

    /// A process with all its credentials and state as a scan reads them (`label` "").
    pub fn add_process_creds(&self, pid: u32, creds: super::ProcCreds) {
        let mut g = self.lock();
        g.procs
            .insert(pid, (String::new(), creds.uids[0], creds.gids[0]));
        g.creds.insert(pid, creds);
    }

    /// Remove a process (it died).
    pub fn kill_process(&self, pid: u32) {
        let mut g = self.lock();
        g.procs.remove(&pid);
        g.creds.remove(&pid);
    }

    /// Every call recorded so far, as `op path [detail]`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Every path below (and including) `root`.
    pub fn paths_under(&self, root: &str) -> Vec<PathBuf> {
        let root = normalize(Path::new(root));
        self.lock()
            .files
            .keys()
            .filter(|p| p.starts_with(&root))
            .cloned()
            .collect()
    }

    fn begin(&self, op: &'static str, path: &Path, detail: &str) -> io::Result<()> {
        let mut g = self.lock();
        g.calls.push(
            format!("{op} {}{detail}", path.display())
                .trim_end()
                .to_owned(),
        );
        let xattr_name = detail.trim().split('=').next().unwrap_or("").to_owned();
        for f in g.faults.iter_mut() {
            let path_hit = path.starts_with(&f.path);
            let name_hit = f
                .xattr_prefix
                .as_ref()
                .is_none_or(|p| xattr_name.starts_with(p.as_str()));
            if f.op == op && path_hit && name_hit && f.remaining != Some(0) {
                if let Some(n) = f.remaining.as_mut() {
                    *n -= 1;
                }
                return Err(errno(f.errno));
            }
        }
        Ok(())
    }

    fn with_entry<T>(
        &self,
        path: &Path,
        f: impl FnOnce(&mut Entry) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut g = self.lock();
        match g.files.get_mut(&normalize(path)) {
            Some(e) => f(e),
            None => Err(errno(libc::ENOENT)),
        }
    }

    /// Change an entry as a syscall would, moving its ctime.
    fn change_entry(&self, path: &Path, f: impl FnOnce(&mut Entry)) -> io::Result<()> {
        let mut g = self.lock();
        g.clock += 1;
        let now = g.clock;
        match g.files.get_mut(&normalize(path)) {
            Some(e) => {
                f(e);
                e.meta.ctime_ns = now;
                Ok(())
            }
            None => Err(errno(libc::ENOENT)),
        }
    }

    /// Rename `from` (and everything below it) to `to`, keeping inodes, as a guest would.
    pub fn rename(&self, from: &str, to: &str) {
        let (from, to) = (normalize(Path::new(from)), normalize(Path::new(to)));
        let mut g = self.lock();
        let moved: Vec<PathBuf> = g
            .files
            .keys()
            .filter(|k| k.starts_with(&from))
            .cloned()
            .collect();
        for old in moved {
            if let (Some(e), Ok(rest)) = (g.files.remove(&old), old.strip_prefix(&from)) {
                let new = if rest.as_os_str().is_empty() {
                    to.clone()
                } else {
                    to.join(rest)
                };
                g.files.insert(new, e);
            }
        }
    }

    /// Remove a file (and everything below it).
    pub fn remove(&self, path: &str) {
        let p = normalize(Path::new(path));
        self.lock().files.retain(|k, _| !k.starts_with(&p));
    }

    /// The inode number of a file.
    pub fn ino(&self, path: &str) -> Option<u64> {
        self.lock()
            .files
            .get(&normalize(Path::new(path)))
            .map(|e| e.meta.ino)
    }
}

fn entry(kind: FileKind, uid: u32, gid: u32, mode: u32, ino: u64) -> Entry {
    Entry {
        meta: FileMeta {
            kind,
            uid,
            gid,
            mode,
            dev: 1,
            ino,
            nlink: 1,
            ctime_ns: 0,
            rdev: 0,
            birth_ns: None,
        },
        xattrs: BTreeMap::new(),
        target: None,
    }
}

impl Host for FakeHost {
    fn lstat(&self, path: &Path) -> io::Result<FileMeta> {
        self.begin("lstat", path, "")?;
        self.with_entry(path, |e| Ok(e.meta))
    }

    fn stat(&self, path: &Path) -> io::Result<FileMeta> {
        self.begin("stat", path, "")?;
        let real = self.resolve(path)?;
        self.with_entry(&real, |e| Ok(e.meta))
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.begin("read_link", path, "")?;
        self.with_entry(path, |e| {
            e.target.clone().ok_or_else(|| errno(libc::EINVAL))
        })
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        self.begin("canonicalize", path, "")?;
        self.resolve(path)
    }

    fn open_node(&self, path: &Path) -> io::Result<Node> {
        self.begin("open_node", path, "")?;
        self.apply_swap(path);
        let p = normalize(path);
        if self.lock().files.contains_key(&p) {
            Ok(Node::new(p, None))
        } else {
            Err(errno(libc::ENOENT))
        }
    }

    fn open_resolved(&self, path: &Path) -> io::Result<Node> {
        self.begin("open_resolved", path, "")?;
        self.apply_swap(path);
        Ok(Node::new(self.resolve(path)?, None))
    }

    fn node_path(&self, node: &Node) -> io::Result<PathBuf> {
        self.begin("node_path", node.path(), "")?;
        Ok(node.path().to_owned())
    }

    fn open_child(&self, dir: &Node, name: &OsStr) -> io::Result<Node> {
        let path = dir.path().join(name);
        self.begin("open_child", &path, "")?;
        if name == ".." || name == "." || name.to_string_lossy().contains('/') {
            return Err(errno(libc::EXDEV));
        }
        if self.lock().mounts.contains(&path) {
            return Err(errno(libc::EXDEV));
        }
        // The directory itself must still be a directory (not swapped for a link).
        let dir_ok = matches!(
            self.lock().files.get(dir.path()).map(|e| e.meta.kind),
            Some(FileKind::Dir)
        );
        if !dir_ok {
            return Err(errno(libc::ENOTDIR));
        }
        self.apply_swap(&path);
        if self.lock().files.contains_key(&path) {
            Ok(Node::new(path, None))
        } else {
            Err(errno(libc::ENOENT))
        }
    }

    fn meta(&self, node: &Node) -> io::Result<FileMeta> {
        self.begin("meta", node.path(), "")?;
        self.with_entry(node.path(), |e| Ok(e.meta))
    }

    fn open_child_data(&self, dir: &Node, name: &OsStr) -> io::Result<Node> {
        let path = dir.path().join(name);
        self.begin("open_child_data", &path, "")?;
        if name == ".." || name == "." || name.to_string_lossy().contains('/') {
            return Err(errno(libc::EXDEV));
        }
        if self.lock().mounts.contains(&path) {
            return Err(errno(libc::EXDEV));
        }
        if !matches!(
            self.lock().files.get(dir.path()).map(|e| e.meta.kind),
            Some(FileKind::Dir)
        ) {
            return Err(errno(libc::ENOTDIR));
        }
        self.apply_swap(&path);
        match self.lock().files.get(&path).map(|e| e.meta.kind) {
            None => Err(errno(libc::ENOENT)),
            Some(FileKind::Symlink) => Err(errno(libc::ELOOP)),
            Some(_) => Ok(Node::new(path, None)),
        }
    }

    fn list_dir(&self, dir: &Node) -> io::Result<Vec<(OsString, Option<FileKind>)>> {
        self.begin("list_dir", dir.path(), "")?;
        let g = self.lock();
        match g.files.get(dir.path()).map(|e| e.meta.kind) {
            Some(FileKind::Dir) => {}
            Some(_) => return Err(errno(libc::ENOTDIR)),
            None => return Err(errno(libc::ENOENT)),
        }
        Ok(g.files
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir.path()) && p.as_path() != dir.path())
            .filter_map(|(p, e)| p.file_name().map(|n| (n.to_owned(), Some(e.meta.kind))))
            .collect())
    }

    fn get_xattr(&self, node: &Node, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.begin("get_xattr", node.path(), &format!(" {name}"))?;
        self.with_entry(node.path(), |e| Ok(e.xattrs.get(name).cloned()))
    }

    fn set_xattr(&self, node: &Node, name: &str, value: &[u8]) -> io::Result<()> {
        let shown =
            String::from_utf8_lossy(value.strip_suffix(b"\0").unwrap_or(value)).into_owned();
        self.begin("set_xattr", node.path(), &format!(" {name}={shown}"))?;
        self.change_entry(node.path(), |e| {
            e.xattrs.insert(name.to_owned(), value.to_vec());
        })
    }

    fn remove_xattr(&self, node: &Node, name: &str) -> io::Result<()> {
        self.begin("remove_xattr", node.path(), &format!(" {name}"))?;
        self.change_entry(node.path(), |e| {
            e.xattrs.remove(name);
        })
    }

    fn chown(&self, node: &Node, uid: u32, gid: u32) -> io::Result<()> {
        self.begin("chown", node.path(), &format!(" {uid}:{gid}"))?;
        self.change_entry(node.path(), |e| {
            e.meta.uid = uid;
            e.meta.gid = gid;
        })
    }

    fn chmod(&self, node: &Node, mode: u32) -> io::Result<()> {
        self.begin("chmod", node.path(), &format!(" {mode:o}"))?;
        self.change_entry(node.path(), |e| {
            e.meta.mode = mode & 0o7777;
        })
    }

    fn fs_type(&self, node: &Node) -> io::Result<i64> {
        self.begin("fs_type", node.path(), "")?;
        let g = self.lock();
        Ok(g.fs_types
            .iter()
            .filter(|(p, _)| node.path().starts_with(p))
            .max_by_key(|(p, _)| p.as_os_str().len())
            .map(|(_, &m)| m)
            .unwrap_or(0xEF53))
    }

    fn boot_id(&self) -> io::Result<String> {
        self.begin("boot_id", Path::new(""), "")?;
        Ok(self.lock().boot_id.clone())
    }

    fn pid_alive(&self, pid: u32) -> bool {
        self.lock().procs.contains_key(&pid)
    }

    fn pid_label(&self, pid: u32) -> io::Result<String> {
        self.begin("pid_label", Path::new(&pid.to_string()), "")?;
        self.lock()
            .procs
            .get(&pid)
            .map(|p| p.0.clone())
            .ok_or_else(|| errno(libc::ESRCH))
    }

    fn pid_owner(&self, pid: u32) -> io::Result<(u32, u32)> {
        self.lock()
            .procs
            .get(&pid)
            .map(|p| (p.1, p.2))
            .ok_or_else(|| errno(libc::ESRCH))
    }

    /// The fake's processes never fork: there is nothing to hold still.
    fn hold_uids(&self, uids: &[u32]) -> io::Result<()> {
        if uids.contains(&0) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(())
    }

    /// Recorded as `continue_as uids=[..] pids=[..]`; every pid is reached.
    fn continue_as(&self, uids: &[u32], pids: &[u32]) -> io::Result<Vec<u32>> {
        self.hold_uids(uids)?;
        self.begin(
            "continue_as",
            Path::new(""),
            &format!("uids={uids:?} pids={pids:?}"),
        )?;
        Ok(pids.to_vec())
    }

    fn pid_creds(&self, pid: u32) -> io::Result<super::ProcCreds> {
        if let Some(c) = self.lock().creds.get(&pid) {
            return Ok(c.clone());
        }
        let (uid, gid) = self.pid_owner(pid)?;
        Ok(super::ProcCreds::running_as(uid, gid))
    }

    fn pids(&self) -> io::Result<Vec<u32>> {
        Ok(self.lock().procs.keys().copied().collect())
    }

    fn handle(&self, node: &Node) -> io::Result<Option<Vec<u8>>> {
        self.begin("handle", node.path(), "")?;
        // Inode numbers are never reused by the fake, so the number itself is a handle.
        self.with_entry(node.path(), |e| Ok(Some(e.meta.ino.to_le_bytes().to_vec())))
    }

    fn open_by_handle(&self, _mount: &Node, handle: &[u8]) -> io::Result<Node> {
        self.begin("open_by_handle", Path::new(""), "")?;
        let ino = <[u8; 8]>::try_from(handle)
            .map(u64::from_le_bytes)
            .map_err(|_| errno(libc::EINVAL))?;
        let g = self.lock();
        g.files
            .iter()
            .find(|(_, e)| e.meta.ino == ino)
            .map(|(p, _)| Node::new(p.clone(), None))
            .ok_or_else(|| errno(libc::ESTALE))
    }

    fn current_path(&self, node: &Node) -> io::Result<PathBuf> {
        Ok(node.path().to_owned())
    }
}

impl FakeHost {
    /// Every symlink of `path` followed, as `realpath` does.
    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        let mut cur = normalize(path);
        for _ in 0..40 {
            // Resolve the first symlink component, if any.
            let mut resolved = PathBuf::from("/");
            let mut changed = false;
            let comps: Vec<_> = cur.components().collect();
            for (i, c) in comps.iter().enumerate() {
                resolved.push(c);
                let target = self
                    .lock()
                    .files
                    .get(&resolved)
                    .and_then(|e| e.target.clone());
                if let Some(t) = target {
                    let base = resolved.parent().map(Path::to_owned).unwrap_or_default();
                    let mut next = normalize(&base.join(t));
                    for rest in &comps[i + 1..] {
                        next.push(rest);
                    }
                    cur = normalize(&next);
                    changed = true;
                    break;
                }
            }
            if !changed {
                return if self.lock().files.contains_key(&cur) {
                    Ok(cur)
                } else {
                    Err(errno(libc::ENOENT))
                };
            }
        }
        Err(errno(libc::ELOOP))
    }

    fn apply_swap(&self, path: &Path) {
        let p = normalize(path);
        let mut g = self.lock();
        if let Some(pos) = g.swaps.iter().position(|(s, _)| *s == p) {
            let (_, target) = g.swaps.remove(pos);
            let doomed: Vec<PathBuf> = g
                .files
                .keys()
                .filter(|k| k.starts_with(&p))
                .cloned()
                .collect();
            for d in doomed {
                g.files.remove(&d);
            }
            let ino = g.next_ino;
            g.next_ino += 1;
            let mut e = entry(FileKind::Symlink, 0, 0, 0o777, ino);
            e.target = Some(target);
            g.files.insert(p, e);
        }
    }
}

//! The real host: rustix/nix calls on Linux.

use std::ffi::CStr;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags, CWD};

use super::{FileKind, FileMeta, Host, Node};

/// The highest process id Linux hands out (`PID_MAX_LIMIT` on 64-bit machines).
const PID_LIMIT: u32 = 1 << 22;

/// The real uids of the threads that signal a uid's processes, one per svirt process
/// ([`signal_sender_uid`]): uids no process runs with, counted down from `(uid_t)-2`. A pool
/// must not include them (the DAC driver refuses one that does).
pub const SIGNAL_SENDER_UIDS: std::ops::RangeInclusive<u32> =
    (u32::MAX - 1 - PID_LIMIT)..=(u32::MAX - 1);

/// The real uid this process's signalling thread takes: `(uid_t)-2` less its process id. Its
/// effective uid is the one whose processes it signals, which is what the kernel checks against
/// theirs; a process may signal a thread only if its own real or effective uid is the thread's
/// real or saved uid (or it has `CAP_KILL`), so the guest, which runs with neither, cannot stop
/// or kill svirt. Nor can another svirt process holding a uid at the same moment: its
/// signalling thread's real uid is its own. That matters where the signalling thread is the
/// process's main one (the CLI runs its operation there), since `kill(-1)` checks a process by
/// its main thread's credentials. (Two svirt processes of two pid namespaces may share a pid,
/// and so this uid.)
pub fn signal_sender_uid() -> u32 {
    *SIGNAL_SENDER_UIDS.end() - std::process::id() % (PID_LIMIT + 1)
}

/// Run `f(state, uid)` for each of `uids` in turn on the calling thread, which takes each uid
/// as [`become_sender`] says and goes back to its own uids between two and after the last
/// (its saved uid stays 0, so it always can; credentials are per thread, and the raw call
/// changes this one's only). `f` returns false once it needs no more uids. Returns the state.
/// Refused when `uids` holds 0 or `(uid_t)-1` (which leaves the effective uid root), or when
/// the thread does not run as root.
///
/// No thread of its own: one cost a tenth of a millisecond per stop (a stack, a malloc arena),
/// and nothing runs on this one while it holds another uid: `f` only signals.
fn as_each_uid<S>(
    uids: &[u32],
    mut state: S,
    mut f: impl FnMut(&mut S, u32) -> io::Result<bool>,
) -> io::Result<S> {
    use rustix::process::Uid;
    if uids.iter().any(|u| *u == 0 || *u == u32::MAX) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let (real, effective) = (rustix::process::getuid(), rustix::process::geteuid());
    if !effective.is_root() {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    for &uid in uids {
        become_sender(uid)?;
        let more = f(&mut state, uid);
        if let Err(e) = rustix::thread::set_thread_res_uid(real, effective, Uid::ROOT) {
            // Unreachable with a saved uid of 0 but for the kernel running out of memory; a
            // thread left with a guest's uid must not go on to run anything else.
            tracing::error!(uid, error = %e, "could not take back root after signalling a uid's processes");
            std::process::abort();
        }
        if !more? {
            break;
        }
    }
    Ok(state)
}

/// SIGCONT to each of `pids`, one by one, from this thread; the pids it reached, and those
/// gone (one this thread may not signal is neither).
fn continue_pids(pids: &[u32]) -> io::Result<(Vec<u32>, Vec<u32>)> {
    let (mut reached, mut gone) = (Vec::new(), Vec::new());
    for &pid in pids {
        let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
            gone.push(pid);
            continue;
        };
        match rustix::process::kill_process(p, rustix::process::Signal::CONT) {
            Ok(()) => reached.push(pid),
            // Gone: no other uid reaches it either.
            Err(rustix::io::Errno::SRCH) => gone.push(pid),
            Err(rustix::io::Errno::PERM) => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok((reached, gone))
}

/// This thread as the sender of signals to `uid`'s processes: effective uid `uid`, which the
/// kernel checks against theirs; real uid [`signal_sender_uid`], which none of them has; saved
/// uid root, to go back (its effective capabilities go with its root euid).
fn become_sender(uid: u32) -> io::Result<()> {
    use rustix::process::Uid;
    rustix::thread::set_thread_res_uid(
        Uid::from_raw(signal_sender_uid()),
        Uid::from_raw(uid),
        Uid::ROOT,
    )
    .map_err(io_err)
}

/// A process as `/proc/PID/status` shows it: whether it runs (in any thread), and its
/// credentials.
struct ProcStatus {
    running: bool,
    creds: super::ProcCreds,
}

/// [`Host`] on the running Linux kernel. `proc` is the procfs mount (normally `/proc`);
/// `boot_id` the file holding this boot's id.
#[derive(Debug, Clone)]
pub struct LinuxHost {
    proc: PathBuf,
    boot_id: PathBuf,
}

impl Default for LinuxHost {
    fn default() -> Self {
        LinuxHost {
            proc: PathBuf::from("/proc"),
            boot_id: PathBuf::from("/proc/sys/kernel/random/boot_id"),
        }
    }
}

impl LinuxHost {
    /// A host whose procfs is at `proc`.
    pub fn with_proc(proc: impl Into<PathBuf>) -> Self {
        let proc = proc.into();
        LinuxHost {
            boot_id: proc.join("sys/kernel/random/boot_id"),
            proc,
        }
    }

    /// The same host reading its boot id from `path` (tests simulate a reboot with it).
    pub fn with_boot_id_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.boot_id = path.into();
        self
    }

    /// `/proc/PID/FILE` whole, read into a buffer grown as needed: a procfs file has no size
    /// to ask for first, and a stop reads one for every process on the host. Read as bytes: a
    /// process names itself with any bytes, and `status` and `stat` show the name as it is.
    fn read_proc(&self, pid: u32, file: &str) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut path = self.proc.join(pid.to_string());
        path.push(file);
        let mut f = fs::File::open(&path)?;
        let mut buf = vec![0u8; 4096];
        let mut n = 0;
        loop {
            if n == buf.len() {
                buf.resize(n * 2, 0);
            }
            match f.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(n);
        Ok(buf)
    }

    /// What `/proc/PID/status` says of a process (bytes, `read_proc`: a name that is not UTF-8
    /// must not hide it).
    fn status(&self, pid: u32) -> io::Result<ProcStatus> {
        let status = self.read_proc(pid, "status")?;
        let line = |key: &[u8]| {
            status
                .split(|b| *b == b'\n')
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| std::str::from_utf8(v).ok())
        };
        // A zombie runs nothing and holds no file: it carries no identity. Unless only its
        // main thread exited: the process runs on in its other threads (`Threads:` above 1),
        // with the same credentials.
        let state = line(b"State:").and_then(|v| v.trim_start().chars().next());
        let dead = matches!(state, Some('Z' | 'X'));
        let threads: u32 = line(b"Threads:")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1);
        // Real, effective, saved and filesystem ids, in that order.
        let ids = |key: &str| -> io::Result<[u32; 4]> {
            let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("no {key}"));
            let mut out = [0u32; 4];
            let mut words = line(key.as_bytes()).ok_or_else(bad)?.split_whitespace();
            for id in &mut out {
                *id = words.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            }
            Ok(out)
        };
        // Stopped by a signal (`T`), or in a tracer's stop (`t`: a SIGSTOP to a traced process
        // leaves it stopped once the tracer lets go). The main thread's state is the process's,
        // unless the main thread exited: then its other threads tell.
        //
        // Or stopping: a SIGSTOP sent and not yet acted on (pending for the process or its main
        // thread). `kill` returns once the signal is queued and the process woken; it stops
        // when it next runs, and a scan right after a hold may read it first. And a process
        // whose group stop another thread began: its main thread still runs (`R`) until it is
        // scheduled, while that thread is stopped.
        let stop_pending = [&b"ShdPnd:"[..], b"SigPnd:"].iter().any(|key| {
            line(key)
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
                .is_some_and(|mask| mask & (1 << (libc::SIGSTOP - 1)) != 0)
        });
        let halted = match (dead && threads > 1, state) {
            (false, Some('T' | 't')) => true,
            (false, Some('R' | 'D')) if threads > 1 => self.any_task_stopped(pid),
            (false, _) => false,
            (true, _) => self.any_task_stopped(pid),
        };
        let groups = line(b"Groups:")
            .map(|v| {
                v.split_whitespace()
                    .filter_map(|g| g.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        Ok(ProcStatus {
            running: !(dead && threads <= 1),
            creds: super::ProcCreds {
                uids: ids("Uid:")?,
                gids: ids("Gid:")?,
                groups,
                stopped: halted || stop_pending,
                stopping: stop_pending && !halted,
                kernel: line(b"Kthread:").is_some_and(|v| v.trim() == "1"),
                traced: line(b"TracerPid:").is_some_and(|v| v.trim() != "0"),
            },
        })
    }

    /// Whether any thread of `pid` is stopped (`T` or `t` in `/proc/PID/task/TID/stat`).
    fn any_task_stopped(&self, pid: u32) -> bool {
        let Ok(tasks) = fs::read_dir(self.proc.join(pid.to_string()).join("task")) else {
            return false;
        };
        tasks.flatten().any(|t| {
            let Some(tid) = t.file_name().to_str().map(str::to_owned) else {
                return false;
            };
            self.read_proc(pid, &format!("task/{tid}/stat"))
                .ok()
                .and_then(|st| {
                    // `TID (NAME) STATE ...`: the name may hold anything, the state follows
                    // its last ')'.
                    let at = st.iter().rposition(|&b| b == b')')?;
                    st[at + 1..]
                        .iter()
                        .find(|b| !b.is_ascii_whitespace())
                        .copied()
                })
                .is_some_and(|s| s == b'T' || s == b't')
        })
    }

    /// The directory itself opened for reading (O_PATH fds cannot be read), relative to the node.
    fn dir_fd(&self, dir: &Node) -> io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match dir.fd() {
            Some(d) => rfs::openat(d.as_fd(), ".", flags, Mode::empty()),
            None => rfs::openat(CWD, dir.path(), flags, Mode::empty()),
        }
        .map_err(io_err)
    }

    /// `/proc/self/fd/N/NAME`: the entry of an open directory, for the path-based fallbacks
    /// (the directory is the one the fd holds, whatever its path is now).
    fn entry_path(&self, dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
        use std::os::fd::AsRawFd;
        self.proc
            .join("self/fd")
            .join(dir.as_raw_fd().to_string())
            .join(name)
    }

    fn fd_path(&self, node: &Node) -> PathBuf {
        match node.fd() {
            Some(fd) => {
                use std::os::fd::AsRawFd;
                self.proc.join("self/fd").join(fd.as_raw_fd().to_string())
            }
            None => node.path().to_owned(),
        }
    }
}

fn kind_of(mode: u32) -> FileKind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileKind::Dir,
        libc::S_IFLNK => FileKind::Symlink,
        libc::S_IFBLK => FileKind::Block,
        libc::S_IFCHR => FileKind::Char,
        libc::S_IFSOCK => FileKind::Socket,
        libc::S_IFIFO => FileKind::Fifo,
        _ => FileKind::File,
    }
}

fn meta_of(st: &rfs::Stat) -> FileMeta {
    FileMeta {
        kind: kind_of(st.st_mode),
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode & 0o7777,
        dev: st.st_dev,
        ino: st.st_ino,
        #[allow(clippy::unnecessary_cast)]
        nlink: st.st_nlink as u64,
        #[allow(clippy::unnecessary_cast)]
        ctime_ns: (st.st_ctime as i64)
            .saturating_mul(1_000_000_000)
            .saturating_add(st.st_ctime_nsec as i64),
        rdev: st.st_rdev,
        birth_ns: None,
    }
}

fn meta_of_statx(st: &rfs::Statx) -> FileMeta {
    let ns = |t: &rfs::StatxTimestamp| {
        t.tv_sec
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(t.tv_nsec))
    };
    FileMeta {
        kind: kind_of(u32::from(st.stx_mode)),
        uid: st.stx_uid,
        gid: st.stx_gid,
        mode: u32::from(st.stx_mode) & 0o7777,
        dev: FileMeta::make_rdev(st.stx_dev_major, st.stx_dev_minor),
        ino: st.stx_ino,
        nlink: u64::from(st.stx_nlink),
        ctime_ns: ns(&st.stx_ctime),
        rdev: FileMeta::make_rdev(st.stx_rdev_major, st.stx_rdev_minor),
        birth_ns: (st.stx_mask & rfs::StatxFlags::BTIME.bits() != 0).then(|| ns(&st.stx_btime)),
    }
}

fn io_err(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

impl Host for LinuxHost {
    fn lstat(&self, path: &Path) -> io::Result<FileMeta> {
        rfs::lstat(path).map(|s| meta_of(&s)).map_err(io_err)
    }

    fn stat(&self, path: &Path) -> io::Result<FileMeta> {
        rfs::stat(path).map(|s| meta_of(&s)).map_err(io_err)
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        fs::read_link(path)
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        fs::canonicalize(path)
    }

    fn open_node(&self, path: &Path) -> io::Result<Node> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err)?;
        Ok(Node::new(path.to_owned(), Some(fd)))
    }

    fn open_resolved(&self, path: &Path) -> io::Result<Node> {
        let fd = rfs::openat2(
            CWD,
            path,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(io_err)?;
        Ok(Node::new(path.to_owned(), Some(fd)))
    }

    fn node_path(&self, node: &Node) -> io::Result<PathBuf> {
        match node.fd() {
            Some(_) => fs::read_link(self.fd_path(node)),
            None => Ok(node.path().to_owned()),
        }
    }

    fn open_child(&self, dir: &Node, name: &OsStr) -> io::Result<Node> {
        let path = dir.path().join(name);
        let Some(dfd) = dir.fd() else {
            return self.open_node(&path);
        };
        if name.as_bytes().contains(&b'/') || name == ".." || name == "." {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        let fd = rfs::openat2(
            dfd.as_fd(),
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::NO_XDEV,
        )
        .map_err(io_err)?;
        Ok(Node::new(path, Some(fd)))
    }

    fn meta(&self, node: &Node) -> io::Result<FileMeta> {
        match node.fd() {
            Some(fd) => rfs::fstat(fd).map(|s| meta_of(&s)).map_err(io_err),
            None => self.lstat(node.path()),
        }
    }

    fn open_child_data(&self, dir: &Node, name: &OsStr) -> io::Result<Node> {
        let path = dir.path().join(name);
        if name.as_bytes().contains(&b'/') || name == ".." || name == "." {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let resolve = ResolveFlags::BENEATH
            | ResolveFlags::NO_SYMLINKS
            | ResolveFlags::NO_MAGICLINKS
            | ResolveFlags::NO_XDEV;
        let fd = match dir.fd() {
            Some(d) => rfs::openat2(d.as_fd(), name, flags, Mode::empty(), resolve),
            None => rfs::openat(CWD, &path, flags, Mode::empty()),
        }
        .map_err(io_err)?;
        Ok(Node::with_data_fd(path, fd))
    }

    fn list_dir(&self, dir: &Node) -> io::Result<Vec<(OsString, Option<FileKind>)>> {
        Ok(self
            .read_dir(dir)?
            .into_iter()
            .map(|e| (e.name, e.kind))
            .collect())
    }

    fn get_xattr(&self, node: &Node, name: &str) -> io::Result<Option<Vec<u8>>> {
        let p = self.fd_path(node);
        let mut buf = Vec::with_capacity(256);
        loop {
            buf.clear();
            let r = if let (true, Some(fd)) = (node.is_data(), node.fd()) {
                rfs::fgetxattr(fd, name, rustix::buffer::spare_capacity(&mut buf))
            } else if node.fd().is_some() {
                rfs::getxattr(&p, name, rustix::buffer::spare_capacity(&mut buf))
            } else {
                rfs::lgetxattr(&p, name, rustix::buffer::spare_capacity(&mut buf))
            };
            match r {
                Ok(_) => return Ok(Some(buf)),
                Err(rustix::io::Errno::NODATA) => return Ok(None),
                Err(rustix::io::Errno::RANGE) if buf.capacity() < 1 << 16 => {
                    buf.reserve(buf.capacity() * 4);
                }
                Err(e) => return Err(io_err(e)),
            }
        }
    }

    fn set_xattr(&self, node: &Node, name: &str, value: &[u8]) -> io::Result<()> {
        if let (true, Some(fd)) = (node.is_data(), node.fd()) {
            return rfs::fsetxattr(fd, name, value, rfs::XattrFlags::empty()).map_err(io_err);
        }
        let p = self.fd_path(node);
        let r = if node.fd().is_some() {
            rfs::setxattr(&p, name, value, rfs::XattrFlags::empty())
        } else {
            rfs::lsetxattr(&p, name, value, rfs::XattrFlags::empty())
        };
        r.map_err(io_err)
    }

    fn remove_xattr(&self, node: &Node, name: &str) -> io::Result<()> {
        let p = self.fd_path(node);
        let r = if let (true, Some(fd)) = (node.is_data(), node.fd()) {
            rfs::fremovexattr(fd, name)
        } else if node.fd().is_some() {
            rfs::removexattr(&p, name)
        } else {
            rfs::lremovexattr(&p, name)
        };
        match r {
            Ok(()) | Err(rustix::io::Errno::NODATA) => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    fn chown(&self, node: &Node, uid: u32, gid: u32) -> io::Result<()> {
        let owner = (
            Some(rustix::process::Uid::from_raw(uid)),
            Some(rustix::process::Gid::from_raw(gid)),
        );
        match node.fd() {
            Some(fd) => rfs::chownat(fd, "", owner.0, owner.1, AtFlags::EMPTY_PATH),
            None => rfs::chownat(
                CWD,
                node.path(),
                owner.0,
                owner.1,
                AtFlags::SYMLINK_NOFOLLOW,
            ),
        }
        .map_err(io_err)
    }

    fn chmod(&self, node: &Node, mode: u32) -> io::Result<()> {
        if let (true, Some(fd)) = (node.is_data(), node.fd()) {
            return rfs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(io_err);
        }
        // chmod through /proc/self/fd/N reaches the inode the O_PATH fd holds.
        rfs::chmod(self.fd_path(node), Mode::from_raw_mode(mode)).map_err(io_err)
    }

    fn fs_type(&self, node: &Node) -> io::Result<i64> {
        let st = match node.fd() {
            Some(fd) => rfs::fstatfs(fd),
            None => rfs::statfs(node.path()),
        }
        .map_err(io_err)?;
        #[allow(clippy::unnecessary_cast)]
        Ok(st.f_type as i64)
    }

    fn boot_id(&self) -> io::Result<String> {
        Ok(fs::read_to_string(&self.boot_id)?.trim().to_owned())
    }

    fn pid_alive(&self, pid: u32) -> bool {
        pid != 0 && self.status(pid).is_ok_and(|st| st.running)
    }

    fn pid_label(&self, pid: u32) -> io::Result<String> {
        let raw = self.read_proc(pid, "attr/current")?;
        let text = String::from_utf8_lossy(&raw);
        Ok(text.trim_end_matches(['\0', '\n']).to_owned())
    }

    fn pid_owner(&self, pid: u32) -> io::Result<(u32, u32)> {
        let c = self.pid_creds(pid)?;
        Ok((c.uids[0], c.gids[0]))
    }

    fn pid_creds(&self, pid: u32) -> io::Result<super::ProcCreds> {
        match self.status(pid)? {
            ProcStatus {
                running: true,
                creds,
            } => Ok(creds),
            _ => Err(io::Error::from_raw_os_error(libc::ESRCH)),
        }
    }

    fn hold_uids(&self, uids: &[u32]) -> io::Result<()> {
        // A signalling uid is another svirt's in the middle of its own hold: never held.
        if uids.iter().any(|u| SIGNAL_SENDER_UIDS.contains(u)) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        as_each_uid(uids, (), |(), _| {
            match crate::sys::kill_all(libc::SIGSTOP) {
                // No process but init and svirt's own.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(true),
                r => r.map(|()| true),
            }
        })
    }

    fn continue_as(&self, uids: &[u32], pids: &[u32]) -> io::Result<Vec<u32>> {
        as_each_uid(
            uids,
            (pids.to_vec(), Vec::new()),
            |(left, reached): &mut (Vec<u32>, Vec<u32>), _| {
                let (now, gone) = continue_pids(left)?;
                left.retain(|p| !now.contains(p) && !gone.contains(p));
                reached.extend(now);
                Ok(!left.is_empty())
            },
        )
        .map(|(_, reached)| reached)
    }

    fn pids(&self) -> io::Result<Vec<u32>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.proc)? {
            if let Some(pid) = e?.file_name().to_str().and_then(|n| n.parse().ok()) {
                out.push(pid);
            }
        }
        Ok(out)
    }

    fn userns_signaller(&self, pid: u32) -> io::Result<Option<u32>> {
        let mut ns: std::os::fd::OwnedFd =
            fs::File::open(self.proc.join(format!("{pid}/ns/user")))?.into();
        // Up the parents to svirt's own namespace, keeping the last two owners: the owner of
        // svirt's own (the last), and of the namespace below it (the one before).
        let (mut below, mut last) = (None, crate::sys::ns_owner_uid(ns.as_fd())?);
        // The kernel nests user namespaces 32 deep at most.
        for _ in 0..33 {
            match crate::sys::ns_parent(ns.as_fd()) {
                Ok(parent) => ns = parent,
                // svirt's own namespace (or one outside it) reached.
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Ok(below),
                Err(e) => return Err(e),
            }
            below = Some(last);
            last = crate::sys::ns_owner_uid(ns.as_fd())?;
        }
        Err(io::Error::from_raw_os_error(libc::ELOOP))
    }

    fn handle(&self, node: &Node) -> io::Result<Option<Vec<u8>>> {
        let Some(fd) = node.fd() else {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        };
        match crate::sys::handle_of(fd.as_fd()) {
            Ok(h) => Ok(Some(h)),
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open_by_handle(&self, mount: &Node, handle: &[u8]) -> io::Result<Node> {
        let Some(m) = mount.fd() else {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        };
        // open_by_handle_at refuses O_PATH descriptors as its mount: reopen the directory.
        let dir = rfs::openat(
            m.as_fd(),
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err)?;
        let fd = crate::sys::open_by_handle(dir.as_fd(), handle)?;
        let node = Node::new(PathBuf::new(), Some(fd));
        let path = self.current_path(&node)?;
        Ok(Node::new(path, node.into_fd()))
    }

    fn current_path(&self, node: &Node) -> io::Result<PathBuf> {
        match node.fd() {
            Some(_) => fs::read_link(self.fd_path(node)),
            None => Ok(node.path().to_owned()),
        }
    }

    fn read_dir(&self, dir: &Node) -> io::Result<Vec<super::DirEntry>> {
        let fd = self.dir_fd(dir)?;
        let mut out = Vec::new();
        for entry in rfs::Dir::read_from(&fd).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push(super::DirEntry {
                    name: OsStr::from_bytes(name).to_owned(),
                    ino: entry.ino(),
                    kind: kind_of_dirent(entry.file_type()),
                });
            }
        }
        Ok(out)
    }

    fn stat_at(&self, dir: &Node, name: &OsStr) -> io::Result<FileMeta> {
        let (dfd, name) = at(dir, name)?;
        rfs::statx(
            dfd,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
            rfs::StatxFlags::BASIC_STATS | rfs::StatxFlags::BTIME,
        )
        .map(|s| meta_of_statx(&s))
        .map_err(io_err)
    }

    fn get_xattr_at(&self, dir: &Node, name: &OsStr, key: &str) -> io::Result<Option<Vec<u8>>> {
        let (dfd, name) = at(dir, name)?;
        let mut name_buf = [0u8; 256];
        let mut key_buf = [0u8; 256];
        let c = cstr_in(&mut name_buf, name.as_bytes())?;
        let k = cstr_in(&mut key_buf, key.as_bytes())?;
        // Labels fit on the stack; a bigger value is read into a growing buffer.
        let mut small = [0u8; 256];
        let mut big = Vec::new();
        loop {
            let buf: &mut [u8] = if big.is_empty() { &mut small } else { &mut big };
            let r = if XATTRAT.load(Ordering::Relaxed) {
                crate::sys::getxattrat(dfd, c, k, buf)
            } else {
                Err(io::Error::from_raw_os_error(libc::ENOSYS))
            };
            let r = match r {
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    XATTRAT.store(false, Ordering::Relaxed);
                    rfs::lgetxattr(self.entry_path(dfd, name), k, &mut *buf).map_err(io_err)
                }
                other => other,
            };
            match r {
                Ok(n) => return Ok(Some(buf[..n].to_vec())),
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => return Ok(None),
                Err(e) if e.raw_os_error() == Some(libc::ERANGE) && buf.len() < 1 << 16 => {
                    let len = buf.len() * 16;
                    big.resize(len, 0);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn set_xattr_at(&self, dir: &Node, name: &OsStr, key: &str, value: &[u8]) -> io::Result<()> {
        let (dfd, name) = at(dir, name)?;
        let mut name_buf = [0u8; 256];
        let mut key_buf = [0u8; 256];
        let k = cstr_in(&mut key_buf, key.as_bytes())?;
        if XATTRAT.load(Ordering::Relaxed) {
            match crate::sys::setxattrat(dfd, cstr_in(&mut name_buf, name.as_bytes())?, k, value) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    XATTRAT.store(false, Ordering::Relaxed)
                }
                other => return other,
            }
        }
        rfs::lsetxattr(
            self.entry_path(dfd, name),
            k,
            value,
            rfs::XattrFlags::empty(),
        )
        .map_err(io_err)
    }

    fn remove_xattr_at(&self, dir: &Node, name: &OsStr, key: &str) -> io::Result<()> {
        let (dfd, name) = at(dir, name)?;
        match rfs::lremovexattr(self.entry_path(dfd, name), key) {
            Ok(()) | Err(rustix::io::Errno::NODATA) => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    fn chown_at(&self, dir: &Node, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        let (dfd, name) = at(dir, name)?;
        rfs::chownat(
            dfd,
            name,
            Some(rustix::process::Uid::from_raw(uid)),
            Some(rustix::process::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io_err)
    }

    fn chmod_at(&self, dir: &Node, name: &OsStr, mode: u32) -> io::Result<()> {
        let (dfd, name) = at(dir, name)?;
        let mut name_buf = [0u8; 256];
        match crate::sys::fchmodat_nofollow(dfd, cstr_in(&mut name_buf, name.as_bytes())?, mode) {
            // Before 6.6: through an O_PATH fd of the entry itself, never a symlink's target.
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                self.chmod(&self.open_child(dir, name)?, mode)
            }
            other => other,
        }
    }

    fn mount_points(&self) -> io::Result<Vec<PathBuf>> {
        let text = fs::read(self.proc.join("self/mountinfo"))?;
        Ok(text
            .split(|b| *b == b'\n')
            .filter_map(|line| line.split(|b| *b == b' ').nth(4))
            .map(|field| PathBuf::from(OsStr::from_bytes(&unescape_octal(field))))
            .collect())
    }
}

/// Whether `getxattrat`/`setxattrat` exist (Linux 6.13); cleared at the first ENOSYS.
static XATTRAT: AtomicBool = AtomicBool::new(true);

/// The directory fd and entry name of an entry-relative call; a name that is not a single
/// component is refused.
fn at<'a>(dir: &'a Node, name: &'a OsStr) -> io::Result<(BorrowedFd<'a>, &'a OsStr)> {
    if name.as_bytes().contains(&b'/') || name == ".." || name == "." || name.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let fd = dir
        .fd()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
    Ok((fd.as_fd(), name))
}

/// `b` as a C string in `buf` (names and xattr keys are at most 255 bytes).
fn cstr_in<'a>(buf: &'a mut [u8; 256], b: &[u8]) -> io::Result<&'a CStr> {
    if b.len() >= buf.len() || b.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf[..b.len()].copy_from_slice(b);
    buf[b.len()] = 0;
    CStr::from_bytes_with_nul(&buf[..=b.len()])
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn kind_of_dirent(t: rfs::FileType) -> Option<FileKind> {
    match t {
        rfs::FileType::RegularFile => Some(FileKind::File),
        rfs::FileType::Directory => Some(FileKind::Dir),
        rfs::FileType::Symlink => Some(FileKind::Symlink),
        rfs::FileType::BlockDevice => Some(FileKind::Block),
        rfs::FileType::CharacterDevice => Some(FileKind::Char),
        rfs::FileType::Socket => Some(FileKind::Socket),
        rfs::FileType::Fifo => Some(FileKind::Fifo),
        _ => None,
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let oct = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                out.push(d.iter().fold(0u8, |a, c| a.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::LinuxHost;
    use crate::host::Host;

    /// A `/proc/PID/status` with the lines the scan reads.
    fn status(state: &str, uid: u32, shd_pnd: &str, sig_pnd: &str, kthread: u8) -> String {
        format!(
            "Name:\tx\nState:\t{state}\nTgid:\t1\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n\
             Gid:\t{uid}\t{uid}\t{uid}\t{uid}\nGroups:\t\nKthread:\t{kthread}\nThreads:\t1\n\
             SigPnd:\t{sig_pnd}\nShdPnd:\t{shd_pnd}\n"
        )
    }

    /// A thread signals as the uid it is given: never as root, which `(uid_t)-1` would leave
    /// it (setresuid's "unchanged"); and a hold never takes a signalling uid (another svirt's
    /// in the middle of its own hold). Refused before any signal is sent. (Root's stand-ins are
    /// checked through `continue_as` with no pid: should the check ever go, the test must not
    /// send anything as root. `hold_uids` shares it.)
    #[test]
    fn a_hold_or_release_refuses_uids_that_would_not_be_the_guests() {
        let host = LinuxHost::default();
        for uid in [0, u32::MAX] {
            let r = host.continue_as(&[70_000, uid], &[]);
            assert_eq!(
                r.unwrap_err().raw_os_error(),
                Some(libc::EINVAL),
                "uid {uid}"
            );
        }
        for uid in [
            super::signal_sender_uid(),
            *super::SIGNAL_SENDER_UIDS.start(),
        ] {
            let r = host.hold_uids(&[uid]);
            assert_eq!(
                r.unwrap_err().raw_os_error(),
                Some(libc::EINVAL),
                "uid {uid}"
            );
        }
    }

    /// `TracerPid:` other than 0 reads traced; its absence (or 0) not.
    #[test]
    fn a_tracer_pid_marks_a_process_traced() {
        let with =
            |tracer: &str| format!("{}{tracer}", status("t (tracing stop)", 1000, "0", "0", 0));
        let (_d, host) = fake_proc(&[
            (10, with("TracerPid:\t4242\n")),
            (11, with("TracerPid:\t0\n")),
            (12, with("")),
        ]);
        let traced = |pid| host.pid_creds(pid).unwrap().traced;
        assert!(traced(10));
        assert!(!traced(11));
        assert!(!traced(12));
    }

    fn fake_proc(entries: &[(u32, String)]) -> (tempfile::TempDir, LinuxHost) {
        let dir = tempfile::tempdir().unwrap();
        for (pid, text) in entries {
            std::fs::create_dir(dir.path().join(pid.to_string())).unwrap();
            std::fs::write(dir.path().join(pid.to_string()).join("status"), text).unwrap();
        }
        let host = LinuxHost::with_proc(dir.path());
        (dir, host)
    }

    const NONE: &str = "0000000000000000";
    /// SIGSTOP (19) pending.
    const SIGSTOP: &str = "0000000000040000";
    /// SIGTERM (15) pending.
    const SIGTERM: &str = "0000000000004000";

    #[test]
    fn a_pending_sigstop_reads_as_stopped_and_as_stopping_until_the_process_has_stopped() {
        // (status, stopped, stopping, what it is)
        let cases = [
            (
                status("S (sleeping)", 5000, NONE, NONE, 0),
                false,
                false,
                "a sleeping process",
            ),
            (
                status("R (running)", 5000, SIGSTOP, NONE, 0),
                true,
                true,
                "SIGSTOP pending for the process, running: it may be in a fork",
            ),
            (
                status("D (disk sleep)", 5000, NONE, SIGSTOP, 0),
                true,
                true,
                "SIGSTOP pending for its main thread, waiting in the kernel",
            ),
            (
                status("S (sleeping)", 5000, SIGTERM, SIGTERM, 0),
                false,
                false,
                "another signal pending",
            ),
            (
                status("T (stopped)", 5000, NONE, NONE, 0),
                true,
                false,
                "a stopped process",
            ),
            (
                status("T (stopped)", 5000, SIGSTOP, NONE, 0),
                true,
                false,
                "stopped, with another SIGSTOP pending",
            ),
        ];
        let entries: Vec<(u32, String)> = cases
            .iter()
            .enumerate()
            .map(|(i, (text, ..))| (10 + i as u32, text.clone()))
            .collect();
        let (_dir, host) = fake_proc(&entries);
        for (i, (_, stopped, stopping, what)) in cases.iter().enumerate() {
            let c = host.pid_creds(10 + i as u32).unwrap();
            assert_eq!((c.stopped, c.stopping), (*stopped, *stopping), "{what}");
        }
    }

    #[test]
    fn a_scan_leaves_kernel_threads_out_and_reads_them_once_per_operation() {
        let (dir, host) = fake_proc(&[
            (2, status("S (sleeping)", 0, NONE, NONE, 1)),
            (300, status("S (sleeping)", 5000, NONE, NONE, 0)),
        ]);
        let mut kernel = HashSet::new();
        let first = crate::driver::scan_processes(&host, false, &mut kernel).unwrap();
        assert_eq!(first.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![300]);
        assert_eq!(kernel, HashSet::from([2]));
        // Were pid 2 read again, it would now count, with uid 5001.
        std::fs::write(
            dir.path().join("2/status"),
            status("S (sleeping)", 5001, NONE, NONE, 0),
        )
        .unwrap();
        let again = crate::driver::scan_processes(&host, false, &mut kernel).unwrap();
        assert_eq!(again.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![300]);
        // A new operation reads it.
        let fresh = crate::driver::scan_processes(&host, false, &mut HashSet::new()).unwrap();
        let mut pids: Vec<u32> = fresh.iter().map(|p| p.pid).collect();
        pids.sort_unstable();
        assert_eq!(pids, vec![2, 300]);
    }
}

//! The host seam: every syscall the drivers make goes through [`Host`]. [`LinuxHost`] is the real
//! one; `fake::FakeHost` (feature `test-util`) is an in-memory recording fake that can inject
//! errors, so drivers are tested without root, a kernel policy, or a real `/proc`.

use std::ffi::{OsStr, OsString};
use std::fmt::Debug;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

mod linux;
pub use linux::{signal_sender_uid, LinuxHost, SIGNAL_SENDER_UIDS};

#[cfg(any(test, feature = "test-util"))]
pub mod fake;

/// A process's credentials as `/proc/PID/status` shows them (its main thread's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcCreds {
    /// Real, effective, saved and filesystem uid.
    pub uids: [u32; 4],
    /// Real, effective, saved and filesystem gid.
    pub gids: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Stopped by a signal or in a tracer's stop (any thread, where the main one exited), or
    /// stopping: a SIGSTOP pending, or a group stop under way.
    pub stopped: bool,
    /// Stopping and not stopped yet: a SIGSTOP pending while no thread has stopped. It may be
    /// in the middle of a fork, whose child is born with the stop pending and may not be
    /// listed yet.
    pub stopping: bool,
    /// A kernel thread (`Kthread: 1`, where the kernel shows that line): it runs as root, and no
    /// signal stops it.
    pub kernel: bool,
    /// Traced (`TracerPid:` not 0): it stops and runs again as its tracer says, so a stop
    /// read once tells nothing of a stop made on purpose.
    pub traced: bool,
}

impl ProcCreds {
    /// A running process that has `uid` and `gid` as every one of its ids, and no group else.
    pub fn running_as(uid: u32, gid: u32) -> Self {
        ProcCreds {
            uids: [uid; 4],
            gids: [gid; 4],
            groups: Vec::new(),
            stopped: false,
            stopping: false,
            kernel: false,
            traced: false,
        }
    }
}

/// The kind of a file, from `lstat`/`fstat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Block,
    Char,
    Socket,
    Fifo,
}

/// What `lstat`/`fstat` says about a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub kind: FileKind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (07777).
    pub mode: u32,
    pub dev: u64,
    pub ino: u64,
    /// Hard links to the inode.
    pub nlink: u64,
    /// The inode's change time in nanoseconds since the epoch; it moves on every write,
    /// chown, chmod and xattr change, and no unprivileged process can set it back.
    pub ctime_ns: i64,
    /// The device number a block or character device node stands for (0 otherwise).
    pub rdev: u64,
    /// The inode's birth time in nanoseconds, where known (`statx`): a new inode that reuses
    /// a deleted one's number has another.
    pub birth_ns: Option<i64>,
}

impl FileMeta {
    /// The (major, minor) numbers of a device node.
    pub fn device(&self) -> (u32, u32) {
        let (major, minor) = (
            ((self.rdev >> 32) & 0xffff_f000) | ((self.rdev >> 8) & 0xfff),
            ((self.rdev >> 12) & 0xffff_ff00) | (self.rdev & 0xff),
        );
        (major as u32, minor as u32)
    }

    /// The Linux `dev_t` encoding of `major:minor` (the inverse of [`FileMeta::device`]).
    pub fn make_rdev(major: u32, minor: u32) -> u64 {
        let (ma, mi) = (u64::from(major), u64::from(minor));
        ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
    }
}

/// A file opened without following symlinks (`O_PATH|O_NOFOLLOW`). The fake keeps only the path.
#[derive(Debug)]
pub struct Node {
    path: PathBuf,
    fd: Option<OwnedFd>,
    /// The fd was opened for reading (a file or directory), so f*xattr calls work on it.
    data: bool,
}

impl Node {
    /// A node for `path` held by an `O_PATH` `fd` (None in fakes).
    pub fn new(path: PathBuf, fd: Option<OwnedFd>) -> Self {
        Node {
            path,
            fd,
            data: false,
        }
    }

    /// A node held by an fd opened for reading.
    pub fn with_data_fd(path: PathBuf, fd: OwnedFd) -> Self {
        Node {
            path,
            fd: Some(fd),
            data: true,
        }
    }

    /// True when the fd was opened for reading rather than `O_PATH`.
    pub fn is_data(&self) -> bool {
        self.data
    }

    /// The path the node was opened at (for messages; operations use the fd).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same node under another name (the path the kernel resolved it to).
    pub fn renamed(self, path: PathBuf) -> Self {
        Node { path, ..self }
    }

    /// The file descriptor, when the host opened one.
    pub fn fd(&self) -> Option<&OwnedFd> {
        self.fd.as_ref()
    }

    /// Give up the node, keeping its descriptor.
    pub fn into_fd(self) -> Option<OwnedFd> {
        self.fd
    }
}

/// Filesystem magic numbers svirt cares about (statfs f_type).
pub mod fs_magic {
    pub const NFS: i64 = 0x6969;
    pub const FUSE: i64 = 0x6573_5546;
    pub const CIFS: i64 = 0xFF53_4D42;
    pub const SMB2: i64 = 0xFE53_4D42;
    pub const NINEP: i64 = 0x0102_1997;
}

/// One directory entry, as `getdents64` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: OsString,
    /// The inode number the directory names (`d_ino`).
    pub ino: u64,
    /// The entry's type when the filesystem reports it (`d_type`).
    pub kind: Option<FileKind>,
}

/// The syscalls svirt's drivers make. Paths are never followed through a final symlink.
pub trait Host: Send + Sync + Debug {
    /// `lstat(path)`.
    fn lstat(&self, path: &Path) -> io::Result<FileMeta>;
    /// `stat(path)`: every symlink followed.
    fn stat(&self, path: &Path) -> io::Result<FileMeta>;
    /// `readlink(path)`.
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// `realpath(path)`: every symlink resolved.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
    /// `open(path, O_PATH|O_NOFOLLOW|O_CLOEXEC)`.
    fn open_node(&self, path: &Path) -> io::Result<Node>;
    /// `openat2(AT_FDCWD, path, O_PATH, RESOLVE_NO_MAGICLINKS)`: `path` with every symlink
    /// followed (as libvirt follows them for disks and devices), but never a `/proc` magic link.
    /// The caller decides on what it got through [`Host::node_path`] and [`Host::meta`].
    fn open_resolved(&self, path: &Path) -> io::Result<Node>;
    /// The path the kernel knows an opened node by (`readlink /proc/self/fd/N`).
    fn node_path(&self, node: &Node) -> io::Result<PathBuf>;
    /// `openat2(dir, name, O_PATH|O_NOFOLLOW, RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV)`:
    /// one entry of a directory, never leaving it nor crossing a mount point (`EXDEV`). A
    /// symlink entry gives a node for the link itself.
    fn open_child(&self, dir: &Node, name: &OsStr) -> io::Result<Node>;
    /// `fstat` of a node.
    fn meta(&self, node: &Node) -> io::Result<FileMeta>;
    /// The entries of a directory node (without `.` and `..`), with their type when the
    /// filesystem reports it (`d_type`).
    fn list_dir(&self, dir: &Node) -> io::Result<Vec<(OsString, Option<FileKind>)>>;
    /// Like [`Host::open_child`] (mount points give `EXDEV` too), but opened for reading
    /// (`O_RDONLY|O_NOFOLLOW|O_NONBLOCK`), so
    /// attributes are read and written on the fd itself. Only for regular files and directories:
    /// callers must know the entry's type first, since opening a device node has side effects.
    fn open_child_data(&self, dir: &Node, name: &OsStr) -> io::Result<Node>;
    /// An extended attribute of a node; `None` when absent.
    fn get_xattr(&self, node: &Node, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Set an extended attribute of a node.
    fn set_xattr(&self, node: &Node, name: &str, value: &[u8]) -> io::Result<()>;
    /// Remove an extended attribute of a node; absent is fine.
    fn remove_xattr(&self, node: &Node, name: &str) -> io::Result<()>;
    /// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)`.
    fn chown(&self, node: &Node, uid: u32, gid: u32) -> io::Result<()>;
    /// Change the permission bits of a node.
    fn chmod(&self, node: &Node, mode: u32) -> io::Result<()>;
    /// `fstatfs(fd).f_type`.
    fn fs_type(&self, node: &Node) -> io::Result<i64>;
    /// This boot's id (`/proc/sys/kernel/random/boot_id`).
    fn boot_id(&self) -> io::Result<String>;
    /// True when `pid` exists and is not a zombie.
    fn pid_alive(&self, pid: u32) -> bool;
    /// The SELinux label of a process (`/proc/PID/attr/current`).
    fn pid_label(&self, pid: u32) -> io::Result<String>;
    /// The real uid and gid of a process; an error for a zombie (which carries nothing).
    fn pid_owner(&self, pid: u32) -> io::Result<(u32, u32)>;
    /// Every uid and gid of a process, and whether it is stopped; an error for a zombie. By
    /// default the real ones of [`Host::pid_owner`], running.
    fn pid_creds(&self, pid: u32) -> io::Result<ProcCreds> {
        let (uid, gid) = self.pid_owner(pid)?;
        Ok(ProcCreds::running_as(uid, gid))
    }
    /// Every live process id.
    fn pids(&self) -> io::Result<Vec<u32>>;
    /// The real uid this process's holds send their signals with ([`signal_sender_uid`]).
    fn signal_sender(&self) -> u32 {
        signal_sender_uid()
    }
    /// For a process of a user namespace below svirt's own, the owner of the outermost one
    /// (the one whose parent is svirt's): a sender whose effective uid is that owner has every
    /// capability there, and may signal the process; the owner of a namespace nested deeper
    /// may not. `None` for a process of svirt's own namespace (and where the host has none).
    fn userns_signaller(&self, _pid: u32) -> io::Result<Option<u32>> {
        Ok(None)
    }
    /// Stop every process the kernel lets a sender with effective uid `uid` signal (those whose
    /// real or saved uid is `uid`, and those of user namespaces `uid` owns), all at once, for
    /// each of `uids` in turn: the kernel reaches them under one lock, so a process that forks
    /// meanwhile leaves no child out, and a stopped one forks no more. A scan of `/proc` after
    /// it sees every such process at the pid it keeps. The sender's real uid is none a process
    /// of `uid` has, so none can signal it back (stop or kill svirt) while it runs. Refused
    /// when `uids` holds 0.
    fn hold_uids(&self, uids: &[u32]) -> io::Result<()>;
    /// Continue, one by one, the processes `pids` that [`Host::hold_uids`] stopped, as the
    /// senders that stopped them: as each of `uids` in turn, each pid until one reaches it (a
    /// signal to every process would also continue processes of other uids in the caller's
    /// session, which the kernel lets anyone continue). Returns the pids reached; a pid gone
    /// meanwhile, or one no such sender may signal, is none. Refused when `uids` holds 0.
    fn continue_as(&self, uids: &[u32], pids: &[u32]) -> io::Result<Vec<u32>>;
    /// The file handle of a node's inode (`name_to_handle_at`), which names the inode across
    /// renames and is never reused for another one; `None` when the filesystem gives none.
    fn handle(&self, node: &Node) -> io::Result<Option<Vec<u8>>>;
    /// Open the inode a handle names (`open_by_handle_at`) on the filesystem of the directory
    /// `mount`. ESTALE when the inode is gone.
    fn open_by_handle(&self, mount: &Node, handle: &[u8]) -> io::Result<Node>;
    /// Where a node is now (`/proc/self/fd/N`), for reports after a rename.
    fn current_path(&self, node: &Node) -> io::Result<PathBuf>;

    // Entry-relative calls, for walking a big share without opening every entry. Each acts on
    // the entry `name` of the directory `dir` itself, never following it if it is a symlink.
    // The defaults open the entry (`O_PATH|O_NOFOLLOW`); the real host makes one syscall.

    /// The entries of a directory with their inode numbers (without `.` and `..`).
    fn read_dir(&self, dir: &Node) -> io::Result<Vec<DirEntry>> {
        self.list_dir(dir)?
            .into_iter()
            .map(|(name, kind)| {
                // 0 (no inode) for an entry that cannot be opened here (a mount point).
                let ino = self
                    .open_child(dir, &name)
                    .and_then(|n| self.meta(&n))
                    .map_or(0, |m| m.ino);
                Ok(DirEntry { name, ino, kind })
            })
            .collect()
    }
    /// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
    fn stat_at(&self, dir: &Node, name: &OsStr) -> io::Result<FileMeta> {
        self.meta(&self.open_child(dir, name)?)
    }
    /// `getxattrat(dir, name, AT_SYMLINK_NOFOLLOW, key)`; `None` when absent.
    fn get_xattr_at(&self, dir: &Node, name: &OsStr, key: &str) -> io::Result<Option<Vec<u8>>> {
        self.get_xattr(&self.open_child(dir, name)?, key)
    }
    /// `setxattrat(dir, name, AT_SYMLINK_NOFOLLOW, key, value)`.
    fn set_xattr_at(&self, dir: &Node, name: &OsStr, key: &str, value: &[u8]) -> io::Result<()> {
        self.set_xattr(&self.open_child(dir, name)?, key, value)
    }
    /// `removexattrat(dir, name, AT_SYMLINK_NOFOLLOW, key)`; absent is fine.
    fn remove_xattr_at(&self, dir: &Node, name: &OsStr, key: &str) -> io::Result<()> {
        self.remove_xattr(&self.open_child(dir, name)?, key)
    }
    /// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`.
    fn chown_at(&self, dir: &Node, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        self.chown(&self.open_child(dir, name)?, uid, gid)
    }
    /// `fchmodat2(dir, name, mode, AT_SYMLINK_NOFOLLOW)`.
    fn chmod_at(&self, dir: &Node, name: &OsStr, mode: u32) -> io::Result<()> {
        self.chmod(&self.open_child(dir, name)?, mode)
    }
    /// Every mount point of this mount namespace (`/proc/self/mountinfo`).
    fn mount_points(&self) -> io::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
}

/// Read a node's `security.selinux` label, without the trailing NUL.
pub fn get_label(host: &dyn Host, node: &Node) -> io::Result<Option<String>> {
    Ok(host
        .get_xattr(node, SELINUX_XATTR)?
        .map(|v| String::from_utf8_lossy(v.strip_suffix(b"\0").unwrap_or(&v)).into_owned()))
}

/// The xattr that holds a file's SELinux label.
pub const SELINUX_XATTR: &str = "security.selinux";

/// Whether a write that puts something back failed because the filesystem cannot hold the
/// attribute at all: [`is_unsupported`] without EROFS. A read-only filesystem holds what svirt
/// gave it, so a restore refused there is a failure (the domain is held), never "nothing to do".
pub fn cannot_hold(e: &io::Error) -> bool {
    is_unsupported(e) && e.raw_os_error() != Some(libc::EROFS)
}

/// True for errors that mean "this filesystem cannot hold this attribute or owner".
pub fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTSUP) | Some(libc::EROFS) | Some(libc::ENOSYS)
    ) || e.raw_os_error() == Some(libc::EOPNOTSUPP)
}

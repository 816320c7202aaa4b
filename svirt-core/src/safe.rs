//! Which paths svirt may relabel, and how they are opened: each path is resolved once by the
//! kernel, and every decision (the denylist of system paths, the file type a resource kind must
//! have, shared host devices) is made on the resolved path and the type of what was opened.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::domain::ResourceKind;
use crate::error::{Error, Result};
use crate::host::{FileKind, FileMeta, Host, Node};

/// Exact paths never relabeled (after trimming a trailing '/').
const DENY_EXACT: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/tmp",
    "/var/run",
    "/var/cache",
    "/var/spool",
    "/var/lib/libvirt",
    "/var/lib/libvirt/images",
    "/var/lib/svirt",
    "/var/lib/svirt/images",
    "/dev/shm",
    "/dev/pts",
    "/dev/mqueue",
    "/dev/hugepages",
];

/// Trees nothing under which is relabeled.
const DENY_TREES: &[&str] = &[
    "/proc", "/sys", "/etc", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
    "/libx32",
];

/// `path` with `.` components and repeated or trailing slashes removed (no symlink is looked
/// at, and `..` is kept: the domain validator refuses it, and resolution decides anyway).
fn lexical(path: &Path) -> PathBuf {
    path.components().collect()
}

/// Why `path` must not be relabeled, if it must not. `path` is compared component by
/// component, so `/var/.`, `//` and `/etc/` are `/var`, `/` and `/etc`.
pub fn denied(path: &Path) -> Option<&'static str> {
    let p = lexical(path);
    if tpm_cancel_file(&p) {
        return None;
    }
    let text = p.to_string_lossy();
    if DENY_EXACT.contains(&text.as_ref()) {
        return Some("it is a system directory");
    }
    if DENY_TREES.iter().any(|t| p.starts_with(t)) {
        return Some("it lies inside a system directory");
    }
    // A user's home directory itself (/home/NAME).
    if p.parent() == Some(Path::new("/home")) {
        return Some("it is a home directory");
    }
    None
}

/// The host's system directories and svirt's state directory by inode (device, inode number):
/// [`denied`] judges names, and a second mount gives a directory another one (a bind mount of
/// `/etc` elsewhere, OSTree's deployment directories, the root filesystem mounted again). Built
/// once per operation; [`Protected::check`] costs one `stat` per directory above a resource.
#[derive(Debug, Default)]
pub struct Protected {
    /// Directories never handed over themselves (the denylist's exact paths).
    exact: HashMap<(u64, u64), &'static str>,
    /// Directories nothing under which is handed over.
    trees: HashMap<(u64, u64), &'static str>,
    /// svirt's state directory, and the directories above it (a share of one would hold it).
    state: Option<((u64, u64), PathBuf)>,
    state_above: HashSet<(u64, u64)>,
}

impl Protected {
    /// The inodes of the denylist's directories as this host resolves them, and of
    /// `state_dir` and the directories above it. A path that does not exist protects nothing.
    pub fn new(host: &dyn Host, state_dir: Option<&Path>) -> Self {
        let key = |p: &Path| host.stat(p).ok().map(|m| (m.dev, m.ino));
        let mut out = Protected::default();
        for p in DENY_EXACT {
            if let Some(k) = key(Path::new(p)) {
                out.exact.entry(k).or_insert(p);
            }
        }
        for p in DENY_TREES {
            if let Some(k) = key(Path::new(p)) {
                out.trees.entry(k).or_insert(p);
            }
        }
        if let Some(dir) = state_dir {
            // The directories above it as they are, not as the configuration names them (a
            // symlinked `/var/lib` puts them elsewhere).
            let real = host.canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
            if let Some(k) = key(&real) {
                out.state = Some((k, dir.to_owned()));
                out.state_above = real.ancestors().skip(1).filter_map(key).collect();
            }
        }
        out
    }

    /// Refuse a resource, opened and resolved by [`open_resource`], that is a protected
    /// directory, lies inside a system tree, is a file of svirt's state directory or a
    /// directory holding it, whatever path reached it. The reason names the protected path.
    pub fn check(&self, host: &dyn Host, opened: &Opened) -> Result<()> {
        let refuse = |reason: String| Error::PathRefused {
            path: opened.path.clone(),
            reason: if opened.path == opened.given {
                reason
            } else {
                format!("{reason} (reached through {})", opened.given.display())
            },
        };
        if tpm_cancel_file(&lexical(&opened.path)) {
            // The one file under a system tree that libvirt labels, by its own name.
            return Ok(());
        }
        let own = (opened.meta.dev, opened.meta.ino);
        if let Some(p) = self.exact.get(&own).or_else(|| self.trees.get(&own)) {
            return Err(refuse(format!(
                "it is the system directory {p}, by another path"
            )));
        }
        if let Some((k, dir)) = &self.state {
            if *k == own {
                return Err(refuse(format!(
                    "it is svirt's state directory {}",
                    dir.display()
                )));
            }
            if opened.meta.kind == FileKind::Dir && self.state_above.contains(&own) {
                return Err(refuse(format!(
                    "it holds svirt's state directory {}",
                    dir.display()
                )));
            }
        }
        for (i, above) in opened.path.ancestors().skip(1).enumerate() {
            if above == Path::new("/") {
                break;
            }
            let Ok(m) = host.stat(above) else { continue };
            let k = (m.dev, m.ino);
            if let Some(p) = self.trees.get(&k) {
                return Err(refuse(format!(
                    "it lies inside the system directory {p}, which {} is another path of",
                    above.display()
                )));
            }
            if i == 0 {
                if let Some((sk, dir)) = &self.state {
                    if *sk == k {
                        return Err(refuse(format!(
                            "it is a file of svirt's state directory {}",
                            dir.display()
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Of the regular files `linked` (inode number, link count) found in a share, those with more
/// links than names in the share (`files`: the inode number of every regular-file name seen):
/// some name of theirs lies outside it.
pub fn names_outside(
    files: impl IntoIterator<Item = u64>,
    linked: impl IntoIterator<Item = (u64, u64)>,
) -> HashSet<u64> {
    let linked: HashMap<u64, u64> = linked.into_iter().collect();
    if linked.is_empty() {
        return HashSet::new();
    }
    let mut inside: HashMap<u64, u64> = HashMap::new();
    for ino in files {
        if linked.contains_key(&ino) {
            *inside.entry(ino).or_default() += 1;
        }
    }
    linked
        .into_iter()
        .filter(|(ino, n)| inside.get(ino).copied().unwrap_or(0) < *n)
        .map(|(ino, _)| ino)
        .collect()
}

/// What a grant of a whole directory share by path would hand a VM beyond the share's own
/// files, each with why: device nodes (a `mknod` copy of the host's disk, memory or I/O ports
/// opens the device itself), regular files with a name outside the share (another VM's image,
/// a `cp -al` copy of `/etc`) and mount points (another filesystem, or a bind mount of any
/// directory). The relabel walk leaves these out and the VM cannot open them; a driver that
/// grants by path (Landlock) must refuse the share instead. One walk with `getdents64`, and one
/// `statx` per regular file for its link count.
pub fn share_hazards(
    host: &dyn Host,
    root_path: &Path,
    root: std::sync::Arc<Node>,
) -> Result<Vec<(PathBuf, &'static str)>> {
    use std::sync::Arc;

    #[derive(Default)]
    struct Seen {
        hazards: Vec<(PathBuf, &'static str)>,
        /// Regular files with more than one name: (inode, link count, a path of it).
        linked: Vec<(u64, u64, PathBuf)>,
    }
    let mounts = crate::tree::mounts_below(host, root_path);
    let visit = |s: &mut Seen,
                 dir: &Arc<crate::tree::Dir>,
                 node: &Node,
                 e: &crate::host::DirEntry,
                 kind: FileKind|
     -> Result<()> {
        let path = || root_path.join(&dir.rel).join(&e.name);
        match kind {
            FileKind::Char | FileKind::Block => {
                s.hazards
                    .push((path(), "a device node: the VM would open the device itself"));
            }
            FileKind::File => match host.stat_at(node, &e.name) {
                Ok(m) if m.nlink > 1 => s.linked.push((e.ino, m.nlink, path())),
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(Error::host("inspect", path(), err)),
            },
            _ => {}
        }
        Ok(())
    };
    let walked = crate::tree::walk_entries(host, root, &mounts, true, 1, &Seen::default, &visit)?;
    let (seen, found_mounts) = (walked.states, walked.mounts);
    let mut hazards = Vec::new();
    let mut linked = Vec::new();
    for s in seen {
        hazards.extend(s.hazards);
        linked.extend(s.linked);
    }
    // Every name of a file with several is among `linked`, so they are the names to count.
    let outside = names_outside(
        linked.iter().map(|(ino, _, _)| *ino),
        linked.iter().map(|(ino, n, _)| (*ino, *n)),
    );
    for (ino, _, p) in linked {
        if outside.contains(&ino) {
            hazards.push((p, "a file with a name outside the share (a hard link)"));
        }
    }
    for m in found_mounts {
        hazards.push((
            root_path.join(m),
            "a mount point: what is mounted there is not the share's",
        ));
    }
    hazards.sort();
    Ok(hazards)
}

/// The one sysfs file libvirt labels: a passed-through TPM's cancel file
/// (`/sys/class/{tpm,misc}/tpmN/device/cancel`, from `virTPMCreateCancelPath`).
fn tpm_cancel_file(p: &Path) -> bool {
    let parts: Vec<_> = p.iter().map(|c| c.to_string_lossy()).collect();
    matches!(
        parts.iter().map(|c| c.as_ref()).collect::<Vec<&str>>().as_slice(),
        ["/", "sys", "class", "tpm" | "misc", dev, "device", "cancel"]
            if dev.starts_with("tpm") && dev[3..].chars().all(|c| c.is_ascii_digit())
    )
}

/// Character devices every process on the host shares, by the path udev gives them.
const SHARED_DEVICE_PATHS: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/console",
    "/dev/ptmx",
    "/dev/pts/ptmx",
    "/dev/kvm",
    "/dev/net/tun",
    "/dev/vhost-net",
    "/dev/vhost-vsock",
    "/dev/vfio/vfio",
    "/dev/fuse",
    "/dev/kmsg",
    "/dev/mem",
    "/dev/kmem",
    "/dev/port",
    "/dev/loop-control",
    "/dev/userfaultfd",
    "/dev/rfkill",
];

/// The same devices by number (`major`, `minor`), which a `mknod` copy elsewhere cannot change.
const SHARED_DEVICE_NUMBERS: &[((u32, u32), &str)] = &[
    ((1, 1), "mem"),
    ((1, 2), "kmem"),
    ((1, 3), "null"),
    ((1, 4), "port"),
    ((1, 5), "zero"),
    ((1, 7), "full"),
    ((1, 8), "random"),
    ((1, 9), "urandom"),
    ((1, 11), "kmsg"),
    ((4, 0), "tty0"),
    ((5, 0), "tty"),
    ((5, 1), "console"),
    ((5, 2), "ptmx"),
    ((10, 126), "userfaultfd"),
    ((10, 196), "vfio"),
    ((10, 200), "net/tun"),
    ((10, 229), "fuse"),
    ((10, 232), "kvm"),
    ((10, 237), "loop-control"),
    ((10, 238), "vhost-net"),
    ((10, 241), "vhost-vsock"),
    ((10, 242), "rfkill"),
];

/// Why a device node must be left as it is for every other user of the host, if it must.
pub fn shared_device(path: &Path, meta: &FileMeta) -> Option<String> {
    if meta.kind != FileKind::Char {
        return None;
    }
    let (major, minor) = meta.device();
    if let Some((_, name)) = SHARED_DEVICE_NUMBERS
        .iter()
        .find(|(n, _)| *n == (major, minor))
    {
        return Some(format!(
            "shared host device {name} ({major}:{minor}): every process on the host uses it, so it is never relabeled"
        ));
    }
    let p = lexical(path);
    if SHARED_DEVICE_PATHS.iter().any(|d| p == Path::new(d)) {
        return Some(format!(
            "shared host device {}: every process on the host uses it, so it is never relabeled",
            p.display()
        ));
    }
    None
}

/// Why a device node must never be handed to a VM process at all, if it must not: the host's
/// physical memory, kernel memory and I/O ports (by number, so a `mknod` copy elsewhere is the
/// same device). Drivers that relabel leave these alone as shared devices; a driver that grants
/// access by path (Landlock) refuses them.
pub fn raw_host_access(meta: &FileMeta) -> Option<&'static str> {
    if meta.kind != FileKind::Char {
        return None;
    }
    match meta.device() {
        (1, 1) => Some("it is the host's physical memory (/dev/mem, 1:1)"),
        (1, 2) => Some("it is the host's kernel memory (/dev/kmem, 1:2)"),
        (1, 4) => Some("it is the host's I/O ports (/dev/port, 1:4)"),
        _ => None,
    }
}

/// The file types a resource of `kind` may be, in words.
fn allowed(kind: ResourceKind, file: FileKind) -> Result<(), &'static str> {
    use FileKind as F;
    use ResourceKind as R;
    // One row per kind: whether `file` fits, and the rule to name when it does not.
    let (ok, rule) = match kind {
        R::Filesystem => (file == F::Dir, "a filesystem share must be a directory"),
        R::Smartcard => (
            file == F::Dir,
            "a smartcard certificate database must be a directory",
        ),
        R::Tpm => (
            matches!(file, F::Dir | F::Char),
            "TPM state must be a directory or a character device",
        ),
        R::Disk
        | R::Backing
        | R::DataStore
        | R::Kernel
        | R::Initrd
        | R::Dtb
        | R::Firmware
        | R::Loader
        | R::Nvram
        | R::Shim
        | R::AcpiTable
        | R::Fwcfg
        | R::Pstore
        | R::SavedState => (
            matches!(file, F::File | F::Block),
            "it must be a regular file or a block device",
        ),
        // nvdimm and virtio-pmem back on a file or a DAX device; SGX EPC is a char device.
        R::Memory => (
            matches!(file, F::File | F::Block | F::Char),
            "a memory backend must be a regular file or a device node",
        ),
        R::Input | R::TpmDevice => (file == F::Char, "it must be a character device"),
        R::TpmCancel | R::TpmLog => (file == F::File, "it must be a regular file"),
        R::TpmSocket => (file == F::Socket, "it must be a socket"),
        // A serial port or console may also log to a regular file.
        R::Chardev => (
            matches!(file, F::Char | F::Fifo | F::Socket | F::File),
            "a chardev must be a character device, FIFO, socket or regular file",
        ),
        R::Hostdev => (
            matches!(file, F::Char | F::Block),
            "a host device must be a character or block device",
        ),
        R::Path => (file != F::Dir, "it is a directory; use a filesystem share"),
    };
    if ok {
        Ok(())
    } else {
        Err(rule)
    }
}

fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "a regular file",
        FileKind::Dir => "a directory",
        FileKind::Symlink => "a symlink",
        FileKind::Block => "a block device",
        FileKind::Char => "a character device",
        FileKind::Socket => "a socket",
        FileKind::Fifo => "a FIFO",
    }
}

/// A resource path resolved and opened for relabeling.
#[derive(Debug)]
pub struct Opened {
    /// The path the kernel resolved it to: what every decision was made on.
    pub path: PathBuf,
    /// The path as the domain gave it.
    pub given: PathBuf,
    /// The resolved file, held open (`O_PATH`); every change goes through it.
    pub node: Node,
    pub meta: FileMeta,
    /// Set for a shared host device node, which is never relabeled: why.
    pub shared_device: Option<String>,
}

/// Resolve `path` once (every symlink followed, `/proc` magic links refused), then decide on
/// what was opened: its resolved path against the denylist, its type against `kind` (`None`:
/// any type, for entries svirt itself journaled), a regular file's other names (refused: hard
/// links) and shared host devices. Every later change goes through the returned node.
pub fn open_resource(host: &dyn Host, path: &Path, kind: Option<ResourceKind>) -> Result<Opened> {
    let refuse = |p: &Path, reason: String| Error::PathRefused {
        path: p.to_owned(),
        reason,
    };
    // The path as written first, so nothing below a system tree is even opened.
    if let Some(why) = denied(path) {
        let plain = lexical(path);
        return Err(if plain.as_os_str() == path.as_os_str() {
            refuse(path, why.into())
        } else {
            refuse(&plain, format!("{why} (given as {})", path.display()))
        });
    }
    let node = host
        .open_resolved(path)
        .map_err(|e| Error::host("open", path, e))?;
    let real = host
        .node_path(&node)
        .map_err(|e| Error::host("resolve", path, e))?;
    let through = |why: &str| {
        if lexical(&real) == lexical(path) {
            why.to_owned()
        } else {
            format!("{why} (reached through {})", path.display())
        }
    };
    if !real.is_absolute() || real.to_string_lossy().ends_with(" (deleted)") {
        return Err(refuse(
            path,
            format!(
                "it resolves to {}, not a file of the filesystem",
                real.display()
            ),
        ));
    }
    if let Some(why) = denied(&real) {
        return Err(refuse(&real, through(why)));
    }
    let meta = host
        .meta(&node)
        .map_err(|e| Error::host("inspect", &real, e))?;
    if meta.kind == FileKind::Dir && real.starts_with("/dev") {
        return Err(refuse(&real, through("it is a directory of /dev")));
    }
    if meta.kind == FileKind::Symlink {
        // O_PATH without O_NOFOLLOW never stops at a link; a fake host might.
        return Err(refuse(
            &real,
            through("it is still a symlink once resolved"),
        ));
    }
    if let Some(k) = kind {
        if let Err(rule) = allowed(k, meta.kind) {
            return Err(refuse(
                &real,
                through(&format!("it is {}, and {rule}", kind_name(meta.kind))),
            ));
        }
        // The denylist judged one name of the inode; a regular file with more names may also
        // be a system file or another VM's image, which no check here can see.
        if meta.kind == FileKind::File && meta.nlink > 1 {
            return Err(refuse(
                &real,
                through(&format!(
                    "it has {} hard links, and what svirt changes or grants on it reaches every other name of the file (a system file, another VM's image), which svirt cannot see; `find / -xdev -samefile {}` lists them",
                    meta.nlink,
                    real.display()
                )),
            ));
        }
    }
    let shared_device = shared_device(&real, &meta);
    Ok(Opened {
        node: node.renamed(real.clone()),
        path: real,
        given: path.to_owned(),
        meta,
        shared_device,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeHost;

    #[test]
    fn system_paths_are_denied_and_image_paths_are_not() {
        for p in [
            "/",
            "/etc",
            "/etc/",
            "/etc/shadow",
            "/usr/lib/x",
            "/var",
            "/var/lib",
            "/home/alice",
            "/root",
            "/proc/1/mem",
            "/sys/kernel",
            "/dev",
            "/tmp",
            "/boot/vmlinuz",
        ] {
            assert!(denied(Path::new(p)).is_some(), "{p} should be denied");
        }
        for p in [
            "/var/lib/svirt/images/a.img",
            "/srv/vm1",
            "/dev/vfio/12",
            "/tmp/x/disk.img",
            "/home/alice/vm.img",
        ] {
            assert!(denied(Path::new(p)).is_none(), "{p} should be allowed");
        }
    }

    const DISK: Option<ResourceKind> = Some(ResourceKind::Disk);

    #[test]
    fn symlink_to_a_system_path_is_refused_after_resolving_it() {
        let h = FakeHost::new();
        h.add_file("/etc/shadow");
        h.add_symlink("/srv/evil.img", "/etc/shadow");
        let e = open_resource(&h, Path::new("/srv/evil.img"), DISK).unwrap_err();
        assert!(
            matches!(e, Error::PathRefused { ref path, .. } if path == Path::new("/etc/shadow")),
            "{e}"
        );
    }

    #[test]
    fn symlink_to_an_image_is_resolved_once() {
        let h = FakeHost::new();
        h.add_file("/srv/images/real.img");
        h.add_symlink("/srv/link.img", "/srv/images/real.img");
        let o = open_resource(&h, Path::new("/srv/link.img"), DISK).unwrap();
        assert_eq!(o.path, Path::new("/srv/images/real.img"));
        assert_eq!(o.given, Path::new("/srv/link.img"));
        assert_eq!(o.node.path(), Path::new("/srv/images/real.img"));
    }

    #[test]
    fn a_file_swapped_for_a_symlink_to_etc_while_opening_is_decided_on_what_was_opened() {
        let h = FakeHost::new();
        h.add_file("/srv/a.img");
        h.add_file("/etc/shadow");
        h.swap_before_open("/srv/a.img", "/etc/shadow");
        let e = open_resource(&h, Path::new("/srv/a.img"), DISK).unwrap_err();
        assert!(
            matches!(e, Error::PathRefused { ref path, .. } if path == Path::new("/etc/shadow")),
            "{e}"
        );
        assert!(e.to_string().contains("reached through /srv/a.img"), "{e}");
    }

    #[test]
    fn dot_and_slash_spellings_of_system_roots_are_denied() {
        for p in [
            "/var/.", "/tmp/.", "/home/.", "/root/.", "/run/.", "//", "/.", "/etc/", "/./etc",
            "/srv/", "/opt/.", "/mnt//", "/media",
        ] {
            assert!(denied(Path::new(p)).is_some(), "{p} should be denied");
        }
        assert!(denied(Path::new("/var/lib/libvirt/images/x.img")).is_none());
    }

    #[test]
    fn a_symlinked_directory_with_a_trailing_slash_is_refused_by_its_target() {
        let h = FakeHost::new();
        h.add(Path::new("/etc"), FileKind::Dir, 0, 0, 0o755);
        h.add_file("/etc/passwd");
        h.add_symlink("/srv/x/etcdirlink", "/etc");
        let e = open_resource(
            &h,
            Path::new("/srv/x/etcdirlink/"),
            Some(ResourceKind::Filesystem),
        )
        .unwrap_err();
        assert!(
            matches!(e, Error::PathRefused { ref path, .. } if path == Path::new("/etc")),
            "{e}"
        );
        // A symlinked directory component in a disk path is resolved too.
        let e = open_resource(&h, Path::new("/srv/x/etcdirlink/passwd"), DISK).unwrap_err();
        assert!(
            matches!(e, Error::PathRefused { ref path, .. } if path == Path::new("/etc/passwd")),
            "{e}"
        );
    }

    #[test]
    fn each_resource_kind_accepts_only_its_file_types() {
        let h = FakeHost::new();
        h.add(Path::new("/srv/dir"), FileKind::Dir, 0, 0, 0o755);
        h.add_file("/srv/file");
        h.add(Path::new("/srv/fifo"), FileKind::Fifo, 0, 0, 0o644);
        h.add(Path::new("/srv/sock"), FileKind::Socket, 0, 0, 0o644);
        h.add_device("/srv/blk", FileKind::Block, 8, 0);
        h.add_device("/srv/chr", FileKind::Char, 4, 64);
        use ResourceKind as R;
        let table: &[(R, &[&str])] = &[
            (R::Filesystem, &["dir"]),
            (R::Disk, &["file", "blk"]),
            (R::Backing, &["file", "blk"]),
            (R::Kernel, &["file", "blk"]),
            (R::Chardev, &["file", "fifo", "sock", "chr"]),
            (R::Hostdev, &["blk", "chr"]),
            (R::Tpm, &["dir", "chr"]),
        ];
        for (kind, ok) in table {
            for name in ["dir", "file", "fifo", "sock", "blk", "chr"] {
                let p = format!("/srv/{name}");
                let r = open_resource(&h, Path::new(&p), Some(*kind));
                assert_eq!(r.is_ok(), ok.contains(&name), "{kind:?} {p}: {r:?}");
                if let Err(e) = r {
                    assert!(matches!(e, Error::PathRefused { .. }), "{e}");
                }
            }
        }
        let e = open_resource(&h, Path::new("/srv/fifo"), Some(R::Filesystem)).unwrap_err();
        assert!(
            e.to_string()
                .contains("it is a FIFO, and a filesystem share must be a directory"),
            "{e}"
        );
    }

    #[test]
    fn shared_host_devices_are_recognised_by_path_and_by_number() {
        let h = FakeHost::new();
        h.add_device("/dev/null", FileKind::Char, 1, 3);
        h.add_device("/srv/x/mynull", FileKind::Char, 1, 3);
        h.add_device("/dev/kvm", FileKind::Char, 10, 232);
        h.add_device("/dev/net/tun", FileKind::Char, 10, 200);
        h.add_device("/dev/vfio/12", FileKind::Char, 243, 0);
        h.add_symlink("/srv/x/null-link", "/dev/null");
        for p in [
            "/dev/null",
            "/srv/x/mynull",
            "/dev/kvm",
            "/dev/net/tun",
            "/srv/x/null-link",
        ] {
            let o = open_resource(&h, Path::new(p), Some(ResourceKind::Chardev)).unwrap();
            let why = o.shared_device.unwrap_or_default();
            assert!(why.contains("shared host device"), "{p}: {why:?}");
        }
        let o = open_resource(
            &h,
            Path::new("/srv/x/null-link"),
            Some(ResourceKind::Chardev),
        )
        .unwrap();
        assert_eq!(o.path, Path::new("/dev/null"));
        let o = open_resource(&h, Path::new("/dev/vfio/12"), Some(ResourceKind::Hostdev)).unwrap();
        assert_eq!(
            o.shared_device, None,
            "a passed-through device is the VM's own"
        );
    }

    #[test]
    fn device_numbers_round_trip_through_dev_t() {
        for (ma, mi) in [
            (1, 3),
            (10, 232),
            (259, 1_048_575),
            (4095, 255),
            (4096, 256),
        ] {
            let m = FileMeta {
                kind: FileKind::Char,
                uid: 0,
                gid: 0,
                mode: 0,
                dev: 0,
                ino: 0,
                nlink: 1,
                ctime_ns: 0,
                rdev: FileMeta::make_rdev(ma, mi),
                birth_ns: None,
            };
            assert_eq!(m.device(), (ma, mi));
        }
        assert_eq!(FileMeta::make_rdev(1, 3), 0x103, "glibc's makedev(1, 3)");
    }

    #[test]
    fn directories_of_dev_are_refused_as_trees() {
        let h = FakeHost::new();
        h.add(Path::new("/dev/shm/vm"), FileKind::Dir, 0, 0, 0o755);
        let e = open_resource(&h, Path::new("/dev/shm/vm"), Some(ResourceKind::Filesystem))
            .unwrap_err();
        assert!(e.to_string().contains("directory of /dev"), "{e}");
    }
}

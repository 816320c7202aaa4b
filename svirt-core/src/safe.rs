//! Which paths svirt may relabel, and how they are opened: a denylist of system paths, symlinks
//! resolved once and checked again, and nodes opened `O_PATH|O_NOFOLLOW` and verified by type.

use std::path::{Path, PathBuf};

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

/// Why `path` must not be relabeled, if it must not.
pub fn denied(path: &Path) -> Option<&'static str> {
    let text = path.to_string_lossy();
    let trimmed = if text.len() > 1 {
        text.trim_end_matches('/')
    } else {
        &text
    };
    if tpm_cancel_file(Path::new(trimmed)) {
        return None;
    }
    if DENY_EXACT.contains(&trimmed) {
        return Some("it is a system directory");
    }
    if DENY_TREES.iter().any(|t| Path::new(trimmed).starts_with(t)) {
        return Some("it lies inside a system directory");
    }
    // A user's home directory itself (/home/NAME).
    let p = Path::new(trimmed);
    if p.parent() == Some(Path::new("/home")) {
        return Some("it is a home directory");
    }
    None
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

/// A resource path resolved and opened for relabeling.
#[derive(Debug)]
pub struct Opened {
    /// The path after resolving a symlink once.
    pub path: PathBuf,
    pub node: Node,
    pub meta: FileMeta,
}

/// Resolve `path` (a symlink is resolved once), refuse denied targets, open the target without
/// following symlinks, and check its type: regular files, devices, sockets and fifos always;
/// directories only when `allow_dir`.
pub fn open_resource(host: &dyn Host, path: &Path, allow_dir: bool) -> Result<Opened> {
    let refuse = |p: &Path, reason: String| Error::PathRefused {
        path: p.to_owned(),
        reason,
    };
    if let Some(why) = denied(path) {
        return Err(refuse(path, why.into()));
    }
    let first = host
        .lstat(path)
        .map_err(|e| Error::host("inspect", path, e))?;
    let target = if first.kind == FileKind::Symlink {
        let t = host
            .canonicalize(path)
            .map_err(|e| Error::host("resolve symlink", path, e))?;
        if let Some(why) = denied(&t) {
            return Err(refuse(
                &t,
                format!("{why} (reached through symlink {})", path.display()),
            ));
        }
        t
    } else {
        path.to_owned()
    };
    let node = host
        .open_node(&target)
        .map_err(|e| Error::host("open", &target, e))?;
    let meta = host
        .meta(&node)
        .map_err(|e| Error::host("inspect", &target, e))?;
    match meta.kind {
        FileKind::File | FileKind::Block | FileKind::Char | FileKind::Socket | FileKind::Fifo => {}
        FileKind::Dir if allow_dir => {}
        FileKind::Dir => {
            return Err(refuse(
                &target,
                "it is a directory; use a filesystem share".into(),
            ))
        }
        FileKind::Symlink => {
            return Err(refuse(
                &target,
                "it became a symlink while being opened".into(),
            ))
        }
    }
    Ok(Opened {
        path: target,
        node,
        meta,
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
            "/sys/class/tpm/tpm0/device/other",
            "/sys/class/tpm/evil/device/cancel",
        ] {
            assert!(denied(Path::new(p)).is_some(), "{p} should be denied");
        }
        for p in [
            "/var/lib/svirt/images/a.img",
            "/srv/vm1",
            "/dev/vfio/12",
            "/tmp/x/disk.img",
            "/home/alice/vm.img",
            "/sys/class/tpm/tpm0/device/cancel",
            "/sys/class/misc/tpm12/device/cancel",
        ] {
            assert!(denied(Path::new(p)).is_none(), "{p} should be allowed");
        }
    }

    #[test]
    fn symlink_to_a_system_path_is_refused_after_resolving_it() {
        let h = FakeHost::new();
        h.add_file("/etc/shadow");
        h.add_symlink("/srv/evil.img", "/etc/shadow");
        let e = open_resource(&h, Path::new("/srv/evil.img"), false).unwrap_err();
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
        let o = open_resource(&h, Path::new("/srv/link.img"), false).unwrap();
        assert_eq!(o.path, Path::new("/srv/images/real.img"));
    }

    #[test]
    fn a_file_swapped_for_a_symlink_while_opening_is_refused() {
        let h = FakeHost::new();
        h.add_file("/srv/a.img");
        h.add_file("/srv/other.img");
        h.swap_before_open("/srv/a.img", "/srv/other.img");
        let e = open_resource(&h, Path::new("/srv/a.img"), false).unwrap_err();
        assert!(e.to_string().contains("became a symlink"), "{e}");
    }
}

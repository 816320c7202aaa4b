//! `trusted.svirt.*` marks: every inode svirt changes also carries its original, so
//! `svirt recover --scan` can put it back when the state database is gone. Where the kernel
//! refuses `trusted.*` (EPERM in containers, ENOTSUP) the database alone remembers.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{debug, warn};

use crate::host::{is_unsupported, Host, Node};

/// The xattr prefix svirt owns.
pub const XATTR_PREFIX: &str = "trusted.svirt.";

/// What a mark says about an inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The original value; `None` when the attribute was absent.
    pub original: Option<String>,
    /// The stamp of the one-pass share walk that wrote it (see `stamp`), if one did.
    pub stamp: Option<u32>,
}

/// The stamp a one-pass share walk started at `started_ns` puts on its marks: undoing that
/// walk after a crash trusts only marks with its stamp, never one a copy (`cp -a`, `rsync -X`,
/// a backup restored as root) brought from elsewhere onto an entry the walk did not mark.
pub fn stamp(started_ns: i64) -> u32 {
    // The low 32 bits of a nanosecond instant: another start's are equal by chance only.
    started_ns as u32
}

/// Reads and writes the marks, remembering when the kernel refuses them.
#[derive(Debug, Default)]
pub struct Marks {
    /// Whether a refusal was logged already (once per process: a filesystem without
    /// `trusted.*` refuses every mark, and an immutable file its own).
    warned: AtomicBool,
}

fn name(model: &str) -> String {
    format!("{XATTR_PREFIX}{model}")
}

/// `=VALUE` for a value, `!` for an absent attribute.
pub fn encode(v: Option<&str>) -> String {
    match v {
        Some(s) => format!("={s}"),
        None => "!".into(),
    }
}

/// [`encode`] after `@` and the stamp in 8 hex digits.
fn encode_stamped(v: Option<&str>, stamp: u32) -> String {
    format!("@{stamp:08x}{}", encode(v))
}

/// The inverse of [`encode`]; `None` for text that is neither.
pub fn decode(s: &str) -> Option<Option<String>> {
    if s == "!" {
        return Some(None);
    }
    s.strip_prefix('=').map(|v| Some(v.to_owned()))
}

/// A mark's text, stamped ([`encode_stamped`]) or not ([`encode`]).
pub(super) fn decode_mark(s: &str) -> Option<Mark> {
    let (stamp, rest) = match s.strip_prefix('@') {
        Some(r) => {
            let hex = r.get(..8)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            (Some(u32::from_str_radix(hex, 16).ok()?), &r[8..])
        }
        None => (None, s),
    };
    Some(Mark {
        original: decode(rest)?,
        stamp,
    })
}

/// The mark on a share root naming the common original of its entries (those without a mark
/// of their own).
fn entries_name(model: &str) -> String {
    format!("{XATTR_PREFIX}{model}.entries")
}

impl Marks {
    fn refused(&self, e: &std::io::Error, path: &Path) -> bool {
        let refused = is_unsupported(e) || e.raw_os_error() == Some(libc::EPERM);
        if refused && !self.warned.swap(true, Ordering::Relaxed) {
            warn!(path = %path.display(), error = %e, "a file refuses svirt's trusted.* mark (a filesystem without trusted xattrs, an immutable file); originals are remembered in the state database (logged once)");
        }
        refused
    }

    /// Like [`Marks::change`], telling whether the change was made.
    fn try_change(
        &self,
        path: impl FnOnce() -> PathBuf,
        what: &str,
        op: impl FnOnce() -> io::Result<()>,
    ) -> bool {
        let mut made = true;
        self.change(path, what, || op().inspect_err(|_| made = false));
        made
    }

    /// Make a best-effort change to the marks of `path` (the database is the record, a mark a
    /// second copy). Every change is tried: a refusal is the inode's or its filesystem's (an
    /// immutable file, an NFS disk), never a reason to stop marking the others.
    fn change(
        &self,
        path: impl FnOnce() -> PathBuf,
        what: &str,
        op: impl FnOnce() -> io::Result<()>,
    ) {
        if let Err(e) = op() {
            let path = path();
            if !self.refused(&e, &path) {
                debug!(path = %path.display(), error = %e, "cannot {what} svirt mark");
            }
        }
    }

    /// The mark of `model` on a node, if any.
    pub fn read(&self, host: &dyn Host, node: &Node, model: &str) -> Option<Mark> {
        let text = match host.get_xattr(node, &name(model)) {
            Ok(v) => String::from_utf8_lossy(&v?).into_owned(),
            Err(e) => {
                self.refused(&e, node.path());
                return None;
            }
        };
        decode_mark(&text)
    }

    /// Mark a node with its original before svirt changes it.
    pub fn write(&self, host: &dyn Host, node: &Node, model: &str, original: Option<&str>) {
        self.change(
            || node.path().to_owned(),
            "write",
            || host.set_xattr(node, &name(model), encode(original).as_bytes()),
        );
    }

    /// Remove `model`'s marks once the original is back.
    pub fn remove(&self, host: &dyn Host, node: &Node, model: &str) {
        self.change(
            || node.path().to_owned(),
            "remove",
            || host.remove_xattr(node, &name(model)),
        );
    }

    /// Mark the entry `name` of `dir` with its original (see [`Marks::write`]).
    pub fn write_at(
        &self,
        host: &dyn Host,
        dir: &Node,
        name: &OsStr,
        model: &str,
        original: Option<&str>,
    ) {
        self.change(
            || dir.path().join(name),
            "write",
            || host.set_xattr_at(dir, name, &self::name(model), encode(original).as_bytes()),
        );
    }

    /// [`Marks::try_write_stamped_at`] on an opened node.
    pub fn try_write_stamped(
        &self,
        host: &dyn Host,
        node: &Node,
        model: &str,
        original: Option<&str>,
        stamp: u32,
    ) -> bool {
        let text = encode_stamped(original, stamp);
        self.try_change(
            || node.path().to_owned(),
            "write",
            || host.set_xattr(node, &name(model), text.as_bytes()),
        )
    }

    /// Mark the entry `name` of `dir` with its original and the walk's stamp; whether the mark
    /// was written (a one-pass share walk changes an entry whose original is not the common
    /// one only once its mark holds that original).
    pub fn try_write_stamped_at(
        &self,
        host: &dyn Host,
        dir: &Node,
        name: &OsStr,
        model: &str,
        original: Option<&str>,
        stamp: u32,
    ) -> bool {
        let text = encode_stamped(original, stamp);
        self.try_change(
            || dir.path().join(name),
            "write",
            || host.set_xattr_at(dir, name, &self::name(model), text.as_bytes()),
        )
    }

    /// The mark of `model` on the entry `name` of `dir`, if any.
    pub fn read_at(&self, host: &dyn Host, dir: &Node, name: &OsStr, model: &str) -> Option<Mark> {
        let v = host.get_xattr_at(dir, name, &self::name(model)).ok()??;
        decode_mark(&String::from_utf8_lossy(&v))
    }

    /// Remove the entry's mark once its original is back.
    pub fn remove_at(&self, host: &dyn Host, dir: &Node, name: &OsStr, model: &str) {
        self.change(
            || dir.path().join(name),
            "remove",
            || host.remove_xattr_at(dir, name, &self::name(model)),
        );
    }

    /// Mark a share root with the common original of its entries.
    pub fn write_entries(&self, host: &dyn Host, root: &Node, model: &str, original: Option<&str>) {
        self.change(
            || root.path().to_owned(),
            "write",
            || host.set_xattr(root, &entries_name(model), encode(original).as_bytes()),
        );
    }

    /// [`Marks::write_entries`], telling whether the mark was written.
    pub fn try_write_entries(
        &self,
        host: &dyn Host,
        root: &Node,
        model: &str,
        original: Option<&str>,
    ) -> bool {
        self.try_change(
            || root.path().to_owned(),
            "write",
            || host.set_xattr(root, &entries_name(model), encode(original).as_bytes()),
        )
    }

    /// The common original of a share root's entries, if the root is so marked.
    pub fn read_entries(&self, host: &dyn Host, root: &Node, model: &str) -> Option<Mark> {
        let v = host.get_xattr(root, &entries_name(model)).ok()??;
        decode_mark(&String::from_utf8_lossy(&v))
    }

    /// Remove a share root's entries mark.
    pub fn remove_entries(&self, host: &dyn Host, root: &Node, model: &str) {
        self.change(
            || root.path().to_owned(),
            "remove",
            || host.remove_xattr(root, &entries_name(model)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_absent_apart_from_empty() {
        for v in [None, Some(""), Some("system_u:object_r:etc_t:s0")] {
            assert_eq!(decode(&encode(v)), Some(v.map(str::to_owned)));
        }
        assert_eq!(decode("garbage"), None);
    }

    #[test]
    fn a_stamped_mark_reads_back_with_its_stamp_and_a_plain_one_without() {
        for v in [None, Some(""), Some("0:0:4755")] {
            let m = decode_mark(&encode_stamped(v, 0xdead_beef)).unwrap();
            assert_eq!(m.original.as_deref(), v);
            assert_eq!(m.stamp, Some(0xdead_beef));
            let m = decode_mark(&encode(v)).unwrap();
            assert_eq!((m.original.as_deref(), m.stamp), (v, None));
        }
        for bad in [
            "@",
            "@1234567",
            "@zzzzzzzz=x",
            "@12345678",
            "@12345678garbage",
        ] {
            assert_eq!(decode_mark(bad), None, "{bad}");
        }
    }
}

//! The file attribute a driver changes on a resource (an SELinux label, or an owner and mode).
//! SELinux and DAC differ only in their [`FileAttr`]; remembering, applying and restoring are one
//! implementation, the [`crate::engine`].

use std::ffi::OsStr;
use std::fmt::Debug;
use std::io;
use std::path::Path;

use crate::host::{fs_magic, FileKind, FileMeta, Host, Node};

/// One attribute of a file that a driver changes.
pub trait FileAttr: Send + Sync + Debug {
    /// The model name, used to key remembered originals.
    fn model(&self) -> &str;
    /// The current value; `None` when absent.
    fn read(&self, host: &dyn Host, node: &Node) -> io::Result<Option<String>>;
    /// Set the value; `None` removes it.
    fn write(&self, host: &dyn Host, node: &Node, value: Option<&str>) -> io::Result<()>;
    /// The current value of the entry `name` of the directory `dir`, not following it.
    /// The default opens the entry; drivers make one entry-relative call.
    fn read_at(&self, host: &dyn Host, dir: &Node, name: &OsStr) -> io::Result<Option<String>> {
        self.read(host, &host.open_child(dir, name)?)
    }
    /// Like [`FileAttr::read_at`], with the entry's metadata when reading it gave that too
    /// (an owner is read with `statx`, which also names the inode's birth).
    fn read_at_meta(
        &self,
        host: &dyn Host,
        dir: &Node,
        name: &OsStr,
    ) -> io::Result<(Option<String>, Option<FileMeta>)> {
        Ok((self.read_at(host, dir, name)?, None))
    }
    /// Set the value of the entry `name` (of type `kind`) of `dir`, never following it.
    fn write_at(
        &self,
        host: &dyn Host,
        dir: &Node,
        name: &OsStr,
        _kind: FileKind,
        value: Option<&str>,
    ) -> io::Result<()> {
        self.write(host, &host.open_child(dir, name)?, value)
    }
    /// Whether a value carries a VM's identity: one the driver hands out (a pool uid, an MCS
    /// pair), or, given `own` (the label of the domain whose share is restored, as the driver
    /// recorded it), that domain's even when the driver did not draw it (a static label's uid).
    /// A per-resource label (which may name a host account) is never `own`. Only an entry whose
    /// value does, or whose value svirt applied to something, can be a VM's leftover or a link
    /// to an inode svirt manages; every other entry of a share is taken as it is.
    fn carries_vm(&self, _current: Option<&str>, _own: Option<&str>) -> bool {
        false
    }
    /// Whether the applied `target` already holds for `current` (so nothing needs doing).
    fn matches(&self, current: Option<&str>, target: &str) -> bool {
        current == Some(target)
    }
    /// Whether `current` may be what a change to `target` left, whole or cut short: a value
    /// written in one call ([`FileAttr::matches`]), or, for one written in steps (an owner,
    /// then a mode), its first step.
    fn partly_applied(&self, current: Option<&str>, target: &str) -> bool {
        self.matches(current, target)
    }
    /// The value to remember as `path`'s original when nothing remembered it before: normally
    /// `current`. A driver can refuse a value it knows is a leftover of its own (a dead VM's
    /// label after the state was lost) and name a default instead.
    fn original_for(&self, _path: &Path, current: Option<String>) -> Option<String> {
        current
    }
    /// What to tell the administrator when a filesystem refuses the attribute.
    fn unsupported_hint(&self, _fs_type: i64) -> Option<&'static str> {
        None
    }
    /// An entry of a directory share that svirt did not change (the VM created it, or replaced
    /// what svirt changed): the value it gets at stop when it carries a VM's identity (see
    /// [`FileAttr::carries_vm`] for `own`), given the share
    /// root's original; `None` leaves it as it is.
    fn reclaim(
        &self,
        _current: Option<&str>,
        _root_original: Option<&str>,
        _own: Option<&str>,
        _path: &Path,
        _kind: FileKind,
    ) -> Option<String> {
        None
    }
    /// The original an entry of `kind` of a share changed in one pass is taken to have when it
    /// carries no mark of its own, given the share root's original: the root's own by default.
    /// An entry whose original differs is marked before it changes, so this only decides how
    /// many entries need a mark (a mark is a second xattr, and may need a block of its own).
    fn entry_common(&self, root_original: Option<&str>, _kind: FileKind) -> Option<String> {
        root_original.map(str::to_owned)
    }
    /// Whether a file holding `value` may be written by processes other than the domain's it
    /// was applied for: an identity several domains may run under (a static uid), or one
    /// every domain shares, with write permission. A change cut short never gives such a file
    /// its setuid/setgid bits back: nothing recorded when it was last written.
    fn others_may_write(&self, _value: &str) -> bool {
        false
    }
    /// For a value written in steps (an owner, then a mode): a value to write before `target`
    /// so that a change cut short between the two steps still shows `current`'s identity and
    /// grants no more than `target` (DAC: `current`'s owner with `target`'s mode). `None`: one
    /// step.
    fn first_step(&self, _current: Option<&str>, _target: &str) -> Option<String> {
        None
    }
    /// The original without the privileges an inode may only get back if nobody changed it
    /// while the VM held it (setuid and setgid bits); `None` when the original grants none.
    fn without_privileges(&self, _original: &str) -> Option<String> {
        None
    }
}

/// True for errors that mean "this filesystem cannot hold this attribute or owner".
pub use crate::host::is_unsupported;

/// The SELinux boolean that governs a filesystem that cannot hold labels.
pub fn selinux_boolean_hint(fs_type: i64) -> Option<&'static str> {
    match fs_type {
        fs_magic::NFS => Some("set the SELinux boolean virt_use_nfs to let VMs use NFS files"),
        fs_magic::FUSE => Some("set the SELinux boolean virt_use_fusefs to let VMs use FUSE files"),
        fs_magic::CIFS | fs_magic::SMB2 => {
            Some("set the SELinux boolean virt_use_samba to let VMs use CIFS files")
        }
        _ => None,
    }
}

/// What a driver does with one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Leave it alone, for this reason.
    Skip(String),
    /// Set this value.
    Set(String),
}

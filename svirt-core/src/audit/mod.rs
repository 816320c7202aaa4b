//! `svirt audit`: what could a compromised VM process open, on the host as it is now?
//!
//! Each driver knows its own wall. [`crate::driver::SecurityDriver::wall`] turns a domain's
//! recorded label into a [`Wall`] (SELinux: the policy's decision for the process label on the
//! file's label; DAC: owner, group, mode and ACLs for the VM's uid and groups; Landlock: the
//! recorded ruleset), and [`crate::driver::SecurityDriver::marker`] reads which VM a file belongs
//! to from the marks the driver puts on files (an MCS image label, a per-VM owner).
//!
//! [`run`] walks the roots through the host seam without following symlinks, reads each
//! file's owner, mode, label and ACL (never opening it), combines every wall the way the kernel
//! does (an access is possible only when every wall allows it; a driver that sets no wall is not
//! counted), and sorts what each VM can reach into expected (its own resources, shared ones) and
//! violations (another VM's private file, a stale mark of a VM that is not running, a private
//! disk labeled shared, a host file the VM can write).

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::host::{FileKind, Host};

mod classify;
mod walk;

pub use classify::{run, Class, Entry, Finding, Known, Report, Subject, SubjectReport};
pub use walk::{facts_of, walk, Walked};

/// The xattr holding a file's POSIX access ACL.
pub const ACL_XATTR: &str = "system.posix_acl_access";

/// What the audit knows of one file, read through an `O_PATH` node: the file is never opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileFacts {
    pub path: PathBuf,
    pub kind: FileKind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (07777).
    pub mode: u32,
    /// `security.selinux`, without the trailing NUL.
    pub label: Option<String>,
    /// `system.posix_acl_access`, as the kernel stores it.
    #[serde(skip)]
    pub acl: Option<Vec<u8>>,
}

impl FileFacts {
    /// Facts of a file with no label and no ACL (tests, fakes).
    pub fn new(path: impl Into<PathBuf>, kind: FileKind, uid: u32, gid: u32, mode: u32) -> Self {
        FileFacts {
            path: path.into(),
            kind,
            uid,
            gid,
            mode,
            label: None,
            acl: None,
        }
    }

    /// The same facts with a label.
    pub fn with_label(mut self, label: &str) -> Self {
        self.label = Some(label.to_owned());
        self
    }
}

/// One wall's answer for one file.
///
/// For a regular file or device: `read` and `write` mean `open(O_RDONLY)` and `open(O_WRONLY)`
/// succeed. For a directory: `read` means listing it, `write` creating entries in it, and
/// `search` looking a name up in it (path traversal). `search` is true for everything else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub read: bool,
    pub write: bool,
    pub search: bool,
    /// Why, in this wall's terms (the rule or mode bits that decided).
    pub reason: String,
}

impl Decision {
    /// Everything allowed.
    pub fn allow_all(reason: impl Into<String>) -> Self {
        Decision {
            read: true,
            write: true,
            search: true,
            reason: reason.into(),
        }
    }
}

/// A wall a driver sets around one VM process.
pub trait Wall: Send + Sync + Debug {
    /// The model of the driver that set it.
    fn model(&self) -> &str;
    /// Whether the VM process could open `file` for reading and for writing, as far as this
    /// wall goes.
    fn decide(&self, file: &FileFacts) -> Decision;
}

/// What a driver's marks on a file say about whose it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "mark", content = "value", rename_all = "lowercase")]
pub enum Mark {
    /// The private mark of one VM (an image label with its MCS pair, a per-VM owner).
    Private(String),
    /// The mark of files every VM may use (the shared image label, read-only content).
    Shared,
}

/// Reads a driver's marks on files.
pub trait Marker: Send + Sync + Debug {
    /// The model of the driver whose marks these are.
    fn model(&self) -> &str;
    /// The mark `file` carries, if any.
    fn mark(&self, file: &FileFacts) -> Option<Mark>;
    /// The private mark this driver puts on the files of the domain with this recorded label.
    fn mark_of(&self, label: &crate::driver::LabelRecord) -> Option<String>;
}

/// What a driver may need to build its wall.
#[derive(Clone, Debug)]
pub struct WallOptions {
    /// The host the audit walks (drivers resolve recorded paths through it).
    pub host: Arc<dyn Host>,
    /// A mandatory-access-control policy file to decide against instead of the one the driver
    /// would pick (`svirt audit --policy`).
    pub policy: Option<PathBuf>,
}

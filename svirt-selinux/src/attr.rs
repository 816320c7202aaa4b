//! The SELinux file attribute: the `security.selinux` xattr.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use svirt_core::attr::{selinux_boolean_hint, FileAttr};
use svirt_core::context::SecurityContext;
use svirt_core::host::{get_label, FileKind, Host, Node, SELINUX_XATTR};
use tracing::warn;

/// A file's SELinux label.
#[derive(Debug, Default)]
pub struct SelinuxAttr {
    /// The image type (`svirt_image_t`): a label of this type with categories and nothing
    /// remembering it is a dead VM's, never an original.
    pub image_type: Option<String>,
    /// The content context, the last fallback.
    pub content: Option<String>,
    /// The policy's file_contexts, for the default label.
    pub file_contexts: Option<PathBuf>,
}

impl SelinuxAttr {
    /// The default label of `path`: the policy's (selabel_lookup on file_contexts), else the
    /// content context.
    pub fn default_label(&self, path: &Path) -> Option<String> {
        self.default_label_of(path, path.is_dir())
    }

    fn default_label_of(&self, path: &Path, dir: bool) -> Option<String> {
        self.file_contexts
            .as_deref()
            .and_then(|fc| crate::defaults::policy_default(fc, path, dir))
            .or_else(|| self.content.clone())
    }
}

/// A label with categories: a VM's pair (or a static label's), never a share's own.
fn carries_pair(current: Option<&str>) -> bool {
    // Cheap first: categories can only follow the third colon, as `c<N>`.
    let level_has_c = current
        .and_then(|c| c.splitn(4, ':').nth(3))
        .is_some_and(|level| level.contains('c'));
    level_has_c
        && current
            .and_then(|c| c.parse::<SecurityContext>().ok())
            .and_then(|c| c.range)
            .is_some_and(|r| !r.high.categories.is_empty())
}

impl FileAttr for SelinuxAttr {
    fn model(&self) -> &str {
        "selinux"
    }

    fn read(&self, host: &dyn Host, node: &Node) -> io::Result<Option<String>> {
        get_label(host, node)
    }

    fn write(&self, host: &dyn Host, node: &Node, value: Option<&str>) -> io::Result<()> {
        match value {
            Some(v) => {
                let mut bytes = v.as_bytes().to_vec();
                bytes.push(0);
                host.set_xattr(node, SELINUX_XATTR, &bytes)
            }
            None => host.remove_xattr(node, SELINUX_XATTR),
        }
    }

    fn read_at(&self, host: &dyn Host, dir: &Node, name: &OsStr) -> io::Result<Option<String>> {
        Ok(host.get_xattr_at(dir, name, SELINUX_XATTR)?.map(|mut v| {
            if v.last() == Some(&0) {
                v.pop();
            }
            String::from_utf8(v)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        }))
    }

    fn write_at(
        &self,
        host: &dyn Host,
        dir: &Node,
        name: &OsStr,
        _kind: FileKind,
        value: Option<&str>,
    ) -> io::Result<()> {
        match value {
            // Labels fit on the stack; with their NUL, as libselinux writes them.
            Some(v) if v.len() < 256 => {
                let mut buf = [0u8; 256];
                buf[..v.len()].copy_from_slice(v.as_bytes());
                host.set_xattr_at(dir, name, SELINUX_XATTR, &buf[..=v.len()])
            }
            Some(v) => {
                let mut bytes = Vec::with_capacity(v.len() + 1);
                bytes.extend_from_slice(v.as_bytes());
                bytes.push(0);
                host.set_xattr_at(dir, name, SELINUX_XATTR, &bytes)
            }
            None => host.remove_xattr_at(dir, name, SELINUX_XATTR),
        }
    }

    // A static label's own pair is a pair too; a static label without categories labels
    // nothing the VM creates with a value the share's files could not have had before.
    fn carries_vm(&self, current: Option<&str>, _own: Option<&str>) -> bool {
        carries_pair(current)
    }

    fn original_for(&self, path: &Path, current: Option<String>) -> Option<String> {
        let Some(image_type) = &self.image_type else {
            return current;
        };
        let leftover = current
            .as_deref()
            .and_then(|c| c.parse::<SecurityContext>().ok())
            .is_some_and(|c| {
                &c.type_ == image_type && c.range.is_some_and(|r| !r.high.categories.is_empty())
            });
        if !leftover {
            return current;
        }
        let fallback = self.default_label(path);
        warn!(
            path = %path.display(),
            label = current.as_deref().unwrap_or(""),
            original = fallback.as_deref().unwrap_or("(none)"),
            "the file carries a VM image label that nothing remembers (a dead VM's?); remembering the policy default instead"
        );
        fallback.or(current)
    }

    fn reclaim(
        &self,
        current: Option<&str>,
        root_original: Option<&str>,
        _own: Option<&str>,
        path: &Path,
        kind: FileKind,
    ) -> Option<String> {
        // A label with categories that nothing remembered is a VM's (its pair): the entry gets
        // the policy default, else the share's own original.
        if !carries_pair(current) {
            return None;
        }
        self.default_label_of(path, kind == FileKind::Dir)
            .or_else(|| root_original.map(str::to_owned))
    }

    fn unsupported_hint(&self, fs_type: i64) -> Option<&'static str> {
        selinux_boolean_hint(fs_type)
    }
}

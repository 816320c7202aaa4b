//! The SELinux file attribute: the `security.selinux` xattr.

use std::io;

use svirt_core::host::{get_label, Host, Node, SELINUX_XATTR};
use svirt_core::relabel::{selinux_boolean_hint, FileAttr};

/// A file's SELinux label.
#[derive(Debug, Default)]
pub struct SelinuxAttr;

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

    fn unsupported_hint(&self, fs_type: i64) -> Option<&'static str> {
        selinux_boolean_hint(fs_type)
    }
}

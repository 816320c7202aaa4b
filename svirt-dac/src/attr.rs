//! The DAC file attribute: owner and mode, written `uid:gid:mode` (mode in octal).

use std::io;

use svirt_core::host::{FileKind, Host, Node};
use svirt_core::relabel::FileAttr;

/// Owner and permission bits. Directories get the execute bit wherever they get read.
#[derive(Debug, Default)]
pub struct DacAttr;

/// Format an owner and mode as the DAC attribute value.
pub fn value(uid: u32, gid: u32, mode: u32) -> String {
    format!("{uid}:{gid}:{mode:04o}")
}

fn parse(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split(':');
    let uid = it.next()?.parse().ok()?;
    let gid = it.next()?.parse().ok()?;
    let mode = u32::from_str_radix(it.next()?, 8).ok()?;
    it.next().is_none().then_some((uid, gid, mode))
}

impl FileAttr for DacAttr {
    fn model(&self) -> &str {
        "dac"
    }

    fn read(&self, host: &dyn Host, node: &Node) -> io::Result<Option<String>> {
        let m = host.meta(node)?;
        Ok(Some(value(m.uid, m.gid, m.mode)))
    }

    fn write(&self, host: &dyn Host, node: &Node, v: Option<&str>) -> io::Result<()> {
        let Some(v) = v else { return Ok(()) };
        let (uid, gid, mut mode) =
            parse(v).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        if host.meta(node)?.kind == FileKind::Dir {
            mode |= (mode & 0o444) >> 2;
        }
        host.chown(node, uid, gid)?;
        host.chmod(node, mode)
    }

    fn matches(&self, current: Option<&str>, target: &str) -> bool {
        match (current.and_then(parse), parse(target)) {
            (Some((u, g, m)), Some((tu, tg, tm))) => {
                u == tu && g == tg && (m & !0o111) == (tm & !0o111)
            }
            _ => false,
        }
    }
}

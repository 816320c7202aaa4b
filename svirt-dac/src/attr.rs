//! The DAC file attribute: owner and mode, written `uid:gid:mode` (mode in octal).

use std::ffi::OsStr;
use std::io;

use std::path::Path;

use svirt_core::attr::FileAttr;
use svirt_core::host::{FileKind, FileMeta, Host, Node};

/// Owner and permission bits. Directories get the execute bit wherever they get read.
#[derive(Debug, Default)]
pub struct DacAttr {
    /// The VM uid pool (`lo`, `hi`) and the shared group: an owner in the pool (other than the
    /// shared group) is a VM's.
    pool: Option<(u32, u32, u32)>,
}

impl DacAttr {
    /// The attribute of a driver whose VMs get uids `lo..=hi`, sharing group `shared_gid`.
    pub fn for_pool(lo: u32, hi: u32, shared_gid: u32) -> Self {
        DacAttr {
            pool: Some((lo, hi, shared_gid)),
        }
    }

    fn is_vm_id(&self, id: u32) -> bool {
        self.pool
            .is_some_and(|(lo, hi, shared)| (lo..=hi).contains(&id) && id != shared)
    }
}

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
        svirt_core::failpoint::hit("dac.owner-changed");
        host.chmod(node, mode)
    }

    fn read_at(&self, host: &dyn Host, dir: &Node, name: &OsStr) -> io::Result<Option<String>> {
        let m = host.stat_at(dir, name)?;
        Ok(Some(value(m.uid, m.gid, m.mode)))
    }

    fn read_at_meta(
        &self,
        host: &dyn Host,
        dir: &Node,
        name: &OsStr,
    ) -> io::Result<(Option<String>, Option<FileMeta>)> {
        let m = host.stat_at(dir, name)?;
        Ok((Some(value(m.uid, m.gid, m.mode)), Some(m)))
    }

    fn write_at(
        &self,
        host: &dyn Host,
        dir: &Node,
        name: &OsStr,
        kind: FileKind,
        v: Option<&str>,
    ) -> io::Result<()> {
        let Some(v) = v else { return Ok(()) };
        let (uid, gid, mut mode) =
            parse(v).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        if kind == FileKind::Dir {
            mode |= (mode & 0o444) >> 2;
        }
        host.chown_at(dir, name, uid, gid)?;
        svirt_core::failpoint::hit("dac.owner-changed");
        if kind == FileKind::Symlink {
            // A symlink's mode means nothing and cannot be changed.
            return Ok(());
        }
        host.chmod_at(dir, name, mode)
    }

    fn carries_vm(&self, current: Option<&str>) -> bool {
        current
            .and_then(parse)
            .is_some_and(|(uid, gid, _)| self.is_vm_id(uid) || self.is_vm_id(gid))
    }

    fn reclaim(
        &self,
        current: Option<&str>,
        root_original: Option<&str>,
        _path: &Path,
        _kind: FileKind,
    ) -> Option<String> {
        let (uid, gid, mode) = current.and_then(parse)?;
        if !self.is_vm_id(uid) && !self.is_vm_id(gid) {
            return None;
        }
        // The share root's original owner, never a VM's; no setuid, setgid or sticky bit, and
        // writable by that owner alone.
        let (ru, rg, _) = root_original.and_then(parse).unwrap_or((0, 0, 0));
        Some(value(ru, rg, mode & 0o755))
    }

    fn without_privileges(&self, original: &str) -> Option<String> {
        let (uid, gid, mode) = parse(original)?;
        (mode & 0o6000 != 0).then(|| value(uid, gid, mode & 0o1777))
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

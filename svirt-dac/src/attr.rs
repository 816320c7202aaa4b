//! The DAC file attribute: owner and mode, written `uid:gid:mode` (mode in octal).

use std::ffi::OsStr;
use std::io;

use std::path::Path;

use svirt_core::attr::FileAttr;
use svirt_core::host::{FileKind, FileMeta, Host, Node};
use tracing::warn;

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

    /// Whether `uid` or `gid` is a VM's: drawn from the pool, or the domain's own (`own`, its
    /// label as the driver records it, `+uid:+gid`: a static label, which is never a host
    /// account). Root and the shared group are never a VM's own.
    fn is_vm_owner(&self, uid: u32, gid: u32, own: Option<&str>) -> bool {
        let shared = self.pool.map(|(_, _, s)| s);
        let own = own.and_then(parse_label).is_some_and(|(ou, og)| {
            (ou != 0 && ou == uid) || (og != 0 && Some(og) != shared && og == gid)
        });
        self.is_vm_id(uid) || self.is_vm_id(gid) || own
    }
}

/// Format an owner and mode as the DAC attribute value.
pub fn value(uid: u32, gid: u32, mode: u32) -> String {
    format!("{uid}:{gid}:{mode:04o}")
}

/// A label of numeric ids, `+uid:+gid`; names are not read here (they would be host accounts,
/// which a VM's own label never is).
fn parse_label(label: &str) -> Option<(u32, u32)> {
    let (u, g) = label.split_once(':')?;
    Some((
        u.strip_prefix('+')?.parse().ok()?,
        g.strip_prefix('+')?.parse().ok()?,
    ))
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

    /// An owner drawn from the pool with nothing remembering the original (the state was
    /// lost, or a VM made the file) is a VM's, never an original: root's, as libvirt restores
    /// an owner it does not remember, readable by root alone and without setuid/setgid.
    fn original_for(&self, path: &Path, current: Option<String>) -> Option<String> {
        match current.as_deref().and_then(parse) {
            Some((uid, gid, mode)) if self.is_vm_id(uid) || self.is_vm_id(gid) => {
                warn!(path = %path.display(), owner = current.as_deref().unwrap_or(""), "a VM's owner with no original remembered; root's is used");
                Some(value(0, 0, mode & 0o700))
            }
            _ => current,
        }
    }

    fn carries_vm(&self, current: Option<&str>, own: Option<&str>) -> bool {
        current
            .and_then(parse)
            .is_some_and(|(uid, gid, _)| self.is_vm_owner(uid, gid, own))
    }

    fn reclaim(
        &self,
        current: Option<&str>,
        root_original: Option<&str>,
        own: Option<&str>,
        _path: &Path,
        kind: FileKind,
    ) -> Option<String> {
        let (uid, gid, mode) = current.and_then(parse)?;
        if !self.is_vm_owner(uid, gid, own) {
            return None;
        }
        if matches!(kind, FileKind::Block | FileKind::Char) {
            // A device node (root planted it, or the guest made a whiteout `c 0 0`): opening it
            // opens the device, so it goes to root alone, never to the share's owner.
            return Some(value(0, 0, mode & 0o600));
        }
        // The share root's original owner, never a VM's; no setuid, setgid or sticky bit, and
        // writable by that owner alone.
        let (ru, rg, _) = root_original.and_then(parse).unwrap_or((0, 0, 0));
        Some(value(ru, rg, mode & 0o755))
    }

    /// A regular file's: the root directory's owner and mode without its execute, setuid,
    /// setgid and sticky bits, as files are created beside directories (0755 beside 0644,
    /// 0775 beside 0664).
    fn entry_common(&self, root_original: Option<&str>, kind: FileKind) -> Option<String> {
        match (kind, root_original.and_then(parse)) {
            (FileKind::File, Some((uid, gid, mode))) => Some(value(uid, gid, mode & 0o666)),
            _ => root_original.map(str::to_owned),
        }
    }

    /// A uid or gid with write permission that the pool did not draw for one domain (a static
    /// label's, the shared group): root excepted, which no VM runs as.
    fn others_may_write(&self, value: &str) -> bool {
        parse(value).is_some_and(|(uid, gid, mode)| {
            (mode & 0o200 != 0 && uid != 0 && !self.is_vm_id(uid))
                || (mode & 0o020 != 0 && gid != 0 && !self.is_vm_id(gid))
        })
    }

    fn first_step(&self, current: Option<&str>, target: &str) -> Option<String> {
        let (uid, gid, _) = current.and_then(parse)?;
        let (_, _, mode) = parse(target)?;
        Some(value(uid, gid, mode))
    }

    fn without_privileges(&self, original: &str) -> Option<String> {
        let (uid, gid, mode) = parse(original)?;
        (mode & 0o6000 != 0).then(|| value(uid, gid, mode & 0o1777))
    }

    /// The owner is changed first (`fchownat`, then `fchmodat`).
    fn partly_applied(&self, current: Option<&str>, target: &str) -> bool {
        match (current.and_then(parse), parse(target)) {
            (Some((u, g, _)), Some((tu, tg, _))) => u == tu && g == tg,
            _ => false,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domains_own_ids_count_as_a_vms_but_root_and_the_shared_group_never_do() {
        let a = DacAttr::for_pool(64000, 64999, 64999);
        let p = Path::new("/s/f");
        // A regular file's common original is its directory's without the execute bits.
        assert_eq!(
            a.entry_common(Some("0:0:0755"), FileKind::File).as_deref(),
            Some("0:0:0644")
        );
        assert_eq!(
            a.entry_common(Some("1000:1000:2775"), FileKind::File)
                .as_deref(),
            Some("1000:1000:0664")
        );
        assert_eq!(
            a.entry_common(Some("0:0:0755"), FileKind::Dir).as_deref(),
            Some("0:0:0755")
        );
        // A drawn uid is one domain's; a static uid, or the shared group with write
        // permission, may be others'; root and read-only values are nobody else's to write.
        assert!(!a.others_may_write("64001:64001:0600"));
        assert!(a.others_may_write("70000:70000:0600"));
        assert!(a.others_may_write("0:64999:0660"));
        assert!(!a.others_may_write("0:64999:0440"));
        assert!(!a.others_may_write("70000:70000:0400"));
        // Pool ids are a VM's whatever the share.
        assert!(a.carries_vm(Some("64001:0:0644"), None));
        // A static label's uid and gid are a VM's only for its own share.
        assert!(!a.carries_vm(Some("70000:70000:4755"), None));
        assert!(a.carries_vm(Some("70000:5:4755"), Some("+70000:+70000")));
        assert!(a.carries_vm(Some("5:70000:0644"), Some("+70000:+70000")));
        assert!(!a.carries_vm(Some("70001:70001:0644"), Some("+70000:+70000")));
        // Root and the shared group never make an entry a VM's, whatever a label says.
        assert!(!a.carries_vm(Some("0:0:4755"), Some("+0:+0")));
        assert!(!a.carries_vm(Some("1000:64999:0644"), Some("+70000:+64999")));
        assert!(!a.carries_vm(Some("1000:1000:0644"), Some("user:group")));
        assert_eq!(
            a.reclaim(
                Some("70000:70000:6755"),
                Some("1234:1235:0755"),
                Some("+70000:+70000"),
                p,
                FileKind::File
            ),
            Some("1234:1235:0755".to_owned()),
            "the share root's owner, without setuid or setgid"
        );
        assert_eq!(
            a.reclaim(
                Some("0:0:4755"),
                Some("1234:1235:0755"),
                Some("0:64999:0660"),
                p,
                FileKind::File
            ),
            None
        );
    }
}

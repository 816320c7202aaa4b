//! The DAC wall for `svirt audit`: owner, group, mode bits and POSIX ACLs
//! (`system.posix_acl_access`) for the VM's uid and groups, as the kernel checks them; and the
//! reader of the DAC driver's marks (a file owned by a pool uid is that VM's).

use svirt_core::audit::{Decision, FileFacts, Mark, Marker, Wall};
use svirt_core::driver::LabelRecord;
use svirt_core::host::FileKind;

use crate::ids::IdRange;

const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;

/// One entry of a POSIX ACL as the kernel stores it (`struct posix_acl_xattr_entry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AclEntry {
    tag: u16,
    perm: u16,
    id: u32,
}

/// Parse `system.posix_acl_access` (version 2, little-endian); `None` when malformed.
fn parse_acl(raw: &[u8]) -> Option<Vec<AclEntry>> {
    let (head, rest) = raw.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*head) != 2 || rest.len() % 8 != 0 {
        return None;
    }
    Some(
        rest.chunks_exact(8)
            .map(|c| AclEntry {
                tag: u16::from_le_bytes([c[0], c[1]]),
                perm: u16::from_le_bytes([c[2], c[3]]),
                id: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// A VM process's uid and groups facing the files of a host.
#[derive(Debug, Clone)]
pub struct DacWall {
    uid: u32,
    /// The primary gid and every supplementary group.
    groups: Vec<u32>,
}

fn rwx(bits: u32) -> String {
    let mut s = String::new();
    s.push(if bits & 4 != 0 { 'r' } else { '-' });
    s.push(if bits & 2 != 0 { 'w' } else { '-' });
    s.push(if bits & 1 != 0 { 'x' } else { '-' });
    s
}

impl DacWall {
    /// The wall of a process with `uid`, primary `gid` and supplementary `groups`.
    pub fn new(uid: u32, gid: u32, groups: &[u32]) -> Self {
        let mut all = vec![gid];
        all.extend(groups.iter().copied().filter(|g| *g != gid));
        DacWall { uid, groups: all }
    }

    fn in_group(&self, gid: u32) -> bool {
        self.groups.contains(&gid)
    }

    /// Whether `want` (r=4, w=2, x=1 bits) is granted, and through which class.
    fn permits(&self, f: &FileFacts, want: u32) -> (bool, String) {
        if let Some(acl) = f.acl.as_deref().and_then(parse_acl) {
            if acl.len() > 3 {
                return self.acl_permits(f, &acl, want);
            }
        }
        let (class, bits) = if f.uid == self.uid {
            ("owner", (f.mode >> 6) & 7)
        } else if self.in_group(f.gid) {
            ("group", (f.mode >> 3) & 7)
        } else {
            ("other", f.mode & 7)
        };
        (bits & want == want, format!("{class} {}", rwx(bits)))
    }

    /// The kernel's `posix_acl_permission`.
    fn acl_permits(&self, f: &FileFacts, acl: &[AclEntry], want: u32) -> (bool, String) {
        let mask = acl
            .iter()
            .find(|e| e.tag == ACL_MASK)
            .map(|e| e.perm as u32);
        let masked = |perm: u32, what: String| {
            let eff = mask.map_or(perm, |m| perm & m);
            (eff & want == want, format!("ACL {what} {}", rwx(eff)))
        };
        let mut found_group = false;
        for e in acl {
            let perm = e.perm as u32;
            match e.tag {
                ACL_USER_OBJ if f.uid == self.uid => {
                    return (perm & want == want, format!("ACL owner {}", rwx(perm)));
                }
                ACL_USER if e.id == self.uid => return masked(perm, format!("user:{}", e.id)),
                ACL_GROUP_OBJ if self.in_group(f.gid) => {
                    found_group = true;
                    if perm & want == want {
                        return masked(perm, "owning group".into());
                    }
                }
                ACL_GROUP if self.in_group(e.id) => {
                    found_group = true;
                    if perm & want == want {
                        return masked(perm, format!("group:{}", e.id));
                    }
                }
                _ => {}
            }
        }
        if found_group {
            return (false, "ACL groups grant too little".into());
        }
        let other = acl
            .iter()
            .find(|e| e.tag == ACL_OTHER)
            .map_or(0, |e| e.perm as u32);
        (other & want == want, format!("ACL other {}", rwx(other)))
    }
}

impl Wall for DacWall {
    fn model(&self) -> &str {
        "dac"
    }

    fn decide(&self, f: &FileFacts) -> Decision {
        if self.uid == 0 {
            return Decision::allow_all("uid 0 passes DAC (CAP_DAC_OVERRIDE)");
        }
        let is_dir = f.kind == FileKind::Dir;
        let (read, why) = self.permits(f, 4);
        // Creating an entry in a directory needs write and search on it.
        let (write, _) = self.permits(f, if is_dir { 3 } else { 2 });
        let (search, _) = if is_dir {
            self.permits(f, 1)
        } else {
            (true, String::new())
        };
        Decision {
            read,
            write,
            search,
            reason: format!(
                "uid {} as {why} on {}:{} {:04o}",
                self.uid, f.uid, f.gid, f.mode
            ),
        }
    }
}

/// Reads the DAC driver's marks: a file owned by a pool uid is that VM's; root-owned with the
/// shared group is shared.
#[derive(Debug, Clone)]
pub struct DacMarker {
    pub range: IdRange,
    pub shared_gid: u32,
    pub passwd: std::path::PathBuf,
    pub group: std::path::PathBuf,
}

impl Marker for DacMarker {
    fn model(&self) -> &str {
        "dac"
    }

    fn mark(&self, f: &FileFacts) -> Option<Mark> {
        let pooled = (self.range.lo..=self.range.hi).contains(&f.uid) && f.uid != self.shared_gid;
        if pooled {
            Some(Mark::Private(format!("uid {}", f.uid)))
        } else if f.uid == 0 && f.gid == self.shared_gid {
            Some(Mark::Shared)
        } else {
            None
        }
    }

    fn mark_of(&self, label: &LabelRecord) -> Option<String> {
        let (uid, _) = crate::ids::parse_owner(&label.label, &self.passwd, &self.group).ok()?;
        ((self.range.lo..=self.range.hi).contains(&uid) && uid != self.shared_gid)
            .then(|| format!("uid {uid}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (t, p, id) in entries {
            v.extend(t.to_le_bytes());
            v.extend(p.to_le_bytes());
            v.extend(id.to_le_bytes());
        }
        v
    }

    fn f(uid: u32, gid: u32, mode: u32) -> FileFacts {
        FileFacts::new("/x", FileKind::File, uid, gid, mode)
    }

    #[test]
    fn dac_wall_denies_on_its_own_by_owner_group_and_mode() {
        let w = DacWall::new(64000, 64000, &[64999]);
        let own = w.decide(&f(64000, 64000, 0o600));
        assert!(own.read && own.write, "{own:?}");
        let other_vm = w.decide(&f(64001, 64001, 0o600));
        assert!(!other_vm.read && !other_vm.write, "{other_vm:?}");
        assert!(other_vm.reason.contains("other ---"), "{}", other_vm.reason);
        let shared = w.decide(&f(0, 64999, 0o660));
        assert!(shared.read && shared.write);
        let content = w.decide(&f(0, 64999, 0o440));
        assert!(content.read && !content.write);
        let world = w.decide(&f(0, 0, 0o666));
        assert!(world.read && world.write);
        // The owner class decides even when it grants less than "other".
        let owner_less = w.decide(&f(64000, 0, 0o066));
        assert!(!owner_less.read && !owner_less.write);
        let mut dir = FileFacts::new("/d", FileKind::Dir, 0, 0, 0o711);
        let d = w.decide(&dir);
        assert!(d.search && !d.read && !d.write);
        dir.mode = 0o700;
        assert!(!w.decide(&dir).search);
        assert!(DacWall::new(0, 0, &[]).decide(&dir).read, "root passes DAC");
    }

    #[test]
    fn acls_grant_named_users_and_groups_through_the_mask() {
        let w = DacWall::new(64000, 64000, &[64999]);
        let mut file = f(0, 0, 0o640);
        file.acl = Some(acl(&[
            (ACL_USER_OBJ, 6, 0),
            (ACL_USER, 6, 64000),
            (ACL_GROUP_OBJ, 4, 0),
            (ACL_MASK, 4, 0),
            (ACL_OTHER, 0, 0),
        ]));
        let d = w.decide(&file);
        assert!(d.read && !d.write, "the mask takes write away: {d:?}");
        file.acl = Some(acl(&[
            (ACL_USER_OBJ, 6, 0),
            (ACL_GROUP_OBJ, 4, 0),
            (ACL_GROUP, 6, 64999),
            (ACL_MASK, 6, 0),
            (ACL_OTHER, 0, 0),
        ]));
        let d = w.decide(&file);
        assert!(d.read && d.write, "{d:?}");
        file.acl = Some(acl(&[
            (ACL_USER_OBJ, 6, 0),
            (ACL_GROUP_OBJ, 4, 0),
            (ACL_GROUP, 0, 64999),
            (ACL_MASK, 6, 0),
            (ACL_OTHER, 6, 0),
        ]));
        let d = w.decide(&file);
        assert!(
            !d.read && !d.write,
            "a matching group entry stops the fall-through to other: {d:?}"
        );
        file.acl = Some(b"garbage".to_vec());
        assert!(
            !w.decide(&file).read,
            "a malformed ACL falls back to the mode"
        );
    }

    #[test]
    fn pool_owners_are_private_marks_and_the_shared_group_is_shared() {
        let m = DacMarker {
            range: IdRange::parse("64000-64999").unwrap(),
            shared_gid: 64999,
            passwd: "/nonexistent".into(),
            group: "/nonexistent".into(),
        };
        assert_eq!(
            m.mark(&f(64005, 64005, 0o600)),
            Some(Mark::Private("uid 64005".into()))
        );
        assert_eq!(m.mark(&f(0, 64999, 0o660)), Some(Mark::Shared));
        assert_eq!(m.mark(&f(0, 0, 0o644)), None);
        let rec = LabelRecord {
            model: "dac".into(),
            kind: svirt_core::domain::LabelType::Dynamic,
            label: "+64005:+64005".into(),
            imagelabel: None,
            relabel: true,
            facts: Default::default(),
        };
        assert_eq!(m.mark_of(&rec), Some("uid 64005".into()));
    }
}

//! The SELinux wall for `svirt audit`: the policy's decision for the VM's process label on each
//! file's label, and the reader of svirt's image labels (whose file is it?).

use std::collections::HashMap;
use std::sync::Mutex;

use svirt_core::audit::{Decision, FileFacts, Mark, Marker, Wall};
use svirt_core::context::SecurityContext;
use svirt_core::driver::LabelRecord;
use svirt_core::host::FileKind;

use crate::decide::{AccessDecision, PolicyFile};
use crate::error::SelinuxError;

/// The context the kernel gives a file without a label, or with one the policy does not define
/// (refpolicy's `unlabeled` initial SID).
pub const UNLABELED: &str = "system_u:object_r:unlabeled_t:s0";

/// The class and the permissions one access needs, per file kind.
fn class_of(kind: FileKind) -> &'static str {
    match kind {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Block => "blk_file",
        FileKind::Char => "chr_file",
        FileKind::Socket => "sock_file",
        FileKind::Symlink => "lnk_file",
        FileKind::Fifo => "fifo_file",
    }
}

/// (read, write, search) permission sets: `open(2)` checks `open` with `read` or `write`;
/// a directory is listed with `read`, written with `write add_name`, traversed with `search`;
/// a socket is connected to with `write` (it cannot be opened).
fn perms_of(kind: FileKind) -> [&'static [&'static str]; 3] {
    match kind {
        FileKind::Dir => [&["read", "open"], &["write", "add_name"], &["search"]],
        FileKind::Socket => [&["read"], &["write"], &[]],
        _ => [&["read", "open"], &["write", "open"], &[]],
    }
}

/// A VM process label facing the files of a host, decided by a binary policy.
#[derive(Debug)]
pub struct SelinuxWall {
    policy: PolicyFile,
    process: String,
    cache: Mutex<HashMap<(Option<String>, FileKind), Decision>>,
}

impl SelinuxWall {
    /// The wall of a process labeled `process` under `policy`; the label must be valid there.
    pub fn new(policy: PolicyFile, process: &str) -> Result<Self, SelinuxError> {
        if !policy.valid(process)? {
            return Err(SelinuxError::NotInPolicy {
                what: "context",
                name: process.to_owned(),
                policy: policy.path().to_owned(),
            });
        }
        Ok(SelinuxWall {
            policy,
            process: process.to_owned(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn one(&self, target: &str, class: &str, perms: &[&str]) -> (bool, String) {
        if perms.is_empty() {
            return (true, String::new());
        }
        match self.policy.decide(&self.process, target, class, perms) {
            Ok(AccessDecision {
                allowed: true,
                undefined,
                ..
            }) if undefined.len() < perms.len() => (true, "allowed".into()),
            Ok(AccessDecision { allowed: true, .. }) => (
                true,
                format!(
                    "not decided: the policy defines none of {} for {class}",
                    perms.join(" ")
                ),
            ),
            Ok(d) => {
                let why: Vec<&str> = d.reasons.iter().map(|r| r.as_str()).collect();
                (
                    false,
                    format!("denied ({}: {})", d.denied.join(" "), why.join(" and ")),
                )
            }
            // A class the policy does not know: the audit errs on the side of "reachable".
            Err(e) => (
                true,
                format!(
                    "not decided ({}), counted as allowed",
                    svirt_core::display_chain(&e)
                ),
            ),
        }
    }

    fn compute(&self, label: Option<&str>, kind: FileKind) -> Decision {
        let (target, note) = match label {
            Some(l) if self.policy.valid(l).unwrap_or(false) => (l.to_owned(), String::new()),
            Some(l) => (
                UNLABELED.to_owned(),
                format!(" (label {l} is not valid in the policy: decided as unlabeled)"),
            ),
            None => (
                UNLABELED.to_owned(),
                " (no label: decided as unlabeled)".into(),
            ),
        };
        let class = class_of(kind);
        let [r, w, s] = perms_of(kind);
        let (read, rr) = self.one(&target, class, r);
        let (write, wr) = self.one(&target, class, w);
        let (search, sr) = self.one(&target, class, s);
        let ty = target
            .parse::<SecurityContext>()
            .map(|c| match c.range {
                Some(range) => format!("{}:{range}", c.type_),
                None => c.type_,
            })
            .unwrap_or_else(|_| target.clone());
        let mut reason = format!("{ty} {class}: read {rr}, write {wr}");
        if kind == FileKind::Dir {
            reason.push_str(&format!(", search {sr}"));
        }
        reason.push_str(&note);
        Decision {
            read,
            write,
            search,
            reason,
        }
    }
}

impl Wall for SelinuxWall {
    fn model(&self) -> &str {
        "selinux"
    }

    fn decide(&self, file: &FileFacts) -> Decision {
        let key = (file.label.clone(), file.kind);
        if let Some(d) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return d.clone();
        }
        let d = self.compute(file.label.as_deref(), file.kind);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, d.clone());
        d
    }
}

/// Reads svirt's SELinux marks: the image type with categories is one VM's (its MCS pair), the
/// image type without categories and the content context are shared.
#[derive(Debug, Clone)]
pub struct SelinuxMarker {
    pub image: SecurityContext,
    pub content: SecurityContext,
}

/// `type:range` of a label: the part of an image label that says whose it is.
fn mark_text(label: &str, image_type: &str) -> Option<Mark> {
    let c: SecurityContext = label.parse().ok()?;
    if c.type_ != image_type {
        return None;
    }
    let range = c.range?;
    if range.low.categories.is_empty() && range.high.categories.is_empty() {
        Some(Mark::Shared)
    } else {
        Some(Mark::Private(format!("{}:{range}", c.type_)))
    }
}

impl Marker for SelinuxMarker {
    fn model(&self) -> &str {
        "selinux"
    }

    fn mark(&self, file: &FileFacts) -> Option<Mark> {
        let label = file.label.as_deref()?;
        if let Ok(c) = label.parse::<SecurityContext>() {
            if c.type_ == self.content.type_ && c.type_ != self.image.type_ {
                return Some(Mark::Shared);
            }
        }
        mark_text(label, &self.image.type_)
    }

    fn mark_of(&self, label: &LabelRecord) -> Option<String> {
        // Without a recorded image label (an identity given by hand), the image type with the
        // process's range: what svirt would label its private images.
        let image = match &label.imagelabel {
            Some(i) => i.clone(),
            None => {
                let c: SecurityContext = label.label.parse().ok()?;
                self.image.with_range(c.range?).to_string()
            }
        };
        match mark_text(&image, &self.image.type_)? {
            Mark::Private(m) => Some(m),
            Mark::Shared => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::decide::tests::mls_policy;

    fn file(label: Option<&str>, kind: FileKind) -> FileFacts {
        let mut f = FileFacts::new("/images/x", kind, 0, 0, 0o644);
        f.label = label.map(str::to_owned);
        f
    }

    #[test]
    fn selinux_wall_allows_own_image_and_denies_by_te_and_by_mcs() {
        let dir = tempfile::tempdir().unwrap();
        let Some(p) = mls_policy(
            dir.path(),
            "selinux_wall_allows_own_image_and_denies_by_te_and_by_mcs",
        ) else {
            return;
        };
        let wall = SelinuxWall::new(
            PolicyFile::open(&p).unwrap(),
            "system_u:system_r:svirt_t:s0:c1,c2",
        )
        .unwrap();
        let own = wall.decide(&file(
            Some("system_u:object_r:svirt_image_t:s0:c1,c2"),
            FileKind::File,
        ));
        assert!(own.read && own.write, "{own:?}");
        let other = wall.decide(&file(
            Some("system_u:object_r:svirt_image_t:s0:c3,c4"),
            FileKind::File,
        ));
        assert!(!other.read && !other.write, "{other:?}");
        assert!(other.reason.contains("constraint"), "{}", other.reason);
        let shadow = wall.decide(&file(Some("system_u:object_r:shadow_t:s0"), FileKind::File));
        assert!(!shadow.read && !shadow.write);
        assert!(
            shadow.reason.contains("no TE allow rule"),
            "{}",
            shadow.reason
        );
        let content = wall.decide(&file(
            Some("system_u:object_r:virt_content_t:s0"),
            FileKind::File,
        ));
        assert!(content.read && !content.write, "{content:?}");
        let images = wall.decide(&file(
            Some("system_u:object_r:virt_image_t:s0"),
            FileKind::Dir,
        ));
        assert!(images.search && images.read && !images.write, "{images:?}");
        let unlabeled = wall.decide(&file(None, FileKind::File));
        assert!(!unlabeled.read && unlabeled.reason.contains("unlabeled"));
        let bogus = wall.decide(&file(Some("system_u:object_r:nosuch_t:s0"), FileKind::File));
        assert!(!bogus.read && bogus.reason.contains("not valid in the policy"));
        assert!(SelinuxWall::new(
            PolicyFile::open(&p).unwrap(),
            "system_u:system_r:svirt_t:s0:c9"
        )
        .is_err());
        let _ = Path::new("/");
    }

    #[test]
    fn marks_tell_a_vms_image_from_shared_and_content() {
        let m = SelinuxMarker {
            image: "system_u:object_r:svirt_image_t:s0".parse().unwrap(),
            content: "system_u:object_r:virt_content_t:s0".parse().unwrap(),
        };
        let f = |l: &str| file(Some(l), FileKind::File);
        assert_eq!(
            m.mark(&f("system_u:object_r:svirt_image_t:s0:c1,c2")),
            Some(Mark::Private("svirt_image_t:s0:c1,c2".into()))
        );
        assert_eq!(
            m.mark(&f("system_u:object_r:svirt_image_t:s0")),
            Some(Mark::Shared)
        );
        assert_eq!(
            m.mark(&f("system_u:object_r:virt_content_t:s0")),
            Some(Mark::Shared)
        );
        assert_eq!(m.mark(&f("system_u:object_r:etc_t:s0")), None);
        let rec = LabelRecord {
            model: "selinux".into(),
            kind: svirt_core::domain::LabelType::Dynamic,
            label: "system_u:system_r:svirt_t:s0:c1,c2".into(),
            imagelabel: Some("unconfined_u:object_r:svirt_image_t:s0:c1,c2".into()),
            relabel: true,
            facts: Default::default(),
        };
        assert_eq!(m.mark_of(&rec), Some("svirt_image_t:s0:c1,c2".into()));
        let by_hand = LabelRecord {
            imagelabel: None,
            label: "system_u:system_r:svirt_t:s0:c3,c4".into(),
            ..rec
        };
        assert_eq!(m.mark_of(&by_hand), Some("svirt_image_t:s0:c3,c4".into()));
    }
}

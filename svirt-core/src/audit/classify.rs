//! Combining the walls and sorting what each VM can reach.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::walk::{facts_of, walk, Unreadable};
use super::{Decision, FileFacts, Mark, Marker, Wall};
use crate::domain::{Access, Resource};
use crate::driver::LabelRecord;
use crate::host::{FileKind, Host};

/// A domain svirt runs, as its record says: whose files are whose.
#[derive(Clone, Debug)]
pub struct Known {
    pub name: String,
    pub resources: Vec<Resource>,
    pub labels: Vec<LabelRecord>,
}

/// A VM process to audit: its walls and what it is meant to use. For an identity given by
/// hand, `resources` is empty and `labels` holds what the walls were built from.
#[derive(Debug)]
pub struct Subject {
    pub name: String,
    pub walls: Vec<Box<dyn Wall>>,
    pub resources: Vec<Resource>,
    pub labels: Vec<LabelRecord>,
}

/// Why a file is in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Expected: one of the VM's own private resources (or carries its own mark).
    Own,
    /// Expected: a shared or read-only resource, or a file carrying the shared mark.
    Shared,
    /// Information: a host file the VM can read but not write.
    HostReadable,
    /// Expected and good: another VM's private file the VM cannot reach.
    Isolated,
    /// Violation: another VM's private file the VM can reach.
    OtherVm,
    /// Violation: a file carrying the private mark of a VM that is not running.
    StaleMark,
    /// Violation: a private resource of a domain carrying the shared mark.
    PrivateLabeledShared,
    /// Violation: a host file (no VM's, not shared) the VM can write.
    HostWritable,
}

impl Class {
    /// True for the classes that make `svirt audit` exit 1.
    pub fn is_violation(self) -> bool {
        matches!(
            self,
            Class::OtherVm | Class::StaleMark | Class::PrivateLabeledShared | Class::HostWritable
        )
    }

    /// The heading of the class in the human report.
    pub fn title(self) -> &'static str {
        match self {
            Class::Own => "own resources (expected)",
            Class::Shared => "shared (expected)",
            Class::HostReadable => "host files readable",
            Class::Isolated => "other VMs' files, unreachable (expected)",
            Class::OtherVm => "VIOLATION: another VM's private file reachable",
            Class::StaleMark => "VIOLATION: mark of a VM that is not running",
            Class::PrivateLabeledShared => "VIOLATION: private disk labeled shared",
            Class::HostWritable => "VIOLATION: host file writable by the VM",
        }
    }
}

/// One file in a VM's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub path: PathBuf,
    pub kind: FileKind,
    pub class: Class,
    pub read: bool,
    pub write: bool,
    /// The domain the file belongs to, when it is a VM's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The file's SELinux label and owner, as found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub uid: u32,
    pub gid: u32,
    pub mode: String,
    /// What each wall said.
    pub reason: String,
}

/// A host-wide finding, whoever can reach the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub path: PathBuf,
    pub class: Class,
    pub detail: String,
}

/// What one VM can reach.
#[derive(Clone, Debug, Serialize)]
pub struct SubjectReport {
    pub name: String,
    /// The walls counted (driver models); a driver that sets no wall is not listed.
    pub walls: Vec<String>,
    /// Every file the VM can open for reading or writing, and every other VM's file it cannot.
    pub entries: Vec<Entry>,
    /// Files walked that the VM can neither read nor write (and that are no VM's).
    pub unreachable: usize,
    pub violations: usize,
}

/// The whole audit.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub roots: Vec<PathBuf>,
    /// Files and directories walked.
    pub walked: usize,
    /// Symlinks seen and not followed.
    pub symlinks: usize,
    pub unreadable: Vec<Unreadable>,
    pub subjects: Vec<SubjectReport>,
    pub findings: Vec<Finding>,
    /// Violations in all: every subject's and every finding.
    pub violations: usize,
}

/// Whose a file is, by records and by marks.
#[derive(Debug, Default)]
struct Owners {
    /// (domain, access) for every resource covering the file.
    records: Vec<(String, Access)>,
    /// Private marks: (model, mark, domain holding it, if a running one does).
    private: Vec<(String, String, Option<String>)>,
    shared_mark: bool,
}

struct Index<'a> {
    resources: Vec<(PathBuf, String, Access)>,
    /// (model, mark) → domain.
    marks: HashMap<(String, String), String>,
    markers: &'a [Box<dyn Marker>],
}

impl Index<'_> {
    fn owners(&self, f: &FileFacts) -> Owners {
        let mut o = Owners::default();
        for (p, name, access) in &self.resources {
            if f.path.starts_with(p) {
                o.records.push((name.clone(), *access));
            }
        }
        for m in self.markers {
            match m.mark(f) {
                Some(Mark::Private(v)) => {
                    let holder = self.marks.get(&(m.model().to_owned(), v.clone())).cloned();
                    o.private.push((m.model().to_owned(), v, holder));
                }
                Some(Mark::Shared) => o.shared_mark = true,
                None => {}
            }
        }
        o
    }
}

fn combine(walls: &[Box<dyn Wall>], f: &FileFacts) -> Decision {
    let mut d = Decision::allow_all(String::new());
    let mut reasons = Vec::new();
    for w in walls {
        let x = w.decide(f);
        d.read &= x.read;
        d.write &= x.write;
        d.search &= x.search;
        reasons.push(format!("{}: {}", w.model(), x.reason));
    }
    d.reason = if reasons.is_empty() {
        "no wall".into()
    } else {
        reasons.join("; ")
    };
    d
}

fn canonical(host: &dyn Host, p: &Path) -> PathBuf {
    host.canonicalize(p).unwrap_or_else(|_| p.to_owned())
}

fn classify(s: &Subject, o: &Owners, read: bool, write: bool) -> Option<(Class, Option<String>)> {
    let reachable = read || write;
    let mine = |n: &str| n == s.name;
    if let Some((_, a)) = o.records.iter().find(|(n, _)| mine(n)) {
        let (c, owner) = if *a == Access::Private {
            (Class::Own, Some(s.name.clone()))
        } else {
            (Class::Shared, None)
        };
        return reachable.then_some((c, owner));
    }
    if let Some((n, _)) = o.records.iter().find(|(_, a)| *a == Access::Private) {
        let c = if reachable {
            Class::OtherVm
        } else {
            Class::Isolated
        };
        return Some((c, Some(n.clone())));
    }
    if o.private
        .iter()
        .any(|(_, _, h)| h.as_deref().is_some_and(mine))
    {
        return reachable.then(|| (Class::Own, Some(s.name.clone())));
    }
    if let Some((_, _, h)) = o.private.first() {
        let c = match (reachable, h) {
            (false, _) => Class::Isolated,
            (true, Some(_)) => Class::OtherVm,
            (true, None) => Class::StaleMark,
        };
        return Some((c, h.clone()));
    }
    if !reachable {
        return None;
    }
    if o.shared_mark || !o.records.is_empty() {
        return Some((Class::Shared, None));
    }
    Some((
        if write {
            Class::HostWritable
        } else {
            Class::HostReadable
        },
        None,
    ))
}

/// Audit `subjects` over `roots` (canonical paths). `known` are the running domains (whose
/// files are whose), `markers` the drivers' readers of marks.
pub fn run(
    host: &dyn Host,
    roots: &[PathBuf],
    subjects: &[Subject],
    known: &[Known],
    markers: &[Box<dyn Marker>],
) -> Report {
    let walked = walk(host, roots);
    let mut index = Index {
        resources: Vec::new(),
        marks: HashMap::new(),
        markers,
    };
    let records = known.iter().map(|k| (&k.name, &k.resources, &k.labels));
    let mine = subjects.iter().map(|s| (&s.name, &s.resources, &s.labels));
    for (name, resources, labels) in records.chain(mine) {
        for r in resources {
            index
                .resources
                .push((canonical(host, &r.path), name.clone(), r.access));
        }
        for l in labels {
            for m in markers.iter().filter(|m| m.model() == l.model) {
                if let Some(v) = m.mark_of(l) {
                    index.marks.insert((l.model.clone(), v), name.clone());
                }
            }
        }
    }
    let owners: Vec<Owners> = walked.files.iter().map(|f| index.owners(f)).collect();

    let mut findings = Vec::new();
    for (f, o) in walked.files.iter().zip(&owners) {
        for (model, mark, holder) in &o.private {
            if holder.is_none() {
                findings.push(Finding {
                    path: f.path.clone(),
                    class: Class::StaleMark,
                    detail: format!("carries {model} mark {mark}, which no running domain holds"),
                });
            }
        }
    }
    let by_path: HashMap<&Path, usize> = walked
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_path(), i))
        .collect();
    for k in known {
        for r in k.resources.iter().filter(|r| r.access == Access::Private) {
            let p = canonical(host, &r.path);
            let f = match by_path.get(p.as_path()) {
                Some(&i) => walked.files[i].clone(),
                None => match facts_of(host, &p) {
                    Ok(f) => f,
                    Err(_) => continue,
                },
            };
            let shared: Vec<&str> = markers
                .iter()
                .filter(|m| m.mark(&f) == Some(Mark::Shared))
                .map(|m| m.model())
                .collect();
            if !shared.is_empty() {
                findings.push(Finding {
                    path: p,
                    class: Class::PrivateLabeledShared,
                    detail: format!(
                        "private resource of domain {} carries the shared {} mark, so every VM can use it",
                        k.name,
                        shared.join(" and ")
                    ),
                });
            }
        }
    }

    let mut reports = Vec::new();
    for s in subjects {
        let decisions: Vec<Decision> = walked.files.iter().map(|f| combine(&s.walls, f)).collect();
        // `through[i]`: path lookup reaches the entries of directory i. Above the roots,
        // lookup is assumed to pass (see docs/audit.md).
        let mut through = vec![false; walked.files.len()];
        let mut entries = Vec::new();
        let mut unreachable = 0;
        for (i, f) in walked.files.iter().enumerate() {
            let reached = walked.parent[i].is_none_or(|p| through[p]);
            let d = &decisions[i];
            through[i] = reached && f.kind == FileKind::Dir && d.search;
            let (read, write) = (reached && d.read, reached && d.write);
            match classify(s, &owners[i], read, write) {
                Some((class, owner)) => {
                    let reason = if reached {
                        d.reason.clone()
                    } else {
                        format!("a directory above it cannot be searched; {}", d.reason)
                    };
                    entries.push(Entry {
                        path: f.path.clone(),
                        kind: f.kind,
                        class,
                        read,
                        write,
                        owner,
                        label: f.label.clone(),
                        uid: f.uid,
                        gid: f.gid,
                        mode: format!("{:04o}", f.mode),
                        reason,
                    })
                }
                None => unreachable += 1,
            }
        }
        entries.sort_by(|a, b| a.class.cmp(&b.class).then(a.path.cmp(&b.path)));
        let violations = entries.iter().filter(|e| e.class.is_violation()).count();
        reports.push(SubjectReport {
            name: s.name.clone(),
            walls: s.walls.iter().map(|w| w.model().to_owned()).collect(),
            entries,
            unreachable,
            violations,
        });
    }
    let violations = reports.iter().map(|r| r.violations).sum::<usize>() + findings.len();
    Report {
        roots: roots.to_vec(),
        walked: walked.files.len(),
        symlinks: walked.symlinks,
        unreadable: walked.unreadable,
        subjects: reports,
        findings,
        violations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ResourceKind;
    use crate::host::fake::FakeHost;

    /// A wall from path rules: (path prefix, read, write, search); first match wins, else deny.
    #[derive(Debug)]
    struct RuleWall(Vec<(&'static str, bool, bool, bool)>);

    impl Wall for RuleWall {
        fn model(&self) -> &str {
            "rules"
        }
        fn decide(&self, f: &FileFacts) -> Decision {
            let hit = self.0.iter().find(|r| f.path.starts_with(r.0));
            let (read, write, search) = hit.map_or((false, false, false), |r| (r.1, r.2, r.3));
            Decision {
                read,
                write,
                search,
                reason: format!("rule {:?}", hit.map(|r| r.0)),
            }
        }
    }

    /// Marks from the label: `vm:NAME` private, `shared` shared.
    #[derive(Debug)]
    struct LabelMarker;

    impl Marker for LabelMarker {
        fn model(&self) -> &str {
            "rules"
        }
        fn mark(&self, f: &FileFacts) -> Option<Mark> {
            match f.label.as_deref()? {
                "shared" => Some(Mark::Shared),
                l => l.strip_prefix("vm:").map(|v| Mark::Private(v.to_owned())),
            }
        }
        fn mark_of(&self, l: &LabelRecord) -> Option<String> {
            Some(l.label.clone())
        }
    }

    fn label(model: &str, text: &str) -> LabelRecord {
        LabelRecord {
            model: model.into(),
            kind: crate::domain::LabelType::Dynamic,
            label: text.into(),
            imagelabel: None,
            relabel: true,
            facts: Default::default(),
        }
    }

    fn host() -> FakeHost {
        let h = FakeHost::new();
        for (p, l) in [
            ("/img/a.img", "vm:a"),
            ("/img/b.img", "vm:b"),
            ("/img/s.img", "shared"),
            ("/img/old.img", "vm:gone"),
            ("/etc/passwd", "etc"),
            ("/etc/locked/key", "etc"),
        ] {
            h.add_file(p);
            h.put_xattr(p, "security.selinux", l.as_bytes());
        }
        h
    }

    fn known(name: &str, disk: &str, access: Access) -> Known {
        Known {
            name: name.into(),
            resources: vec![Resource::new(disk, ResourceKind::Disk, access)],
            labels: vec![label("rules", name)],
        }
    }

    fn subject(name: &str, walls: Vec<Box<dyn Wall>>) -> Subject {
        let k = known(name, &format!("/img/{name}.img"), Access::Private);
        Subject {
            name: name.into(),
            walls,
            resources: vec![
                k.resources[0].clone(),
                Resource::new("/img/s.img", ResourceKind::Disk, Access::Shared),
            ],
            labels: k.labels,
        }
    }

    fn class_of(r: &SubjectReport, p: &str) -> Option<(Class, bool, bool)> {
        r.entries
            .iter()
            .find(|e| e.path == Path::new(p))
            .map(|e| (e.class, e.read, e.write))
    }

    #[test]
    fn own_shared_and_isolated_files_are_expected_and_a_reachable_other_vm_file_is_a_violation() {
        let h = host();
        let known = [
            known("a", "/img/a.img", Access::Private),
            known("b", "/img/b.img", Access::Private),
        ];
        let tight = RuleWall(vec![
            ("/img/a.img", true, true, true),
            ("/img/s.img", true, true, true),
            ("/img", false, false, true),
            ("/etc/passwd", true, false, true),
            ("/etc/locked", false, false, false),
            ("/etc", true, false, true),
        ]);
        let loose = RuleWall(vec![
            ("/img", true, true, true),
            ("/etc", true, false, true),
        ]);
        let markers: Vec<Box<dyn Marker>> = vec![Box::new(LabelMarker)];
        let roots = [PathBuf::from("/img"), PathBuf::from("/etc")];
        let r = run(
            &h,
            &roots,
            &[subject("a", vec![Box::new(tight)])],
            &known,
            &markers,
        );
        let a = &r.subjects[0];
        assert_eq!(class_of(a, "/img/a.img"), Some((Class::Own, true, true)));
        assert_eq!(class_of(a, "/img/s.img"), Some((Class::Shared, true, true)));
        assert_eq!(
            class_of(a, "/img/b.img"),
            Some((Class::Isolated, false, false))
        );
        assert_eq!(
            class_of(a, "/etc/passwd"),
            Some((Class::HostReadable, true, false))
        );
        assert_eq!(
            class_of(a, "/etc/locked/key"),
            None,
            "a directory that cannot be searched hides what is beneath it, though /etc is readable"
        );
        assert_eq!(a.violations, 0);
        assert_eq!(
            r.findings.len(),
            1,
            "old.img carries the mark of a VM not running"
        );
        assert_eq!(r.findings[0].class, Class::StaleMark);
        assert_eq!(r.violations, 1);

        let r = run(
            &h,
            &roots,
            &[subject("a", vec![Box::new(loose)])],
            &known,
            &markers,
        );
        let a = &r.subjects[0];
        assert_eq!(
            class_of(a, "/img/b.img"),
            Some((Class::OtherVm, true, true))
        );
        assert_eq!(
            class_of(a, "/img/old.img"),
            Some((Class::StaleMark, true, true))
        );
        assert_eq!(
            class_of(a, "/img"),
            Some((Class::HostWritable, true, true)),
            "the VM could create files in the image directory"
        );
        assert_eq!(a.violations, 3);
    }

    #[test]
    fn with_no_wall_every_host_file_is_writable_and_a_private_disk_labeled_shared_is_found() {
        let h = host();
        h.put_xattr("/img/b.img", "security.selinux", b"shared");
        let known = [
            known("a", "/img/a.img", Access::Private),
            known("b", "/img/b.img", Access::Private),
        ];
        let markers: Vec<Box<dyn Marker>> = vec![Box::new(LabelMarker)];
        let r = run(
            &h,
            &[PathBuf::from("/etc"), PathBuf::from("/img")],
            &[subject("a", Vec::new())],
            &known,
            &markers,
        );
        let a = &r.subjects[0];
        assert!(a.walls.is_empty());
        assert_eq!(
            class_of(a, "/etc/passwd"),
            Some((Class::HostWritable, true, true))
        );
        assert_eq!(
            class_of(a, "/img/b.img"),
            Some((Class::OtherVm, true, true))
        );
        let f: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.class == Class::PrivateLabeledShared)
            .collect();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].path, PathBuf::from("/img/b.img"));
        assert!(f[0].detail.contains("domain b"), "{}", f[0].detail);
    }
}

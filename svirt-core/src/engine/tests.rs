//! The engine on the fake host: shared devices and mount points inside shares.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Change, Engine, RestoreOptions};
use crate::attr::{FileAttr, Plan};
use crate::db::Db;
use crate::domain::{Access, Resource, ResourceKind};
use crate::driver::ResourceReport;
use crate::host::fake::FakeHost;
use crate::host::{FileKind, Host, Node};

/// A file attribute kept in one xattr.
#[derive(Debug)]
struct Tag;
impl FileAttr for Tag {
    fn model(&self) -> &str {
        "tag"
    }
    fn read(&self, host: &dyn Host, node: &Node) -> std::io::Result<Option<String>> {
        Ok(host
            .get_xattr(node, "user.tag")?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
    fn write(&self, host: &dyn Host, node: &Node, value: Option<&str>) -> std::io::Result<()> {
        match value {
            Some(v) => host.set_xattr(node, "user.tag", v.as_bytes()),
            None => host.remove_xattr(node, "user.tag"),
        }
    }
    /// "vm-…" values are a VM's own (as a pair or a pool uid is), "leftover-…" an earlier one's.
    fn carries_vm(&self, current: Option<&str>, _own: Option<&str>) -> bool {
        current.is_some_and(|c| c.starts_with("leftover-") || c.starts_with("vm-"))
    }
}

fn attr_for(_: &str) -> Option<Arc<dyn FileAttr>> {
    Some(Arc::new(Tag))
}

/// Start `res` for "vm" (intent, apply, completion), returning its report.
fn start(h: &Arc<FakeHost>, db: &Db, res: Resource) -> ResourceReport {
    let engine = Engine::new(h.clone());
    let change = Change {
        res,
        attr: Arc::new(Tag),
        plan: Plan::Set("vm-label".into()),
        drawn: true,
    };
    let mut p = db
        .write(|tx| engine.prepare(tx, "vm", vec![change], &|_| false))
        .unwrap();
    engine
        .apply(&mut p, &|f| db.write(|tx| f(tx, &|_| false)))
        .unwrap();
    db.write(|tx| {
        let (ids, ctimes) = p.applied_items();
        tx.set_applied(&ids, &ctimes)?;
        for (id, t) in p.changed_trees() {
            tx.set_tree(id, t)?;
        }
        tx.delete_items(&p.unapplied_items())
    })
    .unwrap();
    p.reports[0].clone()
}

/// Stop "vm": restore everything it holds.
fn stop(h: &Arc<FakeHost>, db: &Db) {
    let engine = Engine::new(h.clone());
    let items = db.read(|tx| tx.items_of("vm")).unwrap();
    let out = engine.restore(&items, &attr_for, &RestoreOptions::rollback());
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    db.write(|tx| tx.delete_items(&out.done)).unwrap();
}

#[test]
fn a_shared_device_is_reported_skipped_and_never_written_or_remembered() {
    let h = Arc::new(FakeHost::new());
    h.add_device("/dev/null", FileKind::Char, 1, 3);
    h.add_symlink("/srv/vm/console", "/dev/null");
    let state = tempfile::tempdir().unwrap();
    let db = Db::open(state.path()).unwrap();
    let res = Resource::new("/srv/vm/console", ResourceKind::Chardev, Access::Private);
    let rep = start(&h, &db, res);
    assert!(rep.skipped);
    assert!(rep
        .reason
        .unwrap()
        .contains("shared host device null (1:3)"));
    assert_eq!(rep.path, Path::new("/dev/null"));
    assert_eq!(rep.given.as_deref(), Some(Path::new("/srv/vm/console")));
    let writes: Vec<_> = h
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("set_xattr") || c.starts_with("chown"))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert!(db.read(|tx| tx.items_of("vm")).unwrap().is_empty());
    stop(&h, &db);
    assert_eq!(h.xattr_names("/dev/null"), Vec::<String>::new());
}

#[test]
fn a_share_reports_its_device_nodes_and_leaves_them_alone() {
    let h = Arc::new(FakeHost::new());
    h.add_file("/srv/share/a");
    h.add_device("/srv/share/dev/sda", FileKind::Block, 8, 0);
    h.add_device("/srv/share/mem", FileKind::Char, 1, 1);
    let state = tempfile::tempdir().unwrap();
    let db = Db::open(state.path()).unwrap();
    let res = Resource::new("/srv/share", ResourceKind::Filesystem, Access::Private);
    let rep = start(&h, &db, res);
    let mut excluded: Vec<_> = rep
        .excluded
        .iter()
        .map(|x| (x.path.clone(), x.reason.contains("device node")))
        .collect();
    excluded.sort();
    assert_eq!(
        excluded,
        vec![
            (PathBuf::from("/srv/share/dev/sda"), true),
            (PathBuf::from("/srv/share/mem"), true)
        ]
    );
    assert_eq!(
        h.xattr("/srv/share/a", "user.tag").as_deref(),
        Some(&b"vm-label"[..])
    );
    for d in ["/srv/share/dev/sda", "/srv/share/mem"] {
        assert_eq!(h.xattr(d, "user.tag"), None, "{d}");
    }
    stop(&h, &db);
    assert_eq!(h.xattr("/srv/share/a", "user.tag"), None);
}

#[test]
fn a_share_reports_its_mount_points_and_leaves_them_alone() {
    let h = Arc::new(FakeHost::new());
    h.add_file("/srv/share/a");
    h.add_file("/srv/share/etc/shadow");
    h.add_mount("/srv/share/etc");
    let state = tempfile::tempdir().unwrap();
    let db = Db::open(state.path()).unwrap();
    let res = Resource::new("/srv/share/.", ResourceKind::Filesystem, Access::Private);
    let rep = start(&h, &db, res);
    assert_eq!(rep.path, Path::new("/srv/share"));
    assert_eq!(rep.excluded.len(), 1);
    assert_eq!(rep.excluded[0].path, Path::new("/srv/share/etc"));
    assert_eq!(
        h.xattr("/srv/share/a", "user.tag").as_deref(),
        Some(&b"vm-label"[..])
    );
    assert_eq!(h.xattr("/srv/share/etc/shadow", "user.tag"), None);
    assert_eq!(h.xattr("/srv/share/etc", "user.tag"), None);
    stop(&h, &db);
    assert_eq!(h.xattr("/srv/share/a", "user.tag"), None);
}

fn tag(h: &FakeHost, path: &str, v: &str) {
    let node = h.open_node(Path::new(path)).unwrap();
    h.set_xattr(&node, "user.tag", v.as_bytes()).unwrap();
}

/// The common original is the share root's own: entries holding it carry no mark of their
/// own; every other entry is marked before it changes.
#[test]
fn a_share_marks_its_common_original_once_and_only_odd_entries_on_their_own() {
    let h = Arc::new(FakeHost::new());
    for f in ["a", "b", "sub/c", "sub/d"] {
        h.add_file(&format!("/srv/share/{f}"));
        tag(&h, &format!("/srv/share/{f}"), "plain");
    }
    tag(&h, "/srv/share", "plain");
    tag(&h, "/srv/share/sub", "plain");
    tag(&h, "/srv/share/b", "odd");
    let state = tempfile::tempdir().unwrap();
    let db = Db::open(state.path()).unwrap();
    let res = Resource::new("/srv/share", ResourceKind::Filesystem, Access::Private);
    start(&h, &db, res);
    assert_eq!(
        h.xattr("/srv/share", "trusted.svirt.tag.entries")
            .as_deref(),
        Some(&b"=plain"[..])
    );
    // The walk's own mark, stamped with its start (a copied mark would not be).
    let mark = h
        .xattr("/srv/share/b", "trusted.svirt.tag")
        .expect("b is marked");
    let mark = super::marks::decode_mark(std::str::from_utf8(&mark).unwrap()).unwrap();
    assert_eq!(mark.original.as_deref(), Some("odd"));
    assert!(mark.stamp.is_some());
    for f in ["a", "sub", "sub/c", "sub/d"] {
        let p = format!("/srv/share/{f}");
        assert_eq!(h.xattr(&p, "trusted.svirt.tag"), None, "{p}");
        assert_eq!(
            h.xattr(&p, "user.tag").as_deref(),
            Some(&b"vm-label"[..]),
            "{p}"
        );
    }
    stop(&h, &db);
    assert_eq!(
        h.xattr("/srv/share/b", "user.tag").as_deref(),
        Some(&b"odd"[..])
    );
    assert_eq!(
        h.xattr("/srv/share/a", "user.tag").as_deref(),
        Some(&b"plain"[..])
    );
    for p in ["/srv/share", "/srv/share/b"] {
        let svirt: Vec<String> = h
            .xattr_names(p)
            .into_iter()
            .filter(|n| n.starts_with("trusted.svirt"))
            .collect();
        assert!(svirt.is_empty(), "{p}: {svirt:?}");
    }
}

#[test]
fn a_share_with_more_directories_than_fds_kept_is_changed_and_restored_whole() {
    // 700 directories: more than the walk keeps open, so the change and the restore reopen
    // directories from the root; every file must be changed once and restored.
    let h = Arc::new(FakeHost::new());
    let mut files = Vec::new();
    for i in 0..700 {
        let f = format!("/srv/wide/d{i}/f");
        h.add_file(&f);
        files.push(f);
    }
    let deep: String = (0..40).map(|i| format!("/n{i}")).collect();
    let f = format!("/srv/wide{deep}/leaf");
    h.add_file(&f);
    files.push(f);
    let state = tempfile::tempdir().unwrap();
    let db = Db::open(state.path()).unwrap();
    let res = Resource::new("/srv/wide", ResourceKind::Filesystem, Access::Private);
    start(&h, &db, res);
    for f in &files {
        assert_eq!(
            h.xattr(f, "user.tag").as_deref(),
            Some(&b"vm-label"[..]),
            "{f}"
        );
    }
    let items = db.read(|tx| tx.items_of("vm")).unwrap();
    let tree = items[0].tree.as_ref().expect("the share keeps its entries");
    assert_eq!(tree.entries.len(), 700 * 2 + 40 + 1);
    stop(&h, &db);
    for f in &files {
        assert_eq!(h.xattr(f, "user.tag"), None, "{f}");
    }
}

/// Where the share root refuses svirt's marks (no `trusted.*` here), no entry can carry its
/// original through a crash; and where the value is not the VM's own (a shared or read-only
/// label), finding it on an entry does not prove the walk put it there. Either way the whole
/// tree of originals is journaled before the first entry changes, and a stop puts every entry
/// back.
#[test]
fn a_share_that_refuses_marks_is_journaled_whole_before_its_first_change() {
    journaled_whole_before_the_first_change(true, "vm-label", true);
}

#[test]
fn a_share_given_a_value_not_the_vms_own_is_journaled_whole_before_its_first_change() {
    journaled_whole_before_the_first_change(false, "shared-label", true);
}

/// A static label's value is not drawn for this domain alone: files may hold it already.
#[test]
fn a_share_given_a_static_labels_value_is_journaled_whole_before_its_first_change() {
    journaled_whole_before_the_first_change(false, "vm-label", false);
}

fn journaled_whole_before_the_first_change(refuse_marks: bool, value: &str, drawn: bool) {
    let h = Arc::new(FakeHost::new());
    for f in ["a", "b", "sub/c"] {
        h.add_file(&format!("/srv/share/{f}"));
        tag(&h, &format!("/srv/share/{f}"), "plain");
    }
    tag(&h, "/srv/share", "plain");
    tag(&h, "/srv/share/sub", "plain");
    tag(&h, "/srv/share/b", "odd");
    if refuse_marks {
        h.fail_xattr("set_xattr", "trusted.svirt", libc::EPERM);
    }
    let state = tempfile::tempdir().unwrap();
    let db = Db::open(state.path()).unwrap();
    let engine = Engine::new(h.clone());
    let change = Change {
        res: Resource::new("/srv/share", ResourceKind::Filesystem, Access::Private),
        attr: Arc::new(Tag),
        plan: Plan::Set(value.into()),
        drawn,
    };
    let mut p = db
        .write(|tx| engine.prepare(tx, "vm", vec![change], &|_| false))
        .unwrap();
    let root_id = p.items[0].id;
    let entry_writes = || {
        h.calls()
            .iter()
            .filter(|c| {
                c.starts_with("set_xattr /srv/share/") && c.contains(&format!("user.tag={value}"))
            })
            .count()
    };
    // Per journal: entries in the tree written, entries changed before it.
    let journals = std::sync::Mutex::new(Vec::new());
    engine
        .apply(&mut p, &|f| {
            let before = entry_writes();
            db.write(|tx| f(tx, &|_| false))?;
            let kept = db
                .read(|tx| tx.tree(root_id))?
                .map_or(0, |t| t.entries.len());
            journals.lock().unwrap().push((kept, before));
            Ok(())
        })
        .unwrap();
    // a, b, sub, sub/c: all journaled at once, before any of them changed.
    assert_eq!(*journals.lock().unwrap(), vec![(4, 0)]);
    assert_eq!(entry_writes(), 4);
    let mark = h.xattr("/srv/share/b", "trusted.svirt.tag");
    assert_eq!(mark.as_deref(), (!refuse_marks).then_some(&b"=odd"[..]));
    db.write(|tx| {
        let (ids, ctimes) = p.applied_items();
        tx.set_applied(&ids, &ctimes)?;
        for (id, t) in p.changed_trees() {
            tx.set_tree(id, t)?;
        }
        Ok(())
    })
    .unwrap();
    stop(&h, &db);
    assert_eq!(
        h.xattr("/srv/share/b", "user.tag").as_deref(),
        Some(&b"odd"[..])
    );
    for f in ["", "/a", "/sub", "/sub/c"] {
        let path = format!("/srv/share{f}");
        assert_eq!(
            h.xattr(&path, "user.tag").as_deref(),
            Some(&b"plain"[..]),
            "{path}"
        );
    }
}

/// A one-pass walk journals nothing per entry: only the entries that need the store (here one
/// whose value looks like a VM's leftover) are journaled, before they change; an entry whose
/// original is not the root's is marked before it changes.
#[test]
fn a_one_pass_share_journals_only_what_needs_the_store_and_marks_odd_entries_first() {
    let h = Arc::new(FakeHost::new());
    for f in ["a", "b", "c"] {
        h.add_file(&format!("/srv/share/{f}"));
        tag(&h, &format!("/srv/share/{f}"), "plain");
    }
    tag(&h, "/srv/share", "plain");
    tag(&h, "/srv/share/b", "odd");
    tag(&h, "/srv/share/c", "leftover-of-a-vm");
    let state = tempfile::tempdir().unwrap();
    let db = Db::open(state.path()).unwrap();
    let engine = Engine::new(h.clone());
    let change = Change {
        res: Resource::new("/srv/share", ResourceKind::Filesystem, Access::Private),
        attr: Arc::new(Tag),
        plan: Plan::Set("vm-label".into()),
        drawn: true,
    };
    let mut p = db
        .write(|tx| engine.prepare(tx, "vm", vec![change], &|_| false))
        .unwrap();
    let root_id = p.items[0].id;
    let journals = std::sync::Mutex::new(Vec::new());
    engine
        .apply(&mut p, &|f| {
            let c_changed =
                h.xattr("/srv/share/c", "user.tag").as_deref() == Some(&b"vm-label"[..]);
            db.write(|tx| f(tx, &|_| false))?;
            let t = db.read(|tx| tx.tree(root_id))?.expect("a tree");
            let names: Vec<String> = t
                .entries
                .iter()
                .map(|e| e.rel.display().to_string())
                .collect();
            journals
                .lock()
                .unwrap()
                .push((names, t.in_progress, c_changed));
            Ok(())
        })
        .unwrap();
    let journals = journals.into_inner().unwrap();
    assert_eq!(journals.len(), 1, "{journals:?}");
    let (names, in_progress, c_changed) = &journals[0];
    // a and b were changed in the walk; c is journaled with them before it changes, the tree
    // still in progress.
    let mut names = names.clone();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(in_progress);
    assert!(!c_changed);
    let calls = h.calls();
    let mark = calls
        .iter()
        .position(|c| c.starts_with("set_xattr /srv/share/b trusted.svirt.tag="))
        .expect("b is marked");
    let change_b = calls
        .iter()
        .position(|c| c == "set_xattr /srv/share/b user.tag=vm-label")
        .expect("b is changed");
    assert!(mark < change_b, "b changed before its mark: {calls:?}");
    assert!(!calls
        .iter()
        .any(|c| c.starts_with("set_xattr /srv/share/a trusted.svirt")));
    for f in ["a", "b", "c"] {
        let path = format!("/srv/share/{f}");
        assert_eq!(
            h.xattr(&path, "user.tag").as_deref(),
            Some(&b"vm-label"[..]),
            "{path}"
        );
    }
}

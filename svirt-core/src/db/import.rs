//! The one-time import of an old JSON state dir (`domains/NAME.json`, `mcs.state`,
//! `ids-POOL.json`, `remember.json`) into the database.
//!
//! Every file is parsed before anything is written; a file that does not parse is
//! [`Error::StateCorrupt`] naming it, and nothing is imported. Everything is written in one
//! transaction, which also records each file's fingerprint in `meta`; then each file is renamed
//! to `NAME.imported`. A crash between the commit and a rename leaves a file whose fingerprint is
//! recorded: the next open only renames it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tracing::{info, warn};

use super::{Db, DomainRow, Ident, Item, ItemState, Phase, Tx};
use crate::error::{Error, Result};
use crate::fsutil::read_optional;
use crate::ids::IdPool;
use crate::mcs::McsState;
use crate::store::LabelStore;

/// What the old CLI's `Record` holds that the row needs; the bytes are kept as they are.
#[derive(Deserialize)]
struct OldRecord {
    domain: OldDomain,
    phase: Phase,
    pid: Option<u32>,
}

#[derive(Deserialize)]
struct OldDomain {
    name: String,
}

#[derive(Deserialize)]
struct OldJournal {
    entries: BTreeMap<String, Entry>,
}

/// One item below a directory root in the old journal.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct TreeItem {
    rel: PathBuf,
    original: Option<String>,
}

/// A remembered original in the old journal (`remember.json`).
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct Entry {
    path: PathBuf,
    model: String,
    original: Option<String>,
    applied: String,
    holders: Vec<String>,
    #[allow(dead_code)]
    boot_id: String,
    #[serde(default)]
    tree: Vec<TreeItem>,
}

enum Parsed {
    Domain(DomainRow),
    Space(McsState),
    Ids(String, IdPool),
    Journal(Vec<Entry>),
}

struct Found {
    path: PathBuf,
    bytes: Vec<u8>,
    parsed: Parsed,
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::StateCorrupt {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// FNV-1a: a stable fingerprint of an imported file's bytes.
fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:016x}:{}", h, bytes.len())
}

/// The old files in `dir`, parsed.
fn find(dir: &Path, boot: &dyn Fn() -> Result<String>) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    let domains = dir.join("domains");
    let mut names = list(&domains)?;
    names.retain(|n| n.ends_with(".json"));
    for name in names {
        let path = domains.join(&name);
        let Some(bytes) = read_optional(&path)? else {
            continue;
        };
        let rec: OldRecord =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e.to_string()))?;
        crate::domain::validate_name(&rec.domain.name)
            .map_err(|e| corrupt(&path, e.to_string()))?;
        if name.strip_suffix(".json") != Some(rec.domain.name.as_str()) {
            return Err(corrupt(
                &path,
                format!("holds the record of domain {}", rec.domain.name),
            ));
        }
        let row = DomainRow {
            name: rec.domain.name,
            phase: rec.phase,
            record: bytes.clone(),
            pid: rec.pid,
            boot_id: boot()?,
            held_reason: None,
        };
        out.push(Found {
            path,
            bytes,
            parsed: Parsed::Domain(row),
        });
    }
    let path = dir.join("mcs.state");
    if let Some(bytes) = read_optional(&path)? {
        let s = McsState::from_bytes(&bytes).map_err(|r| corrupt(&path, r))?;
        out.push(Found {
            path,
            bytes,
            parsed: Parsed::Space(s),
        });
    }
    for name in list(dir)? {
        let Some(pool) = name
            .strip_prefix("ids-")
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let path = dir.join(&name);
        let Some(bytes) = read_optional(&path)? else {
            continue;
        };
        let p: IdPool =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e.to_string()))?;
        out.push(Found {
            path,
            bytes,
            parsed: Parsed::Ids(pool.to_owned(), p),
        });
    }
    let path = dir.join("remember.json");
    if let Some(bytes) = read_optional(&path)? {
        let j: OldJournal =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(&path, e.to_string()))?;
        out.push(Found {
            path,
            bytes,
            parsed: Parsed::Journal(j.entries.into_values().collect()),
        });
    }
    Ok(out)
}

/// The file names in `dir`, sorted; none when it does not exist.
fn list(dir: &Path) -> Result<Vec<String>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::state("list", dir, e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::state("list", dir, e))?;
        if let Ok(name) = e.file_name().into_string() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// The inode at `path` now; `0, 0` when the file is gone, so `recover` reports it.
fn ident(path: &Path) -> Ident {
    match fs::symlink_metadata(path) {
        Ok(m) => Ident {
            dev: m.dev(),
            ino: m.ino(),
            handle: None,
        },
        Err(e) => {
            warn!(path = %path.display(), error = %e, "a remembered file is gone; importing it for recover to report");
            Ident {
                dev: 0,
                ino: 0,
                handle: None,
            }
        }
    }
}

/// The items of one old journal entry: the resource itself, then its tree.
fn entry_items(e: &Entry, boot: &str) -> Vec<Item> {
    // Holders of another boot are gone; their originals are orphans for recover.
    let holders = if e.boot_id == boot {
        e.holders.clone()
    } else {
        Vec::new()
    };
    let item = |rel: &Path, original: &Option<String>| Item {
        id: 0,
        model: e.model.clone(),
        ident: ident(&if rel.as_os_str().is_empty() {
            e.path.clone()
        } else {
            e.path.join(rel)
        }),
        root: e.path.clone(),
        rel: rel.to_owned(),
        original: original.clone(),
        applied: e.applied.clone(),
        ctime_ns: None,
        state: ItemState::Applied,
        holders: holders.clone(),
        tree: None,
    };
    let mut out = vec![item(Path::new(""), &e.original)];
    out.extend(e.tree.iter().map(|t| item(&t.rel, &t.original)));
    out
}

fn store(db: &Db, tx: &Tx<'_>, f: &Found, boot: &str) -> Result<()> {
    let refuse = |what: String| {
        corrupt(
            &f.path,
            format!("{what}; not imported (move the file away once checked)"),
        )
    };
    match &f.parsed {
        Parsed::Domain(row) => {
            if tx.domain(&row.name)?.is_some() {
                return Err(refuse(format!(
                    "the database already holds domain {}",
                    row.name
                )));
            }
            tx.put_domain(row)
        }
        Parsed::Space(s) => db.update(s.range(), &mut |cur| {
            if cur.allocated() != 0 || !cur.fixed().is_empty() {
                return Err(refuse(format!(
                    "the database already holds labels of {}",
                    s.range()
                )));
            }
            *cur = s.clone();
            Ok(())
        }),
        Parsed::Ids(pool, p) => db.update_ids(pool, p.lo, p.hi, &mut |cur| {
            if !cur.held.is_empty() {
                return Err(refuse(format!("the database already holds ids of {pool}")));
            }
            *cur = p.clone();
            Ok(())
        }),
        Parsed::Journal(entries) => {
            for e in entries {
                for item in entry_items(e, boot) {
                    let known = if item.ident.ino == 0 {
                        None
                    } else {
                        tx.item_by_inode(&item.model, item.ident.dev, item.ident.ino)?
                    };
                    match known {
                        // Two paths of one inode (a hard link, a symlinked path): one item.
                        Some(k) => {
                            for h in &item.holders {
                                tx.add_holder(k.id, h)?;
                            }
                        }
                        None => {
                            tx.insert_item(&item)?;
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

/// Import the old JSON files of `dir` once.
pub(super) fn import(db: &Db, dir: &Path, boot_id_file: &Path) -> Result<()> {
    let boot_cell = std::cell::OnceCell::new();
    let boot = || -> Result<String> {
        if let Some(b) = boot_cell.get() {
            return Ok(String::clone(b));
        }
        let b = fs::read_to_string(boot_id_file)
            .map_err(|e| Error::host("read boot id", boot_id_file, e))?
            .trim()
            .to_owned();
        Ok(boot_cell.get_or_init(|| b).clone())
    };
    let found = find(dir, &boot)?;
    if found.is_empty() {
        return Ok(());
    }
    let boot = boot()?;
    db.write(|tx| {
        for f in &found {
            let key = format!("imported {}", f.path.display());
            let print = fingerprint(&f.bytes);
            if tx.meta(&key)?.as_deref() == Some(print.as_str()) {
                continue;
            }
            store(db, tx, f, &boot)?;
            tx.set_meta(&key, &print)?;
        }
        Ok(())
    })?;
    for f in &found {
        let mut to = f.path.clone().into_os_string();
        to.push(".imported");
        fs::rename(&f.path, &to).map_err(|e| Error::state("rename imported", &f.path, e))?;
        info!(from = %f.path.display(), to = %PathBuf::from(&to).display(), "imported old state file");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcs::McsRange;

    struct Old {
        _dir: tempfile::TempDir,
        state: PathBuf,
        boot: PathBuf,
        files: PathBuf,
    }

    fn write(p: &Path, b: &[u8]) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b).unwrap();
    }

    /// An old-style state dir: two domain records, an MCS state with one pair, a uid pool,
    /// and a journal with a disk, a share tree (one file gone) and a stale-boot entry.
    fn old_state() -> Old {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let files = dir.path().join("files");
        let boot = dir.path().join("boot_id");
        fs::write(&boot, "boot-now\n").unwrap();
        for (name, phase) in [("vm1", "running"), ("vm2", "stopping")] {
            write(
                &state.join(format!("domains/{name}.json")),
                format!(
                    r#"{{"domain":{{"name":"{name}","other":1}},"phase":"{phase}","labels":[],"resources":[],"pid":77}}"#
                )
                .as_bytes(),
            );
        }
        let mut s = McsState::new(McsRange::DEFAULT);
        s.reserve_dynamic(&"s0:c1,c2".parse().unwrap()).unwrap();
        write(&state.join("mcs.state"), &s.to_bytes());
        let mut p = IdPool::new(100, 200);
        p.reserve(100, "vm1", false).unwrap();
        write(
            &state.join("ids-uids.json"),
            &serde_json::to_vec(&p).unwrap(),
        );
        write(&files.join("disk"), b"d");
        write(&files.join("share/a"), b"a");
        write(&files.join("old"), b"o");
        let entry = |path: PathBuf, boot: &str, tree: Vec<TreeItem>| Entry {
            path,
            model: "dac".into(),
            original: Some("0:0".into()),
            applied: "107:107".into(),
            holders: vec!["vm1".into()],
            boot_id: boot.into(),
            tree,
        };
        let tree = vec![
            TreeItem {
                rel: "a".into(),
                original: Some("5:5".into()),
            },
            TreeItem {
                rel: "gone".into(),
                original: None,
            },
        ];
        let mut entries = BTreeMap::new();
        for e in [
            entry(files.join("disk"), "boot-now", vec![]),
            entry(files.join("share"), "boot-now", tree),
            entry(files.join("old"), "boot-before", vec![]),
        ] {
            entries.insert(format!("dac:{}", e.path.display()), e);
        }
        let j = serde_json::json!({ "entries": entries });
        write(
            &state.join("remember.json"),
            &serde_json::to_vec(&j).unwrap(),
        );
        Old {
            _dir: dir,
            state,
            boot,
            files,
        }
    }

    fn ino(p: &Path) -> (u64, u64) {
        let m = fs::symlink_metadata(p).unwrap();
        (m.dev(), m.ino())
    }

    #[test]
    fn an_old_json_state_dir_is_imported_once_and_its_files_renamed() {
        let old = old_state();
        let record = fs::read(old.state.join("domains/vm1.json")).unwrap();
        let db = Db::open_with(&old.state, &old.boot).unwrap();
        let rows = db.read(|tx| tx.domains()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "vm1");
        assert_eq!(rows[0].phase, Phase::Running);
        assert_eq!(
            rows[0].record, record,
            "the record bytes are kept as they were"
        );
        assert_eq!(rows[0].pid, Some(77));
        assert_eq!(rows[0].boot_id, "boot-now");
        assert_eq!(rows[1].phase, Phase::Stopping);

        let mut pairs = 0;
        db.update(McsRange::DEFAULT, &mut |s| {
            pairs = s.allocated();
            assert!(s.is_allocated(&"s0:c1,c2".parse().unwrap()));
            Ok(())
        })
        .unwrap();
        assert_eq!(pairs, 1);
        db.update_ids("uids", 100, 200, &mut |p| {
            assert_eq!(p.held[&100], ["vm1"]);
            Ok(())
        })
        .unwrap();

        let items = db.read(|tx| tx.all_items()).unwrap();
        assert_eq!(items.len(), 5);
        let by = |root: &str, rel: &str| {
            items
                .iter()
                .find(|i| i.root == old.files.join(root) && i.rel == Path::new(rel))
                .unwrap()
        };
        let disk = by("disk", "");
        assert_eq!(
            (disk.ident.dev, disk.ident.ino),
            ino(&old.files.join("disk"))
        );
        assert_eq!(disk.original.as_deref(), Some("0:0"));
        assert_eq!(disk.applied, "107:107");
        assert_eq!(disk.state, ItemState::Applied);
        assert_eq!(disk.holders, ["vm1"]);
        let a = by("share", "a");
        assert_eq!((a.ident.dev, a.ident.ino), ino(&old.files.join("share/a")));
        assert_eq!(a.original.as_deref(), Some("5:5"));
        assert_eq!(a.applied, "107:107");
        let gone = by("share", "gone");
        assert_eq!((gone.ident.dev, gone.ident.ino), (0, 0));
        assert_eq!(gone.original, None);
        assert!(
            by("old", "").holders.is_empty(),
            "holders of an earlier boot are gone"
        );

        for f in [
            "domains/vm1.json",
            "domains/vm2.json",
            "mcs.state",
            "ids-uids.json",
            "remember.json",
        ] {
            assert!(!old.state.join(f).exists(), "{f} still there");
            assert!(old.state.join(format!("{f}.imported")).exists(), "{f}");
        }

        drop(db);
        let db = Db::open_with(&old.state, &old.boot).unwrap();
        assert_eq!(db.read(|tx| tx.all_items()).unwrap().len(), 5);
        assert_eq!(db.read(|tx| tx.domains()).unwrap().len(), 2);
    }

    #[test]
    fn a_file_left_behind_by_a_crash_after_the_import_is_only_renamed() {
        let old = old_state();
        let saved = fs::read(old.state.join("remember.json")).unwrap();
        drop(Db::open_with(&old.state, &old.boot).unwrap());
        // As if the process died between the commit and the rename.
        fs::write(old.state.join("remember.json"), &saved).unwrap();
        let db = Db::open_with(&old.state, &old.boot).unwrap();
        assert_eq!(db.read(|tx| tx.all_items()).unwrap().len(), 5);
        assert!(!old.state.join("remember.json").exists());
    }

    #[test]
    fn a_corrupt_json_file_is_named_and_nothing_is_imported() {
        let old = old_state();
        let bad = old.state.join("ids-uids.json");
        fs::write(&bad, b"{not json").unwrap();
        let err = Db::open_with(&old.state, &old.boot).unwrap_err();
        assert!(
            matches!(err, Error::StateCorrupt { ref path, .. } if *path == bad),
            "{err:?}"
        );
        assert!(old.state.join("remember.json").exists());
        assert!(old.state.join("domains/vm1.json").exists());
        let conn = rusqlite::Connection::open(old.state.join(super::super::DB_FILE)).unwrap();
        for table in ["domains", "items", "label_spaces", "ids"] {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 0, "{table}");
        }
    }

    #[test]
    fn a_record_under_another_domains_name_is_refused() {
        let old = old_state();
        fs::rename(
            old.state.join("domains/vm2.json"),
            old.state.join("domains/vm3.json"),
        )
        .unwrap();
        let err = Db::open_with(&old.state, &old.boot).unwrap_err();
        assert!(matches!(err, Error::StateCorrupt { .. }), "{err:?}");
        assert!(old.state.join("domains/vm1.json").exists());
    }
}
